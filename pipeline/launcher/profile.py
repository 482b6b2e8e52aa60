"""Run the pipeline under a given placement and collect its hop latency histograms.

Used by scripts/profile_latency.py (tuned vs unpinned/blocking) and scripts/tune_affinity.py
(every placement). Each run gets its own run directory and gateway state directory, so runs never
see each other's journals or histograms.
"""
from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline import config as cfgmod
from pipeline.launcher import affinity, supervisor
from pipeline.telemetry import latency

ENDPOINT_HOP = "tick_to_order"
FALLBACK_HOP = "ring_to_strategy"


@dataclass
class ProfileRun:
    label: str
    placement: affinity.Placement | None
    hists: dict
    summary: dict

    def hop(self, name: str) -> dict | None:
        h = self.hists.get(name)
        return latency.summarize(h) if h is not None and h.get_total_count() else None

    def rank_key(self) -> float:
        """tick → order p99, or ring → strategy p99 if no order happened; inf if neither."""
        for hop in (ENDPOINT_HOP, FALLBACK_HOP):
            s = self.hop(hop)
            if s:
                return float(s["p99"])
        return float("inf")


def roles_of(cfg: cfgmod.PipelineConfig) -> dict[str, str]:
    return {name: spec.kind for name, spec in cfg.roles.items()}


def run_variant(config_path: str | Path, label: str, placement: affinity.Placement | None,
                seconds: float, workdir: Path | None = None) -> ProfileRun:
    """Run the config (with `placement` applied, if any) for `seconds`; return its histograms."""
    text = Path(config_path).read_text()
    if placement is not None:
        text = affinity.apply_to_toml(text, placement)
    work = Path(workdir or tempfile.mkdtemp(prefix=f"profile-{label}-"))
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
    return ProfileRun(label, placement, hists, summary)
