"""The backtest engine three ways: the Cython one-pass kernel, its vectorized numpy twin, and an
independent plain per-tick loop written here from the documented model. Equity agrees to 1e-9;
the kernel and its twin agree bit for bit (seeded cases and hypothesis-generated inputs)."""
from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline._native import load
from pipeline.backtest import kernel_py
from pipeline.backtest import metrics as M
from pipeline.backtest.data import market_from_arrays
from pipeline.backtest.engine import run_sma
from pipeline.config import BacktestConfig

pytestmark = pytest.mark.timeout(120)


def plain_loop(price, ts, reset, fast, slow, inc, short, fee, slip, lat, fixed, size, capital,
               bar_ns=0, hs=None):
    """Per tick: exact integer SMAs (Python ints, deques), a FIFO of signals acting at the first
    tick >= ts + latency, close-then-open fills with slippage and fees, equity = cash + qty*p.
    With bar_ns, the SMA input is each time bar's last price, taken when a later bar starts."""
    wf, ws = deque(), deque()
    sf = ss = 0
    trend = 0
    queue = deque()
    cash, qty, unit, open_eq = capital, 0.0, 0, capital
    trades = wins = 0
    eq_out = np.empty(len(price))
    bar = bar_q = None

    def fill(dq, p):
        nonlocal cash
        s = slip + (float(hs[j]) if hs is not None else 0.0)
        pf = p * (1.0 + s) if dq > 0 else p * (1.0 - s)
        cash -= dq * pf
        cash -= abs(dq) * pf * fee

    for j in range(len(price)):
        p, t = float(price[j]), int(ts[j])
        if reset is not None and reset[j]:
            wf.clear()
            ws.clear()
            sf = ss = 0
            bar = None
        q = round(p / inc)
        point = q
        if bar_ns:
            b = t // bar_ns
            if bar is None or b == bar:
                point = None
            else:
                point = bar_q
            if bar is None or b != bar:
                bar = b
            bar_q = q
        if point is not None:
            wf.append(point)
            ws.append(point)
            sf += point
            ss += point
            if len(wf) > fast:
                sf -= wf.popleft()
            if len(ws) > slow:
                ss -= ws.popleft()
        if point is not None and len(ws) == slow:
            d = sf * slow - ss * fast
            tr = (d > 0) - (d < 0)
            if tr and tr != trend:
                if trend:
                    queue.append((t + lat, tr))
                trend = tr
        while queue and queue[0][0] <= t:
            _, direction = queue.popleft()
            target = direction if (direction > 0 or short) else 0
            if target == unit:
                continue
            if unit:
                fill(-qty, p)
                qty, unit = 0.0, 0
                trades += 1
                wins += cash - open_eq > 0
            if target:
                s_in = slip + (float(hs[j]) if hs is not None else 0.0)
                amount = size if fixed else size * cash / (p * (1 + s_in) * (1 + fee))
                if amount > 0:
                    open_eq = cash
                    qty = target * amount
                    fill(qty, p)
                    unit = target
        eq_out[j] = cash + qty * p
    return eq_out, trades, wins


def random_case(rng, n):
    price = np.round(100 * np.exp(np.cumsum(rng.normal(0, 2e-3, n))), 2)
    ts = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(0, 3_000_000, n)).astype(np.int64)
    reset = (rng.random(n) < 0.003).astype(np.uint8)
    model = BacktestConfig(
        fee_taker_bps=float(rng.uniform(0, 20)), slippage_bps=float(rng.uniform(0, 5)),
        half_spread_bps=float(rng.uniform(0, 3)), latency_ms=float(rng.choice([0, 1, 5, 40])),
        mode=str(rng.choice(["long_flat", "long_short"])),
        sizing=str(rng.choice(["fraction", "fixed"])), fraction=float(rng.uniform(0.2, 1.5)),
        fixed_qty=float(rng.uniform(0.1, 50)), period_s=float(rng.choice([0.01, 0.5, 60])),
        price_increment=0.01)
    fast = int(rng.integers(1, 15))
    bar_ms = int(rng.choice([0, 0, 2, 9]))
    m = market_from_arrays(price, ts, reset)
    if rng.random() < 0.5:                                  # per-tick half-spread from quotes
        m.half_spread = rng.uniform(0, 5e-4, n)
        model = dataclasses.replace(model, spread="quotes")
    return m, fast, fast + int(rng.integers(1, 60)), model, bar_ms


@pytest.mark.parametrize("seed", range(16))
def test_engine_equals_plain_loop_and_twin(seed):
    rng = np.random.default_rng(100 + seed)
    m, fast, slow, model, bar_ms = random_case(rng, int(rng.integers(4_000, 12_000)))
    a = run_sma(m, fast, slow, model, backend="cython", bar_ms=bar_ms)
    b = run_sma(m, fast, slow, model, backend="python", bar_ms=bar_ms)
    eq, trades, wins = plain_loop(
        m.price, m.ts, m.reset, fast, slow, 0.01, model.mode == "long_short",
        model.fee_taker_bps / 1e4,
        (model.slippage_bps + (model.half_spread_bps if model.spread == "constant" else 0)) / 1e4,
        int(round(model.latency_ms * 1e6)), model.sizing == "fixed",
        model.fixed_qty if model.sizing == "fixed" else model.fraction, model.initial_capital,
        bar_ms * 1_000_000, m.half_spread if model.spread == "quotes" else None)
    assert a.stats["n_fills"] > (2 if bar_ms else 10)
    np.testing.assert_allclose(a.equity, eq, rtol=0, atol=1e-9 * model.initial_capital)
    np.testing.assert_allclose(b.equity, eq, rtol=0, atol=1e-9 * model.initial_capital)
    assert (a.stats["trades"], a.stats["wins"]) == (trades, wins)
    # the twin is the same computation: identical bits, identical statistics and fills
    assert np.array_equal(a.equity, b.equity) and np.array_equal(a.samples, b.samples)
    for k in a.stats:
        assert a.stats[k] == pytest.approx(b.stats[k], rel=1e-12, abs=1e-12), k
    for k in a.fills:
        assert np.array_equal(a.fills[k], b.fills[k]), k
    # in-pass drawdown statistics equal the metric computed from the curve
    dd, dur = M.max_drawdown(a.equity, m.ts, model.initial_capital)
    assert a.stats["max_drawdown"] == pytest.approx(dd, rel=1e-12, abs=1e-15)
    assert a.stats["max_drawdown_duration_ns"] == dur


def test_latency_fills_on_first_tick_at_or_after():
    # prices: flat, a rise (fast crosses above), then a fall; one tick per ms
    up = [100.0] * 6 + [101.0, 102.0, 103.0, 104.0] + [90.0] * 6 + [95.0, 110.0, 120.0, 130.0]
    ts = np.arange(len(up), dtype=np.int64) * 1_000_000
    m = market_from_arrays(np.array(up), ts)
    base = dict(fee_taker_bps=0, slippage_bps=0, mode="long_short", price_increment=0.01)
    r0 = run_sma(m, 1, 3, BacktestConfig(latency_ms=0, **base))
    r3 = run_sma(m, 1, 3, BacktestConfig(latency_ms=2.5, **base))
    assert r0.stats["n_signals"] == r3.stats["n_signals"] >= 1
    assert np.array_equal(r3.fills["signal"], r0.fills["signal"])
    assert np.array_equal(r0.fills["tick"], r0.fills["signal"])
    assert np.array_equal(r3.fills["tick"], r3.fills["signal"] + 3)   # first tick >= +2.5 ms



@settings(max_examples=120, deadline=None)
@given(qs=st.lists(st.integers(1, 6), min_size=1, max_size=80),
       dts=st.lists(st.integers(0, 3), min_size=80, max_size=80),
       resets=st.lists(st.booleans(), min_size=80, max_size=80),
       fast=st.integers(1, 4), extra=st.integers(1, 6), bar_ns=st.sampled_from([0, 0, 2, 5]),
       short=st.booleans(), fixed=st.booleans(), lat=st.sampled_from([0, 1, 4]),
       period=st.sampled_from([1, 3, 50]), spread=st.booleans())
def test_kernel_equals_twin_on_random_inputs(qs, dts, resets, fast, extra, bar_ns, short,
                                             fixed, lat, period, spread):
    n = len(qs)
    price = np.asarray(qs, dtype=np.float64) * 0.5
    ts = np.cumsum(np.asarray(dts[:n], dtype=np.int64))
    reset = np.asarray(resets[:n], dtype=np.uint8)
    hs = (np.arange(n) % 3) * 1e-4 if spread else np.empty(0)
    need = max(1, (int(ts[-1]) - int(ts[0]) + period - 1) // period) + 1
    outs = []
    for fn in (load("backtest").sma_backtest, kernel_py.sma_backtest):
        samples, equity = np.empty(need), np.empty(n)
        stats, fills = fn(price, ts, reset, fast, fast + extra, 0.5, bar_ns, short, 1e-3, 2e-4,
                          hs, lat, fixed, 0.7, 100.0, period, samples, equity)
        outs.append((stats, fills, samples, equity))
    (sa, fa, pa, ea), (sb, fb, pb, eb) = outs
    assert np.array_equal(ea, eb) and np.array_equal(pa, pb)
    for k in fa:
        assert np.array_equal(fa[k], fb[k]), k
    for k in sa:
        assert sa[k] == pytest.approx(sb[k], rel=1e-12, abs=1e-12), k
