"""Backtest reports: a text table, JSON, and PNG plots (matplotlib, Agg backend).

Plots: price.png (trade prices with entries ▲ and exits ▼), equity.png, drawdown.png; for sweeps
heatmap_<metric>.png. Long series are decimated for drawing (every k-th point, k chosen for
~100k points); fills are drawn exactly, up to 5,000 markers per side.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.backtest.data import Market  # noqa: E402

MAX_POINTS = 100_000
MAX_MARKERS = 5_000

ROWS = [("total_return", "Total return", "pct"), ("cagr", "CAGR", "pct"),
        ("sharpe", "Sharpe", "num"), ("sortino", "Sortino", "num"),
        ("max_drawdown", "Max drawdown", "pct"),
        ("max_drawdown_duration_s", "Max drawdown duration", "dur"),
        ("trades", "Trades (round trips)", "int"), ("win_rate", "Win rate", "pct"),
        ("exposure", "Exposure", "pct"), ("turnover", "Turnover (x capital)", "num"),
        ("fees", "Fees paid", "num"), ("signals", "Signals", "int"), ("fills", "Fills", "int"),
        ("final_equity", "Final equity", "num"), ("ticks", "Ticks", "int"),
        ("span_s", "Span", "dur")]


def _fmt(v, kind: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if kind == "pct":
        return f"{v * 100:,.2f} %"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "dur":
        s = float(v)
        if s >= 86400:
            return f"{s / 86400:,.2f} d"
        if s >= 3600:
            return f"{s / 3600:,.2f} h"
        return f"{s:,.1f} s"
    return f"{v:,.4f}"


def text_table(metrics: dict, title: str = "") -> str:
    lines = [title] if title else []
    w = max(len(label) for _, label, _ in ROWS)
    for key, label, kind in ROWS:
        if key in metrics:
            lines.append(f"  {label:<{w}}  {_fmt(metrics[key], kind):>16}")
    return "\n".join(lines)


def _clean(v):
    """JSON-safe: NaN/inf → None, numpy scalars → Python."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_json(path: str | Path, obj: dict) -> None:
    Path(path).write_text(json.dumps(_clean(obj), indent=1, sort_keys=False))


def merge_bench_json(path: str | Path, doc: dict,
                     sections=("results", "baselines", "ratios", "config")) -> None:
    """Write a benchmark's `doc` into `path`, keeping the keys an earlier run (or another
    benchmark) wrote there: each of `sections` is merged key by key, other keys replaced."""
    path = Path(path)
    old: dict = {}
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
    merged = {**old, **doc}
    for sec in sections:
        merged[sec] = {**old.get(sec, {}), **doc.get(sec, {})}
    path.write_text(json.dumps(merged, indent=1))


def _dec(n: int) -> slice:
    return slice(None, None, max(1, n // MAX_POINTS))


def _times(ts: np.ndarray) -> np.ndarray:
    return ts.astype("datetime64[ns]")


def plot_run(result, m: Market, outdir: str | Path, title: str = "") -> list[Path]:
    """price.png, equity.png, drawdown.png for one run (needs result.equity)."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    if result.equity is None:
        raise ValueError("plot_run needs a result with its equity curve (keep_equity=True)")
    sl = _dec(len(m))
    x = _times(m.ts)
    paths = []

    fig, ax = plt.subplots(figsize=(12, 5))
    ax.plot(x[sl], m.price[sl], lw=0.6, color="0.35", label="trade price")
    f = result.fills
    for mask, marker, color, label in ((f["qty"] > 0, "^", "tab:green", "buy"),
                                       (f["qty"] < 0, "v", "tab:red", "sell")):
        ticks = f["tick"][mask]
        if len(ticks) > MAX_MARKERS:
            ticks = ticks[:: len(ticks) // MAX_MARKERS + 1]
        ax.scatter(x[ticks], m.price[ticks], marker=marker, s=18, color=color, label=label,
                   zorder=3)
    ax.set_title(f"{title} price with entries/exits".strip())
    ax.legend(loc="best")
    fig.autofmt_xdate()
    paths.append(out / "price.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    eq = result.equity
    fig, ax = plt.subplots(figsize=(12, 4))
    ax.plot(x[sl], eq[sl], lw=0.8, color="tab:blue")
    ax.set_title(f"{title} equity".strip())
    fig.autofmt_xdate()
    paths.append(out / "equity.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    start = result.samples[0]
    runmax = np.maximum.accumulate(np.concatenate(([start], eq)))[1:]
    dd = eq / runmax - 1.0
    fig, ax = plt.subplots(figsize=(12, 3.5))
    ax.fill_between(x[sl], dd[sl] * 100, 0, color="tab:red", alpha=0.4, lw=0)
    ax.set_ylabel("%")
    ax.set_title(f"{title} drawdown (max {result.metrics['max_drawdown'] * 100:.2f} %)".strip())
    fig.autofmt_xdate()
    paths.append(out / "drawdown.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def plot_heatmap(grid: np.ndarray, fasts: list[int], slows: list[int], metric: str,
                 path: str | Path) -> Path:
    """A fast × slow heatmap of one metric (NaN cells: fast >= slow or metric undefined)."""
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(slows) + 2), max(4, 0.45 * len(fasts) + 2)))
    data = np.ma.masked_invalid(grid.astype(float))
    im = ax.imshow(data, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(slows)), [str(s) for s in slows], rotation=45)
    ax.set_yticks(range(len(fasts)), [str(f) for f in fasts])
    ax.set_xlabel("slow window")
    ax.set_ylabel("fast window")
    ax.set_title(f"SMA sweep: {metric}")
    fig.colorbar(im, ax=ax)
    if grid.size <= 400:
        for i in range(len(fasts)):
            for j in range(len(slows)):
                v = grid[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7, color="w")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


# ----------------------------------------------------------------------------- event runs
def write_trades_csv(path: str | Path, fills: np.ndarray) -> Path:
    """One line per fill of an event run: time (UTC ISO and ns), record index, symbol, side,
    qty, price, fee, maker, strategy and client id."""
    path = Path(path)
    with path.open("w") as f:
        f.write("time_utc,ts_ns,index,symbol,side,qty,price,fee,liquidity,strategy,client_id\n")
        for r in fills:
            t = np.datetime64(int(r["ts"]), "ns").astype("datetime64[us]")
            f.write(f"{t}Z,{int(r['ts'])},{int(r['index'])},{int(r['symbol'])},"
                    f"{'BUY' if r['qty'] > 0 else 'SELL'},{abs(float(r['qty'])):.10g},"
                    f"{float(r['price']):.10g},{float(r['fee']):.10g},"
                    f"{'maker' if r['maker'] else 'taker'},{int(r['strategy'])},"
                    f"{int(r['client_id'])}\n")
    return path


def plot_event_run(run, outdir: str | Path, title: str = "", capital: float = 0.0) -> list[Path]:
    """equity.png, drawdown.png, position.png of an event run."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    eq, ts = run.equity, run.equity_ts
    if len(eq) == 0:
        return []
    sl = _dec(len(eq))
    x = _times(ts)
    paths = []
    start = capital or float(eq[0])
    runmax = np.maximum.accumulate(np.concatenate(([start], eq)))[1:]
    for name, y, kw in (("equity", eq, {}), ("drawdown", (eq / runmax - 1.0) * 100, {}),
                        ("position", run.position, {})):
        fig, ax = plt.subplots(figsize=(12, 3.8))
        if name == "drawdown":
            ax.fill_between(x[sl], y[sl], 0, color="tab:red", alpha=0.4, lw=0)
            ax.set_ylabel("%")
        elif name == "position":
            ax.step(x[sl], y[sl], where="post", lw=0.8, color="tab:purple")
            ax.set_ylabel("|position|, base units")
        else:
            ax.plot(x[sl], y[sl], lw=0.8, color="tab:blue", **kw)
        ax.set_title(f"{title} {name}".strip())
        fig.autofmt_xdate()
        paths.append(out / f"{name}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
