"""Pure-Python twin of ext/wirefmt.pyx: an order's HTTP/1.1 request, byte for byte.

    POST <path> HTTP/1.1\\r\\n
    Host: <host>\\r\\n
    <name>: <value>\\r\\n            (each given header, in order)
    Content-Length: <len(body)>\\r\\n
    \\r\\n
    <body>

Everything before the length is constant per connection target and formatted once (`prefix`);
names and values are checked (no CR, LF or NUL, a name has no ':' or space) so no header can be
injected. `send(fd, body)` stamps CLOCK_MONOTONIC (time.perf_counter_ns) and writes once (the
kernel: send(..., MSG_NOSIGNAL)); fewer bytes than `length` mean the socket buffer was full and
the caller writes `tail(sent)`.
"""
from __future__ import annotations

import os
import time


def _check(what: str, v: bytes, token: bool = False) -> None:
    """No CR, LF or NUL anywhere; a token (method, header name, host) is non-empty without
    spaces, and a header name has no ':'."""
    bad = not isinstance(v, bytes) or any(c in v for c in (b"\r", b"\n", b"\0"))
    if not bad and token:
        bad = not v or b" " in v or (what == "header name" and b":" in v)
    if bad:
        shown = "<redacted>" if what == "header value" else repr(v)
        raise ValueError(f"bad HTTP {what}: {shown}")


def prefix(method: bytes, path: bytes, host: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The constant part of the request, up to and including "Content-Length: "."""
    _check("method", method, token=True)
    _check("path", path)
    if not path.startswith(b"/") or b" " in path:
        raise ValueError(f"bad HTTP path {path!r}")
    _check("host", host, token=True)
    out = [method + b" " + path + b" HTTP/1.1\r\n", b"Host: " + host + b"\r\n"]
    for k, v in headers:
        _check("header name", k, token=True)
        _check("header value", v)
        if k.lower() in (b"host", b"content-length"):
            raise ValueError(f"header {k!r} is set by the writer")
        out.append(k + b": " + v + b"\r\n")
    out.append(b"Content-Length: ")
    return b"".join(out)


class RequestWriter:
    def __init__(self, method: bytes, path: bytes, host: bytes, headers: list,
                 capacity: int = 8192):
        head = prefix(method, path, host, headers)
        if capacity < len(head) + 24 + 1:
            raise ValueError(f"capacity {capacity} too small for the {len(head)}-byte header")
        self._head = head
        self.cap = capacity
        self.length = 0
        self.stamp = 0
        self.sent = 0
        self._last = b""

    def __repr__(self) -> str:
        return f"<RequestWriter {len(self._head)}-byte header, headers redacted>"

    def __reduce__(self):
        raise TypeError("RequestWriter holds credentials and cannot be pickled")

    @property
    def capacity(self) -> int:
        return self.cap

    def format(self, body: bytes) -> bytes:
        n = len(body)
        if len(self._head) + 24 + n > self.cap:
            raise ValueError(f"request of {n} body bytes does not fit {self.cap} bytes")
        self._last = self._head + str(n).encode() + b"\r\n\r\n" + bytes(body)
        self.length = len(self._last)
        return self._last

    def send(self, fd: int, body: bytes) -> int:
        data = self.format(body)
        self.stamp = time.perf_counter_ns()
        try:
            self.sent = os.write(fd, data)
        except BlockingIOError:
            self.sent = 0
        except OSError:
            self.sent = 0
            raise
        return self.sent

    def tail(self, offset: int) -> bytes:
        if offset < 0 or offset > self.length:
            raise ValueError("offset outside the last request")
        return self._last[offset:]
