"""`scripts/backtest.py --grid` as the README shows it, in its own process: a sweep over a
plug-in strategy's parameters on worker processes and on a local Ray instance (`--ray local`;
Ray is in the test extra), each cell equal to that cell's single run; a bad grid is a clear
error, not a traceback."""
from __future__ import annotations

import json
import subprocess as sp
import sys
from pathlib import Path

import numpy as np

from pipeline.backtest import runner, synth
from pipeline.config import BacktestConfig

REPO = Path(__file__).resolve().parents[2]
MOM = "examples/strategies/momentum.py:Momentum"
MODEL = ["--latency-ms", "1", "--sizing", "fixed", "--qty", "0.1", "--capital", "1000000"]


def sweep_cli(tmp_path: Path, *extra: str) -> tuple[sp.CompletedProcess, dict | None]:
    data = tmp_path / "trades.npy"
    if not data.exists():
        np.save(data, synth.trades(8_000, seed=5))
    out = tmp_path / "sweep.json"
    p = sp.run([sys.executable, str(REPO / "scripts" / "backtest.py"), "--data", str(data),
                "--strategy", MOM, "--grid", "lookback=20,40", "--grid", "threshold_bps=3:6:3",
                *MODEL, "--quiet", "--json", str(out), *extra], cwd=REPO, capture_output=True,
               text=True, timeout=240)
    return p, (json.loads(out.read_text()) if out.exists() else None)


def single_runs(tmp_path: Path, cells: list[dict]) -> None:
    from pipeline.backtest import feed
    recs = feed.load_feed([str(tmp_path / "trades.npy")])
    model = BacktestConfig(latency_ms=1.0, sizing="fixed", fixed_qty=0.1, initial_capital=1e6)
    assert len(cells) == 4
    for c in cells:
        one, _ = runner.run_strategy(recs, MOM, {"lookback": c["lookback"],
                                                 "threshold_bps": c["threshold_bps"]},
                                     model, base_dir=REPO)
        assert c["final_equity"] == one.metrics["final_equity"]
        assert c["fills"] == one.metrics["fills"] and c["trades"] == one.metrics["trades"]


def test_grid_sweep_on_worker_processes_gives_each_cells_single_run(tmp_path):
    p, doc = sweep_cli(tmp_path, "--processes", "2")
    assert p.returncode == 0, p.stderr
    assert "(2 process workers)" in p.stdout and doc["backend"] == "process"
    assert sorted((c["lookback"], c["threshold_bps"]) for c in doc["cells"]) == \
        [(20, 3.0), (20, 6.0), (40, 3.0), (40, 6.0)]
    single_runs(tmp_path, doc["cells"])


def test_grid_sweep_on_a_local_ray_instance_gives_each_cells_single_run(tmp_path):
    import ray  # noqa: F401  (in the test extra: a missing Ray fails here, never skips)
    p, doc = sweep_cli(tmp_path, "--ray", "local")
    assert p.returncode == 0, p.stderr
    assert "ray workers" in p.stdout and doc["backend"] == "ray"
    single_runs(tmp_path, doc["cells"])


def test_a_grid_over_a_parameter_the_strategy_lacks_is_a_clear_error(tmp_path):
    np.save(tmp_path / "trades.npy", synth.trades(1_000, seed=5))
    p = sp.run([sys.executable, str(REPO / "scripts" / "backtest.py"), "--data",
                str(tmp_path / "trades.npy"), "--strategy", MOM, "--grid", "lookbak=20,40",
                "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "lookbak" in p.stderr and "Traceback" not in p.stderr
