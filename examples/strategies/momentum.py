r"""Momentum / breakout on trades, vectorised: one batch of records is a handful of numpy calls;
a batch of up to SMALL trades (live, a record or two) takes one plain loop instead (`_few`: a
dozen numpy calls cold after the process's wait for the ring cost ~5x more; same result).

Rule: over the last `lookback` trades the return r = p[i] / p[i - lookback] - 1. Above
`threshold_bps` the strategy wants to be long, below -threshold_bps flat (short with
allow_short); in between it keeps what it wanted. Every change of that wish is one MARKET order
(`Strategy.target`, one unit of `qty`). After a GAP / STALE / RESYNC the window restarts empty.

    [[strategy.instances]]
    kind = "examples/strategies/momentum.py:Momentum"     # relative to the config file
    params = { lookback = 200, threshold_bps = 5.0 }

    scripts/backtest.py --data ticks.npy --strategy examples/strategies/momentum.py:Momentum \
        --param lookback=200 --param threshold_bps=5
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from pipeline.strategy import Strategy

SMALL = 32          # batches up to this many trades take the plain loop (`_few`)


@dataclass(frozen=True)
class MomentumParams:
    lookback: int = 200            # trades
    threshold_bps: float = 5.0     # |return over lookback| that counts as a move

    def __post_init__(self) -> None:
        if self.lookback < 1:
            raise ValueError(f"lookback must be >= 1, got {self.lookback}")
        if not self.threshold_bps >= 0:
            raise ValueError(f"threshold_bps must be >= 0, got {self.threshold_bps}")


class Momentum(Strategy):
    Params = MomentumParams
    kind = "momentum"

    def __init__(self, params=None, **kw):
        super().__init__(params, **kw)
        self.win: deque = deque(maxlen=self.params.lookback)   # the last `lookback` prices
        self.wish = 0                          # +1 long, -1 down, 0 nothing yet
        self.bad_prices = 0
        self.thr = self.params.threshold_bps / 1e4

    def on_gap(self, rec) -> None:
        super().on_gap(rec)
        self.win.clear()

    def on_stale(self, rec) -> None:
        super().on_stale(rec)
        self.win.clear()

    def on_trades(self, trades):
        if len(trades) <= SMALL:
            return self._few(trades)
        p = trades["price"]
        ok = np.isfinite(p) & (p > 0)
        if not ok.all():
            self.bad_prices += int((~ok).sum())
            trades, p = trades[ok], p[ok]
        lb = self.params.lookback
        win = self.win
        full = np.concatenate((np.array(win, np.float64), p)) if len(win) else p
        m = len(full) - lb                      # trades of this batch with a full window
        win.clear()
        win.extend(full[-lb:].tolist())
        if m <= 0:
            return []
        r = full[lb:] / full[:m] - 1.0          # return over lookback, per trade with a window
        thr = self.thr
        sig = (r > thr).astype(np.int8) - (r < -thr).astype(np.int8)
        nz = np.flatnonzero(sig)
        if len(nz) == 0:
            return []
        wish = sig[nz]
        change = np.flatnonzero(np.diff(np.concatenate(([self.wish], wish))) != 0)
        self.wish = int(wish[-1])
        if len(change) == 0:
            return []
        off = len(p) - m                        # index in `trades` of r[0]
        at = nz[change] + off
        out = []
        seqs, monos, prices = trades["seq"], trades["mono_ts"], trades["price"]
        for i, d in zip(at.tolist(), wish[change].tolist()):
            sig_ = self.target(d, int(seqs[i]), int(monos[i]), float(prices[i]))
            if sig_ is not None:
                out.append(sig_)
        return out


    def _few(self, trades):
        """The same rule over a few records as one plain loop (the live path: a batch is a
        record or two, and a dozen numpy calls, cold after a wait, cost more than the loop).
        Same floating-point operations as the vectorised pass, same orders."""
        win, thr, lb = self.win, self.thr, self.params.lookback
        out = None
        for i, p in enumerate(trades["price"].tolist()):
            if not 0.0 < p < math.inf:
                self.bad_prices += 1
                continue
            if len(win) == lb:
                r = p / win[0] - 1.0
                s = 1 if r > thr else (-1 if r < -thr else 0)
                if s and s != self.wish:
                    self.wish = s
                    sig = self.target(s, int(trades["seq"][i]), int(trades["mono_ts"][i]), p)
                    if sig is not None:
                        if out is None:
                            out = []
                        out.append(sig)
            win.append(p)
        return out or []


def python_loop(trades: np.ndarray, lookback: int, threshold_bps: float, symbol: int | None = None
                ) -> list[tuple[int, int]]:
    """The same rule as a plain per-tick Python loop, the way a per-record `on_tick` strategy
    runs it (the benchmark's baseline and the tests' reference): per record it reads the fields
    an order needs (kind, symbol, seq, mono_ts, price), skips what is not a usable trade of its
    instrument (`symbol`: default the first record's), keeps its own
    window of the last `lookback` prices (a deque; no look-back into the whole history) and on a
    change of wish builds the order's fields. Returns (record index, new direction) of every
    change of wish."""
    thr = threshold_bps / 1e4
    out = []
    wish = 0
    win: deque = deque(maxlen=lookback)
    mine = int(trades["symbol"][0]) if symbol is None else int(symbol)
    cols = zip(trades["kind"].tolist(), trades["symbol"].tolist(), trades["seq"].tolist(),
               trades["mono_ts"].tolist(), trades["price"].tolist())
    for i, (kind, sym, seq, mono, p) in enumerate(cols):
        if (kind != 1 and kind != 2) or sym != mine or not 0.0 < p < math.inf:
            continue
        if len(win) == lookback:
            r = p / win[0] - 1.0
            s = 1 if r > thr else (-1 if r < -thr else 0)
            if s and s != wish:
                wish = s
                order = (seq, mono, p, s)          # what target() would be given
                out.append((i, order[3]))
        win.append(p)
    return out
