"""Instruments from the venue, cached in the run directory: every process agrees on the ids.

At start the launcher asks each venue the config names for the symbols it names (Binance
`GET /api/v3/exchangeInfo`, OKX `GET /api/v5/public/instruments?instType=SPOT`; the simulator
serves both), with their filters (tick, step, min/max qty and price, min/max notional), and writes
`<run_dir>/instruments.json`. The launcher passes that path to every role (PIPELINE_INSTRUMENTS),
and the roles build their SymbolRegistry from it, so the tick records' u32 ids are the same in the
collector, the strategy and the gateway.

- Ids are deterministic: a fresh cache numbers instruments in (venue, symbol) order from 1; an
  existing cache keeps its ids and numbers new instruments after the highest.
- A symbol the venue does not list is an InstrumentError naming it, before anything starts.
- Venue unreachable: the cache is used if it holds every symbol needed, and the caller says so
  ("offline start"); otherwise an InstrumentError. `offline=True` never asks the venue.
- A role started alone (no PIPELINE_INSTRUMENTS) does the same for its own section with the cache
  in $PIPELINE_RUN_DIR or [launcher].run_dir, asking the venue only for what the cache lacks; roles
  sharing a run directory therefore agree too (the cache is updated under a file lock).

Which venue speaks which listing is said once, in LISTINGS; nothing else here names a venue.
"""
from __future__ import annotations

import fcntl
import importlib
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from pipeline.records import Venue
from pipeline.registry import MAX_ID, Instrument, SymbolRegistry
from pipeline.venues.listing import ListingError, VenueUnreachable

log = logging.getLogger("pipeline.instruments")

CACHE_NAME = "instruments.json"
ENV_CACHE = "PIPELINE_INSTRUMENTS"     # set by the launcher for every role: the cache to read
CACHE_VERSION = 1

# listing name → (module with fetch(), the status that means "trading")
LISTINGS: dict[str, tuple[str, str]] = {
    "binance": ("pipeline.venues.binance.instruments", "TRADING"),
    "okx": ("pipeline.venues.okx.instruments", "live"),
}
# The gateway's [gateway].venue → listing (venues not named here speak Binance's REST).
GATEWAY_LISTING: dict[str, str] = {"OKX": "okx"}


class InstrumentError(ValueError):
    """Instruments cannot be loaded as configured (unlisted symbol, venue unreachable and no
    cache, a bad cache). The message names the symbol, the venue and the URL."""


@dataclass(frozen=True)
class Source:
    """Where one registry venue's instruments come from."""

    venue: str        # registry venue name: BINANCE, OKX, SIM
    listing: str      # key of LISTINGS: binance, okx
    rest_url: str

    def describe(self) -> str:
        return f"{self.venue} at {self.rest_url}"


Wanted = dict[Source, set[str]]


def _add(want: Wanted, src: Source, symbols: Iterable[str]) -> None:
    try:
        Venue[src.venue]
    except KeyError:
        raise InstrumentError(f"unknown venue {src.venue!r} (one of "
                              f"{', '.join(v.name for v in Venue if v)})") from None
    if src.listing not in LISTINGS:
        raise InstrumentError(f"{src.venue}: no instrument listing for {src.listing!r}")
    want.setdefault(src, set()).update(s.upper() for s in symbols)


def collector_source(c: Any) -> Source:
    return Source(c.venue_id.upper(), c.venue, c.rest_url)


def gateway_source(g: Any) -> Source:
    v = g.venue.upper()
    return Source(v, GATEWAY_LISTING.get(v, "binance"), g.rest_url)


def wanted(cfg: Any, kinds: Iterable[str]) -> Wanted:
    """The symbols per source that roles of these kinds need, from a PipelineConfig."""
    kinds = set(kinds)
    want: Wanted = {}
    if "collector" in kinds:
        _add(want, collector_source(cfg.collector), cfg.collector.symbols)
    if "gateway" in kinds:
        _add(want, gateway_source(cfg.gateway), cfg.gateway.symbols)
    if "strategy" in kinds:
        candidates = [collector_source(cfg.collector), gateway_source(cfg.gateway)]
        for name, r in getattr(cfg, "roles", {}).items():   # a run of several venues: each
            view = cfg.for_role(name)                          # collector / gateway its own
            if r.kind == "collector":
                candidates.append(collector_source(view.collector))
            elif r.kind == "gateway":
                candidates.append(gateway_source(view.gateway))
        for inst in cfg.strategy.instances:
            v = inst.venue.upper()
            src = next((s for s in want if s.venue == v), None) or \
                next((s for s in candidates if s.venue == v), None)
            if src is None:
                raise InstrumentError(
                    f"strategy {inst.id}: no [collector] or [gateway] of venue {v} says where "
                    f"{v}:{inst.symbol}'s instruments come from")
            _add(want, src, [inst.symbol])
    return want


# ----------------------------------------------------------------------------- the cache


def cache_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CACHE_NAME


def read_cache(path: str | Path) -> tuple[SymbolRegistry, dict[str, Any]]:
    """The registry in a cache file and the file's header (written_at, sources)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        if d.get("version") != CACHE_VERSION:
            raise ValueError(f"version {d.get('version')!r}, expected {CACHE_VERSION}")
        reg = SymbolRegistry(Instrument.from_json(i) for i in d["instruments"])
    except FileNotFoundError:
        raise InstrumentError(f"instrument cache {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InstrumentError(f"instrument cache {path} is unreadable: {exc}") from None
    return reg, {k: v for k, v in d.items() if k != "instruments"}


def write_cache(path: str | Path, reg: SymbolRegistry, sources: Mapping[str, str]) -> None:
    """Atomically (temp file + rename), so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    body = {"version": CACHE_VERSION,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sources": dict(sorted(sources.items())),
            "instruments": [i.to_json() for i in reg]}
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    tmp.replace(path)


@contextmanager
def _locked(run_dir: Path):
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".instruments.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def merge(old: SymbolRegistry | None, fresh: Iterable[Instrument]) -> SymbolRegistry:
    """Old ids kept (their fields refreshed); new instruments numbered after the highest id,
    in (venue, symbol) order."""
    old_list = list(old) if old is not None else []
    fresh_by_key = {(int(i.venue), i.symbol): i for i in fresh}
    out = [replace(fresh_by_key[k], id=i.id) if (k := (int(i.venue), i.symbol)) in fresh_by_key
           else i for i in old_list]
    known = {(int(i.venue), i.symbol) for i in old_list}
    next_id = max((i.id for i in old_list), default=0) + 1
    for k in sorted(set(fresh_by_key) - known):
        if next_id > MAX_ID:
            raise InstrumentError(f"more than {MAX_ID} instruments in one run "
                                  f"({fresh_by_key[k].key} would be id {next_id})")
        out.append(replace(fresh_by_key[k], id=next_id))
        next_id += 1
    return SymbolRegistry(out)


# ----------------------------------------------------------------------------- loading


def fetch(src: Source, symbols: Iterable[str], timeout_s: float = 5.0
          ) -> tuple[list[Instrument], list[str], list[str]]:
    """Ask the venue. → (instruments with id 0, symbols it does not list, warnings)."""
    module, trading = LISTINGS[src.listing]
    found, missing = importlib.import_module(module).fetch(src.rest_url, sorted(symbols),
                                                           timeout_s=timeout_s)
    venue = Venue[src.venue]
    insts, warnings = [], []
    for sym, f in sorted(found.items()):
        inst = Instrument(id=0, venue=venue, **f)
        if inst.status and inst.status != trading:
            warnings.append(f"{inst.key} is listed but not trading (status {inst.status})")
        insts.append(inst)
    return insts, missing, warnings


def _fetch_waiting(src: Source, ask: list[str], timeout_s: float, wait_s: float):
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return fetch(src, ask, timeout_s)
        except VenueUnreachable:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def load(want: Wanted, run_dir: str | Path, *, refresh: bool = True, offline: bool = False,
         timeout_s: float = 5.0, wait_s: float = 0.0,
         say: Callable[[str], Any] = log.info) -> SymbolRegistry:
    """The registry for `want`, from the venues and/or the cache in `run_dir` (updated).

    refresh: ask the venue for every symbol (the launcher: filters change); otherwise only for
    symbols the cache lacks (a role started alone). offline: never ask; the cache must hold all.
    wait_s: keep asking an unreachable venue this long (a simulator the launcher just started)."""
    run_dir = Path(run_dir)
    path = cache_path(run_dir)
    with _locked(run_dir):
        old, header = (read_cache(path) if path.exists() else (None, {}))
        sources = dict(header.get("sources", {}))
        fresh: list[Instrument] = []
        for src, syms in sorted(want.items(), key=lambda kv: (kv[0].venue, kv[0].rest_url)):
            venue = Venue[src.venue]
            lacking = sorted(s for s in syms if old is None or (venue, s) not in old)
            ask = sorted(syms) if refresh else lacking
            if not ask:
                continue
            if offline:
                if lacking:
                    raise InstrumentError(
                        f"offline start: the instrument cache {path} lacks "
                        f"{', '.join(f'{src.venue}:{s}' for s in lacking)}; start once with the "
                        f"venue reachable ({src.rest_url})")
                say(f"instruments: offline start, {src.venue} from the cache {path} (written "
                    f"{header.get('written_at', '?')})")
                continue
            try:
                insts, missing, warnings = _fetch_waiting(src, ask, timeout_s, wait_s)
            except VenueUnreachable as exc:
                if lacking:
                    raise InstrumentError(
                        f"cannot load the instruments of {src.describe()}: {exc}; the cache "
                        f"{path} lacks {', '.join(f'{src.venue}:{s}' for s in lacking)}") from None
                say(f"instruments: {src.describe()} unreachable ({exc}); offline start from the "
                    f"cache {path} (written {header.get('written_at', '?')})")
                continue
            except ListingError as exc:
                raise InstrumentError(f"cannot load the instruments of {src.describe()}: "
                                      f"{exc}") from None
            if missing:
                raise InstrumentError(
                    f"{', '.join(f'{src.venue}:{s}' for s in missing)}: not listed by the venue "
                    f"at {src.rest_url} (its spot instrument listing); check the spelling "
                    f"({'BTCUSDT' if src.listing == 'binance' else 'BTC-USDT'} style for "
                    f"{src.listing})")
            for w in warnings:
                say(f"instruments: WARNING: {w}")
            fresh.extend(insts)
            sources[src.venue] = src.rest_url
        reg = merge(old, fresh)
        if fresh or old is None:
            write_cache(path, reg, sources)
    return reg


def fresh(want: Wanted) -> SymbolRegistry:
    """The ids a fresh cache would give `want` (no venue asked, no filters): (venue, symbol)
    order from 1. For tools that must number instruments without a venue (replays)."""
    keys = sorted({(int(Venue[s.venue]), sym) for s, syms in want.items() for sym in syms})
    return SymbolRegistry(Instrument(i, Venue(v), sym, "", "") for i, (v, sym) in
                          enumerate(keys, 1))


def run_dir_of(cfg: Any, environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("PIPELINE_RUN_DIR") or cfg.launcher.run_dir)


def registry_for(want: Wanted, run_dir: str | Path, *,
                 environ: Mapping[str, str] = os.environ) -> SymbolRegistry:
    """A role's registry: the launcher's cache (PIPELINE_INSTRUMENTS) when set, which must hold
    every symbol the role needs; else loaded for this role alone (see the module docstring)."""
    given = environ.get(ENV_CACHE)
    if given:
        reg, _ = read_cache(given)
        lacking = [f"{s.venue}:{sym}" for s, syms in want.items() for sym in sorted(syms)
                   if (Venue[s.venue], sym) not in reg]
        if lacking:
            raise InstrumentError(f"the instrument cache {given} lacks {', '.join(lacking)}")
        return reg
    return load(want, run_dir, refresh=False)


def for_role(cfg: Any, kind: str, *, environ: Mapping[str, str] = os.environ) -> SymbolRegistry:
    """The registry for a role of `kind` of a PipelineConfig."""
    return registry_for(wanted(cfg, [kind]), run_dir_of(cfg, environ), environ=environ)
