"""SMA crossover: live (incremental, O(1) per tick) and vectorized (numpy), with identical signals.

The rule. Prices are mapped to integer units of `price_increment` (q = rint(price / increment);
exchange prices are exact multiples of their tick, so nothing is lost). Over the last `fast` and
`slow` trades, with integer window sums Sf and Ss, the trend is sign(Sf*slow - Ss*fast), i.e. the
sign of SMA_fast - SMA_slow computed exactly. A tie (0) keeps the previous trend. The first trend
after start is adopted silently; every later change of trend is a signal: +1 (fast crossed above:
BUY) or -1 (below: SELL). After a GAP / STALE / RESYNC_START the windows restart empty (the trend
is kept), so no signal is made until `slow` fresh trades have arrived.

Time bars (bar_ms > 0): trades fall in bars [k*bar, (k+1)*bar) of their exchange time (local time
when the venue gives none); the SMAs run over bar closes (last trade price of a bar). A bar's close
is fed when the first trade of a later bar arrives (data-driven, no timers, so live and backtest
agree); that trade is the signal's trigger. Empty bars are skipped. A gap drops the bar in
progress and restarts the windows.

Why integers: float SMAs from a running cumsum drift (the sum of 10 M BTC prices is ~6e11, whose
ulp is ~1e-4) and a sum kept by add/subtract rounds differently from one taken by cumsum
differences, so on flat stretches (fast == slow exactly) the two implementations would disagree on
ties at random. Exact integers make the live and vectorized paths agree bit for bit. The numpy and
Cython paths subtract the first price (an anchor, which changes no sign) and require
|q - q0| * fast * slow < 2**61, checked up front with a clear error; window sums are then exact
in int64 (the cumsum itself may wrap; differences mod 2**64 are still exact).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipeline.bus.signals import Signal
from pipeline.clock import LIVE
from pipeline.strategy.base import Strategy

EXACT_LIMIT = 1 << 61
Q_LIMIT = 1 << 62        # live path: |price / price_increment| at or beyond this is a bad price


@dataclass(frozen=True)
class SmaParams:
    fast: int = 20                  # fast window, trades
    slow: int = 100                 # slow window, trades (> fast)
    price_increment: float = 1e-8   # price grid; prices are rounded to it
    bar_ms: int = 0                 # 0: every trade is a point; > 0: SMAs of time-bar closes

    def __post_init__(self) -> None:
        check_windows(self.fast, self.slow)
        if self.bar_ms < 0:
            raise ValueError(f"bar_ms must be >= 0, got {self.bar_ms}")
        if not (self.price_increment > 0 and math.isfinite(self.price_increment)):
            raise ValueError(f"price_increment must be > 0, got {self.price_increment}")


def check_windows(fast: int, slow: int) -> None:
    if isinstance(fast, bool) or isinstance(slow, bool) or not (
            isinstance(fast, (int, np.integer)) and isinstance(slow, (int, np.integer))):
        raise ValueError(f"SMA windows must be integers, got fast={fast!r} slow={slow!r}")
    if fast < 1:
        raise ValueError(f"SMA fast window must be >= 1, got {fast}")
    if fast >= slow:
        raise ValueError(f"SMA fast window must be < slow window, got fast={fast} >= slow={slow}")


def quantize(prices: np.ndarray, price_increment: float) -> np.ndarray:
    """Prices as int64 units of price_increment, rint (half-even) like Python's round()."""
    p = np.asarray(prices, dtype=np.float64)
    if p.size and not np.isfinite(p).all():
        bad = int(np.flatnonzero(~np.isfinite(p))[0])
        raise ValueError(f"price at index {bad} is not finite ({p[bad]})")
    u = np.rint(p / price_increment)
    if u.size and np.abs(u).max() >= 2.0**62:
        raise ValueError(f"prices / price_increment exceed int64 range; raise price_increment "
                         f"(now {price_increment})")
    return u.astype(np.int64)


def exact_limit(fast: int, slow: int) -> int:
    """Largest |q - q0| for which the int64 window arithmetic is exact."""
    return EXACT_LIMIT // (fast * slow)


def check_range(q: np.ndarray, fast: int, slow: int, price_increment: float) -> None:
    if q.size == 0:
        return
    span = int(np.abs(q - q[0]).max())
    if span > exact_limit(fast, slow):
        raise ValueError(
            f"price range of {span} increments is too wide for exact int64 SMA sums with "
            f"windows {fast}/{slow}; use a coarser price_increment (now {price_increment})")


class SmaCore:
    """The incremental rule over integer prices: O(1) per update (two window sums and a ring)."""

    __slots__ = ("fast", "slow", "buf", "count", "sf", "ss", "trend")

    def __init__(self, fast: int, slow: int):
        check_windows(fast, slow)
        self.fast = fast
        self.slow = slow
        self.buf = [0] * slow
        self.trend = 0
        self.reset()

    def reset(self) -> None:
        """Empty the windows (after a gap); the trend is kept."""
        self.count = 0
        self.sf = 0
        self.ss = 0

    def update(self, q: int) -> int:
        """Add one price (integer units). Returns the new trend if it changed (+1/-1), else 0."""
        k = self.count
        slow = self.slow
        buf = self.buf
        if k >= slow:
            self.ss -= buf[k % slow]
        if k >= self.fast:
            self.sf -= buf[(k - self.fast) % slow]
        buf[k % slow] = q
        self.sf += q
        self.ss += q
        self.count = k + 1
        if k + 1 < slow:
            return 0
        d = self.sf * slow - self.ss * self.fast
        t = (d > 0) - (d < 0)
        if t == 0 or t == self.trend:
            return 0
        old = self.trend
        self.trend = t
        return t if old else 0


class SmaCrossover(Strategy):
    """Trade SMA crossovers of one instrument's trade prices (live, incremental)."""

    Params = SmaParams
    kind = "sma"

    def __init__(self, params: SmaParams | None = None, **kw):
        super().__init__(params, **kw)
        self.core = SmaCore(self.params.fast, self.params.slow)
        self.bad_prices = 0
        self.bar_ns = self.params.bar_ms * 1_000_000
        self._bar: int | None = None     # current bar number (time bars)
        self._bar_q = 0                  # its last price so far

    def compiled(self):
        """ext/smalive.pyx for the plain SMA (per-trade points, live clock); None for time bars,
        subclasses (their hooks are Python) or a test clock (created_mono comes from C)."""
        if type(self) is not SmaCrossover or self.bar_ns or self.clock is not LIVE:
            return None
        from pipeline import _native
        p = self.params
        kernel = self.kernel = _native.load("smalive").SmaLive(
            p.fast, p.slow, p.price_increment, symbol=self.symbol, venue=self.venue,
            strategy_id=self.strategy_id, qty=self.qty, allow_short=self.allow_short,
            ttl_ns=self.ttl_ns)
        run = kernel.process

        def on_batch(batch: np.ndarray, out: np.ndarray, ring=None, epoch: int = 0,
                     seq: int = 0) -> int:
            n = run(batch, out, ring, epoch, seq)
            # mirror the kernel's state where describe() and the hooks' users look for it
            self.position, self.suspended = kernel.position, kernel.suspended
            self.gaps, self.stales, self.bad_prices = kernel.gaps, kernel.stales, \
                kernel.bad_prices
            return n
        return on_batch

    def sync_position(self) -> None:
        super().sync_position()
        kernel = getattr(self, "kernel", None)
        if kernel is not None:
            kernel.position = self.position

    def on_gap(self, rec) -> None:
        super().on_gap(rec)
        self.core.reset()
        self._bar = None

    def on_stale(self, rec) -> None:
        super().on_stale(rec)
        self.core.reset()
        self._bar = None

    def on_trades(self, trades: np.ndarray) -> list[Signal]:
        if self.bar_ns:
            return self._on_trades_bars(trades)
        inc = self.params.price_increment
        update = self.core.update
        out: list[Signal] = []
        for p, s, m in zip(trades["price"].tolist(), trades["seq"].tolist(),
                           trades["mono_ts"].tolist()):
            try:
                q = round(p / inc)
            except (ValueError, OverflowError):     # NaN / inf: never a signal
                self.bad_prices += 1
                continue
            if not -Q_LIMIT < q < Q_LIMIT:          # absurd: beyond the kernel's int64 units
                self.bad_prices += 1
                continue
            t = update(q)
            if t:
                sig = self.target(t, s, m, p)
                if sig is not None:
                    out.append(sig)
        return out


    def _on_trades_bars(self, trades: np.ndarray) -> list[Signal]:
        inc = self.params.price_increment
        bar_ns = self.bar_ns
        update = self.core.update
        ts = np.where(trades["exch_ts"] != 0, trades["exch_ts"], trades["local_ts"])
        out: list[Signal] = []
        for p, t_ns, s, m in zip(trades["price"].tolist(), ts.tolist(), trades["seq"].tolist(),
                                 trades["mono_ts"].tolist()):
            try:
                q = round(p / inc)
            except (ValueError, OverflowError):
                self.bad_prices += 1
                continue
            bar = t_ns // bar_ns
            if self._bar is None:
                self._bar, self._bar_q = bar, q
                continue
            if bar <= self._bar:
                self._bar_q = q
                continue
            t = update(self._bar_q)              # the previous bar closed
            self._bar, self._bar_q = bar, q
            if t:
                sig = self.target(t, s, m, p)
                if sig is not None:
                    out.append(sig)
        return out


def sma_cross_signals(prices: np.ndarray, fast: int, slow: int, price_increment: float = 1e-8,
                      resets: np.ndarray | None = None, ts: np.ndarray | None = None,
                      bar_ns: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The same rule over a whole array: (indices, directions) of every crossover signal.

    `resets[i]` True means the windows restart at trade i (a gap came just before it). With
    `bar_ns` > 0 (and `ts`, sorted), the SMAs run over time-bar closes (see the module doc)."""
    check_windows(fast, slow)
    if bar_ns > 0:
        return _bar_signals(prices, fast, slow, price_increment, resets, ts, bar_ns)
    q = quantize(prices, price_increment)
    n = q.size
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int8)
    check_range(q, fast, slow, price_increment)
    q -= q[0]
    c = np.empty(n + 1, dtype=np.int64)
    c[0] = 0
    np.cumsum(q, out=c[1:])                 # may wrap: window differences stay exact
    idx = np.arange(n, dtype=np.int64)
    if resets is None:
        valid = idx[slow - 1:]
    else:
        r = np.asarray(resets, dtype=bool)
        if r.shape != q.shape:
            raise ValueError(f"resets has shape {r.shape}, prices {q.shape}")
        start = np.where(r, idx, 0)
        np.maximum.accumulate(start, out=start)
        valid = np.flatnonzero(idx - start + 1 >= slow)
    e = c[valid + 1]
    d = (e - c[valid + 1 - fast]) * slow - (e - c[valid + 1 - slow]) * fast
    t = np.sign(d).astype(np.int8)
    nz = t != 0
    t = t[nz]
    at = valid[nz]
    ch = np.flatnonzero(t[1:] != t[:-1]) + 1
    return at[ch], t[ch]


def _bar_signals(prices, fast, slow, price_increment, resets, ts, bar_ns):
    p = np.asarray(prices, dtype=np.float64)
    if ts is None or len(ts) != len(p):
        raise ValueError("time bars need a timestamp per price")
    quantize(p, price_increment)             # same errors as the per-trade rule
    n = len(p)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int8)
    bar = np.asarray(ts, dtype=np.int64) // bar_ns
    r = np.zeros(n, bool) if resets is None else np.asarray(resets, dtype=bool)
    start = r.copy()
    start[0] = True
    new_bar = np.zeros(n, bool)
    new_bar[1:] = bar[1:] > bar[:-1]
    new_bar &= ~start                          # a segment's first trade only opens a bar
    ev = np.flatnonzero(new_bar)               # trades that close the previous bar
    if len(ev) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int8)
    # an event restarts the windows if a reset happened since the previous event
    seg = np.cumsum(start)
    ev_seg = seg[ev]
    ev_reset = np.empty(len(ev), bool)
    ev_reset[0] = True
    ev_reset[1:] = ev_seg[1:] != ev_seg[:-1]
    at, d = sma_cross_signals(p[ev - 1], fast, slow, price_increment, ev_reset)
    return ev[at], d
