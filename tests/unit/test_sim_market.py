"""The synthetic tape with a fair value (`volatility` > 0) moves like a market: prices wander at
about the configured volatility, in regimes, reproducibly per seed, and the book stays sane."""
from __future__ import annotations

import math

import numpy as np

from pipeline.sim.tape import FairValue, SyntheticTape


def _run(seed: int, vol: float, seconds: float = 60.0, step_ms: int = 100):
    t = SyntheticTape(["BTCUSDT", "ETHUSDT"], seed=seed, levels=30, volatility=vol, trend_s=8.0)
    t.wanted = {b"btcusdt@trade", b"btcusdt@bookTicker"}
    t.update_tracking()
    ms, mids, out = 1_700_000_000_000, [], []
    for _ in range(int(seconds * 1000 / step_ms)):
        ms += step_ms
        t.generate(60, ms, out)
        b = t.books["BTCUSDT"]
        assert 0 < b.best_bid < b.best_ask, "crossed or empty book"
        assert len(b.bids) >= 2 and len(b.asks) >= 2
        mids.append((b.best_bid + b.best_ask) / 2e8)
    return np.array(mids), out


def test_a_fair_value_tape_moves_like_a_market_and_repeats_per_seed():
    mids, out = _run(7, 0.8)
    flat, _ = _run(7, 0.0)
    rets = np.diff(np.log(mids))
    realized = rets.std() * math.sqrt(365 * 86400 / 0.1)         # annualized from 100 ms steps
    assert 0.3 < realized < 3.0, realized                         # the order of 80 % a year
    assert np.ptp(mids) > 20 * np.ptp(flat) and np.ptp(mids) > 10.0   # dollars, not cents
    again, _ = _run(7, 0.8)
    assert np.array_equal(mids, again)
    assert not np.array_equal(mids, _run(8, 0.8)[0])
    assert any(s == b"btcusdt@trade" for s, _ in out)


def test_fair_value_regimes_switch_volatility_and_drift():
    import random
    fv = FairValue(6_183_700_000_000, 0.8, 8.0, random.Random(3))
    seen_vol, seen_drift = set(), set()
    for _ in range(20_000):                                       # ~33 min in 100 ms steps
        fv.advance(0.1)
        seen_vol.add(fv.vol_mult)
        seen_drift.add(int(math.copysign(1, fv.drift)) if fv.drift else 0)
    assert seen_vol == {0.5, 1.0, 2.5} and seen_drift == {-1, 0, 1}
