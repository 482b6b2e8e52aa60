"""New-order requests written by the gateway's loop on keep-alive connections held ready, and
their answers read by a helper thread, so the loop never waits for a venue.

With one synchronous HTTP client the loop sat in the order's round trip (~1.5 ms to the simulator)
and a signal arriving meanwhile waited for it: in the demo, every tick → signed order above
~250 µs was such a signal. Handing the whole request to a thread fixed that but put a thread
wake-up (~110 µs on the busy core) and requests' Python (~370 µs there) between signed and on
the wire. Now:

- the wire thread keeps `connections` HTTP/1.1 keep-alive connections (http.client) open to the
  venue; an idle one is in the pool;
- the loop holds one idle connection ready (`arm`, after each order and every loop turn); on plain
  TCP the compiled order path (ext/orderpath.pyx `send`) checks that the venue has not closed it
  (an idle keep-alive socket that is readable is at EOF) and writes the request on it in the same
  call that signed and journalled the order; the loop then hands the connection over
  (`sent_ready`): "read the answer on this connection" for the wire thread;
- `put` (TLS, or no connection was ready) takes an idle connection, checks it (urllib3's
  wait_for_read), writes the request on it itself and queues the read the same way;
- when none is idle (every connection has an order on it, or they are being reopened) the loop
  queues the body and the wire thread sends it when a connection frees up, unless the signal's
  TTL passed meanwhile (NOT_SENT: nothing went out); while orders wait so, neither `put` nor
  `arm` takes a freed connection ahead of them (first come, first sent);
- the wire thread reads answers in the order the requests went out, queues (cid, Reply) for the
  loop (`replies`), returns the connection to the pool (or closes it if the venue said
  "Connection: close") and reopens connections that were lost.

Outcomes follow pipeline.gateway.rest: a connection that could not be opened → NOT_SENT; any
error once bytes may have been written, or a read timeout → UNKNOWN (never resent: the status
query resolves it). Only new orders (POST to the venue's order path: `path`, with its `headers`
and its answer `classify`, given by the venue adapter, e.g. pipeline/venues/binance/rest.py
BinanceWire) go through here; queries and cancels stay on the loop's own requests session. The rate-limit gate is shared with it (counters from both threads'
response headers; a closed host refuses here before anything is written).
"""
from __future__ import annotations

import collections
import http.client
import logging
import os
import queue
import socket
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from urllib3.util.wait import wait_for_read

from pipeline.gateway import tls
from pipeline.gateway.ratelimit import HostBlocked, HostGate
from pipeline.gateway.rest import Classifier, Outcome, Reply, ReplyQueue, reply_of
from pipeline.hotloop import quiet_signals

log = logging.getLogger(__name__)

WIRE_NICE = -10
MAINTAIN_S = 0.5          # an idle wire thread looks for lost connections this often
_READ, _SEND = 0, 1
_NOTHING = object()       # the wire thread's inbox was empty


def helper_cores() -> set[int] | None:
    """Where the gateway's helper threads (order wire, user stream, status writer) should run:
    every CPU this process may use except the ones its loop is pinned to, or None (no pinning,
    or nothing else to use). Call it from the main thread. A loop spinning alone on its core then
    keeps that core, and a helper holding the GIL is not descheduled behind the spinner."""
    rest = set(range(os.cpu_count() or 1)) - os.sched_getaffinity(0)
    return rest or None


def pin_this_thread(cores: set[int] | None) -> None:
    """The start of a gateway helper thread: the loop's signals blocked here (they go to the
    loop, whose wait they end: pipeline.hotloop.quiet_signals) and the thread moved (Linux
    affinity is per thread) onto `cores`, if given."""
    quiet_signals()
    if cores:
        try:
            os.sched_setaffinity(0, cores)
        except OSError as exc:
            log.warning("helper thread %s: cannot move to CPUs %s: %s",
                        threading.current_thread().name, sorted(cores), exc)


class _Stamped:
    """Stamps CLOCK_MONOTONIC when a request's first bytes are handed to the kernel (the header
    block; http.client sends the body right after it) and never opens a connection by itself."""
    auto_open = 0
    stamp = 0

    def send(self, data: Any) -> None:
        self.stamp = time.perf_counter_ns()
        super().send(data)  # type: ignore[misc]


class _Conn(_Stamped, http.client.HTTPConnection):
    pass


class _TlsConn(_Stamped, http.client.HTTPSConnection):
    pass


class _Dry(http.client.HTTPConnection):
    """Formats a request and writes it nowhere (Wire.warm)."""

    def send(self, data: Any) -> None:
        self.stamp = time.perf_counter_ns()


def request_writer(host: str, port: int, default_port: int, path: str, headers: dict[str, str]):
    """The compiled request writer (ext/wirefmt.pyx) for plain-TCP connections to host:port, with
    the Host header http.client would send."""
    from pipeline import _native
    h = f"[{host}]" if ":" in host else host
    if port != default_port:
        h = f"{h}:{port}"
    return _native.load("wirefmt").RequestWriter(
        b"POST", path.encode("ascii"), h.encode("idna"),
        [(b"Accept-Encoding", b"identity")] + [(k.encode("latin-1"), v.encode("latin-1"))
                                               for k, v in headers.items()])


class Wire(ReplyQueue):
    def __init__(self, base_url: str, headers: dict[str, str], gate: HostGate, *, path: str,
                 classify: Classifier, connect_timeout_s: float,
                 read_timeout_s: float, redact: Callable[[str], str], connections: int = 2,
                 cores: set[int] | None = None, ca_bundle: str = ""):
        if connections < 1:
            raise ValueError(f"order wire: connections must be >= 1, got {connections}")
        u = urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"order wire: not an http(s) URL: {base_url!r}")
        self._tls = tls.context(ca_bundle) if u.scheme == "https" else None   # verified
        self._addr = (u.hostname, u.port or (443 if self._tls else 80))
        self.path = u.path.rstrip("/") + path
        self._headers = dict(headers)
        self._classify = classify
        # plain TCP (the simulator, a local venue): the request is formatted and written by
        # compiled code (ext/wirefmt.pyx), one writer per thread that writes; https keeps
        # http.client over ssl
        self._writers = None
        if self._tls is None:
            self._writers = tuple(request_writer(u.hostname, self._addr[1], 80, self.path,
                                                 self._headers) for _ in range(2))
        self.gate = gate
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.redact = redact
        self.connections = connections
        self.cores = cores
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []     # guarded by _lock
        self._open = 0                    # connections open (idle or carrying an order); _lock
        self._ready: http.client.HTTPConnection | None = None   # held by the loop (loop only)
        self._queued = 0                  # sends queued for the wire thread, not yet taken up
        self._in: queue.SimpleQueue = queue.SimpleQueue()
        self._out: queue.SimpleQueue = queue.SimpleQueue()
        self.direct = 0                   # requests the loop wrote itself (loop only)
        self.compiled = 0                 # of those, written by the compiled order path
        self.by_thread = 0                # requests the wire thread wrote (wire thread only)
        self.expired = 0                  # dropped unsent: queued past their signal's TTL
        self.opened = 0                   # connections opened (the first ones and replacements)
        self.reopened = 0                 # connections found closed by the venue and reopened
        self.connect_errors = 0
        self.last_tls_error = ""
        # called by the wire thread after it queued an answer: the loop's wait ends, so the
        # answer is acted on now (assembly: the intake's wake), not after the loop's idle poll
        self.wake_loop: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="order-wire", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return (f"<Wire {self._addr[0]}:{self._addr[1]} connections={self.connections} "
                f"key=<redacted>>")

    # ------------------------------------------------------------------ the loop's side
    def put(self, cid: str, body: bytes, not_after_mono: int = 0) -> None:
        """Send `body` for order `cid`: written now on an idle connection, or queued for the wire
        thread, which sends it when a connection frees up unless that is after
        `not_after_mono` (the signal's TTL): then the answer is NOT_SENT (nothing went out).
        The answer always comes back through `replies()`."""
        try:
            self.gate.check_open()
        except HostBlocked as exc:
            self._out.put((cid, Reply(Outcome.NOT_SENT, msg=str(exc),
                                      done_mono=time.perf_counter_ns())))
            return
        # orders already waiting for the wire thread go first: taking the connection freed for
        # them would leave the first of them none (NOT_SENT) while this one's answer is read
        # behind it (closed loop: ~20 % of the bench's orders were lost so)
        if self._queued:
            self._release_ready()
            conn = None
        else:
            conn = self._take_ready() or self._take_idle()
        if conn is None:
            with self._lock:
                self._queued += 1
            self._in.put((_SEND, cid, body, not_after_mono))
            return
        failed = self._write(conn, body, 0)
        if failed is not None:
            self._out.put((cid, failed))
            return
        self.direct += 1
        self._in.put((_READ, cid, conn, 0))

    # ------------------------------------------------------------------ the compiled order path
    @property
    def writer(self):
        """The loop's compiled RequestWriter (plain TCP), or None (TLS: http.client writes)."""
        return self._writers[0] if self._writers is not None else None

    def arm(self) -> int:
        """Hold an idle connection ready for the next order (the loop, after an order and every
        turn); its file descriptor, or -1 when none is idle."""
        conn = self._ready
        if self._queued:              # the wire thread has orders waiting for a connection:
            self._release_ready()     # the one held goes to them, and none is taken
            return -1
        if conn is None or conn.sock is None:
            conn = self._ready = self._take_idle()
        return conn.sock.fileno() if conn is not None else -1

    @property
    def ready_fd(self) -> int:
        conn = self._ready
        return conn.sock.fileno() if conn is not None and conn.sock is not None else -1

    def _release_ready(self) -> None:
        """The connection held ready back to the pool (orders queued for the wire thread)."""
        conn, self._ready = self._ready, None
        if conn is not None:
            if conn.sock is None:
                self._lost(conn)
            else:
                with self._lock:
                    self._idle.append(conn)

    def take_ready(self) -> http.client.HTTPConnection | None:
        """The connection the order path just wrote on (or found closed); no longer held."""
        conn, self._ready = self._ready, None
        return conn

    def _take_ready(self) -> http.client.HTTPConnection | None:
        conn, self._ready = self._ready, None
        if conn is not None and (conn.sock is None or wait_for_read(conn.sock, timeout=0)):
            self.dropped(conn)
            return None
        return conn

    def dropped(self, conn: http.client.HTTPConnection) -> None:
        """The venue closed a held connection before an order was written on it (reopened by
        the wire thread)."""
        self._lost(conn)
        self.reopened += 1

    def sent_ready(self, cid: str, conn: http.client.HTTPConnection, written_ns: int,
                   sent: int, length: int) -> Reply | None:
        """The order path wrote `sent` of the request's `length` bytes on `conn`: the rest
        (a full socket buffer) is written now, blocking, and the answer is the wire thread's to
        read. None, or the UNKNOWN reply when the rest could not be written."""
        conn.stamp = written_ns
        if sent < length:
            try:
                conn.sock.sendall(self._writers[0].tail(sent))
            except Exception as exc:  # noqa: BLE001 - partly on the wire: UNKNOWN, not resent
                return self.failed(conn, written_ns, exc)
        conn.raw = True
        self.direct += 1
        self.compiled += 1
        self._in.put((_READ, cid, conn, 0))
        return None

    def failed(self, conn: http.client.HTTPConnection, written_ns: int, exc: BaseException
               ) -> Reply:
        """A write on `conn` failed once bytes may have left: the connection is closed and the
        order's outcome is UNKNOWN (never resent)."""
        self._lost(conn)
        log.warning("order request write failed (%s); outcome unknown", type(exc).__name__)
        return Reply(Outcome.UNKNOWN, msg=self.redact(f"{type(exc).__name__}: {exc}"),
                     written_mono=written_ns or time.perf_counter_ns(),
                     done_mono=time.perf_counter_ns())

    @property
    def sent(self) -> int:
        """Requests written (each counter has one writer thread)."""
        return self.direct + self.by_thread

    def warm(self, body: bytes) -> None:
        """Run the loop's side of an order dry (the gateway's idle loop): the pool look-up with
        its closed-connection check, and the request formatted by http.client onto a connection
        that writes nothing. On this VM an order's request formatting took ~130 µs when it had
        not run for a while, ~30 µs when it had."""
        with self._lock:
            conn = self._ready or (self._idle[-1] if self._idle else None)
            sock = conn.sock if conn is not None else None
            if sock is not None:
                try:
                    wait_for_read(sock, timeout=0)     # a look only: put() acts on it
                except (OSError, ValueError):
                    pass
        if self._writers is not None:
            self._writers[0].format(body)
        else:
            _Dry(*self._addr).request("POST", self.path, body, self._headers)

    def idle(self) -> int:
        """Connections open and free (the pool and the one the loop holds ready)."""
        with self._lock:
            return len(self._idle) + (self._ready is not None)

    def _take_idle(self) -> http.client.HTTPConnection | None:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.sock is not None and not wait_for_read(conn.sock, timeout=0):
                    return conn
                # readable while idle: the venue closed it (EOF) or sent what nobody asked for
                conn.close()
                self._open -= 1
                self.reopened += 1
        return None

    def _write(self, conn: http.client.HTTPConnection, body: bytes, writer: int) -> Reply | None:
        """Write the request on `conn` (compiled on plain TCP: `writer` is the calling thread's
        RequestWriter, 0 the loop's, 1 the wire thread's); None when it went out, else the
        UNKNOWN reply (some bytes may have left) after closing the connection."""
        conn.stamp = 0
        try:
            if self._writers is not None:
                w = self._writers[writer]
                sock = conn.sock
                n = w.send(sock.fileno(), body)
                conn.stamp = w.stamp
                if n < w.length:            # the socket buffer was full: the rest, blocking
                    sock.sendall(w.tail(n))
                conn.raw = True
            else:
                conn.request("POST", self.path, body, self._headers)
        except Exception as exc:  # noqa: BLE001 - may be partly on the wire: UNKNOWN, not resent
            return self.failed(conn, conn.stamp, exc)
        return None

    def _lost(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._open -= 1

    # ------------------------------------------------------------------ the wire thread
    def _connect(self) -> http.client.HTTPConnection | None:
        host, port = self._addr
        conn: http.client.HTTPConnection
        if self._tls is not None:
            conn = _TlsConn(host, port, timeout=self.connect_timeout_s, context=self._tls)
        else:
            conn = _Conn(host, port, timeout=self.connect_timeout_s)
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(self.read_timeout_s)
        except OSError as exc:
            conn.close()
            self.connect_errors += 1
            said = tls.describe(exc, f"{host}:{port}")
            if said:
                self.last_tls_error = said
                log.error("order wire: %s", self.redact(said))
            else:
                log.warning("order wire: cannot connect to %s:%d: %s", host, port,
                            self.redact(str(exc)))
            return None
        return conn

    def _refill(self) -> None:
        """Open connections until `connections` are open (lost ones are replaced)."""
        while True:
            with self._lock:
                if self._open >= self.connections:
                    return
                self._open += 1
            conn = self._connect()
            with self._lock:
                if conn is None:
                    self._open -= 1
                    return
                self.opened += 1
                self._idle.append(conn)

    def _run(self) -> None:
        pin_this_thread(self.cores)
        try:        # per thread on Linux: ahead of the simulator and collector it shares a core with
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WIRE_NICE)
        except OSError:
            pass    # not permitted (no CAP_SYS_NICE): normal priority
        self._refill()
        # answers to read, in the order their requests went out (one per connection at most),
        # and queued orders waiting for a connection: a queued order goes out as soon as one is
        # idle, else the oldest answer is read (which frees its connection)
        reads: collections.deque = collections.deque()
        sends: collections.deque = collections.deque()
        closing = False
        while True:
            if not reads and not sends:
                if closing:
                    return
                try:
                    item = self._in.get(timeout=MAINTAIN_S)
                except queue.Empty:
                    self._sweep()
                    self._refill()
                    continue
            else:
                try:
                    item = self._in.get_nowait()
                except queue.Empty:
                    item = _NOTHING
            if item is None:
                closing = True          # close(): what is already queued is still finished
                continue
            if item is not _NOTHING:    # take in everything queued before acting
                kind, cid, what, not_after = item
                (reads.append((cid, what)) if kind == _READ
                 else sends.append((cid, what, not_after)))
                continue
            conn = None
            if sends and (not reads or self._has_idle()):
                cid, body, not_after = sends.popleft()
                try:
                    reply, conn = self._send(body, not_after)
                except Exception as exc:  # noqa: BLE001 - may be out: UNKNOWN, not resent
                    reply = self._internal(cid, exc)
                finally:                # the loop may use free connections again
                    with self._lock:
                        self._queued -= 1
                if conn is not None:
                    reads.append((cid, conn))
                    continue
            else:
                cid, conn = reads.popleft()
                try:
                    reply = self._read(conn)
                except Exception as exc:  # noqa: BLE001 - the order may exist: UNKNOWN
                    reply = self._internal(cid, exc)
            self._out.put((cid, reply))
            wake = self.wake_loop
            if wake is not None:
                wake()
            if self._in.empty() and not sends:
                self._refill()

    @staticmethod
    def _internal(cid: str, exc: BaseException) -> Reply:
        log.error("order %s: error on the wire; outcome unknown", cid, exc_info=exc)
        return Reply(Outcome.UNKNOWN, msg=f"internal error on the wire: {type(exc).__name__}",
                     done_mono=time.perf_counter_ns())

    def _has_idle(self) -> bool:
        with self._lock:
            return bool(self._idle)

    def _sweep(self) -> None:
        """Idle housekeeping: drop the connections the venue closed (_refill reopens them)."""
        with self._lock:
            n = len(self._idle)
        alive = [c for c in (self._take_idle() for _ in range(n)) if c is not None]
        with self._lock:
            self._idle.extend(alive)

    def _send(self, body: bytes, not_after: int) -> tuple[Reply | None, Any]:
        """A queued order: (None, the connection it went out on: its answer is to be read), or
        (the reply, None) when it was not sent or the write failed."""
        if not_after and time.perf_counter_ns() > not_after:
            self.expired += 1
            return Reply(Outcome.NOT_SENT, msg="signal TTL passed while queued for the wire; "
                                               "not sent", done_mono=time.perf_counter_ns()), None
        try:
            self.gate.check_open()
        except HostBlocked as exc:
            return Reply(Outcome.NOT_SENT, msg=str(exc), done_mono=time.perf_counter_ns()), None
        conn = self._take_idle()
        if conn is None:
            self._refill()
            conn = self._take_idle()
        if conn is None:
            with self._lock:
                busy = self._open >= self.connections
            why = (f"no connection free (all {self.connections} carry an order)" if busy
                   else f"cannot connect to {self._addr[0]}:{self._addr[1]}")
            return Reply(Outcome.NOT_SENT, msg=f"{why}; not sent",
                         done_mono=time.perf_counter_ns()), None
        failed = self._write(conn, body, 1)
        if failed is not None:
            return failed, None
        self.by_thread += 1
        return None, conn

    def _read(self, conn: http.client.HTTPConnection) -> Reply:
        written = conn.stamp
        try:
            if getattr(conn, "raw", False):   # written by the RequestWriter: parse it ourselves
                conn.raw = False
                resp = http.client.HTTPResponse(conn.sock, method="POST")
                resp.begin()
            else:
                resp = conn.getresponse()
            content = resp.read()
        except Exception as exc:  # noqa: BLE001 - timeout, reset, garbage: the order may exist
            done = time.perf_counter_ns()
            self._lost(conn)
            kind = "read timeout" if isinstance(exc, (socket.timeout, TimeoutError)) \
                else type(exc).__name__
            return Reply(Outcome.UNKNOWN, msg=self.redact(f"{kind}: {exc}"),
                         written_mono=written, done_mono=done)
        done = time.perf_counter_ns()
        headers = dict(resp.getheaders())
        if resp.will_close:
            self._lost(conn)
        else:
            with self._lock:
                self._idle.append(conn)
        return reply_of(resp.status, headers, content, self.gate, self.redact, written, done,
                        self._classify)

    def close(self, timeout: float = 5.0) -> None:
        self._in.put(None)
        self._thread.join(timeout)
        with self._lock:
            idle, self._idle = self._idle, []
        if self._ready is not None:
            idle.append(self._ready)
            self._ready = None
        for conn in idle:
            conn.close()
