"""WsOrderWire.request (async_orders' pipelined WS-API client): a request that waits for its own
answer on the connection the pipelined order.place frames use (how a replace goes out as
order.cancelReplace). Against a real WebSocket server on localhost (aiohttp) that answers,
stays silent or hangs up: the answer is matched by id while an order.place is in flight, a
silent venue is UNKNOWN after the read timeout, a lost connection is UNKNOWN at once."""
from __future__ import annotations

import time

import orjson
import pytest
from aiohttp import WSMsgType, web

from pipeline.gateway.ratelimit import HostGate
from pipeline.gateway.rest import Outcome
from pipeline.venues.binance.ws_api import WsOrderWire, WsSigner
from tests.ws_server import ThreadedWsServer

pytestmark = pytest.mark.timeout(30)


class Venue(ThreadedWsServer):
    """A WS-API stand-in: answers order.place / order.cancelReplace, stays silent on a method
    named 'silent', hangs up on 'hangup'."""

    def __init__(self):
        self.seen: list[str] = []
        super().__init__()

    async def _ws(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            m = orjson.loads(msg.data)
            self.seen.append(m["method"])
            if m["method"] == "silent":
                continue
            if m["method"] == "hangup":
                await ws.close()
                break
            await ws.send_str(orjson.dumps({"id": m["id"], "status": 200, "result": {
                "method": m["method"], "symbol": m["params"].get("symbol")}}).decode())
        return ws


@pytest.fixture
def wire():
    v = Venue()
    gate = HostGate("127.0.0.1", weight_limit_1m=6000, order_limit_10s=50)
    signer = WsSigner("k", lambda payload: "sig", lambda: int(time.time() * 1000), 5000)
    w = WsOrderWire(f"ws://127.0.0.1:{v.port}/ws-api/v3", signer, gate, connect_timeout_s=2.0,
                    read_timeout_s=0.5, redact=lambda s: s)
    yield w, v
    w.close()
    v.close()


def test_request_gets_its_own_answer_beside_a_pipelined_order_place(wire):
    w, v = wire
    w.put("c1", {"symbol": "BTCUSDT"})
    r = w.request("order.cancelReplace", {"symbol": "ETHUSDT"})
    assert r.outcome is Outcome.OK
    assert r.data == {"method": "order.cancelReplace", "symbol": "ETHUSDT"}
    cid, placed = w.wait_reply(5.0)                 # the place's answer still goes to replies
    assert cid == "c1" and placed.outcome is Outcome.OK
    assert placed.data["method"] == "order.place"
    assert v.seen == ["order.place", "order.cancelReplace"]
    assert w.in_flight() == 0 and w.late == 0


def test_a_silent_venue_makes_the_request_unknown_after_the_read_timeout(wire):
    w, _ = wire
    t0 = time.monotonic()
    r = w.request("silent", {})
    assert r.outcome is Outcome.UNKNOWN and "read timeout" in r.msg
    assert 0.4 <= time.monotonic() - t0 < 3.0
    assert w.request("order.cancelReplace", {"symbol": "X"}).outcome is Outcome.OK


def test_a_lost_connection_makes_the_waiting_request_unknown(wire):
    w, _ = wire
    assert w.request("order.cancelReplace", {}).outcome is Outcome.OK
    t0 = time.monotonic()
    r = w.request("hangup", {})
    assert r.outcome is Outcome.UNKNOWN and "connection lost" in r.msg
    assert time.monotonic() - t0 < 0.45              # at once, not at the read timeout
    # the next request opens a fresh connection
    assert w.request("order.cancelReplace", {}).outcome is Outcome.OK
    assert w.connects == 2
