"""Fuzz harness: the pre-trade risk kernel (pipeline._ext.risk) and its pure-Python twin
(pipeline.gateway.risk_py), fed random signal bytes interleaved with the gateway's updates.

Input: a sequence of operations, each one opcode byte then its argument bytes:
  0-3  a raw 80-byte signal record (whatever the bytes are: torn, wrong version, NaN, ...)
  4-7  a nearly valid signal: each field picked from a table of good and bad values by one byte
  8    set_reference(symbol, price)    9  apply_fill    10 release_open    11 set_state
  12+  advance the monotonic clock
Properties: nothing raises from check(); every answer is one Reason; the kernel and the twin give
the same answer and the same state (snapshot) after every operation; an update either works on
both or raises ValueError on both.

    python -m fuzz.risk_kernel fuzz/work/risk_kernel fuzz/corpus/risk_kernel -max_total_time=60
"""
from __future__ import annotations

import math
import struct
import sys

from fuzz.runner import fuzz_main, instrumented

with instrumented():
    from pipeline.gateway import risk_py
    from pipeline.gateway.instruments import InstrumentRules
    from pipeline.gateway.reasons import Reason
    from pipeline.gateway.risk import RiskEngine
    from pipeline.records import SIGNAL_STRUCT, SIGNAL_VERSION, Venue

REASONS = {int(r) for r in Reason}
BINANCE = int(Venue.BINANCE)
LIMITS = dict(max_gross_notional=1e6, collar_bps=100.0, ref_stale_ns=2 * 10**9,
              throttle_orders=5, throttle_window_ns=10**9, runaway_signals=20,
              runaway_window_ns=10**9)
RULES = [
    InstrumentRules.build(symbol_id=1, venue=BINANCE, name="BTCUSDT", tick="0.01",
                          min_price="0.01", max_price="1000000", step="0.00001",
                          min_qty="0.00001", max_qty="9000", min_notional="10",
                          max_order_qty="1", max_position_qty="2", max_order_notional=60_000.0),
    InstrumentRules.build(symbol_id=2, venue=BINANCE, name="TOYUSDT", tick="0.05",
                          min_price="10", max_price="100", step="0.5", min_qty="1", max_qty="5",
                          min_notional="20", max_notional="400", max_order_qty="4.5",
                          max_position_qty="100", max_order_notional=270.0),
]
T0 = 10**12
F = [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, 1e300, 5e-324, 1e-9, 1e13, 0.01, 0.5,
     1.0, 2.0, 4.5, 50_000.0, 50_000.01, 49_500.0, 50_500.0, 20.0, 20.05, 99.95, 10.0]
I = [0, 1, 2, 3, -1, 2**31, 2**40, 2**40 - 1, 2**63 - 1, -(2**63), 7]


def _pick(table, b: int):
    return table[b % len(table)]


def _signal(a: bytes, now: int, seq: int) -> bytes:
    a = a.ljust(12, b"\0")
    epoch = _pick([1_700_000_000_000_000_000, 1, 0, -5, 2**62], a[0])
    s = _pick([seq, seq, seq, 1, 0, -1, 2**40, seq - 1], a[1])
    created = _pick([now - 10, now, now + 1, 0, -1, now - 3 * 10**9, 1], a[2])
    ttl = _pick([10**9, 1, 0, -1, 2**62, 10], a[3])
    qty, price = _pick(F, a[4]), _pick(F, a[5])
    strategy = _pick([1, 2, 0, 2**16, 2**16 - 1, 2**32 - 1], a[6])
    symbol = _pick([1, 2, 3, 0, 2**32 - 1], a[7])
    venue = _pick([BINANCE, BINANCE, 0, 1, 255], a[8])
    side = _pick([1, -1, 0, 2, -128, 127], a[9])
    otype = _pick([1, 2, 3, 0, 4, 255], a[10])
    tif = _pick([1, 2, 3, 0, 4, 255], a[11])
    trig_mono = _pick([0, now - 1000, now - 5 * 10**9, now + 5], a[0] >> 4)
    return SIGNAL_STRUCT.pack(epoch, s, a[1], trig_mono, created, ttl, qty, price, strategy,
                              symbol, venue, side, otype, tif,
                              SIGNAL_VERSION if a[2] & 0x80 == 0 else a[3],
                              _pick([0, 0, 0, 1, 2, 255], a[11] >> 4),      # action
                              _pick([0, 0, 1, 65535], a[10] >> 4))          # replace_back


def _both(engines, name, *args):
    out = []
    for e in engines:
        try:
            out.append(("ok", getattr(e, name)(*args)))
        except (ValueError, TypeError, OverflowError) as exc:
            out.append(("raised", type(exc).__name__))
    if out[0] != out[1]:
        raise AssertionError(f"{name}{args}: kernel {out[0]} twin {out[1]}")


def one_input(data: bytes) -> None:
    engines = [RiskEngine(**LIMITS), risk_py.RiskEngine(**LIMITS)]
    for e in engines:
        for r in RULES:
            e.set_instrument(r)
            e.set_reference(r.symbol_id, 50_000.0 if r.symbol_id == 1 else 20.0, T0)
    now, seq, i = T0 + 1000, 1, 0
    while i < len(data) and i < 4096:
        op = data[i]
        i += 1
        if op < 8:
            if op < 4:
                msg = data[i:i + 80].ljust(80, b"\0") if op & 1 else data[i:i + 80]
                i += 80
            else:
                msg = _signal(data[i:i + 12], now, seq)
                i += 12
                seq += 1
            a, b = (e.check(msg, now) for e in engines)
            if a not in REASONS or b not in REASONS:
                raise AssertionError(f"answer outside Reason: kernel {a!r} twin {b!r}")
            if a != b:
                raise AssertionError(f"kernel {Reason(a).name} != twin {Reason(b).name} "
                                     f"for {msg.hex()} at {now}")
        elif op in (8, 9, 10):
            arg = data[i:i + 3].ljust(3, b"\0")
            i += 3
            sid = _pick([1, 2, 3], arg[0])
            if op == 8:
                _both(engines, "set_reference", sid, _pick(F, arg[1]), now - arg[2] * 10**7)
            else:
                _both(engines, "apply_fill" if op == 9 else "release_open", sid,
                      _pick([1, -1, 0], arg[1]), _pick(F, arg[2]))
        elif op == 11:
            st = data[i] % 4 if i < len(data) else 0
            i += 1
            _both(engines, "set_state", st)
        else:
            now += _pick([1, 1000, 10**6, 10**8, 2 * 10**9, 0], op)
        if engines[0].snapshot() != engines[1].snapshot():
            raise AssertionError(f"state differs after op {op}: {engines[0].snapshot()} vs "
                                 f"{engines[1].snapshot()}")


def main(argv: list[str]) -> None:
    fuzz_main(one_input, argv)


if __name__ == "__main__":
    main(sys.argv)
