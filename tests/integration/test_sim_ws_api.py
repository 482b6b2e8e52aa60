"""WebSocket API (/ws-api/v3) and the user-data stream, with websocket-client over loopback."""
from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import pytest
import requests
import websocket

from pipeline.sim.testing import SIM_TEST_API_KEY, signed_query, ws_signed_params
from sim_fixtures import sim  # noqa: F401

pytestmark = pytest.mark.timeout(60)
H = {"X-MBX-APIKEY": SIM_TEST_API_KEY}


def ws_sign(params: dict) -> dict:
    return ws_signed_params(params)


class Api:
    """A WS-API client that separates responses (by id) from user-data events."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url + "/ws-api/v3", timeout=10)
        self.events: list[dict] = []

    def call(self, method: str, params: dict | None = None) -> dict:
        rid = str(uuid.uuid4())
        req = {"id": rid, "method": method}
        if params is not None:
            req["params"] = params
        self.ws.send(json.dumps(req))
        while True:
            msg = json.loads(self.ws.recv())
            if "subscriptionId" in msg and "event" in msg:
                self.events.append(msg)
                continue
            assert msg["id"] == rid, msg
            return msg

    def wait_events(self, n: int) -> list[dict]:
        while len(self.events) < n:
            msg = json.loads(self.ws.recv())
            assert "event" in msg, msg
            self.events.append(msg)
        return self.events

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def api(sim):  # noqa: F811
    a = Api(sim.ws_url)
    yield a
    a.close()


def _logon_and_subscribe(api: Api) -> int:
    r = api.call("session.logon", ws_sign({}))
    assert r["status"] == 200 and r["result"]["apiKey"] == SIM_TEST_API_KEY, r
    r = api.call("userDataStream.subscribe")
    assert r["status"] == 200, r
    return r["result"]["subscriptionId"]


def test_documented_request_signature_verifies_then_timestamp_is_old(api, vectors):
    doc = json.loads((vectors / "binance" / "ws_api_order_place.json").read_text())
    req = doc["order_place"]["request"]["message"]
    r = api.call(req["method"], req["params"])
    # signature over the doc's params verifies with the test secret; its 2022 timestamp does not
    assert r["status"] == 400 and r["error"]["code"] == -1021, r
    bad = dict(req["params"], quantity="0.00848000")
    r = api.call("order.place", bad)
    assert r["error"] == {"code": -1022, "msg": "Signature for this request is not valid."}


def test_user_stream_requires_logon(api):
    r = api.call("userDataStream.subscribe")
    assert r["status"] == 401 and r["error"]["code"] == -1002
    r = api.call("userDataStream.subscribe.signature", ws_sign({}))
    assert r["status"] == 200 and r["result"] == {"subscriptionId": 0}


def test_order_place_market_pushes_reports_for_every_fill(sim, api):  # noqa: F811
    sid = _logon_and_subscribe(api)
    depth = requests.get(f"{sim.rest_url}/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5},
                         timeout=5).json()
    a0, a1 = (Decimal(q) for _, q in depth["asks"][:2])
    qty = (a0 + a1 / 2).quantize(Decimal("0.00001"))
    r = api.call("order.place", ws_sign({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                         "quantity": str(qty), "newClientOrderId": "ws-mkt-1"}))
    assert r["status"] == 200, r
    res = r["result"]
    assert res["status"] == "FILLED" and len(res["fills"]) == 2
    assert {x["rateLimitType"] for x in r["rateLimits"]} == {"ORDERS", "REQUEST_WEIGHT"}
    evs = api.events
    assert all(set(e) == {"subscriptionId", "event"} and e["subscriptionId"] == sid for e in evs)
    reports = [e["event"] for e in evs if e["event"]["e"] == "executionReport"]
    assert [(x["x"], x["X"]) for x in reports] == [("NEW", "NEW"), ("TRADE", "PARTIALLY_FILLED"),
                                                   ("TRADE", "FILLED")]
    assert [x["t"] for x in reports[1:]] == [f["tradeId"] for f in res["fills"]]
    assert all(x["c"] == "ws-mkt-1" and x["i"] == res["orderId"] for x in reports)
    assert sum(Decimal(x["l"]) for x in reports) == qty and Decimal(reports[-1]["z"]) == qty
    pos = [e["event"] for e in evs if e["event"]["e"] == "outboundAccountPosition"]
    assert len(pos) == 1 and {b["a"] for b in pos[0]["B"]} == {"BTC", "USDT"}
    acct = requests.get(f"{sim.rest_url}/api/v3/account?{signed_query({})}", headers=H, timeout=5).json()
    bal = {b["asset"]: b for b in acct["balances"]}
    assert {b["a"]: b["f"] for b in pos[0]["B"]} == {a: bal[a]["free"] for a in ("BTC", "USDT")}


def test_rest_orders_and_tape_fills_reach_the_user_stream(sim, api):  # noqa: F811
    _logon_and_subscribe(api)
    r = requests.post(f"{sim.rest_url}/api/v3/order?" + signed_query(
        {"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.5000", "price": "1000.00"}), headers=H, timeout=5)
    oid = r.json()["orderId"]
    evs = api.wait_events(2)                          # NEW + position (USDT locked)
    assert evs[0]["event"]["x"] == "NEW" and evs[0]["event"]["i"] == oid
    assert evs[1]["event"]["B"] == [{"a": "USDT", "f": evs[1]["event"]["B"][0]["f"], "l": "500.00000000"}]
    sim.trade("ETHUSDT", "999.99", "0.2")
    sim.trade("ETHUSDT", "999.00", "1")
    evs = api.wait_events(6)
    trades = [e["event"] for e in evs if e["event"].get("x") == "TRADE"]
    assert [(t["l"], t["X"], t["m"], t["L"]) for t in trades] == [
        ("0.20000000", "PARTIALLY_FILLED", True, "1000.00000000"),
        ("0.30000000", "FILLED", True, "1000.00000000")]
    final_pos = [e["event"] for e in evs if e["event"]["e"] == "outboundAccountPosition"][-1]
    assert {b["a"]: b["l"] for b in final_pos["B"]}["USDT"] == "0.00000000"


def test_order_cancel_and_status(api):
    r = api.call("order.place", ws_sign({"symbol": "SOLUSDT", "side": "BUY", "type": "LIMIT",
                                         "timeInForce": "GTC", "quantity": "1.000", "price": "100.00",
                                         "newOrderRespType": "ACK"}))
    assert r["status"] == 200 and set(r["result"]) == {"symbol", "orderId", "orderListId",
                                                        "clientOrderId", "transactTime"}
    oid = r["result"]["orderId"]
    st = api.call("order.status", ws_sign({"symbol": "SOLUSDT", "orderId": oid}))
    assert st["result"]["status"] == "NEW"
    c = api.call("order.cancel", ws_sign({"symbol": "SOLUSDT", "orderId": oid}))
    assert c["status"] == 200 and c["result"]["status"] == "CANCELED"
    c = api.call("order.cancel", ws_sign({"symbol": "SOLUSDT", "orderId": oid}))
    assert c["status"] == 400 and c["error"] == {"code": -2011, "msg": "Unknown order sent."}
    bad = ws_sign({"symbol": "SOLUSDT", "orderId": oid})
    bad["orderId"] = oid + 1
    assert api.call("order.cancel", bad)["error"]["code"] == -1022


def test_session_logon_lets_requests_skip_signatures(api):
    _logon_and_subscribe(api)
    r = api.call("account.status", {"timestamp": int(time.time() * 1000)})
    assert r["status"] == 200 and r["result"]["accountType"] == "SPOT"
    r = api.call("session.status")
    assert r["result"]["userDataStream"] is True
    r = api.call("userDataStream.unsubscribe")
    assert r["status"] == 200 and r["result"] == {}
    assert api.call("no.such.method")["status"] == 400
    assert api.call("ping")["result"] == {}


def test_ioc_remainder_expires_and_fok_without_liquidity_expires(sim, api):  # noqa: F811
    _logon_and_subscribe(api)
    depth = requests.get(f"{sim.rest_url}/api/v3/depth", params={"symbol": "ETHUSDT", "limit": 5},
                         timeout=5).json()
    best_ask, best_qty = Decimal(depth["asks"][0][0]), Decimal(depth["asks"][0][1])
    qty = (best_qty + Decimal("0.5")).quantize(Decimal("0.0001"))
    r = api.call("order.place", ws_sign({"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT",
                                         "timeInForce": "IOC", "quantity": str(qty),
                                         "price": str(best_ask)}))
    assert r["status"] == 200 and r["result"]["status"] == "EXPIRED", r
    assert Decimal(r["result"]["executedQty"]) == best_qty
    r = api.call("order.place", ws_sign({"symbol": "ETHUSDT", "side": "BUY", "type": "LIMIT",
                                         "timeInForce": "FOK", "quantity": str(qty),
                                         "price": str(best_ask)}))
    assert r["result"]["status"] == "EXPIRED" and r["result"]["executedQty"] == "0.00000000"
    assert r["result"]["fills"] == []
    kinds = [(e["event"].get("x"), e["event"].get("X")) for e in api.events
             if e["event"]["e"] == "executionReport"]
    assert kinds == [("NEW", "NEW"), ("TRADE", "PARTIALLY_FILLED"),
                     ("EXPIRED", "EXPIRED"), ("NEW", "NEW"), ("EXPIRED", "EXPIRED")]


def test_ws_api_5xx_fault_still_places(sim, api):  # noqa: F811
    sim.fault("http_5xx", count=1, status=503)
    r = api.call("order.place", ws_sign({"symbol": "SOLUSDT", "side": "BUY", "type": "LIMIT",
                                         "timeInForce": "GTC", "quantity": "1.000",
                                         "price": "90.00", "newClientOrderId": "ws-5xx"}))
    assert r["status"] == 503 and r["error"]["code"] == -1007
    st = api.call("order.status", ws_sign({"symbol": "SOLUSDT", "origClientOrderId": "ws-5xx"}))
    assert st["status"] == 200 and st["result"]["status"] == "NEW"
    api.call("order.cancel", ws_sign({"symbol": "SOLUSDT", "origClientOrderId": "ws-5xx"}))
