"""The order book the tape implies, per symbol, with Binance diff-depth bookkeeping.

Every level change bumps `update_id` (Binance's order-book update id) and is remembered in each
diff accumulator, so a `depthUpdate` flushed later carries `U` = first id and `u` = last id of the
changes it contains, and a REST snapshot's `lastUpdateId` is always inside a diff's [U, u] or
between two diffs: the documented sync procedure works against the simulator.

Prices and quantities are int units of 1e-8 (see instruments.py).
"""
from __future__ import annotations

import heapq
from typing import Iterator

import orjson

from pipeline.sim.instruments import InstrumentSpec, fmt8


class DiffAccumulator:
    """Changes since the last flush of one depth stream (e.g. @depth@100ms)."""

    __slots__ = ("first_id", "bids", "asks")

    def __init__(self) -> None:
        self.first_id = 0
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}


class Book:
    """Levels by price, best prices cached, diff accumulators for the depth streams."""

    __slots__ = ("spec", "symbol", "bids", "asks", "update_id", "best_bid", "best_ask", "accs",
                 "active", "last_price", "trade_id", "agg_id", "synced")

    def __init__(self, spec: InstrumentSpec, update_id: int = 1) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.update_id = update_id
        self.best_bid = 0
        self.best_ask = 0
        self.accs: dict[str, DiffAccumulator] = {"100ms": DiffAccumulator(), "1000ms": DiffAccumulator()}
        self.active: tuple[DiffAccumulator, ...] = ()   # accumulators of subscribed depth streams
        self.last_price = spec.start_price
        self.trade_id = 0
        self.agg_id = 0
        self.synced = True   # False for a replay book that has not seen its snapshot yet

    # ---------------------------------------------------------------- changes

    def set_level(self, is_bid: bool, price: int, qty: int) -> None:
        """One book change: qty 0 removes the level. Bumps update_id."""
        self.update_id += 1
        uid = self.update_id
        side = self.bids if is_bid else self.asks
        if qty > 0:
            side[price] = qty
            if is_bid:
                if price > self.best_bid:
                    self.best_bid = price
            elif price < self.best_ask or not self.best_ask:
                self.best_ask = price
        else:
            side.pop(price, None)
            if is_bid:
                if price == self.best_bid:
                    self.best_bid = max(side) if side else 0
            elif price == self.best_ask:
                self.best_ask = min(side) if side else 0
        for acc in self.active:
            if not acc.first_id:
                acc.first_id = uid
            (acc.bids if is_bid else acc.asks)[price] = qty

    def track(self, keys: set[str]) -> None:
        """Keep diffs only for these depth streams ("100ms", "1000ms"); others are cleared."""
        for key, acc in self.accs.items():
            if key not in keys:
                acc.first_id = 0
                acc.bids.clear()
                acc.asks.clear()
        self.active = tuple(acc for key, acc in self.accs.items() if key in keys)

    def apply_diff(self, first_id: int, last_id: int, bids, asks) -> None:
        """Apply a recorded depthUpdate (replay): levels as [[price, qty], ...] decimal strings,
        already parsed to ints by the caller. The book's update id becomes `last_id`."""
        for acc in self.active:
            if not acc.first_id:
                acc.first_id = first_id
        for p, q in bids:
            self._set_raw(True, p, q)
        for p, q in asks:
            self._set_raw(False, p, q)
        self.update_id = last_id

    def _set_raw(self, is_bid: bool, p: int, q: int) -> None:
        side = self.bids if is_bid else self.asks
        if q > 0:
            side[p] = q
        else:
            side.pop(p, None)
        for acc in self.active:
            (acc.bids if is_bid else acc.asks)[p] = q

    def reset(self, update_id: int, bids, asks) -> None:
        """Replace the whole book (a replayed REST snapshot)."""
        self.bids = dict(bids)
        self.asks = dict(asks)
        self.update_id = update_id
        self.refresh_best()
        for acc in self.accs.values():
            acc.first_id = 0
            acc.bids.clear()
            acc.asks.clear()
        self.synced = True

    def refresh_best(self) -> None:
        self.best_bid = max(self.bids) if self.bids else 0
        self.best_ask = min(self.asks) if self.asks else 0

    # ---------------------------------------------------------------- reads

    def snapshot(self, limit: int) -> dict:
        """GET /api/v3/depth body: lastUpdateId and the best `limit` levels per side."""
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {"lastUpdateId": self.update_id,
                "bids": [[fmt8(p), fmt8(q)] for p, q in bids],
                "asks": [[fmt8(p), fmt8(q)] for p, q in asks]}

    def levels(self, is_bid: bool) -> list[tuple[int, int]]:
        """Levels best first."""
        if is_bid:
            return sorted(self.bids.items(), reverse=True)
        return sorted(self.asks.items())

    def walk(self, is_bid: bool) -> Iterator[tuple[int, int]]:
        """Levels best first, lazily: an order that takes two levels of a 5000-level replay book
        does not sort the whole side."""
        side = self.bids if is_bid else self.asks
        if len(side) <= 64:
            yield from sorted(side.items(), reverse=is_bid)
            return
        keys = [-p for p in side] if is_bid else list(side)
        heapq.heapify(keys)
        while keys:
            k = heapq.heappop(keys)
            p = -k if is_bid else k
            yield p, side[p]

    def flush_diff(self, key: str, event_ms: int) -> bytes | None:
        """Encode and clear one accumulator as a depthUpdate payload (None if nothing changed)."""
        acc = self.accs[key]
        if not acc.first_id:
            return None
        msg = orjson.dumps({
            "e": "depthUpdate", "E": event_ms, "s": self.symbol,
            "U": acc.first_id, "u": self.update_id,
            "b": [[fmt8(p), fmt8(q)] for p, q in sorted(acc.bids.items(), reverse=True)],
            "a": [[fmt8(p), fmt8(q)] for p, q in sorted(acc.asks.items())],
        })
        acc.first_id = 0
        acc.bids.clear()
        acc.asks.clear()
        return msg
