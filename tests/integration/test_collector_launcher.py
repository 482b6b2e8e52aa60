"""The collector and recorder roles under the launcher, with the simulator as the exchange:
ticks flow sim → collector → ring → recorder → .npy segments the backtester loads."""
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.collector.recorder import load_segments
from pipeline.records import Kind

pytest.importorskip("pipeline.sim", reason="simulator not merged")
REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(90)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launcher_runs_sim_collector_and_recorder(tmp_path, shm_name):
    port = free_port()
    ticks = tmp_path / "ticks"
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(f"""
[ring]
name = "{shm_name}"
capacity = 65536
[launcher]
run_id = "{shm_name}-run"
run_dir = "{tmp_path / 'run'}"
status_interval = 0
[sim]
port = {port}
symbols = ["BTCUSDT", "ETHUSDT"]
rate = 500.0
[collector]
venue_id = "SIM"
ws_url = "ws://127.0.0.1:{port}"
rest_url = "http://127.0.0.1:{port}"
symbols = ["BTCUSDT", "ETHUSDT"]
channels = ["trade", "bookTicker", "depth@100ms"]
record_dir = "{ticks}"
[roles.sim]
kind = "sim"
ready = "started"          # the simulator does not heartbeat into the status block
[roles.collector]
kind = "collector"
[roles.recorder]
kind = "recorder"
wait = "sleeping"
""")
    summary = tmp_path / "summary.json"
    r = subprocess.run([sys.executable, str(REPO / "scripts/launch.py"), "--config", str(cfg),
                        "--duration", "3.5", "--summary-json", str(summary)],
                       capture_output=True, text=True, timeout=80, cwd=REPO)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    s = json.loads(summary.read_text())
    assert s["stop_reason"] == "duration" and not s["halted"]
    for role in ("sim", "collector", "recorder"):
        assert s["roles"][role]["exit_code"] == 0, (role, s["roles"][role])
    recs = load_segments(ticks)
    assert (recs["kind"] == Kind.TRADE).sum() > 10
    assert (recs["kind"] == Kind.RESYNC_DONE).sum() == 2
    assert (recs["seq"][1:] > recs["seq"][:-1]).all()       # ring order, nothing lost
    assert list(ticks.glob("raw-*.txt.gz"))                  # the collector's raw recording
