"""The venue's rate limits as the gateway sees them, per host.

- The venue's counts of what we used, as its answers carry them, update the used counts: the
  venue's `used_of(headers)` reads a REST answer's headers (given by the venue adapter, e.g.
  pipeline/venues/binance/ratelimits.py: X-MBX-USED-WEIGHT-1M ...; None: the venue sends none),
  and `observe(used)` takes them from anywhere else (a WebSocket answer). Above
  `slowdown_fraction` of a limit the gateway paces requests (`pace_s`), above `stop_fraction` it
  sends no new order until the window ends (windows aligned to the interval).
- A 429 closes the host until its Retry-After has passed: nothing at all is sent to it meanwhile
  (continuing after a 429 is what earns a 418 ban). A 418 closes it as well and HALTs trading
  (the caller's business). With a `state_file` the closure outlives the process: each block is
  written there (0600, atomically) and `restore()` reads it back at start, so a gateway
  restarted inside a 429's Retry-After waits it out instead of earning a 418 ban. With `shared`
  (pipeline/venueclosure.py) the closure is the run's: the venue limits per IP, so a 429/418
  told to another process (the collector's depth snapshots) closes the host here too
  (`poll_shared`, from the loop's housekeeping and while starting), and ours closes it there.

New orders are admitted by the risk kernel alone (ext/risk.pyx step 12, in the compiled order
path, before anything is signed): the gate learns the venue's limits and, once `bind(risk)` is
called, pushes what it learnt after every observation into the kernel (`set_venue_gate`, in
CLOCK_MONOTONIC): closed after a 429/418 until Retry-After (HOST_CLOSED), the window's budget used
up until the window ends (RATE_BUDGET), and above `slowdown_fraction` at most one order every pace
(what is left of the budget spread over what is left of the window; a signal that comes sooner is
RATE_BUDGET, never slept on). The pacing's state lives in the kernel, next to our own order-rate
throttle; `order_wait_s` answers the same question for tools and tests.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping

log = logging.getLogger(__name__)

# a venue's reading of an answer's headers: [(kind "weight" | "orders", window s, count)]
UsageReader = Callable[[Mapping[str, str]], Iterable[tuple[str, int, int]]]


class HostBlocked(RuntimeError):
    """Nothing may be sent to this host until `until_wall_s` (after a 429 / 418)."""

    def __init__(self, host: str, until_wall_s: float, status: int):
        super().__init__(f"{host}: closed after HTTP {status} until "
                         f"{max(0.0, until_wall_s - time.time()):.1f} s from now")
        self.until_wall_s = until_wall_s
        self.status = status


class HostGate:
    def __init__(self, host: str, *, weight_limit_1m: int, order_limit_10s: int,
                 slowdown_fraction: float = 0.8, stop_fraction: float = 0.95, clock=time.time,
                 state_file: str | Path | None = None, shared=None,
                 used_of: UsageReader | None = None):
        self.host = host
        self.used_of = used_of    # the venue's reading of its headers (None: it sends none)
        self.state_file = Path(state_file) if state_file else None
        # the run's record of this host's closure (pipeline.venueclosure.SharedClosure): the
        # venue limits per IP, so a 429/418 told to another process (the collector) holds here
        self.shared = shared
        self.limits = {("weight", 60): weight_limit_1m, ("orders", 10): order_limit_10s}
        self.slow = slowdown_fraction
        self.stop = stop_fraction
        self.clock = clock
        self.used: dict[tuple[str, int], tuple[int, int]] = {}   # (kind, secs) → (count, window)
        self.blocked_until = 0.0
        self.blocked_status = 0
        self.blocks = 0           # 429/418 seen
        self.refused = 0          # requests not sent because the host was closed
        self._sink = None         # the risk kernel (bind): where order admission is judged

    # ---------------------------------------------------------------- learning
    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """A REST answer's headers, read by the venue's `used_of`."""
        self.observe(self.used_of(headers) if self.used_of is not None and headers else ())

    def observe(self, used: Iterable[tuple[str, int, int]]) -> None:
        """What the venue says we used: (kind "weight" | "orders", window s, count) each."""
        now = self.clock()
        for kind, secs, n in used:
            if secs > 0:
                self.used[(kind, secs)] = (n, int(now // secs))
        self._push()

    def block(self, status: int, retry_after_s: float) -> None:
        until = self.clock() + max(1.0, float(retry_after_s))
        if until > self.blocked_until:
            self.blocked_until = until
        self.blocked_status = status
        self.blocks += 1
        self._push()
        self._save()
        if self.shared is not None:
            self.shared.record(status, self.blocked_until)

    def poll_shared(self) -> float:
        """Take over a closure another process of the run was told about (cheap: a stat while
        the record is unchanged); returns the seconds still to wait (0: open)."""
        if self.shared is None:
            return 0.0
        until, status = self.shared.until()
        now = self.clock()
        if until > self.blocked_until and until > now:
            self.blocked_until, self.blocked_status = until, status
            log.warning("%s was closed to this run (HTTP %d, told to another process) for "
                        "%.1f s: sending nothing until then", self.host, status, until - now)
            self._push()
            self._save()
        return max(0.0, self.blocked_until - now)

    def _save(self) -> None:
        """The closure, for the next start (a failure to write is logged: the closure holds
        for this process either way)."""
        if self.state_file is None:
            return
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"host": self.host, "until_wall_s": self.blocked_until,
                           "status": self.blocked_status}, f)
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.warning("cannot record the closure of %s in %s: %s", self.host, self.state_file,
                        exc)

    def restore(self) -> float:
        """Take over a closure an earlier process recorded for this host that has not ended;
        returns the seconds still to wait (0: open)."""
        if self.state_file is None:
            return self.poll_shared()
        try:
            rec = json.loads(self.state_file.read_text())
            until, status = float(rec["until_wall_s"]), int(rec["status"])
            host = rec["host"]
        except FileNotFoundError:
            return self.poll_shared()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring an unreadable host closure record %s: %s", self.state_file, exc)
            return self.poll_shared()
        left = until - self.clock()
        if host != self.host or left <= 0:
            return self.poll_shared()
        if until > self.blocked_until:
            self.blocked_until, self.blocked_status = until, status
            self._push()
        return max(left, self.poll_shared())

    # ---------------------------------------------------------------- asking
    def check_open(self) -> None:
        """Raise HostBlocked while the host is closed (after a 429/418)."""
        if self.clock() < self.blocked_until:
            self.refused += 1
            raise HostBlocked(self.host, self.blocked_until, self.blocked_status)

    def _share(self, kind: str, secs: int) -> tuple[float, float]:
        """(share of the limit used in the current window, seconds until it ends)."""
        limit = self.limits.get((kind, secs))
        got = self.used.get((kind, secs))
        now = self.clock()
        if not limit or got is None or got[1] != int(now // secs):
            return 0.0, 0.0
        return got[0] / limit, (got[1] + 1) * secs - now

    def order_wait_s(self) -> tuple[float, bool]:
        """(seconds to pace before the next order, True if no order may go this window)."""
        worst_pace = 0.0
        for key in (("weight", 60), ("orders", 10)):
            share, left = self._share(*key)
            if share >= self.stop:
                return left, True
            if share >= self.slow:
                # spread what is left of the budget evenly over what is left of the window
                limit = self.limits[key]
                budget = max(1.0, (self.stop - share) * limit)
                worst_pace = max(worst_pace, left / budget)
        return worst_pace, False

    # ---------------------------------------------------------------- new orders
    def bind(self, sink) -> None:
        """Hand new-order admission to `sink.set_venue_gate` (the risk kernel): pushed now and
        after every observation."""
        self._sink = sink
        self._push()

    def _push(self) -> None:
        """The kernel's view of the venue's limits now, in CLOCK_MONOTONIC ns."""
        if self._sink is None:
            return
        wall = self.clock()
        mono = time.perf_counter_ns()

        def mono_at(w: float) -> int:
            return mono + int((w - wall) * 1e9) if w > wall else 0
        host_until = mono_at(self.blocked_until)
        budget_until = pace_ns = pace_until = 0
        for key in (("weight", 60), ("orders", 10)):
            share, left = self._share(*key)
            if share >= self.stop:
                budget_until = max(budget_until, mono_at(wall + left))
            elif share >= self.slow:
                budget = max(1.0, (self.stop - share) * self.limits[key])
                p = int(left / budget * 1e9)
                if p > pace_ns:
                    pace_ns, pace_until = p, mono_at(wall + left)
        self._sink.set_venue_gate(host_until, budget_until, pace_ns, pace_until)

    def snapshot(self) -> dict:
        return {"host": self.host, "blocked_for_s": max(0.0, self.blocked_until - self.clock()),
                "blocked_status": self.blocked_status, "blocks": self.blocks,
                "refused": self.refused,
                "used": {f"{k}_{s}s": v[0] for (k, s), v in self.used.items()}}


def retry_after_s(headers: Mapping[str, str], default: float = 60.0) -> float:
    """Retry-After in seconds from an HTTP answer's header (at least 1 s; `default` without)."""
    v = headers.get("Retry-After") if headers else None
    if v is not None:
        try:
            return max(1.0, float(v))
        except ValueError:
            pass
    return default
