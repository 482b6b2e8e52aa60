"""Orders: the state machine and the idempotency table of our own client order ids.

    NEW ──► ACK ──► PARTIALLY_FILLED ──► FILLED
     │       │            │
     │       └────────────┴──► CANCELED / EXPIRED
     ├──► REJECTED                 (the venue said no)
     └──► UNKNOWN ──► (any of the above, from a status query or the user stream) / LOST

NEW: created locally, request being written. ACK: the venue accepted it. UNKNOWN: the request
may or may not have reached the matching engine (timeout, 5xx, -1006, -1007); the order counts as
exposure as if filled until a status query resolves it; it is never resubmitted. LOST: an UNKNOWN
order the venue still does not know after the configured polls (it never got there). A LOST
order keeps its exposure (`released` stays False) until the gateway confirms it (the trade history
and, when configured, an unbroken user stream: execution.confirm_lost); until then a report of it
from the venue moves it on like an UNKNOWN order (LOST → ACK / FILLED / ...), after that it is final.

A client order id is ours forever: `OrderTable.add` refuses an id it has seen, whatever the state
of the first order (Binance itself only refuses a reused id while the first order is open, so a
reuse after a fill would trade twice).

Bounded memory (`OrderTable.retire`, from the gateway loop's status tick at most once a
second: `maybe_retire`): a final order whose every fill
is in (FILLED with its quantity filled; CANCELED / EXPIRED / REJECTED / a confirmed LOST with the
venue's executed quantity filled), final for `grace_s` and beyond the newest `keep` final
orders, leaves the table. What it leaves behind is what later readers need: its client id stays
refused (per (strategy, epoch) the highest retired seq: the risk kernel's duplicate filter
refuses lower seqs anyway), its (symbol, venue order id) stays known as ours in a window of the
last `keep_ids` retired orders (a late copy of its trade is a duplicate, not a foreign trade),
its fills stay in the strategies' start-up positions (`retired_pos`), and `on_retire` hands it
to the fill book (which moves its trade ids to the bounded window of retired trades). An order
whose client id is not one of ours (`parse_client_id`) is never retired.

`client_id(strategy_id, epoch, seq)` is the one builder of our client order ids
("pl<strategy hex>.<epoch hex>.<seq hex>", at most 34 characters within the risk kernel's bounds);
its compiled twin is ext/sign.pyx put_client_id (the order path), parity-tested.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable


def client_id(strategy_id: int, epoch: int, seq: int) -> str:
    """Our client order id of a signal (strategy_id, epoch, seq): the one builder."""
    return f"pl{strategy_id:x}.{epoch:x}.{seq:x}"


def client_id_of(sig) -> str:
    """client_id of a decoded signal."""
    return client_id(sig.strategy_id, sig.epoch, sig.seq)


def parse_client_id(cid: str) -> tuple[int, int, int] | None:
    """(strategy_id, epoch, seq) of one of our client order ids, or None for any other id."""
    if not cid.startswith("pl"):
        return None
    parts = cid[2:].split(".")
    if len(parts) != 3:
        return None
    try:
        return int(parts[0], 16), int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None


class OrderState(str, Enum):
    NEW = "NEW"
    ACK = "ACK"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"
    LOST = "LOST"


TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED,
                      OrderState.EXPIRED, OrderState.LOST})
OPEN = frozenset({OrderState.NEW, OrderState.ACK, OrderState.PARTIALLY_FILLED, OrderState.UNKNOWN})

# Allowed transitions (a venue report may skip steps: NEW → FILLED for a market order).
_ALLOWED: dict[OrderState, frozenset[OrderState]] = {
    OrderState.NEW: frozenset(OrderState) - {OrderState.NEW},
    OrderState.UNKNOWN: frozenset(OrderState) - {OrderState.NEW, OrderState.UNKNOWN},
    # a LOST order not yet confirmed (still holding its exposure) the venue reports after all
    OrderState.LOST: frozenset({OrderState.ACK, OrderState.PARTIALLY_FILLED, OrderState.FILLED,
                                OrderState.CANCELED, OrderState.EXPIRED, OrderState.REJECTED}),
    OrderState.ACK: frozenset({OrderState.PARTIALLY_FILLED, OrderState.FILLED, OrderState.CANCELED,
                               OrderState.EXPIRED, OrderState.REJECTED}),
    OrderState.PARTIALLY_FILLED: frozenset({OrderState.PARTIALLY_FILLED, OrderState.FILLED,
                                            OrderState.CANCELED, OrderState.EXPIRED}),
}

# Binance order status → ours.
VENUE_STATUS = {
    "NEW": OrderState.ACK, "PENDING_NEW": OrderState.ACK,
    "PARTIALLY_FILLED": OrderState.PARTIALLY_FILLED, "FILLED": OrderState.FILLED,
    "CANCELED": OrderState.CANCELED, "PENDING_CANCEL": OrderState.ACK,
    "REJECTED": OrderState.REJECTED, "EXPIRED": OrderState.EXPIRED,
    "EXPIRED_IN_MATCH": OrderState.EXPIRED,
}


class IllegalTransition(ValueError):
    pass


class ClientIdReused(ValueError):
    pass


@dataclass
class Order:
    cid: str
    symbol: str                # venue spelling
    symbol_id: int
    side: int                  # 1 buy, -1 sell
    order_type: int
    tif: int
    qty: float
    price: float               # NaN for MARKET
    state: OrderState = OrderState.NEW
    order_id: int = -1         # the venue's id once known
    filled: float = 0.0
    notional: float = 0.0      # Σ fill qty * price
    released: bool = False     # the unfilled rest was handed back to the risk engine
    polls: int = 0             # UNKNOWN: status queries answered "does not exist"
    next_poll_mono: int = 0
    attempts: int = 0          # requests written for this order (1, or 2 after a -1021 retry)
    ts_ms: int = 0             # the timestamp parameter of the latest request (recvWindow base)
    stamps: dict[str, int] = field(default_factory=dict)   # latency stamps, CLOCK_MONOTONIC ns
    why: str = ""
    not_after_mono: int = 0    # the signal's TTL end: the order wire does not send it later (0: none)
    origin: tuple[int, int, int] = (0, 0, 0)   # the signal's (strategy, epoch, seq)
    lost_stream: int = -1      # LOST: the user stream's connects when declared (-1: not watching)
    final_ns: int = 0          # when it reached a final state (perf_counter ns; 0: before start)
    executed: float = 0.0      # the venue's executed quantity when its rest was released

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    @property
    def remaining(self) -> float:
        return max(0.0, self.qty - self.filled)

    @property
    def avg_price(self) -> float:
        return self.notional / self.filled if self.filled > 0 else 0.0

    def to_json(self) -> dict:
        return {"cid": self.cid, "symbol": self.symbol, "symbol_id": self.symbol_id,
                "side": self.side, "order_type": self.order_type, "tif": self.tif, "qty": self.qty,
                "price": None if self.price != self.price else self.price,
                "state": self.state.value, "order_id": self.order_id, "filled": self.filled,
                "avg_price": self.avg_price, "attempts": self.attempts, "why": self.why}


class OrderTable:
    """Every order of ours by client id (the idempotency table) and by venue order id; final
    orders past the retention leave it (`retire`, see the module docstring)."""

    def __init__(self, keep: int = 1000, grace_s: float = 60.0, keep_ids: int = 20_000) -> None:
        self.by_cid: dict[str, Order] = {}
        self.by_oid: dict[tuple[str, int], Order] = {}
        self.keep = keep                  # final orders kept (the newest); 0 = keep everything
        self.grace_ns = int(grace_s * 1e9)
        self.keep_ids = keep_ids
        self.retired = 0                  # orders retired so far
        self.retired_states: dict[str, int] = {}             # ... by their final state
        self.retired_seq: dict[tuple[int, int], int] = {}   # (strategy, epoch) -> highest seq
        self.retired_oids: dict[tuple[str, int], str] = {}  # (symbol, order id) -> client id
        self._retired_fifo: deque[tuple[str, int]] = deque()
        self.retired_pos: dict[tuple[int, int], float] = {}  # (strategy, symbol id) -> filled
        self.on_retire: list[Callable[[Order], None]] = []
        self._next_ns = 0
        # an order made final before this table existed (rebuilt from the journal at a start)
        # counts as final since then: kept for grace_s, through the start's reconciliation
        self.started_ns = time.perf_counter_ns()

    def __contains__(self, cid: str) -> bool:
        return cid in self.by_cid or self.is_retired(cid)

    def is_retired(self, cid: str) -> bool:
        """A client id of ours whose order left the table (or one below such a seq)."""
        if not self.retired_seq:
            return False
        o = parse_client_id(cid)
        return o is not None and o[2] <= self.retired_seq.get((o[0], o[1]), -1)

    def retired_order(self, symbol: str, order_id: int) -> str | None:
        """The client id of a retired order by its venue id (the last `keep_ids` retired)."""
        return self.retired_oids.get((symbol, order_id))

    def __len__(self) -> int:
        return len(self.by_cid)

    def get(self, cid: str) -> Order | None:
        return self.by_cid.get(cid)

    def by_order_id(self, symbol: str, order_id: int) -> Order | None:
        return self.by_oid.get((symbol, order_id))

    def add(self, order: Order) -> Order:
        if order.cid in self.by_cid:
            raise ClientIdReused(f"client order id {order.cid} was already used "
                                 f"(state {self.by_cid[order.cid].state.value})")
        if self.is_retired(order.cid):
            raise ClientIdReused(f"client order id {order.cid} was already used (its order "
                                 f"is final and retired)")
        self.by_cid[order.cid] = order
        if order.order_id >= 0:
            self.by_oid[(order.symbol, order.order_id)] = order
        return order

    def maybe_retire(self, now_ns: int | None = None) -> int:
        """retire() at most once a second while more than `keep` orders are in the table (the
        gateway loop's status tick calls it: off the order path, O(orders) per call)."""
        now = time.perf_counter_ns() if now_ns is None else now_ns
        if not self.keep or len(self.by_cid) <= self.keep or now < self._next_ns:
            return 0
        self._next_ns = now + 1_000_000_000
        return len(self.retire(now))

    @staticmethod
    def settled(o: Order) -> bool:
        """Final with every fill in: nothing the venue can still tell us changes it."""
        s = o.state
        if s is OrderState.FILLED:
            return o.filled >= o.qty - 1e-9 * max(1.0, o.qty)
        if s not in TERMINAL or not o.released:
            return False                  # open, or a LOST order still holding its exposure
        return o.filled >= o.executed - 1e-9 * max(1.0, o.executed)

    def retire(self, now_ns: int | None = None) -> list[Order]:
        """Retire settled final orders beyond the newest `keep` that are final for `grace_s`
        (module docstring); returns them."""
        now = time.perf_counter_ns() if now_ns is None else now_ns
        finals = [o for o in self.by_cid.values() if o.state in TERMINAL]   # oldest first
        out: list[Order] = []
        for o in finals[:max(0, len(finals) - self.keep)]:
            if not self.settled(o) or now - (o.final_ns or self.started_ns) < self.grace_ns:
                continue
            origin = parse_client_id(o.cid)
            if origin is None:
                continue                  # not one of our ids: its refusal needs the order
            out.append(o)
            del self.by_cid[o.cid]
            key = (o.symbol, o.order_id)
            if self.by_oid.get(key) is o:
                del self.by_oid[key]
            k = (origin[0], origin[1])
            if origin[2] > self.retired_seq.get(k, -1):
                self.retired_seq[k] = origin[2]
            if o.order_id >= 0:
                self.retired_oids[key] = o.cid
                self._retired_fifo.append(key)
                while len(self._retired_fifo) > self.keep_ids:
                    self.retired_oids.pop(self._retired_fifo.popleft(), None)
            self.retired_states[o.state.value] = self.retired_states.get(o.state.value, 0) + 1
            if o.filled and origin[1]:
                p = (origin[0], o.symbol_id)
                self.retired_pos[p] = self.retired_pos.get(p, 0.0) + o.side * o.filled
            for fn in self.on_retire:
                fn(o)
        self.retired += len(out)
        return out

    def set_order_id(self, order: Order, order_id: int) -> None:
        if order_id >= 0 and order.order_id != order_id:
            order.order_id = int(order_id)
            self.by_oid[(order.symbol, order.order_id)] = order

    def open_orders(self) -> list[Order]:
        return [o for o in self.by_cid.values() if o.is_open]

    def unknown(self) -> list[Order]:
        return [o for o in self.by_cid.values() if o.state is OrderState.UNKNOWN]


def transition(order: Order, new: OrderState, why: str = "") -> bool:
    """Move `order` to `new`. Returns False (no change) for a repeat of the current state or a
    stale report for a terminal order; raises IllegalTransition for a move the machine forbids."""
    old = order.state
    if new is old and new is not OrderState.PARTIALLY_FILLED:
        return False
    if old in TERMINAL and not (old is OrderState.LOST and not order.released):
        return False          # late report (e.g. a user-stream event after the status query)
    if new not in _ALLOWED[old]:
        raise IllegalTransition(f"order {order.cid}: {old.value} → {new.value} is not allowed")
    order.state = new
    if why:
        order.why = why
    if new in TERMINAL:
        order.final_ns = time.perf_counter_ns()
    return new is not old
