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
    log = (tmp_path / "run" / "logs" / "gateway.log").read_text()
    assert "reconciled with the venue" in log and SIM_TEST_SECRET not in log


def _own_signal_ring_and_exit(name: str) -> None:
    from pipeline.bus.ring import SignalRing
    ring = SignalRing.create(name, 8)
    ring._shm.close()                 # noqa: SLF001 - exit without unlinking, as a killed gateway
    import os
    os._exit(0)


def test_the_launcher_removes_a_killed_gateways_signal_ring_only(tmp_path, monkeypatch):
    import multiprocessing as mp

    from conftest import unique_shm_name
    from pipeline import config
    from pipeline.bus import ring as ringmod
    from pipeline.bus.ring import SignalRing
    from pipeline.bus.signals import ring_name
    from pipeline.launcher.supervisor import Launcher
    channel = unique_shm_name()
    cfg = config.loads(f'[roles.gateway]\nkind = "gateway"\n[gateway]\nchannel = "{channel}"\n'
                       f'[launcher]\nrun_dir = "{tmp_path}"\n')
    monkeypatch.setenv("PIPELINE_API_KEY", "k")
    monkeypatch.setenv("PIPELINE_API_SECRET", "s")
    launcher = Launcher(cfg, "test.toml")
    name = ring_name(channel)
    live = SignalRing.create(name, 8)                    # a live gateway's ring stays
    try:
        launcher.close_segments()
        assert ringmod.inspect(name) is not None
    finally:
        live.close()
    p = mp.get_context("spawn").Process(target=_own_signal_ring_and_exit, args=(name,))
    p.start()
    p.join(20)
    info = ringmod.inspect(name)
    assert info is not None and not info["owner_alive"]   # left behind by a dead owner
    launcher.close_segments()
    assert ringmod.inspect(name) is None
    assert any(e["event"] == "orphan_segment_removed" for e in launcher.events)
