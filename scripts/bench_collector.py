#!/usr/bin/env python3
"""Benchmark the collector's hot path.

(a) decode: Binance combined-stream trade messages (already framed) → tick records, one core.
    Baselines in the same run: orjson + numpy store, msgspec typed decode + numpy store.
(b) socket: frames per second into the tick ring from a real loopback WebSocket (a pre-framed
    stream served by another process), read in batches by WsConnection + the frame decoder.
    Baseline in the same run: a websocket-client recv() loop over the same stream.
(c) OKX trade decode: `trades` push messages → tick records with the OKX kernel
    (pipeline._ext.okxdecode), batches of 512 messages, one core. Baselines in the same run:
    msgspec typed decode + numpy store, orjson + numpy store; records cross-checked.

    flock /tmp/bench.lock .venv/bin/python scripts/bench_collector.py --quick --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid

import msgspec
import numpy as np
import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.bus import segments  # noqa: E402
from pipeline._ext import wsdecode as C  # noqa: E402
from pipeline.collector.connection import ConnectionClosed, WsConnection  # noqa: E402
from pipeline.collector.loopback import start_server  # noqa: E402
from pipeline.venues.binance.wsdecode_py import ws_frame  # noqa: E402
from pipeline.records import TICK_DTYPE, Venue  # noqa: E402
from pipeline.venues.okx import market as okx  # noqa: E402

SYMS = {b"BTCUSDT": 1, b"ETHUSDT": 2}
TEMPLATE = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,'
            '"p":"%s","q":"%s","T":%d,"m":%s,"M":true}}')


class Trade(msgspec.Struct):
    e: str
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool
    M: bool


class Combined(msgspec.Struct):
    stream: str
    data: Trade


def messages(n: int) -> list[bytes]:
    """Realistic trades (shape of the 2024 recording), ids increasing, prices varying."""
    rng = np.random.default_rng(7)
    px = 61837.63 + np.cumsum(rng.integers(-3, 4, n)) * 0.01
    qty = rng.integers(1, 500000, n) / 1e5
    E = 1723161255343
    return [(TEMPLATE % (E + i, 3735683259 + i, f"{px[i]:.8f}", f"{qty[i]:.8f}", E + i - 1,
                         "true" if i & 1 else "false")).encode() for i in range(n)]


def best_of(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


# ----------------------------------------------------------------------------- (a) decode
def bench_decode(msgs: list[bytes], reps: int) -> dict:
    n = len(msgs)
    blob = b"".join(ws_frame(m) for m in msgs)
    out = np.zeros(8192, dtype=TICK_DTYPE)
    chunk = 1 << 16

    def ours():
        st = C.SymbolState(SYMS, int(Venue.BINANCE))
        dec = C.WsDecoder(st, 1 << 20, True, False, chunk)
        got = 0
        for i in range(0, len(blob), chunk):
            dec.feed(blob[i:i + chunk], 1)
            while True:
                got += dec.decode(out)
                if dec.event == 0:
                    break
        assert got == n, (got, n)

    store = np.zeros(n, dtype=TICK_DTYPE)

    def with_orjson():
        loads = orjson.loads
        for i, m in enumerate(msgs):
            d = loads(m)["data"]
            store[i] = (0, SYMS[d["s"].encode()], 2, 2, 1, -1 if d["m"] else 1, d["E"] * 1_000_000,
                        1, 0, float(d["p"]), float(d["q"]), d["t"])

    mdec = msgspec.json.Decoder(Combined)

    def with_msgspec():
        decode = mdec.decode
        for i, m in enumerate(msgs):
            d = decode(m).data
            store[i] = (0, SYMS[d.s.encode()], 2, 2, 1, -1 if d.m else 1, d.E * 1_000_000, 1, 0,
                        float(d.p), float(d.q), d.t)

    t_ours = best_of(ours, reps)
    t_orjson = best_of(with_orjson, max(1, reps // 2))
    t_msgspec = best_of(with_msgspec, max(1, reps // 2))
    return {"decode_msgs_per_s": n / t_ours, "orjson_msgs_per_s": n / t_orjson,
            "msgspec_msgs_per_s": n / t_msgspec}


# ----------------------------------------------------------------------------- (c) OKX decode
OKX_SYMS = {"BTC-USDT": 1, "ETH-USDT": 2}
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
                                    f"{sz[i]:.8f}".rstrip("0").rstrip("."),
                                    "buy" if i & 1 else "sell",
                                    ts + i, 1 + (i % 3), 1234 + i)).encode())
    return out


def bench_okx_decode(msgs: list[bytes], reps: int, batch: int = 512) -> dict:
    """The kernel over batches of `batch` messages vs msgspec / orjson + numpy store."""
    n = len(msgs)
    batches = [msgs[i:i + batch] for i in range(0, n, batch)]
    out = np.zeros(4 * batch, dtype=TICK_DTYPE)
    dec = okx.trade_decoder(OKX_SYMS, "cython")

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
            sid = OKX_SYMS[msg.arg.instId]
            for d in msg.data:
                store[i] = (0, sid, venue, 2, 1, 1 if d.side == "buy" else -1,
                            int(d.ts) * 1_000_000, 1, 0, float(d.px), float(d.sz), int(d.tradeId))

    def with_orjson():
        loads = orjson.loads
        for i, m in enumerate(msgs):
            msg = loads(m)
            sid = OKX_SYMS[msg["arg"]["instId"]]
            for d in msg["data"]:
                store[i] = (0, sid, venue, 2, 1, 1 if d["side"] == "buy" else -1,
                            int(d["ts"]) * 1_000_000, 1, 0, float(d["px"]), float(d["sz"]),
                            int(d["tradeId"]))

    t_ours = best_of(ours, reps)
    t_ms = best_of(with_msgspec, max(1, reps // 2))
    # the kernel's records equal the baseline's (same run, same messages)
    check = np.zeros(n, dtype=TICK_DTYPE)
    pos, _ = okx.trade_decoder(OKX_SYMS).decode(msgs, 1, check)
    assert pos == n and check.tobytes() == store.tobytes(), "kernel and msgspec records differ"
    t_oj = best_of(with_orjson, max(1, reps // 2))
    return {"okx_decode_msgs_per_s": n / t_ours, "okx_msgspec_msgs_per_s": n / t_ms,
            "okx_orjson_msgs_per_s": n / t_oj, "okx_decode_errors": dec.errors}



# ----------------------------------------------------------------------------- (b) socket
def bench_socket(msgs: list[bytes], repeat: int = 1) -> dict:
    from pipeline.bus.ring import TickRing
    import websocket
    frames = [ws_frame(m) for m in msgs]
    blob = b"".join(frames)
    total = len(msgs) * repeat
    name = f"bench-collector-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    res = {}
    ring = TickRing.create(name, 1 << 20)
    try:
        w = ring.writer()
        proc, port = start_server(blob, repeat=repeat, max_conns=1)
        st = C.SymbolState(SYMS, int(Venue.BINANCE))
        dec = C.WsDecoder(st, 1 << 20, True, False, 1 << 18)
        conn = WsConnection(f"ws://127.0.0.1:{port}/stream", dec, read_size=1 << 18, max_reads=8)
        conn.open()
        out = np.zeros(16384, dtype=TICK_DTYPE)
        got = 0
        t0 = time.perf_counter()
        while got < total:
            if not conn.readable(1.0):
                break
            try:
                conn.read()
            except ConnectionClosed:
                pass
            while True:
                n = dec.decode(out)
                if n:
                    w.publish_array(out[:n])
                    got += n
                if dec.event in (0, 5):
                    break
        dt = time.perf_counter() - t0
        conn.close()
        proc.join(5)
        assert got == total, (got, total)
        assert ring.cursor == total
        res["frames_to_ring_per_s"] = total / dt
        # baseline: websocket-client recv() over the same stream
        proc, port = start_server(blob, repeat=repeat, max_conns=1)
        ws = websocket.WebSocket(skip_utf8_validation=True)
        ws.connect(f"ws://127.0.0.1:{port}/stream", suppress_origin=True)
        got = 0
        t0 = time.perf_counter()
        while got < total:
            ws.recv()
            got += 1
        dt = time.perf_counter() - t0
        ws.close()
        proc.join(5)
        res["ws_client_recv_per_s"] = total / dt
    finally:
        ring.close()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a few seconds)")
    ap.add_argument("--json", metavar="PATH", help="write the results as one JSON object")
    args = ap.parse_args(argv)
    segments.reclaim(prefix="bench-collector-", why="left by a killed run")
    n = 100_000 if args.quick else 500_000
    reps = 3 if args.quick else 7
    msgs = messages(max(n, 1_000_000 if not args.quick else 300_000))
    dec = bench_decode(msgs[:n], reps)
    okd = bench_okx_decode(okx_messages(n), reps)
    sock = bench_socket(msgs)
    result = {
        "name": "collector",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "results": {"decode_msgs_per_s": dec["decode_msgs_per_s"],
                    "frames_to_ring_per_s": sock["frames_to_ring_per_s"],
                    "okx_decode_msgs_per_s": okd["okx_decode_msgs_per_s"]},
        "baselines": {"msgspec_msgs_per_s": dec["msgspec_msgs_per_s"],
                      "orjson_msgs_per_s": dec["orjson_msgs_per_s"],
                      "ws_client_recv_per_s": sock["ws_client_recv_per_s"],
                      "okx_msgspec_msgs_per_s": okd["okx_msgspec_msgs_per_s"],
                      "okx_orjson_msgs_per_s": okd["okx_orjson_msgs_per_s"]},
    }
    result["ratios"] = {
        "decode_over_msgspec": dec["decode_msgs_per_s"] / dec["msgspec_msgs_per_s"],
        "decode_over_orjson": dec["decode_msgs_per_s"] / dec["orjson_msgs_per_s"],
        "frames_over_ws_client": sock["frames_to_ring_per_s"] / sock["ws_client_recv_per_s"],
        "okx_decode_over_msgspec": okd["okx_decode_msgs_per_s"] / okd["okx_msgspec_msgs_per_s"],
    }
    rows = [("decode (Cython) msgs/s", result["results"]["decode_msgs_per_s"]),
            ("  baseline msgspec typed + numpy", dec["msgspec_msgs_per_s"]),
            ("  baseline orjson + numpy", dec["orjson_msgs_per_s"]),
            ("frames -> ring (loopback WS) /s", result["results"]["frames_to_ring_per_s"]),
            ("  baseline websocket-client recv() /s", sock["ws_client_recv_per_s"]),
            ("OKX trade decode (Cython) msgs/s", okd["okx_decode_msgs_per_s"]),
            ("  baseline msgspec typed + numpy", okd["okx_msgspec_msgs_per_s"]),
            ("  baseline orjson + numpy", okd["okx_orjson_msgs_per_s"])]
    sys.stdout.write(f"collector benchmark (python {result['python']}, "
                     f"{result['cpu_count']} cpus)\n")
    for k, v in rows:
        sys.stdout.write(f"  {k:<40} {v:>14,.0f}\n")
    for k, v in result["ratios"].items():
        sys.stdout.write(f"  {k:<40} {v:>14.2f}x\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
