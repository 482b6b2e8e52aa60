"""Live and backtest make the same decisions: one strategy class (the momentum example, with a
recorder of its decisions) on one recorded market session — replayed live by the simulator to
the real collector, strategy process and gateway (launcher), and backtested from the same file
through the same parsers — decides at the same trades in the same direction, one for one."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.integration.demo_harness import LAUNCH, demo_config

REPO = Path(__file__).resolve().parents[2]
RECORDING = REPO / "tests" / "data" / "binance" / "recorded" / "hftbacktest_spot" / \
    "btcusdt_20240808.gz"
pytestmark = pytest.mark.timeout(240)

RECORDED = '''
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from momentum import Momentum  # noqa: E402


class Recorded(Momentum):
    """The momentum example, writing down each decision: (trade id, side) of every order."""

    def on_start(self):
        self.decisions = []

    def on_trades(self, trades):
        out = super().on_trades(trades)
        if out:
            ids = dict(zip(trades["seq"].tolist(), trades["id"].tolist()))
            self.decisions += [[ids.get(s.trigger_seq, -1), s.side] for s in out]
        return out

    def on_stop(self):
        Path(__file__).with_name("decisions.json").write_text(json.dumps(self.decisions))
'''

INSTANCE = """
[[strategy.instances]]
kind = "strategies/recorded.py:Recorded"
id = 1
venue = "SIM"
symbol = "BTCUSDT"
qty = 0.001
ttl_ms = 5000
params = { lookback = 50, threshold_bps = 2.0 }
"""


def _has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


def test_live_on_the_simulator_and_the_backtester_decide_the_same(tmp_path, shm_name):
    cfg = demo_config(tmp_path, shm_name)
    text = re.sub(r"(?s)\[\[strategy\.instances\]\].*?(?=\n\[gateway\])", INSTANCE,
                  cfg.read_text())
    rec = tmp_path / "btcusdt.txt.gz"
    shutil.copy(RECORDING, rec)
    text = text.replace('tape = "synthetic"', f'tape = "replay"\nreplay_files = ["{rec}"]\n'
                        'replay_speed = 25.0\npaused = true')
    text = text.replace('symbols = ["BTCUSDT", "ETHUSDT"]', 'symbols = ["BTCUSDT"]')
    text = text.replace('channels = ["trade", "bookTicker", "depth@100ms"]', 'channels = ["trade"]')
    text = text.replace("[risk]\n", "[risk]\nthrottle_orders = 1000\nrunaway_signals = 4000\n", 1)
    cfg.write_text(text)
    (tmp_path / "strategies").mkdir()
    shutil.copy(REPO / "examples" / "strategies" / "momentum.py", tmp_path / "strategies")
    (tmp_path / "strategies" / "recorded.py").write_text(RECORDED)
    port = re.search(r"(?m)^port = (\d+)", text).group(1)
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--duration", "30", "--summary-json",
                                   str(tmp_path / "s.json")], cwd="/", stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        logs = tmp_path / "run" / "logs"
        deadline = time.monotonic() + 60
        # the tape stays paused until the strategy knows its position and the collector is
        # subscribed (it starts after the strategy): both then see every trade of the session
        while not (_has(logs / "strategy.log", "synced with the gateway")
                   and _has(logs / "collector.log", "CONNECTED")):
            assert time.monotonic() < deadline and p.poll() is None, "never ready"
            time.sleep(0.1)
        time.sleep(0.5)
        r = requests.post(f"http://127.0.0.1:{port}/_sim/tape", json={"action": "resume"},
                          timeout=5)
        assert r.status_code == 200, r.text
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out[-3000:]
    live = json.loads((tmp_path / "strategies" / "decisions.json").read_text())
    s = json.loads((tmp_path / "s.json").read_text())
    assert not s["halted"] and s["roles"]["strategy"]["report"]["feedback_synced"]
    gw = s["roles"]["gateway"]["report"]
    assert sum(gw["rejects"].values()) == 0, gw["rejects"]   # nothing refused: pure decisions
    (tmp_path / "strategies" / "decisions.json").unlink()
    b = subprocess.run([sys.executable, str(REPO / "scripts" / "backtest.py"), "--data",
                        str(rec), "--strategy", str(tmp_path / "strategies" / "recorded.py") +
                        ":Recorded", "--param", "lookback=50", "--param", "threshold_bps=2.0",
                        "--latency-ms", "1", "--quiet", "--json", str(tmp_path / "bt.json")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert b.returncode == 0, b.stderr
    back = json.loads((tmp_path / "strategies" / "decisions.json").read_text())
    assert len(live) > 10, live
    assert live == back
