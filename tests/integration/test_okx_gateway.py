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
    """The kill switch: HALT, then every pending order cancelled by cancel-batch-orders, at most
    20 a request (OKX's limit): 21 orders are two requests."""
    gw = okx_gw(gw_factory, sim).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    with StrategySide(gw.channel, venue=OKX) as st:
        for k in range(21):                       # within the price collar
            st.limit(BUY, 0.001, round(bid * (0.97 - 0.0005 * k), 1))
        gw.wait(lambda s: len(s["open_orders"]) == 21, what="21 resting orders")
        assert len(acct(sim)["open_orders"]) == 21
        (gw.state_dir / "KILL").touch()
        s = gw.wait(lambda s: s["trading"] == "HALTED" and not s["open_orders"], what="halted")
    assert "kill switch" in s["halt_reason"] and s["orders"].get("CANCELED") == 21
    assert acct(sim)["open_orders"] == []
    j = gw.journal()
    batches = [r for r in j if r["k"] == "cancel_all" and "orders" in r]
    assert [(r["orders"], r["outcome"], r["via"]) for r in batches] == [(20, "OK", "rest"),
                                                                        (1, "OK", "rest")]
    req = next(r for r in j if r["k"] == "request")
    assert req["ts_ms"] > 0
    assert gw.stop() == 0


def test_shutdown_cancels_our_orders_in_one_batch_request(sim, gw_factory):
    gw = okx_gw(gw_factory, sim).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    with StrategySide(gw.channel, venue=OKX) as st:
        sigs = [st.limit(BUY, 0.001, round(bid * (0.97 - 0.001 * k), 1)) for k in range(3)]
        gw.wait(lambda s: len(s["open_orders"]) == 3, what="three resting orders")
    assert gw.stop() == 0
    assert acct(sim)["open_orders"] == []
    j = gw.journal()
    assert [(r["orders"], r["via"]) for r in j if r["k"] == "cancel_all"] == [(3, "rest")]
    assert sorted((r["cid"], r["outcome"], r["batch"]) for r in j if r["k"] == "cancel") == \
        sorted((cid_of(s), "OK", True) for s in sigs)
    assert all(_states(j, cid_of(s))[-1] == "CANCELED" for s in sigs)


def test_with_orders_over_the_private_websocket_batch_cancels_go_there(sim, gw_factory):
    """transport = "ws_api": the shutdown's and the kill switch's batch cancels are the private
    WebSocket's batch-cancel-orders op."""
    gw = okx_gw(gw_factory, sim, transport="ws_api").start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    with StrategySide(gw.channel, venue=OKX) as st:
        for k in range(2):
            st.limit(BUY, 0.001, round(bid * (0.97 - 0.001 * k), 1))
        gw.wait(lambda s: len(s["open_orders"]) == 2, what="two resting orders")
    assert gw.stop() == 0
    assert acct(sim)["open_orders"] == []
    assert _okx(sim)["private"]["ops"].get("batch-cancel-orders") == 1
    assert [(r["orders"], r["via"], r["outcome"]) for r in gw.journal()
            if r["k"] == "cancel_all"] == [(2, "ws", "OK")]
    gw = okx_gw(gw_factory, sim, transport="ws_api").start()
    with StrategySide(gw.channel, venue=OKX) as st:
        for k in range(3):
            st.limit(BUY, 0.001, round(bid * (0.97 - 0.001 * k), 1))
        gw.wait(lambda s: len(s["open_orders"]) == 3, what="three resting orders")
        (gw.state_dir / "KILL").touch()
        gw.wait(lambda s: s["trading"] == "HALTED" and not s["open_orders"], what="halted")
    assert acct(sim)["open_orders"] == []
    assert _okx(sim)["private"]["ops"].get("batch-cancel-orders") == 2
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


def _replace(st, back, **kw):
    """Send a REPLACE of the order `back` numbers before it; the signal as numbered."""
    from pipeline.records import SignalAction
    kw.setdefault("tif", 1)
    sig = st.make(side=BUY, **kw)
    seq = st.tx.seq + 1
    assert st.tx.send(sig._replace(action=int(SignalAction.REPLACE), replace_back=back))
    return sig._replace(epoch=st.tx.epoch, seq=seq)


def _amends(j):
    return [r for r in j if r["k"] == "amend"]


def test_strategy_replace_is_one_okx_amend_that_keeps_the_clordid(sim, gw_factory):
    """A strategy's REPLACE of a resting LIMIT order on OKX is one amend-order (new price, new
    size) of the venue's order, which keeps its clOrdId: the new order of the book takes it over
    (its fills, its cancel); a REPLACE of an order that is done is refused; an amend the venue
    refuses (a 429) refuses the new order, nothing changes at the venue; after a partial fill
    newSz = the filled part + the new size, and the new order's own fills count from zero."""
    from pipeline.records import OrderType, SignalAction
    gw = okx_gw(gw_factory, sim).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    with StrategySide(gw.channel, venue=OKX) as st:
        def replace(back, qty, px):
            return _replace(st, back, qty=qty, price=px, order_type=OrderType.LIMIT)

        first = st.limit(BUY, 0.001, round(bid * 0.97, 1))                       # seq 1
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="resting")
        px2 = round(bid * 0.96, 1)
        second = replace(1, 0.002, px2)                                          # seq 2
        gw.wait(lambda s: s["orders"].get("CANCELED") == 1 and len(s["open_orders"]) == 1
                and s["open_orders"][0]["cid"] == cid_of(second), what="amended")
        opens = acct(sim)["open_orders"]
        assert len(opens) == 1 and float(opens[0]["price"]) == pytest.approx(px2)
        assert float(opens[0]["origQty"]) == pytest.approx(0.002)
        assert opens[0]["clientOrderId"] == ox.wire_cid(cid_of(first))    # kept by the amend
        assert len(acct(sim)["orders"]) == 1                               # nothing new placed
        # replacing seq 1 again: it is done, so the new order (seq 3) is refused, nothing sent
        replace(2, 0.001, px2)
        gw.wait(lambda s: s["orders"].get("REJECTED") == 1, what="replace of a done order")
        # the venue refuses the amend (a 429 on it): the new order (seq 4) is refused, the
        # venue's order keeps its price and size, seq 2 keeps working
        sim.fault("force_429", count=1)
        refused = replace(2, 0.001, round(bid * 0.965, 1))
        gw.wait(lambda s: s["orders"].get("REJECTED") == 2, what="replace whose amend failed")
        opens = acct(sim)["open_orders"]
        assert len(opens) == 1 and float(opens[0]["price"]) == pytest.approx(px2)
        assert float(opens[0]["origQty"]) == pytest.approx(0.002)
        assert gw.status()["open_orders"][0]["cid"] == cid_of(second)
        gw.wait(lambda s: s["gate"]["blocked_for_s"] == 0, what="the host open again")
        # half of seq 2 fills, then seq 5 (0.001 at px3) replaces it: newSz 0.002 at the venue
        sim.trade("BTCUSDT", f"{px2 - 5:.2f}", "0.001", side="SELL")
        gw.wait(lambda s: s["fills"] == 1, what="seq 2 half filled")
        px3 = round(bid * 0.955, 1)
        fifth = replace(3, 0.001, px3)                                           # seq 5
        s = gw.wait(lambda s: len(s["open_orders"]) == 1
                    and s["open_orders"][0]["cid"] == cid_of(fifth), what="amended again")
        opens = acct(sim)["open_orders"]
        assert float(opens[0]["origQty"]) == pytest.approx(0.002)
        assert float(opens[0]["executedQty"]) == pytest.approx(0.001)
        assert float(opens[0]["price"]) == pytest.approx(px3)
        assert s["open_orders"][0]["filled"] == 0 and s["open_orders"][0]["qty"] == 0.001
        sim.trade("BTCUSDT", f"{px3 - 5:.2f}", "0.001", side="SELL")
        s = gw.wait(lambda s: s["fills"] == 2 and not s["open_orders"], what="seq 5 filled")
        assert s["positions"]["BTC-USDT"]["qty"] == pytest.approx(0.002)
        # a CANCEL of an order that took over a clOrdId by an amend names that clOrdId
        sixth = st.limit(BUY, 0.001, round(bid * 0.97, 1))                       # seq 6
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="seq 6 resting")
        seventh = replace(1, 0.001, px2)                                         # seq 7
        gw.wait(lambda s: s["open_orders"] and s["open_orders"][0]["cid"] == cid_of(seventh),
                what="seq 6 amended into seq 7")
        assert st.tx.send(st.make(seq=7)._replace(action=int(SignalAction.CANCEL)))
        gw.wait(lambda s: not s["open_orders"], what="cancelled")
    assert acct(sim)["open_orders"] == []
    j = gw.journal()
    ok = [r for r in _amends(j) if r["outcome"] == "OK"]
    assert [(r["cid"], r["replaces"], r["clOrdId"]) for r in ok] == [
        (cid_of(second), cid_of(first), ox.wire_cid(cid_of(first))),
        (cid_of(fifth), cid_of(second), ox.wire_cid(cid_of(first))),
        (cid_of(seventh), cid_of(sixth), ox.wire_cid(cid_of(sixth)))]
    assert [r["outcome"] for r in _amends(j) if r["cid"] == cid_of(refused)] == ["RATE_LIMITED"]
    assert [r["cid"] for r in j if r["k"] == "cancel"] == [cid_of(seventh)]
    assert "FILLED" in _states(j, cid_of(fifth))
    assert gw.stop() == 0


def test_a_replace_okx_cannot_amend_is_cancel_then_new_order(sim, gw_factory):
    """A REPLACE that changes what an amend cannot (here: LIMIT into a post_only order) is the
    cancel-order of the old (by clOrdId), then the new order with its own clOrdId."""
    from pipeline.records import OrderType, SignalAction
    gw = okx_gw(gw_factory, sim).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    with StrategySide(gw.channel, venue=OKX) as st:
        first = st.limit(BUY, 0.001, round(bid * 0.97, 1))                       # seq 1
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="resting")
        px2 = round(bid * 0.96, 1)
        new = _replace(st, 1, qty=0.001, price=px2, order_type=OrderType.LIMIT_MAKER,
                       tif=0)
        gw.wait(lambda s: s["orders"].get("CANCELED") == 1 and len(s["open_orders"]) == 1
                and s["open_orders"][0]["cid"] == cid_of(new), what="replaced")
        opens = acct(sim)["open_orders"]
        assert len(opens) == 1 and float(opens[0]["price"]) == pytest.approx(px2)
        assert opens[0]["clientOrderId"] == ox.wire_cid(cid_of(new))
        assert st.tx.send(st.make(seq=2)._replace(action=int(SignalAction.CANCEL)))
        gw.wait(lambda s: not s["open_orders"] and s["orders"].get("CANCELED") == 2,
                what="cancelled")
    assert acct(sim)["open_orders"] == []
    j = gw.journal()
    assert [r["cid"] for r in j if r["k"] == "cancel"] == [cid_of(first), cid_of(new)]
    assert _amends(j) == []
    assert gw.stop() == 0


def test_with_orders_over_the_private_websocket_cancels_and_amends_go_there_too(sim,
                                                                                 gw_factory):
    """transport = "ws_api": a strategy's CANCEL is the private WebSocket's cancel-order op and a
    REPLACE its amend-order op, each answered on the same connection; no REST cancel or amend."""
    from pipeline.records import OrderType, SignalAction
    gw = okx_gw(gw_factory, sim, transport="ws_api").start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    with StrategySide(gw.channel, venue=OKX) as st:
        first = st.limit(BUY, 0.001, round(bid * 0.97, 1))                       # seq 1
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="resting")
        px2 = round(bid * 0.96, 1)
        new = _replace(st, 1, qty=0.001, price=px2, order_type=OrderType.LIMIT)
        gw.wait(lambda s: s["orders"].get("CANCELED") == 1 and len(s["open_orders"]) == 1
                and s["open_orders"][0]["cid"] == cid_of(new), what="replaced")
        assert float(acct(sim)["open_orders"][0]["price"]) == pytest.approx(px2)
        assert st.tx.send(st.make(seq=2)._replace(action=int(SignalAction.CANCEL)))
        gw.wait(lambda s: not s["open_orders"] and s["orders"].get("CANCELED") == 2,
                what="cancelled")
    assert acct(sim)["open_orders"] == []
    ops = _okx(sim)["private"]["ops"]
    assert ops.get("cancel-order") == 1 and ops.get("amend-order") == 1 \
        and ops.get("order") == 1, ops
    j = gw.journal()
    assert [r.get("via") for r in j if r["k"] in ("cancel", "amend")] == ["ws", "ws"]
    assert [r["cid"] for r in j if r["k"] == "cancel"] == [cid_of(new)]
    assert gw.stop() == 0


def test_an_amend_whose_fate_is_unknown_cancels_the_venue_order(sim, gw_factory):
    """The venue holds the amend-order past our read timeout (it executes late): its fate is
    unknown, so the venue's order is cancelled by its clOrdId and the new order is refused; no
    order is left working at the venue and none is placed."""
    from pipeline.records import OrderType
    gw = okx_gw(gw_factory, sim, user_stream=False, request_timeout_s=0.5).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    with StrategySide(gw.channel, venue=OKX) as st:
        first = st.limit(BUY, 0.001, round(bid * 0.97, 1))
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="resting")
        sim.fault("delay", ms=1500, count=1)
        new = _replace(st, 1, qty=0.001, price=round(bid * 0.96, 1), order_type=OrderType.LIMIT)
        s = gw.wait(lambda s: not s["open_orders"] and s["orders"].get("REJECTED") == 1
                    and s["orders"].get("CANCELED") == 1, timeout=15, what="cancelled")
    assert s["counts"].get("amend_unknown") == 1
    assert acct(sim)["open_orders"] == [] and len(acct(sim)["orders"]) == 1
    j = gw.journal()
    assert [r["outcome"] for r in _amends(j)] == ["UNKNOWN"]
    assert [r["cid"] for r in j if r["k"] == "cancel"] == [cid_of(first)]
    assert _states(j, cid_of(new))[-1] == "REJECTED"
    assert gw.stop() == 0


@pytest.mark.parametrize("journal_format", ["jsonl", "binary"])
def test_restart_keeps_an_amended_order_on_the_clordid_it_took_over(sim, gw_factory, tmp_path,
                                                                    journal_format):
    """An order that took over another's clOrdId by an amend is still asked for by it after a
    restart (its ORDER record and the journal's amend record): half of it filled while the
    gateway was down, the reconciliation's query finds it PARTIALLY_FILLED (not "does not
    exist" → UNKNOWN)."""
    from pipeline.records import OrderType
    state = tmp_path / "okx-state"
    gw = okx_gw(gw_factory, sim, state_dir=state, user_stream=False,
                journal_format=journal_format).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    px = round(bid * 0.98, 1)
    with StrategySide(gw.channel, venue=OKX) as st:
        st.limit(BUY, 0.001, round(bid * 0.97, 1))
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="resting")
        new = _replace(st, 1, qty=0.002, price=px, order_type=OrderType.LIMIT)
        gw.wait(lambda s: s["open_orders"] and s["open_orders"][0]["cid"] == cid_of(new),
                what="amended")
    gw.kill()                                     # no shutdown cancel
    sim.trade("BTCUSDT", f"{px - 5:.2f}", "0.001", side="SELL")    # half fills while down
    gw2 = okx_gw(gw_factory, sim, state_dir=state, user_stream=False,
                 journal_format=journal_format).start()
    s = gw2.wait(lambda s: s["fills"] >= 1, what="reconciled fill")
    assert s["reconcile"]["still_unknown"] == 0 and not s["foreign_orders"]
    assert s["reconcile"]["unknown_exchange_orders"] == [] and s["reconcile"]["resolved"] == 1
    assert [(o["cid"], o["state"], o["filled"]) for o in s["open_orders"]] == [
        (cid_of(new), "PARTIALLY_FILLED", 0.001)]
    assert s["positions"]["BTC-USDT"]["qty"] == pytest.approx(0.001)
    assert gw2.stop() == 0
    assert acct(sim)["open_orders"] == []        # the shutdown cancel named the clOrdId


def test_an_amend_the_venue_fails_after_accepting_it_cancels_the_order(sim, gw_factory):
    """OKX answers an amend-order sCode 0 and fails it later (orders push amendResult "-1": the
    simulator's okx_amend_fail): the venue's order kept its old price and size, not the new
    order's the risk engine holds, so the gateway cancels it."""
    from pipeline.records import OrderType
    gw = okx_gw(gw_factory, sim).start()
    bid = float(sim.state()["books"]["BTCUSDT"]["bestBid"])
    px1 = round(bid * 0.97, 1)
    with StrategySide(gw.channel, venue=OKX) as st:
        st.limit(BUY, 0.001, px1)
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="resting")
        sim.fault("okx_amend_fail", count=1)
        new = _replace(st, 1, qty=0.002, price=round(bid * 0.96, 1), order_type=OrderType.LIMIT)
        s = gw.wait(lambda s: not s["open_orders"] and s["orders"].get("CANCELED") == 2,
                    what="the failed amend's order cancelled")
    assert s["counts"].get("amend_failed_late") == 1
    assert acct(sim)["open_orders"] == []
    o = acct(sim)["orders"][0]
    assert float(o["price"]) == pytest.approx(px1) and float(o["origQty"]) == pytest.approx(0.001)
    j = gw.journal()
    assert [r["outcome"] for r in _amends(j)] == ["OK"]
    assert [(r["cid"], r["why"]) for r in j if r["k"] == "cancel"] == [
        (cid_of(new), "amend failed at the venue")]
    assert _states(j, cid_of(new)) == ["ACK", "CANCELED"]
    assert gw.stop() == 0
