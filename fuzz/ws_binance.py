"""Fuzz harness: the Binance WebSocket frame decoder, compiled (pipeline._ext.wsdecode) and its
pure-Python twin (pipeline.venues.binance.wsdecode_py), plus the cool-path router (venues.binance).

Input: the bytes a venue's socket delivers (server frames, unmasked), cut into reads at points the
input's first bytes choose. Properties: nothing raises; both decoders give the same records,
events, counters, books and pending bytes; every payload that parses as JSON routes to exactly one
of records / depth diff / control / error.

    python -m fuzz.ws_binance fuzz/work/ws_binance fuzz/corpus/ws_binance -max_total_time=60
"""
from __future__ import annotations

import sys

import numpy as np
import orjson

from fuzz.runner import fuzz_main, instrumented

with instrumented():
    from pipeline._ext import wsdecode as C
    from pipeline.venues.binance import wsdecode_py as P
    from pipeline.records import TICK_DTYPE, Venue
    from pipeline.venues.binance import market as B

SYMS = {b"BTCUSDT": 1, b"ETHUSDT": 2}
MAX_MESSAGE = 4096


def _drive(mod, chunks):
    s = mod.SymbolState(SYMS, int(Venue.BINANCE))
    s.load_book(1, 100, [(10.0, 1.0), (9.5, 2.0)], [(11.0, 1.0), (11.5, 3.0)])
    dec = mod.WsDecoder(s, MAX_MESSAGE, True, True)
    out = np.zeros(8, dtype=TICK_DTYPE)
    log, payloads = [], []
    for ts, data in enumerate(chunks):
        dec.feed(data, 1_000 + ts)
        for _ in range(10_000):
            n = dec.decode(out)
            log.append(out[:n].tobytes())
            ev = dec.event
            if ev == P.EV_NONE:
                break
            err = dec.error if ev in (P.EV_BAD, P.EV_PROTOCOL) else ""
            log.append((ev, dec.reason if ev == P.EV_MESSAGE else 0, dec.message, err))
            if ev == P.EV_MESSAGE:
                payloads.append(bytes(dec.message))
            if ev == P.EV_PROTOCOL:
                break
        else:
            raise AssertionError("decoder made no progress in 10000 decode() calls")
    return (log, dec.counters(), dec.take_recording(), s.top(1, 100), s.depth_last(1),
            s.depth_synced(1), [s.last_id(k, 1) for k in range(3)], dec.pending()), payloads


def split(data: bytes) -> list[bytes]:
    """The first byte says how many cut points follow (as 2-byte offsets)."""
    if not data:
        return [b""]
    k = min(data[0] % 8, (len(data) - 1) // 2)
    cuts = sorted({int.from_bytes(data[1 + 2 * i:3 + 2 * i], "little") for i in range(k)})
    body = data[1 + 2 * k:]
    out, prev = [], 0
    for c in cuts:
        c = min(c, len(body))
        out.append(body[prev:c])
        prev = c
    out.append(body[prev:])
    return out


def one_input(data: bytes) -> None:
    chunks = split(data)
    a, payloads = _drive(C, chunks)
    b, _ = _drive(P, chunks)
    if a[1] != b[1]:
        raise AssertionError(f"counters differ: compiled {a[1]} twin {b[1]}")
    if a[0] != b[0]:
        raise AssertionError("records/events differ between the compiled decoder and its twin")
    if a[2:] != b[2:]:
        raise AssertionError(f"state differs: compiled {a[2:]} twin {b[2:]}")
    for raw in payloads + [body for body in chunks if body[:1] == b"{"]:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        r = B.route(obj, SYMS, 1)
        got = [r.records is not None, r.depth is not None, r.control is not None,
               r.error is not None]
        if sum(got) != 1:
            raise AssertionError(f"route gave {got} for {raw[:200]!r}")
        if r.records is not None and not np.isfinite(r.records["price"]).all():
            raise AssertionError(f"non-finite price routed from {raw[:200]!r}")


def main(argv: list[str]) -> None:
    fuzz_main(one_input, argv)


if __name__ == "__main__":
    main(sys.argv)
