"""The backtest engine: one SMA-crossover run over a Market with an execution model.

    m = data.load_market("ticks.npy")                     # or market_from_arrays / _records
    res = run_sma(m, fast=20, slow=100, model=BacktestConfig(fee_taker_bps=10, slippage_bps=1))
    res.metrics["sharpe"], res.equity, res.fills

The work happens in one compiled pass (ext/backtest.pyx; `backend="python"` runs the vectorized
numpy twin, pipeline/backtest/kernel_py.py, with identical results). The strategy rule is exactly
the live one (pipeline/strategy/sma.py). Model (BacktestConfig):

  fees      taker or maker bps on each fill's notional (`liquidity` picks which)
  slippage  every fill pays s = slippage_bps + the half-spread against it: buys at p*(1+s),
            sells at p*(1-s), p = the trade price of the tick it fills at; the half-spread is
            half_spread_bps (spread="constant") or, with spread="quotes", (ask-bid)/(ask+bid) of
            the latest BID/ASK records before that tick (record inputs that carry quotes)
  latency   a signal made at tick i fills at the first tick j >= i with ts[j] >= ts[i] + latency
            (latency 0: at tick i itself)
  sizing    fraction: the position's quantity is fraction x equity / p at entry; fixed: fixed_qty
  mode      long_flat: up → long, down → flat; long_short: down → short (a reversal is a close
            leg then an open leg, each paying its own costs)
Equity is marked at every tick's trade price: cash + qty x p.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline import _native
from pipeline.backtest import metrics as M
from pipeline.backtest.data import Market, check_price_range
from pipeline.config import BacktestConfig
from pipeline.strategy.sma import check_windows


def kernel(backend: str = "cython"):
    if backend == "cython":
        return _native.load("backtest").sma_backtest
    if backend == "python":
        from pipeline.backtest import kernel_py
        return kernel_py.sma_backtest
    raise ValueError(f"unknown backtest backend {backend!r} (cython or python)")


@dataclass
class Result:
    fast: int
    slow: int
    metrics: dict
    stats: dict
    fills: dict            # arrays: tick, signal, qty (signed), price, fee
    samples: np.ndarray    # equity on the period grid
    equity: np.ndarray | None


def n_samples(m: Market, period_ns: int) -> int:
    return max(1, (int(m.ts[-1]) - int(m.ts[0]) + period_ns - 1) // period_ns) + 1


def check(fast: int, slow: int, model: BacktestConfig) -> None:
    """Parameter checks (before any data is read)."""
    try:
        check_windows(fast, slow)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(model, BacktestConfig):
        raise TypeError(f"model must be a BacktestConfig, got {type(model).__name__}")


def run_sma(m: Market, fast: int, slow: int, model: BacktestConfig | None = None, *,
            keep_equity: bool = True, backend: str = "cython", bar_ms: int = 0,
            checked: bool = False) -> Result:
    """One backtest. `bar_ms` > 0: SMAs over time-bar closes (pipeline/strategy/sma.py).
    `checked=True` skips the O(n) input checks (the caller ran them)."""
    model = BacktestConfig() if model is None else model
    if not checked:
        check(fast, slow, model)
        if bar_ms < 0:
            raise ValueError(f"bar_ms must be >= 0, got {bar_ms}")
        check_price_range(m, fast, slow, model.price_increment)
    run = kernel(backend)
    fee_bps = model.fee_taker_bps if model.liquidity == "taker" else model.fee_maker_bps
    period_ns = max(1, int(round(model.period_s * 1e9)))
    if model.spread == "quotes":
        if len(m.half_spread) != len(m):
            raise ValueError(f"{m.source}: spread='quotes' needs BID/ASK records of the "
                             f"instrument in the input; it has none")
        hs, const_hs = m.half_spread, 0.0
    else:
        hs, const_hs = np.empty(0, np.float64), model.half_spread_bps
    samples = np.empty(n_samples(m, period_ns), dtype=np.float64)
    equity = np.empty(len(m), dtype=np.float64) if keep_equity else np.empty(0, np.float64)
    stats, fills = run(m.price, m.ts, m.reset, int(fast), int(slow), float(model.price_increment),
                       int(bar_ms) * 1_000_000, model.mode == "long_short", fee_bps / 1e4,
                       (model.slippage_bps + const_hs) / 1e4, hs,
                       int(round(model.latency_ms * 1e6)), model.sizing == "fixed",
                       float(model.fixed_qty if model.sizing == "fixed" else model.fraction),
                       float(model.initial_capital), period_ns, samples, equity)
    met = M.summarize(stats, samples, int(m.ts[0]), int(m.ts[-1]), model.initial_capital,
                      model.period_s, len(m))
    return Result(fast, slow, met, stats, fills, samples, equity if keep_equity else None)
