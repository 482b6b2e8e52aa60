"""REST dispatch to OKX v5: one keep-alive `requests.Session`, timeouts on everything, OKX's
per-endpoint rate limits kept on our side, every answer classified into the gateway's `Outcome`.

    OK            HTTP 2xx and code "0" (for one order: its sCode "0")
    REJECTED      the venue did not act: an OKX code (or the order's sCode) other than the ones
                  below; Reply.code is the code as an int (51008, 51016, 50113, ...)
    RATE_LIMITED  HTTP 429 / code 50011: the host is closed for a moment (HostGate)
    UNKNOWN       the request may have reached the matching engine and we cannot know: a timeout,
                  a broken connection, any 5xx, code (or sCode) 50001 / 50004 / 50013
    NOT_SENT      nothing was written: the host is closed, or our own budget for the endpoint
                  (pipeline.venues.okx.orders.RATE_LIMITS, requests per 2 s) is used up

Signing (pipeline/venues/okx/orders.py): OK-ACCESS-KEY / -SIGN / -TIMESTAMP / -PASSPHRASE on
every private request; `x-simulated-trading: 1` when [gateway] okx_demo is set (OKX demo trading).
New orders arrive already signed by the compiled order path (ext/okx_sign.pyx: timestamp, sign
and body in one blob) and carry `expTime` = timestamp + recvWindow, so the venue refuses one that
arrives later, exactly as Binance's recvWindow does (the UNKNOWN resolution relies on it).
"""
from __future__ import annotations

import collections
import logging
import time
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import orjson
import requests

from pipeline.gateway import tls
from pipeline.gateway.ratelimit import HostBlocked, HostGate
from pipeline.gateway.rest import Outcome, Reply, StampingAdapter, _WIRE, _wire_stamp
from pipeline.venues.okx import orders as ox

log = logging.getLogger(__name__)
BLOCK_S = 2.0              # a 429 closes the host for one of OKX's 2 s windows


def classify(status: int, body: Any) -> tuple[Outcome, int, str]:
    code, msg = "", ""
    if isinstance(body, dict):
        code, msg = str(body.get("code", "")), str(body.get("msg") or "")
        data = body.get("data")
        if code in (ox.ALL_FAILED, ox.PARTIAL) and isinstance(data, list) and len(data) == 1 \
                and isinstance(data[0], dict):
            code, msg = str(data[0].get("sCode", code)), str(data[0].get("sMsg") or msg)
    icode = int(code) if code.isdigit() else 0
    if status == 429 or code == ox.RATE_LIMITED:
        return Outcome.RATE_LIMITED, icode, msg
    if status >= 500 or code in ox.UNKNOWN_CODES:
        return Outcome.UNKNOWN, icode, msg or f"HTTP {status}"
    if 200 <= status < 300 and code == ox.OK:
        return Outcome.OK, 0, ""
    return Outcome.REJECTED, icode, msg or f"HTTP {status}"


class Budget:
    """Our count of requests per endpoint in OKX's windows: a request past the limit is not sent."""

    def __init__(self, limits: dict[str, tuple[int, float]] = ox.RATE_LIMITS):
        self.limits = limits
        self.sent: dict[str, collections.deque] = {k: collections.deque() for k in limits}
        self.refused = 0

    def take(self, endpoint: str) -> str:
        """"" when the request may go (and counts it), else why not."""
        lim = self.limits.get(endpoint)
        if lim is None:
            return ""
        n, secs = lim
        q = self.sent[endpoint]
        now = time.monotonic()
        while q and q[0] <= now - secs:
            q.popleft()
        if len(q) >= n:
            self.refused += 1
            return f"rate budget: {endpoint} used {len(q)}/{n} per {secs:g} s"
        q.append(now)
        return ""

    def snapshot(self) -> dict:
        now = time.monotonic()
        return {"refused": self.refused,
                "used": {k: sum(1 for t in q if t > now - self.limits[k][1])
                         for k, q in self.sent.items() if q}}


class OkxRest:
    """Signed and public REST calls to OKX v5 (same surface the gateway uses from RestClient)."""

    def __init__(self, base_url: str, api_key: str, passphrase: str, sign: Callable[..., str],
                 gate: HostGate, *, connect_timeout_s: float, read_timeout_s: float,
                 recv_window_ms: int, timestamp_ms: Callable[[], int],
                 redact: Callable[[str], str], ca_bundle: str = "", demo: bool = False,
                 rate_limits: bool = True):
        self.base = base_url.rstrip("/")
        self.host = urlsplit(self.base).netloc
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca_bundle or True        # TLS always verified
        self.adapter = StampingAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)
        headers = {"OK-ACCESS-KEY": api_key, "OK-ACCESS-PASSPHRASE": passphrase,
                   "Content-Type": "application/json"}
        if demo:
            headers["x-simulated-trading"] = "1"
        self.session.headers.update(headers)
        self._sign = sign
        self.gate = gate
        self.budget = Budget() if rate_limits else Budget({})
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.recv_window_ms = recv_window_ms
        self.timestamp_ms = timestamp_ms
        self.redact = redact
        self.requests = 0
        self.last_tls_error = ""
        self.on_io: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<OkxRest {self.base} key=<redacted>>"

    def close(self) -> None:
        self.session.close()

    # ---------------------------------------------------------------- the one send path
    def send(self, method: str, path: str, *, body: bytes = b"", query: str = "",
             signed: bool = True, stamp: tuple[str, str] | None = None, endpoint: str = "",
             exp_ms: int = 0, timeout: tuple[float, float] | None = None) -> Reply:
        on_io = self.on_io
        if on_io is not None:
            on_io()
        try:
            return self._send(method, path, body, query, signed, stamp, endpoint or path,
                              exp_ms, timeout)
        finally:
            if on_io is not None:
                on_io()

    def _send(self, method, path, body, query, signed, stamp, endpoint, exp_ms, timeout) -> Reply:
        try:
            self.gate.check_open()
        except HostBlocked as exc:
            return Reply(Outcome.NOT_SENT, msg=str(exc))
        why = self.budget.take(endpoint)
        if why:
            return Reply(Outcome.NOT_SENT, msg=why)
        rp = path + (("?" + query) if query else "")
        headers: dict[str, str] = {}
        if signed:
            if stamp is None:
                ts = ox.iso_ms(self.timestamp_ms())
                stamp = (ts, self._sign(ts, method, rp, body))
            headers["OK-ACCESS-TIMESTAMP"], headers["OK-ACCESS-SIGN"] = stamp
            if exp_ms:
                headers["expTime"] = str(exp_ms)
        self.requests += 1
        handed = time.perf_counter_ns()
        _WIRE.t = 0
        try:
            r = self.session.request(method, self.base + rp, data=body or None, headers=headers,
                                     timeout=timeout or self.timeout, allow_redirects=False)
        except requests.exceptions.SSLError as exc:
            msg = tls.describe(exc, self.host) or f"TLS error with {self.host}: {exc}"
            self.last_tls_error = msg
            log.error("%s", self.redact(msg))
            outcome = Outcome.NOT_SENT if tls.is_cert_failure(exc) else Outcome.UNKNOWN
            return Reply(outcome, msg=self.redact(msg), written_mono=_wire_stamp(handed),
                         done_mono=time.perf_counter_ns())
        except requests.exceptions.ConnectTimeout as exc:
            return Reply(Outcome.NOT_SENT, msg=self.redact(f"connect timeout: {exc}"),
                         written_mono=_wire_stamp(handed), done_mono=time.perf_counter_ns())
        except requests.RequestException as exc:
            return Reply(Outcome.UNKNOWN, msg=self.redact(f"{type(exc).__name__}: {exc}"),
                         written_mono=_wire_stamp(handed), done_mono=time.perf_counter_ns())
        done = time.perf_counter_ns()
        return self.reply_of(r.status_code, dict(r.headers), r.content, _wire_stamp(handed), done)

    def reply_of(self, status: int, headers: dict, content: bytes, written: int,
                 done: int) -> Reply:
        try:
            body = orjson.loads(content) if content else None
        except orjson.JSONDecodeError:
            body = None
        outcome, code, msg = classify(status, body)
        if outcome is Outcome.RATE_LIMITED:
            self.gate.block(429, BLOCK_S)
            log.warning("%s answered %d %s (%s): closed for %.1f s", self.host, status, code,
                        msg[:120], BLOCK_S)
        data = body.get("data") if isinstance(body, dict) else None
        return Reply(outcome, status, code, self.redact(msg), data, headers, written, done)

    # ---------------------------------------------------------------- helpers
    def order(self, blob: bytes, exp_ms: int) -> Reply:
        """POST /api/v5/trade/order with a blob signed by the order path (okx_sign_py.split)."""
        from pipeline.venues.okx.okx_sign_py import HEAD, TS_LEN
        return self.send("POST", ox.ORDER_PATH, body=blob[HEAD:],
                         stamp=(blob[:TS_LEN].decode(), blob[TS_LEN:HEAD].decode()),
                         endpoint=ox.ORDER_PATH + " POST", exp_ms=exp_ms)

    def get(self, path: str, params: dict[str, Any], endpoint: str = "", **kw: Any) -> Reply:
        p = {k: v for k, v in params.items() if v not in (None, "")}
        return self.send("GET", path, query=urlencode(p), endpoint=endpoint or path, **kw)

    def post(self, path: str, obj: Any, **kw: Any) -> Reply:
        return self.send("POST", path, body=orjson.dumps(obj), **kw)

    def public(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Reply:
        return self.send("GET", path, query=urlencode(params or {}), signed=False, **kw)

    def server_time(self, timeout_s: float | None = None) -> tuple[int, int, int] | None:
        """(local wall ns before, server ms, local wall ns after) of GET /api/v5/public/time."""
        kw: dict[str, Any] = {}
        if timeout_s is not None:
            kw["timeout"] = (min(self.timeout[0], timeout_s), min(self.timeout[1], timeout_s))
        t0 = time.time_ns()
        r = self.public(ox.TIME_PATH, **kw)
        t1 = time.time_ns()
        try:
            return t0, int(r.data[0]["ts"]), t1
        except (TypeError, KeyError, IndexError, ValueError):
            return None

    def top_of_book(self, inst: str) -> tuple[float, float] | None:
        """(best bid, best ask) from GET /api/v5/market/books?sz=1 (the collar's reference)."""
        r = self.public("/api/v5/market/books", {"instId": inst, "sz": 1})
        try:
            d = r.data[0]
            return float(d["bids"][0][0]), float(d["asks"][0][0])
        except (TypeError, KeyError, IndexError, ValueError):
            return None


__all__ = ["OkxRest", "classify", "Budget"]
