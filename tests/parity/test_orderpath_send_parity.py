"""The order path's one call from a signal to the socket (OrderPath.send: risk, encode + sign, the
write-ahead ORDER record, the request on a held connection) in the kernel (ext/orderpath.pyx with
ext/journal.pyx and ext/wirefmt.pyx) and in its pure-Python twin (orderpath_py with journal_py and
wirefmt_py), on random scenarios (hypothesis): the same decisions, bodies and states, the same
journal bytes (but for the wall/monotonic stamps and the crc over them) and the same request bytes
on the socket; and the edges: a journal with no room and a connection the venue closed send nothing."""
from __future__ import annotations

import socket

from hypothesis import given

from pipeline import _native
from pipeline.gateway import binjournal, journal_py, orderpath_py, risk_py, sign_py, wirefmt_py
from pipeline.gateway.orderpath import (J_FULL, J_NO_NAME, J_WRITTEN, W_CLOSED, W_NONE, W_SENT,
                                        OrderPath)
from pipeline.gateway.risk import RiskEngine
from pipeline.gateway.signing import BinanceSigner
from pipeline.records import JOURNAL_RECORD_SIZE as REC
from tests.parity.test_gateway_parity import SETTINGS, _engines, limits, scenario

Kernel = binjournal.kernel_writer()
HEADERS = [(b"X-MBX-APIKEY", b"k"), (b"Content-Type", b"application/x-www-form-urlencoded")]
ARGS = (b"POST", b"/api/v3/order", b"127.0.0.1:9", HEADERS)


def _masked(buf: bytes) -> list[bytes]:
    """Every used slot with its t, m and crc zeroed (they hold clocks)."""
    out = []
    for i in range(len(buf) // REC - 1):
        rec = bytearray(buf[REC * (1 + i):REC * (2 + i)])
        if not any(rec):
            break
        rec[8:24] = bytes(16)
        rec[32:36] = bytes(4)
        out.append(bytes(rec))
    return out


def _crc_ok(buf: bytes) -> bool:
    stats: dict[str, int] = {}
    list(binjournal.scan(buf, len(buf) // REC - 1, stats))
    return not stats.get("torn")


def _recv_all(s: socket.socket) -> bytes:
    s.setblocking(False)
    out = b""
    while True:
        try:
            got = s.recv(65536)
        except BlockingIOError:
            return out
        if not got:
            return out
        out += got


def _run(kernel: bool, lim, rules, refs, ops, slots=64):
    e, s = _engines(RiskEngine if kernel else risk_py.RiskEngine,
                    BinanceSigner if kernel else sign_py.BinanceSigner, lim, rules, refs)
    p = (OrderPath if kernel else orderpath_py.OrderPath)(e, s)
    for r in rules:
        p.set_name(r.symbol_id, r.name.encode())
    buf = bytearray(REC * (1 + slots))
    jw = (Kernel if kernel else journal_py.JournalWriter)(buf, 0, 1)
    rw = (_native.load("wirefmt").RequestWriter if kernel else wirefmt_py.RequestWriter)(*ARGS)
    a, b = socket.socketpair()
    trace = []
    try:
        for op in ops:
            if op[0] == "sig":
                body = p.send(op[1], op[2], 1_700_000_000_000 + op[2] // 10**6, jw, rw,
                              a.fileno(), False, 1)
                trace.append((p.last_reason, p.last_gap, body, p.journal_state, p.wire_state,
                              p.sent, _recv_all(b)))
            elif op[0] == "ref":
                e.set_reference(op[1], op[2], op[3])
            elif op[0] == "fill":
                e.apply_fill(op[1], op[2], op[3])
            elif op[0] == "release":
                e.release_open(op[1], op[2], op[3])
            elif op[0] == "pos":
                e.set_position(op[1], op[2])
            elif op[0] == "gate":
                e.set_venue_gate(*op[1:])
            elif op[0] == "tickage":
                e.set_max_tick_age(op[1], op[2])
            elif op[0] == "own":
                e.set_own_quotes(op[1], op[2], op[3])
            else:
                e.set_state(op[1])
            trace.append(e.snapshot())
    finally:
        a.close()
        b.close()
        jw.detach()
    assert _crc_ok(bytes(buf))
    return trace, s.signed_count, _masked(bytes(buf)), jw.next_slot, jw.next_seq


@SETTINGS
@given(lim=limits, data=__import__("hypothesis").strategies.data())
def test_send_kernel_and_twin_agree_on_decisions_journal_and_request_bytes(lim, data):
    rules, refs, ops = data.draw(scenario(lim["collar_bps"]))
    a = _run(True, lim, rules, refs, ops)
    b = _run(False, lim, rules, refs, ops)
    assert a == b
    for step in a[0]:
        if isinstance(step, tuple) and len(step) == 7 and isinstance(step[1], int):  # a send
            reason, _gap, body, js, ws, sent, wire = step
            if reason:
                assert body is None and js == 0 and ws == W_NONE and wire == b""
            else:
                assert js == J_WRITTEN and ws == W_SENT and wire.endswith(body)
                assert sent == len(wire)


def _one_order(kernel: bool):
    from tests.gateway_helpers import BINANCE
    from pipeline.gateway.instruments import InstrumentRules
    from pipeline.gateway.risk import make_signal
    rules = InstrumentRules.build(symbol_id=1, venue=BINANCE, name="BTCUSDT", tick="0.01",
                                  step="0.001", min_price="0.01", max_price="0", min_qty="0.001",
                                  max_qty="0", min_notional="0", max_notional="0",
                                  notional_applies_to_market=False,
                                  max_notional_applies_to_market=False, max_order_qty="10",
                                  max_position_qty="100", max_order_notional=1e9)
    lim = dict(max_gross_notional=1e12, collar_bps=500.0, ref_stale_ns=10**11,
               throttle_orders=100, throttle_window_ns=10**9, runaway_signals=1000,
               runaway_window_ns=10**9, state=0)
    e, s = _engines(RiskEngine if kernel else risk_py.RiskEngine,
                    BinanceSigner if kernel else sign_py.BinanceSigner, lim, [rules],
                    [(1, 100.0)])
    p = (OrderPath if kernel else orderpath_py.OrderPath)(e, s)

    def sig(seq):
        return make_signal(epoch=1, seq=seq, symbol=1, venue=BINANCE, side=1, order_type=1,
                           tif=1, qty=0.01, price=100.0, created_mono=10**12, ttl_ns=10**10,
                           strategy_id=1, version=1)
    return p, sig


def test_send_with_no_journal_room_or_a_closed_connection_sends_nothing():
    for kernel in (True, False):
        p, sig = _one_order(kernel)
        rw = (_native.load("wirefmt").RequestWriter if kernel else wirefmt_py.RequestWriter)(*ARGS)
        buf = bytearray(REC * 2)                          # the header and one slot
        jw = (Kernel if kernel else journal_py.JournalWriter)(buf, 0, 1)
        a, b = socket.socketpair()
        try:
            now = 10**12 + 1000
            # no name for the symbol: nothing journalled, nothing sent
            assert p.send(sig(1), now, 1_700_000_000_000, jw, rw, a.fileno(), False, 1)
            assert (p.journal_state, p.wire_state, jw.next_slot) == (J_NO_NAME, W_NONE, 0)
            p.set_name(1, b"BTCUSDT")
            assert p.send(sig(2), now, 1_700_000_000_000, jw, rw, a.fileno(), False, 1)
            assert (p.journal_state, p.wire_state) == (J_WRITTEN, W_SENT)
            assert _recv_all(b).startswith(b"POST /api/v3/order HTTP/1.1\r\n")
            assert p.send(sig(3), now, 1_700_000_000_000, jw, rw, a.fileno(), False, 1)
            assert (p.journal_state, p.wire_state) == (J_FULL, W_NONE)    # no room: not sent
            assert _recv_all(b) == b""
            big = bytearray(REC * 8)
            jw2 = (Kernel if kernel else journal_py.JournalWriter)(big, 0, 1)
            b.close()                                   # the venue closed the held connection
            assert p.send(sig(4), now, 1_700_000_000_000, jw2, rw, a.fileno(), False, 1)
            assert (p.journal_state, p.wire_state, p.sent) == (J_WRITTEN, W_CLOSED, 0)
            jw2.detach()
        finally:
            a.close()
            b.close()
            jw.detach()
