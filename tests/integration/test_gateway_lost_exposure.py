"""A LOST order keeps its exposure until the trade history confirms it never traded (issue 17,
RELIABILITY.md check 27): the gateway as its own process against the simulator."""
from __future__ import annotations

import pytest

pytest.importorskip("pipeline.sim.testing", reason="simulator not available")

from tests.integration.gateway_harness import (BUY, StrategySide, acct, cid_of,  # noqa: E402
                                               gw_factory, sim)

pytestmark = pytest.mark.timeout(60)
__all__ = ["sim", "gw_factory"]   # fixtures

LOST_SETUP = dict(reference_poll_ms=60_000, request_timeout_s=0.3, unknown_max_polls=4)


def _lose_one_order(sim, gw, st, *, foreign_trade: bool):
    """One BUY whose request the venue holds past its recvWindow (never created: -2013 on every
    poll) → UNKNOWN, then LOST; optionally a trade on the account that is not ours meanwhile."""
    sim.fault("delay", ms=1200, count=1)
    sig = st.send(side=BUY, qty=0.001)
    gw.wait(lambda s: s["orders"].get("UNKNOWN") == 1, what="UNKNOWN")
    if foreign_trade:                       # someone else trades on the account meanwhile
        import requests

        from pipeline.sim.testing import SIM_TEST_API_KEY, signed_query
        q = signed_query({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                          "quantity": "0.001", "newClientOrderId": "manual-lost-1"})
        r = requests.post(sim.rest_url + "/api/v3/order", data=q, timeout=5,
                          headers={"X-MBX-APIKEY": SIM_TEST_API_KEY,
                                   "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, r.text
    return sig


def test_a_lost_order_keeps_its_exposure_while_a_foreign_trade_could_be_it(sim, gw_factory):
    gw = gw_factory(**LOST_SETUP, risk={"recv_window_ms": 400, "max_position_qty": 0.001}).start()
    with StrategySide(gw.channel) as st:
        sig = _lose_one_order(sim, gw, st, foreign_trade=True)
        s = gw.wait(lambda s: s["orders"].get("LOST") == 1
                    and s["counts"].get("lost_unconfirmed") == 1, timeout=20, what="LOST, held")
        # the LOST BUY still counts at its worst case: another 0.001 would pass max_position
        st.send(side=BUY, qty=0.001)
        s = gw.wait(lambda s: s["rejects"].get("POSITION_LIMIT") == 1, what="POSITION_LIMIT")
        assert not s["counts"].get("lost_confirmed")
    j = gw.journal()
    cid = cid_of(sig)
    held = [r for r in j if r["k"] == "lost_held"]
    assert [r["cid"] for r in held] == [cid]
    assert not any(r["k"] == "lost_confirmed" for r in j)
    assert s["positions"].get("BTCUSDT", {}).get("qty", 0) == 0   # the foreign trade: not ours
    assert gw.stop() == 0


def test_a_lost_order_releases_its_exposure_once_the_trade_history_confirms(sim, gw_factory):
    gw = gw_factory(**LOST_SETUP, risk={"recv_window_ms": 400, "max_position_qty": 0.001}).start()
    with StrategySide(gw.channel) as st:
        sig = _lose_one_order(sim, gw, st, foreign_trade=False)
        s = gw.wait(lambda s: s["counts"].get("lost_confirmed") == 1, timeout=20,
                    what="LOST confirmed")
        assert s["orders"].get("LOST") == 1 and not s["counts"].get("lost_unconfirmed")
    with StrategySide(gw.channel, epoch=None) as st2:          # the room is free again
        st2.send(side=BUY, qty=0.001)
        s = gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="next order filled")
    j = gw.journal()
    cid = cid_of(sig)
    i_lost = next(i for i, r in enumerate(j) if r["k"] == "state" and r.get("cid") == cid
                  and r.get("to") == "LOST")
    i_conf = next(i for i, r in enumerate(j) if r["k"] == "lost_confirmed")
    assert j[i_conf]["cid"] == cid and i_lost < i_conf
    # the next order was sent only after the confirmation released the room
    i_next = next(i for i, r in enumerate(j) if r["k"] == "order" and r.get("cid") != cid)
    assert i_next > i_conf
    a = acct(sim)                          # the venue filled the next order, and only it
    assert sum(float(f["qty"]) for f in a["fills"]) == pytest.approx(0.001)
    assert s["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.001)
    assert gw.stop() == 0
