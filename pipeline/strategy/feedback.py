"""Live order feedback in the strategy process: the gateway's order-event ring → the strategies.

`LiveFeedback` attaches to the gateway's event ring (pipeline/bus/events.py), waits for the
start-up state the gateway publishes for this process's epoch (POSITION and OPEN records, then
SYNCED), hands it to the strategies (each instance takes its own strategy id's), and from then on
dispatches every event of its instances to `Strategy.order_event` (the base's book-keeping:
position from fills, working orders; then the subclass's `on_order_event`). Until SYNCED the
process feeds its strategies no market data (`synced` is False): a decision made without knowing
the position would be a wrong one. Events before SYNCED are the gateway's past: already in the
start-up state, so they are skipped.

Modes ([strategy] feedback): "on" (wait for the gateway's ring, however long), "auto" (the
default: feedback when the gateway offers an event ring, else the strategies run without it, as
with a gateway of an older build or a bare signal receiver) and "off".

If the gateway goes away (its ring's owner is dead) the reader is dropped; the signal sender's
handshake starts again with the next gateway, which answers it with a fresh start-up state.
"""
from __future__ import annotations

import logging
import time

from pipeline.bus.events import EventReader, decode
from pipeline.records import OrderEventKind as EK

log = logging.getLogger(__name__)

ATTACH_EVERY_NS = 100_000_000     # look for the gateway's ring this often
CHECK_EVERY_NS = 500_000_000      # check that its owner is alive this often
_SNAPSHOT = (int(EK.POSITION), int(EK.OPEN))
_SYNCED = int(EK.SYNCED)


class LiveFeedback:
    def __init__(self, channel: str, mode: str, strategies: list, epoch: int):
        if mode not in ("on", "auto", "off"):
            raise ValueError(f"feedback must be on, auto or off, got {mode!r}")
        self.channel = channel
        self.mode = mode
        self.epoch = int(epoch)
        self.by_id = {st.strategy_id: st for st in strategies}
        self.reader: EventReader | None = None
        self.active = mode == "on"       # the strategies get order events
        self.synced = False              # the start-up state for our epoch has arrived
        self.decided = mode != "auto"    # auto: on once a ring is found, off at READY without
        self._snap: list = []
        self._next_attach = 0
        self._next_check = 0
        self.events = 0                  # events applied to our strategies
        self.skipped = 0                 # events before our SYNCED, or of other strategies
        self.lost = 0
        self.syncs = 0
        self.resyncs_requested = 0       # times this reader was lapped and asked for the state
        self.synced_position: dict[str, float] = {}   # at the last sync, per strategy id
        if self.active:
            for st in strategies:
                st.feedback = True

    @property
    def gate(self) -> bool:
        """True while the strategies must not run: feedback is on and not synced yet."""
        return self.active and not self.synced

    def service(self, now: int, got_ready: bool) -> list:
        """Attach / check / read (the loop calls this every turn). Returns (strategy, intent)
        pairs from the strategies' on_order_event hooks."""
        if self.mode == "off":
            return []
        if self.reader is None:
            if now >= self._next_attach:
                self._next_attach = now + ATTACH_EVERY_NS
                self._attach(got_ready)
            return []
        if now >= self._next_check:
            self._next_check = now + CHECK_EVERY_NS
            if not self.reader.owner_alive:
                log.warning("order events: the gateway owning ring %r is gone; strategies wait "
                            "for the next gateway's start-up state", self.reader.ring.name)
                self.reader.close()
                self.reader = None
                self.synced = False
                return []
        return self._read()

    def _attach(self, got_ready: bool) -> None:
        r = EventReader.attach(self.channel, start="oldest")
        if r is None:
            if self.mode == "auto" and got_ready and not self.decided:
                self.decided = True      # the gateway answered and offers no events
                log.info("order events: the gateway offers none; strategies run without "
                         "order feedback (position = the one they asked for)")
            return
        if self.mode == "auto" and self.decided and not self.active:
            r.close()                    # decided without: stay consistent for this run
            return
        self.reader = r
        self.decided = True
        if not self.active:
            self.active = True
            for st in self.by_id.values():
                st.feedback = True
        self._snap = []
        self._next_check = time.perf_counter_ns() + CHECK_EVERY_NS
        log.info("order events: attached to %r; waiting for the gateway's start-up state",
                 r.ring.name)

    def _read(self) -> list:
        out: list = []
        r = self.reader
        recs = r.poll()                  # a lapped reader skips to the newest: counted lost
        lost = r.lost
        if lost != self.lost:
            # what became of our orders is unknown now: no decision until the gateway's state
            # arrives again (gate); what was read with the loss is in that state
            log.error("order events: %d event(s) lost (this process fell behind the gateway's "
                      "ring); strategies wait for the gateway's state again", lost - self.lost)
            self.lost = lost
            self.synced = False
            self._snap = []
            self.resyncs_requested += 1
            r.request_resync()
            return out
        if not len(recs):
            return out
        by_id = self.by_id
        for rec in recs:
            k = int(rec["kind"])
            if not self.synced:
                if k == _SYNCED and int(rec["epoch"]) == self.epoch:
                    self._apply_snapshot()
                elif k in _SNAPSHOT and (int(rec["epoch"]) if k == EK.POSITION
                                         else int(rec["trade_id"])) == self.epoch:
                    self._snap.append((int(rec["strategy_id"]), decode(rec)))
                    continue
                self.skipped += 1
                continue
            if k >= _SNAPSHOT[0]:
                self.skipped += 1        # another process's start-up state
                continue
            st = by_id.get(int(rec["strategy_id"]))
            if st is None:
                self.skipped += 1
                continue
            self.events += 1
            for it in st.order_event(decode(rec)):
                out.append((st, it))
        return out

    def _apply_snapshot(self) -> None:
        """Our start-up state: every instance's position and working orders as the gateway has
        them, nothing the instance assumed before."""
        snap, self._snap = self._snap, []
        for st in self.by_id.values():
            st.net_qty = 0.0
            st.orders.clear()
        for sid, ev in snap:
            st = self.by_id.get(sid)
            if st is not None:
                st.order_event(ev)
        for st in self.by_id.values():
            st.sync_position()
        self.synced = True
        self.syncs += 1
        self.synced_position = {str(sid): st.net_qty for sid, st in self.by_id.items()}
        log.info("order events: synced with the gateway: %s",
                 {sid: st.net_qty for sid, st in self.by_id.items()})

    def stats(self) -> dict:
        s = {"feedback": self.mode, "feedback_active": self.active, "feedback_synced": self.synced,
             "order_events": self.events, "order_events_skipped": self.skipped,
             "order_events_lost": self.lost, "feedback_syncs": self.syncs,
             "feedback_resyncs_requested": self.resyncs_requested,
             "synced_position": self.synced_position}
        return s

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
