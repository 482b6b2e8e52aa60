"""The OKX gateway as its own process against the simulator's OKX v5 side over real sockets: a
signal becomes a signed OKX order, its fill comes on the `orders` channel, a resting order is
cancelled on shutdown, an answer lost to a 5xx is UNKNOWN and resolved by clOrdId (never resent),
50102 gets one retry after a clock resync, and a restart reconciles from the journal."""
from __future__ import annotations

import pytest

from pipeline.config import SIM_TEST_PASSPHRASE
from pipeline.records import Venue
from pipeline.venues.okx import orders as ox
from tests.integration.gateway_harness import (BUY, SELL, StrategySide, acct,  # noqa: E402,F401
                                               cid_of, gw_factory, sim)

pytestmark = pytest.mark.timeout(90)
__all__ = ["sim", "gw_factory"]
OKX = int(Venue.OKX)


def okx_gw(gw_factory, sim, **kw):
    env = {"PIPELINE_API_PASSPHRASE": SIM_TEST_PASSPHRASE, **kw.pop("env", {})}
    # these tests read the request's OKX body from the journal: the JSON-lines journal keeps it
    # (the binary ORDER record keeps the request's fields, not its body)
    kw.setdefault("journal_format", "jsonl")
    return gw_factory(venue="OKX", symbols=["BTC-USDT"], ws_api_url=sim.ws_url + ox.PRIVATE_WS_PATH,
                      env=env, okx_demo=True, **kw)


def _okx(sim) -> dict:
    return sim.state()["okx"]


def _states(j, cid):
    return [r["to"] for r in j if r["k"] == "state" and r.get("cid") == cid]


def test_signal_becomes_okx_order_filled_via_the_orders_channel(sim, gw_factory):
    gw = okx_gw(gw_factory, sim).start()
    assert gw.status()["stream"]["subscribed"]
    with StrategySide(gw.channel, venue=OKX) as st:
        sig = st.send(side=BUY, qty=0.002)
        s = gw.wait(lambda s: s["fills"] >= 1 and not s["open_orders"], what="one fill")
    cid = cid_of(sig)
    assert s["positions"]["BTC-USDT"]["qty"] == pytest.approx(0.002)
    a = acct(sim)
    assert sum(float(f["qty"]) for f in a["fills"]) == pytest.approx(0.002)
    j = gw.journal()
    req = next(r for r in j if r["k"] == "request" and r["cid"] == cid)
    assert req["path"] == ox.ORDER_PATH and f'"clOrdId":"{ox.wire_cid(cid)}"' in req["body"]
    fill = next(r for r in j if r["k"] == "fill" and r["cid"] == cid)
    assert fill["source"] in ("stream", "query")
    assert "FILLED" in _states(j, cid)
    assert _okx(sim)["trade"]["simulated_trading"] >= 1      # x-simulated-trading: 1 sent
    assert _okx(sim)["private"]["logins"] >= 1
    assert SIM_TEST_PASSPHRASE not in gw.journal_text() and SIM_TEST_PASSPHRASE not in gw.stderr()
    assert gw.stop() == 0


def test_resting_order_is_cancelled_on_shutdown(sim, gw_factory):
    gw = okx_gw(gw_factory, sim).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    with StrategySide(gw.channel, venue=OKX) as st:
        sig = st.limit(BUY, 0.001, round(bid * 0.97, 1))
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="resting order")
    cid = cid_of(sig)
    assert [o["clientOrderId"] for o in acct(sim)["open_orders"]] == [ox.wire_cid(cid)]
    assert gw.stop() == 0
    assert acct(sim)["open_orders"] == []
    assert _states(gw.journal(), cid)[-1] == "CANCELED"


def test_lost_answer_is_unknown_then_resolved_by_clordid_never_resent(sim, gw_factory):
    # no orders channel: the answer can only come from GET /api/v5/trade/order?clOrdId=
    gw = okx_gw(gw_factory, sim, user_stream=False).start()
    sim.fault("http_5xx", count=1, late_ms=50)
    with StrategySide(gw.channel, venue=OKX) as st:
        sig = st.send(side=BUY, qty=0.001)
        gw.wait(lambda s: s["fills"] >= 1 and not s["open_orders"], what="resolved")
    cid = cid_of(sig)
    j = gw.journal()
    states = _states(j, cid)
    assert states[0] == "UNKNOWN" and "FILLED" in states
    assert len([r for r in j if r["k"] == "request" and r["cid"] == cid]) == 1   # never resent
    assert any(r["k"] == "query" and r.get("cid") == cid and r["outcome"] == "OK" for r in j)
    orders = [o for o in acct(sim)["fills"]]
    assert sum(float(f["qty"]) for f in orders) == pytest.approx(0.001)        # one order only
    assert gw.stop() == 0


def test_timestamp_expired_gets_one_retry_with_the_same_clordid(sim, gw_factory):
    gw = okx_gw(gw_factory, sim, user_stream=False).start()
    sim.fault("force_1021", count=1)            # the OKX side answers 50102
    with StrategySide(gw.channel, venue=OKX) as st:
        sig = st.send(side=SELL, qty=0.001)
        gw.wait(lambda s: s["fills"] >= 1 and not s["open_orders"], what="filled after retry")
    cid = cid_of(sig)
    j = gw.journal()
    reqs = [r for r in j if r["k"] == "request" and r["cid"] == cid]
    assert [r["attempt"] for r in reqs] == [1, 2]
    assert all(f'"clOrdId":"{ox.wire_cid(cid)}"' in r["body"] for r in reqs)
    assert any(r["k"] == "clock" and r.get("why") == "50102" for r in j)
    assert gw.stop() == 0


def test_orders_over_the_private_websocket(sim, gw_factory):
    gw = okx_gw(gw_factory, sim, transport="ws_api").start()
    with StrategySide(gw.channel, venue=OKX) as st:
        sig = st.send(side=BUY, qty=0.001)
        gw.wait(lambda s: s["fills"] >= 1 and not s["open_orders"], what="ws fill")
    j = gw.journal()
    req = next(r for r in j if r["k"] == "request" and r["cid"] == cid_of(sig))
    assert req["via"] == "ws"
    assert gw.stop() == 0


def test_restart_reconciles_a_filled_order_from_the_journal(sim, gw_factory, tmp_path):
    state = tmp_path / "okx-state"
    gw = okx_gw(gw_factory, sim, state_dir=state, user_stream=False).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    px = round(bid * 0.98, 1)
    with StrategySide(gw.channel, venue=OKX) as st:
        sig = st.limit(BUY, 0.001, px)
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="resting")
    gw.kill()                                     # no shutdown cancel
    sim.trade("BTCUSDT", f"{px - 5:.2f}", "1", side="SELL")    # it fills while we are down
    gw2 = okx_gw(gw_factory, sim, state_dir=state, user_stream=False).start()
    s = gw2.wait(lambda s: s["fills"] >= 1 and not s["open_orders"], what="reconciled fill")
    assert s["positions"]["BTC-USDT"]["qty"] == pytest.approx(0.001)
    assert _states(gw2.journal(), cid_of(sig))[-1] == "FILLED"
    assert gw2.stop() == 0


def test_read_timeout_is_unknown_and_the_late_order_is_found(sim, gw_factory):
    # the venue holds the request past our read timeout, then executes it: UNKNOWN, queries that
    # may first hear 51603, then FILLED; one request only
    gw = okx_gw(gw_factory, sim, user_stream=False, request_timeout_s=0.5).start()
    sim.fault("delay", ms=1500, count=1)
    with StrategySide(gw.channel, venue=OKX) as st:
        sig = st.send(side=BUY, qty=0.001)
        gw.wait(lambda s: s["fills"] >= 1 and not s["open_orders"], timeout=15, what="found")
    cid = cid_of(sig)
    j = gw.journal()
    assert _states(j, cid)[0] == "UNKNOWN" and _states(j, cid)[-1] == "FILLED"
    assert len([r for r in j if r["k"] == "request" and r["cid"] == cid]) == 1
    assert gw.stop() == 0


def test_kill_switch_halts_and_batch_cancels_every_resting_order(sim, gw_factory):
    gw = okx_gw(gw_factory, sim).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    with StrategySide(gw.channel, venue=OKX) as st:
        for k in range(3):
            st.limit(BUY, 0.001, round(bid * (0.97 - 0.001 * k), 1))
        gw.wait(lambda s: len(s["open_orders"]) == 3, what="three resting orders")
        assert len(acct(sim)["open_orders"]) == 3
        (gw.state_dir / "KILL").touch()
        s = gw.wait(lambda s: s["trading"] == "HALTED" and not s["open_orders"], what="halted")
    assert "kill switch" in s["halt_reason"] and s["orders"].get("CANCELED") == 3
    assert acct(sim)["open_orders"] == []
    j = gw.journal()
    assert any(r["k"] == "cancel_all" and r.get("orders") == 3 and r["outcome"] == "OK" for r in j)
    req = next(r for r in j if r["k"] == "request")
    assert req["ts_ms"] > 0
    assert gw.stop() == 0


def test_private_websocket_cut_reconnects_and_fills_still_arrive(sim, gw_factory):
    gw = okx_gw(gw_factory, sim).start()
    gw.wait(lambda s: s["stream"]["subscribed"], what="subscribed")
    sim.fault("okx_drop")                         # every OKX connection cut (TCP abort)
    gw.wait(lambda s: s["stream"]["connects"] >= 2 and s["stream"]["subscribed"],
            what="logged in and subscribed again")
    with StrategySide(gw.channel, venue=OKX) as st:
        st.send(side=BUY, qty=0.001)
        s = gw.wait(lambda s: s["fills"] >= 1 and not s["open_orders"], what="fill after the cut")
    assert s["stream"]["received"] >= 1 and s["stream"]["errors"] >= 1
    assert gw.stop() == 0
    assert "USER_STREAM_RECONNECTED" in gw.stderr()        # the log writer flushed at exit


def test_partial_fills_seen_only_by_queries_are_all_applied(sim, gw_factory):
    # no orders channel: the audit's query carries only the last fill; the rest come from fills
    gw = okx_gw(gw_factory, sim, user_stream=False, open_order_audit_s=0.3).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    px = round(bid * 0.98, 1)
    with StrategySide(gw.channel, venue=OKX) as st:
        sig = st.limit(BUY, 0.003, px)
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="resting")
        for _ in range(3):
            sim.trade("BTCUSDT", f"{px - 5:.2f}", "0.001", side="SELL")
        s = gw.wait(lambda s: s["fills"] == 3 and not s["open_orders"], what="three fills")
    assert s["positions"]["BTC-USDT"]["qty"] == pytest.approx(0.003)
    fills = [r for r in gw.journal() if r["k"] == "fill" and r["cid"] == cid_of(sig)]
    assert len({f["trade_id"] for f in fills}) == 3
    assert gw.stop() == 0


def test_binary_journal_records_okx_orders(sim, gw_factory):
    gw = okx_gw(gw_factory, sim, journal_format="binary").start()
    with StrategySide(gw.channel, venue=OKX) as st:
        sig = st.send(side=BUY, qty=0.001)
        gw.wait(lambda s: s["fills"] >= 1 and not s["open_orders"], what="filled")
    j = gw.journal()
    assert any(r.get("cid") == cid_of(sig) and r["k"] == "order" for r in j)
    assert "FILLED" in _states(j, cid_of(sig))
    assert gw.stop() == 0


def test_strategy_cancel_and_replace_go_out_as_okx_cancel_then_new_order(sim, gw_factory):
    """A strategy's REPLACE on OKX: cancel-order of the old (by clOrdId), then the new order with
    its own clOrdId; a REPLACE of an order that is done, or whose cancel the venue refuses, is
    refused, nothing sent; a CANCEL is cancel-order by clOrdId."""
    from pipeline.records import OrderType, SignalAction
    gw = okx_gw(gw_factory, sim).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    with StrategySide(gw.channel, venue=OKX) as st:
        first = st.limit(BUY, 0.001, round(bid * 0.97, 1))                       # seq 1
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="resting")
        px2 = round(bid * 0.96, 1)
        new = st.make(side=BUY, qty=0.001, price=px2, order_type=OrderType.LIMIT, tif=1)
        assert st.tx.send(new._replace(action=int(SignalAction.REPLACE), replace_back=1))
        gw.wait(lambda s: s["orders"].get("CANCELED") == 1 and len(s["open_orders"]) == 1
                and s["open_orders"][0]["cid"] != cid_of(first), what="replaced")
        opens = acct(sim)["open_orders"]
        assert len(opens) == 1 and float(opens[0]["price"]) == pytest.approx(px2)
        second = gw.status()["open_orders"][0]["cid"]
        # replacing seq 1 again: it is done, so the new order (seq 3) is refused, nothing sent
        again = st.make(side=BUY, qty=0.001, price=px2, order_type=OrderType.LIMIT, tif=1)
        assert st.tx.send(again._replace(action=int(SignalAction.REPLACE), replace_back=2))
        gw.wait(lambda s: s["orders"].get("REJECTED") == 1, what="replace of a done order")
        assert len(acct(sim)["open_orders"]) == 1                   # seq 2 still works
        # the venue refuses the cancel of a replace (a 429 on it): the new order (seq 4) is
        # refused, nothing sent, seq 2 keeps working
        sim.fault("force_429", count=1)
        again = st.make(side=BUY, qty=0.001, price=round(bid * 0.965, 1),
                        order_type=OrderType.LIMIT, tif=1)
        assert st.tx.send(again._replace(action=int(SignalAction.REPLACE), replace_back=2))
        gw.wait(lambda s: s["orders"].get("REJECTED") == 2, what="replace whose cancel failed")
        opens = acct(sim)["open_orders"]
        assert len(opens) == 1 and float(opens[0]["price"]) == pytest.approx(px2)
        assert all(float(o["price"]) != pytest.approx(again.price) for o in acct(sim)["orders"])
        gw.wait(lambda s: s["gate"]["blocked_for_s"] == 0, what="the host open again")
        assert st.tx.send(st.make(seq=2)._replace(action=int(SignalAction.CANCEL)))
        gw.wait(lambda s: not s["open_orders"] and s["orders"].get("CANCELED") == 2,
                what="cancelled")
    assert acct(sim)["open_orders"] == []
    j = gw.journal()
    assert [r["cid"] for r in j if r["k"] == "cancel"] == [cid_of(first), second, second]
    assert gw.stop() == 0
