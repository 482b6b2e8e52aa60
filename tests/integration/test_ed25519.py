"""Binance Ed25519 API keys end to end: the simulator verifies Ed25519 signatures (REST and the
WebSocket API), and the gateway with `key_type = "ed25519"` logs its WS-API connections on
(session.logon), places orders on the logged-on session and signs its REST calls with the key."""
from __future__ import annotations

import base64
import time
import urllib.parse

import pytest
import requests
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.gateway.testing import BUY, SIM_DEFAULTS, GatewayProc, StrategySide
from pipeline.sim.testing import start_sim

pytestmark = pytest.mark.timeout(90)
ED_KEY = "ed25519-test-key-" + "x" * 47


def keypair() -> tuple[Ed25519PrivateKey, str, str]:
    """(key, its public half as base64 raw, the private key as one base64 PKCS#8 DER line)."""
    k = Ed25519PrivateKey.generate()
    pub = base64.b64encode(k.public_key().public_bytes(ser.Encoding.Raw,
                                                       ser.PublicFormat.Raw)).decode()
    der = k.private_bytes(ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    return k, pub, base64.b64encode(der).decode()


@pytest.fixture
def ed_sim(tmp_path):
    k, pub, line = keypair()
    s = start_sim(tmp_path, **SIM_DEFAULTS, accounts=[{
        "api_key": ED_KEY, "secret": "not-the-signing-key", "ed25519_public_key": pub,
        "balances": {"USDT": "100000", "BTC": "1"}}])
    yield s, k, line
    s.stop()


def rest_account(sim, key: Ed25519PrivateKey) -> requests.Response:
    q = f"timestamp={int(time.time() * 1000)}"
    sig = urllib.parse.quote(base64.b64encode(key.sign(q.encode())).decode(), safe="")
    return requests.get(f"{sim.rest_url}/api/v3/account?{q}&signature={sig}",
                        headers={"X-MBX-APIKEY": ED_KEY}, timeout=5)


def test_simulator_verifies_ed25519_signatures(ed_sim):
    sim, key, _ = ed_sim
    assert rest_account(sim, key).status_code == 200
    r = rest_account(sim, Ed25519PrivateKey.generate())        # another key's signature
    assert r.status_code == 400 and r.json()["code"] == -1022


def test_gateway_with_an_ed25519_key_logs_on_and_trades(ed_sim, tmp_path):
    sim, _, line = ed_sim
    gw = GatewayProc(tmp_path, sim, transport="ws_api", key_type="ed25519", api_key=ED_KEY,
                     api_secret=line).start()
    try:
        with StrategySide(gw.channel) as st:
            st.send(side=BUY, qty=0.002)
            s = gw.wait(lambda s: s["orders"].get("FILLED") == 1 and s["fills"] >= 1)
        assert s["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.002)
        assert s["stream"]["subscribed"]                       # the user stream logged on too
        reqs = [r for r in gw.journal() if r["k"] == "request"]
        assert reqs and all(r["via"] == "ws_api" and "signature" not in r.get("body", "") for r in reqs)
        assert line not in gw.stderr()
    finally:
        assert gw.stop() == 0


def test_a_wrong_ed25519_key_is_refused_at_logon_and_said_without_the_key(ed_sim, tmp_path):
    sim, _, _ = ed_sim
    _, _, other = keypair()
    gw = GatewayProc(tmp_path, sim, transport="ws_api", key_type="ed25519", api_key=ED_KEY,
                     api_secret=other).start()
    try:
        deadline = time.monotonic() + 20
        while "session.logon refused" not in gw.stderr() and time.monotonic() < deadline:
            time.sleep(0.1)
        err = gw.stderr()
        assert "session.logon refused" in err and "-1022" in err
        assert not gw.status()["stream"]["subscribed"]
        assert other not in err
    finally:
        gw.stop()
