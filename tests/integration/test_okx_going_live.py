"""configs/okx-demo.toml as a trader runs it (docs/going-live.md, "OKX"), with only its venue URLs,
output paths and shared-memory names rewritten to point at the simulator: preflight, then the
launcher runs the OKX collector, the strategy and the OKX gateway, which places orders on the
simulator's OKX side (demo trading header sent) and cancels what is left at the end."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config
from pipeline.config import SIM_TEST_PASSPHRASE
from pipeline.sim.testing import SIM_TEST_API_KEY, SIM_TEST_SECRET
from sim_fixtures import sim_factory  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(150)
DEMO = {"wss://wspap.okx.com:8443/ws/v5/private": "private", "wss://wspap.okx.com:8443": "ws",
        "https://www.okx.com": "rest"}


def pointed_at(sim, tmp_path: Path, shm_name: str) -> Path:
    text = (REPO / "configs/okx-demo.toml").read_text()
    for url, kind in DEMO.items():             # the longest first: private before the base
        assert f'"{url}"' in text, url
        new = {"rest": sim.rest_url, "private": sim.ws_url + "/ws/v5/private",
               "ws": sim.ws_url}[kind]
        text = text.replace(f'"{url}"', f'"{new}"')
    assert "okx.com" not in text.split("\n[", 1)[1]        # no OKX URL left in a section
    text = text.replace('"okx-demo-out/', f'"{tmp_path}/out/')
    text = text.replace('"pipeline-okxdemo', f'"{shm_name}')
    keys = tmp_path / "okx-demo.keys"
    keys.touch(mode=0o600)
    keys.write_text(f"api_key={SIM_TEST_API_KEY}\napi_secret={SIM_TEST_SECRET}\n"
                    f"api_passphrase={SIM_TEST_PASSPHRASE}\n")
    text = text.replace('credentials_file = ""', f'credentials_file = "{keys}"')
    path = tmp_path / "okx-demo.toml"
    path.write_text(text)
    return path


def launch(path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (
        "PIPELINE_API_KEY", "PIPELINE_API_SECRET", "PIPELINE_API_PASSPHRASE",
        "PIPELINE_INSTRUMENTS")}
    return subprocess.run([sys.executable, str(REPO / "scripts/launch.py"), "--config", str(path),
                           *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=env)


def test_okx_demo_config_against_the_simulator_places_orders(sim_factory, tmp_path,  # noqa: F811
                                                             shm_name):
    sim = sim_factory(symbols=["BTCUSDT"], paused=False, rate=1500.0)
    path = pointed_at(sim, tmp_path, shm_name)
    cfg = config.load(path)
    assert cfg.gateway.venue == cfg.collector.venue_id == "OKX" and cfg.gateway.okx_demo
    pre = launch(path, "--preflight")
    assert pre.returncode == 0, pre.stdout + pre.stderr
    assert "OKX:BTC-USDT" in pre.stdout
    summary = tmp_path / "summary.json"
    r = launch(path, "--duration", "12", "--summary-json", str(summary))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = json.loads(summary.read_text())
    assert s["stop_reason"] == "duration" and not s["halted"]
    assert s["totals"]["orders"] >= 1 and s["totals"]["fills"] >= 1, s["totals"]
    st = sim.state()
    assert st["okx"]["trade"]["simulated_trading"] >= 1       # x-simulated-trading: 1
    assert st["okx"]["private"]["logins"] >= 1                 # the orders channel was used
    assert next(iter(st["accounts"].values()))["open_orders"] == []   # on_shutdown = "cancel"
