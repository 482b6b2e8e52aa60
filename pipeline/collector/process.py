"""The collector as an OS process: attach the tick ring as its one writer, run, report.

    python -m pipeline.collector --config pipeline.toml --ring pipeline-ticks [--seconds N]
        [--stats stats.json] [--record-dir DIR]

SIGTERM/SIGINT only request a stop; the loop then closes connections, flushes recordings, marks
the writer closed and writes the stats file (counters of messages, bytes, malformed frames, gaps,
reconnects, ...).
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import time
from dataclasses import replace
from pathlib import Path

from pipeline import config as config_mod
from pipeline.config import CollectorConfig
from pipeline.records import FLAG_SNAPSHOT, FLAG_SYNTHETIC

log = logging.getLogger(__name__)


def run(cfg: CollectorConfig, ring_name: str, seconds: float | None = None,
        stats_path: str | None = None, attach_timeout: float = 10.0,
        run_dir: str | Path = "run", registry=None, keep_signal_handlers: bool = False) -> dict:
    """registry: the instruments (default: the run's cache, see pipeline/instruments.py).
    keep_signal_handlers: the role's own process (main) keeps the stop handler until it exits: a
    collector that stopped on the launcher's shutdown word before its SIGTERM arrived must not
    die by that SIGTERM (exit -15) once the default handler is back."""
    from pipeline.bus.ring import TickRing
    from pipeline.collector.collector import Collector
    from pipeline.collector.recorder import RawRecorder
    from pipeline.instruments import collector_source, registry_for

    if registry is None:       # before the ring: an unlisted symbol ends the role here, clearly
        registry = registry_for({collector_source(cfg): {s.upper() for s in cfg.symbols}},
                                run_dir)

    from pipeline.telemetry.role import RoleTelemetry
    # The stop handler first: the launcher may stop us from the moment we say RUNNING (it then
    # starts the next role) or while we start; a SIGTERM before the handler would kill us (-15).
    col = None
    stop_asked: list[int] = []

    def on_stop(*_) -> None:
        stop_asked.append(1)
        if col is not None:
            col.stop()
    prev = {s: signal.signal(s, on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        tel = RoleTelemetry("collector", main_hop="socket_to_ring")
        ring = TickRing.attach(ring_name, timeout=attach_timeout)
        writer = ring.writer()
        raw = None
        if cfg.record_dir:
            raw = RawRecorder(cfg.record_dir, stem=f"{cfg.venue}-{time.strftime('%Y%m%dT%H%M%S')}",
                              rotate_bytes=int(cfg.record_rotate_mb * (1 << 20)),
                              rotate_s=cfg.record_rotate_s)
        # socket_to_ring: records carry local_ts = CLOCK_REALTIME at the socket read; the hop ends
        # when publish_array returns (CLOCK_MONOTONIC), so the realtime stamp is mapped to monotonic
        # through an offset refreshed at every heartbeat.
        clock = {"offset": time.time_ns() - time.perf_counter_ns()}
        record_hop = tel.hops.recorder("socket_to_ring")
        publish_array = writer.publish_array

        def publish(arr) -> None:
            publish_array(arr)
            last = arr[-1]
            if last["local_ts"] > 0 and not last["flags"] & (FLAG_SNAPSHOT | FLAG_SYNTHETIC):
                hop = time.perf_counter_ns() - (int(last["local_ts"]) - clock["offset"])
                if 0 < hop < 60_000_000_000:
                    record_hop(hop)

        resync_seen = [ring.resync_requests]

        def heartbeat() -> None:
            clock["offset"] = time.time_ns() - time.perf_counter_ns()
            writer.heartbeat()
            asked = ring.resync_requests        # a reader lost records: its books are wrong
            if asked != resync_seen[0]:
                resync_seen[0] = asked
                log.warning("a ring reader lost records: resyncing every book")
                col.feed.resync_books(time.time_ns())
            tel.beat(ticks=int(ring.cursor), errors=sum(col.feed.errors().values()))
            fc = col.feed.counters
            tel.status.set_extra(reconnects=col.counters["reconnects"], stale=col.counters["stale"],
                                 resyncs=fc["book_resync"], gaps=fc["book_gap"])
            # A HALT is the gateway's business (a restarted collector starts while the gateway is
            # HALTED for its death): only the launcher's shutdown stops the feed.
            if tel.status.shutdown_requested:
                col.stop()          # same as SIGTERM: close connections, flush, report

        col = Collector(cfg, publish, registry=registry, raw_sink=raw.write if raw else None,
                        heartbeat=heartbeat)
        if stop_asked:
            col.stop()
        tel.running()
        try:
            col.run(seconds)
        finally:
            col.close()
            stats = col.stats()
            stats["errors"] = col.feed.errors()
            stats["records_published"] = int(ring.cursor)
            if raw is not None:
                raw.close()
                stats["raw_files"] = [str(p) for p in raw.files]
            tel.close(ticks=int(ring.cursor), errors=sum(stats["errors"].values()))
            writer.close()
            ring.close()
            if stats_path:
                tmp = Path(stats_path).with_suffix(".tmp")
                tmp.write_text(json.dumps(stats, indent=1, sort_keys=True))
                tmp.replace(stats_path)
        return stats
    finally:
        if not keep_signal_handlers:
            for s, h in prev.items():
                signal.signal(s, h)


def run_from_dict(cfg: dict, ring_name: str, seconds: float | None, stats_path: str | None,
                  log_level: str = "WARNING", instruments: list[dict] | None = None,
                  run_dir: str = "run") -> None:
    """multiprocessing target: the config as a [collector] table; `instruments` the registry's
    instruments as in instruments.json (default: loaded into <run_dir>/instruments.json)."""
    from pipeline.registry import Instrument, SymbolRegistry
    logging.basicConfig(level=log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    c = config_mod.from_dict(CollectorConfig, cfg, source="<collector process>", where="collector")
    reg = None if instruments is None else SymbolRegistry(Instrument.from_json(i)
                                                          for i in instruments)
    run(c, ring_name, seconds, stats_path, run_dir=run_dir, registry=reg)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.collector", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="pipeline TOML file ([collector] section); defaults if absent")
    ap.add_argument("--ring", help="tick ring (shm segment) to write (default: [ring].name)")
    ap.add_argument("--seconds", type=float, default=None, help="run this long (default: forever)")
    ap.add_argument("--stats", help="write counters here as JSON at exit")
    ap.add_argument("--record-dir", help="override [collector].record_dir")
    ap.add_argument("--log-level", default=None, help="override [logging].level (default INFO)")
    args = ap.parse_args(argv)
    from pipeline import logs
    try:
        full = config_mod.load(args.config) if args.config else config_mod.PipelineConfig()
    except config_mod.ConfigError as exc:
        logs.setup_role("collector", level=args.log_level)
        log.error("%s", exc)
        return 2
    logs.setup_role("collector", full, level=args.log_level)
    cfg = full.collector
    if args.record_dir:
        cfg = replace(cfg, record_dir=args.record_dir)
    from pipeline.instruments import InstrumentError, run_dir_of
    try:
        run(cfg, args.ring or full.ring.name, args.seconds, args.stats, run_dir=run_dir_of(full),
            keep_signal_handlers=True)
    except InstrumentError as exc:
        log.error("%s", exc)
        return 2
    # a late SIGTERM, once this returned: ignored by exit_role (pipeline/collector/__main__.py)
    return 0
