"""The event backtester's venue model, order by order, on hand-made records: latency and never the
trigger tick, cash checks, limit fills through the price, the queue model, post-only, IOC/FOK,
the L2 walk, cancel and replace, the gateway's risk kernel, timers and feedback order."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.backtest.events import EventEngine
from pipeline.backtest.exchange import risk_kernel
from pipeline.config import BacktestConfig, RiskConfig, RiskSymbolLimits
from pipeline.records import TICK_DTYPE, Kind, Side, Venue
from pipeline.registry import DEFAULT as REG
from pipeline.strategy.base import Strategy
from pipeline.strategy.orders import EventKind

SYM = REG.id(Venue.SIM, "BTCUSDT")
T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def recs(rows):
    """rows: (t_ms, kind, price, qty, side)"""
    r = np.zeros(len(rows), TICK_DTYPE)
    for i, (t, k, p, q, s) in enumerate(rows):
        r[i] = (i, SYM, int(Venue.SIM), 0, int(k), int(s), T0 + t * MS, 0, T0 + t * MS, p, q, 0)
    return r


def tr(t, p, q=1.0, s=Side.BUY):
    return (t, Kind.TRADE, p, q, s)


class Scripted(Strategy):
    """At the record whose seq is a key, return script[seq](self); log every order event."""
    def __init__(self, script, **kw):
        super().__init__(venue=int(Venue.SIM), symbol=SYM, **kw)
        self.script = script
        self.events = []
        self.seen = []

    def on_market(self, rs):
        out = []
        for r in rs:
            self.seen.append(int(r["seq"]))
            f = self.script.get(int(r["seq"]))
            if f is not None:
                out += f(self, int(r["seq"]))
        return out

    def on_order_event(self, ev):
        self.events.append((EventKind(ev.kind).name, ev.client_id, ev.qty, ev.price, ev.reason,
                            self.seen[-1] if self.seen else -1))
        f = self.script.get(("event", ev.kind))
        return f(self, ev) if f else None


MATCHING = "compiled"


@pytest.fixture(autouse=True, params=["compiled", "python"])
def matching(request, monkeypatch):
    """Every test here runs on the compiled matching core (ext/matching.pyx) and on its twin."""
    monkeypatch.setitem(globals(), "MATCHING", request.param)
    return request.param


def run(rows, script, max_batch=1, **model):
    base = dict(fee_taker_bps=10.0, fee_maker_bps=2.0, slippage_bps=0.0, latency_ms=1.0,
                initial_capital=1000.0, sizing="fixed")
    base.update(model)
    st = Scripted(script)
    res = EventEngine(recs(rows), [st], BacktestConfig(**base), max_batch=max_batch,
                      matching=MATCHING).run()
    return st, res


def test_market_fills_at_the_first_trade_after_latency_never_the_trigger():
    rows = [tr(0, 100), tr(0, 101), tr(1, 102), tr(2, 103)]
    st, res = run(rows, {0: lambda s, i: [s.market(1, 1.0, trigger_seq=i)]})
    assert res.fills["index"].tolist() == [2] and res.fills["price"].tolist() == [102.0]
    assert res.fills["fee"][0] == pytest.approx(102 * 10 / 1e4)
    assert [e[0] for e in st.events] == ["ACCEPTED", "FILL"]
    assert st.net_qty == 1.0 and st.events[1][5] == 2   # learnt after record 2 (+1 ms back)


def test_a_buy_the_account_cannot_pay_is_rejected_never_negative_cash():
    rows = [tr(0, 100), tr(5, 100), tr(10, 100)]
    st, res = run(rows, {0: lambda s, i: [s.market(1, 9.995, trigger_seq=i)],
                         1: lambda s, i: [s.market(1, 9.0, trigger_seq=i)]})
    assert st.events[0][:2] == ("REJECTED", 1) and st.events[0][4] == "INSUFFICIENT_CASH"
    assert res.fills["qty"].tolist() == [9.0] and res.stats["cash"] >= 0
    assert res.rejects == {"INSUFFICIENT_CASH": 1}


def test_long_flat_account_cannot_sell_what_it_does_not_hold():
    st, res = run([tr(0, 100), tr(5, 100)], {0: lambda s, i: [s.market(-1, 1.0, trigger_seq=i)]})
    assert st.events[0][4] == "INSUFFICIENT_POSITION" and len(res.fills) == 0
    st, res = run([tr(0, 100), tr(5, 100)], {0: lambda s, i: [s.market(-1, 1.0, trigger_seq=i)]},
                  mode="long_short")
    assert res.fills["qty"].tolist() == [-1.0]


def test_resting_limit_fills_only_when_trades_go_through_its_price_without_a_book():
    rows = [tr(0, 100), tr(5, 99.5, s=Side.SELL), tr(6, 99.0, s=Side.SELL),
            tr(7, 98.9, s=Side.SELL), tr(8, 99.2)]
    st, res = run(rows, {0: lambda s, i: [s.limit(1, 2.0, 99.0, trigger_seq=i)]})
    assert res.fills["index"].tolist() == [3]         # 99.0 itself is not enough, 98.9 is
    assert res.fills["price"].tolist() == [99.0] and res.fills["maker"].tolist() == [True]
    assert res.fills["fee"][0] == pytest.approx(2 * 99 * 2 / 1e4)


def test_queue_position_from_the_shown_level():
    rows = [(0, Kind.BID, 99.0, 2.0, 0), (0, Kind.ASK, 99.5, 1.0, 0), tr(0, 99.5),
            tr(5, 99.0, 1.5, Side.SELL),        # takes 1.5 of the 2.0 ahead
            (6, Kind.BID, 99.0, 0.2, 0),        # level shrank: cancels ahead → 0.2 ahead
            tr(7, 99.0, 0.5, Side.SELL),        # 0.2 ahead, then 0.3 to us
            tr(8, 99.0, 1.0, Side.BUY),         # buyer aggressor: not against our bid
            tr(9, 99.0, 5.0, Side.SELL)]        # the remaining 0.7
    st, res = run(rows, {2: lambda s, i: [s.limit(1, 1.0, 99.0, trigger_seq=i)]})
    assert res.fills["index"].tolist() == [5, 7]
    assert np.allclose(res.fills["qty"], [0.3, 0.7])
    assert st.events[-1][0] == "FILL" and st.net_qty == pytest.approx(1.0)


def test_long_short_sell_that_rests_then_fills_or_is_cancelled_releases_cleanly():
    """long_short sells reserve no position; releasing one (filled or cancelled) used to look up
    a reservation that was never made (KeyError)."""
    rows = [tr(0, 100), tr(5, 100.5), tr(6, 101.0, s=Side.BUY), tr(7, 100), tr(8, 100)]
    st, res = run(rows, {0: lambda s, i: [s.limit(-1, 1.0, 100.5, trigger_seq=i),
                                          s.limit(-1, 1.0, 105.0, trigger_seq=i)],
                         3: lambda s, i: [s.cancel(2, trigger_seq=i)]}, mode="long_short",
                  initial_capital=10_000.0)
    assert res.fills["index"].tolist() == [2] and res.fills["qty"].tolist() == [-1.0]
    assert ("CANCELLED", 2) in [e[:2] for e in st.events] and not st.orders
    assert st.net_qty == pytest.approx(-1.0)


def test_post_only_that_would_take_is_rejected_and_ioc_fok_expire():
    rows = [(0, Kind.BID, 99.0, 2.0, 0), (0, Kind.ASK, 99.5, 1.0, 0), tr(0, 99.5), tr(5, 99.4),
            tr(6, 99.4)]
    st, res = run(rows, {2: lambda s, i: [s.post_only(1, 1.0, 99.5, trigger_seq=i),
                                          s.post_only(1, 1.0, 99.2, trigger_seq=i)]})
    assert st.events[0][:2] == ("REJECTED", 1) and st.events[0][4] == "POST_ONLY_WOULD_TAKE"
    assert ("ACCEPTED", 2) in [e[:2] for e in st.events] and 2 in st.orders
    st, res = run(rows, {2: lambda s, i: [s.limit(1, 1.0, 99.0, tif="IOC", trigger_seq=i),
                                          s.limit(1, 3.0, 99.5, tif="FOK", trigger_seq=i),
                                          s.limit(1, 0.5, 99.5, tif="FOK", trigger_seq=i)]})
    kinds = [(e[0], e[1]) for e in st.events]
    assert ("EXPIRED", 1) in kinds and ("EXPIRED", 2) in kinds and ("FILL", 3) in kinds
    assert res.fills["qty"].tolist() == [0.5] and res.fills["price"].tolist() == [99.5]
    assert not st.orders


def test_market_order_walks_the_l2_book():
    rows = [(0, Kind.BOOK_ASK, 100.0, 1.0, 0), (0, Kind.BOOK_ASK, 101.0, 2.0, 0),
            (0, Kind.BOOK_BID, 99.0, 5.0, 0), tr(0, 100), tr(5, 100), tr(6, 100)]
    st, res = run(rows, {3: lambda s, i: [s.market(1, 2.5, trigger_seq=i)]},
                  initial_capital=10_000.0)
    assert res.fills["qty"].tolist() == [2.5]
    assert res.fills["price"][0] == pytest.approx((100 * 1 + 101 * 1.5) / 2.5)


def test_cancel_and_replace():
    rows = [tr(0, 100), tr(5, 100), tr(10, 100), tr(15, 98, s=Side.SELL), tr(20, 100)]
    st, res = run(rows, {
        0: lambda s, i: [s.limit(1, 1.0, 99.0, trigger_seq=i)],
        1: lambda s, i: [s.replace(1, 97.0, trigger_seq=i)],   # 98 then does not fill it
        3: lambda s, i: [s.cancel(2), s.cancel(1)]})
    kinds = [e[:2] for e in st.events]
    assert ("CANCELLED", 1) in kinds and ("CANCELLED", 2) in kinds
    assert ("REJECTED", 1) in kinds and [e[4] for e in st.events if e[:2] == ("REJECTED", 1)] \
        == ["UNKNOWN_ORDER"]
    assert len(res.fills) == 0 and not st.orders


def test_gateway_risk_kernel_rejects_with_its_reasons():
    model = BacktestConfig(step_size=0.01, min_notional=50.0, initial_capital=1e6,
                           latency_ms=1.0)
    risk = RiskConfig(symbols={"SIM:BTCUSDT": RiskSymbolLimits(max_order_qty=5,
                                                               max_position_qty=10)},
                      max_order_notional=1e6, max_gross_notional=1e7)
    eng = risk_kernel(risk, model, venue=int(Venue.SIM), name="BTCUSDT", symbol_id=SYM)
    st = Scripted({0: lambda s, i: [s.market(1, 0.001, trigger_seq=i),
                                    s.market(1, 0.015, trigger_seq=i),
                                    s.market(1, 6.0, trigger_seq=i),
                                    s.market(1, 1.0, trigger_seq=i)]})
    res = EventEngine(recs([tr(0, 100), tr(5, 100)]), [st], model, risk=eng).run()
    reasons = [e[4] for e in st.events if e[0] == "REJECTED"]
    assert reasons == ["QTY_STEP", "QTY_STEP", "MAX_ORDER_QTY"]     # the kernel's names
    assert res.rejects == {"QTY_STEP": 2, "MAX_ORDER_QTY": 1}
    assert res.fills["qty"].tolist() == [1.0] and eng.position(SYM) == pytest.approx(1.0)


def test_min_notional_reject_from_the_kernel():
    model = BacktestConfig(min_notional=50.0, initial_capital=1e6)
    risk = RiskConfig(symbols={"SIM:BTCUSDT": RiskSymbolLimits(max_order_qty=5,
                                                               max_position_qty=10)})
    eng = risk_kernel(risk, model, venue=int(Venue.SIM), name="BTCUSDT", symbol_id=SYM)
    st = Scripted({0: lambda s, i: [s.market(1, 0.1, trigger_seq=i)]})
    EventEngine(recs([tr(0, 100), tr(5, 100)]), [st], model, risk=eng).run()
    assert [e[4] for e in st.events] == ["MIN_NOTIONAL"]


def test_timer_fires_on_the_data_clock_before_later_records():
    class Timed(Scripted):
        timer_ns = 10 * MS

        def on_timer(self, now):
            self.ticks_at.append((now, self.seen[-1]))
    st = Timed({})
    st.ticks_at = []
    rows = [tr(t, 100) for t in (1, 4, 12, 15, 31, 33)]
    EventEngine(recs(rows), [st], BacktestConfig()).run()
    assert [(now - T0) // MS for now, _ in st.ticks_at] == [10, 20, 30]
    assert [seen for _, seen in st.ticks_at] == [1, 3, 3]


def test_a_replace_whose_new_order_the_risk_kernel_rejects_leaves_the_old_order_working():
    model = BacktestConfig(initial_capital=1e6, latency_ms=1.0, tick_size=0.5)
    risk = RiskConfig(symbols={"SIM:BTCUSDT": RiskSymbolLimits(max_order_qty=5,
                                                               max_position_qty=10)})
    eng = risk_kernel(risk, model, venue=int(Venue.SIM), name="BTCUSDT", symbol_id=SYM)
    st = Scripted({0: lambda s, i: [s.limit(1, 1.0, 99.5, trigger_seq=i)],
                   1: lambda s, i: [s.replace(1, 99.25, trigger_seq=i)]})   # off the tick
    rows = [tr(0, 100), tr(5, 100), tr(10, 100), tr(15, 99.0, s=Side.SELL), tr(20, 100)]
    res = EventEngine(recs(rows), [st], model, risk=eng).run()
    kinds = [e[:2] for e in st.events]
    assert ("REJECTED", 2) in kinds and [e[4] for e in st.events if e[1] == 2] == ["PRICE_TICK"]
    assert ("CANCELLED", 1) not in kinds and res.fills["index"].tolist() == [3]


def test_records_out_of_time_order_are_refused_before_the_run():
    rows = [tr(0, 100), tr(5, 100), tr(3, 100)]
    st = Scripted({})
    with pytest.raises(ValueError, match="not in time order.*record 2"):
        EventEngine(recs(rows), [st], BacktestConfig())
