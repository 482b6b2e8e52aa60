#!/usr/bin/env python3
"""Tick-bus demo: one writer process and two reader processes on pinned cores.

The writer publishes derived records at a steady rate into a shared-memory ring; each reader
verifies every record and measures arrival latency. Prints throughput, latency percentiles and
lost/torn counts per reader. Settings come from the [ring] and [bus_demo] sections of a config
(defaults without one); flags override them.

    python scripts/bus_demo.py [--config configs/demo.toml] [--seconds 10] [--rate 50000]
"""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline import config as cfgmod  # noqa: E402
from pipeline.bus import probe  # noqa: E402
from pipeline.bus.ring import WAIT_COSTS  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="TOML config ([ring], [bus_demo] sections)")
    ap.add_argument("--seconds", type=float, help="how long the writer publishes")
    ap.add_argument("--rate", type=int, help="records per second (0 = as fast as possible)")
    args = ap.parse_args()
    try:
        cfg = cfgmod.load(args.config) if args.config else cfgmod.PipelineConfig()
    except cfgmod.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    demo = cfg.bus_demo
    seconds = args.seconds if args.seconds is not None else demo.seconds
    rate = args.rate if args.rate is not None else demo.rate
    ncpu = len(os.sched_getaffinity(0))
    cores = [c if c < os.cpu_count() else None for c in demo.reader_cores]
    wcore = demo.writer_core if demo.writer_core < os.cpu_count() else None
    readers = [dict(name=f"reader-{i + 1} ({w})", wait=w, core=c, measure=True)
               for i, (w, c) in enumerate(zip(demo.reader_waits, cores))]
    name = f"{cfg.ring.name}-demo-{uuid.uuid4().hex[:6]}"
    print(f"bus demo: ring {name!r}, capacity {cfg.ring.capacity:,}, {ncpu} cores usable; "
          f"writer on core {wcore} at {rate:,}/s for {seconds:g} s")
    for r in readers:
        print(f"  {r['name']} on core {r['core']}: {WAIT_COSTS[r['wait']]}")
    out = probe.run(name, cfg.ring.capacity, readers, rate=rate, seconds=seconds,
                    writer_core=wcore, timeout=seconds + 120)
    w = out["writer"]
    print(f"\nwriter: {w['published']:,} records in {w['seconds']:.2f} s = "
          f"{w['rate']:,.0f} records/s")
    hdr = f"{'reader':<26}{'received':>12}{'lost':>8}{'torn':>6}{'unrep.':>8}" + "".join(
        f"{h:>10}" for h in ("p50", "p90", "p99", "p99.9", "max"))
    print(hdr)
    bad = 0
    for r in sorted(out["readers"], key=lambda x: x["name"]):
        v = r["verify"]
        bad += v["violations"] + v["lost_unreported"]
        lat = "".join(f"{x / 1000:>8.1f}us" for x in r["latency_ns"])
        print(f"{r['name']:<26}{v['received']:>12,}{v['lost_reported']:>8,}{v['violations']:>6}"
              f"{v['lost_unreported']:>8}{lat}")
    print("\nlatency = reader arrival - writer publish stamp (CLOCK_MONOTONIC), per record")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
