"""Faults on cue: what the simulator does wrong, when told to (POST /_sim/fault or [[sim.faults]]).

| fault            | params (defaults)                         | what a client sees                              |
|------------------|-------------------------------------------|-------------------------------------------------|
| drop             | target = "all" \\| "md" \\| "ws_api"        | connections cut (TCP abort, no close frame)     |
| silence          | seconds = 5, target = "md"                | no frames and no pings; TCP stays open          |
| delay            | ms = 200, count = 1 (0 = until cleared)   | REST and WS-API responses late by `ms`          |
| http_5xx         | count = 1, status = 503, late_ms = 0      | order accepted and executed, reply is 5xx -1007 |
|                  |                                           | (REST: sent late_ms after the order executed)   |
| force_1021       | count = 1                                 | next signed requests get -1021                  |
| force_429        | count = 1                                 | 429 -1003 + Retry-After; continuing earns 418   |
| force_418        | seconds = 120                             | banned: 418 -1003 + Retry-After                 |
| skip_depth       | count = 1, symbol = all                   | depthUpdate dropped: next U != previous u + 1   |
| malformed        | count = 1                                 | next frames on each md connection are not JSON  |
| truncated        | count = 1                                 | next frames are cut in half (invalid JSON)      |
| duplicate        | count = 1                                 | next frames are sent twice                      |
| server_shutdown  | grace_s = 0.5                             | serverShutdown event, then a close              |
| clock_skew       | behind_ms = 1500                          | serverTime (and the recvWindow check) that far  |
|                  |                                           | behind real time: every client's clock ahead    |
| flap             | seconds = 10, after_ms = 50               | every md connection cut after_ms after it opens |
|                  |                                           | (its first frames delivered): a reconnect storm |
| clear            |                                           | every pending fault is cancelled                |

The connection-level faults (drop, silence, malformed, truncated, duplicate, server_shutdown) are
carried out by the server (it owns the connections); this module validates requests and keeps the
request-path state.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

FAULTS = ("drop", "silence", "delay", "http_5xx", "force_1021", "force_429", "force_418",
          "skip_depth", "malformed", "truncated", "duplicate", "server_shutdown", "clock_skew",
          "flap", "clear")

_PARAMS: dict[str, dict[str, type | tuple]] = {
    "drop": {"target": str},
    "silence": {"seconds": (int, float), "target": str},
    "delay": {"ms": (int, float), "count": int},
    "http_5xx": {"count": int, "status": int, "late_ms": (int, float)},
    "force_1021": {"count": int},
    "force_429": {"count": int},
    "force_418": {"seconds": (int, float)},
    "skip_depth": {"count": int, "symbol": str},
    "malformed": {"count": int},
    "truncated": {"count": int},
    "duplicate": {"count": int},
    "server_shutdown": {"grace_s": (int, float)},
    "clock_skew": {"behind_ms": (int, float)},
    "flap": {"seconds": (int, float), "after_ms": (int, float)},
    "clear": {},
}
TARGETS = ("all", "md", "ws_api")


class FaultError(ValueError):
    """A fault request that cannot be honoured (unknown name, bad parameter)."""


def validate(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check a fault request; returns the params. FaultError names what is wrong."""
    if name not in _PARAMS:
        raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
    spec = _PARAMS[name]
    for k, v in params.items():
        if k not in spec:
            raise FaultError(f"fault {name!r} takes no parameter {k!r} (known: "
                             f"{', '.join(spec) or 'none'})")
        if isinstance(v, bool) or not isinstance(v, spec[k]):
            raise FaultError(f"fault {name!r}: parameter {k!r} has the wrong type ({v!r})")
        if isinstance(v, (int, float)) and v < 0:
            raise FaultError(f"fault {name!r}: parameter {k!r} must be >= 0")
    if params.get("target", "all") not in TARGETS:
        raise FaultError(f"fault {name!r}: target must be one of {', '.join(TARGETS)}")
    if "status" in params and not 500 <= params["status"] <= 599:
        raise FaultError(f"fault {name!r}: status must be 5xx")
    return params


@dataclass
class RequestFaults:
    """Request-path faults (REST and WS-API), consumed as requests arrive."""

    delay_ms: float = 0.0
    delay_left: int = 0            # 0 with delay_ms > 0 = until cleared
    http_5xx_left: int = 0
    http_5xx_status: int = 503
    http_5xx_late_ms: float = 0.0  # REST: hold the 5xx this long after the order executed
    force_1021_left: int = 0
    force_429_left: int = 0
    history: list[dict] = field(default_factory=list)

    def apply(self, name: str, params: dict[str, Any]) -> None:
        self.history.append({"fault": name, "params": params, "at": time.time()})
        if name == "delay":
            self.delay_ms = float(params.get("ms", 200))
            self.delay_left = int(params.get("count", 1))
        elif name == "http_5xx":
            self.http_5xx_left += int(params.get("count", 1))
            self.http_5xx_status = int(params.get("status", 503))
            self.http_5xx_late_ms = float(params.get("late_ms", 0))
        elif name == "force_1021":
            self.force_1021_left += int(params.get("count", 1))
        elif name == "force_429":
            self.force_429_left += int(params.get("count", 1))
        elif name == "clear":
            self.delay_ms = 0.0
            self.delay_left = self.http_5xx_left = self.force_1021_left = self.force_429_left = 0

    def take_delay(self) -> float:
        """Seconds to hold this response (0 = none)."""
        if self.delay_ms <= 0:
            return 0.0
        d = self.delay_ms / 1000.0
        if self.delay_left > 0:
            self.delay_left -= 1
            if self.delay_left == 0:
                self.delay_ms = 0.0
        return d

    def take(self, attr: str) -> bool:
        left = getattr(self, attr)
        if left > 0:
            setattr(self, attr, left - 1)
            return True
        return False

    def state(self) -> dict:
        return {"delay_ms": self.delay_ms, "delay_left": self.delay_left,
                "http_5xx_left": self.http_5xx_left, "force_1021_left": self.force_1021_left,
                "force_429_left": self.force_429_left, "applied": len(self.history)}


class ServerClock:
    """The simulator's wall clock as the venue's: serverTime and the signed requests' timestamp
    check use `now_ms()`, real time minus `behind_ms` (the clock_skew fault; every client then
    runs that far ahead). Every timestamp check is noted (what it was for, how far the request's
    timestamp was ahead of server time, the verdict), so a test can prove what a client sent."""

    def __init__(self) -> None:
        self.behind_ms = 0.0
        self.checked = 0
        self.ahead_rejected = 0             # timestamp >= serverTime + 1000 (-1021)
        self.behind_rejected = 0            # older than the recvWindow (-1021)
        self.max_ahead_accepted_ms: float | None = None
        self.recent: deque = deque(maxlen=512)  # (what, ahead_ms, verdict), oldest first

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 - int(self.behind_ms)

    def note(self, what: str, ahead_ms: float, verdict: str) -> None:
        self.checked += 1
        if verdict == "ahead":
            self.ahead_rejected += 1
        elif verdict == "behind":
            self.behind_rejected += 1
        elif self.max_ahead_accepted_ms is None or ahead_ms > self.max_ahead_accepted_ms:
            self.max_ahead_accepted_ms = ahead_ms
        self.recent.append((what, round(ahead_ms, 3), verdict))

    def state(self) -> dict:
        return {"behind_ms": self.behind_ms, "checked": self.checked,
                "ahead_rejected": self.ahead_rejected, "behind_rejected": self.behind_rejected,
                "max_ahead_accepted_ms": self.max_ahead_accepted_ms,
                "recent": [list(r) for r in self.recent]}


CLOCK = ServerClock()      # one simulator per process
