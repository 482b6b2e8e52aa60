"""The simulator's OKX v5 trading side over real sockets to a real simulator process: signed REST
(signature, passphrase, timestamp checks), orders matched by its engine, clOrdId idempotency,
sCode/sMsg errors, cancel / amend / batch cancel, per-endpoint rate limits, the request faults,
and the private WebSocket (login, orders channel pushes, orders over the socket)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import requests
import websocket

from pipeline.config import SIM_TEST_API_KEY, SIM_TEST_PASSPHRASE, SIM_TEST_SECRET
from pipeline.sim.okx_private import login_args
from pipeline.sim.testing import start_sim
from pipeline.venues.okx import orders as ox

pytestmark = pytest.mark.timeout(60)
INST = "BTC-USDT"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = start_sim(tmp_path_factory.mktemp("okxtrade"), rate=200, paused=True,
                  symbols=["BTCUSDT", "ETHUSDT"])
    yield s
    s.stop()


class Okx:
    """A minimal signed OKX client (independent of the gateway's)."""

    def __init__(self, base: str, *, key=SIM_TEST_API_KEY, secret=SIM_TEST_SECRET,
                 passphrase=SIM_TEST_PASSPHRASE, skew_ms: int = 0, simulated: str | None = "1"):
        self.base, self.key, self.secret, self.passphrase = base, key, secret, passphrase
        self.skew_ms, self.simulated = skew_ms, simulated
        self.s = requests.Session()

    def call(self, method: str, path: str, body=None, *, sign_override: str | None = None):
        data = json.dumps(body) if body is not None else ""
        ts = ox.iso_ms(time.time_ns() // 1_000_000 + self.skew_ms)
        sig = base64.b64encode(hmac.new(self.secret.encode(), ox.prehash(ts, method, path, data),
                                        hashlib.sha256).digest()).decode()
        h = {"OK-ACCESS-KEY": self.key, "OK-ACCESS-SIGN": sign_override or sig,
             "OK-ACCESS-TIMESTAMP": ts, "OK-ACCESS-PASSPHRASE": self.passphrase,
             "Content-Type": "application/json"}
        if self.simulated is not None:
            h["x-simulated-trading"] = self.simulated
        r = self.s.request(method, self.base + path, data=data or None, headers=h, timeout=5)
        return r.status_code, r.json()


def best(sim, sym="BTCUSDT") -> tuple[float, float]:
    b = sim.state()["books"][sym]
    return float(b["bestBid"]), float(b["bestAsk"])


def order(cid: str, side="buy", ord_type="limit", sz="0.001", px: str | None = None, **kw):
    d = {"instId": INST, "tdMode": "cash", "clOrdId": cid, "side": side, "ordType": ord_type,
         "sz": sz, **kw}
    if px is not None:
        d["px"] = px
    return d


def test_signed_requests_are_checked_like_okx(sim):
    c = Okx(sim.rest_url)
    st, body = c.call("GET", ox.BALANCE_PATH)
    assert st == 200 and body["code"] == "0"
    usdt = next(d for d in body["data"][0]["details"] if d["ccy"] == "USDT")
    assert float(usdt["availBal"]) > 0
    assert c.call("GET", ox.BALANCE_PATH, sign_override="AAAA")[1]["code"] == ox.INVALID_SIGN
    assert Okx(sim.rest_url, passphrase="nope").call("GET", ox.BALANCE_PATH)[1]["code"] == \
        ox.PASSPHRASE_WRONG
    assert Okx(sim.rest_url, key="x" * 64).call("GET", ox.BALANCE_PATH)[1]["code"] == \
        ox.INVALID_KEY
    assert Okx(sim.rest_url, skew_ms=-31_000).call("GET", ox.BALANCE_PATH)[1]["code"] == \
        ox.TIMESTAMP_EXPIRED
    assert Okx(sim.rest_url, simulated="yes").call("GET", ox.BALANCE_PATH)[1]["code"] == \
        ox.PARAM_ERROR
    t = requests.get(sim.rest_url + ox.TIME_PATH, timeout=5).json()
    assert abs(int(t["data"][0]["ts"]) - time.time() * 1000) < 5000
    assert sim.state()["okx"]["trade"]["simulated_trading"] >= 1


def test_market_order_fills_and_clordid_is_used_once(sim):
    c = Okx(sim.rest_url)
    st, body = c.call("POST", ox.ORDER_PATH, order("1xax1", ord_type="market", tgtCcy="base_ccy"))
    assert st == 200 and body["code"] == "0", body
    d = body["data"][0]
    assert d["sCode"] == "0" and d["clOrdId"] == "1xax1" and d["ordId"].isdigit()
    st, q = c.call("GET", ox.ORDER_PATH + f"?instId={INST}&clOrdId=1xax1")
    o = q["data"][0]
    assert o["state"] == "filled" and float(o["accFillSz"]) == pytest.approx(0.001)
    assert o["ordId"] == d["ordId"] and o["side"] == "buy" and float(o["avgPx"]) > 0
    # the same clOrdId again: refused, nothing new executes
    st, again = c.call("POST", ox.ORDER_PATH, order("1xax1", ord_type="market", tgtCcy="base_ccy"))
    assert again["code"] == "1" and again["data"][0]["sCode"] == ox.DUPLICATE_CLORDID
    _, f = c.call("GET", ox.FILLS_PATH + f"?instType=SPOT&ordId={d['ordId']}")
    assert sum(float(x["fillSz"]) for x in f["data"]) == pytest.approx(0.001)
    assert c.call("GET", ox.ORDER_PATH + f"?instId={INST}&clOrdId=9x9x9")[1]["code"] == ox.NO_ORDER


def test_limit_order_amend_cancel_and_batch_cancel(sim):
    c = Okx(sim.rest_url)
    bid, _ = best(sim)
    px = f"{round(bid * 0.9, 2):.2f}"
    for cid in ("1xbx1", "1xbx2", "1xbx3"):
        assert c.call("POST", ox.ORDER_PATH, order(cid, px=px))[1]["code"] == "0"
    _, pend = c.call("GET", ox.PENDING_PATH + "?instType=SPOT")
    assert {"1xbx1", "1xbx2", "1xbx3"} <= {o["clOrdId"] for o in pend["data"]}
    new_px = f"{round(bid * 0.8, 2):.2f}"
    _, am = c.call("POST", ox.AMEND_PATH, {"instId": INST, "clOrdId": "1xbx1", "newSz": "0.002",
                                           "newPx": new_px})
    assert am["code"] == "0", am
    _, q = c.call("GET", ox.ORDER_PATH + f"?instId={INST}&clOrdId=1xbx1")
    assert q["data"][0]["sz"] == "0.002" and float(q["data"][0]["px"]) == float(new_px)
    _, cx = c.call("POST", ox.CANCEL_PATH, {"instId": INST, "clOrdId": "1xbx1"})
    assert cx["code"] == "0" and cx["data"][0]["sCode"] == "0"
    _, cx = c.call("POST", ox.CANCEL_PATH, {"instId": INST, "clOrdId": "1xbx1"})
    assert cx["data"][0]["sCode"] == ox.CANCEL_FAILED
    _, b = c.call("POST", ox.CANCEL_BATCH_PATH, [{"instId": INST, "clOrdId": "1xbx2"},
                                                  {"instId": INST, "clOrdId": "1xbx3"},
                                                  {"instId": INST, "clOrdId": "7x7x7"}])
    assert b["code"] == "2" and [d["sCode"] for d in b["data"]] == ["0", "0", ox.CANCEL_FAILED]
    _, q = c.call("GET", ox.ORDER_PATH + f"?instId={INST}&clOrdId=1xbx3")
    assert q["data"][0]["state"] == "canceled"
    # errors per order: an unknown instrument, no such ordType, too little balance
    _, e = c.call("POST", ox.ORDER_PATH, order("1xcx1", px=px, instId="NOPE-USDT"))
    assert e["data"][0]["sCode"] == ox.NO_INSTRUMENT
    _, e = c.call("POST", ox.ORDER_PATH, order("1xcx2", ord_type="stop", px=px))
    assert e["data"][0]["sCode"] == ox.PARAM_ERROR
    _, e = c.call("POST", ox.ORDER_PATH, order("1xcx3", sz="5", px=px))
    assert e["data"][0]["sCode"] == ox.INSUFFICIENT


def test_faults_reach_the_okx_side(sim):
    c = Okx(sim.rest_url)
    sim.fault("http_5xx", count=1)
    st, body = c.call("POST", ox.ORDER_PATH, order("1xdx1", ord_type="market", tgtCcy="base_ccy"))
    assert st == 503 and body["code"] == ox.SERVICE_UNAVAILABLE
    _, q = c.call("GET", ox.ORDER_PATH + f"?instId={INST}&clOrdId=1xdx1")
    assert q["data"][0]["state"] == "filled"          # it executed: the answer was lost
    sim.fault("force_429", count=1)
    st, body = c.call("GET", ox.BALANCE_PATH)
    assert st == 429 and body["code"] == ox.RATE_LIMITED
    sim.fault("force_1021", count=1)
    assert c.call("GET", ox.BALANCE_PATH)[1]["code"] == ox.TIMESTAMP_EXPIRED
    # the balance endpoint's own limit: 10 requests per 2 s
    codes = [c.call("GET", ox.BALANCE_PATH)[1]["code"] for _ in range(12)]
    assert ox.RATE_LIMITED in codes and codes[0] == "0"


def _ws(sim):
    ws = websocket.create_connection(sim.ws_url + ox.PRIVATE_WS_PATH, timeout=5)
    return ws


_SEEN: list[dict] = []       # frames read so far (pushes may come before the answer)


def _recv(ws, pred, timeout=5.0):
    for d in _SEEN:
        if pred(d):
            _SEEN.remove(d)
            return d
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = ws.recv()
        if m == "pong":
            continue
        d = json.loads(m)
        if pred(d):
            return d
        _SEEN.append(d)
    raise TimeoutError


def test_private_ws_login_orders_channel_and_ws_orders(sim):
    ws = _ws(sim)
    try:
        ws.send(json.dumps({"op": "subscribe", "args": [{"channel": "orders",
                                                          "instType": "SPOT"}]}))
        assert json.loads(ws.recv())["code"] == "60011"          # not logged in
        bad = login_args(SIM_TEST_API_KEY, "wrong-secret", SIM_TEST_PASSPHRASE)
        ws.send(json.dumps({"op": "login", "args": [bad]}))
        assert json.loads(ws.recv())["code"] == "60007"
        ws.send(json.dumps({"op": "login", "args": [login_args(
            SIM_TEST_API_KEY, SIM_TEST_SECRET, SIM_TEST_PASSPHRASE)]}))
        assert json.loads(ws.recv()) | {"connId": ""} == {"event": "login", "code": "0",
                                                          "msg": "", "connId": ""}
        ws.send(json.dumps({"op": "subscribe", "args": [{"channel": "orders",
                                                          "instType": "SPOT"}]}))
        assert json.loads(ws.recv())["event"] == "subscribe"
        ws.send("ping")
        assert ws.recv() == "pong"
        # a market order over the socket: its answer, then pushes up to the fill
        ws.send(json.dumps({"id": "r1", "op": "order", "args": [
            order("1xex1", ord_type="market", tgtCcy="base_ccy")]}))
        ans = _recv(ws, lambda d: d.get("id") == "r1")
        assert ans["code"] == "0" and ans["data"][0]["sCode"] == "0"
        fill = _recv(ws, lambda d: d.get("arg", {}).get("channel") == "orders"
                     and d["data"][0]["clOrdId"] == "1xex1" and d["data"][0]["tradeId"])
        f = fill["data"][0]
        assert float(f["fillSz"]) == pytest.approx(0.001) and float(f["fillPx"]) > 0
        assert f["state"] == "filled" and f["instId"] == INST
        # a resting order filled by a tape trade through it: pushed as partially/filled
        bid, _ = best(sim)
        px = f"{round(bid * 0.99, 2):.2f}"
        ws.send(json.dumps({"id": "r2", "op": "order", "args": [order("1xex2", px=px)]}))
        assert _recv(ws, lambda d: d.get("id") == "r2")["code"] == "0"
        live = _recv(ws, lambda d: d.get("data") and d["data"][0].get("clOrdId") == "1xex2")
        assert live["data"][0]["state"] == "live"
        sim.trade("BTCUSDT", f"{float(px) - 1:.2f}", "1", side="SELL")
        done = _recv(ws, lambda d: d.get("data") and d["data"][0].get("clOrdId") == "1xex2"
                     and d["data"][0]["state"] == "filled")
        assert done["data"][0]["fillPx"] == px.rstrip("0").rstrip(".")
        # the okx_drop fault cuts private connections too
        sim.fault("okx_drop")
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError,
                            OSError)):
            for _ in range(50):
                ws.recv()
    finally:
        ws.close()


def test_private_ws_batch_cancel_answers_per_order_and_refuses_more_than_20(sim):
    """batch-cancel-orders over the private WebSocket as OKX answers it: one result per order
    (sCode / sMsg), code "2" when some failed; more than 20 orders refuse the whole request."""
    ws = _ws(sim)
    try:
        ws.send(json.dumps({"op": "login", "args": [login_args(
            SIM_TEST_API_KEY, SIM_TEST_SECRET, SIM_TEST_PASSPHRASE)]}))
        assert json.loads(ws.recv())["code"] == "0"
        bid, _ = best(sim)
        for k in range(2):
            px = f"{round(bid * (0.97 - 0.001 * k), 1):.1f}"
            ws.send(json.dumps({"id": f"b{k}", "op": "order", "args": [order(f"7x7x{k}", px=px)]}))
            got = _recv(ws, lambda d, k=k: d.get("id") == f"b{k}")
            assert got["code"] == "0", got["data"]
        ws.send(json.dumps({"id": "c21", "op": "batch-cancel-orders", "args": [
            {"instId": INST, "clOrdId": f"7x7x{k}"} for k in range(21)]}))
        ans = _recv(ws, lambda d: d.get("id") == "c21")
        assert ans["code"] == ox.PARAM_ERROR and ans["data"] == []
        ws.send(json.dumps({"id": "c3", "op": "batch-cancel-orders", "args": [
            {"instId": INST, "clOrdId": c} for c in ("7x7x0", "7x7x1", "7x7xff")]}))
        ans = _recv(ws, lambda d: d.get("id") == "c3")
        assert ans["code"] == "2" and ans["op"] == "batch-cancel-orders"
        assert [(d["clOrdId"], d["sCode"]) for d in ans["data"]] == [
            ("7x7x0", "0"), ("7x7x1", "0"), ("7x7xff", ox.CANCEL_FAILED)]
        assert sim.state()["okx"]["private"]["ops"].get("batch-cancel-orders", 0) >= 2
    finally:
        ws.close()
