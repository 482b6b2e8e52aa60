"""The gateway as its own process against the simulator: final orders leave its order table
([gateway] keep_final_orders / final_order_grace_s, pipeline/gateway/orders.py OrderTable.retire)
and the gateway still behaves: positions and fill counts are whole, a retired order's client id
is still refused (before and after a restart), the venue's copies of its trades are not foreign."""
from __future__ import annotations

import pytest

pytest.importorskip("pipeline.sim.testing", reason="simulator (issue 3) not merged yet")

from tests.integration.gateway_harness import (BUY, StrategySide, acct,  # noqa: E402
                                               gw_factory, sim)

pytestmark = pytest.mark.timeout(90)
__all__ = ["sim", "gw_factory"]   # fixtures


def test_retired_orders_keep_positions_and_their_client_ids_refused(sim, gw_factory):
    before = len(acct(sim)["fills"])
    gw = gw_factory(keep_final_orders=2, final_order_grace_s=0.0).start()
    with StrategySide(gw.channel) as st:
        sigs = [st.send(side=BUY, qty=0.001) for _ in range(12)]
        s = gw.wait(lambda s: s["orders"].get("FILLED", 0) == 12       # retired ones too
                    and s["retired_orders"] >= 10 and not s["open_orders"],
                    what="12 fills, 10 of their orders retired", timeout=40)
        assert s["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.012)
        venue_fills = len(acct(sim)["fills"]) - before
        assert s["fills"] == venue_fills and s["fills_reported_twice"] >= 0
        assert s["counts"].get("foreign_fills", 0) == 0 and not s["foreign_orders"]
        st.resend(sigs[0])                  # the first order is retired: still refused
        gw.wait(lambda s: s["rejects"].get("CLIENT_ID_REUSED") == 1, what="refused")
        assert gw.stop() == 0
        # restart: the journal rebuilds the table (then retired again); the reconciliation's
        # recent trades are our own, known ones
        gw.start()
        st.wait_ready()
        st.resend(sigs[1])
        s = gw.wait(lambda s: s["rejects"].get("CLIENT_ID_REUSED") == 1
                    and s["retired_orders"] >= 10, what="refused after restart", timeout=40)
        assert s["positions"]["BTCUSDT"]["qty"] == pytest.approx(0.012)
        assert s["counts"].get("foreign_fills", 0) == 0 and not s["foreign_orders"]
    assert len(acct(sim)["fills"]) - before == venue_fills   # nothing sent twice
    assert gw.stop() == 0
