"""The fill-rate runaway guard: more than [risk].runaway_fills fills within
runaway_fill_window_ms → HALTED (kernel and twin), and the gateway halts (cancel all) on the trip."""
from __future__ import annotations

import pytest

from pipeline.config import RiskConfig
from pipeline.gateway.orders import Order, OrderState
from pipeline.gateway.reasons import Reason, TradingState
from tests.gateway_helpers import LIMITS, NOW, T0, Sig, btc_rules, engines
from tests.unit.test_gateway_defects import SID, SYM, make_ex

W = 1_000_000_000


@pytest.mark.parametrize("Engine", engines(), ids=["cython", "python"])
def test_more_fills_than_the_limit_within_the_window_halts_once(Engine):
    e = Engine(**LIMITS, runaway_fills=3, runaway_fill_window_ns=W)
    assert [e.count_fill(NOW + i) for i in range(3)] == [False] * 3
    assert e.state == TradingState.ACTIVE
    assert e.count_fill(NOW + 3) is True                          # the 4th inside 1 s: the trip
    assert e.state == TradingState.HALTED
    assert e.count_fill(NOW + 4) is False                         # reported once


@pytest.mark.parametrize("Engine", engines(), ids=["cython", "python"])
def test_fills_spread_over_more_than_the_window_never_trip(Engine):
    e = Engine(**LIMITS, runaway_fills=3, runaway_fill_window_ns=W)
    # exactly one window after the oldest of the last 3 is outside it (half-open)
    assert not any(e.count_fill(NOW + i * (W // 3 + 1)) for i in range(50))
    assert e.state == TradingState.ACTIVE


@pytest.mark.parametrize("Engine", engines(), ids=["cython", "python"])
def test_the_guard_is_off_by_default(Engine):
    e = Engine(**LIMITS)
    assert not any(e.count_fill(NOW) for _ in range(10_000))
    assert e.state == TradingState.ACTIVE


@pytest.mark.parametrize("Engine", engines(), ids=["cython", "python"])
@pytest.mark.parametrize("kw", [dict(runaway_fills=-1), dict(runaway_fills=4097),
                                dict(runaway_fills=True), dict(runaway_fill_window_ns=0)])
def test_bad_fill_guard_limits_are_refused(Engine, kw):
    with pytest.raises(ValueError, match="runaway_fill"):
        Engine(**LIMITS, **kw)


def test_the_config_keys_reach_the_engine_and_are_checked():
    from pipeline.gateway.risk import engine_kwargs
    kw = engine_kwargs(RiskConfig(runaway_fills=50, runaway_fill_window_ms=2_000))
    assert kw["runaway_fills"] == 50 and kw["runaway_fill_window_ns"] == 2_000_000_000
    with pytest.raises(ValueError, match="runaway_fills"):
        RiskConfig(runaway_fills=5000)
    with pytest.raises(ValueError, match="runaway_fill_window_ms"):
        RiskConfig(runaway_fill_window_ms=0)


@pytest.mark.parametrize("Engine", engines(), ids=["cython", "python"])
def test_the_gateway_halts_when_fills_run_away(tmp_path, Engine):
    eng = Engine(**LIMITS, runaway_fills=3, runaway_fill_window_ns=60 * W)
    eng.set_instrument(btc_rules(symbol_id=SID))
    eng.set_reference(SID, 50_000.0, T0)
    ex = make_ex(tmp_path)
    ex.risk = eng
    o = ex.table.add(Order(cid="pl1.1.1", symbol=SYM, symbol_id=SID, side=1, order_type=1,
                           tif=1, qty=1.0, price=50_000.0, state=OrderState.ACK))
    for t in range(3):
        assert ex.fill(o, symbol=SYM, trade_id=t, side=1, qty=0.01, price=50_000.0,
                       source="stream")
    assert ex.halts == [] and eng.state == TradingState.ACTIVE
    assert ex.fill(o, symbol=SYM, trade_id=3, side=1, qty=0.01, price=50_000.0, source="stream")
    assert len(ex.halts) == 1 and "runaway fill rate" in ex.halts[0]
    assert eng.state == TradingState.HALTED
    assert eng.check(Sig()(symbol=SID, side=1, price=50_000.0), NOW) == Reason.HALTED
