"""Replay of a recording (hftbacktest `<local_ts_ns> <raw json>` lines) through the simulator."""
from __future__ import annotations

import gzip
import json
import time

import pytest
import requests
import websocket

from sim_fixtures import sim_factory  # noqa: F401

pytestmark = pytest.mark.timeout(60)
STREAMS = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade"


def _lines(path, n=None):
    out = []
    with gzip.open(path, "rb") as f:
        for line in f:
            ts, _, raw = line.strip().partition(b" ")
            out.append((int(ts), raw))
            if n and len(out) >= n:
                break
    return out


@pytest.fixture
def recording(vectors):
    return vectors / "binance" / "recorded" / "hftbacktest_spot" / "btcusdt_20240808.gz"


def test_replay_is_byte_exact(sim_factory, recording):  # noqa: F811
    s = sim_factory(tape="replay", replay_files=[str(recording)], replay_speed=0.0,
                    replay_rebase_time=False, paused=True)
    ws = websocket.create_connection(f"{s.ws_url}/stream?streams={STREAMS}", timeout=10)
    s.tape(action="resume")
    want = [raw.decode() for _, raw in _lines(recording, 400) if raw.startswith(b'{"stream"')][:300]
    got = [ws.recv() for _ in range(len(want))]
    assert got == want
    ws.close()


def test_replayed_book_matches_the_recording(sim_factory, recording):  # noqa: F811
    """REST depth after the replay equals the book built from the file's snapshot + diffs."""
    s = sim_factory(tape="replay", replay_files=[str(recording)], replay_speed=0.0, paused=False)
    bids, asks, last_u = {}, {}, None
    for _, raw in _lines(recording):
        msg = json.loads(raw)
        if "lastUpdateId" in msg:
            bids = {p: q for p, q in msg["bids"]}
            asks = {p: q for p, q in msg["asks"]}
            last_u = msg["lastUpdateId"]
        elif last_u is not None and msg["data"].get("e") == "depthUpdate" and msg["data"]["u"] > last_u:
            for side, levels in ((bids, msg["data"]["b"]), (asks, msg["data"]["a"])):
                for p, q in levels:
                    if float(q) == 0:
                        side.pop(p, None)
                    else:
                        side[p] = q
            last_u = msg["data"]["u"]
    deadline = time.monotonic() + 30
    while not s.state()["tape"]["done"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.state()["tape"]["done"]
    snap = requests.get(f"{s.rest_url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 20},
                        timeout=10).json()
    assert snap["lastUpdateId"] == last_u
    assert snap["bids"] == [list(x) for x in sorted(bids.items(), key=lambda x: -float(x[0]))[:20]]
    assert snap["asks"] == [list(x) for x in sorted(asks.items(), key=lambda x: float(x[0]))[:20]]
    info = requests.get(f"{s.rest_url}/api/v3/exchangeInfo", timeout=10).json()
    assert [x["symbol"] for x in info["symbols"]] == ["BTCUSDT"]


def test_replay_paces_and_rebases_time(sim_factory, recording):  # noqa: F811
    speed = 40.0
    s = sim_factory(tape="replay", replay_files=[str(recording)], replay_speed=speed, paused=True)
    ws = websocket.create_connection(f"{s.ws_url}/stream?streams={STREAMS}", timeout=10)
    lines = [(ts, raw) for ts, raw in _lines(recording, 3000) if raw.startswith(b'{"stream"')]
    # the first line whose recorded time is >= 20 s after the first: at 40x that is >= 0.5 s
    n = next(i for i, (ts, _) in enumerate(lines) if ts - lines[0][0] >= 20e9)
    span = (lines[n][0] - lines[0][0]) / 1e9 / speed
    t0 = time.monotonic()      # before the resume: the replay clock cannot start earlier
    s.tape(action="resume")
    first = json.loads(ws.recv())
    now_ms = time.time() * 1000
    if "E" in first["data"]:
        assert abs(first["data"]["E"] - now_ms) < 5000        # rebased to "now"
    for _ in range(n):
        ws.recv()
    elapsed = time.monotonic() - t0
    assert span - 0.01 <= elapsed <= span * 3 + 1.0
    ws.close()
