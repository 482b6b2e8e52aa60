"""The order wire (pipeline/gateway/wire.py) against a small HTTP/1.1 keep-alive server on
loopback: what happens to an order when the venue closes a connection, refuses it, answers late,
says "Connection: close" or closes the host with a 429. The gateway's end-to-end order path over
the wire is in tests/integration/test_gateway_orders.py."""
from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from urllib3.util.wait import wait_for_read

from pipeline.gateway.ratelimit import HostGate
from pipeline.gateway.rest import Outcome
from pipeline.venues.binance.rest import BinanceWire as Wire

pytestmark = pytest.mark.timeout(30)
KEY = "wire-test-api-key-0123456789"


class Venue(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.bodies: list[bytes] = []
        self.keys: list[str] = []
        self.conns: list[socket.socket] = []      # every connection accepted
        self.answer: list[tuple[int, dict, dict]] = []    # queued (status, body, headers)
        self.hold = threading.Event()             # set = answer at once
        self.hold.set()
        self.got = threading.Semaphore(0)         # released per request received
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close_idle(self) -> None:
        """Close every connection from the server's side, as a venue does with idle keep-alives."""
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self.hold.set()
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Venue

    def setup(self) -> None:
        super().setup()
        self.server.conns.append(self.connection)

    def log_message(self, *a) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(body)
        self.server.keys.append(self.headers.get("X-MBX-APIKEY", ""))
        self.server.got.release()
        self.server.hold.wait(10)
        status, doc, headers = (self.server.answer.pop(0) if self.server.answer
                                else (200, {"orderId": len(self.server.bodies)}, {}))
        out = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(out)
        if headers.get("Connection") == "close":
            self.close_connection = True


@pytest.fixture
def venue():
    v = Venue()
    yield v
    v.stop()


def make_wire(url: str, connections: int = 1, read_timeout_s: float = 5.0) -> tuple[Wire, HostGate]:
    gate = HostGate(url.split("//", 1)[1], weight_limit_1m=6000, order_limit_10s=100)
    w = Wire(url, KEY, gate, connect_timeout_s=1.0, read_timeout_s=read_timeout_s,
             redact=lambda s: s.replace(KEY, "<key>"), connections=connections)
    return w, gate


@contextmanager
def opened(url: str, connections: int = 1, read_timeout_s: float = 5.0):
    """A wire with its `connections` open and idle; closed at the end."""
    w, gate = make_wire(url, connections, read_timeout_s)
    try:
        ready(w, connections)
        yield w, gate
    finally:
        w.close()


def ready(w: Wire, n: int) -> None:
    """Wait until the wire thread has opened n idle connections."""
    for _ in range(400):
        if w.idle() == n:
            return
        threading.Event().wait(0.005)
    raise AssertionError(f"wire never had {n} idle connections (has {w.idle()})")


def arrived(w: Wire) -> None:
    """Wait until the venue's FIN is readable on the wire's idle connection (or the wire thread
    already swept it away): what put() then sees does not depend on the kernel's timing."""
    with w._lock:
        socks = [c.sock for c in w._idle if c.sock is not None]
    for sock in socks:
        try:
            wait_for_read(sock, timeout=2.0)
        except (OSError, ValueError):
            pass                                # closed by the sweep meanwhile


def one_reply(w: Wire):
    got = w.wait_reply(10)
    assert got is not None, "no reply from the wire"
    return got


def test_the_loop_writes_on_an_idle_connection_and_the_thread_reads_the_answer(venue):
    with opened(venue.url, connections=2) as (w, _):
        w.put("a", b"symbol=BTCUSDT&side=BUY")
        cid, r = one_reply(w)
        assert (cid, r.outcome, r.data) == ("a", Outcome.OK, {"orderId": 1})
        assert 0 < r.written_mono < r.done_mono
        assert venue.bodies == [b"symbol=BTCUSDT&side=BUY"] and venue.keys == [KEY]
        assert (w.sent, w.direct) == (1, 1)
        ready(w, 2)                            # the connection went back to the pool
        assert w.opened == 2                   # no new connection for the order
        assert KEY not in repr(w)


def test_an_answer_held_by_the_venue_does_not_stop_the_next_order_going_out(venue):
    with opened(venue.url, connections=2) as (w, _):
        venue.hold.clear()
        w.put("a", b"n=1")
        assert venue.got.acquire(timeout=5)
        w.put("b", b"n=2")                     # the other connection: written at once
        assert venue.got.acquire(timeout=5)
        assert w.direct == 2 and w.replies() == []
        venue.hold.set()
        got = dict([one_reply(w), one_reply(w)])
        assert set(got) == {"a", "b"} and all(r.outcome is Outcome.OK for r in got.values())


def test_with_every_connection_busy_the_order_waits_for_one_then_goes(venue):
    with opened(venue.url, connections=1) as (w, _):
        venue.hold.clear()
        w.put("a", b"n=1")
        assert venue.got.acquire(timeout=5)
        w.put("b", b"n=2")                     # queued for the wire thread
        assert not venue.got.acquire(timeout=0.2)      # not written while "a" is unanswered
        venue.hold.set()
        assert [c for c, _ in (one_reply(w), one_reply(w))] == ["a", "b"]
        assert venue.bodies == [b"n=1", b"n=2"] and (w.sent, w.direct) == (2, 1)


def test_a_connection_the_venue_closed_while_idle_is_not_used_and_is_reopened(venue):
    with opened(venue.url, connections=1) as (w, _):
        w.put("a", b"n=1")
        assert one_reply(w)[1].outcome is Outcome.OK
        ready(w, 1)
        venue.close_idle()                     # FIN on the idle keep-alive connection
        arrived(w)
        w.put("b", b"n=2")                     # must not be written into the dead socket
        cid, r = one_reply(w)
        assert (cid, r.outcome) == ("b", Outcome.OK), r
        assert w.reopened == 1 and venue.bodies == [b"n=1", b"n=2"]
        assert w.opened == 2


def test_an_idle_wire_replaces_the_connections_the_venue_closed_before_an_order_needs_them(venue):
    with opened(venue.url, connections=2) as (w, _):
        for _ in range(400):                   # the server has both connections in hand
            if len(venue.conns) == 2:
                break
            threading.Event().wait(0.005)
        venue.close_idle()
        for _ in range(400):                   # the wire thread's sweep (every MAINTAIN_S)
            if w.reopened == 2 and w.idle() == 2 and w.opened == 4:
                break
            threading.Event().wait(0.01)
        assert (w.reopened, w.idle(), w.opened) == (2, 2, 4)
        w.put("a", b"n=1")
        assert one_reply(w)[1].outcome is Outcome.OK and w.direct == 1


def test_connection_close_in_the_answer_is_honoured(venue):
    with opened(venue.url, connections=1) as (w, _):
        venue.answer.append((200, {"orderId": 7}, {"Connection": "close"}))
        w.put("a", b"n=1")
        assert one_reply(w)[1].outcome is Outcome.OK
        w.put("b", b"n=2")
        assert one_reply(w)[1].outcome is Outcome.OK
        assert w.opened == 2 and w.reopened == 0


def test_an_answer_that_never_comes_is_unknown_and_the_connection_replaced(venue):
    with opened(venue.url, connections=1, read_timeout_s=0.3) as (w, _):
        venue.hold.clear()
        w.put("a", b"n=1")
        cid, r = one_reply(w)
        assert (cid, r.outcome) == ("a", Outcome.UNKNOWN) and "timeout" in r.msg, r
        venue.hold.set()
        ready(w, 1)                            # a fresh connection, not the timed-out one
        w.put("b", b"n=2")
        assert one_reply(w)[1].outcome is Outcome.OK
        assert w.opened == 2


def test_a_429_closes_the_host_and_the_next_order_is_not_written(venue):
    with opened(venue.url, connections=1) as (w, gate):
        venue.answer.append((429, {"code": -1015, "msg": "Too many new orders"},
                             {"Retry-After": "30"}))
        w.put("a", b"n=1")
        cid, r = one_reply(w)
        assert r.outcome is Outcome.RATE_LIMITED and r.code == -1015
        w.put("b", b"n=2")
        cid, r = one_reply(w)
        assert (cid, r.outcome) == ("b", Outcome.NOT_SENT) and gate.refused == 1
        assert venue.bodies == [b"n=1"]


def test_a_venue_that_cannot_be_reached_gets_nothing_sent():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                   # nothing listens there
    w, _ = make_wire(f"http://127.0.0.1:{port}", connections=1)
    try:
        w.put("a", b"n=1")
        cid, r = one_reply(w)
        assert (cid, r.outcome) == ("a", Outcome.NOT_SENT) and "cannot connect" in r.msg
        assert w.connect_errors >= 1 and w.sent == 0
    finally:
        w.close()


def test_a_dry_run_formats_an_order_and_writes_nothing(venue):
    with opened(venue.url, connections=1) as (w, _):
        for _ in range(50):
            w.warm(b"symbol=BTCUSDT&side=BUY")
        assert not venue.got.acquire(timeout=0.2) and venue.bodies == []
        assert (w.sent, w.idle()) == (0, 1)
        w.put("a", b"n=1")                     # the pooled connection is still good
        assert one_reply(w)[1].outcome is Outcome.OK and w.direct == 1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="connections"):
        make_wire("http://127.0.0.1:1", connections=0)
    with pytest.raises(ValueError, match="http"):
        make_wire("ftp://127.0.0.1:1")


def test_an_order_queued_for_the_wire_thread_is_not_starved_by_the_loop_arming(venue):
    """The loop holds a connection ready for the compiled order path (arm) every turn; while an
    order waits in the wire thread's queue for a connection, arm leaves the freed one to it (else
    the queued order would find none and be NOT_SENT)."""
    with opened(venue.url, connections=1) as (w, _):
        go = threading.Event()
        send = w._send

        def held_send(body, not_after):           # the wire thread takes b up only on `go`
            go.wait(10)
            return send(body, not_after)
        w._send = held_send
        venue.hold.clear()                     # the venue holds its first answer
        w.put("a", b"n=1")                     # written on the only connection
        assert venue.got.acquire(timeout=5)
        w.put("b", b"n=2")                     # none idle: queued for the wire thread
        venue.hold.set()
        cid, r = one_reply(w)                  # a answered: its connection is idle again
        assert (cid, r.outcome) == ("a", Outcome.OK)
        ready(w, 1)
        assert w.arm() == -1                   # the loop's turn: b waits, nothing is taken
        go.set()
        cid, r = one_reply(w)
        assert (cid, r.outcome) == ("b", Outcome.OK), r.msg
        assert venue.bodies == [b"n=1", b"n=2"] and w.by_thread == 1
        assert w.arm() >= 0                    # and then it is held ready again


def test_an_order_put_while_others_wait_for_the_wire_thread_queues_behind_them(venue):
    """Closed loop: with orders queued for the wire thread, a new order the loop puts must not
    take the connection freed for them (it did: the first queued order then found none and was
    NOT_SENT as "cannot connect" while the new one's answer was read behind it: ~20 % of
    bench_gateway --e2e's orders REJECTED)."""
    with opened(venue.url, connections=1) as (w, _):
        go = threading.Event()
        send = w._send

        def held_send(body, not_after):           # the wire thread takes b up only on `go`
            go.wait(10)
            return send(body, not_after)
        w._send = held_send
        venue.hold.clear()
        w.put("a", b"n=1")                     # written on the only connection
        assert venue.got.acquire(timeout=5)
        w.put("b", b"n=2")                     # none idle: queued for the wire thread
        venue.hold.set()
        cid, r = one_reply(w)                  # a answered: its connection is idle again
        assert (cid, r.outcome) == ("a", Outcome.OK)
        ready(w, 1)
        w.put("c", b"n=3")                     # the loop's next order: behind b, not ahead
        assert w.direct == 1
        go.set()
        got = [one_reply(w), one_reply(w)]
        assert [(c, r.outcome) for c, r in got] == [("b", Outcome.OK), ("c", Outcome.OK)], \
            [r.msg for _, r in got]
        assert venue.bodies == [b"n=1", b"n=2", b"n=3"] and w.by_thread == 2
