"""Event-backtest inputs: every source as one time-ordered TICK_DTYPE record array.

    recs = load_feed(["day1.npy", "day2.txt.gz", "trades.csv"], start=..., end=...)

  .npy      the collector's / recorder's record segments (memory-mapped)
  .txt.gz   raw recordings (`<local_ts_ns> <raw json>` lines) through the collector's own
            decoder and book sync (pipeline.collector.recorder.replay), exactly as live; a
            Binance recording's bare REST snapshot line (hftbacktest's layout) is its one
            depth stream's snapshot
  .csv      Binance public-data trades / aggTrades (pipeline.backtest.data.read_csv)
  .zip      Binance public-data daily archives (pipeline.backtest.data.read_zip)

Several files are concatenated and sorted by time (stable, so one file's order is kept). The time
of a record is its exchange time, or its local time when the venue gave none. Every record is
renumbered: `seq` = its index in the run (so a signal's trigger_seq is the index of the record
that caused it) and `mono_ts` = its time (the strategy's clock in a backtest is the data's).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.backtest.data import DataError, load_records
from pipeline.records import TICK_DTYPE, Venue


def record_time(recs: np.ndarray) -> np.ndarray:
    ex = recs["exch_ts"]
    return np.where(ex != 0, ex, recs["local_ts"]).astype(np.int64)


def _raw(path: str, venue: str) -> np.ndarray:
    from pipeline.collector.recorder import replay
    from pipeline.registry import DEFAULT as REG
    from pipeline.sim.tape import read_recording
    try:
        v = Venue[venue.upper()]
    except KeyError:
        raise DataError(f"{path}: unknown venue {venue!r} for a raw recording") from None
    if v == Venue.OKX:
        from pipeline.venues.okx.adapter import OkxAdapter as Adapter
    else:
        from pipeline.venues.binance.market import BinanceAdapter as Adapter
    syms = {i.symbol: REG.id(v, i.symbol) for i in REG.for_venue(v)}
    bare = _bare_snapshot_symbol(path, syms) if v == Venue.BINANCE else None
    return replay(read_recording(path), Adapter(syms, int(v)),
                  depth_symbols=list(syms.values()), bare_snapshot_symbol=bare)


def _bare_snapshot_symbol(path: str, syms: dict[str, int]) -> int | None:
    """Third-party Binance recordings (hftbacktest's) keep the REST depth snapshot as a bare
    `{"lastUpdateId":...}` line among the stream messages: it belongs to the one symbol whose
    depth stream the recording holds (None: no such line; a DataError if several symbols' depth
    streams make that ambiguous). The project's own recordings mark snapshots ("_pl" lines)."""
    from pipeline.sim.tape import read_recording
    bare = False
    depth: set[str] = set()
    for _, raw in read_recording(path):
        if raw.startswith(b'{"lastUpdateId"'):
            bare = True
        elif raw.startswith(b'{"stream":"'):
            name = raw[11:raw.find(b'"', 11)]
            if b"@depth" in name:
                depth.add(name.split(b"@", 1)[0].decode("ascii", "replace").upper())
    if not bare:
        return None
    if len(depth) != 1:
        raise DataError(f"{path}: bare REST depth snapshots but depth streams of "
                        f"{len(depth)} symbols ({', '.join(sorted(depth)) or 'none'}): cannot "
                        f"tell whose they are; split the recording per symbol")
    name = depth.pop()
    if name not in syms:
        raise DataError(f"{path}: depth stream of {name}, which the registry does not know")
    return syms[name]


def load_one(path: str, raw_venue: str = "BINANCE") -> np.ndarray:
    p = str(path)
    if p.endswith(".txt.gz") or p.endswith(".txt"):
        if not Path(p).exists():
            raise DataError(f"{p}: no such file")
        recs = _raw(p, raw_venue)
        if len(recs) == 0:
            raise DataError(f"{p}: no records decoded from the recording")
        return recs
    return load_records(p)          # .npy, Binance .csv and public-data .zip


def load_feed(paths, start: int | None = None, end: int | None = None,
              raw_venue: str = "BINANCE") -> np.ndarray:
    """All files as one record array in time order, renumbered, cut to [start, end) ns."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    parts = [np.asarray(load_one(str(p), raw_venue)) for p in paths]
    if not parts:
        raise DataError("no input files")
    recs = np.concatenate(parts) if len(parts) > 1 else np.array(parts[0])
    t = record_time(recs)
    if len(parts) > 1 or (len(t) > 1 and (t[1:] < t[:-1]).any()):
        order = np.argsort(t, kind="stable")
        recs, t = recs[order], t[order]
    if start is not None or end is not None:
        lo = 0 if start is None else int(np.searchsorted(t, start, "left"))
        hi = len(t) if end is None else int(np.searchsorted(t, end, "left"))
        recs, t = recs[lo:hi], t[lo:hi]
    if len(recs) == 0:
        raise DataError(f"{', '.join(map(str, paths))}: no records in the chosen time range")
    recs = np.ascontiguousarray(recs, dtype=TICK_DTYPE)
    recs["seq"] = np.arange(len(recs))
    recs["mono_ts"] = t
    return recs


def parse_time(s: str | None) -> int | None:
    """--start/--end: ns since the epoch, or an ISO date/time (UTC unless it says otherwise)."""
    if s is None:
        return None
    s = s.strip()
    if s.lstrip("-").isdigit():
        return int(s)
    import datetime as dt
    try:
        d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"bad time {s!r}: use ns since the epoch or ISO 8601 "
                        f"(2024-03-01 or 2024-03-01T12:00:00)") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp() * 1e9)
