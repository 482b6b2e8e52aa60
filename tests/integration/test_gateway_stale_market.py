"""Market data the gateway judges orders by, end to end with real processes: the MARKET-order
protection price against the simulator (a book whose best ask is beyond the collar refuses a
MARKET BUY, which never reaches the venue), and STALE_REFERENCE while the collector is down (a
collector process feeding the gateway's ring is stopped: risk-increasing orders are refused,
a reducing one still goes; the collector resumes: orders go again)."""
from __future__ import annotations

import os
import signal
import time

import pytest

pytest.importorskip("pipeline.sim.testing", reason="simulator not available")

from collector_fixtures import CollectorRun, collector_runs  # noqa: E402
from tests.integration.gateway_harness import (BTC, BUY, SELL, StrategySide, acct,  # noqa: E402
                                               gw_factory)

pytestmark = pytest.mark.timeout(90)
__all__ = ["gw_factory"]   # fixture


@pytest.fixture
def sim(tmp_path):
    """The simulator with its tape running (the collector sees the book move)."""
    from pipeline.sim.testing import start_sim
    s = start_sim(tmp_path, rate=200, paused=False, ping_interval_s=20.0, pong_timeout_s=120.0,
                  weight_limit_1m=100_000, order_limit_10s=10_000)
    yield s
    s.stop()


def test_a_market_order_whose_protection_price_is_beyond_the_collar_never_reaches_the_venue(
        sim, gw_factory, shm_name):
    from pipeline.bus.ring import TickRing
    from pipeline.records import Kind, Venue, make_tick
    ring = TickRing.create(shm_name, 1024)
    w = ring.writer()
    try:
        def bbo(bid: float, ask: float) -> None:
            w.publish_array(make_tick(Kind.BID, venue=int(Venue.SIM), symbol=BTC, price=bid,
                                      qty=1.0))
            w.publish_array(make_tick(Kind.ASK, venue=int(Venue.SIM), symbol=BTC, price=ask,
                                      qty=1.0))
        bbo(60_000.00, 62_000.00)            # mid 61_000: the best ask is 1.6 % above it
        gw = gw_factory(reference="ring", extra_toml=f'\n[ring]\nname = "{shm_name}"\n',
                        risk={"collar_bps": 100.0}).start()
        with StrategySide(gw.channel) as st:
            st.send(side=BUY, qty=0.001)                      # MARKET: would take 62_000 first
            s = gw.wait(lambda s: s["rejects"].get("PRICE_COLLAR") == 1, what="PRICE_COLLAR")
            assert acct(sim)["orders"] == []                  # nothing reached the venue
            st.send(side=SELL, qty=0.001)                     # a SELL takes 60_000: also 1.6 %
            s = gw.wait(lambda s: s["rejects"].get("PRICE_COLLAR") == 2, what="2 PRICE_COLLAR")
            bbo(61_837.62, 61_837.64)                         # a normal book (the sim's price)
            gw.wait(lambda s: abs(s["refs"].get("BTCUSDT", 0) - 61_837.63) < 1e-6,
                    what="the new reference")
            st.send(side=BUY, qty=0.001)                      # the ask within 100 bps: sent
            s = gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="the MARKET BUY filled")
        assert s["rejects"].get("PRICE_COLLAR") == 2
        assert [o["side"] for o in acct(sim)["orders"]] == ["BUY"]
        assert gw.stop() == 0
    finally:
        w.close()
        ring.close()


def test_risk_increasing_orders_are_refused_stale_while_the_collector_is_down(
        tmp_path, sim, gw_factory, shm_name):
    cfg = {"venue_id": "SIM", "ws_url": sim.ws_url, "rest_url": sim.rest_url,
           "symbols": ["BTCUSDT"], "channels": ["bookTicker"], "stale_after_s": 10.0,
           "snapshot_limit": 1000}
    with collector_runs(lambda **over: CollectorRun(tmp_path, shm_name, {**cfg, **over})) as start:
        coll = start()
        coll.pump(20.0, until=lambda recs: len(recs) > 10)         # the collector is live
        from registry_fixture import write_cache       # the collector's symbol ids
        gw = gw_factory(reference="ring", extra_toml=f'\n[ring]\nname = "{shm_name}"\n',
                        risk={"ref_stale_ms": 500, "collar_bps": 500.0},
                        env={"PIPELINE_INSTRUMENTS": write_cache(tmp_path / "instr.json")}
                        ).start()
        from pipeline.records import Venue
        from registry_fixture import DEFAULT
        sym = DEFAULT.id(Venue.SIM, "BTCUSDT")
        with StrategySide(gw.channel) as st:
            gw.wait(lambda s: s["refs"].get("BTCUSDT", 0) > 0, what="a ring reference")
            st.send(side=BUY, qty=0.002, symbol=sym)                            # fresh: sent, filled
            gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="the first BUY filled")
            os.kill(coll.proc.pid, signal.SIGSTOP)                  # the collector is down
            try:
                # no tick can be newer than the stop: 2 x ref_stale_ms later every reference is
                # older than ref_stale_ms (a causal bound, not a race)
                time.sleep(1.0)
                ref = gw.status()["refs"]["BTCUSDT"]
                st.send(side=BUY, qty=0.001, symbol=sym)            # MARKET, increasing
                st.limit(BUY, 0.001, round(ref * 0.99, 2), symbol=sym)   # LIMIT, increasing
                s = gw.wait(lambda s: s["rejects"].get("STALE_REFERENCE") == 2, timeout=20,
                            what="two STALE_REFERENCE refusals")
                assert s["orders"].get("FILLED") == 1 and not s["open_orders"]
                st.limit(SELL, 0.001, round(ref * 1.01, 2), symbol=sym)  # reducing: still goes
                s = gw.wait(lambda s: len(s["open_orders"]) == 1, what="the reducing SELL")
                assert s["rejects"].get("STALE_REFERENCE") == 2
            finally:
                os.kill(coll.proc.pid, signal.SIGCONT)              # the collector is back
            # the gateway has applied a tick published after the stop when its reference moves
            # off the frozen one (the tape keeps moving the book)
            gw.wait(lambda s: s["refs"].get("BTCUSDT") != ref, timeout=30,
                    what="a reference from after the collector came back")
            st.send(side=BUY, qty=0.001, symbol=sym)                # fresh again: sent
            s = gw.wait(lambda s: s["orders"].get("FILLED") == 2, timeout=20,
                        what="a BUY after the collector came back")
        assert s["rejects"].get("STALE_REFERENCE") == 2
        venue_buys = [o for o in acct(sim)["orders"] if o["side"] == "BUY"]
        assert len(venue_buys) == 2                                  # the refused never went
        assert gw.stop() == 0
