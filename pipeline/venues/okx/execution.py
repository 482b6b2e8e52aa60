"""Order execution on OKX v5: the gateway's `Execution` (order table, fills, positions, the state
machine, UNKNOWN handling) speaking OKX's order API (pipeline/venues/okx/orders.py).

- `submit()` writes the order signed by the compiled OKX order path (POST /api/v5/trade/order, or
  op "order" on the private WebSocket) and acts on the classified answer (okx_rest.classify):
  OK → ACK (fills come from the `orders` channel, or a fills query); 50102 (timestamp expired)
  → clock resync and exactly one retry with a fresh timestamp and the same clOrdId; other codes →
  REJECTED; timeout / 5xx / 50001 / 50004 / 50013 → UNKNOWN.
- `resolve()`: an UNKNOWN order is asked for by clOrdId (GET /api/v5/trade/order) with doubling
  back-off; 51603 "does not exist" `unknown_max_polls` times and past the request's expTime (the
  venue can no longer accept it) → LOST. Nothing is resubmitted: the clOrdId is the idempotency key.
- `on_event()` applies an `orders` channel push (state, and the fill it carries: tradeId, fillSz,
  fillPx, fillFee); `apply_status()` any OKX order JSON (query, push, pending list).
- cancels: cancel-order by clOrdId (a strategy's CANCEL); the HALT's cancel of a symbol's
  pending orders (by ordId) and the shutdown's of ours (by clOrdId) are batch cancels, 20 a
  request (`cancel_batch`: the private WebSocket's batch-cancel-orders with transport =
  "ws_api", else REST cancel-batch-orders); each order is then queried once for its final state
  and filled size.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from pipeline.gateway.execution import RETRY_SYNC_BUDGET_S, RECV_WINDOW_MARGIN_MS, Execution, fnum
from pipeline.gateway.journal import JournalWriteError
from pipeline.venues.okx.amends import AmendLinks
from pipeline.venues.okx.intents import OkxIntents
from pipeline.gateway.orders import TERMINAL, Order, OrderState
from pipeline.gateway.rest import Outcome, Reply
from pipeline.logs import order_log
from pipeline.venues.okx import orders as ox

log = logging.getLogger(__name__)
TIMESTAMP_EXPIRED = int(ox.TIMESTAMP_EXPIRED)
NO_ORDER = int(ox.NO_ORDER)
STATES = {k: OrderState(v) for k, v in ox.STATE.items()}


class OkxExecution(OkxIntents, Execution):
    """Execution against OKX (rest: pipeline.venues.okx.rest.OkxRest; ws: okx_stream.OkxPrivate
    when orders go over the private WebSocket)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.amends = AmendLinks()        # orders that took over another's clOrdId by an amend

    journal_kinds = frozenset({"amend"})

    def replay(self, rec: dict) -> None:
        self.amends.replay(rec)

    # ------------------------------------------------------------------ placing
    def send_args(self, path) -> None:
        """No compiled journal + send for OKX (ext/orderpath.pyx writes Binance requests): the
        order path signs, `submit` journals (the binary journal's ORDER record too) and sends."""
        return None

    def encode_fields(self, symbol_id, side, order_type, tif, qty, price, cid, timestamp_ms):
        r = self.rules[symbol_id]
        qu = round(qty * 10 ** r.qty_decimals)
        pu = 0 if order_type == 2 else round(price * 10 ** r.price_decimals)
        return self.signer.encode_sign(symbol_id, side, order_type, tif, qu, pu,
                                       ox.wire_cid(cid).encode(), timestamp_ms)

    def _write(self, order: Order, blob: bytes) -> Reply | None:
        from pipeline.venues.okx.okx_sign_py import HEAD, TS_LEN
        order.attempts += 1
        try:
            order.ts_ms = ox.parse_iso_ms(blob[:TS_LEN].decode())
        except (UnicodeDecodeError, ValueError):
            order.ts_ms = 0
        body = blob[HEAD:]
        via = "ws" if self.ws is not None else "rest"
        try:
            if getattr(self.journal, "writes_orders", False):
                self._journal_order(order)
            else:
                self.journal.write("request", cid=order.cid, via=via, method="POST",
                                   path=ox.ORDER_PATH, body=body.decode(), attempt=order.attempts,
                                   ts_ms=order.ts_ms)     # the expTime base after a restart
            self.journal.commit()
        except JournalWriteError as exc:
            self.count("journal_write_failed")
            return Reply(Outcome.NOT_SENT, msg=f"journal write failed, not sent: {exc}")
        except Exception as exc:  # noqa: BLE001 - nothing was sent
            self.count("internal_errors")
            log.exception("order %s: error before sending", order.cid)
            return Reply(Outcome.NOT_SENT, msg=f"internal error before sending: "
                                               f"{type(exc).__name__}")
        exp = order.ts_ms + self.recv_window_ms
        try:
            if self.ws is not None:
                self.inflight[order.cid] = order
                self.ws.put(order.cid, body, exp, order.not_after_mono)
                return None
            return self.rest.order(blob, exp)
        except Exception as exc:  # noqa: BLE001 - the request may be out: find out, never resend
            self.inflight.pop(order.cid, None)
            self.count("internal_errors")
            log.exception("order %s: error while sending; outcome unknown", order.cid)
            return Reply(Outcome.UNKNOWN, msg=f"internal error while sending: "
                                              f"{type(exc).__name__}",
                         done_mono=time.perf_counter_ns())

    @property
    def _order_wire(self):
        return self.ws if self.ws is not None and hasattr(self.ws, "put") else None

    def on_reply(self, order: Order, reply: Reply) -> Reply | None:
        if isinstance(reply.data, list):        # one order per request: its result
            reply.data = reply.data[0] if reply.data and isinstance(reply.data[0], dict) else None
        if reply.outcome is Outcome.REJECTED and reply.code == TIMESTAMP_EXPIRED \
                and order.attempts == 1:
            order.stamps["written"] = reply.written_mono
            order.stamps["response"] = reply.done_mono
            self._journal_reply(order, reply)
            self.count("retries_50102")
            log.warning("order %s: 50102 (%s); resyncing the clock and retrying once",
                        order.cid, reply.msg)
            self.clock.sync(deadline_s=RETRY_SYNC_BUDGET_S)
            self.heartbeat()
            self.journal.write("clock", why="50102", **self.clock.snapshot())
            return self.submit(order, self.encode(order, self.clock.timestamp_ms()))
        if reply.outcome is Outcome.REJECTED and reply.code == TIMESTAMP_EXPIRED:
            self.clock.strike()
            if self.clock.skewed:
                self.halt("clock skew: 50102 persists after resync")
        return super().on_reply(order, reply)

    # ------------------------------------------------------------------ venue order JSON
    def apply_status(self, order: Order, data: dict, source: str) -> None:
        """An OKX order (place/cancel result, query, pending list or orders push)."""
        try:
            oid = int(data.get("ordId") or -1)
        except (TypeError, ValueError):
            oid = -1
        self.table.set_order_id(order, oid)
        tid = str(data.get("tradeId") or "")
        if tid and fnum(data.get("fillSz")) > 0:
            self.fill(order, symbol=order.symbol, trade_id=int(tid) if tid.isdigit() else -1,
                      side=order.side, qty=fnum(data.get("fillSz")),
                      price=fnum(data.get("fillPx")), commission=-fnum(data.get("fillFee")),
                      asset=str(data.get("fillFeeCcy") or ""), source=source)
        state = data.get("state")
        new = STATES.get(state) if isinstance(state, str) else None
        if new is None:
            if order.state in (OrderState.NEW, OrderState.UNKNOWN) and oid >= 0 \
                    and str(data.get("sCode", "0")) == "0":
                new = OrderState.ACK          # a place result: accepted, no state yet
            else:
                return
        base = self.amends.base(order.cid)      # filled before an amend made it this order's
        executed = fnum(data.get("accFillSz"), order.filled + base) - base
        if executed > order.filled + 1e-12:
            # more filled than the fills we know (a query carries only the last fill, a push may
            # have been missed): the order's fills, deduplicated by trade id
            self.fetch_trades(order.symbol, order_id=order.order_id)
        if new in TERMINAL and new is not OrderState.FILLED:
            self._release(order, executed)
        if new is OrderState.PARTIALLY_FILLED and order.state is OrderState.PARTIALLY_FILLED:
            return
        if new is OrderState.ACK and order.state is OrderState.PARTIALLY_FILLED:
            return
        self.set_state(order, new, f"venue {state} ({source})", executed=executed)
        if new in TERMINAL:
            self.amends.drop(order.cid)

    def on_event(self, ev: dict) -> None:
        """One `orders` channel item (okx_stream.OkxPrivate puts each data item)."""
        inst = str(ev.get("instId", ""))
        cid = self.amends.cid_of(str(ev.get("clOrdId") or ""))
        order = self.table.get(cid) if cid else None
        if order is None:
            try:
                order = self.table.by_order_id(inst, int(ev.get("ordId") or -1))
            except (TypeError, ValueError):
                order = None
        if order is None:
            key = (inst, int(fnum(ev.get("ordId"), -1)))
            if (cid and self.table.is_retired(cid)) or self.table.retired_order(*key) is not None:
                self.count("events_of_retired")     # a late copy: the order is final, settled
                return
            if key not in self.foreign:
                self.foreign[key] = {"symbol": inst, "orderId": key[1],
                                     "clientOrderId": ev.get("clOrdId"), "status": ev.get("state")}
                self.journal.write("foreign_order", symbol=inst, order_id=key[1],
                                   cid=str(ev.get("clOrdId") or ""), status=ev.get("state"),
                                   source="stream")
                log.warning("orders channel: order %s/%s (%s) is not ours", inst, key[1],
                            ev.get("clOrdId"))
            return
        self.apply_status(order, ev, "stream")
        if str(ev.get("amendResult", "")) == "-1":
            self.on_amend_failed(order, ev)

    # ------------------------------------------------------------------ queries
    def query(self, order: Order, why: str, **kw: Any) -> Reply:
        r = self.rest.get(ox.ORDER_PATH, {"instId": order.symbol,
                                          "clOrdId": self.amends.cl_ord_id(order.cid)},
                          endpoint=ox.ORDER_PATH + " GET", **kw)
        self.journal.write("query", cid=order.cid, why=why, **r.summary())
        return r

    def resolve(self, order: Order) -> None:
        r = self.query(order, f"unknown poll {order.polls + 1}")
        delay = min(self.cfg.unknown_poll_max_ms, self.cfg.unknown_poll_ms * 2 ** order.polls)
        if r.outcome is Outcome.OK and r.data and isinstance(r.data[0], dict):
            self.apply_status(order, r.data[0], "query")
            return
        if r.outcome is Outcome.REJECTED and r.code == NO_ORDER:
            order.polls += 1
            past = self.clock.timestamp_ms() > order.ts_ms + self.recv_window_ms + \
                RECV_WINDOW_MARGIN_MS
            if order.polls >= self.cfg.unknown_max_polls and past:
                self.declare_lost(order)            # exposure kept until confirm_lost()
                return
        order.next_poll_mono = time.perf_counter_ns() + delay * 1_000_000

    def fetch_trades(self, symbol: str, *, order_id: int = -1, limit: int = 100) -> int:
        r = self.rest.get(ox.FILLS_PATH, {"instType": "SPOT", "instId": symbol,
                                          "ordId": order_id if order_id >= 0 else None,
                                          "limit": limit})
        if r.outcome is not Outcome.OK or not isinstance(r.data, list):
            self.journal.write("query", what="fills", symbol=symbol, **r.summary())
            return -1
        new = 0
        for t in reversed(r.data):                    # OKX lists the newest first
            if not isinstance(t, dict):
                continue
            oid = int(fnum(t.get("ordId"), -1))
            order = self.table.by_order_id(symbol, oid)
            if order is None:
                cid = self.amends.cid_of(str(t.get("clOrdId") or ""))
                order = self.table.get(cid) if cid else None
                if order is not None:
                    self.table.set_order_id(order, oid)
            side = order.side if order is not None else ox.SIDE_OF.get(t.get("side"), 0)
            tid = str(t.get("tradeId") or "")
            if self.fill(order, symbol=symbol, trade_id=int(tid) if tid.isdigit() else -1,
                         side=side, qty=fnum(t.get("fillSz")), price=fnum(t.get("fillPx")),
                         commission=-fnum(t.get("fee")), asset=str(t.get("feeCcy") or ""),
                         source="query", order_id=oid):
                new += 1
        return new

    # ------------------------------------------------------------------ cancelling
    def _after_cancel(self, order: Order, why: str) -> None:
        r = self.query(order, why, timeout=(self.cfg.connect_timeout_s, 0.8))
        if r.outcome is Outcome.OK and r.data and isinstance(r.data[0], dict):
            self.apply_status(order, r.data[0], "cancel")

    def cancel_all(self, symbols: list[str], why: str) -> int:
        """Every open order of the symbols (ours or not): orders-pending, then batch cancels by
        ordId (`cancel_batch`: 20 a request); ours are queried for their final state."""
        n = 0
        for sym in symbols:
            self.heartbeat()
            r = self.rest.get(ox.PENDING_PATH, {"instType": "SPOT", "instId": sym})
            if r.outcome is not Outcome.OK or not isinstance(r.data, list):
                self.journal.write("cancel_all", symbol=sym, why=why, **r.summary())
                continue
            ids = [str(o.get("ordId")) for o in r.data if isinstance(o, dict)]
            for _, item, _, _ in self.cancel_batch([{"instId": sym, "ordId": x} for x in ids],
                                                    why):
                if str(item.get("sCode")) == "0":
                    n += 1
            for o in [o for o in self.table.open_orders() if o.symbol == sym]:
                self._after_cancel(o, "cancel_all")
        return n

    def cancel_ours(self, why: str) -> int:
        """Our open orders (UNKNOWN ones too) by clOrdId, batch-cancelled per symbol (20 a
        request); each then queried for its final state."""
        n = 0
        by_sym: dict[str, list[Order]] = {}
        for o in self.table.open_orders():
            by_sym.setdefault(o.symbol, []).append(o)
        for sym, orders in by_sym.items():
            items = [{"instId": sym, "clOrdId": self.amends.cl_ord_id(o.cid)} for o in orders]
            for o, (_, item, via, rep) in zip(orders, self.cancel_batch(items, why)):
                ok = rep.outcome is not Outcome.UNKNOWN and str(item.get("sCode")) == "0"
                self.journal.write("cancel", cid=o.cid, why=why, via=via, batch=True,
                                   outcome="OK" if ok else rep.outcome.value,
                                   code=str(item.get("sCode", rep.code)),
                                   msg=str(item.get("sMsg", rep.msg))[:300])
                n += ok
            for o in orders:
                self._after_cancel(o, "cancel")
        return n

    def cancel_batch(self, items: list[dict], why: str) -> list[tuple[dict, dict, str, Reply]]:
        """cancel-batch-orders of `items` ({"instId", "ordId" | "clOrdId"}) at most
        ox.MAX_BATCH (20, OKX's limit) a request: over the private WebSocket (op
        batch-cancel-orders) when orders go there, else (or when it is not connected: nothing
        was sent) REST. Each request is journalled ("cancel_all"); returns, per item in order,
        (the item, its result — {} when the request as a whole failed —, "ws" | "rest", the
        request's Reply)."""
        out: list = []
        for i in range(0, len(items), ox.MAX_BATCH):
            self.heartbeat()
            chunk = items[i:i + ox.MAX_BATCH]
            c, via = self.trade_op("batch-cancel-orders", ox.CANCEL_BATCH_PATH, chunk,
                                   fallback=True, timeout=(self.cfg.connect_timeout_s, 0.8))
            self.count("batch_cancels")
            self.journal.write("cancel_all", symbol=chunk[0].get("instId"), why=why,
                               orders=len(chunk), via=via, **c.summary())
            got = [d for d in c.data if isinstance(d, dict)] if isinstance(c.data, list) else []
            by_oid = {d.get("ordId"): d for d in got if d.get("ordId")}
            by_cl = {d.get("clOrdId"): d for d in got if d.get("clOrdId")}
            for req in chunk:
                item = by_oid.get(req["ordId"]) if req.get("ordId") else \
                    by_cl.get(req.get("clOrdId"))
                out.append((req, item or {}, via, c))
        return out

    def trade_op(self, op: str, path: str, args: dict | list, *, fallback: bool = False,
                 **kw: Any) -> tuple[Reply, str]:
        """One cancel-order / amend-order / batch-cancel-orders: over the private WebSocket
        when orders go there (transport = "ws_api": its `request`), else REST; (the answer,
        "ws" or "rest"). fallback: a WebSocket not connected (NOT_SENT: nothing went out) →
        the same request over REST."""
        ws = self.ws
        if ws is not None and hasattr(ws, "request"):
            self.heartbeat()
            r = ws.request(op, args, self.cfg.request_timeout_s)
            self.heartbeat()
            if not (fallback and r.outcome is Outcome.NOT_SENT):
                return r, "ws"
        return self.rest.post(path, args, **kw), "rest"

    def cancel_one(self, order: Order, why: str) -> Reply:
        """Cancel one of our orders by clOrdId (then its final state from a query)."""
        r, via = self.trade_op("cancel-order", ox.CANCEL_PATH,
                               {"instId": order.symbol,
                                "clOrdId": self.amends.cl_ord_id(order.cid)})
        self.journal.write("cancel", cid=order.cid, why=why, via=via, **r.summary())
        self._after_cancel(order, "cancel")
        return r

    def audit(self, orders: list[Order], why: str) -> int:
        n = 0
        for o in orders:
            if not o.is_open or o.state is OrderState.UNKNOWN:
                continue
            self.heartbeat()
            r = self.query(o, why)
            if r.outcome is Outcome.OK and r.data and isinstance(r.data[0], dict):
                n += 1
                self.apply_status(o, r.data[0], why)
        self.count("audits")
        return n


__all__ = ["OkxExecution"]
