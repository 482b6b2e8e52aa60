"""Run the pipeline under a given placement and collect its hop latency histograms.

Used by scripts/profile_latency.py (tuned vs unpinned/blocking) and scripts/tune_affinity.py
(every placement). Each run gets its own run directory and gateway state directory, so runs never
see each other's journals or histograms.
"""
from __future__ import annotations

import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline import config as cfgmod
from pipeline.launcher import affinity, supervisor
from pipeline.telemetry import latency

ENDPOINT_HOP = "tick_to_order"
FALLBACK_HOP = "ring_to_strategy"
# A p99 of n samples rests on the n/100 largest: at 1,000 samples that is 10 values. Below this
# the tuner ranks on the p50 and says so; below MIN_P50_SAMPLES even that is mostly noise.
MIN_P99_SAMPLES = 1000
MIN_P50_SAMPLES = 20


@dataclass
class ProfileRun:
    label: str
    placement: affinity.Placement | None
    hists: dict
    summary: dict

    def hop(self, name: str) -> dict | None:
        h = self.hists.get(name)
        return latency.summarize(h) if h is not None and h.get_total_count() else None

    @property
    def ok(self) -> bool:
        return self.summary.get("stop_reason") == "duration"

    def count(self, hop: str) -> int:
        h = self.hists.get(hop)
        return int(h.get_total_count()) if h is not None else 0

    def rank_key(self, hop: str = ENDPOINT_HOP, stat: str = "p99") -> float:
        """`stat` of `hop` (ns); inf for a failed run or a hop without samples."""
        s = self.hop(hop)
        return float(s[stat]) if s and self.ok else float("inf")

    def extend(self, more: "ProfileRun") -> None:
        """Add a further run of the same placement: histograms merged, seconds summed, the
        later stop reason kept when it was not a normal end."""
        for hop, h in more.hists.items():
            if hop in self.hists:
                self.hists[hop].add(h)
            else:
                self.hists[hop] = h
        secs = self.summary.get("seconds", 0.0) + more.summary.get("seconds", 0.0)
        if not more.ok:
            self.summary = dict(more.summary)
        self.summary["seconds"] = secs


@dataclass
class Ranking:
    """What the tuner ranks placements on, and why."""
    hop: str
    stat: str                       # "p99" or "p50"
    min_count: int                  # the fewest samples of `hop` in any measured placement
    notes: list[str]

    def describe(self) -> str:
        return f"{self.hop} {self.stat}"


def choose_ranking(runs: list[ProfileRun], min_p99: int = MIN_P99_SAMPLES) -> Ranking | None:
    """One hop and one statistic for all placements (never a mix): tick → order when every
    measured placement sent orders, else ring → strategy; its p99 when every placement has at
    least `min_p99` samples of it, else its p50 (with a note saying so); a warning when even
    the p50 rests on fewer than MIN_P50_SAMPLES samples. None when no run measured anything."""
    ok = [r for r in runs if r.ok]
    for hop in (ENDPOINT_HOP, FALLBACK_HOP):
        if ok and all(r.count(hop) for r in ok):
            break
    else:
        return None
    counts = [r.count(hop) for r in ok]
    n = min(counts)
    notes = []
    if hop != ENDPOINT_HOP:
        notes.append(f"a placement sent no order: ranking on {hop} (strategy side only)")
    if n >= min_p99:
        return Ranking(hop, "p99", n, notes)
    notes.append(f"ranking on p50, not p99: the fewest {hop} samples in a placement are {n} "
                 f"(a p99 needs at least {min_p99}; raise --max-seconds or --seconds)")
    if n < MIN_P50_SAMPLES:
        notes.append(f"WARNING: only {n} samples: even the p50 ranking is mostly noise")
    return Ranking(hop, "p50", n, notes)


def next_chunk(count: int, seconds_run: float, min_samples: int, step: float,
               max_seconds: float) -> float:
    """How much longer to run a placement whose ranked hop has `count` samples after
    `seconds_run` s, to reach `min_samples` without passing `max_seconds` in all: 0 = stop.
    The rate seen so far sets the estimate (10 % margin, at least `step`)."""
    left = max_seconds - seconds_run
    if count >= min_samples or count == 0 or seconds_run <= 0 or left < 1.0:
        return 0.0
    need = (min_samples - count) / (count / seconds_run) * 1.1
    return min(left, max(step, need))


def roles_of(cfg: cfgmod.PipelineConfig) -> dict[str, str]:
    return {name: spec.kind for name, spec in cfg.roles.items()}


def run_variant(config_path: str | Path, label: str, placement: affinity.Placement | None,
                seconds: float, workdir: Path | None = None) -> ProfileRun:
    """Run the config (with `placement` applied, if any) for `seconds`; return its histograms.
    workdir: run there and keep it (logs, histograms); by default a temporary directory,
    removed at the end whatever happened."""
    if workdir is not None:
        return _run_variant(config_path, label, placement, seconds, Path(workdir))
    work = Path(tempfile.mkdtemp(prefix=f"profile-{label}-"))
    try:
        return _run_variant(config_path, label, placement, seconds, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_variant(config_path: str | Path, label: str, placement: affinity.Placement | None,
                 seconds: float, work: Path) -> ProfileRun:
    text = Path(config_path).read_text()
    if placement is not None:
        text = affinity.apply_to_toml(text, placement)
    work.mkdir(parents=True, exist_ok=True)
    base = cfgmod.loads(text, source=str(config_path))
    sets: dict = {("launcher", "run_dir"): str(work / "run"), ("launcher", "status_interval"): 0.0}
    if "gateway" in {s.kind for s in base.roles.values()}:
        sets[("gateway", "state_dir")] = str(work / "gateway-state")
        cred = base.gateway.credentials_file
        if cred:   # relative paths are the config's user's cwd; keep them absolute
            sets[("gateway", "credentials_file")] = str(Path(cred).resolve())
    text = affinity.set_keys(text, sets)
    variant = work / "config.toml"
    variant.write_text(text)
    cfg = cfgmod.load(variant)
    summary = supervisor.run(cfg, str(variant), duration=seconds, out=io.StringIO())
    hists = latency.load(sorted((work / "run").glob("*.hdr.json")))
    summary = dict(summary)
    summary.setdefault("seconds", seconds)
    return ProfileRun(label, placement, hists, summary)
