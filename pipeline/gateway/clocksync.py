"""The venue's clock as seen from here: offset = server time - local wall time, measured as the
median over >= 3 samples of `serverTime - (t_send + t_recv) / 2` from GET /api/v3/time.

`timestamp_ms()` is what every signed request carries: local wall time + offset. The gateway
resyncs at start, every `resync_s`, and on a -1021. An |offset| beyond `max_offset_ms` on
`strikes` consecutive syncs is a persistent skew: `skewed` becomes True and the gateway HALTs
(our clock, or the venue's, cannot be trusted to put orders inside the recvWindow).

`sync(deadline_s=...)` bounds a sync in time (the gateway's loop must not look stuck, and a kill
switch must not wait behind it): no sample starts after the deadline, and with `timed_sample`
each sample gets at most the time that is left as its own timeout.
"""
from __future__ import annotations

import logging
import statistics
import time
from typing import Callable

from pipeline.logs import event_log

log = logging.getLogger(__name__)

Sample = Callable[[], "tuple[int, int, int] | None"]
TimedSample = Callable[[float], "tuple[int, int, int] | None"]   # (timeout_s) → as Sample
MIN_SAMPLE_TIMEOUT_S = 0.05


class ClockSync:
    def __init__(self, sample: Sample, *, samples: int = 5, resync_s: float = 60.0,
                 max_offset_ms: float = 1000.0, strikes: int = 3,
                 wall_ns: Callable[[], int] = time.time_ns,
                 mono_ns: Callable[[], int] = time.perf_counter_ns,
                 timed_sample: TimedSample | None = None, deadline_s: float | None = None):
        if samples < 3:
            raise ValueError("clock sync needs at least 3 samples")
        self._sample = sample
        self._timed_sample = timed_sample
        self.deadline_s = deadline_s           # default bound of every sync (None: unbounded)
        self.timeouts = 0                      # syncs cut short by their deadline
        self.samples = samples
        self.resync_ns = int(resync_s * 1e9)
        self.max_offset_ns = int(max_offset_ms * 1e6)
        self.strikes_limit = strikes
        self.wall_ns = wall_ns
        self.mono_ns = mono_ns
        self.offset_ns = 0
        self.rtt_ns = 0
        self.synced = False
        self.strikes = 0
        self.syncs = 0
        self.failures = 0
        self.last_sync_mono = 0

    @property
    def skewed(self) -> bool:
        return self.strikes >= self.strikes_limit

    def timestamp_ms(self) -> int:
        return (self.wall_ns() + self.offset_ns) // 1_000_000

    def due(self) -> bool:
        return self.mono_ns() - self.last_sync_mono >= self.resync_ns

    def sync(self, deadline_s: float | None = None) -> bool:
        """Take the samples; True if at least 3 answered and the offset was updated. With a
        deadline (argument, else the constructor's), sampling stops once it has passed."""
        offs, rtts = [], []
        budget = self.deadline_s if deadline_s is None else deadline_s
        end = None if budget is None else self.mono_ns() + int(budget * 1e9)
        for _ in range(self.samples):
            if end is None:
                s = self._sample()
            else:
                left_s = (end - self.mono_ns()) / 1e9
                if left_s <= 0:
                    self.timeouts += 1
                    log.warning("clock sync: deadline of %.2f s reached after %d sample(s)",
                                budget, len(offs))
                    break
                if self._timed_sample is not None:
                    s = self._timed_sample(max(MIN_SAMPLE_TIMEOUT_S, left_s))
                else:
                    s = self._sample()
            if s is None:
                continue
            t0, server_ms, t1 = s
            offs.append(server_ms * 1_000_000 - (t0 + t1) // 2)
            rtts.append(t1 - t0)
        self.last_sync_mono = self.mono_ns()
        if len(offs) < 3:
            self.failures += 1
            event_log("CLOCK_SYNC_FAILED", logging.WARNING, answered=len(offs),
                      samples=self.samples, offset_kept_ms=round(self.offset_ns / 1e6, 3))
            return False
        self.offset_ns = int(statistics.median(offs))
        self.rtt_ns = int(statistics.median(rtts))
        self.synced = True
        self.syncs += 1
        if abs(self.offset_ns) > self.max_offset_ns:
            self.strikes += 1
            event_log("CLOCK_SKEW", logging.WARNING, offset_ms=round(self.offset_ns / 1e6, 3),
                      limit_ms=self.max_offset_ns / 1e6, strike=self.strikes,
                      of=self.strikes_limit)
        else:
            self.strikes = 0
            event_log("CLOCK_SYNC", offset_ms=round(self.offset_ns / 1e6, 3),
                      rtt_ms=round(self.rtt_ns / 1e6, 3), samples=len(offs))
        return True

    def strike(self) -> None:
        """A -1021 that survived a resync counts as evidence of skew."""
        self.strikes += 1

    def snapshot(self) -> dict:
        return {"offset_ms": self.offset_ns / 1e6, "rtt_ms": self.rtt_ns / 1e6,
                "synced": self.synced, "syncs": self.syncs, "failures": self.failures,
                "strikes": self.strikes, "skewed": self.skewed, "timeouts": self.timeouts}
