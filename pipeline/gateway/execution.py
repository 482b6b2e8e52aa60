"""Order execution: from an accepted signal to a final order state, fills and positions.

`Execution` owns the order table, the fill book and the venue conversation for orders:

- `submit()` writes one order (REST POST /api/v3/order or WS-API order.place) and acts on the
  classified answer: OK → ACK/FILLED (+ fills from the FULL response); -1021 → clock resync and
  exactly one retry with a fresh timestamp and the same client order id; 429/418/other rejects →
  REJECTED (418 also HALTs); timeout / 5xx / -1006 / -1007 → UNKNOWN.
- `resolve_due()` queries UNKNOWN orders by origClientOrderId with doubling back-off. Found → its
  venue status and its trades (GET myTrades?orderId). "Does not exist" `max_polls` times AND past
  the request's recvWindow (the venue can no longer accept it) → LOST. Nothing is resubmitted.
  A LOST order keeps its exposure until `confirm_lost()` confirms it never traded: the trade
  history (fetch_trades) holds no trade we cannot attribute since it was sent and, with a user
  stream, the stream stayed subscribed without a reconnect from the LOST verdict on. Until then a
  venue report of it moves it on (it was not lost after all); a foreign trade keeps it held
  (counted `lost_unconfirmed`, reported; reconciliation at the next start settles it).
- `on_event()` applies user-data stream executionReports; `apply_status()` any order JSON.
- Every fill goes through `fill()`: deduplicated by (symbol, trade id), it moves the order, the
  position, and the risk engine's open orders and position (so the next check sees it). A fill
  with a side other than ±1 or a negative trade id is counted (`bad_fill_events`) and logged
  before anything is marked seen, so a later good copy still counts. Trades of orders that are
  not ours are remembered in `foreign_seen` (reported once), never in the book's dedup set: if
  the order turns out to be ours later (its venue id was not known yet), its fill still applies.
- A journal that cannot write the write-ahead record means nothing is sent (REJECTED, reservation
  released); an unexpected error while the request may be on the wire makes the order UNKNOWN
  (exposure kept until resolved).
- Open quantity is handed back to the risk engine exactly once, when an order ends unfilled
  (`_release`): venue-executed quantity stays reserved until its fills arrive.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Callable
from urllib.parse import parse_qsl

from pipeline.gateway import lost
from pipeline.gateway import orders as om
from pipeline.gateway.journal import Journal, JournalWriteError, strip_signature
from pipeline.gateway.orderpath_py import (J_SYNC_FAILED, J_WRITTEN, W_CLOSED, W_ERROR, W_SENT,
                                           W_SHORT)
from pipeline.gateway.orders import Order, OrderState, OrderTable, transition
from pipeline.gateway.positions import Book, Fill
from pipeline.gateway.risk import sync_own_quotes
from pipeline.gateway.rest import Outcome, Reply, RestClient
from pipeline.gateway.wire import Wire
from pipeline.logs import order_log
from pipeline.records import JournalVia, TradingState

HALTED_STATE = int(TradingState.HALTED)

log = logging.getLogger(__name__)
SIDES = {1: "BUY", -1: "SELL"}


def log_state(order: Order, old: OrderState, new: OrderState, why: str) -> None:
    """The operator's line of one order state change (pipeline/logs.py order_log): the new
    state, or RESOLVED when an UNKNOWN order's fate became known."""
    lvl = logging.WARNING if new in (OrderState.UNKNOWN, OrderState.LOST) else logging.INFO
    if old is OrderState.UNKNOWN and new is not OrderState.LOST:
        order_log("RESOLVED", order.cid, lvl, symbol=order.symbol, to=new.value,
                  order_id=order.order_id, filled=order.filled, why=why)
    else:
        order_log(new.value, order.cid, lvl, symbol=order.symbol, frm=old.value,
                  order_id=order.order_id, filled=order.filled, why=why)


SIDE = {1: "BUY", -1: "SELL"}
VIA_REST, VIA_WS = int(JournalVia.REST), int(JournalVia.WS_API)
SIDE_OF = {"BUY": 1, "SELL": -1}
RECV_WINDOW_MARGIN_MS = 1000
RETRY_SYNC_BUDGET_S = 0.5     # the clock resync before a -1021 retry gets at most this long


def fnum(x: Any, default: float = 0.0) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


class Execution:
    def __init__(self, *, cfg, journal: Journal, risk, signer, rules: dict[int, Any],
                 rest: RestClient, ws=None, clock, halt: Callable[[str], None],
                 recv_window_ms: int = 5000, heartbeat: Callable[[], None] | None = None):
        self.cfg = cfg
        self.recv_window_ms = recv_window_ms
        self.journal = journal
        self.risk = risk
        self.signer = signer
        self.rules = rules                  # symbol id -> InstrumentRules
        self.rest = rest
        self.ws = ws                        # WsApiClient when transport = ws_api
        self.clock = clock
        self.halt = halt
        self.heartbeat = heartbeat or (lambda: None)    # the launcher's liveness stamp
        self.table = OrderTable()
        self.book = Book()
        self.consecutive_rejects = 0
        self.counts: dict[str, int] = {}
        # per order: (recv, risk done, signed, written, response, signal created, trigger tick)
        self.latency: list[tuple[int, int, int, int, int, int, int]] = []
        self.latency_trimmed = 0          # entries dropped from the front of `latency`
        self.foreign: dict[tuple[str, int], dict] = {}   # exchange orders that are not ours
        self.foreign_seen: set[tuple[str, int]] = set()  # trades reported as not ours
        self.wire: Wire | None = None     # new-order requests on a helper thread (REST)
        self.inflight: dict[str, Order] = {}     # cid -> order whose request is on the wire
        self.feedback = None              # reporting.OrderFeedback: the strategies' order events
        self.stream = None                # ws_api.UserStream when configured (confirm_lost)
        self.lost_pending: dict[str, Order] = {}   # LOST orders still holding their exposure
        self.foreign_mono: dict[str, int] = {}     # symbol -> when a foreign trade was last seen

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    # ------------------------------------------------------------------ state changes
    def set_state(self, order: Order, new: OrderState, why: str = "", **extra: Any) -> None:
        old = order.state
        try:
            changed = transition(order, new, why)
        except om.IllegalTransition as exc:
            self.count("illegal_transitions")
            log.warning("%s", exc)
            return
        if changed:
            self.journal.write("state", cid=order.cid, frm=old.value, to=new.value, why=why,
                               order_id=order.order_id, filled=order.filled, **extra)
            log_state(order, old, new, why)
            if self.feedback is not None:
                self.feedback.state(order, old, new, why)
            if old is OrderState.LOST:               # the venue knew it after all
                self.lost_pending.pop(order.cid, None)
                self.count("lost_reappeared")
            if new in om.TERMINAL and new is not OrderState.FILLED \
                    and new is not OrderState.LOST:  # LOST: held until confirm_lost()
                self._release(order)
            if new in om.TERMINAL and order.price == order.price \
                    and getattr(self.risk, "self_trade", False):
                sync_own_quotes(self.risk, self.table.open_orders(), order.symbol_id)   # lower

    def _release(self, order: Order, executed: float | None = None) -> None:
        if order.released:
            return
        order.released = True
        done = order.filled if executed is None else max(order.filled, executed)
        rest = order.qty - done
        if rest > 0:
            try:
                self.risk.release_open(order.symbol_id, order.side, rest)
            except ValueError as exc:
                log.warning("risk release for %s: %s", order.cid, exc)

    # ------------------------------------------------------------------ fills
    def fill(self, order: Order | None, *, symbol: str, trade_id: int, side: int, qty: float,
             price: float, commission: float = 0.0, asset: str = "", source: str,
             order_id: int = -1) -> bool:
        if not (qty > 0 and price > 0 and math.isfinite(qty) and math.isfinite(price)):
            self.count("bad_fills")
            return False
        if side not in (1, -1) or not isinstance(trade_id, int) or trade_id < 0:
            # nothing is marked seen: a good copy of this trade (query, stream, response) still
            # counts when it comes
            self.count("bad_fill_events")
            log.warning("fill event %s/%r (order %s, %s) has side %r / trade id %r: not applied",
                        symbol, trade_id, order.cid if order is not None else order_id, source,
                        side, trade_id)
            return False
        if order is None:
            # a trade of an order that is not ours (or not yet known to be ours: its venue id
            # may arrive later): reported once per trade, never applied to our positions and
            # never put in the book's dedup set
            key = (symbol, trade_id)
            if key not in self.foreign_seen and key not in self.book.seen:
                self.foreign_seen.add(key)
                self.foreign_mono[symbol] = time.perf_counter_ns()
                self.count("foreign_fills")
                self.journal.write("foreign_fill", symbol=symbol, trade_id=int(trade_id),
                                   order_id=order_id, side=side, qty=qty, price=price,
                                   source=source)
                log.warning("fill %s/%d of order %d is not ours (reported, not applied)", symbol,
                            trade_id, order_id)
            return False
        f = Fill(symbol, int(trade_id), order.cid, order.order_id, side, qty, price, commission,
                 asset, source)
        if not self.book.apply(f):
            self.count("fills_reported_twice")
            return False
        self.foreign_seen.discard((symbol, trade_id))
        self.journal.write("fill", **f.to_json())
        order_log("FILL", order.cid, symbol=symbol, order_id=order.order_id, trade_id=trade_id,
                  side=SIDES.get(side, side), qty=qty, price=price, fee=commission,
                  fee_asset=asset, source=source)
        try:
            self.risk.apply_fill(order.symbol_id, side, qty)
        except ValueError as exc:
            log.warning("risk fill update %s: %s", symbol, exc)
        order.filled += qty
        order.notional += qty * price
        if self.feedback is not None:
            self.feedback.fill(order, f)
        if order.filled >= order.qty - 1e-12:
            self.set_state(order, OrderState.FILLED, "filled")
        elif order.state is not OrderState.FILLED:
            self.set_state(order, OrderState.PARTIALLY_FILLED, "partial fill")
        if self.risk.count_fill(time.perf_counter_ns()):      # the kernel is HALTED now
            self.halt(f"runaway fill rate: more than {self.risk.runaway_fills} fills in "
                      f"{self.risk.runaway_fill_window_ns // 1_000_000} ms")
        return True

    def _symbol_id(self, symbol: str) -> int:
        for sid, r in self.rules.items():
            if r.name == symbol:
                return sid
        return 0

    # ------------------------------------------------------------------ venue order JSON
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
    def new_order(self, sig, stamps: dict[str, int], cid: str | None = None) -> Order:
        """The order of an accepted signal, in the book of record (ClientIdReused if its client
        id is taken) and journalled."""
        cid = cid or om.client_id_of(sig)
        rules = self.rules[sig.symbol]
        order = Order(cid=cid, symbol=rules.name, symbol_id=sig.symbol, side=sig.side,
                      order_type=sig.order_type, tif=sig.tif, qty=sig.qty, price=sig.price,
                      stamps=stamps)
        order.origin = (sig.strategy_id, sig.epoch, sig.seq)
        self.table.add(order)
        if not getattr(self.journal, "writes_orders", False):
            # the JSON journal's own record; the binary journal's ORDER record carries it
            self.journal.write("order", cid=cid, symbol=order.symbol, side=order.side,
                               order_type=order.order_type, tif=order.tif, qty=order.qty,
                               price=None if order.price != order.price else order.price,
                               strategy=sig.strategy_id, epoch=sig.epoch, seq=sig.seq)
        return order

    def encode(self, order: Order, timestamp_ms: int) -> bytes:
        return self.encode_fields(order.symbol_id, order.side, order.order_type, order.tif,
                                  order.qty, order.price, order.cid, timestamp_ms)

    def encode_fields(self, symbol_id: int, side: int, order_type: int, tif: int, qty: float,
                      price: float, cid: str, timestamp_ms: int) -> bytes:
        """The signed request body of a new order (no state touched: the hot path signs first
        and journals after, and the idle loop runs it to keep it warm)."""
        r = self.rules[symbol_id]
        qu = round(qty * 10 ** r.qty_decimals)
        pu = 0 if order_type == 2 else round(price * 10 ** r.price_decimals)
        return self.signer.encode_sign(symbol_id, side, order_type, tif, qu, pu, cid.encode(),
                                       timestamp_ms)

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
                                   path="/api/v3/order", body=strip_signature(body),
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
            return self.rest.send("POST", "/api/v3/order", body=body)
        except Exception as exc:  # noqa: BLE001 - the request may be out: find out, never resend
            self.inflight.pop(order.cid, None)
            self.count("internal_errors")
            log.exception("order %s: error while sending; outcome unknown", order.cid)
            return Reply(Outcome.UNKNOWN, msg=f"internal error while sending: "
                                              f"{type(exc).__name__}",
                         done_mono=time.perf_counter_ns())

    # ------------------------------------------------------------------ the compiled order path
    def send_args(self, path) -> tuple | None:
        """What OrderPath.send needs after (msg, now, timestamp) to journal and send an order in
        its one call: (journal writer, request writer, ready fd, sync, via); None when the order
        must take the Python path (the JSON-lines journal, records waiting for room, a closed
        journal, or a twin path with the compiled writer or the other way round)."""
        j = self.journal
        if not getattr(j, "writes_orders", False) or j.pending or j.closed:
            return None
        jw = j.w
        if type(path).__module__.startswith("pipeline._ext") != \
                type(jw).__module__.startswith("pipeline._ext"):
            return None
        wire = self.wire
        rw, fd = None, -1
        if wire is not None and wire.writer is not None:
            rw, fd = wire.writer, wire.ready_fd
        return (jw, rw, fd, j.policy == "always", VIA_WS if self.ws is not None else VIA_REST)

    def wire_taken(self, path) -> tuple:
        """Right after OrderPath.send: what it did, for submit_sent, as (journal_state,
        wire_state, bytes sent, send() stamp, connection, reply or None). The connection it wrote
        on is taken from the wire (the rest of a short write is written now) and the next idle
        one armed for the next signal."""
        ws = path.wire_state
        conn = reply = None
        nsent = path.sent
        if ws == W_SENT or ws == W_SHORT or ws == W_ERROR or ws == W_CLOSED:
            wire = self.wire
            conn = wire.take_ready()
            if ws == W_CLOSED:
                wire.dropped(conn)
                conn = None
            elif ws == W_SHORT:
                try:
                    conn.sock.sendall(wire.writer.tail(nsent))
                    nsent = wire.writer.length
                except Exception as exc:  # noqa: BLE001 - partly out: UNKNOWN, never resent
                    reply = wire.failed(conn, path.written_ns, exc)
                    conn = None
            wire.arm()
        return (path.journal_state, ws, nsent, path.written_ns, conn, reply)

    @staticmethod
    def taken_failed(path, exc: Exception) -> tuple:
        """wire_taken's answer when it failed itself: the order counts as out (UNKNOWN,
        resolved by a status query) unless OrderPath.send wrote nothing on a connection."""
        ws = path.wire_state
        out = ws == W_SENT or ws == W_SHORT or ws == W_ERROR
        reply = Reply(Outcome.UNKNOWN, msg=f"internal error after the write: "
                                           f"{type(exc).__name__}",
                      written_mono=path.written_ns, done_mono=time.perf_counter_ns()) if out \
            else None
        return (path.journal_state, ws, path.sent, path.written_ns, None, reply)

    @staticmethod
    def maybe_out(sent: tuple | None) -> bool:
        """Whether some of the order's bytes may have reached the venue (OrderPath.send wrote
        on a connection, or the rest of a short write failed): then it is booked and tracked
        whatever happens next, never refused as if it had not been sent."""
        return sent is not None and (sent[1] == W_SENT or sent[1] == W_SHORT
                                     or sent[1] == W_ERROR or sent[5] is not None)

    @staticmethod
    def journalled(sent: tuple | None) -> bool:
        """Whether OrderPath.send wrote the order's write-ahead ORDER record."""
        return sent is not None and (sent[0] == J_WRITTEN or sent[0] == J_SYNC_FAILED)

    def unbooked(self, cid: str, sent: tuple) -> None:
        """An order the compiled path journalled (and maybe wrote) whose client id names an order
        in the book: cannot happen (the kernel refuses a duplicate signal); counted, logged, and
        its connection closed (the venue refuses a client id it has)."""
        self.count("internal_errors")
        log.error("order %s: journalled although its client id names an order in the book",
                  cid)
        if sent[0] == J_WRITTEN or sent[0] == J_SYNC_FAILED:
            self.journal.note_order(False)
        if sent[4] is not None:
            self.wire.failed(sent[4], sent[3], RuntimeError("client id reused"))

    def submit_sent(self, order: Order, body: bytes, ts_ms: int, sent: tuple) -> Reply | None:
        """The bookkeeping of an order the compiled path (OrderPath.send) already journalled
        and, when a connection was ready, wrote: `sent` is (journal_state, wire_state, bytes
        sent, send() stamp, the connection). What it could not do is done here as _write would
        (a journal with no room: grown and written; no connection: the wire's put)."""
        jstate, wstate, nsent, written, conn, reply = sent
        if jstate != J_WRITTEN and jstate != J_SYNC_FAILED:     # nothing journalled or sent
            return self.submit(order, body)
        order.attempts += 1
        order.ts_ms = ts_ms
        self.journal.note_order(jstate == J_WRITTEN)     # the kernel's ORDER record
        if reply is not None:                    # the rest of a short write failed: UNKNOWN
            pass
        elif jstate == J_SYNC_FAILED:
            self.journal.sync_errors += 1
            self.count("journal_write_failed")
            reply = Reply(Outcome.NOT_SENT, msg="journal fsync failed, not sent")
        elif wstate == W_SENT or wstate == W_SHORT:
            self.inflight[order.cid] = order
            reply = self.wire.sent_ready(order.cid, conn, written, nsent, nsent)
            if reply is not None:
                self.inflight.pop(order.cid, None)
        elif wstate == W_ERROR:
            reply = self.wire.failed(conn, written, OSError(-nsent, os.strerror(-nsent)))
        elif self.risk.state == HALTED_STATE:    # halted by an earlier order of its batch
            reply = Reply(Outcome.NOT_SENT, msg="HALTED before it was sent",
                          done_mono=time.perf_counter_ns())
        else:                                    # no connection ready / it was closed
            reply = self._beating(self._send, order, body)
        return self._after_send(order, reply)

    def _journal_order(self, order: Order) -> None:
        """The binary journal's write-ahead ORDER record: the signal accepted, the order and this
        request in one fixed record (ext/journal.pyx), instead of three JSON records."""
        st = order.stamps
        strategy, epoch, seq = order.origin
        self.journal.write_order(
            cid=order.cid, symbol=order.symbol, symbol_id=order.symbol_id, strategy=strategy,
            epoch=epoch, sig_seq=seq, side=order.side, order_type=order.order_type,
            tif=order.tif, qty=order.qty, price=order.price, trigger_mono=st.get("trigger", 0),
            created_mono=st.get("created", 0), recv_mono=st.get("recv", 0), ts_ms=order.ts_ms,
            attempt=order.attempts, via="ws_api" if self.ws is not None else "rest")

    def submit(self, order: Order, body: bytes) -> Reply | None:
        """Write the order and act on the answer (one -1021 retry). Returns the final reply, or
        None when the order went to the wire (its reply is acted on by `pump`)."""
        reply = self._beating(self._write, order, body)
        return self._after_send(order, reply)

    def _beating(self, send, order: Order, body: bytes) -> Reply | None:
        """`send(order, body)` with the heartbeat stamped around it on the WS-API (REST calls
        stamp it themselves, on_io)."""
        if self.ws is not None:
            self.heartbeat()
        reply = send(order, body)
        if self.ws is not None:
            self.heartbeat()
        return reply

    def _after_send(self, order: Order, reply: Reply | None) -> Reply | None:
        """The SENT log line (unless nothing went out), then the answer acted on, or None when
        the wire brings it back later (`pump`)."""
        if reply is None or reply.outcome is not Outcome.NOT_SENT:
            order_log("SENT", order.cid, symbol=order.symbol, side=SIDES.get(order.side),
                      qty=order.qty, price=None if order.price != order.price else order.price,
                      attempt=order.attempts, via="ws_api" if self.ws is not None else "rest")
        if reply is None:
            return None
        return self.on_reply(order, reply)

    @property
    def _order_wire(self):
        """Where new orders' answers come back: the REST order wire, or the pipelined WS-API
        order wire (ws_api.WsOrderWire); None when orders are answered synchronously."""
        if self.wire is not None:
            return self.wire
        return self.ws if self.ws is not None and hasattr(self.ws, "put") else None

    def pump(self) -> int:
        """Act on every reply the wire thread brought back (the loop calls this every turn)."""
        wire = self._order_wire
        if wire is None:
            return 0
        n = 0
        for cid, reply in wire.replies():
            order = self.inflight.pop(cid, None)
            if order is not None:
                self.on_reply(order, reply)
                n += 1
        return n

    def drain_inflight(self, timeout_s: float) -> None:
        """Wait (bounded) until no order request is on the wire, acting on each reply."""
        deadline = time.monotonic() + timeout_s
        wire = self._order_wire
        while self.inflight and wire is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            got = wire.wait_reply(min(left, 0.05))
            if got is not None:
                order = self.inflight.pop(got[0], None)
                if order is not None:
                    self.on_reply(order, got[1])
            self.heartbeat()

    def on_reply(self, order: Order, reply: Reply) -> Reply | None:
        order.stamps["written"] = reply.written_mono
        order.stamps["response"] = reply.done_mono
        self._journal_reply(order, reply)
        if reply.outcome is Outcome.REJECTED and reply.code == -1021:
            if order.attempts == 1:
                self.count("retries_1021")
                log.warning("order %s: -1021 (%s); resyncing the clock and retrying once",
                            order.cid, reply.msg)
                # bounded: a slow /time must not stall the loop (the launcher's heartbeat, the
                # kill switch); if the resync fails in time the retry still goes with a fresh
                # timestamp
                self.clock.sync(deadline_s=RETRY_SYNC_BUDGET_S)
                self.heartbeat()
                self.journal.write("clock", why="-1021", **self.clock.snapshot())
                return self.submit(order, self.encode(order, self.clock.timestamp_ms()))
            self.clock.strike()
            if self.clock.skewed:
                self.halt("clock skew: -1021 persists after resync")
        self._act(order, reply)
        s = order.stamps
        if "written" in s and reply.done_mono:
            self.latency.append((s.get("recv", 0), s.get("risk", 0), s.get("signed", 0),
                                 s["written"], s["response"], s.get("created", 0),
                                 s.get("trigger", 0)))
            if len(self.latency) > 100_000:
                del self.latency[:50_000]
                self.latency_trimmed += 50_000
        return reply

    def _journal_reply(self, order: Order, reply: Reply) -> None:
        st = order.stamps       # CLOCK_MONOTONIC ns: recv, risk, signed (+ this attempt's I/O)
        self.journal.write("response", cid=order.cid, attempt=order.attempts,
                           stamps={"recv": st.get("recv", 0), "risk": st.get("risk", 0),
                                   "signed": st.get("signed", 0),
                                   "written": reply.written_mono, "response": reply.done_mono},
                           **reply.summary())

    def _act(self, order: Order, reply: Reply) -> None:
        o = reply.outcome
        if o is Outcome.OK and isinstance(reply.data, dict):
            self.consecutive_rejects = 0
            self.apply_status(order, reply.data, "response")
            if order.state is OrderState.NEW:
                self.set_state(order, OrderState.ACK, "accepted")
            return
        if o is Outcome.UNKNOWN or o is Outcome.OK:
            if order.state is not OrderState.NEW and order.state is not OrderState.UNKNOWN:
                # the user stream reported the order before this reply came back (it races the
                # reply on the venue too): the venue told us what it is, so nothing is unknown
                self.count("unknown_after_report")
                log.info("order %s: %s reply after the venue reported it %s; keeping that",
                         order.cid, reply.msg or reply.status, order.state.value)
                return
            self.count("unknown_outcomes")
            order.polls = 0
            order.next_poll_mono = time.perf_counter_ns() + self.cfg.unknown_poll_ms * 1_000_000
            self.set_state(order, OrderState.UNKNOWN, f"outcome unknown: {reply.msg}")
            return
        if o is Outcome.NOT_SENT:
            self.count("not_sent")
            self.set_state(order, OrderState.REJECTED, f"not sent: {reply.msg}")
            return
        self.count("rejects")
        self.count(f"venue_reject_{reply.code or reply.status}")    # by reason (Prometheus)
        self.set_state(order, OrderState.REJECTED, f"{reply.status} {reply.code} {reply.msg}")
        if o is Outcome.BANNED:
            self.halt(f"HTTP 418 from the venue: {reply.msg}")
            return
        if o is Outcome.RATE_LIMITED:
            return
        self.consecutive_rejects += 1
        if self.consecutive_rejects >= self.cfg.risk.max_consecutive_rejects:
            self.halt(f"{self.consecutive_rejects} consecutive order rejects")

    # ------------------------------------------------------------------ UNKNOWN resolution
    def resolve_due(self, now_mono: int | None = None) -> int:
        now = time.perf_counter_ns() if now_mono is None else now_mono
        n = 0
        for order in self.table.unknown():
            if order.next_poll_mono <= now:
                self.heartbeat()
                self.resolve(order)
                n += 1
        for order in list(self.lost_pending.values()):
            if order.next_poll_mono <= now:
                self.heartbeat()
                self.confirm_lost(order)
                n += 1
        return n

    def declare_lost(self, order: Order) -> None:
        """UNKNOWN → LOST, exposure kept (pipeline/gateway/lost.py)."""
        lost.declare(self, order)

    def confirm_lost(self, order: Order) -> bool:
        """Release a LOST order's exposure once confirmed (pipeline/gateway/lost.py)."""
        return lost.confirm(self, order)

    def resolve(self, order: Order) -> None:
        r = self.rest.signed("GET", "/api/v3/order",
                             {"symbol": order.symbol, "origClientOrderId": order.cid})
        self.journal.write("query", cid=order.cid, poll=order.polls + 1, **r.summary())
        delay = min(self.cfg.unknown_poll_max_ms, self.cfg.unknown_poll_ms * 2 ** order.polls)
        if r.outcome is Outcome.OK and isinstance(r.data, dict):
            self.apply_status(order, r.data, "query")
            if fnum(r.data.get("executedQty")) > order.filled:
                self.fetch_trades(order.symbol, order_id=order.order_id)
            return
        if r.outcome is Outcome.REJECTED and r.code == -2013:
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
            r = self.rest.signed("GET", "/api/v3/order",
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
            r = self.rest.signed("DELETE", "/api/v3/order",
                                 {"symbol": o.symbol, "origClientOrderId": o.cid},
                                 timeout=(self.cfg.connect_timeout_s, 0.8))
            self.journal.write("cancel", cid=o.cid, why=why, **r.summary())
            if r.outcome is Outcome.OK and isinstance(r.data, dict):
                self.apply_status(o, r.data, "cancel")
                n += 1
        return n

    def open_symbols(self) -> list[str]:
        return sorted({o.symbol for o in self.table.open_orders()})


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
