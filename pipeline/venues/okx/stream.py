"""OKX's private WebSocket (/ws/v5/private) in a thread: login, the `orders` channel for order
updates and fills, and (transport = "ws") new orders over the same logged-in connection.

- login: {"op":"login","args":[{"apiKey","passphrase","timestamp" (Unix s),"sign"}]}, sign =
  base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify")); then subscribe
  {"channel":"orders","instType":"SPOT"}. `subscribed` is set once the venue acknowledged it;
  every data item of a push goes onto `events` (the loop hands them to OkxExecution.on_event).
- A text "ping" every `ping_s` idle (OKX closes a connection silent for 30 s); any failure →
  reconnect with doubling back-off; `connects` counts sessions (the loop audits open orders after
  a gap, as for Binance's user stream).
- `put(cid, body, exp_ms, not_after_mono)` (the order wire): {"id","op":"order","expTime",
  "args":[body]} sent without waiting; the answer is matched by id on the reader thread and
  handed to the loop as a Reply (okx_rest.classify). Not connected → NOT_SENT; the connection
  lost with orders in flight → each UNKNOWN (never resent); the signal's TTL passed before the
  send → NOT_SENT.
- `request(op, args, timeout_s)` ("cancel-order", "amend-order", "batch-cancel-orders":
  transport = "ws_api"): one request on the same connection, waiting for its own answer
  (matched by id on the reader thread); not connected → NOT_SENT, no answer in time or the
  connection lost → UNKNOWN.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

import orjson
import websocket

from pipeline.gateway import tls
from pipeline.venues.okx.rest import classify
from pipeline.gateway.rest import Outcome, Reply, ReplyQueue
from pipeline.logs import event_log
from pipeline.venues.okx import orders as ox

log = logging.getLogger(__name__)


class OkxPrivate(threading.Thread, ReplyQueue):
    def __init__(self, url: str, api_key: str, passphrase: str, sign: Callable[..., str],
                 timestamp_ms: Callable[[], int], *, connect_timeout_s: float,
                 read_timeout_s: float, redact: Callable[[str], str], ca_bundle: str = "",
                 orders: bool = False, backoff_max_s: float = 5.0, ping_s: float = 15.0):
        threading.Thread.__init__(self, name="okx-private", daemon=True)
        self.url = url
        self.sslopt = tls.ws_sslopt(ca_bundle)
        self._key, self._phrase, self._sign = api_key, passphrase, sign
        self.timestamp_ms = timestamp_ms
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.redact = redact
        self.orders = orders                # new orders go over this connection (the wire)
        self.backoff_max_s = backoff_max_s
        self.ping_s = ping_s
        self.events: queue.SimpleQueue[dict] = queue.SimpleQueue()
        self._out: queue.SimpleQueue = queue.SimpleQueue()
        self.stop_event = threading.Event()
        self.subscribed = threading.Event()
        self.connects = self.errors = self.received = self.malformed = 0
        self.ws: websocket.WebSocket | None = None
        self.cores: set[int] | None = None
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[str, int]] = {}   # request id → (cid, written mono)
        self._waiting: dict[str, list] = {}     # request id → [Event, Reply | None] (request)
        self._next_req = 0

    def __repr__(self) -> str:
        return f"<OkxPrivate {self.url} key=<redacted>>"

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the thread once (it is both the order wire and the stream: started twice)."""
        if self.ident is None:
            threading.Thread.start(self)

    def stop(self) -> None:
        self.stop_event.set()
        ws = self.ws
        if ws is not None:
            try:
                ws.abort()
            except (websocket.WebSocketException, OSError, AttributeError):
                pass

    close = stop

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
                    event_log("USER_STREAM_LOST", logging.WARNING, venue="OKX",
                              error=self.redact(f"{type(exc).__name__}: {exc}"),
                              reconnect_in_s=round(backoff, 2), errors=self.errors)
            finally:
                self.subscribed.clear()
                self._lost()
                ws, self.ws = self.ws, None
                if ws is not None:
                    try:
                        ws.close(timeout=0.1)
                    except (websocket.WebSocketException, OSError):
                        pass
            if self.stop_event.wait(backoff):
                return
            backoff = min(self.backoff_max_s, backoff * 2)

    def _lost(self) -> None:
        """Every order whose answer did not come: UNKNOWN (it may have reached the venue)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        now = time.perf_counter_ns()
        for cid, written in pending.values():
            self._out.put((cid, Reply(Outcome.UNKNOWN, msg="connection lost before the answer",
                                      written_mono=written, done_mono=now)))
        with self._lock:
            waiting, self._waiting = self._waiting, {}
        for slot in waiting.values():
            slot[1] = Reply(Outcome.UNKNOWN, msg="connection lost before the answer",
                            done_mono=now)
            slot[0].set()

    def login_frame(self) -> bytes:
        ts = str(self.timestamp_ms() // 1000)
        return orjson.dumps({"op": "login", "args": [{
            "apiKey": self._key, "passphrase": self._phrase, "timestamp": ts,
            "sign": self._sign(ts, "GET", ox.LOGIN_PATH, b"")}]})

    def _session(self) -> None:
        ws = websocket.create_connection(self.url, timeout=self.connect_timeout_s,
                                         sslopt=self.sslopt)
        self.ws = ws
        self.connects += 1
        ws.send(self.login_frame().decode())
        ans = orjson.loads(ws.recv())
        if ans.get("event") != "login" or str(ans.get("code")) != "0":
            raise ValueError(f"OKX login failed: {ans.get('code')} {ans.get('msg')}")
        ws.send(orjson.dumps({"op": "subscribe", "args": [{"channel": "orders",
                                                            "instType": "SPOT"}]}).decode())
        ws.settimeout(0.5)
        last = time.monotonic()
        while not self.stop_event.is_set():
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException:
                if time.monotonic() - last > self.ping_s:
                    ws.send("ping")
                    last = time.monotonic()
                continue
            if not raw:
                raise websocket.WebSocketConnectionClosedException("closed by the venue")
            last = time.monotonic()
            if raw == "pong":
                continue
            self._frame(raw)

    def _frame(self, raw) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.malformed += 1
            return
        if not isinstance(msg, dict):
            self.malformed += 1
            return
        if "id" in msg and msg.get("op") in ("order", "cancel-order", "amend-order",
                                             "batch-cancel-orders"):
            with self._lock:
                slot = self._waiting.pop(str(msg["id"]), None)
                got = self._pending.pop(str(msg["id"]), None) if slot is None else None
            if slot is not None:             # a request() waiting for this answer
                outcome, code, text = classify(200, msg)
                slot[1] = Reply(outcome, 200, code, self.redact(text), msg.get("data"), {},
                                0, time.perf_counter_ns())
                slot[0].set()
                return
            if got is not None:
                outcome, code, text = classify(200, msg)
                self._out.put((got[0], Reply(outcome, 200, code, self.redact(text),
                                             msg.get("data"), {}, got[1],
                                             time.perf_counter_ns())))
            return
        ev = msg.get("event")
        if ev == "subscribe":
            self.subscribed.set()
            event_log("USER_STREAM_SUBSCRIBED" if self.connects == 1
                      else "USER_STREAM_RECONNECTED", venue="OKX", connects=self.connects)
            return
        if ev == "error":
            raise ValueError(f"OKX private WS error {msg.get('code')}: {msg.get('msg')}")
        if ev is not None:
            return
        if (msg.get("arg") or {}).get("channel") == "orders":
            for item in msg.get("data") or ():
                if isinstance(item, dict):
                    self.received += 1
                    self.events.put(item)

    # ---------------------------------------------------------------- the order wire
    def put(self, cid: str, body: bytes, exp_ms: int, not_after_mono: int = 0) -> None:
        now = time.perf_counter_ns()
        ws = self.ws
        if not_after_mono and now > not_after_mono:
            self._out.put((cid, Reply(Outcome.NOT_SENT, msg="signal TTL passed before sending",
                                      done_mono=now)))
            return
        if ws is None or not self.subscribed.is_set():
            self._out.put((cid, Reply(Outcome.NOT_SENT, msg="private WebSocket not connected",
                                      done_mono=now)))
            return
        rid = ox.wire_cid(cid)
        frame = b'{"id":"' + rid.encode() + b'","op":"order","expTime":"' + \
            str(exp_ms).encode() + b'","args":[' + body + b"]}"
        with self._lock:
            self._pending[rid] = (cid, now)
        try:
            ws.send(frame.decode())
        except (websocket.WebSocketException, OSError) as exc:
            with self._lock:
                gone = self._pending.pop(rid, None)
            if gone is not None:       # may be partly written: find out, never resend
                self._out.put((cid, Reply(Outcome.UNKNOWN, msg=self.redact(
                    f"send failed: {type(exc).__name__}: {exc}"), written_mono=now,
                    done_mono=time.perf_counter_ns())))

    def request(self, op: str, args: dict | list, timeout_s: float | None = None) -> Reply:
        """One `op` ("cancel-order", "amend-order": one order's args; "batch-cancel-orders": a
        list of them) on the logged-in connection; its answer."""
        now = time.perf_counter_ns()
        ws = self.ws
        if ws is None or not self.subscribed.is_set():
            return Reply(Outcome.NOT_SENT, msg="private WebSocket not connected", done_mono=now)
        with self._lock:
            self._next_req += 1
            rid = f"q{self._next_req}"
            slot = self._waiting[rid] = [threading.Event(), None]
        try:
            ws.send(orjson.dumps({"id": rid, "op": op, "args": args if isinstance(args, list)
                                  else [args]}).decode())
        except (websocket.WebSocketException, OSError) as exc:
            with self._lock:
                self._waiting.pop(rid, None)
            return Reply(Outcome.UNKNOWN, msg=self.redact(f"send failed: {type(exc).__name__}: "
                                                          f"{exc}"), written_mono=now,
                         done_mono=time.perf_counter_ns())
        if not slot[0].wait(self.read_timeout_s if timeout_s is None else timeout_s):
            with self._lock:
                self._waiting.pop(rid, None)
            return Reply(Outcome.UNKNOWN, msg="no answer in time", written_mono=now,
                         done_mono=time.perf_counter_ns())
        slot[1].written_mono = now
        return slot[1]

    def expire(self, timeout_s: float) -> None:
        """Orders whose answer is older than timeout_s: UNKNOWN (the loop calls this)."""
        cut = time.perf_counter_ns() - int(timeout_s * 1e9)
        with self._lock:
            old = [k for k, (_, t) in self._pending.items() if t < cut]
            gone = [self._pending.pop(k) for k in old]
        for cid, t in gone:
            self._out.put((cid, Reply(Outcome.UNKNOWN, msg="no answer in time",
                                      written_mono=t, done_mono=time.perf_counter_ns())))

    def replies(self):
        self.expire(self.read_timeout_s)
        return ReplyQueue.replies(self)

    def snapshot(self) -> dict:
        return {"subscribed": self.subscribed.is_set(), "connects": self.connects,
                "errors": self.errors, "received": self.received, "malformed": self.malformed,
                "in_flight": len(self._pending)}


__all__ = ["OkxPrivate"]
