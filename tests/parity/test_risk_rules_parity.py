"""Kernel and twin on valid orders only, with the #17 rules on (sliding-window rate limit, trigger
tick age, duplicate orders, self-trade prevention, the time-window collar): the general parity scenario mostly refuses
on the exchange filters, so these rules are driven here, where most orders get far enough."""
from __future__ import annotations

import math
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.gateway import risk_py
from pipeline.gateway.reasons import Reason
from pipeline.gateway.risk import RiskEngine, make_signal
from tests.gateway_helpers import BINANCE, btc_rules

PRICES = [49_990.0, 49_995.0, 50_000.0, 50_005.0, 50_010.0]

op = st.one_of(
    st.tuples(st.just("sig"), st.sampled_from([0, 1, 10**6, 3 * 10**7, 2 * 10**8]),
              st.sampled_from([1, -1]), st.sampled_from([1, 1, 1, 2, 3]),
              st.sampled_from([1, 1, 2]), st.sampled_from(PRICES),
              st.sampled_from([0.001, 0.002]), st.integers(1, 2),
              st.sampled_from([0, 1, 10**6, 10**8, 10**9])),
    st.tuples(st.just("own"), st.sampled_from([0.0] + PRICES), st.sampled_from([0.0] + PRICES)),
    st.tuples(st.just("fill"), st.sampled_from([1, -1]), st.sampled_from([0.001, 0.002])),
    st.tuples(st.just("ref"), st.sampled_from(PRICES + [49_000.0, 51_000.0]),
              st.sampled_from([0, 1, 10**6, 6 * 10**7, 10**9])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=60),
       n=st.integers(1, 6), window=st.sampled_from([10**6, 10**8, 10**9]),
       age=st.sampled_from([10**6, 5 * 10**7, 10**9]),
       dup=st.sampled_from([0, 10**7, 10**8]), stp=st.booleans(),
       wcollar=st.sampled_from([0.0, 5.0, 20.0, 300.0]),
       wns=st.sampled_from([16, 10**8, 10**9]))
def test_kernel_and_twin_agree_on_the_rate_age_duplicate_self_trade_and_window_rules(
        ops, n, window, age, dup, stp, wcollar, wns):
    lim = dict(max_gross_notional=1e9, collar_bps=300.0, ref_stale_ns=10**10, throttle_orders=n,
               throttle_window_ns=window, runaway_signals=4096, runaway_window_ns=1,
               max_tick_age_ns=age, duplicate_window_ns=dup, self_trade=stp,
               window_collar_bps=wcollar, window_collar_ns=wns)
    engines = [RiskEngine(**lim), risk_py.RiskEngine(**lim)]
    for e in engines:
        e.set_instrument(btc_rules(max_position_qty="1000", max_order_qty="10"))
        e.set_reference(1, 50_000.0, 10**12)
    now, seq = 10**12, 0
    for o in ops:
        if o[0] == "sig":
            _, dt, side, otype, tif, price, qty, strat, trig_age = o
            now += dt
            seq += 1
            msg = make_signal(epoch=1, seq=seq, symbol=1, venue=BINANCE, side=side,
                              order_type=otype, tif=tif if otype == 1 else 0, qty=qty,
                              price=math.nan if otype == 2 else price, created_mono=now,
                              ttl_ns=10**10, strategy_id=strat,
                              trigger_mono=now - trig_age if trig_age else 0)
            got = [e.check(msg, now) for e in engines]
            assert got[0] == got[1]
        elif o[0] == "ref":                        # the market moves (the window collar's input)
            now += o[2]
            for e in engines:
                e.set_reference(1, o[1], now)
        elif o[0] == "own":
            for e in engines:
                e.set_own_quotes(1, o[1], o[2])
        else:
            for e in engines:
                e.apply_fill(1, o[1], o[2])
        assert engines[0].snapshot() == engines[1].snapshot()


def test_a_fixed_sequence_reaches_every_new_rule_on_both_engines():
    lim = dict(max_gross_notional=1e9, collar_bps=100.0, ref_stale_ns=10**10, throttle_orders=3,
               throttle_window_ns=10**9, runaway_signals=4096, runaway_window_ns=1,
               max_tick_age_ns=10**8, duplicate_window_ns=10**8, self_trade=True)
    engines = [RiskEngine(**lim), risk_py.RiskEngine(**lim)]
    for e in engines:
        e.set_instrument(btc_rules(max_position_qty="1000", max_order_qty="10"))
        e.set_reference(1, 50_000.0, 10**12)
    now = 10**12

    def sig(seq, side, price, trig=0, qty=0.001):
        return make_signal(epoch=1, seq=seq, symbol=1, venue=BINANCE, side=side, order_type=1,
                           tif=1, qty=qty, price=price, created_mono=now, ttl_ns=10**10,
                           trigger_mono=trig)
    steps = [(sig(1, 1, 49_990.0), Reason.ACCEPT),
             (sig(2, 1, 49_990.0), Reason.DUPLICATE_ORDER),
             (sig(3, -1, 49_990.0), Reason.SELF_TRADE),
             (sig(4, 1, 49_995.0, trig=now - 2 * 10**8), Reason.STALE_TRIGGER),
             (sig(5, 1, 49_995.0), Reason.ACCEPT),
             (sig(6, -1, 50_010.0), Reason.ACCEPT),
             (sig(7, 1, 49_980.0), Reason.RATE_LIMIT)]
    for msg, want in steps:
        assert [e.check(msg, now) for e in engines] == [want, want]
        assert engines[0].snapshot() == engines[1].snapshot()


@settings(max_examples=150, deadline=None)
@given(gaps=st.lists(st.sampled_from([0, 1, 10**6, 10**8, 10**9, 2 * 10**9]), max_size=80),
       k=st.integers(0, 8), window=st.sampled_from([1, 10**6, 10**9]),
       halted_at=st.integers(-1, 80))
def test_kernel_and_twin_agree_on_the_fill_rate_runaway_guard(gaps, k, window, halted_at):
    lim = dict(max_gross_notional=1e9, collar_bps=100.0, ref_stale_ns=10**10, throttle_orders=1,
               throttle_window_ns=1, runaway_signals=1, runaway_window_ns=1,
               runaway_fills=k, runaway_fill_window_ns=window)
    engines = [RiskEngine(**lim), risk_py.RiskEngine(**lim)]
    now = 10**12
    for i, dt in enumerate(gaps):
        now += dt
        if i == halted_at:                               # halted by something else meanwhile
            for e in engines:
                e.set_state(2)
        got = [e.count_fill(now) for e in engines]
        assert got[0] == got[1] and engines[0].state == engines[1].state


def test_a_walked_reference_reaches_the_window_collar_on_both_engines():
    lim = dict(max_gross_notional=1e9, collar_bps=200.0, ref_stale_ns=10**10, throttle_orders=100,
               throttle_window_ns=10**9, runaway_signals=4096, runaway_window_ns=1,
               window_collar_bps=300.0, window_collar_ns=10**9)
    engines = [RiskEngine(**lim), risk_py.RiskEngine(**lim)]
    for e in engines:
        e.set_instrument(btc_rules(max_position_qty="1000", max_order_qty="10"))
        e.set_reference(1, 50_000.0, 10**12)
    now, ref, got = 10**12, 50_000.0, []
    for seq in range(1, 6):                        # 1.9 % per order, the reference following
        now += 10**8
        price = round(ref * 1.019, 2)
        msg = make_signal(epoch=1, seq=seq, symbol=1, venue=BINANCE, side=1, order_type=1,
                          tif=1, qty=0.001, price=price, created_mono=now, ttl_ns=10**10)
        r = [e.check(msg, now) for e in engines]
        assert r[0] == r[1]
        got.append(r[0])
        ref = price
        for e in engines:
            e.set_reference(1, ref, now)
        assert engines[0].snapshot() == engines[1].snapshot()
    assert got == [Reason.ACCEPT] + [Reason.PRICE_WINDOW] * 4
