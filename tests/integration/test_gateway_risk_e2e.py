"""Issue 17's risk failures replayed against the simulator, the gateway as its own process: each
was seen there by hand (101 signals at once against 100/s all passed; two identical LIMIT SELLs
both rested; a MARKET BUY decided on a 4.4 s-old tick filled). What the venue receives is counted
at the venue."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pipeline.sim.testing", reason="simulator not available")

from pipeline.records import OrderType, TimeInForce  # noqa: E402
from tests.integration.gateway_harness import (BUY, SELL, StrategySide, acct,  # noqa: E402
                                               gw_factory, sim)

pytestmark = pytest.mark.timeout(90)
__all__ = ["sim", "gw_factory"]   # fixtures


def test_101_signals_at_once_against_100_per_window_put_exactly_100_orders_on_the_venue(
        sim, gw_factory):
    # a 60 s window: the 101 signals are "at once" whatever the box's load
    gw = gw_factory(risk={"throttle_orders": 100, "throttle_window_ms": 60_000,
                          "runaway_signals": 2000}).start()
    with StrategySide(gw.channel) as st:
        low = round(gw.status()["refs"]["BTCUSDT"] * 0.97, 2)
        for _ in range(101):                      # IOC below the market: each expires at once
            st.send(side=BUY, qty=0.001, price=low, order_type=OrderType.LIMIT,
                    tif=TimeInForce.IOC, ttl_ms=60_000)   # a slow box: none may expire queued
        s = gw.wait(lambda s: s["rejects"].get("RATE_LIMIT") == 1
                    and s["orders"].get("EXPIRED", 0) == 100, timeout=60,
                    what="100 sent, 1 RATE_LIMIT")
    assert len(acct(sim)["orders"]) == 100         # never queued, never sent later
    assert s["accepted"] == 100
    assert gw.stop() == 0


def test_an_identical_order_within_the_duplicate_window_never_reaches_the_venue(sim, gw_factory):
    gw = gw_factory(risk={"duplicate_window_ms": 10_000}).start()
    with StrategySide(gw.channel) as st:
        st.send(side=BUY, qty=0.002)                                 # something to sell
        gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="the BUY filled")
        high = round(gw.status()["refs"]["BTCUSDT"] * 1.02, 2)
        st.limit(SELL, 0.001, high)                                  # rests
        st.limit(SELL, 0.001, high)                                  # the same order again
        s = gw.wait(lambda s: s["rejects"].get("DUPLICATE_ORDER") == 1, what="DUPLICATE_ORDER")
        st.limit(SELL, 0.001, round(high + 0.01, 2))                 # a different price: sent
        s = gw.wait(lambda s: len(s["open_orders"]) == 2, what="two resting SELLs")
    assert [o["side"] for o in acct(sim)["open_orders"]] == ["SELL", "SELL"]
    assert s["rejects"].get("DUPLICATE_ORDER") == 1
    assert gw.stop() == 0


def test_an_order_decided_on_a_4_4_s_old_tick_is_refused_stale_trigger(sim, gw_factory):
    gw = gw_factory(risk={"max_tick_age_ms": 1_000}).start()
    with StrategySide(gw.channel) as st:
        def stale(**kw):                    # the strategy stalled 4.4 s after its trigger tick
            sig = st.make(**kw)
            sig = sig._replace(trigger_mono=time.perf_counter_ns() - 4_400_000_000)
            assert st.tx.send(sig)
        stale(side=BUY, qty=0.001)                                   # MARKET BUY, TTL 5 s
        s = gw.wait(lambda s: s["rejects"].get("STALE_TRIGGER") == 1, what="STALE_TRIGGER")
        assert acct(sim)["orders"] == []
        st.send(side=BUY, qty=0.002)                                 # a fresh trigger: filled
        gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="the fresh BUY filled")
        stale(side=SELL, qty=0.001)                                  # reducing: still goes
        s = gw.wait(lambda s: s["orders"].get("FILLED") == 2, what="the reducing SELL filled")
    assert s["rejects"].get("STALE_TRIGGER") == 1
    assert [o["side"] for o in acct(sim)["orders"]] == ["BUY", "SELL"]
    assert gw.stop() == 0
