"""User strategy files named in a config run live: the launcher → simulator, collector, strategy
process, gateway as real processes; the examples' momentum (a plug-in file next to the config)
and the SMA plug-in in one strategy process, each numbering its own signals (the gateway's
journal shows no gap and seq 1..n per strategy). The same files run in the backtester."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.gateway.binjournal import read_any as read_journal
from tests.integration.test_demo import LAUNCH, demo_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "strategies"
pytestmark = pytest.mark.timeout(150)

INSTANCES = """
[[strategy.instances]]
kind = "strategies/momentum.py:Momentum"
id = 1
venue = "SIM"
symbol = "BTCUSDT"
qty = 0.001
ttl_ms = 1000
params = { lookback = 20, threshold_bps = 0.01 }   # the simulator moves by cents

[[strategy.instances]]
kind = "strategies/sma_plugin.py:SmaPlugin"
id = 2
venue = "SIM"
symbol = "BTCUSDT"
qty = 0.001
ttl_ms = 1000
params = { fast = 5, slow = 20, price_increment = 0.01 }
"""


def test_plugin_files_run_live_on_the_simulator_with_their_own_numbering(tmp_path, shm_name):
    cfg = demo_config(tmp_path, shm_name)
    text = cfg.read_text()
    text = re.sub(r"(?s)\[\[strategy\.instances\]\].*?(?=\n\[gateway\])", INSTANCES, text)
    cfg.write_text(text)
    (tmp_path / "strategies").mkdir()
    for f in ("momentum.py", "sma_plugin.py"):
        shutil.copy(EXAMPLES / f, tmp_path / "strategies" / f)
    out = tmp_path / "summary.json"
    p = subprocess.run(LAUNCH + ["--config", str(cfg), "--duration", "10", "--summary-json",
                                 str(out)], cwd="/", capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    s = json.loads(out.read_text())
    t = s["totals"]
    assert t["signals"] > 0 and t["orders"] > 0 and t["fills"] > 0, t
    recs = list(read_journal(tmp_path / "gw" / "journal.bin"))
    by = {}
    for r in recs:
        if r.get("k") == "signal":
            by.setdefault(int(r["strategy"]), []).append((int(r["epoch"]), int(r["seq"])))
    assert set(by) == {1, 2}, by.keys()
    # a signal the sender buffered until READY and whose TTL ran out there (a loaded start)
    # is dropped by the sender and counted; every other one reaches the gateway, accepted or
    # refused (both journalled), in its strategy's own numbering
    strat = [r for r in s["roles"].values() if r["kind"] == "strategy"]
    counted = sum(int((r.get("report") or {}).get("dropped", 0)) for r in strat)
    absent = set()
    for sid, got in by.items():
        seqs = [q for _, q in got]
        assert seqs == sorted(set(seqs)) and seqs[0] >= 1, (sid, seqs[:20])
        absent |= {(sid, q) for q in set(range(1, seqs[-1] + 1)) - set(seqs)}
        assert len({e for e, _ in got}) == 1
    assert len(absent) <= counted, (sorted(absent)[:20], counted)
    # the gateway logs a gap only where signals were dropped (counted above) or rejected
    # before its sequence check (EXPIRED on a loaded box): none of it is a numbering gap
    for g in (r for r in recs if r.get("k") == "gap"):
        sid = int(g["strategy"])
        seen = {q for _, q in by[sid]} | {q for a, q in absent if a == sid}
        assert set(range(int(g["seq"]) - int(g["missing"]), int(g["seq"]))) <= seen, g


def test_a_bad_plugin_in_the_config_stops_the_launcher_before_anything_starts(tmp_path,
                                                                               shm_name):
    cfg = demo_config(tmp_path, shm_name)
    text = re.sub(r'(?m)^kind = "sma"$', 'kind = "strategies/missing.py:Nope"', cfg.read_text())
    cfg.write_text(text)
    p = subprocess.run(LAUNCH + ["--config", str(cfg), "--duration", "5"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert "no such file" in p.stderr and "missing.py" in p.stderr
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").glob("*.log"))


@pytest.mark.parametrize("kind,params", [
    ("examples/strategies/momentum.py:Momentum", ["lookback=50", "threshold_bps=3"]),
    ("examples/strategies/sma_plugin.py:SmaPlugin", ["fast=5", "slow=20",
                                                      "price_increment=0.01"]),
])
def test_the_same_plugin_files_run_in_the_backtester(tmp_path, kind, params):
    import numpy as np

    from pipeline.backtest import synth
    np.save(tmp_path / "ticks.npy", synth.trades(20_000, seed=4))
    cmd = [sys.executable, str(REPO / "scripts" / "backtest.py"), "--data",
           str(tmp_path / "ticks.npy"), "--strategy", kind, "--latency-ms", "1", "--quiet",
           "--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "rep")]
    for prm in params:
        cmd += ["--param", prm]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["engine"] == "event" and doc["metrics"]["fills"] > 0
    assert (tmp_path / "rep" / "trades.csv").read_text().count("\n") == \
        doc["metrics"]["fills"] + 1
    for png in ("equity.png", "drawdown.png", "position.png"):
        assert (tmp_path / "rep" / png).stat().st_size > 1000
