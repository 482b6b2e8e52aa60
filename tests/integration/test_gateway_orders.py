"""The gateway as its own process against the simulator over real sockets: the order path."""
from __future__ import annotations

import pytest

pytest.importorskip("pipeline.bus.signals", reason="signal codec (issue 6) not merged yet")
pytest.importorskip("pipeline.gateway.risk", reason="risk kernel (issue 7) not merged yet")
pytest.importorskip("pipeline.gateway.signing", reason="signing kernel (issue 7) not merged yet")
pytest.importorskip("pipeline.sim.testing", reason="simulator (issue 3) not merged yet")

from tests.integration.gateway_harness import (BUY, SELL, StrategySide, acct,  # noqa: E402
                                               cid_of, gw_factory, sim)

pytestmark = pytest.mark.timeout(60)
__all__ = ["sim", "gw_factory"]   # fixtures


@pytest.mark.parametrize("journal_format", ["binary", "jsonl"])
def test_signal_becomes_order_fill_position_and_journal(sim, gw_factory, journal_format):
    gw = gw_factory(journal_format=journal_format).start()
    with StrategySide(gw.channel) as st:
        sig = st.send(side=BUY, qty=0.002)
        s = gw.wait(lambda s: s["fills"] >= 1 and not s["open_orders"], what="one fill")
    cid = cid_of(sig)
    # the gate learnt the venue's order count from its answer (Binance's X-MBX-ORDER-COUNT-10S,
    # read by the venue adapter's reader)
    assert s["gate"]["used"].get("orders_10s", 0) >= 1, s["gate"]
    pos = s["positions"]["BTCUSDT"]
    assert pos["qty"] == pytest.approx(0.002)
    assert pos["avg_price"] > 0
    # the simulator agrees: one order with our id, filled, and fills for 0.002 BTC
    a = acct(sim)
    fills = a["fills"]
    assert sum(float(f["qty"]) for f in fills) == pytest.approx(0.002)
    assert float(a["balances"]["BTC"]["free"]) == pytest.approx(1.002)
    # the journal shows each step, in order
    j = gw.journal()
    kinds = [(r["k"], r.get("to") or r.get("decision") or "") for r in j
             if r.get("cid") == cid or (r["k"] == "signal" and r.get("seq") == sig.seq)]
    steps = [k for k, _ in kinds]
    for want in ("signal", "order", "request", "response", "fill", "state"):
        assert want in steps, (want, kinds)
    # the reply (the order wire) and the user stream's fill race, as on the venue: either first
    assert steps.index("signal") < steps.index("order") < steps.index("request") < \
        min(steps.index("response"), steps.index("fill"))
    assert ("state", "FILLED") in kinds
    resp = next(r for r in j if r["k"] == "response" and r["cid"] == cid)
    st = resp["stamps"]                       # the per-order latency stamps, in order
    assert 0 < st["recv"] <= st["risk"] <= st["signed"] <= st["written"] < st["response"]
    req = next(r for r in j if r["k"] == "request" and r["cid"] == cid)
    if journal_format == "jsonl":               # the body, its signature stripped
        assert "signature" not in req["body"] and f"newClientOrderId={cid}" in req["body"]
    else:                                       # the ORDER record: the request's fields
        assert (req["via"], req["method"], req["attempt"]) == ("rest", "POST", 1)
        assert req["ts_ms"] > 1_600_000_000_000 and "body" not in req
    assert gw.stop() == 0


def _requests_for(j: list[dict], cid: str) -> list[dict]:
    return [r for r in j if r["k"] == "request" and r.get("cid") == cid]


def _states(j: list[dict], cid: str) -> list[str]:
    return [r["to"] for r in j if r["k"] == "state" and r.get("cid") == cid]


def _order_ids(sim) -> set:
    return {f["orderId"] for f in acct(sim)["fills"]}


@pytest.mark.parametrize("transport", ["rest", "ws_api"])
def test_1021_resyncs_and_retries_once_with_the_same_client_id(sim, gw_factory, transport):
    gw = gw_factory(reference_poll_ms=60_000, transport=transport).start()
    with StrategySide(gw.channel) as st:
        sim.fault("force_1021", count=1)
        sig = st.send(side=BUY, qty=0.001)
        # filled (the user stream can tell it first) and the retry's answer acted on
        gw.wait(lambda s: s["orders"].get("FILLED") == 1 and not s["inflight"],
                what="filled after the retry")
    cid = cid_of(sig)
    j = gw.journal()
    reqs = _requests_for(j, cid)
    assert [r["attempt"] for r in reqs] == [1, 2]
    # the same client id (the binary journal's ORDER record holds it and the request's timestamp;
    # the JSON-lines journal the body)
    assert all(f"newClientOrderId={cid}&" in r["body"] for r in reqs if "body" in r)
    ts = [r["ts_ms"] if "ts_ms" in r else int(r["body"].rsplit("timestamp=", 1)[1].split("&")[0])
          for r in reqs]
    assert ts[1] >= ts[0]
    resp = [r for r in j if r["k"] == "response" and r.get("cid") == cid]
    assert resp[0].get("code") == -1021 and resp[1]["outcome"] == "OK"
    # a clock resync happened between the two attempts
    clock = [r for r in j if r["k"] == "clock" and r.get("why") == "-1021"]
    assert len(clock) == 1 and reqs[0]["m"] < clock[0]["m"] < reqs[1]["m"]
    assert len(_order_ids(sim)) == 1


@pytest.mark.parametrize("user_stream,transport", [(False, "rest"), (True, "rest"),
                                                    (False, "ws_api")],
                         ids=["query", "stream", "ws_api"])
def test_5xx_with_the_order_created_resolves_as_filled_without_a_duplicate(sim, gw_factory,
                                                                          user_stream, transport):
    # without the user stream only the status query can resolve it; with it, whichever comes
    # first does (the reply and the stream race, as on the venue), and the other copy of each
    # fill is a duplicate
    gw = gw_factory(reference_poll_ms=60_000, user_stream=user_stream,
                    transport=transport).start()
    with StrategySide(gw.channel) as st:
        sim.fault("http_5xx", count=1)
        sig = st.send(side=BUY, qty=0.003)
        # ... and the 5xx reply acted on (not in flight): with the stream first, the fill can
        # come before the reply does
        s = gw.wait(lambda s: s["orders"].get("FILLED") == 1 and s["fills"] >= 1
                    and not s["inflight"], what="UNKNOWN resolved as filled")
    cid = cid_of(sig)
    j = gw.journal()
    assert len(_requests_for(j, cid)) == 1            # never resubmitted
    states = _states(j, cid)
    assert states[-1] == "FILLED", states
    if user_stream and states[0] != "UNKNOWN":
        # the stream reported the order before the 5xx came back: the reply changed nothing
        assert s["counts"].get("unknown_after_report") == 1 and "UNKNOWN" not in states, states
    else:
        assert states[0] == "UNKNOWN", states
    assert not s["counts"].get("illegal_transitions"), s["counts"]
    if not user_stream:
        assert any(r["k"] == "query" and r.get("cid") == cid for r in j)
    assert len(_order_ids(sim)) == 1
    assert s["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.003)
    assert sum(float(f["qty"]) for f in acct(sim)["fills"]) == pytest.approx(0.003)


def test_a_5xx_that_comes_after_the_user_stream_reported_the_order_changes_nothing(sim,
                                                                                  gw_factory):
    # the venue executes the order, the user stream reports it, then the REST reply says 503
    gw = gw_factory(reference_poll_ms=60_000, user_stream=True).start()
    with StrategySide(gw.channel) as st:
        ref = gw.status()["refs"]["BTCUSDT"]
        sim.fault("http_5xx", count=1, late_ms=400)
        sig = st.limit(BUY, 0.001, round(ref * 0.98, 2))          # rests: ACK, not filled
        s = gw.wait(lambda s: s["counts"].get("unknown_after_report") == 1, what="late 5xx")
        assert [o["state"] for o in s["open_orders"]] == ["ACK"]
    cid = cid_of(sig)
    j = gw.journal()
    resp = [r for r in j if r["k"] == "response" and r.get("cid") == cid]
    assert [(r["outcome"], r["status"]) for r in resp] == [("UNKNOWN", 503)]
    assert _states(j, cid) == ["ACK"]                       # from the stream; never UNKNOWN
    assert not any(r["k"] == "query" and r.get("cid") == cid for r in j)
    assert not s["counts"].get("illegal_transitions") and not s["counts"].get("unknown_outcomes")
    assert [o["clientOrderId"] for o in acct(sim)["open_orders"]] == [cid]
    assert gw.stop() == 0


def test_never_created_resolves_as_lost_after_the_polls_without_a_new_order(sim, gw_factory):
    # the order request is held by the venue past its recvWindow (so the venue refuses it with
    # -1021 when it finally looks at it); we time out first and see an unknown outcome
    gw = gw_factory(reference_poll_ms=60_000, risk={"recv_window_ms": 400}, request_timeout_s=0.3,
                    unknown_max_polls=4).start()
    with StrategySide(gw.channel) as st:
        sim.fault("delay", ms=1200, count=1)
        sig = st.send(side=BUY, qty=0.001)
        s = gw.wait(lambda s: s["orders"].get("LOST") == 1, timeout=15, what="LOST")
    cid = cid_of(sig)
    j = gw.journal()
    assert len(_requests_for(j, cid)) == 1
    states = _states(j, cid)
    assert states == ["UNKNOWN", "LOST"], states
    polls = [r for r in j if r["k"] == "query" and r.get("cid") == cid]
    assert len(polls) >= 4 and all(p.get("code") == -2013 for p in polls)
    a = acct(sim)
    assert a["fills"] == [] and a["open_orders"] == []
    assert s["positions"].get("BTCUSDT", {}).get("qty", 0) == 0
    # the exposure it held was released: a new order goes through
    with StrategySide(gw.channel, epoch=None) as st2:
        st2.send(side=BUY, qty=0.001)
        gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="next order filled")


def test_reusing_a_client_order_id_after_a_fill_is_blocked_locally(sim, gw_factory, tmp_path):
    gw = gw_factory().start()
    with StrategySide(gw.channel) as st:
        # a 60 s TTL: the copy resent after the restart must meet the reuse check, not expire
        # first (a restart on a loaded box takes more than the default 5 s)
        sig = st.send(side=BUY, qty=0.001, ttl_ms=60_000)
        gw.wait(lambda s: s["orders"].get("FILLED") == 1)
        st.resend(sig)
        gw.wait(lambda s: s["rejects"].get("CLIENT_ID_REUSED") == 1)
        # and after a restart (the idempotency table is rebuilt from the journal)
        assert gw.stop() == 0
        gw.start()
        st.wait_ready()                 # the new gateway refuses signals before our HELLO
        st.resend(sig)
        gw.wait(lambda s: s["rejects"].get("CLIENT_ID_REUSED") == 1, what="blocked after restart")
    assert len(acct(sim)["fills"]) == 1
    assert len(_requests_for(gw.journal(), cid_of(sig))) == 1


def test_ttl_duplicate_and_gap_are_rejected_and_counted(sim, gw_factory):
    gw = gw_factory().start()
    with StrategySide(gw.channel, strategy_id=7) as st:
        st.resend(st.make(seq=5, side=BUY, qty=0.001))                 # gap of 4 before seq 5
        stale = st.make(seq=6, side=BUY, qty=0.001, ttl_ms=1)
        stale = stale._replace(created_mono=stale.created_mono - 50_000_000)
        st.resend(stale)                                               # expired
        st.resend(st.make(seq=3, side=BUY, qty=0.001))                 # older than the mark
        st.tx.push.send(b"\x00" * 7)                                   # not a signal at all
        # the seq-5 order's fill comes from the venue, after its ACK: waited for like the
        # rejects (asserted right after them, it was seen still NEW under load)
        s = gw.wait(lambda s: s["rejects"].get("DUPLICATE") == 1 and
                    s["rejects"].get("EXPIRED") == 1 and s["rejects"].get("MALFORMED") == 1
                    and s["orders"].get("FILLED") == 1)
    assert s["intake"]["gaps"] == 4 and s["intake"]["gap_events"] == 1
    assert s["orders"] == {"FILLED": 1} and s["internal_errors"] == 0
    j = gw.journal()
    assert any(r["k"] == "gap" and r["missing"] == 4 for r in j)
    reasons = {r.get("reason") for r in j if r["k"] == "signal"}
    assert {"DUPLICATE", "EXPIRED", "MALFORMED"} <= reasons


def test_second_gateway_on_the_same_channel_fails_clearly(sim, gw_factory):
    gw = gw_factory().start()
    gw2 = gw_factory(channel=gw.channel)
    p = gw2.spawn()
    assert p.wait(20) == 3
    assert "already bound" in gw2.stderr() and "second gateway" in gw2.stderr()
    assert gw.status()["phase"] == "RUNNING"


def test_ws_api_transport_places_orders(sim, gw_factory):
    gw = gw_factory(transport="ws_api").start()
    with StrategySide(gw.channel) as st:
        sig = st.send(side=BUY, qty=0.002)
        s = gw.wait(lambda s: s["orders"].get("FILLED") == 1 and s["fills"] >= 1)
    req = _requests_for(gw.journal(), cid_of(sig))
    assert len(req) == 1 and req[0]["via"] == "ws_api"
    assert s["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.002)
    assert len(_order_ids(sim)) == 1


def test_repeated_rejects_halt_and_cancel_open_orders(sim, gw_factory):
    gw = gw_factory(risk={"max_consecutive_rejects": 2}).start()
    ref = gw.status()["refs"]["BTCUSDT"]
    high = round(ref * 1.02, 2)
    with StrategySide(gw.channel) as st:
        st.limit(SELL, 0.9, high)                       # rests, locks 0.9 of our 1 BTC
        gw.wait(lambda s: len(s["open_orders"]) == 1 and s["open_orders"][0]["state"] == "ACK")
        st.limit(SELL, 0.9, high)                       # -2010 insufficient balance
        st.limit(SELL, 0.9, high)                       # again → HALTED
        s = gw.wait(lambda s: s["trading"] == "HALTED" and not s["open_orders"])
    assert "consecutive order rejects" in s["halt_reason"]
    assert acct(sim)["open_orders"] == []


def test_ring_reference_prices_drive_the_collar(sim, gw_factory, shm_name):
    from pipeline.bus.ring import TickRing
    from pipeline.records import Kind, Venue, make_tick
    from tests.integration.gateway_harness import BTC
    ring = TickRing.create(shm_name, 1024)
    w = ring.writer()
    try:
        def bbo(bid: float, ask: float) -> None:
            w.publish_array(make_tick(Kind.BID, venue=int(Venue.SIM), symbol=BTC, price=bid,
                                      qty=1.0))
            w.publish_array(make_tick(Kind.ASK, venue=int(Venue.SIM), symbol=BTC, price=ask,
                                      qty=1.0))
        bbo(61000.00, 61000.02)
        gw = gw_factory(reference="ring", extra_toml=f'\n[ring]\nname = "{shm_name}"\n',
                        risk={"collar_bps": 100.0}).start()
        assert gw.status()["refs"]["BTCUSDT"] == pytest.approx(61000.01)
        with StrategySide(gw.channel) as st:
            st.limit(BUY, 0.001, 55000.00)              # 9.8 % below the ring's mid: collar
            gw.wait(lambda s: s["rejects"].get("PRICE_COLLAR") == 1)
            bbo(55100.00, 55100.02)                      # the market moves; the ring says so
            gw.wait(lambda s: abs(s["refs"].get("BTCUSDT", 0) - 55100.01) < 1e-6)
            st.limit(BUY, 0.001, 55000.00)              # now within 100 bps: accepted, rests
            s = gw.wait(lambda s: len(s["open_orders"]) == 1)
        assert s["open_orders"][0]["state"] == "ACK"
    finally:
        w.close()
        ring.close()


def test_risk_checks_see_positions_and_open_orders_as_they_change(sim, gw_factory):
    gw = gw_factory(risk={"max_position_qty": 0.003}).start()
    with StrategySide(gw.channel) as st:
        st.send(side=BUY, qty=0.002)                    # position 0.002
        gw.wait(lambda s: s["orders"].get("FILLED") == 1)
        st.send(side=BUY, qty=0.002)                    # would be 0.004 > 0.003
        gw.wait(lambda s: s["rejects"].get("POSITION_LIMIT") == 1)
        ref = gw.status()["refs"]["BTCUSDT"]
        st.limit(SELL, 0.002, round(ref * 1.02, 2))    # rests: worst case now 0.002 - 0.002
        gw.wait(lambda s: len(s["open_orders"]) == 1)
        st.send(side=BUY, qty=0.001)                    # 0.003 at worst: allowed
        s = gw.wait(lambda s: s["orders"].get("FILLED") == 2)
    assert s["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.003)


@pytest.mark.parametrize("cause", ["clock_skew", "runaway", "loss_limit"])
def test_automatic_halt(sim, gw_factory, cause):
    kw: dict = {}
    if cause == "clock_skew":
        kw = dict(skew_strikes=1)
    elif cause == "runaway":
        kw = dict(risk={"runaway_signals": 5, "runaway_window_ms": 10_000})
    else:
        kw = dict(risk={"max_loss": 1e-6})
    gw = gw_factory(reference_poll_ms=60_000, **kw).start()
    with StrategySide(gw.channel) as st:
        if cause == "clock_skew":
            sim.fault("force_1021", count=2)            # -1021 survives the resync
            st.send(side=BUY, qty=0.001)
        elif cause == "runaway":
            for _ in range(7):
                st.send(side=BUY, qty=0.001)
        else:
            st.send(side=BUY, qty=0.001)                # bought at the ask: marked at the mid
        s = gw.wait(lambda s: s["trading"] == "HALTED", what=cause)
    want = {"clock_skew": "clock skew", "runaway": "runaway", "loss_limit": "loss limit"}[cause]
    assert want in s["halt_reason"]
    if cause == "runaway":
        assert s["rejects"].get("RUNAWAY") == 1 and s["orders"].get("FILLED", 0) <= 5


@pytest.mark.parametrize("how", ["cli", "soft_loss"])
def test_reducing_accepts_only_risk_reducing_orders(sim, gw_factory, how):
    gw = gw_factory(reference_poll_ms=60_000,
                    risk={"reduce_at_loss": 1e-6} if how == "soft_loss" else {}).start()
    with StrategySide(gw.channel) as st:
        st.send(side=BUY, qty=0.002)                    # long 0.002 (bought at the ask)
        gw.wait(lambda s: s["orders"].get("FILLED") == 1)
        if how == "cli":
            r = gw.cli("reduce")
            assert r.returncode == 0, r.stderr
        s = gw.wait(lambda s: s["trading"] == "REDUCING")
        st.send(side=BUY, qty=0.001)                    # increases: refused
        gw.wait(lambda s: s["rejects"].get("REDUCE_ONLY") == 1)
        st.send(side=SELL, qty=0.001)                   # reduces: goes through
        s = gw.wait(lambda s: s["orders"].get("FILLED") == 2)
    assert s["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.001)
    assert s["trading"] == "REDUCING"


def test_idle_warming_runs_the_signal_path_and_changes_nothing(sim, gw_factory):
    """Between signals the gateway runs the signal path dry about every warm_ms: nothing sent,
    journalled or counted, no risk state moved — with a runaway guard of 3 signals a minute, the
    hundreds of dry runs before the first real signal must not trip it."""
    gw = gw_factory(reference_poll_ms=60_000,
                    risk={"runaway_signals": 3, "runaway_window_ms": 60_000}).start()
    s = gw.wait(lambda s: s["warm_runs"] >= 200, what="dry runs")
    assert s["trading"] == "ACTIVE" and not s["rejects"] and not s["orders"]
    assert s["intake"]["received"] == 0 and s["accepted"] == 0
    with StrategySide(gw.channel) as st:
        st.send(side=BUY, qty=0.001)
        s = gw.wait(lambda s: s["orders"].get("FILLED") == 1)
    assert s["trading"] == "ACTIVE" and not s["rejects"]
    assert s["wire"]["sent"] == 1 and len(_order_ids(sim)) == 1   # the dry runs wrote nothing
    journal = gw.journal_text()
    assert journal.count('"decision":"accept"') == 1 and "pl" + "ffff." not in journal


def test_a_signal_is_signed_while_the_previous_order_is_still_on_the_wire(sim, gw_factory):
    """The order wire: the loop does not wait for a venue's answer. The venue holds the first
    order 400 ms; a second signal sent meanwhile is signed and written by the loop on the second
    keep-alive connection before that answer."""
    gw = gw_factory(reference_poll_ms=60_000).start()
    with StrategySide(gw.channel) as st:
        sim.fault("delay", ms=400, count=1)
        first = st.send(side=BUY, qty=0.001)
        gw.wait(lambda s: s["inflight"] == 1, what="first order on the wire")
        second = st.send(side=BUY, qty=0.001)
        s = gw.wait(lambda s: s["orders"].get("FILLED") == 2 and s["inflight"] == 0, timeout=15,
                    what="both filled and answered")
    assert not s["rejects"]
    j = gw.journal()
    resp = {r["cid"]: r["stamps"] for r in j if r["k"] == "response"}
    a, b = resp[cid_of(first)], resp[cid_of(second)]
    assert b["signed"] < a["response"]            # signed while the first was unanswered
    assert b["signed"] - b["recv"] < 50_000_000   # and without waiting for it (< 50 ms)
    assert b["written"] < a["response"]           # and written on the other connection
    assert a["response"] - a["written"] >= 300_000_000
    assert s["wire"]["direct"] == 2 and s["wire"]["sent"] == 2 and s["wire"]["idle"] == 2


def test_an_order_queued_past_its_signals_ttl_is_not_sent(sim, gw_factory):
    """Signals are signed at once but with every connection carrying an order the next one
    waits: one that waited behind a slow order until its signal's TTL passed is dropped unsent
    (REJECTED, nothing at the venue, its exposure released), never sent stale."""
    gw = gw_factory(reference_poll_ms=60_000, order_connections=1).start()
    with StrategySide(gw.channel) as st:
        sim.fault("delay", ms=600, count=1)
        st.send(side=BUY, qty=0.001)                        # held 600 ms by the venue
        gw.wait(lambda s: s["inflight"] == 1, what="first order on the wire")
        late = st.send(side=BUY, qty=0.001, ttl_ms=200)     # its TTL ends while it waits
        s = gw.wait(lambda s: s["inflight"] == 0 and s["orders"].get("REJECTED") == 1,
                    timeout=15, what="the queued order dropped")
        assert s["wire"]["expired"] == 1 and s["orders"].get("FILLED") == 1
        st.send(side=BUY, qty=0.001)                        # its exposure was released
        s = gw.wait(lambda s: s["orders"].get("FILLED") == 2, what="next order filled")
    assert len(_order_ids(sim)) == 2                        # the late one never reached the venue
    j = gw.journal()
    assert any(r["k"] == "state" and r.get("cid") == cid_of(late) and r.get("to") == "REJECTED"
               and "TTL" in r.get("why", "") for r in j)


def test_ws_api_sends_the_next_order_while_the_first_awaits_its_answer(sim, gw_factory):
    """Pipelined WS-API order.place: with the venue's first answer 300 ms late, the second order
    goes out before that answer arrives, and each answer finds its own order by request id."""
    gw = gw_factory(transport="ws_api", user_stream=False).start()
    with StrategySide(gw.channel) as st:
        st.send(side=BUY, qty=0.001)                      # the connection is open and warm
        gw.wait(lambda s: s["orders"].get("FILLED") == 1)
        sim.fault("delay", ms=300, count=1)
        first = st.send(side=BUY, qty=0.002)
        second = st.send(side=SELL, qty=0.001)
        gw.wait(lambda s: s["orders"].get("FILLED") == 3, what="both filled")
    j = gw.journal()
    req2 = next(r for r in j if r["k"] == "request" and r["cid"] == cid_of(second))
    resp1 = next(r for r in j if r["k"] == "response" and r["cid"] == cid_of(first))
    resp2 = next(r for r in j if r["k"] == "response" and r["cid"] == cid_of(second))
    assert req2["m"] < resp1["stamps"]["response"]      # sent while the first was in flight
    assert resp1["outcome"] == resp2["outcome"] == "OK"
    s = gw.status()
    assert s["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.002)
    assert len(_order_ids(sim)) == 3


def test_ws_api_connection_lost_with_orders_in_flight_makes_them_unknown_then_resolved(
        sim, gw_factory):
    """Two order.place frames wait for (late) answers when the venue cuts the connection: both are
    UNKNOWN (either may have been executed), never resent, and the status query resolves each
    (FILLED if the venue executed it, LOST if it never did); the next order opens a new
    connection, and our position is the venue's."""
    import time
    gw = gw_factory(transport="ws_api", user_stream=False).start()
    with StrategySide(gw.channel) as st:
        st.send(side=BUY, qty=0.001)
        gw.wait(lambda s: s["orders"].get("FILLED") == 1)
        sim.fault("delay", ms=800, count=2)
        a = st.send(side=BUY, qty=0.001)
        b = st.send(side=BUY, qty=0.001)
        gw.wait(lambda s: s["inflight"] == 2, what="both in flight")
        time.sleep(0.1)
        sim.fault("drop", target="ws_api")
        s = gw.wait(lambda s: s["orders"].get("FILLED", 0) + s["orders"].get("LOST", 0) == 3,
                    timeout=30, what="both resolved")
        filled = s["orders"]["FILLED"]
        c = st.send(side=SELL, qty=0.001)
        s = gw.wait(lambda s: s["orders"].get("FILLED") == filled + 1, what="a new connection")
    j = gw.journal()
    for sig in (a, b):
        assert len(_requests_for(j, cid_of(sig))) == 1                  # never resent
        states = _states(j, cid_of(sig))
        assert states[0] == "UNKNOWN" and states[-1] in ("FILLED", "LOST"), states
    assert len(_requests_for(j, cid_of(c))) == 1
    a_ = acct(sim)
    btc = float(a_["balances"]["BTC"]["free"]) + float(a_["balances"]["BTC"]["locked"]) - 1.0
    assert s["positions"]["BTCUSDT"]["qty"] == pytest.approx(btc)
    assert not s["counts"].get("illegal_transitions")
