"""Seeded synthetic record sessions for tests, examples and benchmarks (not market models).

`trades(n)`: TRADE records of one instrument on a log-normal walk, one per ms.
`l2_session(n)`: an L2-style session: best bid / ask (BID / ASK) moving on a tick grid, trades
at the touch with a random aggressor, in the collector's record layout.
"""
from __future__ import annotations

import numpy as np

from pipeline.records import TICK_DTYPE, Kind, Side, Venue
from pipeline.registry import DEFAULT as REG

T0 = 1_700_000_000_000_000_000


def trades(n: int, seed: int = 1, venue: Venue = Venue.SIM, symbol: str = "BTCUSDT",
           step_ns: int = 1_000_000, vol: float = 1e-4, chunk: int = 1 << 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = np.zeros(n, TICK_DTYPE)
    r["kind"] = int(Kind.TRADE)
    r["venue"] = int(venue)
    r["symbol"] = REG.id(venue, symbol)
    level = np.log(30_000.0)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        s = np.cumsum(rng.normal(0.0, vol, hi - lo)) + level
        level = float(s[-1])
        r["price"][lo:hi] = np.round(np.exp(s), 2)
        r["side"][lo:hi] = rng.choice(np.array([-1, 1], np.int8), hi - lo)
    r["qty"] = 0.01
    r["exch_ts"] = T0 + np.arange(n, dtype=np.int64) * step_ns
    r["seq"] = np.arange(n)
    r["mono_ts"] = r["exch_ts"]
    return r


def l2_session(n: int, seed: int = 2, venue: Venue = Venue.SIM, symbol: str = "BTCUSDT",
               tick: float = 0.01, trade_share: float = 0.3, step_ns: int = 1_000_000
               ) -> np.ndarray:
    """About n records: quote updates (a BID and an ASK record, as one bookTicker message
    makes) and trades at the touch with a random aggressor."""
    rng = np.random.default_rng(seed)
    sid = REG.id(venue, symbol)
    m = max(1, int(n / (2 - trade_share)))             # events: quotes give 2 records
    is_trade = rng.random(m) < trade_share
    bid_t = 3_000_000 + np.cumsum(np.where(is_trade, 0, rng.choice([-1, 0, 0, 1], m)))
    spread = rng.choice([1, 1, 1, 2], m)
    side = rng.choice(np.array([int(Side.BUY), int(Side.SELL)], np.int8), m)
    reps = np.where(is_trade, 1, 2)
    ev = np.repeat(np.arange(m), reps)
    first = np.concatenate(([True], ev[1:] != ev[:-1]))
    k = len(ev)
    r = np.zeros(k, TICK_DTYPE)
    tr = is_trade[ev]
    r["kind"] = np.where(tr, int(Kind.TRADE), np.where(first, int(Kind.BID), int(Kind.ASK)))
    r["venue"] = int(venue)
    r["symbol"] = sid
    bid = bid_t[ev] * tick
    ask = (bid_t[ev] + spread[ev]) * tick
    px = np.where(tr, np.where(side[ev] == int(Side.BUY), ask, bid),
                  np.where(first, bid, ask))
    r["price"] = np.round(px, 8)
    r["qty"] = np.where(tr, rng.exponential(0.02, k), rng.exponential(0.5, k)) + 1e-3
    r["side"] = np.where(tr, side[ev], 0)
    r["exch_ts"] = T0 + ev.astype(np.int64) * step_ns
    r["seq"] = np.arange(k)
    r["mono_ts"] = r["exch_ts"]
    return r
