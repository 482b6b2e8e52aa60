"""Fuzz harness: what the gateway does with a venue's answer. REST: `rest.reply_of` (status,
headers, body → Reply; the host gate learns the rate-limit headers and a 429/418's Retry-After);
WS-API: `ws_api.ws_reply`; then the order JSON of either goes to `Execution.apply_status` and a
user-data stream event to `Execution.on_event` (a real Execution with a real journal and the
compiled risk kernel; no network: nothing here sends).

Input: two bytes of status, header lines `name: value` up to a blank line, then the body.
Properties: nothing raises; every Reply has one Outcome; the gate's blocked-until is a finite
time; an order's filled quantity stays finite and non-negative.

    python -m fuzz.rest_reply fuzz/work/rest_reply fuzz/corpus/rest_reply -max_total_time=60
"""
from __future__ import annotations

import atexit
import logging
import math
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import orjson

from fuzz.runner import fuzz_main, instrumented

with instrumented():
    from pipeline.gateway.clocksync import ClockSync
    from pipeline.venues.binance.execution import BinanceExecution as Execution
    from pipeline.gateway.instruments import InstrumentRules
    from pipeline.gateway.journal import Journal
    from pipeline.gateway.orders import Order, OrderState
    from pipeline.gateway.ratelimit import HostGate
    from pipeline.gateway.rest import Outcome, reply_of
    from pipeline.gateway.risk import RiskEngine
    from pipeline.venues.binance.rest import classify
    from pipeline.venues.binance.ws_api import ws_reply
    from pipeline.records import Venue

_DIR = Path(tempfile.mkdtemp(prefix="fuzz-rest-"))
atexit.register(shutil.rmtree, _DIR, True)
SID = 1
RULES = InstrumentRules.build(
    symbol_id=SID, venue=int(Venue.BINANCE), name="BTCUSDT", tick="0.01", min_price="0.01",
    max_price="1000000", step="0.00001", min_qty="0.00001", max_qty="9000", min_notional="10",
    max_order_qty="1", max_position_qty="2", max_order_notional=60_000.0)
CFG = SimpleNamespace(unknown_poll_ms=50, unknown_poll_max_ms=400, unknown_max_polls=3,
                      connect_timeout_s=1.0, risk=SimpleNamespace(max_consecutive_rejects=5))
_JOURNAL = Journal(_DIR / "journal.jsonl", fsync="never")
OUTCOMES = set(Outcome)


def _engine():
    eng = RiskEngine(max_gross_notional=1e6, collar_bps=100.0, ref_stale_ns=2 * 10**9,
                     throttle_orders=100, throttle_window_ns=10**9, runaway_signals=1000,
                     runaway_window_ns=10**9)
    eng.set_instrument(RULES)
    return eng


def parse(data: bytes) -> tuple[int, dict, bytes]:
    status = 100 + int.from_bytes(data[:2], "little") % 500
    head, sep, body = data[2:].partition(b"\n\n")
    if not sep:
        head, body = b"", data[2:]
    headers = {}
    for line in head.split(b"\n"):
        k, colon, v = line.partition(b":")
        if colon:
            headers[k.strip().decode("latin-1")] = v.strip().decode("latin-1")
    return status, headers, body


def _execution() -> Execution:
    ex = Execution(cfg=CFG, journal=_JOURNAL, risk=_engine(), signer=None, rules={SID: RULES},
                   rest=None, clock=ClockSync(lambda: None), halt=lambda why: None)
    return ex


def _check_order(o: Order) -> None:
    if not (math.isfinite(o.filled) and o.filled >= 0):
        raise AssertionError(f"order filled became {o.filled!r}")


def one_input(data: bytes) -> None:
    status, headers, body = parse(data)
    gate = HostGate("api.fuzz", weight_limit_1m=6000, order_limit_10s=100)
    r = reply_of(status, headers, body, gate, lambda s: s, 0, 0, classify)
    if r.outcome not in OUTCOMES or not math.isfinite(gate.blocked_until):
        raise AssertionError(f"reply {r.outcome!r}, gate blocked until {gate.blocked_until!r}")
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = None
    replies = [r]
    if isinstance(obj, dict):
        ws = ws_reply(obj, gate, lambda s: s, 0, 0)
        if ws.outcome not in OUTCOMES or not math.isfinite(gate.blocked_until):
            raise AssertionError(f"ws reply {ws.outcome!r}, gate {gate.blocked_until!r}")
        replies.append(ws)
    ex = _execution()
    for i, rep in enumerate(replies):
        o = Order(cid=f"pl1.1.{i}", symbol="BTCUSDT", symbol_id=SID, side=1, order_type=1,
                  tif=1, qty=0.5, price=100.0, state=OrderState.NEW)
        ex.table.add(o)
        if isinstance(rep.data, dict):
            ex.apply_status(o, rep.data, "fuzz")
        _check_order(o)
    if isinstance(obj, dict):
        ex.on_event(obj)
    elif isinstance(obj, list):
        for ev in obj[:8]:
            if isinstance(ev, dict):
                ex.on_event(ev)
    for o in list(ex.table.by_cid.values()):
        _check_order(o)


def main(argv: list[str]) -> None:
    logging.disable(logging.CRITICAL)      # order and event lines would flood the fuzzer's output
    fuzz_main(one_input, argv)


if __name__ == "__main__":
    main(sys.argv)
