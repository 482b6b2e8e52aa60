"""Order feedback with real processes (launcher → simulator, collector, strategy, gateway): the
gateway tells the strategy what happened to each order through its event ring, so a long/flat
strategy of unit 0.001 whose orders are partly refused ends where its fills say, and a restarted
run starts from the gateway's rebuilt position instead of buying again."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.demo_harness import LAUNCH, demo_config

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)

MOMENTUM = """
[[strategy.instances]]
kind = "strategies/momentum.py:Momentum"
id = 1
venue = "SIM"
symbol = "BTCUSDT"
qty = 0.001
ttl_ms = 1000
params = { lookback = 10, threshold_bps = 0.01 }   # flips often: more orders than the throttle
"""

BUY_ONCE = """
[[strategy.instances]]
kind = "strategies/buy_once.py:BuyOnce"
id = 1
venue = "SIM"
symbol = "BTCUSDT"
qty = 0.001
ttl_ms = 1000
params = {}
"""

BUY_ONCE_PY = '''
from pipeline.strategy import Strategy


class BuyOnce(Strategy):
    """Wants to be long one unit, always: one MARKET buy, unless the position already is."""

    def on_trades(self, trades):
        last = trades[-1]
        sig = self.target(1, int(last["seq"]), int(last["mono_ts"]), float(last["price"]))
        return [sig] if sig is not None else []
'''


def _run(tmp_path: Path, cfg: Path, seconds: int, name: str) -> dict:
    out = tmp_path / f"{name}.json"
    p = subprocess.run(LAUNCH + ["--config", str(cfg), "--duration", str(seconds),
                                 "--summary-json", str(out)], cwd="/", capture_output=True,
                       text=True, timeout=150)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return json.loads(out.read_text())


def _config(tmp_path: Path, shm_name: str, instances: str, risk: str = "") -> Path:
    cfg = demo_config(tmp_path, shm_name)
    text = re.sub(r"(?s)\[\[strategy\.instances\]\].*?(?=\n\[gateway\])", instances,
                  cfg.read_text())
    text = text.replace("[risk]\n", "[risk]\n" + risk, 1)
    cfg.write_text(text)
    (tmp_path / "strategies").mkdir(exist_ok=True)
    return cfg


def _strategy(s: dict) -> tuple[dict, dict]:
    rep = s["roles"]["strategy"]["report"]
    return rep, rep["strategies"][0]


def test_a_long_flat_strategy_with_refused_orders_ends_at_the_position_of_its_fills(
        tmp_path, shm_name):
    cfg = _config(tmp_path, shm_name, MOMENTUM,
                  risk="throttle_orders = 1\nthrottle_window_ms = 1500\n")
    shutil.copy(REPO / "examples" / "strategies" / "momentum.py", tmp_path / "strategies")
    s = _run(tmp_path, cfg, 12, "run")
    rep, st = _strategy(s)
    gw = s["roles"]["gateway"]["report"]
    assert rep["feedback_active"] and rep["feedback_synced"] and rep["feedback_syncs"] == 1
    assert rep["order_events_lost"] == 0 and rep["ticks_unsynced"] >= 0
    assert gw["rejects"].get("RATE_LIMIT", 0) > 0, gw["rejects"]     # some orders were refused
    assert st["rejects"] >= gw["rejects"]["RATE_LIMIT"]
    assert s["totals"]["fills"] > 0
    pos = gw["positions"].get("BTCUSDT", {}).get("qty", 0.0)
    # the strategy's position is the one its fills say, the gateway's; long/flat never more
    assert st["net_qty"] == pytest.approx(pos, abs=1e-12)
    assert pos == pytest.approx(0.0, abs=1e-12) or pos == pytest.approx(0.001)
    tr = s["trading"]["symbols"]["BTCUSDT"]
    assert tr["position"] == pytest.approx(tr["bought"] - tr["sold"]) == pytest.approx(pos)


def test_a_restarted_run_starts_from_the_gateways_rebuilt_position(tmp_path, shm_name):
    cfg = _config(tmp_path, shm_name, BUY_ONCE)
    (tmp_path / "strategies" / "buy_once.py").write_text(BUY_ONCE_PY)
    first = _run(tmp_path, cfg, 6, "first")
    rep1, st1 = _strategy(first)
    assert rep1["feedback_synced"] and st1["net_qty"] == pytest.approx(0.001)
    assert first["totals"]["fills"] >= 1
    # the same gateway state (journal) again: the strategy is told it is long already
    second = _run(tmp_path, cfg, 6, "second")
    rep2, st2 = _strategy(second)
    assert rep2["synced_position"] == {"1": pytest.approx(0.001)}
    assert st2["net_qty"] == pytest.approx(0.001) and st2["seq"] == 0   # nothing bought again
    gw2 = second["roles"]["gateway"]["report"]
    assert gw2["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.001)


QUOTER = """
[[strategy.instances]]
kind = "strategies/quoting.py:Quoter"
id = 1
venue = "SIM"
symbol = "BTCUSDT"
qty = 0.001
ttl_ms = 1000
params = { size = 0.001, max_inventory = 0.003, tick = 0.01, requote_ticks = 1, min_requote_ms = 200 }
"""


def test_the_quoting_example_runs_live_and_in_the_backtester(tmp_path, shm_name):
    import subprocess as sp
    import sys

    import numpy as np

    from pipeline.backtest import synth
    # #17's sliding-window rate limit refuses a burst for a whole window; this quoter re-quotes
    # every refusal at once and would run into the runaway guard: keep it out of the rate limit
    cfg = _config(tmp_path, shm_name, QUOTER, risk="throttle_orders = 1000\n")
    shutil.copy(REPO / "examples" / "strategies" / "quoting.py", tmp_path / "strategies")
    s = _run(tmp_path, cfg, 12, "live")
    rep, st = _strategy(s)
    gw = s["roles"]["gateway"]["report"]
    assert rep["feedback_synced"] and rep["bad_intents"] == 0
    assert rep["replaces"] > 0 and rep["order_events"] > rep["replaces"]
    assert s["totals"]["orders"] > rep["replaces"]          # post-only quotes reached the venue
    pos = gw["positions"].get("BTCUSDT", {}).get("qty", 0.0)
    assert st["net_qty"] == pytest.approx(pos, abs=1e-12)   # inventory = the fills
    assert -1e-12 <= pos <= 0.003 + 1e-12                   # within its limit, never short
    assert gw["open_orders"] == []                          # cancelled at shutdown
    # the same file in the backtester, on an L2 session
    np.save(tmp_path / "l2.npy", synth.l2_session(30_000, seed=3))
    p = sp.run([sys.executable, str(REPO / "scripts" / "backtest.py"), "--data",
                str(tmp_path / "l2.npy"), "--strategy", str(tmp_path / "strategies" /
                                                             "quoting.py") + ":Quoter",
                "--param", "size=0.01", "--param", "max_inventory=0.03", "--latency-ms", "1",
                "--quiet", "--json", str(tmp_path / "bt.json")], cwd=REPO, capture_output=True,
               text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "bt.json").read_text())
    assert doc["engine"] == "event" and doc["metrics"]["fills"] > 20
