"""The gateway acts on an order's answer and on a user-stream execution report when it arrives:
the helper thread that receives it wakes the loop (pipeline/bus/signals.py SignalReceiver.wake),
it does not wait for the loop's idle poll.

Each gateway here idles for a minute between turns (poll_ms = 60 s, the idle dry run off), so a
loop that only looked at its helpers' queues when its wait timed out would hand the order event
to the strategy a minute late; the tests allow 15 s (a loaded machine), far below that and far
above the milliseconds it takes. The signals come over ZeroMQ (signal_ring = 0): its poll also
answers the strategy's HELLO, which a loop waiting on the shared-memory ring would leave for its
next turn; the ring's wake (ReaderCore.nudge) is tested in tests/unit/test_loop_wake.py."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pipeline.sim.testing", reason="simulator not available")

from pipeline.bus.events import EventReader, decode  # noqa: E402
from pipeline.records import OrderEventKind  # noqa: E402
from tests.integration.gateway_harness import BUY, StrategySide, cid_of  # noqa: E402
from tests.integration.gateway_harness import gw_factory, sim  # noqa: E402,F401

IDLE = dict(poll_ms=60_000, warm_ms=0, reference_poll_ms=60_000, status_every_ms=60_000,
            signal_ring=0)
BOUND_S = 15.0          # << the 60 s idle period


def _first(events: EventReader, kind: int, client_seq: int, timeout_s: float):
    """The first event of `kind` for the order with this client seq, or None after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for rec in events.poll():
            if int(rec["kind"]) == kind and int(rec["client_seq"]) == client_seq:
                return decode(rec)
        time.sleep(0.005)
    return None


@pytest.mark.parametrize("transport", ["rest", "ws_api"])
def test_an_order_answer_is_acted_on_when_it_arrives_not_at_the_next_idle_poll(
        gw_factory, transport):  # noqa: F811
    gw = gw_factory(transport=transport, user_stream=False, **IDLE).start()
    with StrategySide(gw.channel) as st:
        events = EventReader.attach(gw.channel)
        assert events is not None
        try:
            t0 = time.monotonic()
            sig = st.send(side=BUY, qty=0.002, ttl_ms=30_000)
            fill = _first(events, OrderEventKind.FILL, sig.seq, BOUND_S)
            took = time.monotonic() - t0
        finally:
            events.close()
    assert fill is not None, (f"no FILL event for {cid_of(sig)} within {BOUND_S} s "
                              f"(the loop idles 60 s between turns)")
    assert fill.qty == pytest.approx(0.002)
    assert took < BOUND_S


def test_a_user_stream_execution_report_is_acted_on_when_it_arrives(sim, gw_factory):  # noqa: F811
    # the order executes at once and the user stream reports it, but the REST answer comes
    # 30 s late (and the wire waits 40 s for it): only the stream's report can fill the order
    # in time, and only if its arrival wakes the loop
    gw = gw_factory(transport="rest", user_stream=True, request_timeout_s=40.0, **IDLE).start()
    try:
        gw.wait(lambda s: s["stream"]["subscribed"], what="user stream subscribed", timeout=20)
        with StrategySide(gw.channel) as st:
            events = EventReader.attach(gw.channel)
            assert events is not None
            try:
                sim.fault("http_5xx", count=1, late_ms=30_000)
                sig = st.send(side=BUY, qty=0.001, ttl_ms=30_000)
                fill = _first(events, OrderEventKind.FILL, sig.seq, BOUND_S)
            finally:
                events.close()
        assert fill is not None, (f"no FILL event for {cid_of(sig)} within {BOUND_S} s: the "
                                  f"stream's executionReport waited for the loop's idle poll")
        assert fill.qty == pytest.approx(0.001)
        j = gw.journal()
        fills = [r for r in j if r["k"] == "fill" and r.get("cid") == cid_of(sig)]
        assert fills and fills[0].get("source") == "stream", fills
    finally:
        gw.kill()          # the REST answer is still 30 s away: neither waits for it
        sim.proc.kill()
