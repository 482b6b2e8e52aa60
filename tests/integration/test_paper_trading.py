"""configs/paper-binance.toml as a trader runs it (docs/going-live.md, "Paper trading first"), with
only its upstream URLs pointed at a local simulator standing in for Binance (no internet), its
relay port, output paths and shared-memory names rewritten: preflight checks the symbols against
the upstream's listing, then the launcher runs the relay, the collector reading it, the strategy
and the gateway, whose orders fill on the relay at the upstream's prices."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config
from pipeline.sim.testing import SIM_TEST_API_KEY, SIM_TEST_SECRET
from sim_fixtures import sim_factory  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(150)
BINANCE = {"wss://stream.binance.com:9443": "ws", "https://api.binance.com": "rest"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pointed_at(up, tmp_path: Path, shm_name: str) -> Path:
    text = (REPO / "configs/paper-binance.toml").read_text()
    body = text.split("\n[", 1)[1]
    for url, kind in BINANCE.items():
        assert f'"{url}"' in body, url
        text = text.replace(f'"{url}"', f'"{up.rest_url if kind == "rest" else up.ws_url}"')
    assert "binance.com" not in text.split("\n[", 1)[1]      # no venue URL left in a section
    port = _free_port()
    assert text.count("18766") == 5                           # sim.port and the four relay URLs
    text = text.replace("18766", str(port))
    text = text.replace('"paper-out/', f'"{tmp_path}/out/')
    text = text.replace('"pipeline-paper', f'"{shm_name}')
    path = tmp_path / "paper-binance.toml"
    path.write_text(text)
    return path


def launch(path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PIPELINE_API_KEY", "PIPELINE_API_SECRET", "PIPELINE_INSTRUMENTS")}
    return subprocess.run([sys.executable, str(REPO / "scripts/launch.py"), "--config", str(path),
                           *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=env)


def test_paper_config_trades_on_the_upstreams_prices(sim_factory, tmp_path,  # noqa: F811
                                                    shm_name):
    up = sim_factory(symbols=["BTCUSDT"], paused=False, rate=1500.0)
    path = pointed_at(up, tmp_path, shm_name)
    cfg = config.load(path)
    assert cfg.sim.tape == "relay" and cfg.gateway.venue == cfg.collector.venue_id == "BINANCE"
    assert cfg.gateway.rest_url == cfg.collector.rest_url == f"http://127.0.0.1:{cfg.sim.port}"
    keys = Path(cfg.gateway.credentials_file)            # what `pipeline demo` writes
    keys.parent.mkdir(parents=True)
    keys.touch(mode=0o600)
    keys.write_text(f"api_key={SIM_TEST_API_KEY}\napi_secret={SIM_TEST_SECRET}\n")
    pre = launch(path, "--preflight")
    assert pre.returncode == 0, pre.stdout + pre.stderr
    assert f"relayed by the config's simulator from {up.rest_url}" in pre.stdout
    assert "BINANCE:BTCUSDT: tick 0.01, step 0.00001" in pre.stdout
    summary = tmp_path / "summary.json"
    r = launch(path, "--duration", "14", "--summary-json", str(summary))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = json.loads(summary.read_text())
    assert s["stop_reason"] == "duration" and not s["halted"], s
    # the relay has no market of its own: every tick, order and fill came from the upstream
    assert s["totals"]["orders"] >= 1 and s["totals"]["fills"] >= 1, s["totals"]
    logs = tmp_path / "out/run/logs"
    sim_log = (logs / "sim.log").read_text()
    assert "relay: connected to the upstream" in sim_log and "relay: BTCUSDT book synced" in sim_log
    cache = json.loads((tmp_path / "out/run/instruments.json").read_text())
    assert [(i["venue"], i["symbol"], i["tick"]) for i in cache["instruments"]] == \
        [("BINANCE", "BTCUSDT", "0.01")]


def test_paper_config_relays_binance_with_tls_and_every_key_commented():
    cfg = config.load(REPO / "configs/paper-binance.toml")
    assert cfg.sim.upstream_ws_url == "wss://stream.binance.com:9443"
    assert cfg.sim.upstream_rest_url == "https://api.binance.com"
    assert cfg.sim.upstream_ca_bundle == ""                   # the system store, verified
    local = f"http://127.0.0.1:{cfg.sim.port}"
    assert cfg.gateway.rest_url == cfg.collector.rest_url == local    # orders stay on this box
    assert cfg.gateway.ws_api_url.startswith(f"ws://127.0.0.1:{cfg.sim.port}/")
    assert set(cfg.collector.channels) <= set(cfg.sim.upstream_channels)
    assert set(cfg.collector.symbols) <= set(cfg.sim.symbols)
    for n, line in enumerate((REPO / "configs/paper-binance.toml").read_text().splitlines(), 1):
        st = line.strip()
        if st and not st.startswith(("#", "[")):
            assert "#" in st, f"paper-binance.toml:{n}: key without a comment: {st}"
