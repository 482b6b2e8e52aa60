"""The live SMA strategy (incremental, per tick, batches of ring records) and the vectorized rule
(numpy, whole arrays) produce exactly the same signals: on recorded Binance trades and on
synthetic data full of ties, with gaps, stale markers, other instruments and random batch splits."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.backtest.data import market_from_records, read_csv
from pipeline.records import TICK_DTYPE, Kind, Venue
from pipeline.strategy.sma import SmaCore, SmaCrossover, SmaParams, sma_cross_signals

pytestmark = pytest.mark.timeout(60)
SYM, OTHER = 5, 9


def live_signals(recs: np.ndarray, params: SmaParams, allow_short: bool, rng) -> list[tuple]:
    s = SmaCrossover(params, venue=int(Venue.SIM), symbol=SYM, qty=1.0, allow_short=allow_short)
    s.start()
    out = []
    i = 0
    while i < len(recs):                               # random batch boundaries
        k = int(rng.integers(1, 700))
        out += s.on_ticks(recs[i:i + k])
        i += k
    s.stop()
    return [(x.trigger_seq, x.side, x.qty) for x in out]


def vector_signals(recs: np.ndarray, params: SmaParams, allow_short: bool) -> list[tuple]:
    m = market_from_records(recs, symbol=SYM, venue=int(Venue.SIM))
    trades = np.flatnonzero(np.isin(recs["kind"], (Kind.TRADE, Kind.AGG_TRADE))
                            & (recs["symbol"] == SYM))
    at, d = sma_cross_signals(m.price, params.fast, params.slow, params.price_increment,
                              m.reset if len(m.reset) else None, ts=m.ts,
                              bar_ns=params.bar_ms * 1_000_000)
    out, pos = [], 0
    for i, t in zip(at.tolist(), d.tolist()):
        tgt = t if (t > 0 or allow_short) else 0
        if tgt != pos:
            out.append((int(recs["seq"][trades[i]]), 1 if tgt > pos else -1, float(abs(tgt - pos))))
            pos = tgt
    return out


def to_records(price: np.ndarray, rng, controls: float = 0.0, others: float = 0.0) -> np.ndarray:
    n = len(price)
    r = np.zeros(n, TICK_DTYPE)
    r["seq"] = np.arange(n)
    r["kind"] = Kind.TRADE
    r["venue"] = Venue.SIM
    r["symbol"] = SYM
    r["price"] = price
    r["exch_ts"] = 1 + np.cumsum(rng.integers(0, 1_000_000, n))   # ~0.5 ms apart, ties
    r["mono_ts"] = 10 + np.arange(n)
    if others:
        r["symbol"][rng.random(n) < others] = OTHER
    if controls:
        c = np.flatnonzero(rng.random(n) < controls)
        r["kind"][c] = rng.choice([Kind.GAP, Kind.STALE, Kind.RESYNC_START, Kind.HEARTBEAT,
                                   Kind.RESYNC_DONE], len(c))
        r["symbol"][c] = rng.choice([0, SYM, OTHER], len(c))
    return r


@pytest.mark.parametrize("bar_ms", [0, 3])
@pytest.mark.parametrize("allow_short", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_parity_synthetic_with_gaps_and_ties(seed, allow_short, bar_ms):
    rng = np.random.default_rng(seed)
    n = 30_000
    steps = rng.choice([-1, 0, 0, 0, 1], n)             # long flat stretches: many exact ties
    price = np.round(1000 + np.cumsum(steps) * 0.25, 2)
    recs = to_records(price, rng, controls=0.002, others=0.2)
    params = SmaParams(fast=int(rng.integers(2, 15)), slow=int(rng.integers(16, 80)),
                       price_increment=0.25, bar_ms=bar_ms)
    live = live_signals(recs, params, allow_short, rng)
    assert len(live) > 50
    assert live == vector_signals(recs, params, allow_short)


@pytest.mark.parametrize("name,inc", [
    ("binance_spot_BTCUSDT_trades_2024-08-08T235415Z_2024-08-09T000505Z.csv", 0.01),
    ("binance_spot_ETHUSDT_trades_2024-08-08T235415Z_2024-08-09T000505Z.csv", 0.01),
    ("XRPETH-aggTrades-2019-10-11_2019-10-13.csv", 1e-8),
])
@pytest.mark.parametrize("fast,slow,bar_ms", [(5, 20, 0), (20, 100, 0), (3, 10, 1000)])
def test_parity_recorded(vectors, name, inc, fast, slow, bar_ms):
    recs = read_csv(vectors / "ticks" / name)
    recs["venue"] = Venue.SIM
    recs["symbol"] = SYM
    rng = np.random.default_rng(fast)
    gaps = rng.choice(len(recs), 3, replace=False)
    recs["kind"][gaps] = Kind.GAP                        # outages are data too
    params = SmaParams(fast, slow, inc, bar_ms)
    live = live_signals(recs, params, True, rng)
    assert len(live) > 5
    assert live == vector_signals(recs, params, True)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=120), st.integers(1, 6),
       st.integers(1, 10), st.lists(st.integers(0, 119), max_size=4))
def test_parity_tiny_integer_prices(qs, fast, extra, reset_at):
    slow = fast + extra
    p = np.asarray(qs, dtype=np.float64)
    resets = np.zeros(len(p), bool)
    resets[[i for i in reset_at if i < len(p)]] = True
    core = SmaCore(fast, slow)
    live = []
    for i, q in enumerate(qs):
        if resets[i]:
            core.reset()
        t = core.update(q)
        if t:
            live.append((i, t))
    at, d = sma_cross_signals(p, fast, slow, 1.0, resets)
    assert live == list(zip(at.tolist(), d.tolist()))


def test_vectorized_rejects_bad_input():
    with pytest.raises(ValueError, match="fast=5 >= slow=5"):
        sma_cross_signals(np.ones(10), 5, 5)
    with pytest.raises(ValueError, match="not finite"):
        sma_cross_signals(np.array([1.0, np.nan, 2.0]), 1, 2)
    with pytest.raises(ValueError, match="too wide"):
        sma_cross_signals(np.array([1.0, 1e6]), 1000, 2000, 1e-8)
    with pytest.raises(ValueError, match="must be >= 1"):
        SmaParams(fast=0, slow=3)


def _compiled_vs_python(recs: np.ndarray, params: SmaParams, allow_short: bool, symbol: int,
                        rng) -> None:
    """ext/smalive.pyx against its twin, the Python path, over the same random batch splits:
    every signal field (created_mono aside: it is each path's own clock) and the end state."""
    from pipeline.bus.signals import from_array
    from pipeline.records import SIGNAL_DTYPE
    kw = dict(venue=int(Venue.SIM), symbol=symbol, qty=0.25, allow_short=allow_short,
              strategy_id=4, ttl_ns=123)
    py, c = SmaCrossover(params, **kw), SmaCrossover(params, **kw)
    py.start()
    c.start()
    fast = c.compiled()
    assert fast is not None
    out = np.zeros(800, dtype=SIGNAL_DTYPE)
    got_py, got_c = [], []
    i = 0
    while i < len(recs):
        k = int(rng.integers(1, 700))
        got_py += py.on_ticks(recs[i:i + k])
        n = fast(np.ascontiguousarray(recs[i:i + k]), out)
        got_c += from_array(out[:n])
        i += k

    def key(s):
        return s._replace(created_mono=0, price=0.0 if np.isnan(s.price) else s.price)
    assert [key(s) for s in got_c] == [key(s) for s in got_py]
    assert all(np.isnan(s.price) and s.created_mono > 0 for s in got_c)
    assert (c.position, c.suspended, c.gaps, c.stales, c.bad_prices) == \
        (py.position, py.suspended, py.gaps, py.stales, py.bad_prices)
    assert (c.kernel.trend, c.kernel.count) == (py.core.trend, py.core.count)
    return got_py


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("allow_short", [False, True])
def test_compiled_live_kernel_equals_the_python_path(seed, allow_short):
    rng = np.random.default_rng(seed)
    price = np.round(100 + np.cumsum(rng.integers(-2, 3, 30_000)) * 0.5, 1)
    recs = to_records(price, rng, controls=0.003, others=0.2)
    bad = rng.choice(len(recs), 20, replace=False)      # NaN, inf, absurd: bad prices
    recs["price"][bad[:7]] = np.nan
    recs["price"][bad[7:14]] = np.inf
    recs["price"][bad[14:]] = 1e30
    recs["kind"][rng.choice(len(recs), 30, replace=False)] = Kind.STALE
    params = SmaParams(fast=3, slow=8, price_increment=0.5)
    sigs = _compiled_vs_python(recs, params, allow_short, SYM, rng)
    assert len(sigs) > 50
    _compiled_vs_python(recs, params, allow_short, 0, rng)    # a strategy on every instrument


def test_compiled_kernel_is_used_only_where_it_is_the_same_strategy():
    from pipeline.clock import TestClock
    p = SmaParams(2, 5, 1.0)
    assert SmaCrossover(p).compiled() is not None
    assert SmaCrossover(SmaParams(2, 5, 1.0, bar_ms=100)).compiled() is None   # time bars
    assert SmaCrossover(p, clock=TestClock()).compiled() is None             # a test clock

    class Sub(SmaCrossover):                      # its hooks are Python: no kernel
        pass
    assert Sub(p).compiled() is None


def test_compiled_kernel_publishes_numbered_signals_into_the_signal_ring(shm_name):
    """Given the sender's signal ring and numbering, the kernel numbers each signal and publishes
    it as it is made: the ring then holds exactly the records it returned, numbered on."""
    from pipeline.bus.ring import SignalRing, TickRing
    from pipeline.bus.signals import from_array
    from pipeline.records import SIGNAL_DTYPE
    rng = np.random.default_rng(5)
    recs = to_records(np.round(100 + np.cumsum(rng.integers(-2, 3, 5_000)) * 0.5, 1), rng)
    s = SmaCrossover(SmaParams(3, 8, 0.5), venue=int(Venue.SIM), symbol=SYM, qty=1.0,
                     allow_short=True)
    s.start()
    fast = s.compiled()
    out = np.zeros(len(recs), dtype=SIGNAL_DTYPE)
    with SignalRing.create(shm_name, 4096) as ring:
        w = ring.writer()
        r = ring.reader(start=0, max_batch=4096)
        n = fast(recs, out, ring.core, 77, 41)
        assert n > 20 and s.kernel.seq == 41 + n
        got = r.poll()
        assert len(got) == n
        sent = from_array(out[:n])
        assert [x.seq for x in sent] == list(range(42, 42 + n)) and {x.epoch for x in sent} == {77}
        assert got["signal"].tobytes() == out[:n].tobytes()
        w.close()
        with TickRing.create(shm_name + "t", 8) as ticks:      # 64-byte slots: refused
            with pytest.raises(ValueError, match="not a signal ring"):
                fast(recs[:1], out, ticks.core, 1, 0)
