"""PNG plots of hop latency (matplotlib, Agg backend): one CDF per hop, log-scaled."""
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
