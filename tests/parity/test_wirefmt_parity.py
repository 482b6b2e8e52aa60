"""The order request writer (ext/wirefmt.pyx) vs its pure-Python twin (wirefmt_py.py) on random
requests (hypothesis): identical bytes, identical refusals of header injection, and what send()
puts on a real socket is the formatted request, also when the socket's buffer is full."""
from __future__ import annotations

import http.client
import io
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import _native
from pipeline.gateway import wirefmt_py

Kernel = _native.load("wirefmt").RequestWriter
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
token = st.binary(min_size=1, max_size=20).filter(
    lambda b: not any(c in b for c in b"\r\n\0 :"))
value = st.binary(max_size=80)
headers = st.lists(st.tuples(token, value), max_size=5)
paths = st.binary(max_size=40).map(lambda b: b"/" + b)


def both(method, path, host, hdrs, cap=8192):
    out = []
    for cls in (Kernel, wirefmt_py.RequestWriter):
        try:
            out.append(cls(method, path, host, hdrs, cap))
        except ValueError as exc:
            out.append(("ValueError", "redacted" in str(exc)))
    return out


@SETTINGS
@given(method=token, path=paths, host=st.binary(min_size=1, max_size=30), hdrs=headers,
       bodies=st.lists(st.binary(max_size=600), max_size=5), cap=st.integers(64, 1200))
def test_kernel_and_twin_format_identical_bytes_and_refuse_the_same(method, path, host, hdrs,
                                                                    bodies, cap):
    k, p = both(method, path, host, hdrs, cap)
    assert isinstance(k, tuple) == isinstance(p, tuple)
    if isinstance(k, tuple):
        assert k == p
        return
    for body in bodies:
        try:
            a = k.format(body)
        except ValueError:
            a = None
        try:
            b = p.format(body)
        except ValueError:
            b = None
        assert a == b
        if a is not None:
            assert k.length == p.length == len(a)
            assert a.endswith(b"Content-Length: %d\r\n\r\n" % len(body) + body)


def test_an_injected_header_is_refused_and_a_value_never_shown():
    for bad in [(b"X-A", b"v\r\nEvil: 1"), (b"X A", b"v"), (b"X:A", b"v"), (b"Host", b"x")]:
        for cls in (Kernel, wirefmt_py.RequestWriter):
            with pytest.raises(ValueError) as e:
                cls(b"POST", b"/o", b"h", [bad])
            assert b"Evil" not in str(e.value).encode()
    assert "redacted" in repr(Kernel(b"POST", b"/o", b"h", [(b"X-MBX-APIKEY", b"SECRET")]))
    assert "SECRET" not in repr(Kernel(b"POST", b"/o", b"h", [(b"X-MBX-APIKEY", b"SECRET")]))


@pytest.mark.parametrize("cls", [Kernel, wirefmt_py.RequestWriter], ids=["kernel", "twin"])
def test_send_writes_the_request_an_http_parser_reads(cls):
    a, b = socket.socketpair()
    try:
        a.settimeout(1.0)
        w = cls(b"POST", b"/api/v3/order", b"127.0.0.1:8080",
                [(b"X-MBX-APIKEY", b"key"), (b"Content-Type", b"application/x-www-form-urlencoded")])
        body = b"symbol=BTCUSDT&side=BUY&signature=" + b"0" * 64
        assert w.send(a.fileno(), body) == w.length and w.sent == w.length
        assert w.stamp > 0
        raw = b.recv(65536)
        assert raw == w.format(body)
        line, rest = raw.split(b"\r\n", 1)
        assert line == b"POST /api/v3/order HTTP/1.1"
        msg = http.client.parse_headers(io.BytesIO(rest))
        assert msg["Host"] == "127.0.0.1:8080" and int(msg["Content-Length"]) == len(body)
        assert raw.endswith(b"\r\n\r\n" + body)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("cls", [Kernel, wirefmt_py.RequestWriter], ids=["kernel", "twin"])
def test_a_full_send_buffer_gives_a_short_send_and_the_tail_completes_it(cls):
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        try:
            while True:
                a.send(b"\0" * 65536)
        except BlockingIOError:
            pass
        w = cls(b"POST", b"/o", b"h", [])
        n = w.send(a.fileno(), b"x" * 100)
        assert 0 <= n < w.length
        assert w.tail(n) == w.format(b"x" * 100)[n:]
        with pytest.raises(OSError):
            b.close()
            w.send(a.fileno(), b"y")          # the peer is gone: EPIPE, no SIGPIPE
    finally:
        a.close()
        b.close()
