"""The installed `pipeline` command, run for real: every command's --help, and `status` on a
running pipeline (live roles and gateway) and on a stopped one (says so; after `reset` the next
start is ACTIVE, not the stale HALTED of the stopped gateway)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.sim.testing import SIM_TEST_API_KEY, SIM_TEST_SECRET

pytestmark = pytest.mark.timeout(120)
PIPELINE = str(Path(sys.executable).with_name("pipeline"))
COMMANDS = ("run", "demo", "backtest", "record", "replay", "download", "export", "status", "kill",
            "reset", "reduce", "tune", "profile", "preflight")


def cli(*args: str, env=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PIPELINE, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_the_entry_point_is_installed_and_lists_every_command():
    r = cli("--help")
    assert r.returncode == 0, r.stderr
    for c in COMMANDS:
        assert f"    {c}" in r.stdout, c


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    r = cli(command, "--help")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"usage: pipeline {command}" in r.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(cfg: Path, env) -> tuple[int, dict]:
    r = cli("status", "--config", str(cfg), "--json", env=env)
    return r.returncode, json.loads(r.stdout)


def _wait(cfg, env, pred, what: str, timeout: float = 40.0) -> dict:
    deadline = time.monotonic() + timeout
    s: dict = {}
    while time.monotonic() < deadline:
        _, s = _status(cfg, env)
        if pred(s):
            return s
        time.sleep(0.2)
    raise TimeoutError(f"status never showed {what}: {s}")


def test_status_reads_a_running_pipeline_and_says_when_it_is_stopped(tmp_path):
    port = free_port()
    cfg = tmp_path / "pipeline.toml"
    cfg.write_text(f'''
[launcher]
run_id = "clitest-{port}"
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
channel = "clitest-{port}"
state_dir = "{tmp_path / 'gw-state'}"
status_every_ms = 100
[risk.symbols."SIM:BTCUSDT"]
max_order_qty = 0.01
max_position_qty = 0.05
''')
    env = {**os.environ, "PIPELINE_API_KEY": SIM_TEST_API_KEY,
           "PIPELINE_API_SECRET": SIM_TEST_SECRET}
    rc, s = _status(cfg, env)                       # nothing has run here yet
    assert rc == 1 and not s["launcher"]["running"] and not s["gateway"]["running"]
    run = subprocess.Popen([PIPELINE, "run", "--config", str(cfg), "--duration", "90"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        s = _wait(cfg, env, lambda s: s["gateway"]["running"] and s["launcher"]["running"]
                  and s["launcher"]["roles"].get("gateway", {}).get("state") == "RUNNING"
                  and s["gateway"]["status"].get("phase") == "RUNNING", "a running gateway")
        la = s["launcher"]
        assert la["pid"] == run.pid and la["roles"]["sim"]["state"] == "RUNNING"
        assert la["roles"]["gateway"]["trading"] == "ACTIVE"
        assert la["logs"] == str((tmp_path / "run" / "logs").resolve())
        assert s["gateway"]["status"]["trading"] == "ACTIVE"
        text = cli("status", "--config", str(cfg), env=env)
        assert text.returncode == 0 and "launcher: RUNNING" in text.stdout
        assert "gateway: RUNNING" in text.stdout and "trading ACTIVE" in text.stdout
        assert cli("kill", "--config", str(cfg), env=env).returncode == 0
        s = _wait(cfg, env, lambda s: s["gateway"]["status"].get("trading") == "HALTED"
                  and s["launcher"]["roles"]["gateway"].get("trading") == "HALTED",
                  "the live HALTED")
        run.send_signal(signal.SIGINT)
        assert run.wait(40) == 0, run.stderr.read()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(10)
    rc, s = _status(cfg, env)
    assert rc == 1
    assert not s["launcher"]["running"] and s["launcher"]["stop_reason"] == "SIGINT"
    g = s["gateway"]
    assert not g["running"] and g["trading_at_next_start"] == "HALTED"   # the kill file
    assert g["last_status"]["trading"] == "HALTED" and g["last_status"]["phase"] == "STOPPED"
    assert cli("reset", "--config", str(cfg), env=env).returncode == 0
    gw_log = (tmp_path / "run" / "logs" / "gateway.log").read_text()
    assert "KILL SWITCH" in gw_log and "HALTED frm=ACTIVE" in gw_log     # the running gateway's
    assert "reset by operator" in gw_log                                # and the operator's reset
    rc, s = _status(cfg, env)
    g = s["gateway"]
    assert rc == 1 and not g["running"] and g["trading_at_next_start"] == "ACTIVE"
    assert g["why"] == "operator reset"
    text = cli("status", "--config", str(cfg), env=env).stdout
    assert "launcher: NOT RUNNING" in text and "gateway: NOT RUNNING" in text
    assert "next start: ACTIVE" in text and "stale" in text
    # the gateway's own status command agrees: stopped, next start ACTIVE
    r = subprocess.run([sys.executable, "-m", "pipeline.gateway", "status", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 1 and json.loads(r.stdout)["trading_at_next_start"] == "ACTIVE"
    assert "not running" in r.stderr


def test_demo_writes_the_keys_runs_and_says_where_the_logs_are(tmp_path, shm_name):
    from tests.integration.test_demo import demo_config
    cfg = demo_config(tmp_path, shm_name)
    (tmp_path / "keys").unlink()                       # the demo writes them itself
    (tmp_path / "gw").mkdir()
    (tmp_path / "gw" / "stale").write_text("from an earlier run")
    r = cli("demo", "--config", str(cfg), "--seconds", "8", "--out", str(tmp_path / "out"),
            timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "gw" / "stale").exists()       # a fresh gateway state
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    logs = tmp_path / "run" / "logs"
    assert s["logs"] == str(logs) and f"logs: {logs}" in r.stdout
    assert (tmp_path / "out" / "hop_latency.png").exists()
    for role in ("launcher", "sim", "collector", "strategy", "gateway"):
        assert (logs / f"{role}.log").stat().st_size > 0, role   # INFO: no empty logs
    assert [p.name for p in logs.iterdir() if p.stat().st_size == 0] == []   # no empty files
    gw = (logs / "gateway.log").read_text()
    assert s["totals"]["orders"] > 0 and " INFO pipeline.orders: order SENT cid=pl" in gw
    assert "RESYNC_DONE" in (logs / "collector.log").read_text()


def test_record_then_replay_gives_the_records_the_live_collector_wrote(tmp_path):
    import numpy as np
    rec = tmp_path / "rec"
    r = cli("record", "--out", str(rec), "--seconds", "3", "--sim", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    raw = sorted(str(p) for p in rec.glob("raw-*.txt.gz"))
    out = tmp_path / "replayed.npy"
    r = cli("replay", *raw, "--out", str(out), "--venue-id", "SIM", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    live = np.concatenate([np.load(p) for p in sorted(rec.glob("ticks-*.npy"))])
    again = np.load(out)
    assert len(again) == len(live) > 0 and f"{len(again):,} records" in r.stdout
    for col in ("kind", "symbol", "venue", "price", "qty", "id"):
        assert (again[col] == live[col]).all(), col
    r = cli("replay", str(tmp_path / "nope.gz"), "--out", str(out))
    assert r.returncode == 2 and "no such recording" in r.stderr
