"""Order execution: from an accepted signal to a final order state, fills and positions.

`Execution` owns the order table, the fill book and the order's life; the venue conversation is
a venue's subclass (pipeline/venues/<venue>/execution.py: BinanceExecution, OkxExecution), which
provides the methods of "the venue's part" below:

- `submit()` writes one order (the venue's `_write`) and acts on the classified answer
  (`on_reply` / `_act`): OK → ACK/FILLED (+ fills the answer carries); the venue's clock code
  (`clock_reject_code`) → clock resync and exactly one retry with a fresh timestamp and the same
  client order id; 429/418/other rejects → REJECTED (418 also HALTs); timeout / 5xx / the
  venue's "status unknown" codes → UNKNOWN.
- `resolve_due()` asks the venue for UNKNOWN orders (`resolve`) with doubling back-off. Nothing
  is resubmitted. The venue's resolve declares an order the venue never got LOST with
  `declare_lost()`: it keeps its exposure until `confirm_lost()` confirms it never traded
  (pipeline/gateway/lost.py: the trade history holds no trade we cannot attribute since it was
  sent and, with a user stream, the stream stayed subscribed without a reconnect since). Until
  then a venue report of it moves it on; a foreign trade keeps it held (`lost_unconfirmed`).
- `on_event()` applies the venue's order stream events; `apply_status()` any order answer.
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

from pipeline.gateway import lost
from pipeline.gateway import orders as om
from pipeline.gateway.journal import Journal
from pipeline.gateway.orderpath_py import (J_SYNC_FAILED, J_WRITTEN, W_CLOSED, W_ERROR, W_SENT,
                                           W_SHORT)
from pipeline.gateway.orders import Order, OrderState, OrderTable, transition
from pipeline.gateway.positions import Book, Fill
from pipeline.gateway.risk import sync_own_quotes
from pipeline.gateway.rest import Outcome, Reply
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
    # journal records a venue's execution writes and replays itself on restart (rebuild)
    journal_kinds: frozenset[str] = frozenset()

    def replay(self, rec: dict) -> None:
        """One journal record of a kind in `journal_kinds` (pipeline/gateway/reconcile.rebuild)."""

    def __init__(self, *, cfg, journal: Journal, risk, signer, rules: dict[int, Any],
                 rest, ws=None, clock, halt: Callable[[str], None],
                 recv_window_ms: int = 5000, heartbeat: Callable[[], None] | None = None):
        self.cfg = cfg
        self.recv_window_ms = recv_window_ms
        self.journal = journal
        self.risk = risk
        self.signer = signer
        self.rules = rules                  # symbol id -> InstrumentRules
        self.rest = rest
        self.ws = ws                        # the venue's WebSocket order client, if any
        self.clock = clock
        self.halt = halt
        self.heartbeat = heartbeat or (lambda: None)    # the launcher's liveness stamp
        # bounded memory: final orders leave the table, their trades the dedup set (orders.py)
        self.table = OrderTable(keep=getattr(cfg, "keep_final_orders", 1000),
                                grace_s=getattr(cfg, "final_order_grace_s", 60.0))
        self.book = Book(window=getattr(cfg, "fills_window", 50_000))
        self.table.on_retire.append(self.book.forget)
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
        order.executed = done            # its fills still to come keep it in the table
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
            if order_id >= 0 and self.table.retired_order(symbol, order_id) is not None:
                # an order of ours that left the table with every fill in: a copy
                self.count("fills_of_retired")
                return False
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

    # ------------------------------------------------------------------ the venue's part
    # A venue's execution (pipeline/venues/<venue>/execution.py) speaks its order API: these are
    # what it must provide. The base class owns the state machine, fills, positions, the order
    # wire and the compiled path's bookkeeping.
    clock_reject_code: int | None = None   # the venue's "timestamp outside the window" code:
    #                                        one clock resync + retry (on_reply)

    def apply_status(self, order: Order, data: dict, source: str) -> None:
        """An order as the venue reports it (an order answer, a query, a stream event)."""
        raise NotImplementedError

    def on_event(self, ev: dict) -> None:
        """One event of the venue's private order stream."""
        raise NotImplementedError

    def _write(self, order: Order, body: bytes) -> Reply | None:
        """Journal the request (write-ahead) and send it; never raises (NOT_SENT before anything
        went out, UNKNOWN once it may have); None when the reply comes back through `pump`."""
        raise NotImplementedError

    def _send(self, order: Order, body: bytes) -> Reply | None:
        """Hand the journalled request to its transport (see _write)."""
        raise NotImplementedError

    def resolve(self, order: Order) -> None:
        """Ask the venue for an UNKNOWN order by its client id (never resend); LOST when it does
        not know it after `unknown_max_polls` polls and past the request's validity."""
        raise NotImplementedError

    def fetch_trades(self, symbol: str, *, order_id: int = -1, limit: int = 100) -> int:
        """The venue's trades of a symbol (of one order), each through fill(); new fills or -1."""
        raise NotImplementedError

    def cancel_all(self, symbols: list[str], why: str) -> int:
        """Cancel every open order of the symbols (the halt); returns how many were cancelled."""
        raise NotImplementedError

    def audit(self, orders: list[Order], why: str) -> int:
        """Ask the venue for each open order's status (after a stream gap, or periodically)."""
        raise NotImplementedError

    def cancel_ours(self, why: str) -> int:
        """Cancel each of our open orders by client id (shutdown: others are left alone)."""
        raise NotImplementedError

    def cancel_intent(self, order: Order, why: str) -> bool:
        """A strategy's CANCEL (pipeline/gateway/intents.py); True if the venue cancelled it."""
        raise NotImplementedError

    def replace_intent(self, old: Order, new: Order) -> None:
        """A strategy's REPLACE (pipeline/gateway/intents.py): `old` replaced by `new`."""
        raise NotImplementedError

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
        code = self.clock_reject_code
        if code is not None and reply.outcome is Outcome.REJECTED and reply.code == code:
            if order.attempts == 1:
                self.count(f"retries_{-code if code < 0 else code}")
                log.warning("order %s: %d (%s); resyncing the clock and retrying once",
                            order.cid, code, reply.msg)
                # bounded: a slow /time must not stall the loop (the launcher's heartbeat, the
                # kill switch); if the resync fails in time the retry still goes with a fresh
                # timestamp
                self.clock.sync(deadline_s=RETRY_SYNC_BUDGET_S)
                self.heartbeat()
                self.journal.write("clock", why=str(code), **self.clock.snapshot())
                return self.submit(order, self.encode(order, self.clock.timestamp_ms()))
            self.clock.strike()
            if self.clock.skewed:
                self.halt(f"clock skew: {code} persists after resync")
        self._act(order, reply)
        s = order.stamps
        if "written" in s and reply.done_mono:
            self.latency.append((s.get("recv", 0), s.get("risk", 0), s.get("signed", 0),
                                 s["written"], s["response"], s.get("created", 0),
                                 s.get("trigger", 0)))
            if len(self.latency) > 20_000:          # the status tick takes them (200 ms)
                del self.latency[:10_000]
                self.latency_trimmed += 10_000
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

    def open_symbols(self) -> list[str]:
        return sorted({o.symbol for o in self.table.open_orders()})

