"""OkxExecution's strategy intents and amends (a mixin: pipeline/venues/okx/execution.py):

- CANCEL (pipeline/gateway/intents.py calls `cancel_intent`): cancel-order by clOrdId, then the
  order's final state from a query; refused → CANCEL_REFUSED feedback.
- REPLACE (`replace_intent`): OKX spot has no atomic cancel-and-new, so a replace is the cancel
  of the old order (cancel-order by clOrdId, its final state from a query), then, only if the
  venue cancelled it, the new order placed as any new order (its own clOrdId, already judged by
  the risk kernel). A refused cancel leaves the old order working and refuses the new one, nothing
  sent (as Binance's STOP_ON_FAILURE). Not done: REPLACE as one amend-order (which keeps the old
  clOrdId, so the new order's client id could not be honoured without an alias).
- `amend`: amend-order by clOrdId (a size may only shrink; the risk engine's open quantity
  follows).
"""
from __future__ import annotations

import logging
from typing import Any

from pipeline.gateway.orders import Order, OrderState
from pipeline.gateway.rest import Outcome, Reply
from pipeline.logs import order_log
from pipeline.venues.okx import orders as ox

log = logging.getLogger(__name__)


class OkxIntents:
    def cancel_intent(self, order: Order, why: str) -> bool:
        """A strategy's CANCEL (pipeline/gateway/intents.py): cancel-order by clOrdId; True if
        the venue cancelled it (the final state from a query), else CANCEL_REFUSED feedback."""
        self.heartbeat()
        r = self.cancel_one(order, why)
        self.count("cancels")
        if r.outcome is Outcome.OK:
            return True
        self.count("cancel_refused")
        msg = f"{r.status} {r.code} {r.msg}".strip()
        order_log("CANCEL_REFUSED", order.cid, logging.INFO, symbol=order.symbol, why=msg)
        if self.feedback is not None:
            self.feedback.cancel_refused(order, msg)
        return False

    def replace_intent(self, old: Order, new: Order) -> None:
        """A strategy's REPLACE: cancel `old` (cancel_intent: CANCELLED, or CANCEL_REFUSED to the
        strategy), then place `new` as a new order only if the venue cancelled the old one;
        otherwise `new` is REJECTED, nothing sent."""
        self.count("replaces")
        if not self.cancel_intent(old, "replace"):
            self.set_state(new, OrderState.REJECTED, "replace: the cancel of the old order "
                           "failed, not attempted")
            return
        self.submit(new, self.encode(new, self.clock.timestamp_ms()))

    def amend(self, order: Order, *, new_qty: float | None = None,
              new_price: float | None = None) -> Reply:
        """amend-order by clOrdId (new total size and/or price); the orders channel (or the next
        query) reports the amended order. A size may only shrink: a bigger order is a new order,
        through the risk check (ValueError)."""
        if new_qty is not None and new_qty > order.qty:
            raise ValueError("an amend may only reduce the size (a bigger order goes through "
                             "the risk check as a new one)")
        r = self.rules[order.symbol_id]
        args: dict[str, Any] = {"instId": order.symbol, "clOrdId": ox.wire_cid(order.cid)}
        if new_qty is not None:
            args["newSz"] = f"{new_qty:.{r.qty_decimals}f}"
        if new_price is not None:
            args["newPx"] = f"{new_price:.{r.price_decimals}f}"
        rep = self.rest.post(ox.AMEND_PATH, args)
        self.journal.write("amend", cid=order.cid, **{k: v for k, v in args.items()
                                                      if k.startswith("new")}, **rep.summary())
        if rep.outcome is Outcome.OK:
            if new_qty is not None:
                order_log("AMENDED", order.cid, symbol=order.symbol, qty=new_qty, price=new_price)
                self.risk_amend(order, new_qty)
            if new_price is not None:
                order.price = new_price
        return rep

    def risk_amend(self, order: Order, new_qty: float) -> None:
        """The risk engine's open quantity follows an amended size."""
        diff = order.qty - new_qty
        order.qty = new_qty
        try:
            if diff > 0:
                self.risk.release_open(order.symbol_id, order.side, diff)
        except ValueError as exc:
            log.warning("risk release for %s: %s", order.cid, exc)


__all__ = ["OkxIntents"]
