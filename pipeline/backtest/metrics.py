"""Performance metrics. Conventions (crypto trades all year):

  returns          on a fixed grid of `period_s` seconds: r_k = E_k / E_{k-1} - 1, where E_0 is
                   the initial capital and E_k the equity after the last tick at or before
                   t0 + k*period (the last point is the final equity)
  Sharpe           mean(r) / std(r, ddof=1) * sqrt(periods per year); None if < 2 returns or std 0
  Sortino          mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(periods per year); None if no downside
  periods per year 365 * 86400 / period_s
  CAGR             (E_end / E_0) ** (1 / years) - 1, years = (t_end - t0) / 365 days; None when the
                   span is 0 or the value overflows (short runs annualize absurdly: read with care)
  max drawdown     min over ticks of E / running max(E_0, E...) - 1 (a negative fraction), and its
                   duration: the longest time from a peak to the tick that regains it (or the end)
  exposure         fraction of the time span with a position open
  turnover         traded notional / initial capital
  win rate         closed round trips with positive P&L (net of fees and slippage) / round trips
"""
from __future__ import annotations

import math

import numpy as np

YEAR_S = 365 * 86400


def period_returns(samples: np.ndarray) -> np.ndarray:
    s = np.asarray(samples, dtype=np.float64)
    return s[1:] / s[:-1] - 1.0


def sharpe(samples: np.ndarray, period_s: float) -> float | None:
    r = period_returns(samples)
    if len(r) < 2:
        return None
    sd = float(r.std(ddof=1))
    if not sd > 0 or not math.isfinite(sd):
        return None
    return float(r.mean()) / sd * math.sqrt(YEAR_S / period_s)


def sortino(samples: np.ndarray, period_s: float) -> float | None:
    r = period_returns(samples)
    if len(r) < 1:
        return None
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if not dd > 0 or not math.isfinite(dd):
        return None
    return float(r.mean()) / dd * math.sqrt(YEAR_S / period_s)


def cagr(start_equity: float, end_equity: float, span_ns: int) -> float | None:
    if span_ns <= 0 or start_equity <= 0:
        return None
    if end_equity <= 0:
        return -1.0
    years = span_ns / 1e9 / YEAR_S
    try:
        v = math.exp(math.log(end_equity / start_equity) / years) - 1.0
    except OverflowError:
        return None
    return v if math.isfinite(v) else None


def max_drawdown(equity: np.ndarray, ts: np.ndarray, start_equity: float) -> tuple[float, int]:
    """(max drawdown as a negative fraction, its duration in ns) of an equity curve."""
    eq = np.asarray(equity, dtype=np.float64)
    ts = np.asarray(ts, dtype=np.int64)
    if len(eq) == 0:
        return 0.0, 0
    runmax = np.maximum.accumulate(np.concatenate(([float(start_equity)], eq)))[1:]
    dd = min(0.0, float((eq / runmax - 1.0).min()))
    at_peak = eq >= runmax
    idx = np.arange(len(eq))
    peak_idx = np.maximum.accumulate(np.where(at_peak, idx, -1))
    prev_peak_idx = np.concatenate(([-1], peak_idx[:-1]))      # -1: the start (capital, ts[0])
    prev_peak_ts = np.where(prev_peak_idx >= 0, ts[np.maximum(prev_peak_idx, 0)], ts[0])
    prev_at_peak = np.concatenate(([True], at_peak[:-1]))
    counted = ~at_peak | (at_peak & ~prev_at_peak)             # underwater, or the recovery tick
    if not counted.any():
        return dd, 0
    return dd, int((ts - prev_peak_ts)[counted].max())


SHORT_SAMPLE_DAYS = 3      # annualised figures carry a warning below this span


def summarize(stats: dict, samples: np.ndarray, t0: int, t1: int, capital: float,
              period_s: float, n_ticks: int) -> dict:
    """Every metric of one run from the kernel's statistics and its period-grid equity."""
    span = int(t1 - t0)
    end = float(stats["final_equity"])
    trades = int(stats["trades"])
    return {
        "total_return": end / capital - 1.0,
        "cagr": cagr(capital, end, span),
        "sharpe": sharpe(samples, period_s),
        "sortino": sortino(samples, period_s),
        "max_drawdown": float(stats["max_drawdown"]),
        "max_drawdown_duration_s": stats["max_drawdown_duration_ns"] / 1e9,
        "trades": trades,
        "win_rate": (stats["wins"] / trades) if trades else None,
        "exposure": (stats["exposure_ns"] / span) if span > 0 else None,
        "turnover": float(stats["turnover_notional"]) / capital,
        "fees": float(stats["fees"]),
        "fills": int(stats["n_fills"]),
        "signals": int(stats["n_signals"]),
        "final_equity": end,
        "ticks": int(n_ticks),
        "span_s": span / 1e9,
        **({"warning": f"the sample spans {span / 86400e9:.2f} days: annualised figures (cagr, "
                       f"sharpe, sortino) mean little below {SHORT_SAMPLE_DAYS} days"}
           if span < SHORT_SAMPLE_DAYS * 86400e9 else {}),
    }
