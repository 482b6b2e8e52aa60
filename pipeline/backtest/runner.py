"""Any strategy, by its config `kind`, through the event backtester; and sweeps over its params.

    run = run_strategy(recs, "examples/strategies/momentum.py:Momentum", {"lookback": 200},
                       model)
    res = sweep_strategy(recs, kind, grid={"lookback": [50, 100, 200]}, model=model,
                         processes=None)        # all cores; ray_address="auto" → a Ray cluster

Params are checked strictly against the strategy's Params dataclass, like the config's
[[strategy.instances]].params. Sizing: `sizing = "fixed"` trades `fixed_qty` per unit of
position; `sizing = "fraction"` sizes the unit once, from the first trade price, so that price +
slippage + taker fee of `fraction` x capital fit the cash (rounded down to step_size).
"""
from __future__ import annotations

import itertools
import logging
import math
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import config as cfgmod
from pipeline.backtest.data import DataError
from pipeline.backtest.events import EventEngine, EventRun
from pipeline.records import Kind, Venue
from pipeline.registry import DEFAULT as REG

log = logging.getLogger(__name__)


def instrument_of(recs: np.ndarray, symbol: str | None = None) -> tuple[int, int, str]:
    """(venue, symbol id, name): from "VENUE:SYMBOL", or the first trade's instrument."""
    if symbol:
        v, _, s = symbol.partition(":")
        try:
            venue = Venue[v.upper()]
        except KeyError:
            raise DataError(f"--symbol: unknown venue {v!r}") from None
        return int(venue), REG.id(venue, s), s.upper()
    trade = np.flatnonzero((recs["kind"] == Kind.TRADE) | (recs["kind"] == Kind.AGG_TRADE))
    if len(trade) == 0:
        raise DataError("no trades in the input; name the instrument with --symbol")
    r = recs[trade[0]]
    venue, sid = int(r["venue"]), int(r["symbol"])
    try:
        name = REG.instrument(sid).symbol
    except KeyError:
        name = f"SYMBOL{sid}"
    return venue, sid, name


def unit_qty(recs: np.ndarray, model, sid: int) -> float:
    if model.sizing == "fixed":
        return float(model.fixed_qty)
    m = (recs["symbol"] == sid) & ((recs["kind"] == Kind.TRADE) | (recs["kind"] == Kind.AGG_TRADE))
    idx = np.flatnonzero(m)
    if len(idx) == 0:
        raise DataError("sizing = fraction needs a trade price of the instrument")
    p = float(recs["price"][idx[0]])
    cost = p * (1 + (model.slippage_bps + model.half_spread_bps) / 1e4) * \
        (1 + model.fee_taker_bps / 1e4)
    q = model.fraction * model.initial_capital / cost
    step = model.step_size
    return math.floor(q / step + 1e-9) * step if step > 0 else q


def make_strategy(kind: str, params: dict, *, venue: int, symbol: int, qty: float,
                  allow_short: bool, base_dir: str | Path | None = None, strategy_id: int = 1):
    from pipeline.strategy import loader
    cls = loader.resolve(kind, base_dir, where="--strategy")
    p = cfgmod.from_dict(cls.Params, dict(params), source="--param", where="params")
    return cls(p, strategy_id=strategy_id, venue=venue, symbol=symbol, qty=qty,
               allow_short=allow_short, ttl_ns=60_000_000_000)


def risk_for(model, risk_cfg, venue: int, sid: int, name: str):
    if not model.risk_checks:
        return None
    from pipeline.backtest.exchange import risk_kernel
    return risk_kernel(risk_cfg or cfgmod.RiskConfig(), model, venue=venue, name=name,
                       symbol_id=sid)


def run_strategy(recs: np.ndarray, kind: str, params: dict, model, *, symbol: str | None = None,
                 risk_cfg=None, base_dir=None, compiled: bool = True) -> tuple[EventRun, object]:
    venue, sid, name = instrument_of(recs, symbol)
    st = make_strategy(kind, params, venue=venue, symbol=sid, qty=unit_qty(recs, model, sid),
                       allow_short=model.mode == "long_short", base_dir=base_dir)
    eng = EventEngine(recs, [st], model, risk=risk_for(model, risk_cfg, venue, sid, name),
                      compiled=compiled)
    return eng.run(), st


# ----------------------------------------------------------------------------- sweeps
_W: dict = {}


def _init(recs, kind, base_dir, model, symbol, risk_cfg) -> None:
    _W.update(recs=recs, kind=kind, base_dir=base_dir, model=model, symbol=symbol,
              risk_cfg=risk_cfg)


def _cell(params: dict) -> tuple[dict, dict]:
    run, _ = run_strategy(_W["recs"], _W["kind"], params, _W["model"], symbol=_W["symbol"],
                          risk_cfg=_W["risk_cfg"], base_dir=_W["base_dir"])
    return params, run.metrics


@dataclass
class ParamSweep:
    names: list[str]
    rows: list[dict]           # params + every metric, one per cell
    seconds: float
    workers: int
    backend: str

    def best(self, metric: str = "sharpe") -> dict | None:
        rows = [r for r in self.rows if r.get(metric) is not None]
        return max(rows, key=lambda r: r[metric]) if rows else None

    def table(self, metric: str = "sharpe", top: int = 20) -> str:
        rows = sorted(self.rows, key=lambda r: (r.get(metric) is None, -(r.get(metric) or 0)))
        head = " ".join(f"{n:>12}" for n in self.names) + \
            f" {'return %':>10} {metric:>9} {'maxDD %':>9} {'trades':>8}"
        out = [head]
        for r in rows[:top]:
            m = r.get(metric)
            out.append(" ".join(f"{r[n]!s:>12}" for n in self.names) +
                       f" {r['total_return'] * 100:>10.2f} "
                       f"{(f'{m:.3f}' if m is not None else 'n/a'):>9} "
                       f"{r['max_drawdown'] * 100:>9.2f} {r['trades']:>8}")
        return "\n".join(out)


def grid_cells(grid: dict[str, list]) -> list[dict]:
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def sweep_strategy(recs: np.ndarray, kind: str, grid: dict[str, list], model, *,
                   base_dict: dict | None = None, symbol: str | None = None, risk_cfg=None,
                   base_dir=None, processes: int | None = None, start_method: str = "spawn",
                   ray_address: str | None = None, progress=None) -> ParamSweep:
    """Every cell of the grid (merged over `base_dict`), on all cores or on a Ray cluster."""
    from pipeline.strategy import loader
    cls = loader.resolve(kind, base_dir, where="--strategy")      # errors before any worker
    cells = [{**(base_dict or {}), **c} for c in grid_cells(grid)]
    if not cells:
        raise ValueError("the grid has no cells")
    for c in cells:
        cfgmod.from_dict(cls.Params, dict(c), source="--grid", where="params")
    t0 = time.perf_counter()
    rows = []
    base_dir = None if base_dir is None else str(base_dir)
    if ray_address:
        rows, workers = _ray_sweep(recs, kind, base_dir, model, symbol, risk_cfg, cells,
                                   ray_address, progress)
        backend = "ray"
    else:
        workers = max(1, min(processes or os.cpu_count() or 1, len(cells)))
        backend = "process"
        if workers == 1:
            _init(recs, kind, base_dir, model, symbol, risk_cfg)
            results = map(_cell, cells)
            for k, (p, met) in enumerate(results, 1):
                rows.append({**p, **met})
                if progress:
                    progress(k, len(cells))
        else:
            ctx = mp.get_context(start_method)
            with ctx.Pool(workers, initializer=_init,
                          initargs=(np.asarray(recs), kind, base_dir, model, symbol,
                                    risk_cfg)) as pool:
                for k, (p, met) in enumerate(pool.imap_unordered(_cell, cells), 1):
                    rows.append({**p, **met})
                    if progress:
                        progress(k, len(cells))
    names = list(grid)
    rows.sort(key=lambda r: tuple(r[n] for n in names))
    return ParamSweep(names, rows, time.perf_counter() - t0, workers, backend)


def _ray_sweep(recs, kind, base_dir, model, symbol, risk_cfg, cells, address, progress):
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs the optional Ray extra: pip install 'pipeline[ray]'") \
            from None
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, ignore_reinit_error=True,
                 log_to_driver=False)
    data = ray.put(np.asarray(recs))

    @ray.remote
    def cell(recs_ref, params):
        _init(recs_ref, kind, base_dir, model, symbol, risk_cfg)
        return _cell(params)
    futures = [cell.remote(data, c) for c in cells]
    rows = []
    for k, fut in enumerate(futures, 1):
        p, met = ray.get(fut)
        rows.append({**p, **met})
        if progress:
            progress(k, len(cells))
    workers = int(ray.cluster_resources().get("CPU", 1))
    return rows, workers
