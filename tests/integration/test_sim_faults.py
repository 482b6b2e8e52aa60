"""Every fault mode, observed from a client over loopback (each test owns its simulator)."""
from __future__ import annotations

import json
import time

import pytest
import requests
import websocket

from pipeline.sim.testing import SIM_TEST_API_KEY, signed_query
from sim_fixtures import sim_factory  # noqa: F401

pytestmark = pytest.mark.timeout(60)
H = {"X-MBX-APIKEY": SIM_TEST_API_KEY}


def _order(s, **extra):
    p = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.001", "price": "40000", **extra}
    return requests.post(f"{s.rest_url}/api/v3/order?{signed_query(p)}", headers=H, timeout=10)


def _frames_until_close(ws):
    """Read frames (raw, no auto-pong) until the peer closes; returns the opcodes and payloads."""
    out = []
    while True:
        try:
            f = ws.recv_frame()
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            out.append(("lost", b""))
            return out
        out.append((f.opcode, f.data))
        if f.opcode == websocket.ABNF.OPCODE_CLOSE:
            return out


def test_drop_cuts_connections_without_close_frame(sim_factory):  # noqa: F811
    s = sim_factory(paused=False, rate=500)
    md = websocket.create_connection(f"{s.ws_url}/ws/btcusdt@trade", timeout=10)
    api = websocket.create_connection(f"{s.ws_url}/ws-api/v3", timeout=10)
    md.recv()
    assert s.fault("drop")["dropped"] == 2
    frames = _frames_until_close(md)
    assert frames[-1][0] == "lost" and websocket.ABNF.OPCODE_CLOSE not in [f[0] for f in frames]
    assert _frames_until_close(api)[-1][0] == "lost"
    # the venue is still up: a new connection works
    md2 = websocket.create_connection(f"{s.ws_url}/ws/btcusdt@trade", timeout=10)
    assert json.loads(md2.recv())["e"] == "trade"
    md2.close()


def test_silence_keeps_tcp_open_and_resumes(sim_factory):  # noqa: F811
    s = sim_factory(paused=False, rate=2000, bursts=False)
    ws = websocket.create_connection(f"{s.ws_url}/ws/btcusdt@bookTicker", timeout=10)
    ws.recv()
    t_fault = time.monotonic()       # the silence starts after this (when the request is handled)
    s.fault("silence", seconds=1.5)
    ws.settimeout(0.6)
    drained = 0
    with pytest.raises(websocket.WebSocketTimeoutException):
        while True:                 # frames already on the wire, then nothing
            ws.recv()
            drained += 1
    assert ws.connected
    ws.settimeout(10)
    msg = json.loads(ws.recv())      # the feed comes back on the same connection
    assert set(msg) == {"u", "s", "b", "B", "a", "A"}
    # a lower bound only (a slow box makes it longer, never shorter): nothing new for 1.5 s
    assert time.monotonic() - t_fault >= 1.45
    ws.close()


def test_delay_holds_responses(sim_factory):  # noqa: F811
    s = sim_factory()
    s.fault("delay", ms=1500, count=1)
    t0 = time.monotonic()
    assert requests.get(f"{s.rest_url}/api/v3/time", timeout=10).status_code == 200
    slow = time.monotonic() - t0
    assert s.state()["faults"]["delay_ms"] == 0        # consumed by that one response
    t0 = time.monotonic()
    requests.get(f"{s.rest_url}/api/v3/time", timeout=10)
    fast = time.monotonic() - t0
    # only the first response was held: a lower bound on it, and a 1 s margin for the second
    assert slow >= 1.5 and fast < slow - 1.0


def test_5xx_still_creates_the_order(sim_factory):  # noqa: F811
    s = sim_factory()
    s.fault("http_5xx", count=1, status=503)
    r = _order(s, newClientOrderId="unknown-status-1")
    assert r.status_code == 503 and r.json()["code"] == -1007
    q = requests.get(f"{s.rest_url}/api/v3/order?" + signed_query(
        {"symbol": "BTCUSDT", "origClientOrderId": "unknown-status-1"}), headers=H, timeout=10)
    assert q.status_code == 200 and q.json()["status"] == "NEW"      # it exists after all


def test_force_1021_then_normal(sim_factory):  # noqa: F811
    s = sim_factory()
    s.fault("force_1021", count=1)
    r = _order(s)
    assert r.status_code == 400 and r.json()["code"] == -1021
    assert _order(s).status_code == 200


def test_force_429_then_418_for_continuing(sim_factory):  # noqa: F811
    s = sim_factory(ban_s=60)
    s.fault("force_429")
    r = requests.get(f"{s.rest_url}/api/v3/ping", timeout=10)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0 and r.json()["code"] == -1003
    r = requests.get(f"{s.rest_url}/api/v3/ping", timeout=10)
    assert r.status_code == 418 and int(r.headers["Retry-After"]) >= 59
    s.fault("clear")
    assert requests.get(f"{s.rest_url}/api/v3/ping", timeout=10).status_code == 200


def test_force_418(sim_factory):  # noqa: F811
    s = sim_factory()
    s.fault("force_418", seconds=30)
    r = _order(s)
    assert r.status_code == 418 and "banned" in r.json()["msg"]
    api = websocket.create_connection(f"{s.ws_url}/ws-api/v3", timeout=10)
    api.send(json.dumps({"id": 1, "method": "time"}))
    resp = json.loads(api.recv())
    assert resp["status"] == 418 and resp["error"]["data"]["retryAfter"] > resp["error"]["data"]["serverTime"]
    api.close()


def test_skip_depth_shows_a_gap(sim_factory):  # noqa: F811
    s = sim_factory(paused=False, rate=3000, bursts=False)
    ws = websocket.create_connection(f"{s.ws_url}/ws/btcusdt@depth@100ms", timeout=10)
    prev = json.loads(ws.recv())
    for _ in range(2):                 # contiguous before the fault
        d = json.loads(ws.recv())
        assert d["U"] == prev["u"] + 1
        prev = d
    s.fault("skip_depth", symbol="BTCUSDT", count=1)
    # diffs flushed before the fault may still be on the way (more of them on a slow box): read
    # until the gap (within 10 s), then 5 more, which must be contiguous again
    gaps = 0
    after = 0
    deadline = time.monotonic() + 10
    while after < 5:
        assert time.monotonic() < deadline, "no gap within 10 s"
        d = json.loads(ws.recv())
        if d["U"] != prev["u"] + 1:
            gaps += 1
            assert d["U"] > prev["u"] + 1
        elif gaps:
            after += 1
        prev = d
    assert gaps == 1
    ws.close()


@pytest.mark.parametrize("fault", ["malformed", "truncated", "duplicate"])
def test_spoiled_frames(sim_factory, fault):  # noqa: F811
    s = sim_factory(paused=False, rate=6000, bursts=False)
    ws = websocket.create_connection(f"{s.ws_url}/ws/btcusdt@trade", timeout=10)
    json.loads(ws.recv())
    s.fault(fault, count=1)
    # frames queued before the fault may still arrive first (more of them on a slow box): read
    # until the spoiled one is seen (within 10 s), then 40 more
    frames: list[str] = []
    seen_at = None
    deadline = time.monotonic() + 10
    while seen_at is None or len(frames) < seen_at + 40:
        assert time.monotonic() < deadline, f"no {fault} frame within 10 s"
        frames.append(ws.recv())
        if seen_at is None:
            try:
                j = json.loads(frames[-1])
                spoiled = (fault == "duplicate" and len(frames) > 1
                           and frames[-1] == frames[-2] and "t" in j)
            except ValueError:
                spoiled = True
            if spoiled:
                seen_at = len(frames)
    bad = []
    for f in frames:
        try:
            json.loads(f)
        except ValueError:
            bad.append(f)
    if fault == "duplicate":
        assert not bad
        ids = [json.loads(f)["t"] for f in frames]
        assert len(ids) - len(set(ids)) == 1
        i = next(i for i in range(1, len(ids)) if ids[i] == ids[i - 1])
        assert frames[i] == frames[i - 1]
    else:
        assert len(bad) == 1
        if fault == "truncated":
            assert bad[0].startswith('{"e":"trade"')
        ids = [json.loads(f)["t"] for f in frames if f not in bad]
        assert ids == sorted(ids)
    ws.close()


@pytest.mark.parametrize("combined", [False, True])
def test_server_shutdown_event_then_close(sim_factory, combined):  # noqa: F811
    s = sim_factory()
    url = f"{s.ws_url}/stream?streams=btcusdt@trade" if combined else f"{s.ws_url}/ws/btcusdt@trade"
    ws = websocket.create_connection(url, timeout=10)
    s.fault("server_shutdown", grace_s=0.2)
    frames = _frames_until_close(ws)
    texts = [json.loads(d) for op, d in frames if op == websocket.ABNF.OPCODE_TEXT]
    if combined:
        assert texts[-1]["stream"] == "!serverShutdown" and texts[-1]["data"]["e"] == "serverShutdown"
    else:
        assert set(texts[-1]) == {"e", "E"} and texts[-1]["e"] == "serverShutdown"
    assert frames[-1][0] == websocket.ABNF.OPCODE_CLOSE


def test_sigterm_sends_server_shutdown(sim_factory):  # noqa: F811
    s = sim_factory()
    ws = websocket.create_connection(f"{s.ws_url}/ws/btcusdt@trade", timeout=10)
    assert s.stop() == 0
    frames = _frames_until_close(ws)
    texts = [json.loads(d) for op, d in frames if op == websocket.ABNF.OPCODE_TEXT]
    assert texts and texts[-1]["e"] == "serverShutdown"


def test_faults_from_config_and_bad_requests(sim_factory):  # noqa: F811
    s = sim_factory(faults=[{"fault": "force_1021", "at_s": 0.0, "params": {"count": 1}}])
    deadline = time.monotonic() + 5
    while s.state()["faults"]["applied"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _order(s).json()["code"] == -1021
    for body, msg in (({"fault": "melt"}, "unknown fault 'melt'"),
                      ({"fault": "delay", "ms": "x"}, "wrong type"),
                      ({"fault": "drop", "target": "moon"}, "target must be")):
        r = requests.post(f"{s.rest_url}/_sim/fault", json=body, timeout=10)
        assert r.status_code == 400 and msg in r.json()["error"]
    assert s.alive()
