"""Order intents beyond a new order, order events, and a strategy's own order book-keeping.

A new order is a `Signal` (pipeline.bus.signals) numbered by the strategy itself: its `seq` is
the order's client id (the gateway's clientOrderId is `pl<strategy_id>.<epoch>.<seq>` in hex), so
a strategy follows each order from the moment it creates it. Besides new orders a strategy may
return:

    Cancel(strategy_id, client_id)                  cancel one of its working orders
    Replace(strategy_id, client_id, new)            cancel it and, if that succeeded, place
                                                    `new` (a Signal) — Binance
                                                    order/cancelReplace, STOP_ON_FAILURE

What happens to each order comes back as `OrderEvent`s (EventKind = records.OrderEventKind):
ACCEPTED, FILL (price, qty, fee, maker or taker), REJECTED (the risk kernel's reason name, or the
venue's error), CANCELLED, EXPIRED (IOC/FOK remainder, or a post-only order that would have taken
liquidity), UNKNOWN (the gateway does not know yet whether the venue got it; its resolution
follows: any of the above, or LOST), CANCEL_REJECTED (a cancel was refused: the order still
works). The backtester delivers them from its exchange model, the live gateway through its event
ring (pipeline/bus/events.py); at the start of a live run the strategy's position (POSITION) and
its working orders (OPEN) come the same way, from the gateway's rebuilt state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from pipeline.records import OrderEventKind


EventKind = OrderEventKind      # the one definition: pipeline/records.py


class OrderEvent(NamedTuple):
    kind: int               # EventKind
    client_id: int          # the order's seq
    ts: int                 # ns, the data clock at which the strategy learns it
    price: float = 0.0      # FILL: fill price
    qty: float = 0.0        # FILL: filled quantity (> 0)
    fee: float = 0.0        # FILL: fee in quote currency
    side: int = 0           # OrderSide of the order
    maker: bool = False     # FILL: resting liquidity (maker fee)
    reason: str = ""        # REJECTED / EXPIRED: why (e.g. "MIN_NOTIONAL", "INSUFFICIENT_CASH")
    remaining: float = 0.0  # quantity still working after this event
    epoch: int = 0          # the order's epoch (0 = this instance's own; live events carry it)
    symbol: int = 0         # live events: the instrument id (POSITION: the position's)
    filled: float = 0.0     # live events: the order's cumulative filled quantity
    venue_code: int = 0     # REJECTED / CANCEL_REJECTED by the venue: its error code
    fee_asset: str = ""     # FILL (live): the commission's asset


class Cancel(NamedTuple):
    strategy_id: int
    client_id: int
    trigger_seq: int = -1   # the record that caused it (the backtester times it from there)


class Replace(NamedTuple):
    strategy_id: int
    client_id: int
    new: object             # a Signal, placed only if the cancel succeeded


@dataclass
class OrderState:
    client_id: int
    side: int
    qty: float
    price: float
    order_type: int
    tif: int
    filled: float = 0.0
    status: str = "NEW"      # NEW (sent) → ACCEPTED → FILLED / CANCELLED / REJECTED / EXPIRED
    #                          (live also UNKNOWN → one of those, or LOST)
    epoch: int = 0           # the order's epoch when it is not this instance's (start-up OPEN)

    @property
    def remaining(self) -> float:
        return self.qty - self.filled

    @property
    def done(self) -> bool:
        return self.status in ("FILLED", "CANCELLED", "REJECTED", "EXPIRED", "LOST")
