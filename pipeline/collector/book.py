"""A plain price → quantity order book, and the consumer-side book rebuilder.

`Book` is the reference book: the collector's cool path builds snapshots with it, the Python twin
of the frame decoder keeps its books in it, and tests compare against it. `BookRebuilder` lets any
ring consumer (a strategy, the backtester) rebuild the top N levels from the records the collector
publishes:

  BOOK_CLEAR (FLAG_SNAPSHOT)          drop the book; snapshot levels follow
  BOOK_BID / BOOK_ASK                 set a level (qty 0 removes it); FLAG_LAST_IN_MSG marks the
                                      end of one venue message (the book is consistent there)
  RESYNC_START / GAP (for a symbol)   the book is invalid until ...
  RESYNC_DONE                         ... it is valid again (a snapshot was just applied)
  GAP with symbol 0 (reader lapped)   every book is invalid until its next snapshot
"""
from __future__ import annotations

import numpy as np

from pipeline.records import Kind


class Book:
    """Two dicts and incrementally tracked best prices."""

    __slots__ = ("bids", "asks", "best_bid", "best_ask")

    def __init__(self):
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.best_bid: float | None = None
        self.best_ask: float | None = None

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.best_bid = self.best_ask = None

    def set_bid(self, price: float, qty: float) -> None:
        if qty > 0.0:
            self.bids[price] = qty
            if self.best_bid is None or price > self.best_bid:
                self.best_bid = price
        elif self.bids.pop(price, None) is not None and price == self.best_bid:
            self.best_bid = max(self.bids) if self.bids else None

    def set_ask(self, price: float, qty: float) -> None:
        if qty > 0.0:
            self.asks[price] = qty
            if self.best_ask is None or price < self.best_ask:
                self.best_ask = price
        elif self.asks.pop(price, None) is not None and price == self.best_ask:
            self.best_ask = min(self.asks) if self.asks else None

    def apply(self, bids, asks) -> None:
        for p, q in bids:
            self.set_bid(p, q)
        for p, q in asks:
            self.set_ask(p, q)

    def crossed(self) -> bool:
        return (self.best_bid is not None and self.best_ask is not None
                and self.best_bid >= self.best_ask)

    def top(self, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The best n levels per side: bids descending, asks ascending."""
        b = sorted(self.bids.items(), key=lambda kv: -kv[0])[:n]
        a = sorted(self.asks.items())[:n]
        return b, a

    def copy(self) -> "Book":
        o = Book()
        o.bids, o.asks = dict(self.bids), dict(self.asks)
        o.best_bid, o.best_ask = self.best_bid, self.best_ask
        return o


class BookRebuilder:
    """Rebuilds books from tick-ring records. `valid(venue, symbol)` says whether the book may be
    used (a snapshot applied, no gap or resync since)."""

    def __init__(self):
        self.books: dict[tuple[int, int], Book] = {}
        self._valid: dict[tuple[int, int], bool] = {}
        self.last_id: dict[tuple[int, int], int] = {}

    def book(self, venue: int, symbol: int) -> Book:
        key = (int(venue), int(symbol))
        b = self.books.get(key)
        if b is None:
            b = self.books[key] = Book()
            self._valid[key] = False
        return b

    def valid(self, venue: int, symbol: int) -> bool:
        return self._valid.get((int(venue), int(symbol)), False)

    def apply(self, batch: np.ndarray) -> None:
        kinds = batch["kind"]
        for i in np.flatnonzero((kinds >= Kind.BOOK_BID) & (kinds <= Kind.BOOK_CLEAR)
                                | (kinds >= Kind.GAP) & (kinds <= Kind.RESYNC_DONE)):
            r = batch[i]
            k = int(r["kind"])
            key = (int(r["venue"]), int(r["symbol"]))
            if k == Kind.BOOK_BID:
                self.book(*key).set_bid(float(r["price"]), float(r["qty"]))
                self.last_id[key] = int(r["id"])
            elif k == Kind.BOOK_ASK:
                self.book(*key).set_ask(float(r["price"]), float(r["qty"]))
                self.last_id[key] = int(r["id"])
            elif k == Kind.BOOK_CLEAR:
                self.book(*key).clear()
                self._valid[key] = False
            elif k == Kind.RESYNC_DONE:
                self.book(*key)
                self._valid[key] = True
                self.last_id[key] = int(r["id"])
            elif k == Kind.RESYNC_START or (k == Kind.GAP and key[1] != 0):
                self.book(*key)
                self._valid[key] = False
            elif k == Kind.GAP:                     # a lapped reader: every book is suspect
                for kk in self._valid:
                    self._valid[kk] = False

    def top(self, venue: int, symbol: int, n: int):
        return self.book(venue, symbol).top(n)
