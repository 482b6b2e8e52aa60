"""Cancel and cancel/replace intents through the gateway (the strategy's `Cancel` / `Replace`).

A signal record's `action` byte (pipeline/records.py) says what it asks for:

    NEW      a new order (every signal before actions existed): the risk kernel, sign, send
    CANCEL   cancel the strategy's order named by the record's own (strategy_id, epoch, seq); a
             cancel is not an order: it takes no number, the risk kernel does not judge it (a
             cancel only ever lowers risk) and it is sent even when HALTED or late
    REPLACE  the record is a new order (numbered, judged by the risk kernel like any other) that
             replaces the strategy's order `replace_back` numbers before it in the same epoch,
             the venue's way (Binance: cancelReplace STOP_ON_FAILURE, if the cancel fails the
             new order is not placed; OKX: amend-order)

Both are journalled (write-ahead: the request record before it goes out) and answered to the
strategy through the order-event ring: CANCELLED (the old order), CANCEL_REJECTED (the venue
refused the cancel: the order still works, or it was already done), and for a replace the new
order's own events (ACCEPTED / FILL / REJECTED "not attempted" when the cancel failed). A request
whose fate is unknown (timeout, 5xx) makes the new order UNKNOWN (resolved by its client id like
any other) and leaves the old one to the next status query.

These requests are synchronous calls on the loop (like the halt's cancel-all): the hot path stays
the new-order path. What goes on the wire is the venue's: its execution's `cancel_intent` and
`replace_intent` (pipeline/venues/<venue>/intents.py).
"""
from __future__ import annotations

from pipeline.gateway.orders import Order


def cancel(ex, order: Order, why: str) -> bool:
    """Cancel one of our orders (a strategy's CANCEL); True if the venue cancelled it, else the
    strategy hears CANCEL_REFUSED."""
    return ex.cancel_intent(order, why)


def replace(ex, old: Order, new: Order) -> None:
    """Replace `old` by `new` (an order of the book of record, its risk already judged), acting
    on both halves of the venue's answer."""
    ex.replace_intent(old, new)
