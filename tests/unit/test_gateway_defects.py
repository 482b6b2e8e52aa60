"""Unit tests of the gateway's execution, journal, clock and reference handling around defects a
review found: fills lost as "foreign", UNKNOWN orders left open at shutdown, journal write
failures, torn journal lines, blocking calls on the loop, malformed trade events, non-finite
reference prices. The venue is a scripted fake REST client (no network); the journal is real."""
from __future__ import annotations

import errno
import math
import os
import time
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.gateway import journal as jmod
from pipeline.gateway.clocksync import ClockSync
from pipeline.venues.binance.execution import BinanceExecution as Execution
from pipeline.gateway.journal import Journal, JournalWriteError, read
from pipeline.gateway.orders import Order, OrderState
from pipeline.gateway.positions import Book, Fill
from pipeline.gateway.reconcile import rebuild
from pipeline.venues.binance.reconcile import reconcile
from pipeline.gateway.rest import Outcome, Reply

SYM = "BTCUSDT"
SID = 18


# ------------------------------------------------------------------ fakes
class FakeRest:
    """Answers by (method, path[, a parameter]); records every call in `calls` (and `events`)."""

    def __init__(self, events: list | None = None):
        self.answers: dict[tuple, list[Reply]] = {}
        self.calls: list[tuple[str, str, dict]] = []
        self.events = events if events is not None else []

    def on(self, method: str, path: str, *replies: Reply, key: tuple = ()) -> None:
        self.answers.setdefault((method, path) + key, []).extend(replies)

    def _answer(self, method: str, path: str, params: dict) -> Reply:
        self.calls.append((method, path, dict(params)))
        self.events.append(f"{method} {path}")
        for k in (("orderId", params.get("orderId")), ("cid", params.get("origClientOrderId"))):
            q = self.answers.get((method, path) + k)
            if q:
                return q.pop(0) if len(q) > 1 else q[0]
        q = self.answers.get((method, path))
        if not q:
            return Reply(Outcome.REJECTED, 400, -1100, "no scripted answer")
        return q.pop(0) if len(q) > 1 else q[0]

    def signed(self, method: str, path: str, params: dict, **kw) -> Reply:
        return self._answer(method, path, params)

    def public(self, path: str, params: dict | None = None, **kw) -> Reply:
        return self._answer("GET", path, params or {})

    def send(self, method: str, path: str, *, body: bytes = b"", **kw) -> Reply:
        return self._answer(method, path, {"body": body})


class FakeRisk:
    def __init__(self):
        self.released: list[tuple] = []
        self.fills: list[tuple] = []
        self.state = 0

    def release_open(self, sid, side, qty):
        self.released.append((sid, side, qty))

    def apply_fill(self, sid, side, qty):
        self.fills.append((sid, side, qty))

    def count_fill(self, now):
        return False

    def set_position(self, sid, qty):
        pass

    def set_open_orders(self, sid, b, s):
        pass

    def set_state(self, state):
        self.state = state

    def set_reference(self, sid, mid, now):
        pass

    def restore_mark(self, strategy_id, epoch, seq):
        return True


class FakeClock:
    def __init__(self):
        self.ts = 1_700_000_000_000
        self.syncs: list = []
        self.skewed = False

    def timestamp_ms(self) -> int:
        self.ts += 7
        return self.ts

    def sync(self, deadline_s=None) -> bool:
        self.syncs.append(deadline_s)
        return True

    def snapshot(self) -> dict:
        return {}

    def strike(self) -> None:
        pass


class FakeSigner:
    def encode_sign(self, sid, side, otype, tif, qu, pu, cid, ts):
        return b"symbol=BTCUSDT&newClientOrderId=" + cid + b"&timestamp=%d&signature=ab" % ts


RULES = SimpleNamespace(name=SYM, qty_decimals=5, price_decimals=2)
CFG = SimpleNamespace(unknown_poll_ms=50, unknown_poll_max_ms=400, unknown_max_polls=3,
                      connect_timeout_s=1.0, risk=SimpleNamespace(max_consecutive_rejects=5))


def make_ex(tmp_path, rest=None, **kw) -> Execution:
    j = Journal(tmp_path / "journal.jsonl", fsync="never")
    halts: list[str] = []
    ex = Execution(cfg=CFG, journal=j, risk=FakeRisk(), signer=FakeSigner(), rules={SID: RULES},
                   rest=rest or FakeRest(), clock=FakeClock(), halt=halts.append, **kw)
    ex._symbol_id = lambda name: SID if name == SYM else 0
    ex.halts = halts
    return ex


def our_order(ex, cid="pl1.1.1", qty=0.5, side=1, state=OrderState.ACK, order_id=-1) -> Order:
    o = Order(cid=cid, symbol=SYM, symbol_id=SID, side=side, order_type=1, tif=1, qty=qty,
              price=100.0, state=state)
    ex.table.add(o)
    ex.table.set_order_id(o, order_id)
    return o


def trade(tid: int, oid: int, qty="0.5", price="100.0", buyer=True) -> dict:
    return {"id": tid, "orderId": oid, "qty": qty, "price": price, "commission": "0",
            "commissionAsset": "BTC", "isBuyer": buyer}


def ok(data) -> Reply:
    return Reply(Outcome.OK, 200, data=data)


# ------------------------------------------------------------------ 1. foreign, then ours
def test_a_trade_first_taken_for_foreign_still_applies_once_the_order_is_identified(tmp_path):
    rest = FakeRest()
    ex = make_ex(tmp_path, rest)
    o = our_order(ex)                                   # venue order id not known yet
    # recent trades (no orderId): trade 7 of venue order 555 looks foreign
    rest.on("GET", "/api/v3/myTrades", ok([trade(7, 555)]))
    assert ex.fetch_trades(SYM) == 0
    assert ex.counts["foreign_fills"] == 1 and (SYM, 7) not in ex.book.seen
    # the audit finds the order (venue id 555, filled) and then its trades: applied
    rest.on("GET", "/api/v3/order", ok({"orderId": 555, "status": "FILLED",
                                        "executedQty": "0.5"}))
    rest.on("GET", "/api/v3/myTrades", ok([trade(7, 555)]), key=("orderId", 555))
    ex.audit([o], "test")
    assert o.filled == pytest.approx(0.5) and o.state is OrderState.FILLED
    assert ex.book.positions[SYM].qty == pytest.approx(0.5)
    assert ("GET", "/api/v3/myTrades", {"symbol": SYM, "limit": 100, "orderId": 555}) \
        in rest.calls
    # and a second copy of the trade is a duplicate, not a second fill
    assert ex.fetch_trades(SYM) == 0 and ex.book.positions[SYM].qty == pytest.approx(0.5)


def test_rebuild_keeps_foreign_trades_out_of_the_fill_dedup_set(tmp_path):
    ex = make_ex(tmp_path)
    recs = [{"k": "order", "cid": "pl1.1.1", "symbol": SYM, "side": 1, "order_type": 1, "tif": 1,
             "qty": 0.5, "price": 100.0},
            {"k": "state", "cid": "pl1.1.1", "to": "ACK", "order_id": -1},
            {"k": "foreign_fill", "symbol": SYM, "trade_id": 7, "order_id": 555}]
    rebuild(recs, ex)
    assert (SYM, 7) in ex.foreign_seen and (SYM, 7) not in ex.book.seen
    o = ex.table.get("pl1.1.1")
    ex.table.set_order_id(o, 555)
    assert ex.fill(o, symbol=SYM, trade_id=7, side=1, qty=0.5, price=100.0, source="query")
    assert ex.book.positions[SYM].qty == pytest.approx(0.5)


def test_reconcile_fetches_the_trades_of_an_order_that_filled_while_we_were_down(tmp_path):
    rest = FakeRest()
    ex = make_ex(tmp_path, rest)
    o = our_order(ex)
    rest.on("GET", "/api/v3/order", ok({"orderId": 555, "status": "FILLED",
                                        "executedQty": "0.5"}))
    rest.on("GET", "/api/v3/myTrades", ok([trade(7, 555)]), key=("orderId", 555))
    rest.on("GET", "/api/v3/myTrades", ok([]))          # recent trades: nothing (window passed)
    rest.on("GET", "/api/v3/openOrders", ok([]))
    rest.on("GET", "/api/v3/account", ok({"balances": []}))
    rep = reconcile(ex, [SYM])
    assert o.state is OrderState.FILLED and o.filled == pytest.approx(0.5)
    assert rep["new_fills"] == 1 and ex.book.positions[SYM].qty == pytest.approx(0.5)


# ------------------------------------------------------------------ 2. shutdown cancels UNKNOWN
def test_shutdown_cancel_includes_unknown_orders(tmp_path):
    rest = FakeRest()
    ex = make_ex(tmp_path, rest)
    gone = our_order(ex, "pl1.1.1", state=OrderState.UNKNOWN)
    resting = our_order(ex, "pl1.1.2", state=OrderState.UNKNOWN)
    rest.on("DELETE", "/api/v3/order", Reply(Outcome.REJECTED, 400, -2011, "Unknown order sent."),
            key=("cid", "pl1.1.1"))
    rest.on("DELETE", "/api/v3/order", ok({"orderId": 9, "status": "CANCELED",
                                           "executedQty": "0"}), key=("cid", "pl1.1.2"))
    assert ex.cancel_ours("shutdown") == 1
    sent = {c[2]["origClientOrderId"] for c in rest.calls if c[0] == "DELETE"}
    assert sent == {"pl1.1.1", "pl1.1.2"}
    assert resting.state is OrderState.CANCELED
    assert gone.state is OrderState.UNKNOWN                # -2011 changes nothing


# ------------------------------------------------------------------ 3. journal write failures
def failing_write(monkeypatch, *, after_bytes: int | None = None, calls: list | None = None):
    """os.write in the journal module fails with ENOSPC (after writing `after_bytes`, if set)."""
    real = os.write
    budget = [after_bytes]

    def write(fd, data):
        if calls is not None:
            calls.append("write")
        if budget[0]:
            n = real(fd, bytes(data[:budget[0]]))
            budget[0] = 0
            return n
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jmod.os, "write", write)
    return real


def test_a_failed_journal_write_keeps_the_records_until_a_write_succeeds(tmp_path, monkeypatch):
    p = tmp_path / "j.jsonl"
    j = Journal(p, fsync="never")
    j.write("a", n=1)
    j.write("b", n=2)
    failing_write(monkeypatch, after_bytes=10)           # a partial write, then ENOSPC
    with pytest.raises(JournalWriteError):
        j.commit()
    j.write("c", n=3)
    with pytest.raises(JournalWriteError):
        j.commit()
    assert j.write_errors == 2 and j.pending
    monkeypatch.undo()                                   # space again
    j.commit()
    j.close()
    assert [r["k"] for r in read(p)] == ["a", "b", "c"]
    assert j.pending == 0


def test_journal_failure_before_sending_rejects_and_releases(tmp_path, monkeypatch):
    rest = FakeRest()
    ex = make_ex(tmp_path, rest)
    o = our_order(ex, state=OrderState.NEW)
    failing_write(monkeypatch)
    reply = ex.submit(o, ex.encode(o, 1))
    assert reply.outcome is Outcome.NOT_SENT and rest.calls == []     # nothing went out
    assert o.state is OrderState.REJECTED
    assert ex.risk.released == [(SID, 1, 0.5)]
    assert ex.counts["journal_write_failed"] == 1


def test_an_error_after_the_request_may_be_out_makes_the_order_unknown(tmp_path):
    class Exploding(FakeRest):
        def send(self, *a, **kw):
            self.calls.append(("POST", "/api/v3/order", {}))
            raise RuntimeError("transport bug")
    ex = make_ex(tmp_path, Exploding())
    o = our_order(ex, state=OrderState.NEW)
    reply = ex.submit(o, ex.encode(o, 1))
    assert reply.outcome is Outcome.UNKNOWN and o.state is OrderState.UNKNOWN
    assert ex.risk.released == []                        # exposure kept until resolved


def test_an_error_handing_an_order_to_the_wire_makes_it_unknown_not_inflight(tmp_path):
    from pipeline.gateway.ratelimit import HostGate
    from pipeline.venues.binance.rest import BinanceWire as Wire
    wire = Wire("http://127.0.0.1:9", "k", HostGate("h", weight_limit_1m=1, order_limit_10s=1),
                connect_timeout_s=0.2, read_timeout_s=0.2, redact=str)

    def bug(*a):
        raise RuntimeError("wire bug")
    wire._take_idle = bug
    ex = make_ex(tmp_path)
    ex.wire = wire
    try:
        o = our_order(ex, state=OrderState.NEW)
        reply = ex.submit(o, ex.encode(o, 1))
        assert reply.outcome is Outcome.UNKNOWN and o.state is OrderState.UNKNOWN
        assert ex.inflight == {} and ex.counts["internal_errors"] == 1
    finally:
        wire.close()


def _gateway(tmp_path, ex):
    from pipeline.gateway.process import Gateway
    cfg = SimpleNamespace(gateway=SimpleNamespace(state_dir=str(tmp_path / "st"), kill_file="",
                                                  symbols=[SYM]))
    gw = Gateway(cfg)
    gw.journal, gw.ex, gw.risk, gw.phase = ex.journal, ex, ex.risk, "RUNNING"
    return gw


def test_halt_on_a_full_disk_cancels_first_and_journals_afterwards(tmp_path, monkeypatch):
    events: list[str] = []
    rest = FakeRest(events)
    rest.on("DELETE", "/api/v3/openOrders", ok([]))
    ex = make_ex(tmp_path, rest)
    gw = _gateway(tmp_path, ex)
    failing_write(monkeypatch, calls=events)
    gw.halt("kill switch")                               # must not raise
    assert gw.trading == "HALTED" and ex.risk.state == 2
    assert events[0] == "DELETE /api/v3/openOrders" and "write" in events
    assert ex.journal.write_errors >= 1
    monkeypatch.undo()
    assert gw._commit()
    recs = list(read(ex.journal.path))
    halted = next(r for r in recs if r["k"] == "trading")
    cancel = next(r for r in recs if r["k"] == "cancel_all")
    assert halted["state"] == "HALTED" and halted["m"] < cancel["m"]


# ------------------------------------------------------------------ 4. torn last line
def test_a_torn_last_line_does_not_swallow_the_next_sessions_first_record(tmp_path):
    p = tmp_path / "j.jsonl"
    j = Journal(p)
    j.write("start", n=1)
    j.close()
    with open(p, "ab") as f:
        f.write(b'{"k": "fill", "trade_id": 1')         # torn by a crash / full disk
    j = Journal(p)
    assert j.torn_at_open == 1
    j.write("start", n=2)
    j.write("trading", state="HALTED")
    j.close()
    stats: dict = {}
    recs = list(read(p, stats))
    assert [(r["k"], r.get("n")) for r in recs] == [("start", 1), ("start", 2), ("trading", None)]
    assert stats == {"torn": 1}
    # a journal that ends cleanly is left alone
    assert Journal(p).torn_at_open == 0


def test_rebuild_skips_a_torn_line_and_carries_on(tmp_path, caplog):
    p = tmp_path / "j.jsonl"
    p.write_bytes(b'{"k":"order","cid":"pl1.1.1","symbol":"BTCUSDT","side":1,"order_type":1,'
                  b'"tif":1,"qty":0.5,"price":100.0}\n{"k":"fill","symbol":"BTC\n'
                  b'{"k":"trading","state":"HALTED"}\n{"k":"fill","symbol":"BTCUSDT","side":0}\n')
    ex = make_ex(tmp_path / "x")
    rb = rebuild(read(p), ex)
    assert rb["trading"] == "HALTED" and rb["orders"] == 1
    assert ex.counts["journal_bad_records"] == 1
    assert "torn" in caplog.text


# ------------------------------------------------------------------ 7. nothing blocks the loop
def test_clock_sync_stops_at_its_deadline_and_caps_each_sample():
    mono = [0]
    timeouts: list[float] = []

    def slow(timeout_s):
        timeouts.append(timeout_s)
        mono[0] += 300_000_000                             # each sample takes 0.3 s
        return (0, 0, 0)

    c = ClockSync(lambda: pytest.fail("the untimed sample was used"), samples=5,
                  mono_ns=lambda: mono[0], wall_ns=lambda: 0, timed_sample=slow)
    assert not c.sync(deadline_s=0.5)                    # 2 samples fit, 3 are needed
    assert len(timeouts) == 2 and timeouts[0] == pytest.approx(0.5)
    assert timeouts[1] == pytest.approx(0.2) and c.timeouts == 1 and mono[0] == 600_000_000


def test_the_1021_retry_keeps_the_client_id_with_a_fresh_timestamp_and_a_bounded_resync(tmp_path):
    rest = FakeRest()
    rest.on("POST", "/api/v3/order", Reply(Outcome.REJECTED, 400, -1021, "outside recvWindow"),
            ok({"orderId": 5, "status": "NEW", "executedQty": "0"}))
    beats: list[int] = []
    ex = make_ex(tmp_path, rest, heartbeat=lambda: beats.append(1))
    o = our_order(ex, state=OrderState.NEW)
    ex.submit(o, ex.encode(o, ex.clock.timestamp_ms()))
    bodies = [c[2]["body"] for c in rest.calls]
    assert len(bodies) == 2 and o.state is OrderState.ACK and o.attempts == 2
    assert all(b"newClientOrderId=pl1.1.1&" in b for b in bodies)
    assert bodies[0].split(b"timestamp=")[1] != bodies[1].split(b"timestamp=")[1]
    assert ex.clock.syncs and 0 < ex.clock.syncs[0] <= 1.0        # a deadline was given
    assert beats                                                  # after the resync


def test_rest_calls_stamp_the_heartbeat_before_and_after():
    from pipeline.gateway.ratelimit import HostGate
    from pipeline.venues.binance.rest import RestClient
    rc = RestClient("http://127.0.0.1:9", "k", lambda q: "s", HostGate("h", weight_limit_1m=10,
                    order_limit_10s=10), connect_timeout_s=0.5, read_timeout_s=0.5,
                    recv_window_ms=5000, timestamp_ms=lambda: 1, redact=str)
    beats: list[int] = []
    rc.on_io = lambda: beats.append(time.perf_counter_ns())
    r = rc.public("/api/v3/time")                          # nothing listens: fails fast
    rc.close()
    assert r.outcome in (Outcome.UNKNOWN, Outcome.NOT_SENT) and len(beats) == 2


def test_rate_pacing_refuses_instead_of_sleeping(tmp_path, monkeypatch):
    """The venue's pacing, learnt by the gate and judged in the risk kernel: the second signal
    inside the pace is refused RATE_BUDGET at once, never slept on, and nothing is signed."""
    from pipeline.gateway import orderpath_py, process, risk_py, sign_py
    from pipeline.gateway.intake import Intake
    from pipeline.gateway.ratelimit import HostGate
    from tests.gateway_helpers import LIMITS, SECRET, Sig, btc_rules
    rest = FakeRest()
    rest.on("POST", "/api/v3/order", ok({"orderId": 5, "status": "NEW", "executedQty": "0"}))
    ex = make_ex(tmp_path, rest)
    gw = _gateway(tmp_path, ex)
    monkeypatch.setattr(process.time, "sleep", lambda s: pytest.fail(f"slept {s} s"))
    risk, signer = risk_py.RiskEngine(**LIMITS), sign_py.BinanceSigner(SECRET)
    rules = btc_rules()
    risk.set_instrument(rules)
    signer.set_instrument(rules)
    risk.set_reference(rules.symbol_id, 50_000.0, time.perf_counter_ns())
    ex.rules = {rules.symbol_id: rules}
    intake = Intake.__new__(Intake)                     # decoding and counting only, no sockets
    from pipeline.bus import signals
    intake.signals, intake.received, intake.malformed, intake.gaps, intake.gap_events = \
        signals, 0, 0, 0, 0
    gw.intake, gw.risk, gw.path = intake, risk, orderpath_py.OrderPath(risk, signer)
    gw.clock = ex.clock
    # the venue reports 85 of 100 orders used in this 10 s window (slow down above 80 %): the
    # 10 left before the stop at 95 % are spread over the 10 s left, one order a second
    from pipeline.venues.binance.ratelimits import used_from_headers
    gw.gate = HostGate("h", weight_limit_1m=1000, order_limit_10s=100, clock=lambda: 1000.0,
                       used_of=used_from_headers)
    gw.gate.bind(risk)
    gw.gate.observe_headers({"X-MBX-ORDER-COUNT-10S": "85"})
    make = Sig()
    t0 = time.perf_counter()
    gw.handle_signal(make(created_mono=time.perf_counter_ns(), qty=0.001))   # goes out
    gw.handle_signal(make(created_mono=time.perf_counter_ns(), qty=0.001))   # too soon: refused
    assert time.perf_counter() - t0 < 0.4
    assert len(rest.calls) == 1 and gw.rejects == {"RATE_BUDGET": 1}
    assert signer.signed_count == 1                     # the refused one was never signed


# ------------------------------------------------------------------ 8. malformed trade events
def report(**over) -> dict:
    ev = {"e": "executionReport", "s": SYM, "c": "pl1.1.1", "i": 555, "x": "TRADE", "X": "FILLED",
          "S": "BUY", "t": 7, "l": "0.5", "L": "100.0", "z": "0.5", "n": "0", "N": "BTC"}
    ev.update(over)
    return {k: v for k, v in ev.items() if v is not None}


def test_a_trade_event_without_a_side_uses_our_orders_side(tmp_path):
    ex = make_ex(tmp_path)
    o = our_order(ex)
    ex.on_event(report(S=None))                            # flat position, no side: no crash
    assert o.filled == pytest.approx(0.5) and ex.book.positions[SYM].qty == pytest.approx(0.5)


def test_bad_trade_events_are_counted_and_a_good_copy_still_counts(tmp_path):
    ex = make_ex(tmp_path)
    ex.on_event(report(c="someone-else", i=777, S="HOLD"))           # foreign, bad side
    ex.on_event(report(c="someone-else", i=777, t=None))             # foreign, no trade id
    assert ex.counts["bad_fill_events"] == 2 and not ex.book.seen and not ex.foreign_seen
    o = our_order(ex)
    ex.on_event(report(t=None))                                      # ours, no trade id
    assert ex.counts["bad_fill_events"] == 3 and o.filled == 0 and not ex.book.seen
    ex.on_event(report())                                            # the good copy
    assert o.filled == pytest.approx(0.5) and (SYM, 7) in ex.book.seen


def test_the_book_refuses_a_malformed_fill_before_marking_it_seen():
    b = Book()
    with pytest.raises(ValueError):
        b.apply(Fill(SYM, 7, "c", 1, 0, 0.5, 100.0))               # side 0 on a flat position
    with pytest.raises(ValueError):
        b.apply(Fill(SYM, -1, "c", 1, 1, 0.5, 100.0))
    assert not b.seen
    assert b.apply(Fill(SYM, 7, "c", 1, 1, 0.5, 100.0))


# ------------------------------------------------------------------ 11. reference prices
@pytest.mark.parametrize("bid,ask", [("nan", "101"), ("100", "inf"), ("-1", "101"),
                                     ("1e308", "1e308")])
def test_rest_reference_prices_must_be_finite_and_positive(bid, ask):
    from pipeline.gateway.references import References
    rest = FakeRest()
    rest.on("GET", "/api/v3/depth", ok({"bids": [["99", "1"]], "asks": [["101", "1"]]}),
            ok({"bids": [[bid, "1"]], "asks": [[ask, "1"]]}))
    refs = References(source="rest", risk=FakeRisk(), rules={SID: RULES}, rest=rest,
                      ring_name="", poll_ms=1)
    refs.poll_rest()
    refs.poll_rest()
    assert refs.refs == {SYM: 100.0} and refs.bad == 1


def test_ring_reference_prices_must_be_finite_and_positive():
    from pipeline.gateway.references import References
    from pipeline.records import TICK_DTYPE, Kind
    refs = References(source="none", risk=FakeRisk(), rules={SID: RULES}, rest=None,
                      ring_name="", poll_ms=1)

    def batch(*rows):
        a = np.zeros(len(rows), dtype=TICK_DTYPE)
        for i, (kind, px) in enumerate(rows):
            a[i]["symbol"], a[i]["kind"], a[i]["price"] = SID, int(kind), px
        return a
    feed = [batch((Kind.BID, 99.0), (Kind.ASK, 101.0)),
            batch((Kind.BID, math.nan), (Kind.ASK, math.inf)),
            batch((Kind.TRADE, math.inf))]
    refs.reader = SimpleNamespace(poll=lambda: feed.pop(0))
    refs.read_ring()
    assert refs.refs == {SYM: 100.0}
    refs.read_ring()
    assert refs.refs == {SYM: 100.0} and refs.bad == 2
    refs._bbo[SID] = [0.0, 0.0]                             # no book: the last trade would do
    refs.read_ring()
    assert refs.refs == {SYM: 100.0} and refs.bad == 3


def test_the_kill_file_is_seen_between_the_signals_of_a_batch(tmp_path):
    rest = FakeRest()
    rest.on("DELETE", "/api/v3/openOrders", ok([]))
    ex = make_ex(tmp_path, rest)
    gw = _gateway(tmp_path, ex)
    gw.paths["kill"] = tmp_path / "KILL"
    gw._next = {"status": 0, "kill": 0, "audit": 0}
    gw.cfg.poll_ms, gw.cfg.warm_ms = 1, 0.0
    seen: list[str] = []
    raws = [b"1", b"2", b"3"]

    class Intake:
        def wait(self, ms):
            return True

        def recv_raw(self):
            return raws.pop(0) if raws else None

    def handle(raw):
        seen.append(gw.trading)
        gw.paths["kill"].touch()                 # the operator pulls the switch mid-batch
        gw._next["kill"] = 0                     # (the 20 ms file-poll spacing has passed)

    def housekeeping():
        gw.stop_requested = True

    gw.intake = Intake()
    gw.sign_signal = lambda raw: raw                # signing is pure; the finishing is checked
    gw.finish_signal, gw._housekeeping = handle, housekeeping
    gw.write_status, gw.shutdown = (lambda: None), (lambda: 0)
    assert gw.run() == 0
    assert seen == ["ACTIVE", "HALTED", "HALTED"]
    assert ("DELETE", "/api/v3/openOrders", {"symbol": SYM}) in rest.calls


def test_every_waiting_signal_is_signed_before_any_is_finished(tmp_path):
    """Two signals in one batch: the second is signed before the first is journalled and handed
    to the wire, so it never waits for the first's bookkeeping (tick → signed)."""
    ex = make_ex(tmp_path, FakeRest())
    gw = _gateway(tmp_path, ex)
    gw._next = {"status": 0, "kill": 1 << 62, "audit": 0}
    gw.cfg.poll_ms, gw.cfg.warm_ms = 1, 0.0
    raws = [b"1", b"2"]
    calls: list[str] = []

    class Intake:
        def wait(self, ms):
            return True

        def recv_raw(self):
            return raws.pop(0) if raws else None

    def housekeeping():
        gw.stop_requested = True

    gw.intake = Intake()
    gw.sign_signal = lambda raw: calls.append(f"sign {raw.decode()}") or raw
    gw.finish_signal = lambda raw: calls.append(f"finish {raw.decode()}")
    gw._housekeeping = housekeeping
    gw.write_status, gw.shutdown = (lambda *a: None), (lambda: 0)
    assert gw.run() == 0
    assert calls == ["sign 1", "sign 2", "finish 1", "finish 2"]


# ------------------------------------------------------------------ a halt inside a batch of sent orders
def test_an_order_journalled_but_not_yet_sent_when_its_batch_halts_is_never_sent(tmp_path):
    """The compiled path wrote the ORDER record but no connection was ready (or the transport is
    TLS / WS-API, where the send stays in Python); an earlier signal of the batch then HALTed:
    the order is answered NOT_SENT (its record closed, its quantity released), never sent."""
    from pipeline.gateway.binjournal import BinaryJournal
    from pipeline.gateway.orderpath_py import J_WRITTEN, W_NONE
    ex = make_ex(tmp_path)
    ex.journal = BinaryJournal(tmp_path / "journal.bin", fsync="never")
    ex.risk.state = 2                                   # HALTED by an earlier signal
    sent_to_transport: list[str] = []
    ex._send = lambda order, body: sent_to_transport.append(order.cid)
    order = our_order(ex, state=OrderState.NEW)
    ex.submit_sent(order, b"symbol=BTCUSDT", 0, (J_WRITTEN, W_NONE, 0, 0, None, None))
    assert sent_to_transport == []
    assert order.state is OrderState.REJECTED and "HALTED" in order.why
    assert ex.risk.released == [(SID, 1, 0.5)]
    ex.risk.state = 0                                   # ACTIVE: the same order would go out
    other = our_order(ex, cid="pl1.1.2", state=OrderState.NEW)
    ex.submit_sent(other, b"symbol=BTCUSDT", 0, (J_WRITTEN, W_NONE, 0, 0, None, None))
    assert sent_to_transport == ["pl1.1.2"]


def test_a_halt_during_a_batch_of_written_orders_cancels_again_after_booking_them(tmp_path):
    """Orders written on the socket while their batch was being signed are booked after the
    kill switch's cancel-all went out: the loop cancels again once they are booked."""
    from pipeline.gateway.orderpath_py import J_WRITTEN, W_SENT
    rest = FakeRest()
    rest.on("DELETE", "/api/v3/openOrders", ok([]), ok([]))
    ex = make_ex(tmp_path, rest)
    gw = _gateway(tmp_path, ex)
    gw.paths["kill"] = tmp_path / "KILL"
    gw._next = {"status": 0, "kill": 0, "audit": 0}
    gw.cfg.poll_ms, gw.cfg.warm_ms = 1, 0.0
    raws = [b"1", b"2"]

    class Intake:
        def wait(self, ms):
            return True

        def recv_raw(self):
            return raws.pop(0) if raws else None

    def sign(raw):
        gw.paths["kill"].touch()                 # the operator pulls the switch mid-batch
        gw._next["kill"] = 0
        return (raw, 0, 0, 0, b"body", None, 0, 0, 0, (J_WRITTEN, W_SENT, 10, 0, None, None))

    def housekeeping():
        gw.stop_requested = True

    gw.intake = Intake()
    gw.sign_signal, gw.finish_signal, gw._housekeeping = sign, (lambda one: None), housekeeping
    gw.write_status, gw.shutdown = (lambda *a: None), (lambda: 0)
    assert gw.run() == 0
    deletes = [c for c in rest.calls if c[:2] == ("DELETE", "/api/v3/openOrders")]
    assert len(deletes) == 2                     # the kill switch's, then the one after booking
    assert gw.trading == "HALTED"


def test_an_order_record_synced_by_the_order_path_leaves_an_earlier_record_due_for_sync(tmp_path):
    """fsync = always: a gap record written before the compiled path's (msync'ed) ORDER record is
    still due for the loop's sync; the ORDER record's own sync must not mark it done."""
    from pipeline.gateway.binjournal import BinaryJournal
    j = BinaryJournal(tmp_path / "journal.bin", fsync="always")
    j.commit()
    j.write("gap", strategy=1, epoch=1, seq=5, missing=2)
    j.note_order(True)
    assert j._dirty
    j.commit()
    assert not j._dirty
    j.note_order(True)                                   # nothing else pending: nothing due
    assert not j._dirty
    j.close()
