"""Market data from the simulator process, read by websocket-client over loopback."""
from __future__ import annotations

import json
import time

import pytest
import requests
import websocket

from sim_fixtures import sim_factory  # noqa: F401

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A simulator with a running tape (module-wide)."""
    from pipeline.sim.testing import start_sim
    s = start_sim(tmp_path_factory.mktemp("md"), rate=3000, bursts=False,
                  weight_limit_1m=100_000)
    yield s
    s.stop()


def _doc_keys(vectors, name):
    ex = json.loads((vectors / "binance" / name).read_text())["examples"]
    return set(ex[0]["message"].keys())


def _recv_json(ws):
    return json.loads(ws.recv())


def test_raw_streams_match_documented_payloads(live, vectors):
    want = {"trade": _doc_keys(vectors, "ws_trade.json"),
            "aggTrade": _doc_keys(vectors, "ws_aggTrade.json"),
            "bookTicker": _doc_keys(vectors, "ws_bookTicker.json"),
            "depthUpdate": _doc_keys(vectors, "ws_depthUpdate.json")}
    for stream, kind in (("btcusdt@trade", "trade"), ("ethusdt@aggTrade", "aggTrade"),
                         ("solusdt@bookTicker", "bookTicker"), ("btcusdt@depth@100ms", "depthUpdate")):
        ws = websocket.create_connection(f"{live.ws_url}/ws/{stream}", timeout=10)
        try:
            for _ in range(3):
                msg = _recv_json(ws)
                assert set(msg) == want[kind], (stream, msg)
                assert msg["s"] == stream.split("@")[0].upper()
                if kind in ("trade", "aggTrade"):
                    assert float(msg["p"]) > 0 and float(msg["q"]) > 0 and msg["M"] is True
                    assert len(msg["p"].split(".")[1]) == 8
                if kind == "depthUpdate":
                    assert msg["U"] <= msg["u"] and all(len(lv) == 2 for lv in msg["b"] + msg["a"])
        finally:
            ws.close()


def test_combined_stream_wraps_payloads(live):
    ws = websocket.create_connection(
        f"{live.ws_url}/stream?streams=btcusdt@trade/ethusdt@bookTicker", timeout=10)
    try:
        seen = set()
        t_end = time.monotonic() + 10
        while seen != {"btcusdt@trade", "ethusdt@bookTicker"} and time.monotonic() < t_end:
            msg = _recv_json(ws)
            assert set(msg) == {"stream", "data"}
            seen.add(msg["stream"])
            if msg["stream"] == "btcusdt@trade":
                assert msg["data"]["e"] == "trade" and msg["data"]["s"] == "BTCUSDT"
            else:
                assert set(msg["data"]) == {"u", "s", "b", "B", "a", "A"}
                assert float(msg["data"]["b"]) < float(msg["data"]["a"])
        assert seen == {"btcusdt@trade", "ethusdt@bookTicker"}
    finally:
        ws.close()


def _reply(ws, want_id):
    """Read until the reply with id `want_id` (data frames may come first); returns (reply, data
    frames read before it)."""
    before = []
    while True:
        msg = _recv_json(ws)
        if "result" in msg or "code" in msg:
            if msg.get("id") == want_id or "code" in msg:
                return msg, before
        else:
            before.append(msg)


def test_live_subscribe_unsubscribe_list(live):
    ws = websocket.create_connection(f"{live.ws_url}/ws", timeout=10)
    try:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade", "ethusdt@trade"], "id": 1}))
        assert _reply(ws, 1)[0] == {"result": None, "id": 1}
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
        assert _reply(ws, 3)[0] == {"result": ["btcusdt@trade", "ethusdt@trade"], "id": 3}
        ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 312}))
        assert _reply(ws, 312)[0] == {"result": None, "id": 312}
        # after the reply, only ETHUSDT trades: frames are ordered on the connection
        for _ in range(20):
            assert _recv_json(ws)["s"] == "ETHUSDT"
        ws.send(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 2}))
        assert _reply(ws, 2)[0] == {"result": False, "id": 2}
        ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}))
        assert _reply(ws, 5)[0] == {"result": None, "id": 5}
        msg = _recv_json(ws)
        assert msg["stream"] == "ethusdt@trade" and msg["data"]["e"] == "trade"
    finally:
        ws.close()


@pytest.mark.parametrize("sent,reply", [
    ("{not json", {"code": 3}),
    ('{"params": [], "id": 1}', {"code": 2, "msg": "Invalid request: missing field `method`"}),
    ('{"method": "SUBSCRIBER", "params": [], "id": 1}',
     {"code": 2, "msg": "Invalid request: unknown variant `SUBSCRIBER`, expected one of `SUBSCRIBE`, "
                        "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"}),
    ('{"method": "SUBSCRIBE", "params": [], "id": [1]}',
     {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}),
    ('{"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 4}',
     {"code": 1, "msg": "Invalid value type: expected Boolean"}),
    ('{"method": "GET_PROPERTY", "params": ["colour"], "id": 9}',
     {"code": 0, "msg": "Unknown property", "id": 9}),
])
def test_control_errors_use_binance_texts(live, sent, reply):
    ws = websocket.create_connection(f"{live.ws_url}/ws", timeout=10)
    try:
        ws.send(sent)
        got = _recv_json(ws)
        for k, v in reply.items():
            assert got[k] == v if k != "msg" else got[k].startswith(v), got
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 7}))   # still alive after errors
        assert _recv_json(ws) == {"result": [], "id": 7}
    finally:
        ws.close()


def test_more_than_five_incoming_messages_per_second_disconnects(live):
    ws = websocket.create_connection(f"{live.ws_url}/ws", timeout=10)
    try:
        for i in range(6):
            ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        replies = []
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            while True:
                op, data = ws.recv_data(control_frame=True)
                if op == websocket.ABNF.OPCODE_CLOSE:
                    raise websocket.WebSocketConnectionClosedException(data)
                replies.append(json.loads(data))
        assert [r["id"] for r in replies] == [0, 1, 2, 3, 4]
    finally:
        ws.close()


def test_depth_snapshot_consistent_with_diff_stream(live):
    """The documented sync: buffer diffs, fetch the snapshot, drop u <= lastUpdateId, first applied
    diff straddles it, then U == previous u + 1. The local book equals the venue's after a pause."""
    ws = websocket.create_connection(f"{live.ws_url}/ws/btcusdt@depth@100ms", timeout=10)
    try:
        first = _recv_json(ws)
        snap = requests.get(f"{live.rest_url}/api/v3/depth",
                            params={"symbol": "BTCUSDT", "limit": 5000}, timeout=5).json()
        book = {"b": {p: q for p, q in snap["bids"]}, "a": {p: q for p, q in snap["asks"]}}
        last_u = snap["lastUpdateId"]
        synced = False
        diffs = [first]
        applied = 0
        while applied < 15:
            if not diffs:
                diffs.append(_recv_json(ws))
            d = diffs.pop(0)
            if d["u"] <= snap["lastUpdateId"]:
                continue
            if not synced:
                assert d["U"] <= snap["lastUpdateId"] + 1 <= d["u"]
                synced = True
            else:
                assert d["U"] == last_u + 1
            for side in ("b", "a"):
                for p, q in d[side]:
                    if float(q) == 0:
                        book[side].pop(p, None)
                    else:
                        book[side][p] = q
            last_u = d["u"]
            applied += 1
        requests.post(f"{live.rest_url}/_sim/tape", json={"action": "pause"}, timeout=5)
        try:
            snap2 = requests.get(f"{live.rest_url}/api/v3/depth",
                                 params={"symbol": "BTCUSDT", "limit": 5000}, timeout=5).json()
            while last_u < snap2["lastUpdateId"]:
                d = _recv_json(ws)
                assert d["U"] == last_u + 1
                for side in ("b", "a"):
                    for p, q in d[side]:
                        if float(q) == 0:
                            book[side].pop(p, None)
                        else:
                            book[side][p] = q
                last_u = d["u"]
            assert last_u == snap2["lastUpdateId"]
            assert sorted(book["b"].items(), key=lambda x: -float(x[0])) == [tuple(x) for x in snap2["bids"]]
            assert sorted(book["a"].items(), key=lambda x: float(x[0])) == [tuple(x) for x in snap2["asks"]]
        finally:
            requests.post(f"{live.rest_url}/_sim/tape", json={"action": "resume"}, timeout=5)
    finally:
        ws.close()


def test_server_pings_and_pong_deadline(sim_factory):  # noqa: F811
    s = sim_factory(ping_interval_s=0.4, pong_timeout_s=0.9, paused=True)  # pongs count: <= 5 msg/s
    good = websocket.create_connection(f"{s.ws_url}/ws/btcusdt@trade", timeout=10)
    quiet = websocket.create_connection(f"{s.ws_url}/ws/btcusdt@trade", timeout=10)
    try:
        pings = 0
        while pings < 4:             # ~1.6 s of pings, each answered by websocket-client
            op, _ = good.recv_data(control_frame=True)
            assert op == websocket.ABNF.OPCODE_PING
            pings += 1
        # `quiet` never read, so never answered: the server must have closed it
        ops = []
        while True:                  # raw frames: websocket-client must not answer the pings now
            frame = quiet.recv_frame()
            ops.append(frame.opcode)
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                assert int.from_bytes(frame.data[:2], "big") == 1008
                assert frame.data[2:] == b"pong timeout"
                break
        assert ops.count(websocket.ABNF.OPCODE_PING) >= 2
        assert good.connected
        good.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        while True:
            op, data = good.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_TEXT:
                assert json.loads(data) == {"result": ["btcusdt@trade"], "id": 1}
                break
    finally:
        good.close()
        quiet.close()


def test_maximum_connection_lifetime(sim_factory):  # noqa: F811
    s = sim_factory(max_lifetime_s=0.5, paused=True)
    t0 = time.monotonic()    # before the connection exists, so the 0.5 s is a true lower bound
    ws = websocket.create_connection(f"{s.ws_url}/ws/btcusdt@trade", timeout=10)
    try:
        while True:
            op, data = ws.recv_data(control_frame=True)
            if op == websocket.ABNF.OPCODE_CLOSE:
                break
        assert 0.49 <= time.monotonic() - t0 < 5
    finally:
        ws.close()


@pytest.mark.parametrize("rate", [400, 4000])
def test_tape_rate_is_the_configured_rate(sim_factory, rate):  # noqa: F811
    """All trade/aggTrade/bookTicker streams of all symbols carry `rate` messages/s in total."""
    s = sim_factory(rate=rate, bursts=False, paused=False)
    names = "/".join(f"{sym}@{k}" for sym in ("btcusdt", "ethusdt", "solusdt")
                     for k in ("trade", "aggTrade", "bookTicker"))
    ws = websocket.create_connection(f"{s.ws_url}/ws/{names}", timeout=10)
    try:
        ws.recv()
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 1.2:
            ws.recv()
            n += 1
        got = n / (time.monotonic() - t0)
        assert 0.7 * rate <= got <= 1.3 * rate, got
    finally:
        ws.close()


def test_stream_count_limit(sim_factory):  # noqa: F811
    s = sim_factory(max_streams=3)
    r = requests.get(f"{s.rest_url}/stream", params={"streams": "a@trade/b@trade/c@trade/d@trade"},
                     timeout=5)
    assert r.status_code == 400 and "too many streams" in r.text
    ws = websocket.create_connection(f"{s.ws_url}/ws/btcusdt@trade/ethusdt@trade", timeout=10)
    try:
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["solusdt@trade", "btcusdt@aggTrade"],
                            "id": 1}))
        reply = json.loads(ws.recv())
        assert reply["code"] == 2 and "too many streams" in reply["msg"] and reply["id"] == 1
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
        assert json.loads(ws.recv()) == {"result": ["btcusdt@trade", "ethusdt@trade"], "id": 2}
    finally:
        ws.close()
