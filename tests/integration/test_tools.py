"""Scripts: every one answers --help; the affinity tuner proposes a valid placement here."""
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
                        str(cfg), "--dry-run", "--max-placements", "2", "--seconds", "3"],
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
