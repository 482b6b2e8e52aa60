"""The event engine (any Strategy, record batches, simulated venue) against the vectorized SMA
backtester under the same conventions: fixed size, MARKET orders filled at the first trade at or
after signal time + latency (never the trigger tick), slippage and fee on each fill."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.backtest.data import market_from_records
from pipeline.backtest.engine import run_sma
from pipeline.backtest.events import EventEngine
from pipeline.config import BacktestConfig
from pipeline.records import TICK_DTYPE, Kind, Venue
from pipeline.registry import DEFAULT as REG
from pipeline.strategy.sma import SmaCrossover, SmaParams

SYM = REG.id(Venue.SIM, "BTCUSDT")


def tape(n, seed, gaps=0):
    rng = np.random.default_rng(seed)
    r = np.zeros(n, TICK_DTYPE)
    r["kind"] = Kind.TRADE
    r["venue"] = Venue.SIM
    r["symbol"] = SYM
    r["price"] = np.round(50_000 + np.cumsum(rng.integers(-1, 2, n)) * 0.5, 2)
    r["qty"] = 0.01
    r["exch_ts"] = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(1, 5, n)) * 1_000_000
    r["seq"] = np.arange(n)
    r["mono_ts"] = r["exch_ts"]
    return r


@pytest.mark.parametrize("mode", ["long_flat", "long_short"])
@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("seed", [1, 2])
def test_event_engine_equals_vectorized_sma(mode, compiled, seed):
    r = tape(60_000, seed)
    model = BacktestConfig(fee_taker_bps=7.5, slippage_bps=1.0, half_spread_bps=0.5,
                           latency_ms=2.5, sizing="fixed", fixed_qty=0.2,
                           initial_capital=1e6, mode=mode, price_increment=0.5)
    vec = run_sma(market_from_records(r), 10, 40, model)
    st = SmaCrossover(SmaParams(10, 40, 0.5), venue=int(Venue.SIM), symbol=SYM, qty=0.2,
                      allow_short=mode == "long_short")
    ev = EventEngine(r, [st], model, compiled=compiled).run()
    # same fills per tick: a reversal is one order of twice the size here, two legs in the
    # vector path; two signals filling on one tick are two fills in both
    def per_tick(tick, qty, price):
        u = np.unique(tick)
        return u, np.array([qty[tick == t].sum() for t in u]), \
            np.array([price[np.flatnonzero(tick == t)[0]] for t in u])
    vt, vq, vp = per_tick(vec.fills["tick"], vec.fills["qty"], vec.fills["price"])
    et, eq, ep = per_tick(ev.fills["index"], ev.fills["qty"], ev.fills["price"])
    assert len(vt) > 100
    assert np.array_equal(et, vt) and np.allclose(eq, vq, atol=1e-12)
    assert np.array_equal(ep, vp)
    assert ev.fills["fee"].sum() == pytest.approx(vec.fills["fee"].sum(), rel=1e-12)
    # same equity at every tick, same metrics
    assert np.allclose(ev.equity, vec.equity, rtol=0, atol=1e-6)
    for k in ("final_equity", "trades", "win_rate", "exposure", "turnover", "max_drawdown",
              "sharpe"):
        assert ev.metrics[k] == pytest.approx(vec.metrics[k], rel=1e-9, abs=1e-9), k


def test_no_fill_on_the_trigger_tick_even_without_latency():
    r = tape(20_000, 5)
    r["exch_ts"] = r["mono_ts"] = 1_700_000_000_000_000_000 + np.arange(len(r)) * 1_000_000
    model = BacktestConfig(latency_ms=0.0, sizing="fixed", fixed_qty=0.1, initial_capital=1e6,
                           price_increment=0.5)
    st = SmaCrossover(SmaParams(5, 20, 0.5), venue=int(Venue.SIM), symbol=SYM, qty=0.1)
    ev = EventEngine(r, [st], model).run()
    vec = run_sma(market_from_records(r), 5, 20, model)
    assert len(ev.fills) > 50
    assert np.array_equal(ev.fills["index"], vec.fills["tick"] + 1)   # the vector path: at i
