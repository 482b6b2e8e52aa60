"""The event backtester's matching core in pure Python: the twin of ext/matching.pyx (the
compiled kernel; ext/matching.pxd is its table of contents). Same class, same methods, same
results on the same inputs (tests/parity/test_matching_parity.py runs both).

`Matcher(kind, symbol, price, qty, aside)` over one run's records (TICK_DTYPE columns) holds:

  books     one per instrument, from its BID/ASK/BOOK_BID/BOOK_ASK/BOOK_CLEAR records, advanced
            lazily to a record index (`advance`); `best`, `level_qty`, `walk` read it
  resting   the orders resting at the venue, in arrival order (`add` → handle, `remove`), each
            with its queue ahead (pipeline/backtest/exchange.py states the model)
  scan      `scan(a, b)` applies records [a, b) to the resting orders in record order (queue
            updates and fills) and stops after the first record that filled any: (k, [(handle,
            qty, done), ...]) in resting order, or (b, None). A done order is removed.
  next_candidate(a, b, fills_only=True)  the first record in [a, b) that could fill a resting
            order (a trade through its price, or at it with the opposite aggressor; the queue is
            not looked at), b if none: where the engine ends a batch.

The account, events and risk stay in pipeline/backtest/exchange.py (Exchange), which drives
either implementation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pipeline.records import Kind

K_TRADE, K_AGG, K_BID, K_ASK = int(Kind.TRADE), int(Kind.AGG_TRADE), int(Kind.BID), int(Kind.ASK)
K_BB, K_BA, K_CLR = int(Kind.BOOK_BID), int(Kind.BOOK_ASK), int(Kind.BOOK_CLEAR)
BOOK_KINDS = (K_BID, K_ASK, K_BB, K_BA, K_CLR)
INF = math.inf
SMALL_SPAN = 256                     # shorter spans: a plain loop beats a dozen numpy calls


@dataclass
class Book:
    """One instrument's book from its records, advanced lazily to a record index."""
    idx: np.ndarray                      # record indices of its BID/ASK/BOOK_* records
    pos: int = 0                         # next entry of idx to apply
    bids: dict = field(default_factory=dict)
    asks: dict = field(default_factory=dict)
    bb: float = math.nan                 # best bid / ask from BID/ASK records
    bbq: float = 0.0
    ba: float = math.nan
    baq: float = 0.0
    depth: bool = False                  # BOOK_* records seen

    def advance(self, recs_k, recs_p, recs_q, upto: int) -> None:
        idx = self.idx
        hi = int(np.searchsorted(idx, upto, "left"))
        if hi <= self.pos:
            return
        sel = idx[self.pos:hi]
        self.pos = hi
        for k, p, q in zip(recs_k[sel].tolist(), recs_p[sel].tolist(), recs_q[sel].tolist()):
            if k == K_BB or k == K_BA:
                self.depth = True
                if p != p:
                    continue                 # no level at NaN (the kernel skips it too)
                side = self.bids if k == K_BB else self.asks
                if q > 0:
                    side[p] = q
                else:
                    side.pop(p, None)
            elif k == K_BID:
                self.bb, self.bbq = p, q
            elif k == K_ASK:
                self.ba, self.baq = p, q
            elif k == K_CLR:
                self.bids.clear()
                self.asks.clear()

    def best(self, side: int) -> float:
        """Best opposite price for an order of `side` (buy → ask)."""
        if self.depth:
            lv = self.asks if side > 0 else self.bids
            if lv:
                return min(lv) if side > 0 else max(lv)
        return self.ba if side > 0 else self.bb

    def level_qty(self, side: int, price: float) -> float:
        """Quantity shown at `price` on the order's own side (INF = unknown)."""
        if self.depth:
            return (self.bids if side > 0 else self.asks).get(price, 0.0)
        best, q = (self.bb, self.bbq) if side > 0 else (self.ba, self.baq)
        if math.isnan(best):
            return INF
        if price == best:
            return q
        if (price > best) if side > 0 else (price < best):
            return 0.0                   # improves the best price: first in line
        return INF

    def walk(self, side: int, qty: float, limit: float = math.nan) -> tuple[float, float]:
        """(filled qty, notional) taking liquidity up to `limit` (NaN = none)."""
        if self.depth:
            lv = self.asks if side > 0 else self.bids
            prices = sorted(lv) if side > 0 else sorted(lv, reverse=True)
            got = notional = 0.0
            last = math.nan
            for p in prices:
                if not math.isnan(limit) and ((p > limit) if side > 0 else (p < limit)):
                    break
                take = min(qty - got, lv[p])
                got += take
                notional += take * p
                last = p
                if got >= qty:
                    return got, notional
            if math.isnan(limit) and got < qty and not math.isnan(last):
                notional += (qty - got) * last     # the book ran out: the rest at its end
                got = qty
            return got, notional
        p, shown = (self.ba, self.baq) if side > 0 else (self.bb, self.bbq)
        if math.isnan(p) or (not math.isnan(limit) and ((p > limit) if side > 0 else (p < limit))):
            return 0.0, 0.0
        if not math.isnan(limit):            # a limit takes at most what the best level shows
            qty = min(qty, shown) if shown > 0 else qty
        return qty, qty * p


class Rest:
    """A resting order as the matcher sees it."""
    __slots__ = ("handle", "symbol", "side", "price", "qty", "filled", "queue", "bookq")

    def __init__(self, handle, symbol, side, price, qty, filled, queue, bookq):
        self.handle, self.symbol, self.side, self.price = handle, symbol, side, price
        self.qty, self.filled, self.queue, self.bookq = qty, filled, queue, bookq


class Matcher:
    def __init__(self, kind: np.ndarray, symbol: np.ndarray, price: np.ndarray,
                 qty: np.ndarray, aside: np.ndarray):
        self.kind, self.sym, self.price, self.qty, self.aside = kind, symbol, price, qty, aside
        self.books: dict[int, Book] = {}
        self.rest: dict[int, Rest] = {}          # handle → order, in arrival order
        self._next = 0

    # ------------------------------------------------------------------ books
    def _book(self, symbol: int) -> Book:
        b = self.books.get(symbol)
        if b is None:
            m = (self.sym == symbol) & np.isin(self.kind, BOOK_KINDS)
            b = self.books[symbol] = Book(np.flatnonzero(m))
        return b

    def advance(self, symbol: int, upto: int) -> None:
        """Apply the instrument's book records before record `upto`."""
        self._book(symbol).advance(self.kind, self.price, self.qty, upto)

    def has_book(self, symbol: int) -> bool:
        return self._book(symbol).idx.size > 0

    def depth(self, symbol: int) -> bool:
        return self._book(symbol).depth

    def bid_ask(self, symbol: int) -> tuple[float, float]:
        b = self._book(symbol)
        return b.bb, b.ba

    def best(self, symbol: int, side: int) -> float:
        return self._book(symbol).best(side)

    def level_qty(self, symbol: int, side: int, price: float) -> float:
        return self._book(symbol).level_qty(side, price)

    def walk(self, symbol: int, side: int, qty: float, limit: float = math.nan
             ) -> tuple[float, float]:
        return self._book(symbol).walk(side, qty, limit)

    # ------------------------------------------------------------------ resting orders
    def add(self, symbol: int, side: int, price: float, qty: float, filled: float,
            queue: float) -> int:
        self._next += 1
        self.rest[self._next] = Rest(self._next, symbol, side, price, qty, filled, queue,
                                     self.has_book(symbol))
        return self._next

    def remove(self, handle: int) -> None:
        self.rest.pop(handle, None)

    def __len__(self) -> int:
        return len(self.rest)

    def next_candidate(self, a: int, b: int, fills_only: bool = True) -> int:
        """The first record in [a, b) that could touch a resting order (b if none): a trade at
        or through its price, or (not with fills_only) a book record at its price when its
        instrument has book records."""
        if not self.rest:
            return b
        if b - a <= SMALL_SPAN:
            return self._next_candidate_small(a, b, fills_only)
        best = b
        sl = slice(a, b)
        kind, sym, price, aside = self.kind[sl], self.sym[sl], self.price[sl], self.aside[sl]
        trade = (kind == K_TRADE) | (kind == K_AGG)
        for w in self.rest.values():
            if w.side > 0:
                hit = trade & ((price < w.price) | ((price == w.price) & (aside == -1)))
            else:
                hit = trade & ((price > w.price) | ((price == w.price) & (aside == 1)))
            if not fills_only and w.bookq:
                hit |= (~trade) & (price == w.price)
            hit &= sym == w.symbol
            if hit.any():
                best = min(best, a + int(np.argmax(hit)))
                if best == a:
                    break
        return best

    def _next_candidate_small(self, a: int, b: int, fills_only: bool) -> int:
        ws = [(w.symbol, w.side, w.price, (not fills_only) and w.bookq)
              for w in self.rest.values()]
        for k, kind, sym, p, ag in zip(range(a, b), self.kind[a:b].tolist(),
                                       self.sym[a:b].tolist(), self.price[a:b].tolist(),
                                       self.aside[a:b].tolist()):
            trade = kind == K_TRADE or kind == K_AGG
            for wsym, side, wp, bookq in ws:
                if sym != wsym:
                    continue
                if trade:
                    if (p < wp or (p == wp and ag == -1)) if side > 0 else \
                            (p > wp or (p == wp and ag == 1)):
                        return k
                elif bookq and p == wp:
                    return k
        return b

    def scan(self, a: int, b: int):
        """Records [a, b) against the resting orders, in order, up to the first that fills."""
        j = a
        while j < b and self.rest:
            k = self.next_candidate(j, b, fills_only=False)
            if k >= b:
                break
            fills = self.touch(k)
            if fills:
                return k, fills
            j = k + 1
        return b, None

    def touch(self, k: int) -> list:
        """Record k against every resting order of its instrument: [(handle, qty, done)]."""
        kind, sym = int(self.kind[k]), int(self.sym[k])
        p, q, aside = float(self.price[k]), float(self.qty[k]), int(self.aside[k])
        fills = []
        done = []
        for h, w in self.rest.items():
            if w.symbol != sym:
                continue
            got = 0.0
            if kind == K_TRADE or kind == K_AGG:
                through = (p < w.price) if w.side > 0 else (p > w.price)
                if through:
                    got = w.qty - w.filled
                elif p == w.price and aside == -w.side and w.queue < INF:
                    left = q - w.queue
                    w.queue = max(0.0, w.queue - q)
                    if left > 0:
                        got = min(left, w.qty - w.filled)
            elif p == w.price:
                own = (kind == K_BB or kind == K_BID) if w.side > 0 else \
                    (kind == K_BA or kind == K_ASK)
                if own:
                    w.queue = min(w.queue, q)
            if got > 0:
                w.filled += got
                fin = w.qty - w.filled <= 1e-12 * w.qty
                fills.append((h, got, fin))
                if fin:
                    done.append(h)
        for h in done:
            del self.rest[h]
        return fills


class Timeline:
    """The run's record times (mono_ts; a ValueError if they decrease anywhere) and where the
    event engine's batches end (pipeline/backtest/events.py: EventEngine.run)."""

    def __init__(self, t: np.ndarray):
        self.t = np.ascontiguousarray(t, dtype=np.int64)
        self.n = len(self.t)
        bad = np.flatnonzero(self.t[1:] < self.t[:-1])
        if len(bad):
            i = int(bad[0]) + 1
            raise ValueError(f"records are not in time order: mono_ts decreases at record {i} "
                             f"({int(self.t[i - 1])} -> {int(self.t[i])})")

    def __len__(self) -> int:
        return self.n

    def at(self, i: int) -> int:
        return int(self.t[i])

    def first_ge(self, x: int, lo: int = 0) -> int:
        """The first record i >= lo with time >= x (n if none)."""
        lo = max(0, lo)
        return max(lo, int(np.searchsorted(self.t, x, "left"))) if lo < self.n else self.n

    def batch_end(self, pos: int, end: int, arr: int, m: Matcher, back_ns: int,
                  due: int) -> int:
        """Batch [pos, end) (end = pos + max_batch at most), cut where the venue could next act
        on an order plus `back_ns` (its answer's way back): the first of the next arrival
        (record `arr`, -1 = nothing in flight) and the next record that could fill a resting
        order of `m`; and cut before the first record at or after `due` (the next feedback
        event or timer). Never shorter than one record."""
        if arr >= 0 or len(m):
            a = arr if arr >= 0 else end
            k = min(a, end)
            if len(m):
                k = min(k, m.next_candidate(pos, k, True))
            if k < end:
                end = max(pos + 1, min(end, self.first_ge(int(self.t[k]) + back_ns, pos)))
        if due <= self.t[end - 1]:
            end = max(pos + 1, min(end, self.first_ge(due, pos)))
        return end
