"""The pipelined WS-API order wire (pipeline/venues/binance/ws_api.py WsOrderWire) matches each
answer to its request by id, not by arrival order: against a small WebSocket server on loopback
that holds three order.place requests and answers them last-first, every order gets its own
answer (the venue's orderId for that client id), and an answer to an id nobody asked for is
counted and matched to nothing."""
from __future__ import annotations

import json

import pytest
from aiohttp import WSMsgType, web

from pipeline.gateway.ratelimit import HostGate
from pipeline.gateway.rest import Outcome
from pipeline.venues.binance.ws_api import WsOrderWire, WsSigner
from tests.ws_server import ThreadedWsServer

pytestmark = pytest.mark.timeout(30)


class ReversingVenue(ThreadedWsServer):
    """Takes `hold` order.place frames, then answers them in reverse order (plus, first, one
    answer to an id it never got)."""

    def __init__(self, hold: int):
        self.hold = hold
        self.got: list[dict] = []
        super().__init__()

    async def _ws(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            self.got.append(json.loads(msg.data))
            if len(self.got) == self.hold:
                await ws.send_str(json.dumps({"id": 999_999, "status": 200,
                                              "result": {"orderId": 0}}))
                for k, req in reversed(list(enumerate(self.got))):
                    await ws.send_str(json.dumps({
                        "id": req["id"], "status": 200, "rateLimits": [],
                        "result": {"orderId": 1000 + k,
                                   "clientOrderId": req["params"]["newClientOrderId"]}}))
        return ws


def test_answers_arriving_last_first_are_matched_to_their_requests_by_id():
    venue = ReversingVenue(hold=3)
    gate = HostGate("127.0.0.1", weight_limit_1m=6000, order_limit_10s=100)
    wire = WsOrderWire(f"ws://127.0.0.1:{venue.port}/ws-api/v3",
                       WsSigner("k", lambda payload: "0" * 64, lambda: 1_700_000_000_000, 5000),
                       gate, connect_timeout_s=5.0, read_timeout_s=10.0, redact=lambda s: s)
    try:
        for cid in ("a", "b", "c"):
            wire.put(cid, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                           "quantity": "0.001", "newClientOrderId": cid})
        assert wire.max_in_flight == 3          # sent without waiting for an answer
        got = [wire.wait_reply(10) for _ in range(3)]
        assert all(g is not None for g in got), got
        assert [cid for cid, _ in got] == ["c", "b", "a"]          # they came last-first ...
        for cid, r in got:                                          # ... each to its own order
            assert r.outcome is Outcome.OK
            assert r.data["clientOrderId"] == cid
            assert r.data["orderId"] == 1000 + "abc".index(cid)
        assert [f["params"]["newClientOrderId"] for f in venue.got] == ["a", "b", "c"]
        assert len({f["id"] for f in venue.got}) == 3              # one id per request
        assert wire.in_flight() == 0 and wire.replies() == []      # the stray id matched nothing
        assert wire.late == 1                                       # and was counted
    finally:
        wire.close()
        venue.close()
