"""Signal intake: the gateway's end of the signal channel (pipeline.bus.signals), plus the
hygiene checks that come before risk: malformed frames, stale signals (TTL), duplicates
((epoch, seq) per strategy) and sequence gaps.

The channel binds PULL on `ipc://@<channel>` and ROUTER on `ipc://@<channel>.ctl` (Linux abstract
namespace): a second gateway on the same channel fails to bind and stops with a clear error
(`IntakeBindError`). HELLOs are answered with READY on every poll. With `ring_capacity` > 0 (the
gateway's `signal_ring`) the intake also owns the channel's shared-memory signal ring and waits on
it with the role's wait strategy; the strategy switches to it on READY (pipeline.bus.signals).

Per strategy the intake keeps the highest (epoch, seq) seen: an older epoch or a seq at or below
the mark is a duplicate; a seq more than one above the mark is a gap (counted, logged, journalled);
a new epoch (a restarted strategy) starts a new run. The marks are rebuilt from the journal at
restart, so a signal replayed after a restart is still a duplicate.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class IntakeBindError(RuntimeError):
    """The signal endpoint is taken (another gateway is running on this channel)."""


@dataclass
class Verdict:
    ok: bool
    reason: str = ""
    gap: int = 0


class Intake:
    def __init__(self, channel: str, *, rcvhwm: int = 10000, ring_capacity: int = 0,
                 ring_wait: str = "blocking"):
        try:
            from pipeline.bus import signals
        except ImportError as exc:   # the codec is issue 6's; say what is missing
            raise ImportError(f"the signal codec pipeline.bus.signals is not available: {exc}") \
                from exc
        self.signals = signals
        self.size = signals.SIGNAL_SIZE
        try:
            self.rx = signals.SignalReceiver(channel, rcvhwm=rcvhwm, ring_capacity=ring_capacity,
                                             ring_wait=ring_wait)
        except signals.SignalBindError as exc:
            raise IntakeBindError(f"signal channel {channel!r}: {exc}") from None
        self.ring_wait = ring_wait if ring_capacity else ""
        self.wait = self.rx.wait            # (timeout_ms) -> True when a signal waits
        self.recv_raw = self.rx.recv_raw    # () -> 80 bytes or None, ring first
        self.marks: dict[int, tuple[int, int]] = {}     # strategy id -> (epoch, seq)
        self.received = 0
        self.malformed = 0
        self.expired = 0
        self.duplicates = 0
        self.gaps = 0
        self.gap_events = 0
        self.closed = False

    def decode(self, raw: bytes) -> Any | None:
        try:
            sig = self.signals.decode(raw)
        except self.signals.SignalFormatError as exc:
            self.malformed += 1
            log.warning("intake: malformed signal dropped: %s", exc)
            return None
        self.received += 1
        return sig

    def judge(self, sig: Any, now_mono: int) -> Verdict:
        """TTL, then duplicate/gap against the strategy's mark (which moves on success)."""
        if sig.ttl_ns <= 0 or now_mono - sig.created_mono > sig.ttl_ns:
            self.expired += 1
            return Verdict(False, "EXPIRED")
        mark = self.marks.get(sig.strategy_id)
        gap = 0
        if mark is not None:
            epoch, seq = mark
            if sig.epoch < epoch or (sig.epoch == epoch and sig.seq <= seq):
                self.duplicates += 1
                return Verdict(False, "DUPLICATE")
            if sig.epoch == epoch and sig.seq > seq + 1:
                gap = sig.seq - seq - 1
        elif sig.seq > 1:
            gap = sig.seq - 1
        if gap:
            self.gaps += gap
            self.gap_events += 1
            log.warning("intake: strategy %d epoch %d: %d signal(s) missing before seq %d",
                        sig.strategy_id, sig.epoch, gap, sig.seq)
        self.marks[sig.strategy_id] = (sig.epoch, sig.seq)
        return Verdict(True, gap=gap)

    def restore_mark(self, strategy_id: int, epoch: int, seq: int) -> None:
        cur = self.marks.get(strategy_id)
        if cur is None or (epoch, seq) > cur:
            self.marks[strategy_id] = (epoch, seq)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.rx.close()

    def snapshot(self) -> dict:
        return {"received": self.received, "malformed": self.malformed, "expired": self.expired,
                "duplicates": self.duplicates, "gaps": self.gaps, "gap_events": self.gap_events,
                "ready_answered": len(self.rx.hellos), "ring_wait": self.ring_wait,
                **self.rx.ring_stats()}
