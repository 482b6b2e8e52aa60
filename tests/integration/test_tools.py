"""Scripts: every one answers --help; the affinity tuner proposes a valid placement here and
says what it ranked on; the profiler runs the demo config without keys prepared beforehand."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_demo import demo_config

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "scripts").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_every_script_has_help(script):
    r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout.lower()


def test_role_modules_have_help():
    for mod in ("pipeline.sim", "pipeline.collector", "pipeline.strategy", "pipeline.gateway"):
        r = subprocess.run([sys.executable, "-m", mod, "--help"], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0 and "usage:" in r.stdout.lower(), (mod, r.stderr)


def test_tuner_dry_run_proposes_a_valid_placement(tmp_path, shm_name):
    cfg = demo_config(tmp_path, shm_name)
    before = cfg.read_text()
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "tune_affinity.py"), "--config",
                        str(cfg), "--dry-run", "--max-placements", "2", "--seconds", "3",
                        "--max-seconds", "3"],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    best = re.search(r"^best: (.+)$", r.stdout, re.M)
    assert best, r.stdout
    usable = os.sched_getaffinity(0)
    placed = dict(re.findall(r"(\w+)@(\d+)", best.group(1)))
    assert set(placed) == {"sim", "gateway", "strategy", "collector"}
    assert all(int(c) in usable for c in placed.values())
    spin = re.search(r"(\w+)@(\d+)\(busy_spin\)", best.group(1))
    if spin:                                   # a spinning role never shares its core
        others = [c for n, c in placed.items() if n != spin.group(1)]
        assert spin.group(2) not in others
    assert cfg.read_text() == before           # --dry-run changes nothing
    # the figures carry their sample counts, and the ranking names its hop and statistic
    assert re.search(r"tick_to_order +p50 .* us +p99 .* us +[\d,]+ samples", r.stdout), r.stdout
    rank = re.search(r"^ranking \(by (tick_to_order|ring_to_strategy) (p50|p99)\):$", r.stdout,
                     re.M)
    assert rank, r.stdout
    if rank.group(2) == "p50":                 # 3 s hold far fewer than 1,000 orders: it says so
        assert "ranking on p50, not p99" in r.stdout, r.stdout


def test_profiler_writes_the_simulators_test_keys_on_the_demo_config(tmp_path, shm_name):
    cfg = demo_config(tmp_path, shm_name)
    keys = tmp_path / "keys"
    keys.unlink()                              # as in a fresh clone: no demo-out/sim-keys
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "profile_latency.py"), "--config",
                        str(cfg), "--variants", "tuned", "--seconds", "2"],
                       capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"wrote the simulator's test keys to {keys} (0600)" in r.stdout
    assert keys.stat().st_mode & 0o777 == 0o600
    assert re.search(r"^ring_to_strategy +tuned +[\d,]+ ", r.stdout, re.M), r.stdout


def test_profiler_measures_a_python_strategy_beside_the_config_s_own(tmp_path, shm_name):
    """The python_strategy variant runs the config with the examples' momentum.py (a Python
    strategy file) instead of its strategies; its tick → order hop is in results.python_strategy_*
    beside the tuned run's (the demo's compiled SMA), and the temporary config is gone after."""
    import json
    cfg = demo_config(tmp_path, shm_name)
    out = tmp_path / "profile.json"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "profile_latency.py"), "--config",
                        str(cfg), "--variants", "tuned,python_strategy", "--seconds", "8",
                        "--json", str(out)],
                       capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads(out.read_text())["results"]
    assert res["python_strategy_tick_to_order_count"] > 0, res
    assert 0 < res["python_strategy_tick_to_order_p50_ns"] <= res["python_strategy_tick_to_order_p99_ns"]
    assert "tick_to_order_p50_ns" in res and "tick_to_wire_p50_ns" in res
    assert "signed_to_wire_p50_ns" in res
