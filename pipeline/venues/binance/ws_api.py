"""The Binance WebSocket API (`/ws-api/v3`): order.place / order.cancel as an alternative order
transport, and the user-data stream (userDataStream.subscribe.signature) for executionReports.

Requests are `{"id", "method", "params"}`; signed params carry apiKey, timestamp and a signature
over all params but `signature`, sorted by name, joined `k=v` with `&`. Answers are
`{"id", "status", "result" | "error", "rateLimits"}` and are classified like REST answers
(pipeline/venues/binance/rest.py classify). A request that times out leaves the connection in an
unknown state: the
outcome is UNKNOWN and the connection is dropped (a late answer is never matched to a new
request).

`WsOrderWire` (async_orders) pipelines order.place: the loop sends without waiting for the
previous answer, a reader thread matches answers by request id; its `request` (used for
order.cancelReplace) sends on the same connection and waits for its own answer. `WsApiClient` is the synchronous
client (async_orders = false).

`UserStream` runs in its own thread (the only one besides the main loop): it connects, subscribes,
and puts every event (`executionReport`, `outboundAccountPosition`, ...) on a queue the main loop
drains; it reconnects with back-off and counts what happened. It never touches order state.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from typing import Any, Callable

import orjson
import websocket

from pipeline.gateway import tls
from pipeline.gateway.ratelimit import HostBlocked, HostGate
from pipeline.venues.binance.ratelimits import retry_after_of_ws_error, used_from_ws_limits
from pipeline.gateway.rest import Outcome, Reply, ReplyQueue
from pipeline.venues.binance.rest import classify
from pipeline.logs import event_log

log = logging.getLogger(__name__)


def ws_payload(params: dict[str, Any]) -> bytes:
    def s(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)
    return "&".join(f"{k}={s(params[k])}" for k in sorted(params) if k != "signature").encode()


def ws_reply(msg: dict, gate: HostGate, redact: Callable[[str], str], written: int,
             done: int) -> Reply:
    """One WS-API answer as a Reply: the venue's rate-limit counters go to the gate (and a 429 /
    418 closes it), the status and error map to an Outcome, the message is redacted."""
    try:
        status = int(msg.get("status") or 0)
    except (TypeError, ValueError, OverflowError):
        # not an HTTP-like status (a venue bug): whether the request took effect is not known
        return Reply(Outcome.UNKNOWN, 0, 0, redact(f"malformed WS-API answer: status "
                                                   f"{str(msg.get('status'))[:40]!r}"),
                     None, {}, written, done)
    limits = msg.get("rateLimits")
    gate.observe(used_from_ws_limits(limits))
    err = msg.get("error")
    err = err if isinstance(err, dict) else None
    outcome, code, text = classify(status, err)
    if outcome in (Outcome.RATE_LIMITED, Outcome.BANNED):
        gate.block(status, retry_after_of_ws_error(err))
    # a refused order.cancelReplace says what became of each half in error.data, as REST's body
    data = err if err is not None and isinstance(err.get("data"), dict) else msg.get("result")
    return Reply(outcome, status, code, redact(text), data, {}, written, done)


class WsSigner:
    """Signs WS-API params (HMAC-SHA256 hex via the gateway's pre-keyed signer)."""

    def __init__(self, api_key: str, sign: Callable[[bytes], str],
                 timestamp_ms: Callable[[], int], recv_window_ms: int):
        self._key = api_key
        self._sign = sign
        self.timestamp_ms = timestamp_ms
        self.recv_window_ms = recv_window_ms

    def __repr__(self) -> str:
        return "<WsSigner key=<redacted>>"

    def signed(self, params: dict[str, Any], fresh_timestamp: bool = True) -> dict[str, Any]:
        p = dict(params)
        p["apiKey"] = self._key
        if fresh_timestamp or "timestamp" not in p:
            p["timestamp"] = self.timestamp_ms()
        p.setdefault("recvWindow", self.recv_window_ms)
        p["signature"] = self._sign(ws_payload(p))
        return p

    def in_session(self, params: dict[str, Any], fresh_timestamp: bool = True) -> dict[str, Any]:
        """On a logged-on connection (session.logon): no apiKey, no signature; the timestamp and
        recvWindow still bound the request's validity."""
        p = dict(params)
        p.pop("apiKey", None)
        p.pop("signature", None)
        if fresh_timestamp or "timestamp" not in p:
            p["timestamp"] = self.timestamp_ms()
        p.setdefault("recvWindow", self.recv_window_ms)
        return p


def logon(ws: websocket.WebSocket, signer: WsSigner, timeout_s: float) -> dict:
    """session.logon on a fresh connection (Ed25519 keys): the answer's result, or
    WebSocketException with the venue's error."""
    ws.send(orjson.dumps({"id": "logon", "method": "session.logon",
                          "params": signer.signed({})}).decode())
    deadline = time.monotonic() + timeout_s
    while True:
        ws.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            msg = orjson.loads(ws.recv())
        except orjson.JSONDecodeError:
            continue
        if isinstance(msg, dict) and msg.get("id") == "logon":
            if msg.get("status") != 200:
                raise websocket.WebSocketException(f"session.logon refused: {msg.get('error')}")
            return msg.get("result") or {}


class WsApiClient:
    """Synchronous request/response over one WS-API connection (main thread only)."""

    def __init__(self, url: str, signer: WsSigner, gate: HostGate, *, connect_timeout_s: float,
                 read_timeout_s: float, redact: Callable[[str], str], ca_bundle: str = "",
                 session: bool = False):
        self.url = url
        self.sslopt = tls.ws_sslopt(ca_bundle)     # verified; ca_bundle trusted when given
        self.signer = signer
        self.session = session          # log on once per connection (Ed25519 keys)
        self.gate = gate
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.redact = redact
        self.ws: websocket.WebSocket | None = None
        self._ids = itertools.count(1)
        self.requests = 0
        self.reconnects = 0

    def _conn(self) -> websocket.WebSocket:
        if self.ws is None:
            ws = websocket.create_connection(self.url, timeout=self.connect_timeout_s,
                                             enable_multithread=False, sslopt=self.sslopt)
            if self.session:
                try:
                    logon(ws, self.signer, self.read_timeout_s)
                except (websocket.WebSocketException, OSError):
                    ws.close(timeout=0.2)
                    raise
            ws.settimeout(self.read_timeout_s)
            self.ws = ws
            self.reconnects += 1
        return self.ws

    def close(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close(timeout=0.2)
            except (websocket.WebSocketException, OSError):
                pass
            self.ws = None

    def request(self, method: str, params: dict[str, Any], *, signed: bool = True,
                fresh_timestamp: bool = True) -> Reply:
        try:
            self.gate.check_open()
        except HostBlocked as exc:
            return Reply(Outcome.NOT_SENT, msg=str(exc))
        try:
            ws = self._conn()
        except (websocket.WebSocketException, OSError) as exc:
            return Reply(Outcome.NOT_SENT, msg=self.redact(f"ws-api connect: {exc}"))
        rid = next(self._ids)
        if not signed:
            p = params
        elif self.session:
            p = self.signer.in_session(params, fresh_timestamp)
        else:
            p = self.signer.signed(params, fresh_timestamp)
        frame = orjson.dumps({"id": rid, "method": method, "params": p})
        self.requests += 1
        text = frame.decode()
        written = time.perf_counter_ns()              # the frame goes to the kernel now
        try:
            ws.send(text)
            deadline = time.monotonic() + self.read_timeout_s
            while True:
                ws.settimeout(max(0.001, deadline - time.monotonic()))
                raw = ws.recv()
                try:
                    msg = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(msg, dict) and msg.get("id") == rid:
                    break
        except (websocket.WebSocketException, OSError) as exc:
            self.close()
            return Reply(Outcome.UNKNOWN, msg=self.redact(f"ws-api {method}: "
                                                          f"{type(exc).__name__}: {exc}"),
                         written_mono=written, done_mono=time.perf_counter_ns())
        return ws_reply(msg, self.gate, self.redact, written, time.perf_counter_ns())


class UserStream(threading.Thread):
    """The user-data stream in a thread: events onto `events` (a queue of dicts)."""

    def __init__(self, url: str, signer: WsSigner, *, connect_timeout_s: float,
                 redact: Callable[[str], str], backoff_max_s: float = 5.0, ca_bundle: str = "",
                 session: bool = False):
        super().__init__(name="user-stream", daemon=True)
        self.url = url
        self.sslopt = tls.ws_sslopt(ca_bundle)
        self.signer = signer
        self.session = session          # session.logon, then userDataStream.subscribe
        self.connect_timeout_s = connect_timeout_s
        self.redact = redact
        self.backoff_max_s = backoff_max_s
        self.events: queue.SimpleQueue[dict] = queue.SimpleQueue()
        self.stop_event = threading.Event()
        self.subscribed = threading.Event()
        self.connects = 0
        self.errors = 0
        self.received = 0
        self.malformed = 0
        self.ws: websocket.WebSocket | None = None
        self.cores: set[int] | None = None      # CPUs for this thread (the gateway's helpers)

    def stop(self) -> None:
        self.stop_event.set()
        ws = self.ws
        if ws is not None:
            try:
                ws.abort()
            except (websocket.WebSocketException, OSError, AttributeError):
                pass

    def run(self) -> None:
        from pipeline.gateway.wire import pin_this_thread
        pin_this_thread(self.cores)
        backoff = 0.1
        while not self.stop_event.is_set():
            try:
                self._session()
                backoff = 0.1
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                self.errors += 1
                if not self.stop_event.is_set():
                    event_log("USER_STREAM_LOST", logging.WARNING,
                              error=self.redact(f"{type(exc).__name__}: {exc}"),
                              reconnect_in_s=round(backoff, 2), errors=self.errors)
            finally:
                self.subscribed.clear()
                if self.ws is not None:
                    try:
                        self.ws.close(timeout=0.1)
                    except (websocket.WebSocketException, OSError):
                        pass
                    self.ws = None
            if self.stop_event.wait(backoff):
                return
            backoff = min(self.backoff_max_s, backoff * 2)

    def _session(self) -> None:
        ws = websocket.create_connection(self.url, timeout=self.connect_timeout_s,
                                         sslopt=self.sslopt)
        self.ws = ws
        self.connects += 1
        if self.session:
            logon(ws, self.signer, self.connect_timeout_s)
            ws.send(orjson.dumps({"id": "uds", "method": "userDataStream.subscribe",
                                  "params": {}}).decode())
        else:
            ws.send(orjson.dumps({"id": "uds", "method": "userDataStream.subscribe.signature",
                                  "params": self.signer.signed({})}).decode())
        ws.settimeout(0.5)
        while not self.stop_event.is_set():
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if not raw:
                raise websocket.WebSocketConnectionClosedException("closed by the venue")
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.malformed += 1
                continue
            if not isinstance(msg, dict):
                self.malformed += 1
                continue
            if msg.get("id") == "uds":
                if msg.get("status") == 200:
                    self.subscribed.set()
                    event_log("USER_STREAM_SUBSCRIBED" if self.connects == 1
                              else "USER_STREAM_RECONNECTED", connects=self.connects)
                else:
                    raise ValueError(f"userDataStream.subscribe failed: {msg.get('error')}")
                continue
            ev = msg.get("event")
            if isinstance(ev, dict):
                self.received += 1
                self.events.put(ev)

    def snapshot(self) -> dict:
        return {"subscribed": self.subscribed.is_set(), "connects": self.connects,
                "errors": self.errors, "received": self.received, "malformed": self.malformed}


class WsOrderWire(ReplyQueue):
    """order.place over one WS-API connection without waiting for answers (`async_orders`).

    The loop (`put`) signs the params, sends the frame and goes on: a signal that arrives while
    earlier orders are in flight is not held up by their round trips. A reader thread receives
    the answers and matches them to requests by id (ids are never reused, not even across
    reconnects, so a late answer can never be taken for a new request's), and queues (cid, Reply)
    for the loop (`replies`, `wait_reply`): the interface of pipeline.gateway.wire.Wire.

    Outcomes as WsApiClient's: a closed host or a connection that cannot be opened → NOT_SENT; a
    send that fails → UNKNOWN; an answer not there within `read_timeout_s` → UNKNOWN (a later
    answer is dropped, counted `late`); a lost connection → every request in flight on it UNKNOWN
    (each may have been executed: the status query resolves it, nothing is resent)."""

    RECV_POLL_S = 0.05

    def __init__(self, url: str, signer: WsSigner, gate: HostGate, *, connect_timeout_s: float,
                 read_timeout_s: float, redact: Callable[[str], str], ca_bundle: str = ""):
        self.url = url
        self.sslopt = tls.ws_sslopt(ca_bundle)     # verified; ca_bundle trusted when given
        self.signer = signer
        self.gate = gate
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_ns = int(read_timeout_s * 1e9)
        self.redact = redact
        self.cores: set[int] | None = None
        self.ws: websocket.WebSocket | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[str, int, int]] = {}   # id -> (cid, written, deadline)
        self._waiting: dict[int, list] = {}   # id -> [Event, answer, why]: request()'s
        self._out: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self.sent = 0               # frames sent (loop only)
        self.connects = 0           # connections opened (loop only)
        self.late = 0               # answers whose request had timed out (reader only)
        self.max_in_flight = 0      # most requests waiting for an answer at once (loop only)
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<WsOrderWire {self.url} key=<redacted>>"

    # ------------------------------------------------------------------ the loop's side
    def start(self) -> "WsOrderWire":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ws-order-wire", daemon=True)
            self._thread.start()
        return self

    def _conn(self) -> websocket.WebSocket:
        ws = self.ws
        if ws is None:
            ws = websocket.create_connection(self.url, timeout=self.connect_timeout_s,
                                             enable_multithread=True, sslopt=self.sslopt)
            ws.settimeout(self.RECV_POLL_S)
            self.connects += 1
            self.ws = ws
        return ws

    def put(self, cid: str, params: dict[str, Any], not_after_mono: int = 0) -> None:
        """Send order.place for `cid` now; its answer comes back through `replies()`."""
        self.start()
        try:
            self.gate.check_open()
        except HostBlocked as exc:
            self._out.put((cid, Reply(Outcome.NOT_SENT, msg=str(exc),
                                      done_mono=time.perf_counter_ns())))
            return
        try:
            ws = self._conn()
        except (websocket.WebSocketException, OSError) as exc:
            self._out.put((cid, Reply(Outcome.NOT_SENT, msg=self.redact(f"ws-api connect: {exc}"),
                                      done_mono=time.perf_counter_ns())))
            return
        rid = next(self._ids)
        frame = orjson.dumps({"id": rid, "method": "order.place",
                              "params": self.signer.signed(params, False)}).decode()
        written = time.perf_counter_ns()              # the frame goes to the kernel now
        with self._lock:
            self._pending[rid] = (cid, written, written + self.read_timeout_ns)
            n = len(self._pending)
        self.max_in_flight = max(self.max_in_flight, n)
        try:
            ws.send(frame)
        except (websocket.WebSocketException, OSError) as exc:
            with self._lock:
                mine = self._pending.pop(rid, None)
            if mine is not None:
                self._out.put((cid, Reply(Outcome.UNKNOWN, msg=self.redact(
                    f"ws-api order.place: {type(exc).__name__}: {exc}"), written_mono=written,
                    done_mono=time.perf_counter_ns())))
            self._drop(ws, f"send failed: {type(exc).__name__}")
            return
        self.sent += 1

    def request(self, method: str, params: dict[str, Any], *, signed: bool = True,
                fresh_timestamp: bool = True) -> Reply:
        """One request on the pipelined connection, waiting for its answer (the loop blocks as
        with WsApiClient.request): order.cancelReplace rides the same WS-API connection as the
        pipelined order.place. Outcomes as put's: closed host / no connection → NOT_SENT; a
        failed send, a lost connection or no answer within the read timeout → UNKNOWN."""
        self.start()
        try:
            self.gate.check_open()
        except HostBlocked as exc:
            return Reply(Outcome.NOT_SENT, msg=str(exc), done_mono=time.perf_counter_ns())
        try:
            ws = self._conn()
        except (websocket.WebSocketException, OSError) as exc:
            return Reply(Outcome.NOT_SENT, msg=self.redact(f"ws-api connect: {exc}"),
                         done_mono=time.perf_counter_ns())
        rid = next(self._ids)
        p = self.signer.signed(params, fresh_timestamp) if signed else params
        frame = orjson.dumps({"id": rid, "method": method, "params": p}).decode()
        slot = [threading.Event(), None, ""]
        written = time.perf_counter_ns()
        with self._lock:
            self._waiting[rid] = slot
        try:
            ws.send(frame)
        except (websocket.WebSocketException, OSError) as exc:
            with self._lock:
                self._waiting.pop(rid, None)
            self._drop(ws, f"send failed: {type(exc).__name__}")
            return Reply(Outcome.UNKNOWN, msg=self.redact(
                f"ws-api {method}: {type(exc).__name__}: {exc}"), written_mono=written,
                done_mono=time.perf_counter_ns())
        self.sent += 1
        slot[0].wait(self.read_timeout_ns / 1e9)
        with self._lock:
            self._waiting.pop(rid, None)
        done = time.perf_counter_ns()
        if slot[1] is None:
            why = slot[2] or "no answer within the read timeout"
            return Reply(Outcome.UNKNOWN, msg=self.redact(f"ws-api {method}: {why}"),
                         written_mono=written, done_mono=done)
        return self._reply(slot[1], written, done)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close(timeout=0.2)
            except (websocket.WebSocketException, OSError):
                pass

    # ------------------------------------------------------------------ the reader thread
    def _drop(self, ws: websocket.WebSocket, why: str) -> None:
        """Close `ws` (if it is still the current connection); everything in flight on it is
        UNKNOWN."""
        with self._lock:
            if self.ws is not ws:
                return
            self.ws = None
            lost, self._pending = self._pending, {}
            waiting, self._waiting = self._waiting, {}
        for slot in waiting.values():          # request() callers: UNKNOWN, now
            slot[2] = f"connection lost ({why})"
            slot[0].set()
        try:
            ws.abort()
            ws.close(timeout=0.1)
        except (websocket.WebSocketException, OSError, AttributeError):
            pass
        done = time.perf_counter_ns()
        for cid, written, _ in lost.values():
            self._out.put((cid, Reply(Outcome.UNKNOWN, msg=self.redact(f"ws-api connection lost "
                                                                       f"({why})"),
                                      written_mono=written, done_mono=done)))
        if lost:
            log.warning("ws-api order wire: connection lost (%s); %d order(s) in flight are "
                        "UNKNOWN", self.redact(why), len(lost))

    def _expire(self) -> None:
        now = time.perf_counter_ns()
        with self._lock:
            gone = [(rid, v) for rid, v in self._pending.items() if v[2] <= now]
            for rid, _ in gone:
                del self._pending[rid]
        for _, (cid, written, _) in gone:
            self._out.put((cid, Reply(Outcome.UNKNOWN, msg="ws-api order.place: no answer "
                                                           "within the read timeout",
                                      written_mono=written, done_mono=now)))

    def _run(self) -> None:
        from pipeline.gateway.wire import pin_this_thread
        pin_this_thread(self.cores)
        while not self._stop.is_set():
            ws = self.ws
            if ws is None:
                self._stop.wait(self.RECV_POLL_S)
                continue
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException:
                self._expire()
                continue
            except (websocket.WebSocketException, OSError, AttributeError) as exc:
                if not self._stop.is_set():
                    self._drop(ws, f"{type(exc).__name__}: {exc}")
                continue
            done = time.perf_counter_ns()
            if not raw:
                self._drop(ws, "closed by the venue")
                continue
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(msg, dict):
                continue
            with self._lock:
                mine = self._pending.pop(msg.get("id"), None)
                slot = self._waiting.pop(msg.get("id"), None) if mine is None else None
            if slot is not None:                # a request() waiting for it
                slot[1] = msg
                slot[0].set()
                continue
            if mine is None:
                self.late += 1
                continue
            cid, written, _ = mine
            self._out.put((cid, self._reply(msg, written, done)))
            self._expire()

    def _reply(self, msg: dict, written: int, done: int) -> Reply:
        return ws_reply(msg, self.gate, self.redact, written, done)
