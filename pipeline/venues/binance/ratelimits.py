"""Binance's rate-limit counters as its answers carry them, for the generic gate
(pipeline/gateway/ratelimit.py HostGate.observe: [(kind, window seconds, count)]).

- REST: every response's `X-MBX-USED-WEIGHT-<n><unit>` and `X-MBX-ORDER-COUNT-<n><unit>`
  headers (unit s / m / h / d): `used_from_headers` (the gate's `used_of`, given by the venue
  adapter, pipeline/venues/binance/gateway.py).
- WebSocket API: a response's `rateLimits` list ({"rateLimitType": "REQUEST_WEIGHT" | "ORDERS",
  "interval": "SECOND" | ..., "intervalNum", "count"}): `used_from_ws_limits`; a refused
  request's `error.data.retryAfter` (ms since the epoch): `retry_after_of_ws_error`.
Binance's windows are aligned to the interval (the gate's own business).
"""
from __future__ import annotations

import re
import time
from typing import Mapping

_HDR = re.compile(r"^x-mbx-(used-weight|order-count)-0*([1-9]\d{0,5})([smhd])$", re.I)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WS_KIND = {"REQUEST_WEIGHT": "weight", "ORDERS": "orders"}
_WS_UNIT_S = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


def used_from_headers(headers: Mapping[str, str]) -> list[tuple[str, int, int]]:
    """[(kind "weight" | "orders", window s, count)] from a REST answer's headers."""
    out = []
    for k, v in headers.items():
        m = _HDR.match(k)
        if not m:
            continue
        try:
            n = int(v)
        except ValueError:
            continue
        kind = "weight" if m.group(1).lower() == "used-weight" else "orders"
        out.append((kind, int(m.group(2)) * _UNIT_S[m.group(3).lower()], n))
    return out


def used_from_ws_limits(limits) -> list[tuple[str, int, int]]:
    """The same from a WS-API answer's `rateLimits` (malformed entries skipped)."""
    out = []
    for lim in limits if isinstance(limits, list) else ():
        try:
            secs = int(lim["intervalNum"]) * _WS_UNIT_S[lim["interval"]]
            if secs <= 0:
                continue                  # no such window (intervalNum 0 or negative)
            out.append((_WS_KIND[lim["rateLimitType"]], secs, int(lim["count"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def retry_after_of_ws_error(err: dict | None, default: float = 60.0) -> float:
    """Seconds to wait from a WS-API error's data.retryAfter (ms since the epoch)."""
    try:
        ra = err["data"]["retryAfter"]      # type: ignore[index]
        return max(1.0, ra / 1000.0 - time.time())
    except (KeyError, TypeError):
        return default


__all__ = ["used_from_headers", "used_from_ws_limits", "retry_after_of_ws_error"]
