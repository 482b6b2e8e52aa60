#!/usr/bin/env python3
"""Benchmark OKX trade decode: `trades` push messages → tick records, on one core.

results.okx_decode_msgs_per_s      the Cython kernel (pipeline._ext.okxdecode), batches of frames
baselines.okx_msgspec_msgs_per_s   msgspec typed decode of the same messages + numpy store
baselines.okx_orjson_msgs_per_s    orjson + the cool-path field checks' numpy store
ratios.okx_decode_over_msgspec

Messages are the current OKX wire shape (with count/source/seqId), prices and sizes varying.

    flock /tmp/bench.lock .venv/bin/python scripts/bench_okx.py --quick --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import msgspec
import numpy as np
import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.records import TICK_DTYPE, Venue  # noqa: E402
from pipeline.venues import okx  # noqa: E402

SYMS = {"BTC-USDT": 1, "ETH-USDT": 2}
OKX_TEMPLATE = ('{"arg":{"channel":"trades","instId":"%s"},"data":[{"instId":"%s","tradeId":"%d",'
                '"px":"%s","sz":"%s","side":"%s","ts":"%d","count":"%d","source":"0","seqId":%d}]}')


class OkxTrade(msgspec.Struct):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str
    count: str = "1"
    source: str = "0"
    seqId: int = 0


class OkxArg(msgspec.Struct):
    channel: str
    instId: str


class OkxTrades(msgspec.Struct):
    arg: OkxArg
    data: list[OkxTrade]


def okx_messages(n: int) -> list[bytes]:
    rng = np.random.default_rng(11)
    px = 61837.6 + np.cumsum(rng.integers(-3, 4, n)) * 0.1
    sz = rng.integers(1, 50_000_000, n) / 1e8
    ts = 1723161255343
    out = []
    for i in range(n):
        inst = "BTC-USDT" if i % 3 else "ETH-USDT"
        out.append((OKX_TEMPLATE % (inst, inst, 130639474 + i, f"{px[i]:.1f}",
                                    f"{sz[i]:.8f}".rstrip("0").rstrip("."), "buy" if i & 1 else "sell",
                                    ts + i, 1 + (i % 3), 1234 + i)).encode())
    return out


def best_of(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_okx_decode(msgs: list[bytes], reps: int, batch: int = 512) -> dict:
    """The kernel over batches of `batch` messages vs msgspec / orjson + numpy store."""
    n = len(msgs)
    batches = [msgs[i:i + batch] for i in range(0, n, batch)]
    out = np.zeros(4 * batch, dtype=TICK_DTYPE)
    dec = okx.trade_decoder(SYMS, "cython")

    def ours():
        got = 0
        for b in batches:
            pos, _ = dec.decode(b, 1, out)
            got += pos
        assert got == n, (got, n)

    store = np.zeros(n, dtype=TICK_DTYPE)
    venue = int(Venue.OKX)
    mdec = msgspec.json.Decoder(OkxTrades)

    def with_msgspec():
        decode = mdec.decode
        for i, m in enumerate(msgs):
            msg = decode(m)
            sid = SYMS[msg.arg.instId]
            for d in msg.data:
                store[i] = (0, sid, venue, 2, 1, 1 if d.side == "buy" else -1,
                            int(d.ts) * 1_000_000, 1, 0, float(d.px), float(d.sz), int(d.tradeId))

    def with_orjson():
        loads = orjson.loads
        for i, m in enumerate(msgs):
            msg = loads(m)
            sid = SYMS[msg["arg"]["instId"]]
            for d in msg["data"]:
                store[i] = (0, sid, venue, 2, 1, 1 if d["side"] == "buy" else -1,
                            int(d["ts"]) * 1_000_000, 1, 0, float(d["px"]), float(d["sz"]),
                            int(d["tradeId"]))

    t_ours = best_of(ours, reps)
    t_ms = best_of(with_msgspec, max(1, reps // 2))
    # the kernel's records equal the baseline's (same run, same messages)
    check = np.zeros(n, dtype=TICK_DTYPE)
    pos, _ = okx.trade_decoder(SYMS).decode(msgs, 1, check)
    assert pos == n and check.tobytes() == store.tobytes(), "kernel and msgspec records differ"
    t_oj = best_of(with_orjson, max(1, reps // 2))
    return {"okx_decode_msgs_per_s": n / t_ours, "okx_msgspec_msgs_per_s": n / t_ms,
            "okx_orjson_msgs_per_s": n / t_oj, "okx_decode_errors": dec.errors}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer messages and repetitions")
    ap.add_argument("--messages", type=int, default=0, help="messages per run (default 200k, quick 50k)")
    ap.add_argument("--reps", type=int, default=0, help="repetitions, best kept (default 7, quick 3)")
    ap.add_argument("--json", metavar="PATH", help="write the result object to PATH")
    a = ap.parse_args(argv)
    n = a.messages or (50_000 if a.quick else 200_000)
    reps = a.reps or (3 if a.quick else 7)
    msgs = okx_messages(n)
    r = bench_okx_decode(msgs, reps)
    res = {
        "name": "bench_okx",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "results": {"okx_decode_msgs_per_s": r["okx_decode_msgs_per_s"]},
        "baselines": {"okx_msgspec_msgs_per_s": r["okx_msgspec_msgs_per_s"],
                      "okx_orjson_msgs_per_s": r["okx_orjson_msgs_per_s"]},
        "ratios": {"okx_decode_over_msgspec": r["okx_decode_msgs_per_s"] / r["okx_msgspec_msgs_per_s"]},
    }
    print(f"OKX trade decode, {n:,} messages, best of {reps} (one core)")
    print(f"  {'ours (Cython kernel)':32s} {r['okx_decode_msgs_per_s']:>14,.0f} msg/s")
    print(f"  {'msgspec typed + numpy store':32s} {r['okx_msgspec_msgs_per_s']:>14,.0f} msg/s")
    print(f"  {'orjson + numpy store':32s} {r['okx_orjson_msgs_per_s']:>14,.0f} msg/s")
    print(f"  ratio ours / msgspec: {res['ratios']['okx_decode_over_msgspec']:.1f}x"
          f"   (target >= 2,000,000 msg/s; decode errors {r['okx_decode_errors']})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
