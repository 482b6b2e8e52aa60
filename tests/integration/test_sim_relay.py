"""Paper trading on live data ([sim] tape = "relay", pipeline/sim/relay.py), with real processes
and no internet: an upstream simulator (synthetic tape) stands in for the venue, a relaying
simulator follows its public streams. Its books are the upstream's, its frames are the upstream's
byte for byte, orders placed on it fill at the upstream's prices, and it reconnects when the
upstream drops, goes silent or dies and comes back."""
from __future__ import annotations

import socket
import time

import pytest
import requests
import websocket

from pipeline.sim.testing import SIM_TEST_API_KEY, signed_query, start_sim
from sim_fixtures import sim_factory  # noqa: F401

pytestmark = pytest.mark.timeout(90)
SYMS = ["BTCUSDT", "ETHUSDT"]


def wait_until(fn, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def relay_of(factory, up, **kw):
    return factory(symbols=SYMS, tape="relay", upstream_ws_url=up.ws_url,
                   upstream_rest_url=up.rest_url, upstream_backoff_max_s=1.0, **kw)


def all_synced(relay) -> bool:
    r = relay.state()["relay"]
    return r["connected"] and all(r["synced"].values())


def quiesce(up, relay) -> None:
    """Pause the upstream's tape and wait until the relay has applied its last depth diff."""
    up.tape(action="pause")
    time.sleep(0.3)                                   # the last 100 ms diffs are flushed

    def same() -> bool:
        a, b = up.state()["books"], relay.state()["books"]
        return all(a[s]["lastUpdateId"] == b[s]["lastUpdateId"] for s in SYMS)
    wait_until(same, what="the relay's books at the upstream's update ids")


def stream(sim, names: str) -> websocket.WebSocket:
    ws = websocket.create_connection(f"{sim.ws_url}/stream?streams={names}", timeout=5)
    return ws


def drain(ws: websocket.WebSocket) -> None:
    """Read until the stream is quiet for 0.3 s (the upstream's tape must be paused)."""
    ws.settimeout(0.3)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            ws.recv()
    except websocket.WebSocketTimeoutException:
        pass
    ws.settimeout(5)


def order(sim, **params) -> dict:
    r = requests.post(f"{sim.rest_url}/api/v3/order?{signed_query(params)}",
                      headers={"X-MBX-APIKEY": SIM_TEST_API_KEY}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def test_relay_books_listing_and_frames_are_the_upstreams(sim_factory):  # noqa: F811
    up = sim_factory(symbols=SYMS, paused=False, rate=400.0)
    relay = relay_of(sim_factory, up)
    wait_until(lambda: all_synced(relay), what="the relay's books synced")
    # the listing is the upstream's (the gateway's filters are the venue's)
    info = [requests.get(f"{s.rest_url}/api/v3/exchangeInfo?symbol=BTCUSDT", timeout=5).json()
            for s in (up, relay)]
    assert info[0]["symbols"][0]["filters"] == info[1]["symbols"][0]["filters"]
    quiesce(up, relay)
    for sym in SYMS:                   # the relay's book is the upstream's, level for level
        a, b = (requests.get(f"{s.rest_url}/api/v3/depth?symbol={sym}&limit=1000",
                             timeout=5).json() for s in (up, relay))
        assert a == b and len(a["bids"]) > 10 and len(a["asks"]) > 10
    # an upstream trade reaches the relay's clients as the upstream's very bytes
    names = "btcusdt@trade/btcusdt@bookTicker"
    mine, theirs = stream(relay, names), stream(up, names)
    try:
        drain(mine)
        drain(theirs)
        up.trade("BTCUSDT", "61000.01", "0.25", "SELL")
        got_up, got_relay = theirs.recv(), mine.recv()
        assert got_relay == got_up and '"p":"61000.01000000"' in got_up
    finally:
        mine.close()
        theirs.close()
    counters = relay.state()["relay"]["counters"]
    assert counters["book_synced"] == 2 and not any(k.startswith("err_") for k in counters)


def test_orders_on_the_relay_fill_at_upstream_prices(sim_factory):  # noqa: F811
    up = sim_factory(symbols=SYMS, paused=False, rate=400.0)
    relay = relay_of(sim_factory, up)
    wait_until(lambda: all_synced(relay), what="the relay's books synced")
    quiesce(up, relay)
    book = requests.get(f"{up.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=20", timeout=5).json()
    # a market buy walks the upstream's asks: the fills are its levels
    want, left = [], 0.0
    qty = round(float(book["asks"][0][1]) + float(book["asks"][1][1]) / 2, 5)
    left = qty
    for px, q in book["asks"]:
        take = min(float(q), left)
        want.append((px, f"{take:.8f}"))
        left = round(left - take, 8)
        if left <= 0:
            break
    res = order(relay, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=f"{qty:.5f}")
    assert res["status"] == "FILLED"
    assert [(f["price"], f["qty"]) for f in res["fills"]] == want and len(want) == 2
    # a resting buy below the market fills when the upstream trades through it, at its price
    tick = 0.01
    limit = f"{float(book['bids'][0][0]) - 5 * tick:.2f}"
    res = order(relay, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                quantity="0.001", price=limit)
    assert res["status"] == "NEW"
    oid = res["orderId"]
    up.trade("BTCUSDT", f"{float(limit) - tick:.2f}", "0.5", "SELL")

    def filled():
        acct = relay.state()["accounts"][SIM_TEST_API_KEY]
        o = next(o for o in acct["orders"] if o["orderId"] == oid)
        return o if o["status"] == "FILLED" else None
    o = wait_until(filled, what="the resting order filled by the upstream's trade")
    assert float(o["price"]) == float(limit)
    fills = [f for f in relay.state()["accounts"][SIM_TEST_API_KEY]["fills"] if f["orderId"] == oid]
    assert [float(f["price"]) for f in fills] == [float(limit)]


def test_upstream_drop_and_silence_reconnect_and_resync(sim_factory):  # noqa: F811
    up = sim_factory(symbols=SYMS, paused=False, rate=400.0)
    relay = relay_of(sim_factory, up, upstream_silence_s=1.0)
    wait_until(lambda: all_synced(relay), what="the relay's books synced")
    mine = stream(relay, "btcusdt@trade")
    try:
        up.fault("drop", target="md")                   # the upstream cuts the relay's connection
        wait_until(lambda: relay.state()["relay"]["connections"] >= 2 and all_synced(relay),
                   what="a second upstream connection, books synced again")
        up.fault("silence", seconds=30)                 # alive (pongs) but no frames
        wait_until(lambda: relay.state()["relay"]["counters"].get("silences", 0) >= 1
                   and relay.state()["relay"]["connections"] >= 3 and all_synced(relay),
                   what="the silent connection replaced")
        # the relay's own client kept its connection and sees upstream trades again
        up.tape(action="pause")
        time.sleep(0.3)
        drain(mine)
        up.trade("BTCUSDT", "60999.99", "0.1", "BUY")
        assert '"p":"60999.99000000"' in mine.recv()
    finally:
        mine.close()
    assert "reconnecting" in relay.log_text()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_upstream_stops_the_books_until_it_is_back(sim_factory, tmp_path):  # noqa: F811
    port = _free_port()
    up = start_sim(tmp_path / "up1", symbols=SYMS, paused=False, rate=400.0, port=port)
    try:
        relay = relay_of(sim_factory, up)
        wait_until(lambda: all_synced(relay), what="the relay's books synced")
        mine = stream(relay, "btcusdt@trade/btcusdt@depth@100ms")
        up.stop()
        wait_until(lambda: not relay.state()["relay"]["connected"], what="the relay disconnected")
        st = relay.state()
        assert not any(st["relay"]["synced"].values())                 # the books stop ...
        assert not any(b["synced"] for b in st["books"].values())
        drain(mine)
        mine.settimeout(1.5)
        with pytest.raises(websocket.WebSocketTimeoutException):      # ... and nothing is sent
            mine.recv()
        wait_until(lambda: relay.state()["relay"]["counters"].get("connect_failures", 0) >= 1,
                   what="a failed reconnect")
    finally:
        up.stop()
    up2 = start_sim(tmp_path / "up2", symbols=SYMS, paused=False, rate=400.0, port=port, seed=3)
    try:
        wait_until(lambda: all_synced(relay), what="the books synced on the new upstream")
        quiesce(up2, relay)
        a, b = (requests.get(f"{s.rest_url}/api/v3/depth?symbol=ETHUSDT&limit=1000",
                             timeout=5).json() for s in (up2, relay))
        assert a == b
        mine.settimeout(5)
        drain(mine)
        up2.trade("BTCUSDT", "61111.11", "0.1", "BUY")
        assert '"p":"61111.11000000"' in mine.recv()
        mine.close()
    finally:
        up2.stop()


def test_a_symbol_the_upstream_does_not_list_stops_the_relay_with_its_name(sim_factory,  # noqa: F811
                                                                          tmp_path):
    up = sim_factory(symbols=["BTCUSDT"])
    with pytest.raises(RuntimeError) as exc:
        start_sim(tmp_path, symbols=["BTCUSDT", "ETHUSDT"], tape="relay",
                  upstream_ws_url=up.ws_url, upstream_rest_url=up.rest_url)
    assert "exited with 2" in str(exc.value)
    assert "ETHUSDT: not listed by the upstream" in str(exc.value)
