"""The simulator's command line: ready file, clean exit, clear errors for bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from pipeline.sim.testing import start_sim

pytestmark = pytest.mark.timeout(60)


def _run(*args, timeout=20):
    return subprocess.run([sys.executable, "-m", "pipeline.sim", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help():
    r = _run("--help")
    assert r.returncode == 0 and "--ready-file" in r.stdout and "--config" in r.stdout


def test_bad_config_is_a_clear_error(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[sim]\nrat = 5\n")
    r = _run("--config", str(cfg))
    assert r.returncode == 2 and "sim.rat" in r.stderr and "bad.toml" in r.stderr
    r = _run("--config", str(cfg.with_name("missing.toml")))
    assert r.returncode == 2 and "no such config file" in r.stderr


def test_non_loopback_needs_explicit_option():
    r = _run("--host", "0.0.0.0", "--port", "0")
    assert r.returncode == 2 and "allow_remote" in r.stderr


def test_unknown_symbol_fails_at_start(tmp_path):
    with pytest.raises(RuntimeError, match="no instrument spec for 'SHIBUSDT'"):
        start_sim(tmp_path, symbols=["SHIBUSDT"])


def test_ready_file_and_sigterm(tmp_path):
    s = start_sim(tmp_path, paused=True)
    info = json.loads(next(tmp_path.glob("*.ready.json")).read_text())
    assert info["rest_url"] == f"http://127.0.0.1:{info['port']}"
    assert info["ws_url"] == f"ws://127.0.0.1:{info['port']}"
    assert requests.get(f"{s.rest_url}/api/v3/ping", timeout=5).json() == {}
    assert s.stop() == 0
    assert "simulator: stopped" in s.log_text()


def test_control_endpoint_rejects_bad_bodies(tmp_path):
    s = start_sim(tmp_path, paused=True)
    try:
        r = requests.post(f"{s.rest_url}/_sim/fault", data=b"{nope", timeout=5)
        assert r.status_code == 400 and "not JSON" in r.text
        r = requests.post(f"{s.rest_url}/_sim/tape", json={"rate": 10**9}, timeout=5)
        assert r.status_code == 400
        r = requests.post(f"{s.rest_url}/_sim/trade", json={"symbol": "BTCUSDT", "price": "x", "qty": "1"},
                          timeout=5)
        assert r.status_code == 400
        assert s.alive()
    finally:
        s.stop()
