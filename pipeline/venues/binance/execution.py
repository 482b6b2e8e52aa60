"""Order execution on Binance spot (REST /api/v3, WebSocket API order.place, the user-data
stream): the gateway's `Execution` (order table, fills, positions, the state machine, UNKNOWN
handling: pipeline/gateway/execution.py) speaking Binance's order API. The simulator speaks it too.

- `_write` / `_send`: POST /api/v3/order (the order wire with async_orders, or the loop's REST
  session), or WS-API order.place; -1021 → clock resync and exactly one retry (clock_reject_code).
- `resolve()`: an UNKNOWN order is asked for by origClientOrderId with doubling back-off. Found →
  its venue status and its trades (GET myTrades?orderId). "Does not exist" (-2013)
  `unknown_max_polls` times AND past the request's recvWindow (the venue can no longer accept
  it) → LOST. Nothing is resubmitted.
- `on_event()` applies user-data stream executionReports; `apply_status()` any order JSON.
- cancels: DELETE /api/v3/openOrders per symbol (the halt), DELETE /api/v3/order by client id.
"""
from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from pipeline.gateway import orders as om
from pipeline.gateway.execution import RECV_WINDOW_MARGIN_MS, Execution, fnum
from pipeline.gateway.journal import JournalWriteError
from pipeline.gateway.orders import Order, OrderState
from pipeline.gateway.rest import Outcome, Reply
from pipeline.venues.binance.intents import BinanceIntents
from pipeline.venues.binance.rest import ORDER_PATH, strip_signature

log = logging.getLogger("pipeline.gateway.execution")
SIDE_OF = {"BUY": 1, "SELL": -1}
CLOCK_REJECT = -1021          # "timestamp outside of the recvWindow"
NO_ORDER = -2013              # "order does not exist"


class BinanceExecution(BinanceIntents, Execution):
    """Execution against Binance spot (rest: pipeline.venues.binance.rest.RestClient; ws: a
    WS-API order client when transport = ws_api)."""

    clock_reject_code = CLOCK_REJECT

    # ------------------------------------------------------------------ order JSON
    def apply_status(self, order: Order, data: dict, source: str) -> None:
        """An order as the venue reports it (POST/GET/DELETE /api/v3/order, openOrders, WS-API)."""
        try:
            oid = int(data.get("orderId", -1))
        except (TypeError, ValueError):
            oid = -1
        self.table.set_order_id(order, oid)
        for fl in data.get("fills") or ():
            self.fill(order, symbol=order.symbol, trade_id=int(fnum(fl.get("tradeId"), -1)),
                      side=order.side, qty=fnum(fl.get("qty")), price=fnum(fl.get("price")),
                      commission=fnum(fl.get("commission")),
                      asset=str(fl.get("commissionAsset", "")),
                      source=source)
        status = data.get("status")
        new = om.VENUE_STATUS.get(status) if isinstance(status, str) else None
        if new is None:
            if order.state in (OrderState.NEW, OrderState.UNKNOWN) and oid >= 0:
                new = OrderState.ACK      # newOrderRespType=ACK: accepted, no status
            else:
                return
        executed = fnum(data.get("executedQty"), order.filled)
        if new in om.TERMINAL and new is not OrderState.FILLED:
            self._release(order, executed)
        if new is OrderState.PARTIALLY_FILLED and order.state is OrderState.PARTIALLY_FILLED:
            return
        self.set_state(order, new, f"venue {status} ({source})", executed=executed)

    def on_event(self, ev: dict) -> None:
        """One user-data stream event."""
        if ev.get("e") != "executionReport":
            self.count(f"stream_{ev.get('e', 'unknown')}")
            return
        symbol = str(ev.get("s", ""))
        cid = str(ev.get("C") or ev.get("c") or "")
        order = self.table.get(cid)
        if order is None:
            try:
                order = self.table.by_order_id(symbol, int(ev.get("i", -1)))
            except (TypeError, ValueError):
                order = None
        if ev.get("x") == "TRADE":
            try:
                tid = int(ev["t"])
            except (KeyError, TypeError, ValueError):
                tid = -1                            # refused by fill() (counted, logged)
            side = order.side if order is not None else SIDE_OF.get(ev.get("S"), 0)
            self.fill(order, symbol=symbol, trade_id=tid, side=side,
                      qty=fnum(ev.get("l")), price=fnum(ev.get("L")), commission=fnum(ev.get("n")),
                      asset=str(ev.get("N") or ""), source="stream",
                      order_id=int(fnum(ev.get("i"), -1)))
        if order is None:
            key = (symbol, int(fnum(ev.get("i"), -1)))
            if self.table.is_retired(cid) or self.table.retired_order(*key) is not None:
                self.count("events_of_retired")     # a late copy: the order is final, settled
                return
            if key not in self.foreign:
                self.foreign[key] = {"symbol": symbol, "orderId": key[1], "clientOrderId": cid,
                                     "status": ev.get("X")}
                self.journal.write("foreign_order", symbol=symbol, order_id=key[1], cid=cid,
                                   status=ev.get("X"), source="stream")
                log.warning("user stream: order %s/%s (%s) is not ours", symbol, key[1], cid)
            return
        self.apply_status(order, {"orderId": ev.get("i"), "status": ev.get("X"),
                                  "executedQty": ev.get("z")}, "stream")

    # ------------------------------------------------------------------ placing
    def _write(self, order: Order, body: bytes) -> Reply | None:
        """Journal the request (write-ahead) and send it. Never raises: a journal that cannot
        write → NOT_SENT (nothing went out); any other error → NOT_SENT before the send call,
        UNKNOWN once the request may have been handed to the transport. With a wire (REST), the
        body is handed to the wire and None returned: the reply comes to on_reply later."""
        order.attempts += 1
        order.ts_ms = _ts_of(body)
        failed = self._journal_request(order, body)
        return failed if failed is not None else self._send(order, body)

    def _journal_request(self, order: Order, body: bytes) -> Reply | None:
        """The write-ahead record(s) of this attempt, on disk as the fsync policy says; None, or
        the NOT_SENT reply when they could not be written (then nothing may be sent)."""
        try:
            if getattr(self.journal, "writes_orders", False):
                self._journal_order(order)
            elif self.ws is not None:
                self.journal.write("request", cid=order.cid, via="ws_api", method="order.place",
                                   body=strip_signature(body), attempt=order.attempts)
            else:
                self.journal.write("request", cid=order.cid, via="rest", method="POST",
                                   path=ORDER_PATH, body=strip_signature(body),
                                   attempt=order.attempts)
            self.journal.commit()                  # write-ahead: on disk before it goes out
        except JournalWriteError as exc:
            self.count("journal_write_failed")
            return Reply(Outcome.NOT_SENT, msg=f"journal write failed, not sent: {exc}")
        except Exception as exc:  # noqa: BLE001 - nothing was sent; the order must not hang
            self.count("internal_errors")
            log.exception("order %s: error before sending", order.cid)
            return Reply(Outcome.NOT_SENT, msg=f"internal error before sending: "
                                               f"{type(exc).__name__}")
        return None

    def _send(self, order: Order, body: bytes) -> Reply | None:
        """Hand the journalled request to its transport (see _write)."""
        try:
            if self.ws is not None:
                params = dict(parse_qsl(strip_signature(body), keep_blank_values=True))
                if hasattr(self.ws, "put"):         # WsOrderWire: sent, answered later (pump)
                    self.inflight[order.cid] = order
                    self.ws.put(order.cid, params, order.not_after_mono)
                    return None
                return self.ws.request("order.place", params, fresh_timestamp=False)
            if self.wire is not None:
                self.inflight[order.cid] = order
                self.wire.put(order.cid, body, order.not_after_mono)
                return None
            return self.rest.send("POST", ORDER_PATH, body=body)
        except Exception as exc:  # noqa: BLE001 - the request may be out: find out, never resend
            self.inflight.pop(order.cid, None)
            self.count("internal_errors")
            log.exception("order %s: error while sending; outcome unknown", order.cid)
            return Reply(Outcome.UNKNOWN, msg=f"internal error while sending: "
                                              f"{type(exc).__name__}",
                         done_mono=time.perf_counter_ns())

    # ------------------------------------------------------------------ UNKNOWN resolution
    def resolve(self, order: Order) -> None:
        r = self.rest.signed("GET", ORDER_PATH,
                             {"symbol": order.symbol, "origClientOrderId": order.cid})
        self.journal.write("query", cid=order.cid, poll=order.polls + 1, **r.summary())
        delay = min(self.cfg.unknown_poll_max_ms, self.cfg.unknown_poll_ms * 2 ** order.polls)
        if r.outcome is Outcome.OK and isinstance(r.data, dict):
            self.apply_status(order, r.data, "query")
            if fnum(r.data.get("executedQty")) > order.filled:
                self.fetch_trades(order.symbol, order_id=order.order_id)
            return
        if r.outcome is Outcome.REJECTED and r.code == NO_ORDER:
            order.polls += 1
            past_window = self.clock.timestamp_ms() > getattr(order, "ts_ms", 0) + \
                self.recv_window_ms + RECV_WINDOW_MARGIN_MS
            if order.polls >= self.cfg.unknown_max_polls and past_window:
                self.declare_lost(order)            # exposure kept until confirm_lost()
                return
        elif r.outcome is Outcome.BANNED:
            self.halt(f"HTTP 418 from the venue: {r.msg}")
        order.next_poll_mono = time.perf_counter_ns() + delay * 1_000_000

    def fetch_trades(self, symbol: str, *, order_id: int = -1, limit: int = 100) -> int:
        params: dict[str, Any] = {"symbol": symbol, "limit": limit}
        if order_id >= 0:
            params["orderId"] = order_id
        r = self.rest.signed("GET", "/api/v3/myTrades", params)
        if r.outcome is not Outcome.OK or not isinstance(r.data, list):
            self.journal.write("query", what="myTrades", symbol=symbol, **r.summary())
            return -1
        new = 0
        for t in r.data:
            if not isinstance(t, dict):
                continue
            oid = int(fnum(t.get("orderId"), -1))
            order = self.table.by_order_id(symbol, oid)
            if order is not None:
                side = order.side
            else:
                buyer = t.get("isBuyer")
                side = 1 if buyer is True else -1 if buyer is False else 0
            if self.fill(order, symbol=symbol, trade_id=int(fnum(t.get("id"), -1)),
                         side=side, qty=fnum(t.get("qty")),
                         price=fnum(t.get("price")), commission=fnum(t.get("commission")),
                         asset=str(t.get("commissionAsset", "")), source="query", order_id=oid):
                new += 1
        return new

    # ------------------------------------------------------------------ cancelling
    def cancel_all(self, symbols: list[str], why: str) -> int:
        """DELETE /api/v3/openOrders for every symbol; returns the orders the venue cancelled."""
        n = 0
        for sym in symbols:
            self.heartbeat()
            r = self.rest.signed("DELETE", "/api/v3/openOrders", {"symbol": sym},
                                 timeout=(self.cfg.connect_timeout_s, 0.8))
            self.journal.write("cancel_all", symbol=sym, why=why, **r.summary())
            if r.outcome is Outcome.OK and isinstance(r.data, list):
                for item in r.data:
                    if not isinstance(item, dict):
                        continue
                    cid = str(item.get("origClientOrderId") or item.get("clientOrderId") or "")
                    order = self.table.get(cid)
                    if order is not None:
                        self.apply_status(order, item, "cancel")
                    n += 1
            elif r.outcome is Outcome.BANNED:
                self.halt(f"HTTP 418 from the venue: {r.msg}")
        return n

    def audit(self, orders: list[Order], why: str) -> int:
        """Ask the venue for each order's status (and its trades when it filled more than we
        know): after a user-stream gap, or periodically while there is no stream."""
        n = 0
        for o in orders:
            if not o.is_open or o.state is OrderState.UNKNOWN:
                continue            # UNKNOWN orders have their own back-off
            self.heartbeat()
            r = self.rest.signed("GET", ORDER_PATH,
                                 {"symbol": o.symbol, "origClientOrderId": o.cid})
            self.journal.write("query", cid=o.cid, why=why, **r.summary())
            if r.outcome is Outcome.OK and isinstance(r.data, dict):
                n += 1
                executed = fnum(r.data.get("executedQty"))
                known = o.filled
                # the status first: it sets the venue order id, so fetch_trades recognises the
                # order's trades as ours (else they would be reported as foreign)
                self.apply_status(o, r.data, why)
                if executed > known + 1e-12:
                    self.fetch_trades(o.symbol, order_id=o.order_id)
            elif r.outcome is Outcome.BANNED:
                self.halt(f"HTTP 418 from the venue: {r.msg}")
                break
        self.count("audits")
        return n

    def cancel_ours(self, why: str) -> int:
        """Cancel each of our open orders by client id (shutdown: other orders are left alone).
        UNKNOWN orders too: one may be resting on the venue (if it never got there the venue
        answers -2011, which changes nothing here)."""
        n = 0
        for o in self.table.open_orders():
            self.heartbeat()
            r = self.rest.signed("DELETE", ORDER_PATH,
                                 {"symbol": o.symbol, "origClientOrderId": o.cid},
                                 timeout=(self.cfg.connect_timeout_s, 0.8))
            self.journal.write("cancel", cid=o.cid, why=why, **r.summary())
            if r.outcome is Outcome.OK and isinstance(r.data, dict):
                self.apply_status(o, r.data, "cancel")
                n += 1
        return n


def _ts_of(body: bytes) -> int:
    i = body.rfind(b"timestamp=")
    if i < 0:
        return 0
    j = i + 10
    k = j
    while k < len(body) and 48 <= body[k] <= 57:
        k += 1
    try:
        return int(body[j:k])
    except ValueError:
        return 0


__all__ = ["BinanceExecution"]
