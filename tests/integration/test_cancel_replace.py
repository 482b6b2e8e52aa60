"""Cancel and cancel/replace intents through a real gateway process against the simulator: a
strategy's CANCEL record and REPLACE order become DELETE /api/v3/order and POST
/api/v3/order/cancelReplace (STOP_ON_FAILURE), and every outcome comes back on the order-event
ring; the simulator's cancelReplace answers as Binance's spec says (tests/data/binance/
spot_api.yaml, error codes -2021 / -2022 from binance-spot-api-docs errors.md)."""
from __future__ import annotations

import hashlib
import hmac
import time
import urllib.error
import urllib.parse
import urllib.request

import orjson
import pytest

from pipeline.bus.events import EventReader
from pipeline.gateway.orders import client_id
from pipeline.records import OrderEventKind as EK
from pipeline.records import OrderType, SignalAction
from tests.integration.gateway_harness import (BUY, StrategySide, acct,  # noqa: F401
                                               gw_factory, sim)

pytestmark = pytest.mark.timeout(90)
__all__ = ["sim", "gw_factory"]


def events(reader: EventReader, want, timeout: float = 10.0) -> list:
    """Collect events until `want(collected)` holds (or fail naming what came)."""
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for r in reader.poll():
            got.append((EK(int(r["kind"])).name, int(r["client_seq"]),
                        bytes(r["reason"]).rstrip(b"\0").decode()))
        if want(got):
            return got
        time.sleep(0.01)
    raise AssertionError(f"events so far: {got}")


def has(kind: str, seq: int):
    return lambda got: any(k == kind and s == seq for k, s, _ in got)


def test_cancel_and_replace_go_through_the_gateway_and_come_back_as_events(sim, gw_factory):
    gw = gw_factory(reference_poll_ms=60_000).start()
    reader = EventReader.attach(gw.channel, start="oldest")
    assert reader is not None, "the gateway offers no order-event ring"
    try:
        with StrategySide(gw.channel) as st:
            ref = gw.status()["refs"]["BTCUSDT"]
            ep = st.tx.epoch
            px1, px2 = round(ref * 0.98, 2), round(ref * 0.97, 2)
            st.send(side=BUY, qty=0.001, price=px1, order_type=OrderType.LIMIT_MAKER)   # seq 1
            events(reader, has("ACCEPTED", 1))
            # seq 2 replaces seq 1 (one number back): one cancelReplace request
            new = st.make(side=BUY, qty=0.001, price=px2, order_type=OrderType.LIMIT_MAKER)
            assert st.tx.send(new._replace(action=int(SignalAction.REPLACE), replace_back=1))
            got = events(reader, lambda g: has("CANCELLED", 1)(g) and has("ACCEPTED", 2)(g))
            orders = {o["clientOrderId"]: o for o in acct(sim)["orders"]}
            assert orders[client_id(1, ep, 1)]["status"] == "CANCELED"
            assert orders[client_id(1, ep, 2)]["status"] == "NEW"
            assert float(orders[client_id(1, ep, 2)]["price"]) == pytest.approx(px2)
            # cancel seq 2: a CANCEL record names it by its own (epoch, seq), takes no number
            cancel = st.make(seq=2)._replace(action=int(SignalAction.CANCEL))
            assert st.tx.send(cancel)
            events(reader, has("CANCELLED", 2))
            assert st.tx.send(cancel)                     # again: nothing open by that id
            got = events(reader, has("CANCEL_REJECTED", 2))
            assert any(k == "CANCEL_REJECTED" and "order is CANCELED" in why
                       for k, _, why in got), got
            # replacing an order that is done: the new order is refused, nothing sent
            new = st.make(side=BUY, qty=0.001, price=px1, order_type=OrderType.LIMIT_MAKER)
            assert st.tx.send(new._replace(action=int(SignalAction.REPLACE), replace_back=2))
            got = events(reader, has("REJECTED", 3))
            assert any(k == "REJECTED" and "not open" in why for k, _, why in got), got
            assert client_id(1, ep, 3) not in {o["clientOrderId"] for o in acct(sim)["orders"]}
            assert not acct(sim)["open_orders"]
        j = gw.journal()
        req = [r for r in j if r["k"] == "request" and r.get("path") == "/api/v3/order/cancelReplace"]
        assert len(req) == 1 and req[0]["replaces"] == client_id(1, ep, 1)
        assert [r["cid"] for r in j if r["k"] == "cancel"] == [client_id(1, ep, 2)]
        assert gw.stop() == 0
    finally:
        reader.close()


def _signed(sim, method: str, path: str, params: dict) -> tuple[int, dict]:
    from pipeline.sim.testing import SIM_TEST_API_KEY, SIM_TEST_SECRET
    params = dict(params, timestamp=int(time.time() * 1000))
    q = urllib.parse.urlencode(params)
    sig = hmac.new(SIM_TEST_SECRET.encode(), q.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"{sim.rest_url}{path}?{q}&signature={sig}", method=method,
                                 headers={"X-MBX-APIKEY": SIM_TEST_API_KEY})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_the_simulators_cancel_replace_answers_as_binance_does(sim):
    d = orjson.loads(urllib.request.urlopen(sim.rest_url + "/api/v3/depth?symbol=BTCUSDT&limit=1",
                                            timeout=5).read())
    px = round(float(d["bids"][0][0]) * 0.95, 2)
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.001"}
    st, o = _signed(sim, "POST", "/api/v3/order", dict(base, price=f"{px:.2f}",
                                                       newClientOrderId="a1"))
    assert st == 200 and o["status"] == "NEW"
    # both halves succeed
    st, r = _signed(sim, "POST", "/api/v3/order/cancelReplace", dict(
        base, price=f"{px - 1:.2f}", cancelReplaceMode="STOP_ON_FAILURE",
        cancelOrigClientOrderId="a1", newClientOrderId="a2"))
    assert st == 200, r
    assert (r["cancelResult"], r["newOrderResult"]) == ("SUCCESS", "SUCCESS")
    assert r["cancelResponse"]["origClientOrderId"] == "a1"
    assert r["cancelResponse"]["status"] == "CANCELED"
    assert r["newOrderResponse"]["clientOrderId"] == "a2" and r["newOrderResponse"]["status"] == "NEW"
    # the cancel fails (a1 is gone): STOP_ON_FAILURE does not place the new order
    st, r = _signed(sim, "POST", "/api/v3/order/cancelReplace", dict(
        base, price=f"{px:.2f}", cancelReplaceMode="STOP_ON_FAILURE",
        cancelOrigClientOrderId="a1", newClientOrderId="a3"))
    assert st == 400 and r["code"] == -2022, r
    assert r["data"]["cancelResult"] == "FAILURE" and r["data"]["newOrderResult"] == "NOT_ATTEMPTED"
    assert r["data"]["cancelResponse"]["code"] == -2011 and r["data"]["newOrderResponse"] is None
    # ALLOW_FAILURE places it anyway: half a success is 409 -2021
    st, r = _signed(sim, "POST", "/api/v3/order/cancelReplace", dict(
        base, price=f"{px:.2f}", cancelReplaceMode="ALLOW_FAILURE",
        cancelOrigClientOrderId="a1", newClientOrderId="a4"))
    assert st == 409 and r["code"] == -2021, r
    assert r["data"]["newOrderResult"] == "SUCCESS" and r["data"]["newOrderResponse"]["status"] == "NEW"
    st, r = _signed(sim, "POST", "/api/v3/order/cancelReplace", dict(base, price="1.00"))
    assert st == 400 and r["code"] == -1102 and "cancelReplaceMode" in r["msg"]


@pytest.mark.parametrize("async_orders", [False, True], ids=["request_answer", "pipelined"])
def test_replace_goes_out_as_ws_api_order_cancel_replace_on_the_ws_api_transport(
        sim, gw_factory, async_orders):
    """transport = ws_api, with the request/answer client and with the pipelined WsOrderWire
    (async_orders): a REPLACE is one WebSocket API order.cancelReplace (STOP_ON_FAILURE), not
    REST; the simulator's WS API answers it as its REST endpoint does, both halves' results in
    error.data when the cancel fails."""
    gw = gw_factory(transport="ws_api", async_orders=async_orders, user_stream=False,
                    reference_poll_ms=60_000).start()
    reader = EventReader.attach(gw.channel, start="oldest")
    assert reader is not None, "the gateway offers no order-event ring"
    try:
        with StrategySide(gw.channel) as st:
            ref = gw.status()["refs"]["BTCUSDT"]
            ep = st.tx.epoch
            px1, px2 = round(ref * 0.98, 2), round(ref * 0.97, 2)
            st.send(side=BUY, qty=0.001, price=px1, order_type=OrderType.LIMIT_MAKER)   # seq 1
            events(reader, has("ACCEPTED", 1))
            new = st.make(side=BUY, qty=0.001, price=px2, order_type=OrderType.LIMIT_MAKER)
            assert st.tx.send(new._replace(action=int(SignalAction.REPLACE), replace_back=1))
            events(reader, lambda g: has("CANCELLED", 1)(g) and has("ACCEPTED", 2)(g))
            orders = {o["clientOrderId"]: o for o in acct(sim)["orders"]}
            assert orders[client_id(1, ep, 1)]["status"] == "CANCELED"
            assert orders[client_id(1, ep, 2)]["status"] == "NEW"
            assert float(orders[client_id(1, ep, 2)]["price"]) == pytest.approx(px2)
            # seq 2 is cancelled at the venue behind the gateway's back (no user stream): the
            # venue refuses the cancel half, STOP_ON_FAILURE places nothing
            code, _ = _signed(sim, "DELETE", "/api/v3/order", {
                "symbol": "BTCUSDT", "origClientOrderId": client_id(1, ep, 2)})
            assert code == 200
            new = st.make(side=BUY, qty=0.001, price=px1, order_type=OrderType.LIMIT_MAKER)
            assert st.tx.send(new._replace(action=int(SignalAction.REPLACE), replace_back=1))
            got = events(reader, lambda g: has("REJECTED", 3)(g) and has("CANCEL_REJECTED", 2)(g))
            assert any(k == "REJECTED" and s == 3 and "-2022" in why
                       for k, s, why in got), got
            assert any(k == "CANCEL_REJECTED" and s == 2 and "-2011" in why
                       for k, s, why in got), got
            assert client_id(1, ep, 3) not in {o["clientOrderId"] for o in acct(sim)["orders"]}
        j = gw.journal()
        req = [r for r in j if r["k"] == "request" and r.get("replaces")]
        assert [(r["via"], r["method"]) for r in req] == [("ws_api", "order.cancelReplace")] * 2
        assert not [r for r in j if r["k"] == "request" and r.get("path") ==
                    "/api/v3/order/cancelReplace"]
        assert gw.stop() == 0
    finally:
        reader.close()
