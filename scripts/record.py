#!/usr/bin/env python3
"""Record a live or simulated market-data session for a duration.

Writes, under --out:
  raw-<venue>-<stamp>-NNNNN.txt.gz   every text message as `<local_ts_ns> <raw>` (plus the
                                     pipeline's `start` / `snapshot` lines), rotated by size/time
  ticks-NNNNNN.npy                   the ring records (TICK_DTYPE), as the backtester loads them
  stats.json                         collector counters
  instruments.json                   the instruments and ids of the records (from the venue)

    record.py --out rec/ --seconds 60                          # live Binance (needs internet)
    record.py --out rec/ --seconds 10 --sim                    # the embedded simulator
    record.py --out rec/ --seconds 10 --ws-url ws://127.0.0.1:8765 --rest-url http://127.0.0.1:8765

Replay a recording with `pipeline replay` (ids from the recording's instruments.json) or
pipeline.collector.recorder.replay(read_raw(files), adapter, ...).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.bus import segments  # noqa: E402
from pipeline import config as config_mod  # noqa: E402
from pipeline.config import CollectorConfig  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--seconds", type=float, required=True, help="how long to record")
    ap.add_argument("--config", help="pipeline TOML ([collector] section)")
    ap.add_argument("--sim", action="store_true", help="start the simulator and record it")
    ap.add_argument("--ws-url", help="override [collector].ws_url")
    ap.add_argument("--rest-url", help="override [collector].rest_url")
    ap.add_argument("--symbols", help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    ap.add_argument("--channels", help="comma-separated, e.g. trade,bookTicker,depth@100ms")
    ap.add_argument("--backend", choices=("cython", "python"))
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    segments.reclaim(prefix="record-", why="left by a killed run")
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from pipeline.bus.ring import TickRing
    from pipeline.collector.collector import Collector
    from pipeline.collector.recorder import NpySegmentWriter, RawRecorder

    cfg = config_mod.load(args.config).collector if args.config else CollectorConfig()
    over = {}
    if args.symbols:
        over["symbols"] = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    if args.channels:
        over["channels"] = [c.strip() for c in args.channels.split(",") if c.strip()]
    if args.backend:
        over["backend"] = args.backend
    sim = None
    if args.sim:
        try:
            from pipeline.sim.testing import start_sim
        except ImportError:
            ap.error("--sim needs the simulator (pipeline.sim), which is not installed here")
        sim = start_sim(tempfile.mkdtemp(prefix="record-sim-"),
                        symbols=over.get("symbols", list(cfg.symbols)))
        over.update(ws_url=sim.ws_url, rest_url=sim.rest_url, venue_id="SIM")
    if args.ws_url:
        over["ws_url"] = args.ws_url
    if args.rest_url:
        over["rest_url"] = args.rest_url
    cfg = replace(cfg, **over)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = RawRecorder(out, stem=f"{cfg.venue}-{time.strftime('%Y%m%dT%H%M%S')}",
                      rotate_bytes=int(cfg.record_rotate_mb * (1 << 20)),
                      rotate_s=cfg.record_rotate_s)
    npy = NpySegmentWriter(out, cfg.record_segment_records)
    ring = TickRing.create(f"record-{os.getpid()}-{uuid.uuid4().hex[:6]}", 1 << 20)
    try:
        writer = ring.writer()
        reader = ring.reader(wait="sleeping", max_batch=1 << 16)
        from pipeline.instruments import collector_source, registry_for
        env = {k: v for k, v in os.environ.items() if k != "PIPELINE_INSTRUMENTS"}
        registry = registry_for({collector_source(cfg): {s.upper() for s in cfg.symbols}}, out,
                                environ=env)          # the ids, cached beside the recording
        col = Collector(cfg, writer.publish_array, registry=registry, raw_sink=raw.write,
                        heartbeat=writer.heartbeat)
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda *_: col.stop())
        end = time.monotonic() + args.seconds
        try:
            while time.monotonic() < end and not col._stop:  # noqa: SLF001
                col.step(0.02)
                batch = reader.poll()
                if len(batch):
                    npy.append(batch)
        finally:
            col.close()
            batch = reader.poll()
            while len(batch):
                npy.append(batch)
                batch = reader.poll()
            raw.close()
            npy.close()
            stats = col.stats()
            stats["errors"] = col.feed.errors()
            (out / "stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True))
    finally:
        ring.close()
        if sim is not None:
            sim.stop()
    sys.stdout.write(f"recorded {args.seconds:.0f} s: {raw.lines} raw lines in {len(raw.files)} "
                     f"file(s), {npy.records} records in {len(npy.files)} segment(s) → {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
