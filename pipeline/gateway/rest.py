"""REST dispatch to a venue: one keep-alive `requests.Session`, timeouts on everything, every
answer classified into an `Outcome` the order logic can act on (by the venue's classifier:
pipeline/venues/<venue>/rest.py):

    OK            2xx with a JSON body
    REJECTED      4xx with a venue error code: the venue did not act
    RATE_LIMITED  429: the host is closed until Retry-After (HostGate)
    BANNED        418: the host is closed until Retry-After; the caller HALTs trading
    UNKNOWN       the request may have reached the matching engine and we cannot know: a timeout,
                  a broken connection, any 5xx, or a venue code that says so
    NOT_SENT      nothing was written (the host is closed); safe to treat as "did not happen"

`HttpClient` is the transport; a venue's client adds its authentication (headers, signed
queries) and its clock endpoint. Exceptions from the HTTP stack can carry a URL with a signed
query string: their text is passed through the Redactor before it is stored or logged.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from pipeline.gateway import tls
from pipeline.gateway.ratelimit import HostBlocked, HostGate, retry_after_s

log = logging.getLogger(__name__)

# CLOCK_MONOTONIC when the last request's first byte was handed to the kernel: the connection's
# first send() (http.client sends the header block, then the body). Stamping after sendall would
# add the kernel's loopback delivery and whatever the scheduler runs meanwhile (the peer, on a
# shared core) - the venue's time, not ours. One slot per thread (new orders of the default
# configuration go through pipeline/gateway/wire.py instead, which stamps its own connections).
_WIRE = threading.local()


def _wire_stamp(default: int) -> int:
    return getattr(_WIRE, "t", 0) or default


class _StampedHTTPConnection(HTTPConnection):
    def send(self, data: Any) -> None:
        if not getattr(_WIRE, "t", 0):
            _WIRE.t = time.perf_counter_ns()
        super().send(data)


class _StampedHTTPSConnection(HTTPSConnection):
    def send(self, data: Any) -> None:
        if not getattr(_WIRE, "t", 0):
            _WIRE.t = time.perf_counter_ns()
        super().send(data)


class _StampedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _StampedHTTPConnection


class _StampedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _StampedHTTPSConnection


class StampingAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections stamp the moment a request is written to the socket."""

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        super().init_poolmanager(*args, **kw)
        self.poolmanager.pool_classes_by_scheme = {"http": _StampedHTTPPool,
                                                   "https": _StampedHTTPSPool}


class Outcome(str, Enum):
    OK = "OK"
    REJECTED = "REJECTED"
    RATE_LIMITED = "RATE_LIMITED"
    BANNED = "BANNED"
    UNKNOWN = "UNKNOWN"
    NOT_SENT = "NOT_SENT"


# a venue's answer classifier: (HTTP status, parsed body) -> (Outcome, venue code, message)
Classifier = Callable[[int, Any], "tuple[Outcome, int, str]"]


@dataclass
class Reply:
    outcome: Outcome
    status: int = 0
    code: int = 0
    msg: str = ""
    data: Any = None
    headers: dict = field(default_factory=dict)
    written_mono: int = 0        # CLOCK_MONOTONIC just before the bytes went to the socket
    done_mono: int = 0

    def summary(self) -> dict:
        out: dict[str, Any] = {"outcome": self.outcome.value, "status": self.status}
        if self.code:
            out["code"] = self.code
        if self.msg:
            out["msg"] = self.msg[:300]
        return out


def reply_of(status: int, headers: dict, content: bytes, gate: HostGate,
             redact: Callable[[str], str], written_mono: int, done_mono: int,
             classify: Classifier) -> Reply:
    """The Reply for one HTTP answer: the body parsed, the outcome classified (by the venue's
    `classify`), the host's rate counters learned from the headers, and the host closed on a
    429 / 418 (Retry-After)."""
    gate.observe_headers(headers)
    try:
        data = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        data = None
    outcome, code, msg = classify(status, data)
    if outcome in (Outcome.RATE_LIMITED, Outcome.BANNED):
        gate.block(status, retry_after_s(headers))
        log.warning("%s answered %d (%s): closed for %.1f s", gate.host, status, msg[:120],
                    gate.blocked_until - time.time())
    if outcome is Outcome.UNKNOWN and not msg:
        msg = f"HTTP {status}"
    return Reply(outcome, status, code, redact(msg), data, headers, written_mono, done_mono)


class HttpClient:
    """HTTP calls to one venue host: the transport a venue's REST client builds on (its
    authentication headers and its answer classifier are the venue's: pipeline/venues/<venue>/)."""

    def __init__(self, base_url: str, headers: dict[str, str], gate: HostGate, *,
                 classify: Classifier, connect_timeout_s: float, read_timeout_s: float,
                 redact: Callable[[str], str], ca_bundle: str = ""):
        self.base = base_url.rstrip("/")
        self.host = urlsplit(self.base).netloc
        self.session = requests.Session()
        # no proxy/.netrc lookups from the environment on every request (they cost ~0.5 ms each
        # and a venue connection must not silently go through a proxy picked up from the env)
        self.session.trust_env = False
        # TLS verified always; against [gateway] ca_bundle when given (pipeline/gateway/tls.py)
        self.session.verify = ca_bundle or True
        self.last_tls_error = ""            # the last TLS failure, said as such (start errors)
        adapter = StampingAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.adapter = adapter
        self._templates: dict[str, requests.PreparedRequest] = {}
        self.session.headers.update(headers)
        self.classify = classify
        self.gate = gate
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.redact = redact
        self.requests = 0
        # called right before and right after every request (the gateway stamps the launcher's
        # heartbeat there, so a slow venue never makes the gateway look stuck)
        self.on_io: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.base} key=<redacted>>"

    def close(self) -> None:
        self.session.close()

    # ---------------------------------------------------------------- the one send path
    def send(self, method: str, path: str, *, body: bytes = b"", query: str = "",
             timeout: tuple[float, float] | None = None) -> Reply:
        on_io = self.on_io
        if on_io is None:
            return self._send(method, path, body, query, timeout)
        on_io()
        try:
            return self._send(method, path, body, query, timeout)
        finally:
            on_io()

    def _send(self, method: str, path: str, body: bytes, query: str,
              timeout: tuple[float, float] | None) -> Reply:
        try:
            self.gate.check_open()
        except HostBlocked as exc:
            return Reply(Outcome.NOT_SENT, msg=str(exc))
        url = self.base + path + (("?" + query) if query else "")
        self.requests += 1
        handed = time.perf_counter_ns()
        _WIRE.t = 0
        try:
            if method == "POST" and body and not query:
                r = self._post_fast(url, body, timeout or self.timeout)
            else:
                r = self.session.request(method, url, data=body or None,
                                         timeout=timeout or self.timeout, allow_redirects=False)
        except requests.exceptions.SSLError as exc:
            # the handshake failed: no request byte was written (a certificate the venue's CA
            # does not vouch for, a wrong host name, ...); said as TLS, with the host
            msg = tls.describe(exc, self.host) or f"TLS error with {self.host}: {exc}"
            self.last_tls_error = msg
            log.error("%s", self.redact(msg))
            # a failed handshake wrote nothing; a TLS error later in the exchange may have
            outcome = Outcome.NOT_SENT if tls.is_cert_failure(exc) else Outcome.UNKNOWN
            return Reply(outcome, msg=self.redact(msg),
                         written_mono=_wire_stamp(handed), done_mono=time.perf_counter_ns())
        except requests.exceptions.ConnectTimeout as exc:
            # the TCP connection never opened: nothing was written
            return Reply(Outcome.NOT_SENT, msg=self.redact(f"connect timeout: {exc}"),
                         written_mono=_wire_stamp(handed), done_mono=time.perf_counter_ns())
        except requests.RequestException as exc:
            return Reply(Outcome.UNKNOWN, msg=self.redact(f"{type(exc).__name__}: {exc}"),
                         written_mono=_wire_stamp(handed), done_mono=time.perf_counter_ns())
        done = time.perf_counter_ns()
        return reply_of(r.status_code, dict(r.headers), r.content, self.gate, self.redact,
                        _wire_stamp(handed), done, self.classify)

    def _post_fast(self, url: str, body: bytes, timeout) -> requests.Response:
        """The order path: a copy of a request prepared once per URL (the session's headers), sent
        through the session's own keep-alive adapter. Skips Session.request's per-call merging of
        settings, cookies and hooks (~150 µs here); same connection pool, same timeouts."""
        t = self._templates.get(url)
        if t is None:
            t = self._templates[url] = self.session.prepare_request(
                requests.Request("POST", url, data=b"-"))
        p = t.copy()
        p.body = body
        p.headers["Content-Length"] = str(len(body))
        return self.adapter.send(p, timeout=timeout, verify=self.session.verify)

    # ---------------------------------------------------------------- helpers
    def public(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Reply:
        return self.send("GET", path, query=urlencode(params or {}), **kw)


class ReplyQueue:
    """The (client id, Reply) answers an order wire's reader thread hands to the loop (the owner
    sets self._out = queue.SimpleQueue() and puts into it); shared by the REST and WS-API wires."""

    def replies(self) -> list[tuple[str, Reply]]:
        """Every (cid, reply) that came back, without waiting."""
        out = []
        while True:
            try:
                out.append(self._out.get_nowait())
            except queue.Empty:
                return out

    def wait_reply(self, timeout: float) -> tuple[str, Reply] | None:
        try:
            return self._out.get(timeout=timeout)
        except queue.Empty:
            return None
