"""PNG plots (matplotlib, Agg backend): hop latency CDFs per hop, log-scaled (`hop_cdfs`); the
run's trading: price with orders and fills, position, PnL (`trading`)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402

from pipeline.telemetry.latency import HOPS  # noqa: E402


def _cdf(h: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    pcts = np.concatenate([np.linspace(0, 90, 46), 90 + 9 * np.linspace(0, 1, 30) ** 0.5,
                           [99.5, 99.9, 99.99, 100]])
    vals = np.array([h.get_value_at_percentile(p) for p in pcts], dtype=float)
    return vals, pcts


def hop_cdfs(runs: dict[str, dict[str, HdrHistogram]], path: str | Path, title: str) -> Path:
    """One panel per hop; one line per run (e.g. "tuned" vs "baseline")."""
    hops = [h for h in list(HOPS) + sorted({k for r in runs.values() for k in r} - set(HOPS))
            if any(h in r and r[h].get_total_count() for r in runs.values())]
    n = max(1, len(hops))
    cols = 3 if n > 4 else 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), squeeze=False)
    for ax, hop in zip(axes.flat, hops):
        for label, hists in runs.items():
            h = hists.get(hop)
            if h is None or not h.get_total_count():
                continue
            x, y = _cdf(h)
            ax.plot(np.maximum(x, 1) / 1000.0, y, label=f"{label} (n={h.get_total_count():,})")
        ax.set_xscale("log")
        ax.set_title(hop, fontsize=10)
        ax.set_xlabel("latency, µs")
        ax.set_ylabel("percentile")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(hops):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def trading(prices: dict[str, tuple[np.ndarray, np.ndarray]], record, symbols: dict[str, tuple],
            path: str | Path, title: str) -> Path | None:
    """Per traded symbol: the price with the strategy's orders (▲ buy, ▼ sell, at the price of
    the moment) and fills (dots at the fill price); the position; PnL before and after fees,
    marked to market. `symbols`: symbol → (base, quote); `record`: market.TradingRecord."""
    from pipeline.telemetry.market import pnl_path
    syms = [s for s in symbols if s in prices and len(prices[s][0]) > 1]
    if not syms:
        return None
    ts0 = min(int(prices[s][0][0]) for s in syms)
    fig, axes = plt.subplots(3 * len(syms), 1, figsize=(11, 7.5 * len(syms)), squeeze=False,
                             sharex=True, gridspec_kw={"height_ratios": [3, 1.2, 1.6] * len(syms)})
    axes = axes[:, 0]
    for k, sym in enumerate(syms):
        base, quote = symbols[sym]
        ts, px = prices[sym]
        x = (ts - ts0) / 1e9
        ax, axp, axl = axes[3 * k], axes[3 * k + 1], axes[3 * k + 2]
        ax.plot(x, px, color="0.35", lw=0.9, label=f"{sym} last trade")
        orders = [o for o in record.orders if o["symbol"] == sym]
        fills = [f for f in record.fills if f["symbol"] == sym]
        for side, marker, color, name in ((1, "^", "tab:green", "buy"), (-1, "v", "tab:red", "sell")):
            os_ = [o for o in orders if o["side"] == side]
            if os_:
                t = np.array([int(o["t"]) for o in os_])
                at = np.array([o["price"] if o["price"] else px[min(np.searchsorted(ts, tt), len(px) - 1)]
                               for o, tt in zip(os_, t)])
                ax.scatter((t - ts0) / 1e9, at, marker=marker, s=60, color=color, alpha=0.55,
                           edgecolors="none", label=f"{name} orders ({len(os_)})", zorder=3)
            fs = [f for f in fills if f["side"] == side]
            if fs:
                ax.scatter([(int(f["t"]) - ts0) / 1e9 for f in fs], [f["price"] for f in fs],
                           marker="o", s=14, color=color, edgecolors="black", linewidths=0.5,
                           label=f"{name} fills ({len(fs)})", zorder=4)
        ax.set_ylabel(f"price, {quote}")
        ax.set_title(f"{sym}: price, orders and fills", fontsize=10)
        ax.legend(fontsize=7, loc="best", ncol=3)
        ax.grid(True, alpha=0.3)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        pos, gross, net = pnl_path(fills, ts, px, base, quote)
        axp.step(x, pos, where="post", color="tab:blue")
        axp.axhline(0, color="0.6", lw=0.6)
        axp.set_ylabel(f"position, {base}")
        axp.grid(True, alpha=0.3)
        axl.plot(x, gross, color="tab:purple", label="PnL before fees")
        axl.plot(x, net, color="tab:orange", label="PnL after fees")
        axl.axhline(0, color="0.6", lw=0.6)
        axl.set_ylabel(f"PnL, {quote}")
        axl.legend(fontsize=7, loc="best")
        axl.grid(True, alpha=0.3)
    axes[-1].set_xlabel("seconds since the first trade of the run")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run_plots(cfg, summary: dict, out_dir: str | Path, label: str) -> list[Path]:
    """The launcher's plots of a finished run: trading.png and hop_latency.png in `out_dir`."""
    from pipeline.telemetry import latency
    from pipeline.telemetry.market import trading_record
    run_dir = Path(cfg.launcher.run_dir)
    written = []
    tr = summary.get("trading")
    npz = run_dir / "market.npz"
    if tr and npz.exists():
        with np.load(npz) as z:
            prices = {k[:-3]: (z[k], z[k[:-3] + "__p"]) for k in z.files if k.endswith("__t")}
        from pipeline.gateway.assembly import state_paths
        record = trading_record(state_paths(cfg.gateway)["journal"], summary.get("started_ns", 0))
        syms = {s: (d["base"], d["quote"]) for s, d in tr["symbols"].items()}
        p = trading(prices, record, syms, Path(out_dir) / "trading.png",
                    f"the strategy's trading, {label}")
        if p is not None:
            written.append(p)
    hists = latency.load(sorted(run_dir.glob("*.hdr.json")))
    if hists:
        written.append(hop_cdfs({"this run": hists}, Path(out_dir) / "hop_latency.png",
                                f"hop latency, {label}"))
    return written
