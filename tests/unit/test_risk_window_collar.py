"""The time-window price collar (PRICE_WINDOW), on both engines (ext/risk.pyx and its twin): a
risk-increasing order priced more than window_collar_bps from the lowest or highest reference of
the last window_collar_ns is refused, even when each order sits inside the ordinary collar of a
reference that walks along with it (RELIABILITY.md check 14)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import RiskConfig
from pipeline.gateway.reasons import Reason
from pipeline.gateway.risk import engine_kwargs
from pipeline.records import TICK_DTYPE, Kind
from tests.gateway_helpers import BINANCE, LIMITS, T0, Sig, btc_rules, engines

R = Reason
MS = 1_000_000


@pytest.fixture(params=engines(), ids=["cython", "python"])
def Engine(request):
    return request.param


def make(Engine, **limits):
    kw = dict(LIMITS, collar_bps=200.0)            # the ordinary collar: ±2 %
    kw.update(limits)
    e = Engine(**kw)
    e.set_instrument(btc_rules(max_position_qty="10"))
    e.set_reference(1, 50_000.0, T0)
    return e


def walk(e, *, orders=5, step=0.019, every_ns=100 * MS, side=1):
    """Each order 1.9 % beyond the reference, then the reference follows it (a thin book our own
    orders move, or a feed walked by someone else): every order is inside the ±2 % collar."""
    sig, ref, now, out = Sig(), 50_000.0, T0, []
    for _ in range(orders):
        now += every_ns
        price = round(ref * (1 + side * step), 2)
        out.append(e.check(sig(side=side, price=price, qty=0.001, created_mono=now), now))
        ref = price
        e.set_reference(1, ref, now)
    return out


def test_walking_the_price_1_9_pct_per_order_is_refused_by_the_window_collar(Engine):
    e = make(Engine, window_collar_bps=300.0, window_collar_ns=1_000 * MS)
    got = walk(e)
    assert got[0] == R.ACCEPT                      # 1.9 % from where the window started
    assert got[1:] == [R.PRICE_WINDOW] * 4         # 3.8 %, 5.8 %, ... past the 3 % window collar


def test_without_the_window_collar_the_same_walk_passes_the_ordinary_collar(Engine):
    assert walk(make(Engine)) == [R.ACCEPT] * 5    # what the window collar is for


def test_a_walk_down_of_sells_is_refused_too(Engine):
    got = walk(make(Engine, window_collar_bps=300.0), side=-1)
    assert got[0] == R.ACCEPT and got[1:] == [R.PRICE_WINDOW] * 4


def test_the_window_forgets_references_older_than_window_collar_ns(Engine):
    e, sig = make(Engine, window_collar_bps=300.0, window_collar_ns=1_000 * MS), Sig()
    e.set_reference(1, 51_900.0, T0 + 10 * MS)     # the market moved 3.8 % within the window
    now = T0 + 20 * MS
    assert e.check(sig(price=51_900.0, qty=0.001, created_mono=now), now) == R.PRICE_WINDOW
    # the old reference (50_000 at T0) has left the window one window later; only 51_900 is left
    now = T0 + 10 * MS + 1_000 * MS
    e.set_reference(1, 51_900.0, now)
    assert e.check(sig(price=51_900.0, qty=0.001, created_mono=now), now) == R.ACCEPT


def test_a_reference_counts_for_at_least_15_16_of_the_window_and_at_most_all_of_it(Engine):
    slice_ns = 1_000 * MS // 16
    e, sig = make(Engine, window_collar_bps=300.0, window_collar_ns=1_000 * MS), Sig()
    t1 = (T0 // slice_ns + 1) * slice_ns            # a slice boundary: 51_900 seen at its start
    e.set_reference(1, 51_900.0, t1)
    e.set_reference(1, 50_000.0, t1 + 1)
    for now, want in ((t1 + 15 * slice_ns - 1, R.PRICE_WINDOW),   # < 15/16 window old: counts
                      (t1 + 16 * slice_ns, R.ACCEPT)):            # a whole window old: gone
        e.set_reference(1, 50_000.0, now - 1)      # (a slot of its own, not 51_900's)
        assert e.check(sig(price=50_000.0, qty=0.001, created_mono=now), now) == want


def test_the_boundary_is_inclusive_like_the_collar(Engine):
    e, sig = make(Engine, window_collar_bps=100.0, collar_bps=1_000.0), Sig()
    e.set_reference(1, 50_500.0, T0 + 1)           # window: lowest 50_000, highest 50_500
    now = T0 + 2
    assert e.check(sig(price=50_500.0, qty=0.001, created_mono=now), now) == R.ACCEPT  # 1 % of lo
    assert e.check(sig(price=50_500.01, qty=0.001, created_mono=now), now) == R.PRICE_WINDOW
    assert e.check(sig(price=49_995.0, qty=0.001, created_mono=now), now) == R.ACCEPT  # 1 % of hi
    assert e.check(sig(price=49_994.99, qty=0.001, created_mono=now), now) == R.PRICE_WINDOW


def test_a_reducing_order_is_judged_by_the_ordinary_collar_alone(Engine):
    e, sig = make(Engine, window_collar_bps=300.0), Sig()
    e.set_position(1, 0.01)                        # long: a SELL reduces
    e.set_reference(1, 48_000.0, T0 + 1)           # the market fell 4 % within the window
    now = T0 + 2
    assert e.check(sig(side=-1, price=48_000.0, qty=0.005, created_mono=now), now) == R.ACCEPT
    assert e.check(sig(side=1, price=48_000.0, qty=0.001, created_mono=now), now) \
        == R.PRICE_WINDOW                          # a BUY adds to the long


def _ticks(*rows):
    a = np.zeros(len(rows), dtype=TICK_DTYPE)
    for i, (kind, price, mono) in enumerate(rows):
        a[i]["kind"], a[i]["symbol"], a[i]["venue"] = int(kind), 1, BINANCE
        a[i]["price"], a[i]["mono_ts"] = price, mono
    return a


def test_a_market_order_is_judged_by_its_protection_price_against_the_window(Engine):
    e, sig = make(Engine, window_collar_bps=300.0), Sig()
    e.apply_ticks(_ticks((Kind.BID, 49_990.0, T0 + 1), (Kind.ASK, 50_010.0, T0 + 1)))
    e.apply_ticks(_ticks((Kind.BID, 51_400.0, T0 + 2), (Kind.ASK, 51_420.0, T0 + 2)))
    now = T0 + 3                                   # ask 51_420: 2.8 % over the window's low mid
    assert e.check(sig(order_type=2, qty=0.001, created_mono=now), now) == R.ACCEPT
    e.apply_ticks(_ticks((Kind.BID, 52_700.0, T0 + 4), (Kind.ASK, 52_720.0, T0 + 4)))
    now = T0 + 5                                   # ask 52_720: 5.4 % over it
    assert e.check(sig(order_type=2, qty=0.001, created_mono=now), now) == R.PRICE_WINDOW


def test_off_by_default_and_bad_limits_refused(Engine):
    e = make(Engine)
    assert e.window_collar_bps == 0.0
    for bad in (dict(window_collar_bps=-1.0), dict(window_collar_bps=float("inf")),
                dict(window_collar_bps=float("nan")), dict(window_collar_ns=15),
                dict(window_collar_ns=10**12 + 1), dict(window_collar_ns=1.5),
                dict(window_collar_bps=True)):
        with pytest.raises(ValueError):
            Engine(**dict(LIMITS, **bad))


def test_config_keys_reach_the_engine_and_are_validated():
    cfg = RiskConfig(window_collar_bps=300.0, window_collar_ms=500)
    kw = engine_kwargs(cfg)
    assert kw["window_collar_bps"] == 300.0 and kw["window_collar_ns"] == 500 * MS
    assert engine_kwargs(RiskConfig())["window_collar_bps"] == 0.0
    for bad in (dict(window_collar_bps=-1.0), dict(window_collar_bps=float("inf")),
                dict(window_collar_ms=0), dict(window_collar_ms=1_000_001)):
        with pytest.raises(ValueError):
            RiskConfig(**bad)
