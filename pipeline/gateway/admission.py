"""One signal through the gateway: the compiled order path (the risk kernel decides, the signer
signs), then the refusals that have other owners, each judged once, then the write-ahead journal
records and the hand-over to execution.

    sign_signal   OrderPath.process: every risk rule (shape, runaway, HALTED, fields, TTL,
                  duplicates + gaps, exchange filters, limits, collar, REDUCE_ONLY, exposure,
                  the venue's rate limits HOST_CLOSED / RATE_BUDGET as ratelimit.HostGate set
                  them, our throttle), encode + sign; stamps recv / risk / signed
    finish_signal the kernel's refusal, or: CLIENT_ID_REUSED (the order book: a duplicate whose
                  client id names an order), HALTED (by an earlier signal of the same batch);
                  then the accept record, the order (book of record), and submit (execution.py)

Every refusal is one `Reason` (reasons.py) journalled by name and counted in gw.rejects. With the
binary journal, sign_signal's one compiled call also writes the ORDER record and the request on a
connection held ready (OrderPath.send): nothing in Python runs between the signal and the socket
but the call's arguments; finish_signal then books what already went out.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from pipeline.gateway import intents
from pipeline.gateway.orders import ClientIdReused, OrderState, client_id, client_id_of
from pipeline.gateway.reasons import Reason
from pipeline.gateway.risk import sync_own_quotes
from pipeline.logs import order_log
from pipeline.records import SIGNAL_DTYPE, SignalAction

log = logging.getLogger("pipeline.gateway")
ACCEPT, MALFORMED, BAD_VERSION = int(Reason.ACCEPT), int(Reason.MALFORMED), int(Reason.BAD_VERSION)
DUPLICATE, HALTED, RUNAWAY = int(Reason.DUPLICATE), int(Reason.HALTED), int(Reason.RUNAWAY)
CLIENT_ID_REUSED = int(Reason.CLIENT_ID_REUSED)
# refusals of a repeated signal: its order (if any) is told by its own events
_NOT_AN_ORDER = frozenset({Reason.DUPLICATE.name, Reason.CLIENT_ID_REUSED.name})
SIGNAL_SIZE = SIGNAL_DTYPE.itemsize
ACTION_AT = SIGNAL_DTYPE.fields["action"][1]
CANCEL, REPLACE = int(SignalAction.CANCEL), int(SignalAction.REPLACE)


class Admission:
    """Gateway mixin: uses gw.path, gw.clock, gw.intake, gw.journal, gw.ex, gw.risk."""

    def reject(self, sig, reason: str, **extra: Any) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        rec = {"decision": "reject", "reason": reason, **extra}
        if sig is not None:
            rec.update(strategy=sig.strategy_id, epoch=sig.epoch, seq=sig.seq, symbol=sig.symbol,
                       side=sig.side, qty=sig.qty)
        self.journal.write("signal", **rec)
        fb = getattr(self, "feedback", None)
        if fb is not None and sig is not None and reason not in _NOT_AN_ORDER \
                and client_id_of(sig) not in self.ex.table:
            fb.refused(sig, reason, int(Reason[reason]))   # the strategy's order never existed
        if sig is None:
            order_log("REJECTED", by="gateway", reason=reason, **extra)
        else:
            rules = self.rules.get(sig.symbol) if hasattr(self, "rules") else None
            order_log("REJECTED", client_id_of(sig), by="gateway", reason=reason,
                      symbol=rules.name if rules is not None else sig.symbol,
                      side={1: "BUY", -1: "SELL"}.get(sig.side, sig.side), qty=sig.qty, **extra)

    def _own_quotes(self, symbol_id: int) -> None:
        """An order the kernel accepted was refused after it: its resting price is not ours."""
        if getattr(self.risk, "self_trade", False):
            sync_own_quotes(self.risk, self.ex.table.open_orders(), symbol_id)

    def handle_signal(self, raw: bytes) -> None:
        """One signal, start to finish (the loop signs every waiting signal first, then
        finishes them in order: see run)."""
        self.finish_signal(self.sign_signal(raw))

    def sign_signal(self, raw: bytes, dry: bool = False) -> tuple | bytes | None:
        """The hot path, one compiled call (pipeline.gateway.orderpath): every risk rule, then
        encode + sign (nothing is signed on a refusal), and with the binary journal the
        write-ahead ORDER record and, on a connection held ready, the request on the socket
        (OrderPath.send); the order's bookkeeping comes after, in finish_signal. A cancel
        (action CANCEL) is not an order: no risk rule, nothing signed; a replace is judged and
        signed like a new order but never sent from here (finish_replace sends it).
        `dry` (the idle loop's dry run, warm.py): the same Python up to the compiled call, then
        the kernel's effect-free probe instead of send; returns its body (or None), nothing
        committed, journalled, sent or counted."""
        act = raw[ACTION_AT] if len(raw) == SIGNAL_SIZE else 0
        if act == CANCEL:
            return (raw,)
        t_recv = time.perf_counter_ns()
        path = self.path
        body = encode_error = sent = None
        ts_ms = self.clock.timestamp_ms()
        args = self.ex.send_args(path) if act != REPLACE else None
        if dry:
            return path.probe(raw, t_recv, ts_ms)
        try:
            if args is None:
                body = path.process(raw, t_recv, ts_ms)
            else:
                body = path.send(raw, t_recv, ts_ms, *args)
        except Exception as exc:  # noqa: BLE001 - nothing signed or sent
            encode_error = exc
        t_signed = time.perf_counter_ns()
        if args is not None and body is not None:
            t_signed = path.signed_ns
            try:
                sent = self.ex.wire_taken(path)   # the connection written on, the next armed
            except Exception as exc:  # noqa: BLE001 - maybe out: booked UNKNOWN, never resent
                self.internal_errors += 1
                log.exception("gateway: internal error after writing an order (outcome unknown)")
                sent = self.ex.taken_failed(path, exc)
        return (raw, t_recv, path.risk_done_ns or t_signed, t_signed, body, encode_error,
                path.last_reason if encode_error is None else 0, path.last_gap, ts_ms, sent)

    def finish_signal(self, signed: tuple) -> None:
        """The bookkeeping after the "signed" stamp; all of the write-ahead records still come
        before the request goes out (submit). Each refusal is judged once, by its owner: the risk
        kernel (already, in sign_signal, the venue's rate limits included), then the order book
        (a duplicate whose client id names an order: CLIENT_ID_REUSED).
        Whatever refuses the order after signing releases its open quantity; the signed bytes
        are dropped, never sent."""
        if len(signed) == 1:
            self.finish_cancel(signed[0])
            return
        raw, t_recv, t_risk, t_signed, body, encode_error, reason, gap, ts_ms, sent = signed
        if reason == MALFORMED or reason == BAD_VERSION:
            self.intake.note_malformed(raw, Reason(reason).name)
            self.reject(None, Reason(reason).name, size=len(raw))
            return
        sig = self.intake.decode(raw)
        if sig is None:                       # the kernel read it; cannot happen (counted)
            self.reject(None, Reason.MALFORMED.name, size=len(raw))
            return
        cid = client_id_of(sig)
        if gap:
            self.intake.note_gap(sig, gap)
            try:                              # informational: never in the way of booking an
                self.journal.write("gap", strategy=sig.strategy_id, epoch=sig.epoch,
                                   seq=sig.seq, missing=gap)   # order that may be out
            except Exception:  # noqa: BLE001 - counted and logged
                self.internal_errors += 1
                log.exception("gateway: could not journal a signal gap (continuing)")
        extra: dict[str, Any] = {}
        if reason == DUPLICATE and cid in self.ex.table:
            reason, extra = CLIENT_ID_REUSED, {"cid": cid}
        elif reason == ACCEPT and encode_error is None and self.risk.state == HALTED \
                and not self.ex.journalled(sent) and not self.ex.maybe_out(sent):
            # halted by an earlier signal of this batch, nothing journalled or sent: refused
            # (journalled but not out: submit_sent answers it NOT_SENT, closing its record)
            reason = HALTED
        if reason:
            if body is not None:              # signed but refused: undo the kernel's commit
                self.risk.release_open(sig.symbol, sig.side, sig.qty)
                self._own_quotes(sig.symbol)
            self.reject(sig, Reason(reason).name, **extra)
            if reason == RUNAWAY:
                self.halt("runaway signal rate")
            return
        stamps = {"recv": t_recv, "risk": t_risk, "created": sig.created_mono,
                  "trigger": sig.trigger_mono}
        if not getattr(self.journal, "writes_orders", False):   # binary: in the ORDER record
            self.journal.write("signal", decision="accept", cid=cid, strategy=sig.strategy_id,
                               epoch=sig.epoch, seq=sig.seq, symbol=sig.symbol, side=sig.side,
                               qty=sig.qty, trigger_mono=sig.trigger_mono,
                               created_mono=sig.created_mono, recv_mono=t_recv)
        try:
            order = self.ex.new_order(sig, stamps, cid)
        except ClientIdReused:                # the book's invariant (marks restored from it)
            if sent is not None:              # journalled and maybe out: cannot happen (counted)
                self.ex.unbooked(cid, sent)
            if body is not None:
                self.risk.release_open(sig.symbol, sig.side, sig.qty)
                self._own_quotes(sig.symbol)
            self.reject(sig, Reason.CLIENT_ID_REUSED.name, cid=cid)
            return
        if encode_error is not None:
            exc = encode_error
            self.ex.set_state(order, OrderState.REJECTED, f"encode: {type(exc).__name__}: {exc}")
            self.reject(sig, Reason.ENCODE.name, cid=cid)
            return
        stamps["signed"] = t_signed
        order.not_after_mono = sig.created_mono + sig.ttl_ns
        self.accepted += 1
        if sig.action == REPLACE:
            self.finish_replace(sig, order)
        elif sent is None:
            self.ex.submit(order, body)
        else:
            self.ex.submit_sent(order, body, ts_ms, sent)

    def finish_cancel(self, raw: bytes) -> None:
        """A strategy's Cancel: the order named by the record's own (strategy, epoch, seq)."""
        sig = self.intake.decode(raw)
        if sig is None:
            self.reject(None, Reason.MALFORMED.name, size=len(raw))
            return
        cid = client_id(sig.strategy_id, sig.epoch, sig.seq)
        self.journal.write("cancel_intent", cid=cid, strategy=sig.strategy_id)
        order = self.ex.table.get(cid)
        if order is None or not order.is_open:
            self.ex.count("cancel_not_open")
            fb = getattr(self, "feedback", None)
            if fb is not None:
                fb.cancel_unknown(sig, "no such open order" if order is None
                                  else f"order is {order.state.value}")
            return
        intents.cancel(self.ex, order, "strategy")

    def finish_replace(self, sig, order) -> None:
        """A strategy's Replace: `order` (judged, in the book) replaces the strategy's order
        sig.replace_back numbers before it, in one cancelReplace request."""
        back = sig.replace_back
        old = self.ex.table.get(client_id(sig.strategy_id, sig.epoch, sig.seq - back)) \
            if 0 < back < sig.seq else None
        if old is None or not old.is_open:
            self.ex.set_state(order, OrderState.REJECTED,
                              "cancel/replace: replaced order not open")
            return
        intents.replace(self.ex, old, order)
