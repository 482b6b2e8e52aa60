"""Cancel and cancel/replace intents through the gateway (the strategy's `Cancel` / `Replace`).

A signal record's `action` byte (pipeline/records.py) says what it asks for:

    NEW      a new order (every signal before actions existed): the risk kernel, sign, send
    CANCEL   cancel the strategy's order named by the record's own (strategy_id, epoch, seq); a
             cancel is not an order: it takes no number, the risk kernel does not judge it (a
             cancel only ever lowers risk) and it is sent even when HALTED or late
    REPLACE  the record is a new order (numbered, judged by the risk kernel like any other) that
             replaces the strategy's order `replace_back` numbers before it in the same epoch:
             Binance POST /api/v3/order/cancelReplace, cancelReplaceMode STOP_ON_FAILURE (if the
             cancel fails the new order is not placed)

Both are journalled (write-ahead: the request record before it goes out) and answered to the
strategy through the order-event ring: CANCELLED (the old order), CANCEL_REJECTED (the venue
refused the cancel: the order still works, or it was already done), and for a replace the new
order's own events (ACCEPTED / FILL / REJECTED "not attempted" when the cancel failed). A request
whose fate is unknown (timeout, 5xx) makes the new order UNKNOWN (resolved by its client id like
any other) and leaves the old one to the next status query.

These requests are synchronous REST calls on the loop (like the halt's cancel-all): the hot path
stays the new-order path.
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


def cancel(ex, order: Order, why: str) -> bool:
    """DELETE /api/v3/order for one of our orders; True if the venue cancelled it. A venue's
    execution with its own intents (OKX: okx_execution.py) does it its way."""
    if hasattr(ex, "cancel_intent"):
        return ex.cancel_intent(order, why)
    ex.heartbeat()
    r = ex.rest.signed("DELETE", "/api/v3/order",
                       {"symbol": order.symbol, "origClientOrderId": order.cid},
                       timeout=(ex.cfg.connect_timeout_s, ex.cfg.request_timeout_s))
    ex.journal.write("cancel", cid=order.cid, why=why, **r.summary())
    ex.count("cancels")
    if r.outcome is Outcome.OK and isinstance(r.data, dict):
        ex.apply_status(order, r.data, "cancel")
        return True
    ex.count("cancel_refused")
    msg = f"{r.status} {r.code} {r.msg}".strip()
    order_log("CANCEL_REFUSED", order.cid, logging.INFO, symbol=order.symbol, why=msg)
    if ex.feedback is not None:
        ex.feedback.cancel_refused(order, msg)
    if r.outcome is Outcome.BANNED:
        ex.halt(f"HTTP 418 from the venue: {r.msg}")
    return False


def replace(ex, old: Order, new: Order) -> None:
    """POST /api/v3/order/cancelReplace (STOP_ON_FAILURE): cancel `old`, then place `new` (an
    order of the book of record, its risk already judged). Acts on both halves of the answer."""
    if hasattr(ex, "replace_intent"):             # a venue's own (OKX: okx_execution.py)
        return ex.replace_intent(old, new)
    params = order_params(ex, new)
    params.update(cancelReplaceMode="STOP_ON_FAILURE", cancelOrigClientOrderId=old.cid)
    # the WebSocket API's order.cancelReplace on a request/answer WS-API client (transport =
    # ws_api); REST otherwise (also beside the pipelined WsOrderWire, which only places)
    ws = getattr(ex, "ws", None)
    ws = ws if ws is not None and hasattr(ws, "request") and not hasattr(ws, "put") else None
    via, method, path = ("ws_api", "order.cancelReplace", None) if ws is not None else \
        ("rest", "POST", "/api/v3/order/cancelReplace")
    new.attempts += 1
    new.ts_ms = ex.clock.timestamp_ms()
    try:
        if getattr(ex.journal, "writes_orders", False):
            ex._journal_order(new)               # the binary journal's ORDER record
        ex.journal.write("request", cid=new.cid, via=via, method=method,
                         path=path, replaces=old.cid,
                         attempt=new.attempts, ts_ms=new.ts_ms,
                         body="&".join(f"{k}={v}" for k, v in params.items()))
        ex.journal.commit()                      # write-ahead: on disk before it goes out
    except JournalWriteError as exc:
        ex.count("journal_write_failed")
        ex.set_state(new, OrderState.REJECTED, f"not sent: journal write failed: {exc}")
        return
    ex.heartbeat()
    order_log("SENT", new.cid, symbol=new.symbol, side=SIDES.get(new.side), qty=new.qty,
              price=None if new.price != new.price else new.price, replaces=old.cid,
              via=via)
    if ws is not None:
        ex.heartbeat()
        r = ws.request("order.cancelReplace", params)
        ex.heartbeat()
    else:
        r = ex.rest.signed("POST", "/api/v3/order/cancelReplace", params,
                           timeout=(ex.cfg.connect_timeout_s, ex.cfg.request_timeout_s))
    ex.journal.write("response", cid=new.cid, attempt=new.attempts, **r.summary())
    ex.count("replaces")
    body = r.data if isinstance(r.data, dict) else {}
    if r.outcome is Outcome.OK:
        ex.consecutive_rejects = 0
        ex.apply_status(old, body.get("cancelResponse") or {}, "replace")
        ex.apply_status(new, body.get("newOrderResponse") or {}, "response")
        if new.state is OrderState.NEW:
            ex.set_state(new, OrderState.ACK, "accepted")
        return
    if r.outcome is Outcome.UNKNOWN:
        ex.count("unknown_outcomes")
        new.polls = 0
        new.next_poll_mono = time.perf_counter_ns() + ex.cfg.unknown_poll_ms * 1_000_000
        ex.set_state(new, OrderState.UNKNOWN, f"cancel/replace outcome unknown: {r.msg}")
        return
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    cres, nres = data.get("cancelResult"), data.get("newOrderResult")
    c_resp = data.get("cancelResponse") if isinstance(data.get("cancelResponse"), dict) else {}
    n_resp = data.get("newOrderResponse") if isinstance(data.get("newOrderResponse"),
                                                        dict) else {}
    if cres == "SUCCESS":
        ex.apply_status(old, c_resp, "replace")
    elif cres == "FAILURE":
        msg = f"{r.status} {c_resp.get('code', r.code)} {c_resp.get('msg', r.msg)}"
        ex.count("cancel_refused")
        if ex.feedback is not None:
            ex.feedback.cancel_refused(old, msg)
    if nres == "SUCCESS":
        ex.apply_status(new, n_resp, "response")
        if new.state is OrderState.NEW:
            ex.set_state(new, OrderState.ACK, "accepted")
        return
    ex.count("rejects")
    if nres == "NOT_ATTEMPTED":
        why = f"{r.status} {r.code} cancel/replace: the cancel failed, not attempted"
    elif nres == "FAILURE":
        why = f"{r.status} {n_resp.get('code', r.code)} {n_resp.get('msg', r.msg)}"
    else:
        why = f"{r.status} {r.code} {r.msg}"
    ex.set_state(new, OrderState.REJECTED, why)
    if r.outcome is Outcome.BANNED:
        ex.halt(f"HTTP 418 from the venue: {r.msg}")

