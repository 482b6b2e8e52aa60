"""Export recordings and downloads as a Parquet dataset partitioned by venue/symbol/date.

    out/venue=BINANCE/symbol=BTCUSDT/date=2024-08-08/<source>-0.parquet

Hive-style partitions, so DuckDB (`read_parquet('out/**/*.parquet', hive_partitioning=true)`),
pandas (`pd.read_parquet('out')`), polars (`pl.scan_parquet('out/**/*.parquet',
hive_partitioning=True)`) and Spark read it as one table with `venue`, `symbol` and `date`
columns. The rows are the pipeline's records (pipeline/records.py TICK_DTYPE: one schema for all
sources) with readable names beside the numbers:

  ts        timestamp[ns, UTC]: exch_ts, or local_ts when the venue gave no time
  kind      TRADE, AGG_TRADE, BID, ASK, BOOK_BID, ..., GAP, STALE (Kind names)
  side, price, qty, id, flags, seq, exch_ts, local_ts, mono_ts, venue_id, symbol_id  (as recorded)

Sources (files or directories, searched recursively):
  *.npy            record files (ticks-NNNNNN.npy from scripts/record.py or the recorder role)
  raw-*.txt[.gz]   raw recordings, replayed through the collector's own decoder and feed (the
                   real parsers; rotated files of one session are replayed together, in order)
  *.zip            Binance public-data trades / aggTrades archives (pipeline/data/download.py)

A source's rows are written under its own file name stem, so exporting the same source again
replaces its files instead of adding duplicates. The date partition is the UTC day of `ts`;
records for no symbol (symbol_id 0, e.g. a feed-wide STALE) go under `symbol=_all`.

    python scripts/export.py --out parquet/ rec/ data/binance/
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from pipeline.records import TICK_DTYPE, Kind, Venue

log = logging.getLogger("pipeline.data.export")

_ZIP = re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<kind>trades|aggTrades)-(?P<period>[0-9-]+)\.zip$")
_RAW = re.compile(r"^raw-(?P<stem>.+?)-(?P<n>\d+)\.txt(\.gz)?$")


class ExportError(ValueError):
    """A source that cannot be exported; the message names it."""


@dataclass
class ExportReport:
    rows: int = 0
    sources: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)   # source → why

    def summary(self) -> str:
        return (f"exported {self.rows:,} rows from {len(self.sources)} source(s) into "
                f"{len(self.files)} Parquet file(s); {len(self.skipped)} skipped")


def _registry(near: Path | None = None):
    """The instruments of the run that recorded `near`: its instruments.json beside it or one
    directory up (scripts/record.py and the launcher's run directory write one), else none."""
    from pipeline.instruments import CACHE_NAME, InstrumentError, read_cache
    from pipeline.registry import SymbolRegistry
    if near is not None:
        for d in (near.parent, near.parent.parent):
            if (d / CACHE_NAME).is_file():
                try:
                    return read_cache(d / CACHE_NAME)[0]
                except InstrumentError as exc:
                    raise ExportError(str(exc)) from None
    return SymbolRegistry()


def _symbol_names(ids: np.ndarray, registry) -> np.ndarray:
    names = np.empty(len(ids), dtype=object)
    for sid in np.unique(ids):
        sel = ids == sid
        if sid == 0:
            names[sel] = "_all"
            continue
        try:
            names[sel] = registry.instrument(int(sid)).symbol
        except Exception:      # an id this registry does not know: keep the number visible
            names[sel] = f"_id{int(sid)}"
    return names


def records_table(recs: np.ndarray, registry=None, symbol: str | None = None):
    """TICK_DTYPE records → a pyarrow Table with the partition columns (venue, symbol, date).
    `symbol` names every row's symbol (downloads whose symbol the registry may not list)."""
    import pyarrow as pa
    if recs.dtype != TICK_DTYPE:
        raise ExportError(f"records have dtype {recs.dtype}, expected TICK_DTYPE")
    registry = registry or _registry()       # none: symbols named by id (_id<N>)
    recs = np.asarray(recs)
    ts = np.where(recs["exch_ts"] != 0, recs["exch_ts"], recs["local_ts"]).astype(np.int64)
    kind_names = {int(k): k.name for k in Kind}
    venue_names = {int(v): v.name for v in Venue}
    kinds = np.array([kind_names.get(int(k), f"KIND{int(k)}") for k in recs["kind"]],
                     dtype=object)
    venues = np.array([venue_names.get(int(v), f"VENUE{int(v)}") for v in recs["venue"]],
                      dtype=object)
    syms = (np.full(len(recs), symbol, dtype=object) if symbol else
            _symbol_names(recs["symbol"], registry))
    day = ts.astype("datetime64[ns]").astype("datetime64[D]").astype(str).astype(object)
    cols = {
        "ts": pa.array(ts, pa.timestamp("ns", tz="UTC")),
        "kind": pa.array(kinds, pa.string()),
        "side": pa.array(recs["side"]),
        "price": pa.array(recs["price"]),
        "qty": pa.array(recs["qty"]),
        "id": pa.array(recs["id"]),
        "flags": pa.array(recs["flags"]),
        "seq": pa.array(recs["seq"]),
        "exch_ts": pa.array(recs["exch_ts"]),
        "local_ts": pa.array(recs["local_ts"]),
        "mono_ts": pa.array(recs["mono_ts"]),
        "venue_id": pa.array(recs["venue"]),
        "symbol_id": pa.array(recs["symbol"]),
        "venue": pa.array(venues, pa.string()),
        "symbol": pa.array(syms, pa.string()),
        "date": pa.array(day, pa.string()),
    }
    return pa.table(cols)


def write_table(table, out: Path, stem: str) -> list[str]:
    """Write `table` under `out`, hive-partitioned by venue/symbol/date, files named after
    `stem` (an earlier export of the same stem is replaced, partition by partition)."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    written: list[str] = []
    ds.write_dataset(
        table, str(out), format="parquet",
        partitioning=ds.partitioning(
            pa.schema([("venue", pa.string()), ("symbol", pa.string()), ("date", pa.string())]),
            flavor="hive"),
        basename_template=f"{stem}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        file_visitor=lambda f: written.append(f.path))
    return written


# ----------------------------------------------------------------------------- sources

def records_of_zip(path: Path, registry=None) -> tuple[np.ndarray, str]:
    """A Binance public-data archive as records of venue BINANCE; its symbol from the name."""
    from pipeline.backtest.data import DataError, read_zip
    m = _ZIP.match(path.name)
    if not m:
        raise ExportError(f"{path}: not a Binance public-data name (SYMBOL-trades|aggTrades-"
                          f"DATE.zip)")
    try:
        recs = read_zip(path)
    except DataError as exc:
        raise ExportError(str(exc)) from None
    recs["venue"] = int(Venue.BINANCE)
    recs["symbol"] = (registry or _registry(path)).get(Venue.BINANCE, m["symbol"])
    return recs, m["symbol"]


def records_of_raw(paths: list[Path], registry=None) -> np.ndarray:
    """One raw session (its rotated files in order) through the collector's decoder and feed."""
    import importlib

    import orjson

    from pipeline.collector.collector import ADAPTERS
    from pipeline.collector.feed import META_PREFIX
    from pipeline.collector.recorder import read_raw, replay
    registry = registry or _registry(paths[0])
    m = _RAW.match(paths[0].name)
    venue_name = (m["stem"].split("-")[0] if m else "").lower()
    if venue_name not in ADAPTERS:
        raise ExportError(f"{paths[0]}: no venue in the name (raw-<venue>-...: one of "
                          f"{', '.join(sorted(ADAPTERS))})")
    venue = Venue[venue_name.upper()]
    syms = {i.symbol: i.id for i in registry.for_venue(venue)}
    if not syms:
        raise ExportError(f"{paths[0]}: no instruments.json of venue {venue.name} beside the "
                          "recording (scripts/record.py writes one): its symbol ids are unknown")
    module, cls = ADAPTERS[venue_name]
    adapter = getattr(importlib.import_module(module), cls)(syms, int(venue))
    depth = sorted({int(orjson.loads(raw)["symbol"]) for _, raw in read_raw(paths)
                    if raw.startswith(META_PREFIX) and b'"snapshot"' in raw[:40]})
    return replay(read_raw(paths), adapter, depth_symbols=depth)


def _sources(paths: list[Path]) -> list[tuple[str, list[Path]]]:
    """(kind, files) per source: ("npy", [f]), ("zip", [f]), ("raw", [rotated files...])."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file())
        elif p.exists():
            files.append(p)
        else:
            raise ExportError(f"{p}: no such file or directory")
    out: list[tuple[str, list[Path]]] = []
    raw: dict[tuple[Path, str], list[tuple[int, Path]]] = {}
    for f in files:
        m = _RAW.match(f.name)
        if m:
            raw.setdefault((f.parent, m["stem"]), []).append((int(m["n"]), f))
        elif f.suffix == ".npy":
            out.append(("npy", [f]))
        elif f.suffix == ".zip":
            out.append(("zip", [f]))
    for key in sorted(raw, key=lambda k: (str(k[0]), k[1])):
        out.append(("raw", [f for _, f in sorted(raw[key])]))
    return out


def export(paths, out: str | Path, registry=None) -> ExportReport:
    """Export every source under `paths` into the dataset at `out` (see the module docstring).
    A source that cannot be read is skipped with its reason in the report (and a log line)."""
    out = Path(out)
    rep = ExportReport()
    for kind, files in _sources([Path(p) for p in paths]):
        name = str(files[0]) if len(files) == 1 else f"{files[0]} (+{len(files) - 1})"
        try:
            symbol = None
            if kind == "npy":
                recs = np.load(files[0], allow_pickle=False)
                if recs.dtype != TICK_DTYPE:
                    raise ExportError(f"{files[0]}: dtype {recs.dtype} is not TICK_DTYPE")
            elif kind == "zip":
                recs, symbol = records_of_zip(files[0], registry)
            else:
                recs = records_of_raw(files, registry)
        except (ExportError, ValueError, OSError) as exc:
            rep.skipped[name] = str(exc)
            log.warning("export: skipped %s: %s", name, exc)
            continue
        if len(recs) == 0:
            rep.skipped[name] = "no records"
            continue
        stem = files[0].name.split(".")[0]
        if kind == "raw":
            stem = _RAW.match(files[0].name)["stem"]
        rep.files += write_table(records_table(recs, registry or _registry(files[0]), symbol),
                                 out, stem)
        rep.rows += len(recs)
        rep.sources.append(name)
    return rep


def main(argv=None, prog: str = "pipeline export") -> NoReturn:
    """`pipeline export` (and scripts/export.py): see --help. Ends the process (end_process)."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    end_process(run_args(args))


def end_process(rc: int) -> NoReturn:
    """End the export's process with `rc` without interpreter finalisation. Arrow's dataset
    writer leaves threads that can abort the interpreter while it finalises ("terminate called
    without an active exception", exit -6 after a complete export: apache/arrow#36980, #34314),
    about one run in twenty-five here. Everything is written by then; stdio is flushed first."""
    logging.shutdown()
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("sources", nargs="+", help="record files, raw recordings, downloaded .zip "
                                               "files, or directories of them")
    ap.add_argument("--out", required=True, help="the Parquet dataset directory")


def run_args(args: argparse.Namespace) -> int:
    try:
        rep = export(args.sources, args.out)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, why in rep.skipped.items():
        print(f"  skipped {name}: {why}")
    print(rep.summary())
    return 0 if rep.sources else 1


if __name__ == "__main__":
    sys.exit(main())
