"""What the gateway tells others about itself: hop latencies (from the orders' stamps), the
launcher's role slot (counters, PnL, trading state), status.json (statusfile.py builds it), and
to the strategies what happened to each of their orders (`OrderFeedback`: the order-event ring,
pipeline/bus/events.py).
"""
from __future__ import annotations

import logging
import re
from typing import Any

import orjson

from pipeline.gateway.orders import OrderState, parse_client_id
from pipeline.gateway.statusfile import StatusFile, gateway_status
from pipeline.records import OrderEventKind as EK

log = logging.getLogger("pipeline.gateway")

# order state → the event the strategy gets (FILLED / PARTIALLY_FILLED: the FILL events say it)
STATE_EVENT = {OrderState.ACK: EK.ACCEPTED, OrderState.CANCELED: EK.CANCELLED,
               OrderState.EXPIRED: EK.EXPIRED, OrderState.REJECTED: EK.REJECTED,
               OrderState.UNKNOWN: EK.UNKNOWN, OrderState.LOST: EK.LOST}
_VENUE_ERR = re.compile(r"^\s*(\d{3})?\s*(-\d+)\b")


def venue_code(why: str) -> int:
    """The venue's error code in a REJECTED reason ("400 -2010 Account has ..."), or 0."""
    m = _VENUE_ERR.match(why or "")
    return int(m.group(2)) if m else 0


class OrderFeedback:
    """The gateway's side of the order-event channel: Execution calls `state` on every order
    state change and `fill` on every applied fill, Admission calls `refused` for a signal the
    gateway refused before it became an order, the loop `sync` with the signal channel's HELLOs
    (each new strategy epoch gets the start-up state: POSITION, OPEN, SYNCED)."""

    def __init__(self, writer, table=None):
        self.writer = writer
        self.table = table              # the order book of record (gw.ex.table), for snapshots
        self.synced: set[tuple[int, int]] = set()     # (strategy id, epoch) answered
        self.errors = 0
        self.resyncs = 0                # start-up states sent again for a lapped reader
        self._resync_seen = self._resync_word()

    def _resync_word(self) -> int:
        try:
            return int(self.writer.resync_requests)
        except AttributeError:          # a writer without a ring header (tests' stand-ins)
            return 0

    @staticmethod
    def origin(order) -> tuple[int, int, int]:
        o = getattr(order, "origin", (0, 0, 0))
        if o == (0, 0, 0):
            o = parse_client_id(order.cid) or (0, 0, 0)
        return o

    def _pub(self, kind, order, **kw) -> None:
        sid, epoch, seq = self.origin(order)
        if not epoch:
            return                      # not one of our strategies' orders
        try:
            self.writer.publish(kind, strategy_id=sid, epoch=epoch, client_seq=seq,
                                symbol=order.symbol_id, side=order.side, filled=order.filled,
                                remaining=order.remaining if order.is_open else 0.0,
                                order_id=order.order_id, **kw)
        except Exception:  # noqa: BLE001 - the order path must not fail on the feedback
            self.errors += 1
            log.exception("order event for %s not published", order.cid)

    def state(self, order, old, new, why: str) -> None:
        kind = STATE_EVENT.get(new)
        if kind is None or (kind is EK.ACCEPTED and old not in (OrderState.NEW,
                                                                 OrderState.UNKNOWN)):
            return
        kw: dict[str, Any] = {"reason": why}
        if kind is EK.REJECTED:
            kw["venue_code"] = venue_code(why)
        self._pub(kind, order, price=order.price if order.price == order.price else 0.0,
                  qty=order.qty, **kw)

    def fill(self, order, f) -> None:
        self._pub(EK.FILL, order, price=f.price, qty=f.qty, fee=f.commission,
                  fee_asset=f.commission_asset, trade_id=f.trade_id,
                  maker=1 if order.order_type == 3 else 0)

    def cancel_refused(self, order, why: str) -> None:
        self._pub(EK.CANCEL_REJECTED, order, reason=why, venue_code=venue_code(why),
                  qty=order.qty)

    def cancel_unknown(self, sig, why: str) -> None:
        """A cancel for an order the gateway has no open order of."""
        try:
            self.writer.publish(EK.CANCEL_REJECTED, strategy_id=sig.strategy_id,
                                epoch=sig.epoch, client_seq=sig.seq, symbol=sig.symbol,
                                side=sig.side, reason=why)
        except Exception:  # noqa: BLE001
            self.errors += 1
            log.exception("order event for a cancel not published")

    def refused(self, sig, reason: str, code: int) -> None:
        """A signal refused before it became an order (the risk kernel's reasons)."""
        try:
            self.writer.publish(EK.REJECTED, strategy_id=sig.strategy_id, epoch=sig.epoch,
                                client_seq=sig.seq, symbol=sig.symbol, side=sig.side,
                                price=sig.price if sig.price == sig.price else 0.0, qty=sig.qty,
                                reason_code=code, reason=reason)
        except Exception:  # noqa: BLE001
            self.errors += 1
            log.exception("order event for a refused signal not published")

    def sync(self, hellos: dict[int, int]) -> int:
        """The start-up state for every (strategy id, epoch) that said HELLO and was not answered
        yet; returns how many were answered."""
        n = 0
        for sid, epoch in list(hellos.items()):
            if (sid, epoch) not in self.synced:
                self.synced.add((sid, epoch))
                self.snapshot(epoch)
                n += 1
        req = self._resync_word()
        if req != self._resync_seen:
            # a strategy process fell behind the ring and lost events: it waits for its state
            # again (the gateway does not know which reader it was: every epoch it serves)
            self._resync_seen = req
            self.resyncs += 1
            epochs = sorted({ep for _sid, ep in hellos.items()})
            log.warning("order events: a reader lost events and asked for a resync; start-up "
                        "state again for epoch(s) %s", epochs)
            for epoch in epochs:
                self.snapshot(epoch)
                n += 1
        return n

    def snapshot(self, epoch: int) -> None:
        """POSITION per (strategy, symbol) from our orders' fills, OPEN per working order, then
        SYNCED: the strategy process of `epoch` starts from this (OPEN carries that epoch in
        trade_id; its own epoch is the order's)."""
        # orders the table retired (final, settled) still count in the positions
        pos: dict[tuple[int, int], float] = dict(getattr(self.table, "retired_pos", {}))
        opens = []
        for o in (self.table.by_cid.values() if self.table is not None else ()):
            sid, oep, _seq = self.origin(o)
            if not oep:
                continue
            if o.filled:
                k = (sid, o.symbol_id)
                pos[k] = pos.get(k, 0.0) + o.side * o.filled
            if o.is_open:
                opens.append(o)
        w = self.writer
        for (sid, sym), q in sorted(pos.items()):
            w.publish(EK.POSITION, strategy_id=sid, epoch=epoch, symbol=sym, qty=q)
        for o in opens:
            sid, oep, seq = self.origin(o)
            w.publish(EK.OPEN, strategy_id=sid, epoch=oep, client_seq=seq, symbol=o.symbol_id,
                      side=o.side, price=o.price if o.price == o.price else 0.0, qty=o.qty,
                      filled=o.filled, remaining=o.remaining, order_id=o.order_id,
                      trade_id=epoch, reason=o.state.value)
        w.publish(EK.SYNCED, strategy_id=0, epoch=epoch)
        log.info("order events: start-up state for strategy epoch %d: %d position(s), %d open "
                 "order(s)", epoch, len(pos), len(opens))


class Reporting:
    """Gateway mixin: uses gw.ex, gw.hops, gw.role, gw.intake, gw.redact, gw.paths."""

    def _record_hops(self) -> None:
        """Move per-order stamps into the hop histograms (off the order path)."""
        ex = self.ex
        total = ex.latency_trimmed + len(ex.latency)
        done = max(0, getattr(self, "_hops_done", 0) - ex.latency_trimmed)
        lat = ex.latency
        rec = self.hops.record
        for (recv, risk, signed, written, resp, created, trigger) in lat[done:]:
            if created and recv >= created:
                rec("signal_to_gateway", recv - created)
            rec("gateway_risk", risk - recv)
            rec("gateway_sign", signed - risk)
            rec("gateway_write", written - signed)
            rec("gateway_response", resp - written)
            rec("intake_to_wire", written - recv)
            if trigger and signed > trigger:
                rec("tick_to_order", signed - trigger)      # the "tick → signed order"
            if trigger and written > trigger:
                rec("tick_to_wire", written - trigger)
        self._hops_done = total

    def _hop(self, name: str) -> dict:
        """Live quantiles of a hop (the last RECENT orders): the main loop calls this several
        times a second, so never an HdrHistogram percentile walk (milliseconds)."""
        hops = getattr(self, "hops", None)
        return hops.live(name) if hops is not None else {}

    def _publish_role(self, pnl: float) -> None:
        from pipeline.records import TradingState
        ex = self.ex
        w = self._hop("intake_to_wire")
        self.role.set(signals=self.intake.received, orders=self.accepted, fills=len(ex.book.seen) + ex.book.forgotten,
                      rejects=sum(self.rejects.values()) + ex.counts.get("rejects", 0),
                      errors=self.internal_errors + self.intake.malformed,
                      pnl=pnl, open_orders=len(ex.table.open_orders()),
                      hop_p50_ns=w.get("p50", 0), hop_p99_ns=w.get("p99", 0))
        self.role.set_trading_state(TradingState[self.trading])
        # Prometheus (the launcher serves them): hop histograms, a few µs per changed hop
        self.hops.export(self.role.hops)
        st = self.stream
        self.role.set_extra(reconnects=max(0, st.connects - 1) if st is not None else 0,
                            gaps=self.intake.gap_events)

    def _feedback_sync(self) -> None:
        """Answer new strategy HELLOs with their start-up state (the loop, every turn)."""
        fb = getattr(self, "feedback", None)
        if fb is not None and self.intake is not None:
            fb.sync(self.intake.rx.hellos)

    def status(self) -> dict[str, Any]:
        return gateway_status(self)

    def write_status(self, sync: bool = False) -> None:
        """status.json, redacted. The file I/O (~0.5 ms: write, rename) goes to a helper thread
        while running, so the main loop is not blind that long every status_every_ms; start-up,
        the kill switch and shutdown write synchronously."""
        data = orjson.dumps(self.status(), option=orjson.OPT_NON_STR_KEYS, default=str)
        data = self.redact.bytes(data).encode() if hasattr(self, "redact") else data
        writer = getattr(self, "status_writer", None)
        if writer is None or sync:
            (writer or StatusFile(self.paths["status"])).write(data)
        else:
            writer.submit(data)
