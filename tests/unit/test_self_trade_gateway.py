"""Self-trade prevention across the kernel and the gateway's order book of record: the kernel
raises our own best bid/ask on accept, the gateway lowers them when a resting order ends."""
from __future__ import annotations

import pytest

from pipeline.gateway.orders import Order, OrderState
from pipeline.gateway.reasons import Reason
from tests.gateway_helpers import LIMITS, NOW, T0, Sig, btc_rules, engines
from tests.unit.test_gateway_defects import SID, SYM, make_ex


@pytest.mark.parametrize("Engine", engines(), ids=["cython", "python"])
def test_a_sell_crossing_our_resting_buy_is_refused_until_the_buy_ends(tmp_path, Engine):
    eng = Engine(**LIMITS, self_trade=True)
    eng.set_instrument(btc_rules(symbol_id=SID))
    eng.set_reference(SID, 50_000.0, T0)
    ex = make_ex(tmp_path)
    ex.risk = eng
    sig = Sig()
    assert eng.check(sig(symbol=SID, side=1, price=50_000.0), NOW) == Reason.ACCEPT
    buy = ex.table.add(Order(cid="pl1.1.1", symbol=SYM, symbol_id=SID, side=1, order_type=1,
                             tif=1, qty=0.01, price=50_000.0, state=OrderState.ACK))
    assert eng.check(sig(symbol=SID, side=-1, price=49_990.0), NOW) == Reason.SELF_TRADE
    ex.set_state(buy, OrderState.PARTIALLY_FILLED, "fill")         # still resting
    assert eng.check(sig(symbol=SID, side=-1, price=49_990.0), NOW) == Reason.SELF_TRADE
    ex.set_state(buy, OrderState.CANCELED, "cancelled")             # ended: no longer ours
    assert eng.own_quotes(SID) == (0.0, 0.0)
    assert eng.check(sig(symbol=SID, side=-1, price=49_990.0), NOW) == Reason.ACCEPT
