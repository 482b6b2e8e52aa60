"""Fuzz harness: the OKX `trades` frame decoder, compiled (pipeline._ext.okxdecode) and its
pure-Python twin (pipeline.venues.okx.okxdecode_py), plus the cool path every other frame takes
(orjson → okx.classify → okx.route_data / okx.parse_event).

Input: text frames separated by newlines. Properties: both decoders give the same status per
frame, the same records (bit for bit), counters and errors, for any output capacity; the cool path
raises nothing but okx.BadMessage (which names what was wrong) and gives finite prices.

    python -m fuzz.ws_okx fuzz/work/ws_okx fuzz/corpus/ws_okx -max_total_time=60
"""
from __future__ import annotations

import sys

import numpy as np
import orjson

from fuzz.runner import fuzz_main, instrumented

with instrumented():
    from pipeline.records import TICK_DTYPE
    from pipeline.venues.okx import market as okx

SYMS = {"BTC-USDT": 1, "ETH-USDT": 2, "BTC-USDT-SWAP": 3}


def _run(dec, frames, cap):
    out = np.zeros(cap, dtype=TICK_DTYPE)
    status = np.full(len(frames), -1, dtype=np.int8)
    pos, used = dec.decode(frames, 5, out, 0, status)
    return out[:pos].tobytes(), used, status.tobytes(), dec.counts, dec.errors, dec.records


def one_input(data: bytes) -> None:
    cap = (data[0] % 17) * 2 if data else 0            # odd capacities: a full output mid-frame
    frames = data[1:].split(b"\n")
    c = _run(okx.trade_decoder(SYMS, "cython"), frames, cap)
    p = _run(okx.trade_decoder(SYMS, "python"), frames, cap)
    if c != p:
        raise AssertionError(f"compiled {c[1:]} != twin {p[1:]} (or records differ)")
    for f in frames:
        try:
            obj = orjson.loads(f)
        except orjson.JSONDecodeError:
            continue
        t = okx.classify(obj)
        try:
            if t is okx.MsgType.DATA:
                out = okx.route_data(obj, SYMS, 0)
                if isinstance(out, np.ndarray) and not np.isfinite(out["price"]).all():
                    raise AssertionError(f"non-finite price from {f[:200]!r}")
            else:
                okx.parse_event(obj)
        except okx.BadMessage as exc:
            if not exc.args or not exc.args[0]:
                raise AssertionError(f"BadMessage without a reason for {f[:200]!r}") from exc


def main(argv: list[str]) -> None:
    fuzz_main(one_input, argv)


if __name__ == "__main__":
    main(sys.argv)
