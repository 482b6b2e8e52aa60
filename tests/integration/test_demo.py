"""The demo config end to end: launcher → simulator, collector, strategy, gateway, as real
processes over real shared memory, ZeroMQ, WebSocket and HTTP."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[2]
LAUNCH = [sys.executable, str(REPO / "scripts" / "launch.py")]
SIM_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SIM_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_config(tmp_path: Path, shm_name: str, **launcher) -> Path:
    """configs/demo.toml with this test's own port, segments, channel and directories."""
    text = (REPO / "configs" / "demo.toml").read_text()
    port = free_port()
    text = text.replace("18765", str(port))
    text = text.replace('"pipeline-demo-ticks"', f'"{shm_name}"')
    text = text.replace('"pipeline-demo"', f'"{shm_name}-run"')
    text = text.replace('"pipeline-demo-signals"', f'"{shm_name}-signals"')
    text = text.replace('"demo-out/run"', f'"{tmp_path / "run"}"')
    text = text.replace('"demo-out/gateway-state"', f'"{tmp_path / "gw"}"')
    text = text.replace('"demo-out/sim-keys"', f'"{tmp_path / "keys"}"')
    for k, v in launcher.items():
        text = re.sub(rf"(?m)^{k} = .*$", f"{k} = {v}", text)
    keys = tmp_path / "keys"
    keys.write_text(f"api_key={SIM_KEY}\napi_secret={SIM_SECRET}\n")
    keys.chmod(0o600)
    cfg = tmp_path / "demo.toml"
    cfg.write_text(text)
    return cfg


def segments(prefix):
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]


def test_demo_runs_end_to_end(tmp_path, shm_name):
    cfg = demo_config(tmp_path, shm_name)
    out = tmp_path / "summary.json"
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--duration", "10", "--summary-json",
                                   str(out), "--plots", str(tmp_path / "plots")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kids: set[psutil.Process] = set()
    try:
        for line in p.stdout:                      # collect the role processes while it runs
            if line.startswith("ticks"):
                kids.update(psutil.Process(p.pid).children(recursive=True))
        p.wait(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    s = json.loads(out.read_text())
    t = s["totals"]
    assert s["stop_reason"] == "duration" and not s["halted"]
    assert t["ticks"] > 1000 and t["signals"] > 0 and t["orders"] > 0 and t["fills"] > 0
    # every order is accounted for: filled + open + cancelled + rejected + unknown (+ expired)
    assert sum(t["orders_by_state"].values()) == t["orders"]
    assert set(t["orders_by_state"]) <= {"FILLED", "PARTIALLY_FILLED", "ACK", "NEW", "CANCELED",
                                         "REJECTED", "EXPIRED", "UNKNOWN"}
    report = s["roles"]["gateway"]["report"]
    assert report["open_orders"] == []             # on_shutdown = "cancel"
    for name, r in s["roles"].items():
        assert r["exit_code"] == 0, (name, r)
    assert "tick_to_order" in s["hops"] and s["hops"]["tick_to_order"]["count"] > 0
    assert (tmp_path / "plots" / "hop_latency.png").stat().st_size > 1000
    assert not segments(shm_name)
    assert kids and not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids)


def test_killed_strategy_halts_gateway_within_one_second(tmp_path, shm_name):
    cfg = demo_config(tmp_path, shm_name, duration="0")
    out = tmp_path / "summary.json"
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--summary-json", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in p.stdout:
            if line.startswith("ticks"):
                break
        strat = [k for k in psutil.Process(p.pid).children(recursive=True)
                 if "pipeline.strategy" in " ".join(k.cmdline())]
        assert len(strat) == 1
        t_kill = time.perf_counter_ns()            # CLOCK_MONOTONIC, as the journal's "m"
        strat[0].send_signal(signal.SIGKILL)
        p.stdout.read()
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1
    s = json.loads(out.read_text())
    assert s["halted"] and "strategy" in s["stop_reason"]
    halts = [json.loads(line) for line in (tmp_path / "gw" / "journal.jsonl").read_text().splitlines()
             if '"trading"' in line and '"HALTED"' in line]
    assert halts, "the gateway never went HALTED"
    assert halts[0]["m"] - t_kill < 1_000_000_000
    stops = [e["role"] for e in s["events"] if e["event"] in ("stopped", "killed")]
    assert stops == ["collector", "gateway", "sim"]    # in order; the strategy was already dead
    assert not segments(shm_name)


def journal(tmp_path):
    p = tmp_path / "gw" / "journal.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass                                   # a line being written
    return out


def test_killed_collector_is_restarted_and_trading_resumes_without_reset(tmp_path, shm_name):
    cfg = demo_config(tmp_path, shm_name, duration="0")
    out = tmp_path / "summary.json"
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--summary-json", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in p.stdout:
            if line.startswith("ticks"):
                break
        col = [k for k in psutil.Process(p.pid).children(recursive=True)
               if "pipeline.collector" in " ".join(k.cmdline())]
        assert len(col) == 1
        col[0].send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 120          # restart, resync, then fresh SMA windows
        lifted = None
        while time.monotonic() < deadline:
            j = journal(tmp_path)
            lifted = next((i for i, r in enumerate(j) if r.get("k") == "trading"
                           and r.get("state") == "ACTIVE" and "lifted" in r.get("why", "")),
                          None)
            if lifted is not None and any(r.get("k") == "order" for r in j[lifted:]):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"trading did not resume with an order: lifted at {lifted}; "
                                 f"{[r for r in journal(tmp_path) if r.get('k') == 'trading']}")
        p.send_signal(signal.SIGTERM)
        p.stdout.read()
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    s = json.loads(out.read_text())
    assert s["stop_reason"] == "SIGTERM" and not s["halted"] and s["halts_cleared"] == 1
    assert s["roles"]["collector"]["restarts"] == 1
    states = [r["state"] for r in journal(tmp_path) if r.get("k") == "trading"]
    assert states[-2:] == ["HALTED", "ACTIVE"]
    assert not segments(shm_name)
