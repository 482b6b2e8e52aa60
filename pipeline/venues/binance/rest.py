"""Binance spot REST (/api/v3): the answer classifier, the signed REST client and the order wire's
Binance settings, on the gateway's generic transport (pipeline/gateway/rest.py, wire.py).

    classify      HTTP status + {"code", "msg"} body → Outcome; -1006 / -1007 ("unexpected
                  response", "timeout ... status unknown") are UNKNOWN
    RestClient    X-MBX-APIKEY header, signed queries (recvWindow, timestamp, signature), the
                  venue clock (GET /api/v3/time)
    BinanceWire   the held-open order wire for POST /api/v3/order
    strip_signature  a signed body or query without its `signature` (what the journal keeps)
"""
from __future__ import annotations

import time
from typing import Any, Callable
from urllib.parse import urlencode

from pipeline.gateway.ratelimit import HostGate
from pipeline.gateway.rest import HttpClient, Outcome, Reply
from pipeline.gateway.wire import Wire

UNKNOWN_CODES = frozenset({-1006, -1007})   # "unexpected response", "timeout ... status unknown"
ORDER_PATH = "/api/v3/order"
TIME_PATH = "/api/v3/time"
FORM = "application/x-www-form-urlencoded"


def strip_signature(body: bytes | str) -> str:
    """A request body or query without its `signature` parameter."""
    s = body.decode("ascii", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    return "&".join(p for p in s.split("&") if not p.startswith("signature="))


def classify(status: int, body: Any) -> tuple[Outcome, int, str]:
    code = 0
    msg = ""
    if isinstance(body, dict):
        try:
            code = int(body.get("code") or 0)
        except (TypeError, ValueError):
            code = 0
        msg = str(body.get("msg") or "")
    if status == 418:
        return Outcome.BANNED, code, msg
    if status == 429:
        return Outcome.RATE_LIMITED, code, msg
    if status >= 500 or code in UNKNOWN_CODES:
        return Outcome.UNKNOWN, code, msg
    if 200 <= status < 300:
        return Outcome.OK, 0, ""
    return Outcome.REJECTED, code, msg

class RestClient(HttpClient):
    """Signed and public REST calls to one Binance host."""

    def __init__(self, base_url: str, api_key: str, sign: Callable[[bytes], str], gate: HostGate,
                 *, connect_timeout_s: float, read_timeout_s: float, recv_window_ms: int,
                 timestamp_ms: Callable[[], int], redact: Callable[[str], str],
                 ca_bundle: str = ""):
        super().__init__(base_url, {"X-MBX-APIKEY": api_key, "Content-Type": FORM}, gate,
                         classify=classify, connect_timeout_s=connect_timeout_s,
                         read_timeout_s=read_timeout_s, redact=redact, ca_bundle=ca_bundle)
        self._sign = sign
        self.recv_window_ms = recv_window_ms
        self.timestamp_ms = timestamp_ms

    # ---------------------------------------------------------------- helpers
    def signed_query(self, params: dict[str, Any]) -> str:
        p = {k: v for k, v in params.items() if v is not None}
        p["recvWindow"] = self.recv_window_ms
        p["timestamp"] = self.timestamp_ms()
        q = urlencode(p)
        return q + "&signature=" + self._sign(q.encode())

    def signed(self, method: str, path: str, params: dict[str, Any], **kw: Any) -> Reply:
        return self.send(method, path, query=self.signed_query(params), **kw)

    def server_time(self, timeout_s: float | None = None) -> tuple[int, int, int] | None:
        """(local wall ns before, server ms, local wall ns after) of one GET /api/v3/time
        (`timeout_s` caps both the connect and the read timeout)."""
        kw: dict[str, Any] = {}
        if timeout_s is not None:
            kw["timeout"] = (min(self.timeout[0], timeout_s), min(self.timeout[1], timeout_s))
        t0 = time.time_ns()
        r = self.public(TIME_PATH, **kw)
        t1 = time.time_ns()
        if r.outcome is not Outcome.OK or not isinstance(r.data, dict) \
                or "serverTime" not in r.data:
            return None
        return t0, int(r.data["serverTime"]), t1

class BinanceWire(Wire):
    """The order wire (pipeline/gateway/wire.py) for Binance's POST /api/v3/order."""

    def __init__(self, base_url: str, api_key: str, gate: HostGate, **kw: Any):
        super().__init__(base_url, {"X-MBX-APIKEY": api_key, "Content-Type": FORM}, gate,
                         path=ORDER_PATH, classify=classify, **kw)


__all__ = ["BinanceWire", "ORDER_PATH", "RestClient", "UNKNOWN_CODES", "classify",
           "strip_signature"]
