"""configs/binance-testnet.toml as a trader runs it (docs/going-live.md), with only its venue URLs
and output paths rewritten to point at the simulator: preflight, then the launcher runs the
collector, the strategy and the gateway, which places orders on the venue. The live config is
checked for the production endpoints and its tiny limits."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config
from pipeline.sim.testing import SIM_TEST_API_KEY, SIM_TEST_SECRET
from sim_fixtures import sim_factory  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)
TESTNET = {"https://testnet.binance.vision": "rest",
           "wss://ws-api.testnet.binance.vision/ws-api/v3": "ws_api",
           "wss://stream.testnet.binance.vision": "ws"}


def pointed_at(sim, tmp_path: Path, shm_name: str) -> Path:
    """A copy of the testnet config whose venue is the simulator: URLs, output paths and the
    shared-memory names rewritten, credentials in a 0600 file as the docs say; nothing else."""
    text = (REPO / "configs/binance-testnet.toml").read_text()
    for url, kind in TESTNET.items():          # the longest first: ws-api before stream
        assert f'"{url}"' in text, url
        new = {"rest": sim.rest_url, "ws_api": sim.ws_url + "/ws-api/v3", "ws": sim.ws_url}[kind]
        text = text.replace(f'"{url}"', f'"{new}"')
    assert "binance.vision" not in text.split("\n[", 1)[1]    # no testnet URL left in a section
    text = text.replace('"testnet-out/', f'"{tmp_path}/out/')
    text = text.replace('"pipeline-testnet', f'"{shm_name}')
    keys = tmp_path / "testnet.keys"
    keys.touch(mode=0o600)
    keys.write_text(f"api_key={SIM_TEST_API_KEY}\napi_secret={SIM_TEST_SECRET}\n")
    text = text.replace('credentials_file = ""', f'credentials_file = "{keys}"')
    path = tmp_path / "binance-testnet.toml"
    path.write_text(text)
    return path


def launch(path: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIPELINE_API_KEY", "PIPELINE_API_SECRET", "PIPELINE_INSTRUMENTS")}
    return subprocess.run([sys.executable, str(REPO / "scripts/launch.py"), "--config", str(path),
                           *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=env)


def test_testnet_config_against_the_simulator_places_orders(sim_factory, tmp_path,  # noqa: F811
                                                            shm_name):
    sim = sim_factory(symbols=["BTCUSDT"], paused=False, rate=1500.0)
    path = pointed_at(sim, tmp_path, shm_name)
    cfg = config.load(path)
    assert cfg.gateway.venue == cfg.collector.venue_id == "BINANCE"
    pre = launch(path, "--preflight")
    assert pre.returncode == 0, pre.stderr
    assert "BINANCE:BTCUSDT: tick 0.01, step 0.00001" in pre.stdout
    summary = tmp_path / "summary.json"
    r = launch(path, "--duration", "12", "--summary-json", str(summary))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = json.loads(summary.read_text())
    assert s["stop_reason"] == "duration" and not s["halted"]
    assert s["totals"]["orders"] >= 1 and s["totals"]["fills"] >= 1, s["totals"]
    # the venue saw them: the simulator's account holds our orders
    import requests
    from pipeline.sim.testing import sign
    q = f"symbol=BTCUSDT&timestamp={int(__import__('time').time() * 1000)}"
    mine = requests.get(f"{sim.rest_url}/api/v3/openOrders?{q}&signature={sign(q)}",
                        headers={"X-MBX-APIKEY": SIM_TEST_API_KEY}, timeout=5)
    assert mine.status_code == 200 and mine.json() == []      # on_shutdown = "cancel"
    cache = json.loads((tmp_path / "out/run/instruments.json").read_text())
    assert [(i["venue"], i["symbol"], i["id"]) for i in cache["instruments"]] == \
        [("BINANCE", "BTCUSDT", 1)]


def test_live_config_names_the_production_endpoints_and_tiny_limits():
    cfg = config.load(REPO / "configs/binance-live.toml")
    assert cfg.gateway.rest_url == cfg.collector.rest_url == "https://api.binance.com"
    assert cfg.gateway.ws_api_url == "wss://ws-api.binance.com:443/ws-api/v3"
    assert cfg.collector.ws_url == "wss://stream.binance.com:9443"
    lim = cfg.risk.limits_for("BINANCE", "BTCUSDT")
    (inst,) = cfg.strategy.instances
    assert inst.qty <= lim.max_order_qty <= 0.001 and cfg.risk.max_order_notional <= 50
    assert cfg.gateway.venue == "BINANCE" and cfg.gateway.on_shutdown == "cancel"
    for name in ("binance-live.toml", "binance-testnet.toml"):     # every key commented
        for n, line in enumerate((REPO / "configs" / name).read_text().splitlines(), 1):
            s = line.strip()
            if s and not s.startswith(("#", "[")):
                assert "#" in s, f"{name}:{n}: key without a comment: {s}"
