#!/usr/bin/env python3
"""Benchmark the tick bus against ZeroMQ ipc:// and multiprocessing.Pipe.

Writer and reader are separate processes pinned to different cores. The writer stamps
CLOCK_MONOTONIC (perf_counter_ns) into each 64-byte record as it publishes; the reader measures on
arrival. Runs: steady 50,000 and 10,000 records/s with a busy-spin reader, a batch throughput run,
and the two baselines at 50,000/s with the same 64-byte payload (blocking receive).

    python scripts/bench_bus.py [--quick] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import struct
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.bus import segments  # noqa: E402
from pipeline.bus import probe  # noqa: E402

PAYLOAD = struct.Struct("<q56x")      # a perf_counter_ns stamp padded to 64 bytes


def _cores() -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        return cpus[0], cpus[1]
    return None, None


# ----------------------------------------------------------------------------- baselines
def _paced_send(send, rate: int, seconds: float) -> int:
    perf = time.perf_counter_ns
    period = 1e9 / rate
    t0 = perf()
    end = t0 + int(seconds * 1e9)
    i = 0
    pack = PAYLOAD.pack
    while True:
        target = t0 + int(i * period)
        if target >= end:
            break
        while perf() < target:
            pass
        send(pack(perf()))
        i += 1
    return i


def _receive_latencies(recv) -> list[int]:
    """Receive stamped payloads until the empty end marker; arrival - stamp for each, ns."""
    lat = []
    perf = time.perf_counter_ns
    unpack = PAYLOAD.unpack
    while True:
        m = recv()
        t = perf()
        if not m:
            return lat
        lat.append(t - unpack(m)[0])


def _zmq_sender(endpoint, core, rate, seconds, ready):
    import zmq
    probe.pin(core)
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 1000)
    s.connect(endpoint)
    ready.wait(30)
    time.sleep(0.2)
    n = _paced_send(s.send, rate, seconds)
    s.send(b"")                      # end marker
    s.close()
    ctx.term()
    del n


def _zmq_receiver(endpoint, core, ready, results):
    import zmq
    probe.pin(core)
    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    s.setsockopt(zmq.LINGER, 0)
    s.bind(endpoint)
    ready.set()
    lat = _receive_latencies(s.recv)
    s.close()
    ctx.term()
    results.put(lat)


def _pipe_sender(conn, core, rate, seconds, ready):
    probe.pin(core)
    ready.wait(30)
    _paced_send(conn.send_bytes, rate, seconds)
    conn.send_bytes(b"")


def _pipe_receiver(conn, core, ready, results):
    probe.pin(core)
    ready.set()
    results.put(_receive_latencies(conn.recv_bytes))


def run_baseline(kind: str, rate: int, seconds: float, wcore, rcore) -> list[int]:
    ctx = mp.get_context("spawn")
    ready, results = ctx.Event(), ctx.Queue()
    if kind == "zmq":
        ep = f"ipc:///tmp/bench-bus-{uuid.uuid4().hex[:8]}"
        rx = ctx.Process(target=_zmq_receiver, args=(ep, rcore, ready, results))
        tx = ctx.Process(target=_zmq_sender, args=(ep, wcore, rate, seconds, ready))
    else:
        a, b = ctx.Pipe(duplex=False)
        rx = ctx.Process(target=_pipe_receiver, args=(a, rcore, ready, results))
        tx = ctx.Process(target=_pipe_sender, args=(b, wcore, rate, seconds, ready))
    rx.start()
    tx.start()
    lat = results.get(timeout=seconds + 60)
    tx.join(10)
    rx.join(10)
    return probe.percentiles(np.asarray(lat, dtype=np.int64))


# ----------------------------------------------------------------------------- ring runs
def run_ring_steady(rate: int, seconds: float, wcore, rcore) -> dict:
    name = f"bench-bus-{uuid.uuid4().hex[:8]}"
    out = probe.run(name, 1 << 16, [dict(name="spin", wait="busy_spin", core=rcore, measure=True)],
                    rate=rate, seconds=seconds, writer_core=wcore)
    r = out["readers"][0]
    return {"pcts": r["latency_ns"], "verify": r["verify"], "published": out["writer"]["published"]}


def run_ring_throughput(total: int, wcore, rcore) -> dict:
    name = f"bench-bus-{uuid.uuid4().hex[:8]}"
    out = probe.run(name, 1 << 16, [dict(name="spin", wait="busy_spin", core=rcore,
                                         max_batch=1 << 14)],
                    total=total, batch=4096, writer_core=wcore)
    r = out["readers"][0]
    return {"writer_rate": out["writer"]["rate"],
            "reader_rate": r["verify"]["received"] / r["seconds"],
            "delivered": r["verify"]["received"], "lost": r["verify"]["lost_reported"],
            "verify": r["verify"]}


def fmt_ns(x: float) -> str:
    return f"{x / 1000:,.2f} us" if x >= 1000 else f"{x:,.0f} ns"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs (CI smoke)")
    ap.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args()
    segments.reclaim(prefix="bench-bus-", why="left by a killed run")
    secs = 1.5 if args.quick else 5.0
    total = 5_000_000 if args.quick else 50_000_000
    wcore, rcore = _cores()

    print(f"tick bus benchmark: writer core {wcore}, reader core {rcore}, "
          f"{secs:g} s per steady run", flush=True)
    r50 = run_ring_steady(50_000, secs, wcore, rcore)
    r10 = run_ring_steady(10_000, secs, wcore, rcore)
    thr = run_ring_throughput(total, wcore, rcore)
    zmq50 = run_baseline("zmq", 50_000, secs, wcore, rcore)
    pipe50 = run_baseline("pipe", 50_000, secs, wcore, rcore)

    torn = sum(x["verify"]["violations"] for x in (r50, r10, thr))
    unreported = sum(x["verify"]["lost_unreported"] for x in (r50, r10, thr))
    rows = [("ring busy-spin 50k/s", r50["pcts"]), ("ring busy-spin 10k/s", r10["pcts"]),
            ("zmq PUSH/PULL ipc 50k/s", zmq50), ("multiprocessing.Pipe 50k/s", pipe50)]
    print(f"\n{'run':<28}" + "".join(f"{h:>12}" for h in ("p50", "p90", "p99", "p99.9", "max")))
    for name, p in rows:
        print(f"{name:<28}" + "".join(f"{fmt_ns(x):>12}" for x in p))
    print(f"\nbatch throughput: reader {thr['reader_rate'] / 1e6:,.1f} M records/s delivered "
          f"(writer {thr['writer_rate'] / 1e6:,.1f} M/s; {thr['delivered']:,} delivered, "
          f"{thr['lost']:,} lost and reported)")
    print(f"torn reads: {torn}   lost unreported: {unreported}")

    result = {
        "name": "bench_bus",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "results": {
            "ring_p50_ns": r50["pcts"][0], "ring_p99_ns": r50["pcts"][2],
            "ring_p999_ns": r50["pcts"][3], "ring_max_ns": r50["pcts"][4],
            "ring_10k_p50_ns": r10["pcts"][0], "ring_10k_p99_ns": r10["pcts"][2],
            "ring_throughput_per_s": thr["reader_rate"],
            "ring_writer_throughput_per_s": thr["writer_rate"],
            "torn_reads": torn, "lost_unreported": unreported,
        },
        "baselines": {
            "zmq_ipc_p50_ns": zmq50[0], "zmq_ipc_p99_ns": zmq50[2],
            "pipe_p50_ns": pipe50[0], "pipe_p99_ns": pipe50[2],
        },
        "ratios": {
            "zmq_over_ring_p50": zmq50[0] / max(r50["pcts"][0], 1),
            "pipe_over_ring_p50": pipe50[0] / max(r50["pcts"][0], 1),
        },
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0 if torn == 0 and unreported == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
