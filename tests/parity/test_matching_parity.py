"""The event backtester's matching core: the compiled kernel (ext/matching.pyx) against its
pure-Python twin (pipeline/backtest/matching_py.py) on the same inputs — method by method over
random sessions (L2 depth, best bid/ask, trades, two instruments, levels removed and cleared),
and through whole EventEngine runs (the quoting example; a strategy placing random market, limit
GTC/IOC/FOK, post-only orders, cancels and replaces on a depth session): the same answers, the
same fills, the same events, bit for bit."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pipeline._ext.matching import Matcher as CMatcher
from pipeline._ext.matching import Timeline as CTimeline
from pipeline.backtest import synth
from pipeline.backtest.events import EventEngine
from pipeline.backtest.matching_py import Matcher as PyMatcher
from pipeline.backtest.matching_py import Timeline as PyTimeline
from pipeline.config import BacktestConfig
from pipeline.records import TICK_DTYPE, Kind, Venue
from pipeline.registry import DEFAULT as REG
from pipeline.strategy import loader
from pipeline.strategy.base import Strategy

ROOT = Path(__file__).resolve().parents[2]
S1, S2 = REG.id(Venue.SIM, "BTCUSDT"), REG.id(Venue.SIM, "ETHUSDT")
KINDS = [Kind.TRADE, Kind.AGG_TRADE, Kind.BID, Kind.ASK, Kind.BOOK_BID, Kind.BOOK_ASK,
         Kind.BOOK_CLEAR, Kind.GAP]


def session(n: int, seed: int, depth: bool = True) -> np.ndarray:
    """Random records on a 0.5 grid around 100 (so prices meet resting orders' exactly)."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n, TICK_DTYPE)
    p = [0.4, 0.1, 0.1, 0.1, 0.12, 0.12, 0.01, 0.05] if depth else \
        [0.4, 0.1, 0.22, 0.22, 0.0, 0.0, 0.0, 0.06]
    r["kind"] = rng.choice([int(k) for k in KINDS], n, p=p)
    r["symbol"] = rng.choice([S1, S1, S1, S2], n)
    r["venue"] = int(Venue.SIM)
    r["price"] = 100 + rng.integers(-8, 9, n) * 0.5
    q = np.round(rng.exponential(1.0, n), 3)
    q[rng.random(n) < 0.15] = 0.0                    # level removed
    r["qty"] = q
    r["side"] = rng.choice(np.array([-1, 1], np.int8), n)
    r["exch_ts"] = 1_700_000_000_000_000_000 + np.cumsum(rng.integers(0, 3, n)) * 1_000_000
    r["mono_ts"] = r["exch_ts"]
    r["seq"] = np.arange(n)
    return r


def both(r):
    cols = (r["kind"], r["symbol"], r["price"], r["qty"], r["side"])
    return CMatcher(*cols), PyMatcher(*cols)


def norm(x):
    """NaN compares equal to NaN here; everything else as is (exact floats)."""
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    if isinstance(x, (tuple, list)):
        return [norm(v) for v in x]
    return x


def same(a, b) -> bool:
    return norm(a) == norm(b)


@pytest.mark.parametrize("depth", [True, False], ids=["l2", "bbo"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_method_answers_the_same_on_random_sessions(seed, depth):
    n = 4000
    r = session(n, seed, depth)
    c, p = both(r)
    rng = np.random.default_rng(100 + seed)
    at = 0
    handles: list[tuple[int, int]] = []
    checked = {"scan_fills": 0, "walk": 0, "add": 0, "candidates": 0}
    while at < n:
        op = rng.integers(0, 8)
        sym = int(rng.choice([S1, S2]))
        side = int(rng.choice([-1, 1]))
        px = float(100 + rng.integers(-6, 7) * 0.5)
        if op == 0:
            at = min(n, at + int(rng.integers(1, 40)))
            c.advance(sym, at)
            p.advance(sym, at)
            assert same(c.bid_ask(sym), p.bid_ask(sym)) and c.depth(sym) == p.depth(sym)
        elif op == 1:
            assert same(c.best(sym, side), p.best(sym, side))
            assert same(c.level_qty(sym, side, px), p.level_qty(sym, side, px))
        elif op == 2:
            qty = float(rng.exponential(2.0))
            lim = px if rng.random() < 0.5 else math.nan
            assert same(c.walk(sym, side, qty, lim), p.walk(sym, side, qty, lim))
            checked["walk"] += 1
        elif op in (3, 4):
            qty = float(np.round(rng.exponential(1.0), 3)) + 0.001
            q = p.level_qty(sym, side, px) if p.has_book(sym) else math.inf
            filled = float(rng.choice([0.0, qty / 2]))
            hc = c.add(sym, side, px, qty, filled, q)
            hp = p.add(sym, side, px, qty, filled, q)
            handles.append((hc, hp))
            checked["add"] += 1
        elif op == 5 and handles:
            hc, hp = handles.pop(int(rng.integers(0, len(handles))))
            c.remove(hc)
            p.remove(hp)
        elif op == 6:
            b = min(n, at + int(rng.integers(1, 600)))
            for fo in (True, False):
                kc, kp = c.next_candidate(at, b, fo), p.next_candidate(at, b, fo)
                assert kc == kp
                checked["candidates"] += kc < b
        else:
            b = min(n, at + int(rng.integers(1, 300)))
            kc, fc = c.scan(at, b)
            kp, fp = p.scan(at, b)
            assert kc == kp
            # handles are numbered alike (1, 2, ...): the fills name the same orders
            assert same(fc, fp), (fc, fp)
            if fc:
                checked["scan_fills"] += 1
                done = {h for h, _, fin in fc if fin}
                handles = [x for x in handles if x[0] not in done]
            at = kc + 1 if fc else b
        assert len(c) == len(p)
    assert all(v > 5 for v in checked.values()), checked


@pytest.mark.parametrize("seed", [1, 2])
def test_timeline_searches_and_batch_ends_agree_with_the_twin_and_numpy(seed):
    """first_ge from any lower bound is max(lo, searchsorted) (ties: the first equal time);
    batch_end gives the same end with and without resting orders, arrivals and due events."""
    r = session(3000, seed)
    t = r["mono_ts"]
    tc, tp = CTimeline(t), PyTimeline(t)
    rng = np.random.default_rng(seed)
    for _ in range(3000):
        x = int(t[0]) + int(rng.integers(-5, 7000)) * 1_000_000 // 2
        lo = int(rng.integers(-2, len(t) + 3))
        want = len(t) if lo >= len(t) else max(max(lo, 0), int(np.searchsorted(t, x, "left")))
        assert tc.first_ge(x, lo) == tp.first_ge(x, lo) == want
    c, p = both(r)
    checked = 0
    for i in range(2000):
        if i % 50 == 0:                     # resting orders come and go
            sym, side = int(rng.choice([S1, S2])), int(rng.choice([-1, 1]))
            px = float(100 + rng.integers(-6, 7) * 0.5)
            c.add(sym, side, px, 1.0, 0.0, math.inf)
            p.add(sym, side, px, 1.0, 0.0, math.inf)
            if rng.random() < 0.3:
                c.remove(i // 50)
                p.remove(i // 50)
        pos = int(rng.integers(0, len(t) - 1))
        end = min(len(t), pos + int(rng.integers(1, 64)))
        arr = int(rng.choice([-1, pos + int(rng.integers(0, 80))]))
        back = int(rng.choice([0, 1_000_000, 2_500_000]))
        due = int(rng.choice([1 << 62, int(t[pos]) + int(rng.integers(0, 40)) * 1_000_000]))
        ec = tc.batch_end(pos, end, arr, c, back, due)
        assert ec == tp.batch_end(pos, end, arr, p, back, due)
        assert pos < ec <= end
        checked += ec < end
    assert checked > 200


@pytest.mark.parametrize("cls", [CTimeline, PyTimeline], ids=["compiled", "python"])
def test_timeline_refuses_records_out_of_time_order(cls):
    t = np.array([5, 6, 6, 4, 7], np.int64)
    with pytest.raises(ValueError, match="not in time order.*record 3"):
        cls(t)


class RandomOrders(Strategy):
    """Seeded random market / limit GTC, IOC, FOK / post-only orders, cancels and replaces."""
    reactive = True

    def __init__(self, seed, **kw):
        super().__init__(venue=int(Venue.SIM), symbol=S1, **kw)
        self.rng = np.random.default_rng(seed)
        self.last = 100.0

    def on_trades(self, trades):
        self.last = float(trades["price"][-1])
        return self._act(int(trades["seq"][-1]))

    def on_quotes(self, quotes):
        return self._act(int(quotes["seq"][-1]))

    def on_book(self, levels):
        return self._act(int(levels["seq"][-1]))

    def _act(self, seq):
        u = self.rng.random()
        side = 1 if self.rng.random() < 0.5 else -1
        px = round(self.last + self.rng.integers(-4, 5) * 0.5, 1)
        qty = float(np.round(self.rng.exponential(0.5), 3)) + 0.001
        working = [o for o in self.orders.values() if o.status == "ACCEPTED"]
        if u < 0.05:
            return [self.market(side, qty, trigger_seq=seq)]
        if u < 0.20:
            tif = ("GTC", "GTC", "IOC", "FOK")[int(self.rng.integers(0, 4))]
            return [self.limit(side, qty, px, tif, trigger_seq=seq)]
        if u < 0.30:
            return [self.post_only(side, qty, px, trigger_seq=seq)]
        if u < 0.36 and working:
            return [self.cancel(working[0].client_id, trigger_seq=seq)]
        if u < 0.42 and working:
            return [self.replace(working[-1].client_id, px, trigger_seq=seq)]
        return None


def engine_run(recs, make, matching, **model):
    base = dict(fee_taker_bps=7.5, fee_maker_bps=1.0, slippage_bps=1.0, latency_ms=1.0,
                initial_capital=1e6, sizing="fixed", mode="long_short")
    base.update(model)
    st = make()
    res = EventEngine(recs, [st], BacktestConfig(**base), matching=matching).run()
    return st, res


@pytest.mark.parametrize("seed", [4, 5])
def test_engine_runs_are_identical_with_either_matcher_random_orders_on_l2(seed):
    r = session(6000, seed, depth=True)
    r["symbol"] = S1
    runs = [engine_run(r, lambda: RandomOrders(seed), m) for m in ("compiled", "python")]
    (sc, rc), (sp, rp) = runs
    assert len(rc.fills) > 50 and rc.metrics["maker_fills"] > 10
    assert rc.fills.tobytes() == rp.fills.tobytes()
    assert rc.events == rp.events and rc.rejects == rp.rejects
    assert rc.stats == rp.stats
    assert sc.seq == sp.seq and sc.net_qty == sp.net_qty


def test_engine_runs_are_identical_with_either_matcher_quoting_example():
    Quoter = loader.resolve("examples/strategies/quoting.py:Quoter", ROOT)
    l2 = synth.l2_session(30_000, seed=7)
    sid = REG.id(Venue.SIM, "BTCUSDT")

    def make():
        return Quoter(Quoter.Params(size=0.01, max_inventory=0.05, tick=0.01),
                      venue=int(Venue.SIM), symbol=sid)
    (sc, rc), (sp, rp) = [engine_run(l2, make, m, mode="long_flat", fee_maker_bps=0.0)
                          for m in ("compiled", "python")]
    assert len(rc.fills) > 100
    assert rc.fills.tobytes() == rp.fills.tobytes()
    assert rc.events == rp.events and rc.rejects == rp.rejects and rc.stats == rp.stats
    assert sc.requotes == sp.requotes > 100
