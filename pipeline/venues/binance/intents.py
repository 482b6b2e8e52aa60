"""BinanceExecution's strategy intents (a mixin: pipeline/venues/binance/execution.py), through
pipeline/gateway/intents.py:

- CANCEL (`cancel_intent`): DELETE /api/v3/order by origClientOrderId; refused → CANCEL_REFUSED.
- REPLACE (`replace_intent`): POST /api/v3/order/cancelReplace, cancelReplaceMode
  STOP_ON_FAILURE (if the cancel fails the new order is not placed), or the WebSocket API's
  order.cancelReplace when transport = ws_api (the request/answer client, or the pipelined
  WsOrderWire of async_orders, whose `request` waits for this one answer on its connection);
  both halves of the answer are acted on.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from pipeline.gateway.journal import JournalWriteError
from pipeline.gateway.orders import Order, OrderState
from pipeline.gateway.rest import Outcome
from pipeline.logs import order_log

log = logging.getLogger("pipeline.gateway")

TYPES = {1: "LIMIT", 2: "MARKET", 3: "LIMIT_MAKER"}
TIFS = {1: "GTC", 2: "IOC", 3: "FOK"}
SIDES = {1: "BUY", -1: "SELL"}


def order_params(ex, order: Order) -> dict[str, Any]:
    """The new-order parameters of `order` as the venue wants them (the signer's spelling)."""
    r = ex.rules[order.symbol_id]
    p: dict[str, Any] = {"symbol": order.symbol, "side": SIDES[order.side],
                         "type": TYPES[order.order_type],
                         "quantity": f"{order.qty:.{r.qty_decimals}f}",
                         "newClientOrderId": order.cid, "newOrderRespType": "FULL"}
    if order.order_type != 2:
        p["price"] = f"{order.price:.{r.price_decimals}f}"
    if order.order_type == 1:
        p["timeInForce"] = TIFS.get(order.tif, "GTC")
    stp = getattr(ex.signer, "stp_mode", "")
    if stp:                                # as the signer puts it on every new order
        p["selfTradePreventionMode"] = stp
    return p


class BinanceIntents:
    def cancel_intent(self, order: Order, why: str) -> bool:
        """DELETE /api/v3/order for one of our orders; True if the venue cancelled it."""
        self.heartbeat()
        r = self.rest.signed("DELETE", "/api/v3/order",
                           {"symbol": order.symbol, "origClientOrderId": order.cid},
                           timeout=(self.cfg.connect_timeout_s, self.cfg.request_timeout_s))
        self.journal.write("cancel", cid=order.cid, why=why, **r.summary())
        self.count("cancels")
        if r.outcome is Outcome.OK and isinstance(r.data, dict):
            self.apply_status(order, r.data, "cancel")
            return True
        self.count("cancel_refused")
        msg = f"{r.status} {r.code} {r.msg}".strip()
        order_log("CANCEL_REFUSED", order.cid, logging.INFO, symbol=order.symbol, why=msg)
        if self.feedback is not None:
            self.feedback.cancel_refused(order, msg)
        if r.outcome is Outcome.BANNED:
            self.halt(f"HTTP 418 from the venue: {r.msg}")
        return False

    def replace_intent(self, old: Order, new: Order) -> None:
        """POST /api/v3/order/cancelReplace (STOP_ON_FAILURE): cancel `old`, then place `new` (an
        order of the book of record, its risk already judged). Acts on both halves of the answer."""
        params = order_params(self, new)
        params.update(cancelReplaceMode="STOP_ON_FAILURE", cancelOrigClientOrderId=old.cid)
        # the WebSocket API's order.cancelReplace when transport = ws_api (the request/answer
        # client, or the pipelined WsOrderWire of async_orders: its request() waits for this
        # one answer on its connection); REST otherwise
        ws = getattr(self, "ws", None)
        ws = ws if ws is not None and hasattr(ws, "request") else None
        via, method, path = ("ws_api", "order.cancelReplace", None) if ws is not None else \
            ("rest", "POST", "/api/v3/order/cancelReplace")
        new.attempts += 1
        new.ts_ms = self.clock.timestamp_ms()
        try:
            if getattr(self.journal, "writes_orders", False):
                self._journal_order(new)               # the binary journal's ORDER record
            self.journal.write("request", cid=new.cid, via=via, method=method,
                             path=path, replaces=old.cid,
                             attempt=new.attempts, ts_ms=new.ts_ms,
                             body="&".join(f"{k}={v}" for k, v in params.items()))
            self.journal.commit()                      # write-ahead: on disk before it goes out
        except JournalWriteError as exc:
            self.count("journal_write_failed")
            self.set_state(new, OrderState.REJECTED, f"not sent: journal write failed: {exc}")
            return
        self.heartbeat()
        order_log("SENT", new.cid, symbol=new.symbol, side=SIDES.get(new.side), qty=new.qty,
                  price=None if new.price != new.price else new.price, replaces=old.cid,
                  via=via)
        if ws is not None:
            self.heartbeat()
            r = ws.request("order.cancelReplace", params)
            self.heartbeat()
        else:
            r = self.rest.signed("POST", "/api/v3/order/cancelReplace", params,
                               timeout=(self.cfg.connect_timeout_s, self.cfg.request_timeout_s))
        self.journal.write("response", cid=new.cid, attempt=new.attempts, **r.summary())
        self.count("replaces")
        body = r.data if isinstance(r.data, dict) else {}
        if r.outcome is Outcome.OK:
            self.consecutive_rejects = 0
            self.apply_status(old, body.get("cancelResponse") or {}, "replace")
            self.apply_status(new, body.get("newOrderResponse") or {}, "response")
            if new.state is OrderState.NEW:
                self.set_state(new, OrderState.ACK, "accepted")
            return
        if r.outcome is Outcome.UNKNOWN:
            self.count("unknown_outcomes")
            new.polls = 0
            new.next_poll_mono = time.perf_counter_ns() + self.cfg.unknown_poll_ms * 1_000_000
            self.set_state(new, OrderState.UNKNOWN, f"cancel/replace outcome unknown: {r.msg}")
            return
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        cres, nres = data.get("cancelResult"), data.get("newOrderResult")
        c_resp = data.get("cancelResponse") if isinstance(data.get("cancelResponse"), dict) else {}
        n_resp = data.get("newOrderResponse") if isinstance(data.get("newOrderResponse"),
                                                            dict) else {}
        if cres == "SUCCESS":
            self.apply_status(old, c_resp, "replace")
        elif cres == "FAILURE":
            msg = f"{r.status} {c_resp.get('code', r.code)} {c_resp.get('msg', r.msg)}"
            self.count("cancel_refused")
            if self.feedback is not None:
                self.feedback.cancel_refused(old, msg)
        if nres == "SUCCESS":
            self.apply_status(new, n_resp, "response")
            if new.state is OrderState.NEW:
                self.set_state(new, OrderState.ACK, "accepted")
            return
        self.count("rejects")
        if nres == "NOT_ATTEMPTED":
            why = f"{r.status} {r.code} cancel/replace: the cancel failed, not attempted"
        elif nres == "FAILURE":
            why = f"{r.status} {n_resp.get('code', r.code)} {n_resp.get('msg', r.msg)}"
        else:
            why = f"{r.status} {r.code} {r.msg}"
        self.set_state(new, OrderState.REJECTED, why)
        if r.outcome is Outcome.BANNED:
            self.halt(f"HTTP 418 from the venue: {r.msg}")


__all__ = ["BinanceIntents", "order_params"]
