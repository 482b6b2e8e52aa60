"""Self-trade prevention end to end: the gateway as its own process against the simulator. With
[risk].self_trade_prevention a SELL crossing our own resting BUY is refused (SELF_TRADE) and
never reaches the venue; without it the same SELL is sent and fills (the control)."""
from __future__ import annotations

import pytest

pytest.importorskip("pipeline.sim.testing", reason="simulator (issue 3) not merged yet")

from tests.integration.gateway_harness import (BUY, SELL, StrategySide, acct,  # noqa: E402
                                               gw_factory, sim)

pytestmark = pytest.mark.timeout(60)
__all__ = ["sim", "gw_factory"]   # fixtures


@pytest.mark.parametrize("stp", [True, False], ids=["prevention_on", "prevention_off"])
def test_a_sell_crossing_our_own_resting_buy_is_refused_never_filled(sim, gw_factory, stp):
    gw = gw_factory(risk={"self_trade_prevention": stp}).start()
    with StrategySide(gw.channel) as st:
        st.send(side=BUY, qty=0.002)                              # something to sell
        gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="the market BUY filled")
        ref = gw.status()["refs"]["BTCUSDT"]
        low = round(ref * 0.98, 2)
        st.limit(BUY, 0.001, low)                                 # rests below the market
        gw.wait(lambda s: len(s["open_orders"]) == 1
                and s["open_orders"][0]["state"] == "ACK", what="the resting BUY")
        st.limit(SELL, 0.001, low)                                # at our own bid: crosses it
        if stp:
            s = gw.wait(lambda s: s["rejects"].get("SELF_TRADE") == 1, what="SELF_TRADE")
            assert s["orders"].get("FILLED") == 1                 # only the first BUY
            venue = acct(sim)["open_orders"]
            assert len(venue) == 1 and venue[0]["side"] == "BUY"  # the SELL never reached it
            st.limit(SELL, 0.001, round(low * 1.05, 2))           # above our bid: not a cross
            s = gw.wait(lambda s: len(s["open_orders"]) == 2, what="a SELL that does not cross")
            assert s["rejects"].get("SELF_TRADE") == 1
        else:
            s = gw.wait(lambda s: s["orders"].get("FILLED") == 2, what="the SELL filled")
            assert "SELF_TRADE" not in s["rejects"]
