"""Binance selfTradePreventionMode end to end: the gateway (as its own process, local self-trade
refusal off) sends [risk].self_trade_prevention_mode on its orders and the simulator expires the
orders the mode names when our SELL meets our own resting BUY (EXPIRED_IN_MATCH)."""
from __future__ import annotations

import pytest

pytest.importorskip("pipeline.sim.testing", reason="simulator not available")

from tests.integration.gateway_harness import (BUY, SELL, StrategySide, acct,  # noqa: E402
                                               cid_of, gw_factory, sim)

pytestmark = pytest.mark.timeout(60)
__all__ = ["sim", "gw_factory"]   # fixtures

# mode -> (the resting BUY's final state at the venue, the crossing SELL's)
EXPECT = {"EXPIRE_TAKER": ("NEW", "EXPIRED_IN_MATCH"),
          "EXPIRE_MAKER": ("EXPIRED_IN_MATCH", "NEW"),     # the SELL then rests at its price
          "EXPIRE_BOTH": ("EXPIRED_IN_MATCH", "EXPIRED_IN_MATCH")}


@pytest.mark.parametrize("mode", sorted(EXPECT))
def test_the_venue_side_mode_expires_what_binance_would(sim, gw_factory, mode):
    gw = gw_factory(user_stream=True, risk={"self_trade_prevention": False,
                                            "self_trade_prevention_mode": mode}).start()
    with StrategySide(gw.channel) as st:
        st.send(side=BUY, qty=0.002)                               # something to sell
        gw.wait(lambda s: s["orders"].get("FILLED") == 1, what="the market BUY filled")
        book = sim.state()["books"]["BTCUSDT"]                     # the tape is paused
        mid = round((float(book["bestBid"]) + float(book["bestAsk"])) / 2, 2)
        assert float(book["bestBid"]) < mid < float(book["bestAsk"])   # inside the spread
        buy = st.limit(BUY, 0.001, mid)                            # our BUY: the best bid
        gw.wait(lambda s: any(o["state"] == "ACK" for o in s["open_orders"]),
                what="the resting BUY")
        sell = st.limit(SELL, 0.001, mid)                          # meets our own BUY first
        want_buy, want_sell = EXPECT[mode]
        done = {"EXPIRE_TAKER": lambda s: s["orders"].get("EXPIRED") == 1,
                "EXPIRE_MAKER": lambda s: s["orders"].get("EXPIRED") == 1
                and [o["side"] for o in s["open_orders"]] == [-1],
                "EXPIRE_BOTH": lambda s: s["orders"].get("EXPIRED") == 2}[mode]
        s = gw.wait(lambda s: done(s) and not s["counts"].get("illegal_transitions", 0),
                    what=f"{mode} applied")
    venue = {o["clientOrderId"]: o for o in acct(sim)["orders"]}
    b, x = venue[cid_of(buy)], venue[cid_of(sell)]
    assert (b["status"], x["status"]) == (want_buy, want_sell)
    assert x["selfTradePreventionMode"] == mode == b["selfTradePreventionMode"]   # both sent it
    expired = [o for o in (b, x) if o["status"] == "EXPIRED_IN_MATCH"]
    assert expired and all(o["preventedQuantity"] == "0.00100000" for o in expired)
    assert len({o["preventedMatchId"] for o in expired}) == 1
    open_ids = [o["cid"] for o in s["open_orders"]]                # the gateway agrees
    assert open_ids == [cid_of(o) for o, w in ((buy, want_buy), (sell, want_sell)) if w == "NEW"]
    assert "SELF_TRADE" not in s["rejects"]                         # not refused locally
    assert gw.stop() == 0
