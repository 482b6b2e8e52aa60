"""Order events, gateway → strategy: the return channel of the signal path.

The gateway creates a shared-memory ring of ORDER_EVENT_DTYPE records (pipeline/records.py, 160
bytes, mirrored in ext/records.pxd) named `event_ring_name(channel)` (/dev/shm/<channel>.evt,
mode 0600) before it answers any HELLO, and is its one writer; every strategy process on the
channel attaches and reads it (the ring kernel of the tick bus: a broadcast ring, the writer never
waits for a reader). The ring's slot stamp is the events' own numbering (0, 1, 2, ... per gateway
run); a strategy process that falls more than the capacity behind loses the oldest events, counted
in `lost`, and re-synchronises (it asks for the start-up state again, see below).

What the gateway writes (records.OrderEventKind):

    ACCEPTED, FILL (price, qty, fee + fee asset, trade id, filled, remaining), REJECTED (the risk
    kernel's reason name and value, or the venue's error code and message), CANCELLED, EXPIRED,
    UNKNOWN (the request's fate is not known) and then its resolution (ACCEPTED / FILL /
    REJECTED / CANCELLED / EXPIRED, or LOST), CANCEL_REJECTED (a cancel the venue refused);

    and, for each HELLO of a strategy process (its epoch), the start-up state from the gateway's
    rebuilt book (journal replay + reconciliation): one POSITION per (strategy, symbol) that has
    fills, one OPEN per working order, then SYNCED(epoch). A strategy process feeds its strategies
    nothing until its SYNCED arrives, so its position always starts from the gateway's.

`EventWriter` is the gateway's end, `EventReader` the strategy's; `decode` turns one record into
the strategy-facing `pipeline.strategy.orders.OrderEvent`.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from pipeline.bus.ring import Ring, RingError
from pipeline.records import (ORDER_EVENT_BODY_STRUCT, ORDER_EVENT_DTYPE, OrderEventKind)

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 4096
_PACK = ORDER_EVENT_BODY_STRUCT.pack


class EventRing(Ring):
    """Gateway → strategy order events: ORDER_EVENT_DTYPE records."""

    RECORD_DTYPE = ORDER_EVENT_DTYPE
    RECORD_NAME = "ORDER_EVENT_DTYPE"


def event_ring_name(channel: str) -> str:
    """The shared-memory segment of a signal channel's order-event ring."""
    from pipeline.bus.signals import endpoints
    endpoints(channel)                    # same naming rules as the signal channel
    return f"{channel}.evt"


def _ascii(s: str | bytes, n: int) -> bytes:
    b = s if isinstance(s, bytes) else str(s).encode("ascii", "replace")
    return b[:n]


class EventWriter:
    """The gateway's end: owns the ring (created at start, unlinked at close) and writes it."""

    def __init__(self, channel: str, capacity: int = DEFAULT_CAPACITY):
        self.name = event_ring_name(channel)
        self.ring = EventRing.create(self.name, capacity)
        try:
            self._w = self.ring.writer()
        except RingError:
            self.ring.close()
            raise
        self._publish = self._w.publish_bytes
        self.published = 0
        self.by_kind: dict[str, int] = {}

    def publish(self, kind: int, *, strategy_id: int, epoch: int = 0, client_seq: int = 0,
                symbol: int = 0, side: int = 0, price: float = 0.0, qty: float = 0.0,
                fee: float = 0.0, filled: float = 0.0, remaining: float = 0.0,
                trade_id: int = -1, order_id: int = -1, venue_code: int = 0, maker: int = 0,
                reason_code: int = 0, fee_asset: str = "", reason: str = "") -> int:
        """One event; returns its sequence."""
        body = _PACK(int(epoch), int(client_seq), time.time_ns(), time.perf_counter_ns(),
                     float(price), float(qty), float(fee), float(filled), float(remaining),
                     int(trade_id), int(order_id), int(strategy_id) & 0xFFFFFFFF,
                     int(symbol) & 0xFFFFFFFF, int(venue_code), int(kind), int(side),
                     int(maker), int(reason_code) & 0xFF, _ascii(fee_asset, 8),
                     _ascii(reason, 40))
        s = self._publish(body)
        self.published += 1
        name = OrderEventKind(kind).name
        self.by_kind[name] = self.by_kind.get(name, 0) + 1
        return s

    def heartbeat(self) -> None:
        self._w.heartbeat()

    @property
    def resync_requests(self) -> int:
        """Times a lapped reader asked for the start-up state again (EventReader.request_resync)."""
        return self.ring.resync_requests

    def stats(self) -> dict:
        return {"published": self.published, **{f"ev_{k}": v for k, v in self.by_kind.items()}}

    def close(self) -> None:
        self.ring.close()


class EventReader:
    """A strategy process's end: attached to the gateway's ring, reading from where it attached
    (`start="next"`) or from the oldest event still held (`"oldest"`)."""

    def __init__(self, ring: EventRing, start: str = "next", max_batch: int = 256):
        self.ring = ring
        self._r = ring.reader(wait="sleeping", max_batch=max_batch, start=start)
        self._buf = np.zeros(max_batch, dtype=ORDER_EVENT_DTYPE)
        self._poll = self._r.core.poll_into
        self._avail = self._r.core.available

    @classmethod
    def attach(cls, channel: str, start: str = "next") -> "EventReader | None":
        """The reader of the channel's event ring, or None when no gateway offers one."""
        try:
            ring = EventRing.attach(event_ring_name(channel))
        except RingError:
            return None
        return cls(ring, start=start)

    def poll(self) -> np.ndarray:
        """The new events (a view of a reused buffer: valid until the next poll); empty if none."""
        if self._avail() <= 0:
            return self._buf[:0]
        n = self._poll(self._buf)
        return self._buf[:n]

    @property
    def lost(self) -> int:
        return self._r.lost

    def request_resync(self) -> None:
        """Ask the gateway for its state again (the ring header's resync word): a reader that
        lost events no longer knows its orders; the gateway answers with POSITION / OPEN /
        SYNCED for every strategy epoch it serves."""
        self.ring.request_resync()

    @property
    def owner_alive(self) -> bool:
        from pipeline.bus import shm
        return shm.pid_alive(self.ring.owner_pid, self.ring.epoch_ns)

    def stats(self) -> dict:
        return {f"events_{k}": v for k, v in self._r.stats().items()}

    def close(self) -> None:
        self._r = None
        self._poll = self._avail = None
        self.ring.close()


def reason_text(rec) -> str:
    return bytes(rec["reason"]).rstrip(b"\0").decode("ascii", "replace")


def decode(rec):
    """One ORDER_EVENT_DTYPE record as the strategy's OrderEvent."""
    from pipeline.strategy.orders import OrderEvent
    return OrderEvent(kind=int(rec["kind"]), client_id=int(rec["client_seq"]),
                      ts=int(rec["ts_ns"]), price=float(rec["price"]), qty=float(rec["qty"]),
                      fee=float(rec["fee"]), side=int(rec["side"]), maker=bool(rec["maker"]),
                      reason=reason_text(rec), remaining=float(rec["remaining"]),
                      epoch=int(rec["epoch"]), symbol=int(rec["symbol"]),
                      filled=float(rec["filled"]), venue_code=int(rec["venue_code"]),
                      fee_asset=bytes(rec["fee_asset"]).rstrip(b"\0").decode("ascii", "replace"))
