"""Recording and replay.

Raw: every text message as a `<local_ts_ns> <raw>` line, gzip, rotated by size or age
(raw-<stem>-<n>.txt.gz). Lines starting `{"_pl":` are the pipeline's own: `start` (book sync
began) and `snapshot` (a REST depth snapshot, applied at that point of the stream), so a replay
makes the same records, bit for bit (except seq and mono_ts, which the ring stamps).

Records: TICK_DTYPE arrays in .npy segments (ticks-<n>.npy, written to a temporary name and
renamed when complete) that the backtester loads with np.load.

As a role (the launcher's "recorder"): read the tick ring and write its records to segments.

    python -m pipeline.collector.recorder --config pipeline.toml [--out DIR] [--seconds N]
"""
from __future__ import annotations

import gzip
import io
import os
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import orjson

from pipeline.collector.feed import META_PREFIX, Feed
from pipeline.records import TICK_DTYPE


class RawRecorder:
    """Append `<ts> <raw>\\n` lines to gzip files, rotating by size (uncompressed) or age."""

    def __init__(self, directory: str | Path, stem: str = "feed", rotate_bytes: int = 256 << 20,
                 rotate_s: float = 3600.0, level: int = 6):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stem = stem
        self.rotate_bytes = rotate_bytes
        self.rotate_s = rotate_s
        self.level = level
        self.index = 0
        self.files: list[Path] = []
        self._f: gzip.GzipFile | None = None
        self._size = 0
        self._opened = 0.0
        self.lines = 0

    def _open(self) -> None:
        path = self.dir / f"raw-{self.stem}-{self.index:05d}.txt.gz"
        self.index += 1
        self._f = gzip.open(path, "wb", compresslevel=self.level)
        self.files.append(path)
        self._size = 0
        self._opened = time.monotonic()

    def write(self, lines: bytes) -> None:
        if not lines:
            return
        if self._f is None:
            self._open()
        self._f.write(lines)
        self._size += len(lines)
        self.lines += lines.count(b"\n")
        if self._size >= self.rotate_bytes or time.monotonic() - self._opened >= self.rotate_s:
            self._f.close()
            self._f = None

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class NpySegmentWriter:
    """Collect TICK_DTYPE records into fixed-size .npy segments."""

    def __init__(self, directory: str | Path, records_per_segment: int = 1 << 20,
                 stem: str = "ticks"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.per = records_per_segment
        self.stem = stem
        self.buf = np.zeros(records_per_segment, dtype=TICK_DTYPE)
        self.n = 0
        self.index = 0
        self.files: list[Path] = []
        self.records = 0

    def append(self, recs: np.ndarray) -> None:
        if recs.dtype != TICK_DTYPE:
            raise TypeError(f"expected TICK_DTYPE records, got {recs.dtype}")
        off = 0
        while off < len(recs):
            k = min(len(recs) - off, self.per - self.n)
            self.buf[self.n:self.n + k] = recs[off:off + k]
            self.n += k
            off += k
            if self.n == self.per:
                self._flush()
        self.records += len(recs)

    def _flush(self) -> None:
        if self.n == 0:
            return
        path = self.dir / f"{self.stem}-{self.index:06d}.npy"
        tmp = path.with_suffix(".npy.tmp")
        with open(tmp, "wb") as f:
            np.save(f, self.buf[:self.n])
        os.replace(tmp, path)
        self.files.append(path)
        self.index += 1
        self.n = 0

    def close(self) -> None:
        self._flush()


def load_segments(directory: str | Path, stem: str = "ticks") -> np.ndarray:
    files = sorted(Path(directory).glob(f"{stem}-*.npy"))
    if not files:
        return np.zeros(0, dtype=TICK_DTYPE)
    return np.concatenate([np.load(f) for f in files])


# ----------------------------------------------------------------------------- replay
def read_raw(paths: Iterable[str | Path]) -> Iterator[tuple[int, bytes]]:
    """(local_ts_ns, raw) from `<ts> <raw>` line files (gzip or plain)."""
    for p in paths:
        p = Path(p)
        opener = gzip.open if p.suffix == ".gz" else open
        with opener(p, "rb") as f:
            for line in io.BufferedReader(f) if opener is gzip.open else f:
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                ts, _, raw = line.partition(b" ")
                yield int(ts), raw


def replay(lines: Iterable[tuple[int, bytes]], adapter, *, depth_symbols=(),
           backend: str = "cython", bare_snapshot_symbol: int | None = None,
           auto_start: bool = True, max_message: int = 1 << 20, feed_out: list | None = None
           ) -> np.ndarray:
    """Run recorded messages through the collector's own decoder and feed; returns the records.

    Each raw message is framed as one WebSocket text frame and decoded exactly as it was live.
    `bare_snapshot_symbol`: recordings (hftbacktest) whose REST snapshot is a bare
    `{"lastUpdateId":...}` line belong to this symbol id. Without a `start` line the book syncs
    start at the first line (auto_start)."""
    from pipeline.venues.binance.wsdecode_py import ws_frame
    chunks: list[np.ndarray] = []
    feed = Feed(adapter, lambda a: chunks.append(a.copy()), depth_symbols=depth_symbols,
                backend=backend, max_message=max_message)
    dec = feed.decoder()
    started = False
    for ts, raw in lines:
        if raw.startswith(META_PREFIX):
            meta = orjson.loads(raw)
            if meta["_pl"] == "start":
                feed.start_books(ts)
                started = True
            elif meta["_pl"] == "snapshot":
                feed.pump(dec)
                feed.on_snapshot(int(meta["symbol"]), orjson.dumps(meta["data"]), ts)
            continue
        if not started and auto_start:
            feed.start_books(ts)
            started = True
        if bare_snapshot_symbol is not None and raw.startswith(b'{"lastUpdateId"'):
            feed.pump(dec)
            feed.on_snapshot(bare_snapshot_symbol, raw, ts)
            continue
        dec.feed(ws_frame(raw), ts)
        feed.pump(dec)
    feed.drop_decoder(dec)
    if feed_out is not None:
        feed_out.append(feed)
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=TICK_DTYPE)


# ----------------------------------------------------------------------------- recorder role
def run_recorder(ring_name: str, out: str | Path, records_per_segment: int = 1 << 20,
                 seconds: float | None = None, wait: str = "sleeping") -> int:
    """Copy every record of the ring into .npy segments until stopped; returns records written.
    A lapped reader's GAP records are kept: the file shows the loss like the ring did."""
    import signal

    from pipeline.bus.ring import TickRing
    from pipeline.telemetry.role import RoleTelemetry

    tel = RoleTelemetry("recorder")
    stop = []
    prev = {s: signal.signal(s, lambda *_: stop.append(1)) for s in (signal.SIGTERM, signal.SIGINT)}
    ring = TickRing.attach(ring_name, timeout=10.0)
    reader = ring.reader(wait=wait, start="next", max_batch=1 << 16)
    seg = NpySegmentWriter(out, records_per_segment)
    tel.running()
    end = None if seconds is None else time.monotonic() + seconds
    try:
        while not stop and (end is None or time.monotonic() < end):
            if tel.status.shutdown_requested:
                break
            reader.wait(0.2)
            batch = reader.poll()
            if len(batch):
                seg.append(batch)
            tel.beat(ticks=seg.records, dropped=reader.lost)
        batch = reader.poll()
        while len(batch):
            seg.append(batch)
            batch = reader.poll()
    finally:
        seg.close()
        lost = reader.lost
        reader = None
        ring.close()
        tel.close(ticks=seg.records, dropped=lost)
        # Restored last: the launcher's SIGTERM often arrives while this drains and closes (its
        # shutdown word came first); with the default handler back it would kill us (-15).
        for s, h in prev.items():
            signal.signal(s, h)
    return seg.records


def main(argv=None) -> int:
    import argparse
    import logging

    from pipeline import config as config_mod

    ap = argparse.ArgumentParser(prog="python -m pipeline.collector.recorder",
                                 description="Record the tick ring into .npy segments.")
    ap.add_argument("--config", help="pipeline TOML ([ring], [collector].record_dir)")
    ap.add_argument("--ring", help="ring name (default: [ring].name)")
    ap.add_argument("--out", help="directory (default: [collector].record_dir, else "
                                  "$PIPELINE_RUN_DIR/ticks, else ./ticks)")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--log-level", default=None, help="override [logging].level (default INFO)")
    args = ap.parse_args(argv)
    from pipeline import logs
    try:
        cfg = config_mod.load(args.config) if args.config else config_mod.PipelineConfig()
    except config_mod.ConfigError as exc:
        logs.setup_role("recorder", level=args.log_level)
        logging.getLogger("pipeline.recorder").error("%s", exc)
        return 2
    logs.setup_role("recorder", cfg, level=args.log_level)
    out = args.out or cfg.collector.record_dir or os.path.join(
        os.environ.get("PIPELINE_RUN_DIR", "."), "ticks")
    wait = os.environ.get("PIPELINE_WAIT", cfg.reader.wait)
    import signal

    def stopping(*_):          # a SIGTERM outside run_recorder's own handler: exit cleanly
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stopping)
    run_recorder(args.ring or cfg.ring.name, out, cfg.collector.record_segment_records,
                 args.seconds, wait)
    return 0        # a late SIGTERM from here on: ignored by exit_role (the __main__ block)


if __name__ == "__main__":
    from pipeline.telemetry.role import exit_role
    exit_role(main)     # a late SIGTERM (the launcher's stop) cannot kill finalisation
