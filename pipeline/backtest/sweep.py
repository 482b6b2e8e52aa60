"""Parameter sweeps: every (fast, slow) cell of a grid, on all cores.

Workers are started with an explicit start method ("spawn" by default: nothing of the parent —
threads, sockets, matplotlib state — leaks into them). The market arrays go to each worker once,
through the pool initializer; tasks are just (fast, slow). Each cell is exactly `run_sma` on the
same data (tests check cells against individual runs). Cells with fast >= slow are skipped (NaN).
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pipeline.backtest.data import Market, check_price_range
from pipeline.backtest.engine import run_sma
from pipeline.config import BacktestConfig

log = logging.getLogger(__name__)

_W: dict = {}


def _init(price, ts, reset, source, model, backend, bar_ms=0, half_spread=None) -> None:
    _W["m"] = Market(price, ts, reset, source)
    if half_spread is not None:
        _W["m"].half_spread = half_spread
    _W["model"] = model
    _W["backend"] = backend
    _W["bar_ms"] = bar_ms


def _cell(fs: tuple[int, int]) -> tuple[int, int, dict]:
    f, s = fs
    r = run_sma(_W["m"], f, s, _W["model"], keep_equity=False, backend=_W["backend"],
                bar_ms=_W["bar_ms"], checked=True)
    return f, s, r.metrics


@dataclass
class SweepResult:
    fasts: list[int]
    slows: list[int]
    rows: list[dict]            # one per evaluated cell: fast, slow and every metric
    seconds: float
    processes: int

    def grid(self, metric: str) -> np.ndarray:
        g = np.full((len(self.fasts), len(self.slows)), np.nan)
        fi = {f: i for i, f in enumerate(self.fasts)}
        si = {s: j for j, s in enumerate(self.slows)}
        for r in self.rows:
            v = r.get(metric)
            if v is not None:
                g[fi[r["fast"]], si[r["slow"]]] = v
        return g

    def best(self, metric: str = "sharpe") -> dict | None:
        rows = [r for r in self.rows if r.get(metric) is not None]
        return max(rows, key=lambda r: r[metric]) if rows else None

    def table(self, metric: str = "sharpe", top: int = 20) -> str:
        rows = sorted(self.rows, key=lambda r: (r.get(metric) is None, -(r.get(metric) or 0)))
        head = (f"{'fast':>6} {'slow':>6} {'return %':>10} {'sharpe':>9} {'sortino':>9} "
                f"{'maxDD %':>9} {'trades':>8} {'win %':>7}")
        out = [head]

        def f(v, scale=1.0, w=9, p=2):
            return f"{v * scale:>{w}.{p}f}" if v is not None else f"{'n/a':>{w}}"
        for r in rows[:top]:
            out.append(f"{r['fast']:>6} {r['slow']:>6} {f(r['total_return'], 100, 10)} "
                       f"{f(r['sharpe'])} {f(r['sortino'])} {f(r['max_drawdown'], 100)} "
                       f"{r['trades']:>8} {f(r['win_rate'], 100, 7, 1)}")
        return "\n".join(out)


def sweep(m: Market, fasts: list[int], slows: list[int], model: BacktestConfig | None = None, *,
          processes: int | None = None, start_method: str = "spawn", backend: str = "cython",
          bar_ms: int = 0, progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Run every cell with fast < slow. processes=None → all cores; 1 → in this process."""
    model = BacktestConfig() if model is None else model
    fasts = sorted(set(int(f) for f in fasts))
    slows = sorted(set(int(s) for s in slows))
    if not fasts or not slows:
        raise ValueError("sweep needs at least one fast and one slow window")
    if bar_ms < 0:
        raise ValueError(f"bar_ms must be >= 0, got {bar_ms}")
    if fasts[0] < 1:
        raise ValueError(f"SMA fast window must be >= 1, got {fasts[0]}")
    cells = [(f, s) for f in fasts for s in slows if f < s]
    if not cells:
        raise ValueError(f"no cell of the grid has fast < slow (fast {fasts}, slow {slows})")
    if model.spread == "quotes" and len(m.half_spread) != len(m):
        raise ValueError(f"{m.source}: spread='quotes' needs BID/ASK records of the instrument")
    worst = max(cells, key=lambda c: c[0] * c[1])
    check_price_range(m, worst[0], worst[1], model.price_increment)
    n_proc = processes or os.cpu_count() or 1
    n_proc = max(1, min(n_proc, len(cells)))
    t0 = time.perf_counter()
    rows = []
    if n_proc == 1:
        _init(m.price, m.ts, m.reset, m.source, model, backend, bar_ms, m.half_spread)
        for k, c in enumerate(cells, 1):
            f, s, met = _cell(c)
            rows.append({"fast": f, "slow": s, **met})
            if progress:
                progress(k, len(cells))
    else:
        ctx = mp.get_context(start_method)
        with ctx.Pool(n_proc, initializer=_init,
                      initargs=(m.price, m.ts, m.reset, m.source, model, backend,
                                bar_ms, m.half_spread)) as pool:
            for k, (f, s, met) in enumerate(pool.imap_unordered(_cell, cells), 1):
                rows.append({"fast": f, "slow": s, **met})
                if progress:
                    progress(k, len(cells))
    rows.sort(key=lambda r: (r["fast"], r["slow"]))
    return SweepResult(fasts, slows, rows, time.perf_counter() - t0, n_proc)
