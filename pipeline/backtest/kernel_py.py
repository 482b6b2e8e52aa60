"""Pure-Python twin of ext/backtest.pyx: the same `sma_backtest`, vectorized with numpy.

Signals come from the vectorized rule (`sma_cross_signals`), latency is a `searchsorted`, the
account is stepped once per signal (not per tick), and the equity curve, drawdown, exposure and
the period grid are array expressions. Same signature, same results (tests/parity).
"""
from __future__ import annotations

import numpy as np

from pipeline.backtest.metrics import max_drawdown
from pipeline.strategy.sma import sma_cross_signals

FILL_FIELDS = ("tick", "signal", "qty", "price", "fee")


def sma_backtest(price, ts, reset, fast, slow, price_increment, bar_ns, allow_short, fee_rate,
                 slip_rate, half_spread, latency_ns, fixed_size, size, capital, period_ns, samples,
                 equity):
    price = np.asarray(price, dtype=np.float64)
    ts = np.asarray(ts, dtype=np.int64)
    n = price.shape[0]
    if ts.shape[0] != n:
        raise ValueError(f"ts has {ts.shape[0]} elements, price {n}")
    if len(reset) not in (0, n):
        raise ValueError(f"reset has {len(reset)} elements, price {n}")
    if len(half_spread) not in (0, n):
        raise ValueError(f"half_spread has {len(half_spread)} elements, price {n}")
    if len(equity) not in (0, n):
        raise ValueError(f"equity has {len(equity)} elements, price {n}")
    if n == 0:
        raise ValueError("no ticks")
    if fast < 1 or fast >= slow:
        raise ValueError(f"need 1 <= fast < slow, got fast={fast} slow={slow}")
    if period_ns <= 0:
        raise ValueError("period_ns must be > 0")
    need = max(1, (int(ts[-1]) - int(ts[0]) + period_ns - 1) // period_ns)
    if len(samples) < need + 1:
        raise ValueError(f"samples needs {need + 1} elements, got {len(samples)}")

    at, dirs = sma_cross_signals(price, fast, slow, price_increment,
                                 np.asarray(reset, dtype=bool) if len(reset) else None,
                                 ts=ts, bar_ns=int(bar_ns))
    # the first tick at or after the signal's own tick with ts >= its ts + latency (equal
    # timestamps: never a tick before the signal)
    exec_at = np.maximum(np.searchsorted(ts, ts[at] + latency_ns, side="left"), at)
    live = exec_at < n

    # ---- the account, stepped per signal
    cash, qty, unit, open_eq = float(capital), 0.0, 0, float(capital)
    trades = wins = 0
    turnover = fees = 0.0
    fills = {k: [] for k in FILL_FIELDS}
    state_tick, state_cash, state_qty, state_unit = [-1], [cash], [qty], [0]

    hs = np.asarray(half_spread, dtype=np.float64)

    def leg(dq: float, p: float, j: int, s: int) -> None:
        nonlocal cash, turnover, fees
        sr = slip_rate + float(hs[j]) if len(hs) else slip_rate
        pf = p * (1.0 + sr) if dq > 0 else p * (1.0 - sr)
        fee = abs(dq) * pf * fee_rate
        cash -= dq * pf
        cash -= fee
        turnover += abs(dq) * pf
        fees += fee
        for k, v in zip(FILL_FIELDS, (j, s, dq, pf, fee)):
            fills[k].append(v)

    for s, d, j in zip(at[live].tolist(), dirs[live].tolist(), exec_at[live].tolist()):
        target = d if (d > 0 or allow_short) else 0
        if target == unit:
            continue
        p = float(price[j])
        if unit != 0:
            leg(-qty, p, j, s)
            qty, unit = 0.0, 0
            trades += 1
            wins += cash - open_eq > 0
        if target != 0:
            sr = slip_rate + float(hs[j]) if len(hs) else slip_rate
            amount = size if fixed_size else size * cash / (p * (1.0 + sr) * (1.0 + fee_rate))
            if amount > 0:
                open_eq = cash
                qty = target * amount
                leg(qty, p, j, s)
                unit = target
        if state_tick[-1] == j:
            state_cash[-1], state_qty[-1], state_unit[-1] = cash, qty, unit
        else:
            state_tick.append(j)
            state_cash.append(cash)
            state_qty.append(qty)
            state_unit.append(unit)

    # ---- marking, vectorized: the account state in force after each tick
    st = np.searchsorted(np.asarray(state_tick[1:], dtype=np.int64),
                         np.arange(n, dtype=np.int64), side="right")
    eq = np.asarray(state_cash)[st] + np.asarray(state_qty)[st] * price
    if len(equity):
        equity[:] = eq
    max_dd, dd_dur = max_drawdown(eq, ts, float(capital))
    units = np.asarray(state_unit)[st]
    exposure_ns = int(((ts[1:] - ts[:-1]) * (units[:-1] != 0)).sum())
    bounds = ts[0] + period_ns * np.arange(1, need + 1, dtype=np.int64)
    samples[0] = capital
    samples[1:need + 1] = eq[np.searchsorted(ts, bounds, side="right") - 1]

    stats = {"final_equity": float(eq[-1]), "cash": cash, "qty": qty, "unit": unit,
             "trades": trades, "wins": int(wins), "turnover_notional": turnover, "fees": fees,
             "n_fills": len(fills["tick"]), "n_signals": int(len(at)),
             "max_drawdown": max_dd, "max_drawdown_duration_ns": dd_dur,
             "exposure_ns": exposure_ns, "n_samples": need + 1,
             "pending_at_end": int((~live).sum())}
    out = {k: np.asarray(v, dtype=np.int64 if k in ("tick", "signal") else np.float64)
           for k, v in fills.items()}
    return stats, out
