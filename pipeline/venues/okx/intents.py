"""OkxExecution's strategy intents and amends (a mixin: pipeline/venues/okx/execution.py):

- CANCEL (pipeline/gateway/intents.py calls `cancel_intent`): cancel-order by clOrdId, then the
  order's final state from a query; refused → CANCEL_REFUSED feedback.
- REPLACE (`replace_intent`): one amend-order where OKX allows it (`amendable`: the old order
  is working — ACK or PARTIALLY_FILLED, its ordId known — a LIMIT or post_only order, and the
  new order has its symbol, side, type and time in force): newPx = the new price, newSz = the
  part already filled + the new order's size. The venue's order keeps its clOrdId, so the new
  order takes it over (pipeline/venues/okx/amends.py); on OK the old order is CANCELED ("replaced
  by amend-order") and the new one ACK. The amend refused (e.g. 51503: the old order is done)
  → the new order REJECTED, nothing placed, the old one's CANCEL_REFUSED to the strategy and its
  state queried (as Binance's cancelReplace STOP_ON_FAILURE). The amend's fate unknown (no
  answer, 5xx) → the venue's order is cancelled (its size / price are not known for sure) and
  the new order REJECTED. A later orders push with amendResult "-1" (OKX failed the accepted
  amend) → the order is cancelled too. Anything else (a MARKET order, another side / type)
  is the cancel of the old order then the new order placed as any new order (its own clOrdId);
  a refused cancel refuses the new order, nothing sent.
- `amend`: amend-order by clOrdId (a size may only shrink; the risk engine's open quantity
  follows).
Not done: a gateway that dies between an amend's request and its answer restarts without the
link (the new order never reached the venue under its own clOrdId: LOST after its polls; the old
order keeps being tracked with its old size).
"""
from __future__ import annotations

import logging
from typing import Any

from pipeline.gateway.journal import JournalWriteError
from pipeline.gateway.orders import Order, OrderState
from pipeline.gateway.rest import Outcome, Reply
from pipeline.logs import order_log
from pipeline.venues.okx import orders as ox

log = logging.getLogger(__name__)


AMENDABLE_TYPES = frozenset({1, 3})      # LIMIT, LIMIT_MAKER (post_only); not MARKET


def amendable(old: Order, new: Order) -> bool:
    """Can `new` replace `old` by one amend-order (only the price and size change)?"""
    return (old.state in (OrderState.ACK, OrderState.PARTIALLY_FILLED) and old.order_id >= 0
            and old.order_type in AMENDABLE_TYPES and new.order_type == old.order_type
            and new.symbol_id == old.symbol_id and new.side == old.side and new.tif == old.tif
            and new.price == new.price and new.qty > 0)


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
        """A strategy's REPLACE: one amend-order where OKX allows it (`replace_by_amend`), else
        cancel `old` (cancel_intent: CANCELLED, or CANCEL_REFUSED to the strategy), then place
        `new` as a new order only if the venue cancelled the old one; otherwise `new` is
        REJECTED, nothing sent."""
        self.count("replaces")
        if amendable(old, new):
            self.replace_by_amend(old, new)
            return
        if not self.cancel_intent(old, "replace"):
            self.set_state(new, OrderState.REJECTED, "replace: the cancel of the old order "
                           "failed, not attempted")
            return
        self.submit(new, self.encode(new, self.clock.timestamp_ms()))

    def replace_by_amend(self, old: Order, new: Order) -> None:
        """`new` replaces `old` by one amend-order of the venue's order (clOrdId kept)."""
        self.heartbeat()
        r = self.rules[new.symbol_id]
        base = self.amends.base(old.cid) + old.filled
        wire = self.amends.cl_ord_id(old.cid)
        args: dict[str, Any] = {"instId": old.symbol, "clOrdId": wire,
                                "newSz": f"{base + new.qty:.{r.qty_decimals}f}",
                                "newPx": f"{new.price:.{r.price_decimals}f}"}
        new.attempts += 1
        new.ts_ms = self.clock.timestamp_ms()
        via = "ws" if self.ws is not None and hasattr(self.ws, "request") else "rest"
        try:          # write-ahead: the intent is in the journal before the request goes out
            if getattr(self.journal, "writes_orders", False):
                self._journal_order(new)       # the binary journal's ORDER record of `new`
            self.journal.write("amend_intent", cid=new.cid, replaces=old.cid, clOrdId=wire,
                               base=base, newSz=args["newSz"], newPx=args["newPx"], via=via)
            self.journal.commit()
        except JournalWriteError as exc:
            self.count("journal_write_failed")
            self.set_state(new, OrderState.REJECTED, f"replace: journal write failed, not "
                                                     f"sent: {exc}")
            return
        self.count("amends")
        rep, via = self.trade_op("amend-order", ox.AMEND_PATH, args)
        self.journal.write("amend", cid=new.cid, replaces=old.cid, clOrdId=wire, base=base,
                           via=via, **rep.summary())
        item = rep.data[0] if isinstance(rep.data, list) and rep.data \
            and isinstance(rep.data[0], dict) else {}
        if rep.outcome is Outcome.OK:
            self.amends.link(new.cid, old.cid, base, wire)
            try:
                oid = int(item.get("ordId") or old.order_id)
            except (TypeError, ValueError):
                oid = old.order_id
            self.table.set_order_id(new, oid)
            order_log("AMENDED", new.cid, symbol=new.symbol, replaces=old.cid, qty=new.qty,
                      price=new.price)
            self.set_state(old, OrderState.CANCELED, f"replaced by amend-order into {new.cid}")
            self.set_state(new, OrderState.ACK, f"amend-order of {old.cid} ({wire})")
            return
        msg = f"{rep.outcome.value} {rep.code} {rep.msg}".strip()
        if rep.outcome is Outcome.UNKNOWN:
            # it may or may not have been amended: cancel the venue's order (by its clOrdId:
            # whichever size and price it has now), the new order is not placed
            self.count("amend_unknown")
            log.warning("replace %s -> %s: amend-order outcome unknown (%s); cancelling",
                        old.cid, new.cid, msg)
            c = self.cancel_one(old, "amend unknown")
            self.set_state(new, OrderState.REJECTED, f"replace: amend-order outcome unknown "
                           f"({msg}); the old order cancel: {c.outcome.value}")
            return
        self.count("cancel_refused")
        order_log("CANCEL_REFUSED", old.cid, logging.INFO, symbol=old.symbol, why=msg)
        if self.feedback is not None:
            self.feedback.cancel_refused(old, msg)
        self.set_state(new, OrderState.REJECTED, f"replace: amend-order refused ({msg}), "
                       f"not attempted")
        if rep.outcome is not Outcome.NOT_SENT and rep.outcome is not Outcome.RATE_LIMITED:
            self._after_cancel(old, "amend refused")      # e.g. filled meanwhile: its state

    def on_amend_failed(self, order: Order, ev: dict) -> None:
        """An orders push with amendResult "-1": OKX failed an amend it had accepted. For an
        order that replaced another by amend its size / price at the venue are not the ones
        the risk engine holds: it is cancelled."""
        self.count("amend_failed_late")
        log.warning("order %s: the venue failed its amend (%s)", order.cid, ev.get("code")
                    or ev.get("msg") or "amendResult -1")
        if order.cid in self.amends.wire and order.is_open:
            self.cancel_one(order, "amend failed at the venue")

    def amend(self, order: Order, *, new_qty: float | None = None,
              new_price: float | None = None) -> Reply:
        """amend-order by clOrdId (new total size and/or price); the orders channel (or the next
        query) reports the amended order. A size may only shrink: a bigger order is a new order,
        through the risk check (ValueError)."""
        if new_qty is not None and new_qty > order.qty:
            raise ValueError("an amend may only reduce the size (a bigger order goes through "
                             "the risk check as a new one)")
        r = self.rules[order.symbol_id]
        args: dict[str, Any] = {"instId": order.symbol,
                                "clOrdId": self.amends.cl_ord_id(order.cid)}
        if new_qty is not None:
            args["newSz"] = f"{new_qty:.{r.qty_decimals}f}"
        if new_price is not None:
            args["newPx"] = f"{new_price:.{r.price_decimals}f}"
        rep, via = self.trade_op("amend-order", ox.AMEND_PATH, args)
        self.journal.write("amend", cid=order.cid, via=via, **{k: v for k, v in args.items()
                                                               if k.startswith("new")},
                           **rep.summary())
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


__all__ = ["OkxIntents", "amendable"]
