"""Signal intake: the gateway's end of the signal channel (pipeline.bus.signals): receive, decode,
and count (received, malformed, sequence gaps). It judges nothing: malformed frames, stale signals
(TTL) and duplicates ((epoch, seq) per strategy) are the risk kernel's refusals (ext/risk.pyx),
judged once in the order path; the kernel also reports each sequence gap, which the intake
counts and logs (the loop journals it).

The channel binds PULL and ROUTER on filesystem ipc:// sockets in a directory private to the
run's user (pipeline.bus.channel), holding the channel's lock: a second gateway on the same
channel fails and stops with a clear error (`IntakeBindError`). Only this uid with the run's
channel token gets a connection through (ZAP: SO_PEERCRED uid + PLAIN password, then the token
again in the HELLO); valid HELLOs are answered with READY on every poll, and a signal of a strategy
id no accepted HELLO announced is refused. The refusals are counted by kind in the snapshot
(`refused`: uid, token, no_auth, bad_hello, unknown_strategy, before_ready) and logged with the
peer's pid/uid, never the token. With `ring_capacity` > 0 (the
gateway's `signal_ring`) the intake also owns the channel's shared-memory signal ring and waits on
it with the role's wait strategy; the strategy switches to it on READY (pipeline.bus.signals).

The risk kernel keeps per strategy the highest (epoch, seq) seen (rebuilt from the journal at
restart, pipeline/gateway/reconcile.py), so a signal replayed after a restart is still a duplicate.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class IntakeBindError(RuntimeError):
    """The signal endpoint is taken (another gateway is running on this channel)."""


class Intake:
    def __init__(self, channel: str, *, rcvhwm: int = 10000, ring_capacity: int = 0,
                 ring_wait: str = "blocking", token: str | bytes | None = None,
                 allowed_ids=None):
        try:
            from pipeline.bus import signals
        except ImportError as exc:   # the codec is issue 6's; say what is missing
            raise ImportError(f"the signal codec pipeline.bus.signals is not available: {exc}") \
                from exc
        self.signals = signals
        self.size = signals.SIGNAL_SIZE
        try:
            self.rx = signals.SignalReceiver(channel, rcvhwm=rcvhwm, ring_capacity=ring_capacity,
                                             ring_wait=ring_wait, token=token,
                                             allowed_ids=allowed_ids)
        except signals.SignalBindError as exc:
            raise IntakeBindError(f"signal channel {channel!r}: {exc}") from None
        self.ring_wait = ring_wait if ring_capacity else ""
        self.wait = self.rx.wait            # (timeout_ms) -> True when a signal waits
        self.recv_raw = self.rx.recv_raw    # () -> 80 bytes or None, ring first
        self.wake = self.rx.wake            # () from any thread: the loop's wait ends now
        self.received = 0
        self.malformed = 0
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

    def note_malformed(self, raw: bytes, reason: str) -> None:
        """The risk kernel refused a frame that is not a signal record (MALFORMED/BAD_VERSION)."""
        self.malformed += 1
        log.warning("intake: malformed signal dropped (%s, %d bytes)", reason, len(raw))

    def note_gap(self, sig: Any, missing: int) -> None:
        """The risk kernel saw `missing` signals absent before this one: counted and logged."""
        self.gaps += missing
        self.gap_events += 1
        log.warning("intake: strategy %d epoch %d: %d signal(s) missing before seq %d",
                    sig.strategy_id, sig.epoch, missing, sig.seq)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.rx.close()

    def snapshot(self) -> dict:
        return {"received": self.received, "malformed": self.malformed, "gaps": self.gaps,
                "gap_events": self.gap_events, "ready_answered": len(self.rx.hellos),
                "ring_wait": self.ring_wait, "refused": self.rx.refusal_stats(),
                "refused_total": self.rx.refusals.total, **self.rx.ring_stats()}
