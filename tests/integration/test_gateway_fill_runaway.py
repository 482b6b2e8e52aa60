"""The fill-rate runaway guard end to end: the gateway as its own process against the simulator.
More fills than [risk].runaway_fills within runaway_fill_window_ms → HALTED and every open order
cancelled; the next signal is refused."""
from __future__ import annotations

import pytest

pytest.importorskip("pipeline.sim.testing", reason="simulator (issue 3) not merged yet")

from tests.integration.gateway_harness import (BUY, StrategySide, acct,  # noqa: E402
                                               gw_factory, sim)

pytestmark = pytest.mark.timeout(60)
__all__ = ["sim", "gw_factory"]   # fixtures


def test_more_fills_than_the_limit_in_the_window_halt_the_gateway(sim, gw_factory):
    gw = gw_factory(risk={"runaway_fills": 2, "runaway_fill_window_ms": 60_000}).start()
    with StrategySide(gw.channel) as st:
        ref = gw.status()["refs"]["BTCUSDT"]
        st.limit(BUY, 0.001, round(ref * 0.98, 2))                 # rests: the halt cancels it
        gw.wait(lambda s: len(s["open_orders"]) == 1, what="the resting BUY")
        st.send(side=BUY, qty=0.001)
        s = gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="the first fill")
        assert s["trading"] == "ACTIVE"
        st.send(side=BUY, qty=0.001)
        st.send(side=BUY, qty=0.001)                               # the third fill: the trip
        s = gw.wait(lambda s: s["trading"] == "HALTED", what="HALTED")
        assert "runaway fill rate" in s["halt_reason"]
        s = gw.wait(lambda s: not s["open_orders"], what="the resting BUY cancelled")
        assert acct(sim)["open_orders"] == []
        st.send(side=BUY, qty=0.001)
        gw.wait(lambda s: s["rejects"].get("HALTED") == 1, what="the next signal refused")
