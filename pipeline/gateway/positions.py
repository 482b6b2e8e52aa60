"""Fills, positions and PnL per symbol.

Fills come from three places (the order response's `fills`, the user-data stream's
executionReport, and GET myTrades during resolution and reconciliation) and are deduplicated by
(symbol, trade id): the first copy counts, later copies are counted as duplicates and ignored.

Position accounting (per symbol, base units): average-cost. A fill that increases |position|
moves the average price; one that reduces it realizes (price - avg) * qty * sign; one that crosses
zero realizes the closed part and opens the rest at the fill price. Commissions are kept per asset
(not converted). Unrealized PnL = (reference - avg) * position.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fill:
    symbol: str
    trade_id: int
    cid: str
    order_id: int
    side: int          # 1 buy, -1 sell
    qty: float
    price: float
    commission: float = 0.0
    commission_asset: str = ""
    source: str = ""   # "response" / "stream" / "query"

    def to_json(self) -> dict:
        return {"symbol": self.symbol, "trade_id": self.trade_id, "cid": self.cid,
                "order_id": self.order_id, "side": self.side, "qty": self.qty,
                "price": self.price, "commission": self.commission,
                "commission_asset": self.commission_asset, "source": self.source}


@dataclass
class Position:
    symbol: str
    qty: float = 0.0
    avg_price: float = 0.0
    realized: float = 0.0
    fees: dict[str, float] = field(default_factory=dict)
    fills: int = 0

    def apply(self, side: int, qty: float, price: float) -> float:
        """Apply one fill; returns the PnL it realized."""
        signed = side * qty
        realized = 0.0
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            new = self.qty + signed
            self.avg_price = (self.avg_price * abs(self.qty) + price * qty) / abs(new)
            self.qty = new
        else:
            closing = min(qty, abs(self.qty))
            realized = (price - self.avg_price) * closing * (1 if self.qty > 0 else -1)
            rest = qty - closing
            self.qty += side * closing
            if abs(self.qty) < 1e-12:
                self.qty = 0.0
                self.avg_price = 0.0
            if rest > 0:
                self.qty = side * rest
                self.avg_price = price
        self.realized += realized
        self.fills += 1
        return realized

    def unrealized(self, ref: float) -> float:
        if self.qty == 0 or not ref > 0:
            return 0.0
        return (ref - self.avg_price) * self.qty

    def to_json(self, ref: float = 0.0) -> dict:
        return {"symbol": self.symbol, "qty": round(self.qty, 12), "avg_price": self.avg_price,
                "realized": self.realized, "unrealized": self.unrealized(ref), "fees": self.fees,
                "fills": self.fills}


class Book:
    """Positions and the fill dedup set.

    Bounded: the trade ids of an order the order table retired (orders.OrderTable.retire: final,
    every fill in) move from the order's list (`keys_of`) to a window of the last `window`
    retired trades and leave `seen` after it; a copy of such an old trade arriving later finds
    no order and no mark, and is reported as not ours (execution.fill), never applied twice
    while it is in the window."""

    def __init__(self, window: int = 50_000) -> None:
        self.positions: dict[str, Position] = {}
        self.seen: set[tuple[str, int]] = set()
        self.duplicates = 0
        self.window = window
        self.keys_of: dict[str, list[tuple[str, int]]] = {}   # client id -> its trades' keys
        self._retired: collections.deque[tuple[str, int]] = collections.deque()
        self.forgotten = 0                 # trade keys that left `seen`

    def forget(self, order) -> None:
        """`order` left the order table: its trade keys go to the retired window."""
        keys = self.keys_of.pop(order.cid, None)
        if not keys:
            return
        self._retired.extend(keys)
        while len(self._retired) > self.window:
            self.seen.discard(self._retired.popleft())
            self.forgotten += 1

    def position(self, symbol: str) -> Position:
        p = self.positions.get(symbol)
        if p is None:
            p = self.positions[symbol] = Position(symbol)
        return p

    def is_new(self, symbol: str, trade_id: int) -> bool:
        return (symbol, int(trade_id)) not in self.seen

    def apply(self, fill: Fill) -> bool:
        """True if the fill was new (and applied), False for a duplicate. A malformed fill
        (side not ±1, negative trade id, quantity or price not finite and > 0) raises ValueError
        before anything is marked seen."""
        if fill.side not in (1, -1) or int(fill.trade_id) < 0 or not (
                0 < fill.qty < math.inf and 0 < fill.price < math.inf):
            raise ValueError(f"malformed fill {fill.symbol}/{fill.trade_id}: side {fill.side}, "
                             f"qty {fill.qty}, price {fill.price}")
        key = (fill.symbol, int(fill.trade_id))
        if key in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(key)
        if fill.cid:
            self.keys_of.setdefault(fill.cid, []).append(key)
        pos = self.position(fill.symbol)
        pos.apply(fill.side, fill.qty, fill.price)
        if fill.commission:
            pos.fees[fill.commission_asset] = pos.fees.get(fill.commission_asset, 0.0) + \
                fill.commission
        return True

    def pnl(self, refs: dict[str, float]) -> float:
        return sum(p.realized + p.unrealized(refs.get(s, 0.0)) for s, p in self.positions.items())
