"""The gateway as a role of the launcher: ready on its heartbeat, counters in the status block,
clean exit on the ordered shutdown."""
from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from pipeline.gateway.testing import REPO
from pipeline.sim.testing import SIM_TEST_API_KEY, SIM_TEST_SECRET

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launcher_runs_sim_and_gateway_and_stops_them_in_order(tmp_path):
    port = free_port()
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(f'''
[launcher]
run_id = "gwtest"
run_dir = "{tmp_path / 'run'}"
status_interval = 0.0
[roles.sim]
kind = "sim"
ready = "started"
[roles.gateway]
kind = "gateway"
[sim]
port = {port}
paused = true
[gateway]
rest_url = "http://127.0.0.1:{port}"
ws_api_url = "ws://127.0.0.1:{port}/ws-api/v3"
channel = "gwtest-launcher-{port}"
state_dir = "{tmp_path / 'gw-state'}"
[risk.symbols."SIM:BTCUSDT"]
max_order_qty = 0.01
max_position_qty = 0.05
''')
    env = {"PIPELINE_API_KEY": SIM_TEST_API_KEY, "PIPELINE_API_SECRET": SIM_TEST_SECRET,
           "PATH": "/usr/bin:/bin"}
    summary = tmp_path / "summary.json"
    r = subprocess.run([sys.executable, "scripts/launch.py", "--config", str(cfg), "--duration",
                        "2", "--summary-json", str(summary)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=50)
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(summary.read_text())
    gw = s["roles"]["gateway"]
    assert gw["exit_code"] == 0 and not gw["problem"] and not s["halted"], s
    status = json.loads((tmp_path / "gw-state" / "status.json").read_text())
    assert status["phase"] == "STOPPED" and status["trading"] == "ACTIVE"
    log = (tmp_path / "run" / "gateway.log").read_text()
    assert "reconciled with the venue" in log and SIM_TEST_SECRET not in log
