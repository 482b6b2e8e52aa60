"""The gateway's check of who connects to the signal channel (ZeroMQ ZAP), and its refusal counts.

Why ZAP and not a per-message property: ZeroMQ reads the kernel's SO_PEERCRED credentials of
every accepted ipc:// connection and hands them to the context's ZAP handler (RFC 27) as the
request's address "<host>:<uid>:<gid>:<pid>", before the handshake completes. Refusing there
means a foreign connection never delivers a single frame to the PULL or ROUTER socket, and the
hot path pays nothing per message (the other route, reading the "Peer-Address" property of each
received frame, would cost a zero-copy receive and a lookup on every signal). ZAP is also where
the connection's PLAIN password (the channel token) is checked, with hmac.compare_digest.

`ZapGuard` is the handler: a REP socket on inproc://zeromq.zap.01 in the receiver's own
context, served from the receiver's poll loop (no thread). A ZeroMQ context has at most one.
A client speaking the NULL mechanism (no credentials at all) never reaches ZAP: the PLAIN server
drops it, which the guard sees on a socket monitor and counts as `no_auth`. Which event the
server reports is a race between the two ends: a mechanism mismatch
(EVENT_HANDSHAKE_FAILED_PROTOCOL) when it read the client's whole greeting first, or a hang-up
mid-handshake (EVENT_HANDSHAKE_FAILED_NO_DETAIL) when the client saw the mismatch first and
closed before its greeting was out (about one NULL connection in six, more under load). Both
mean a connection refused before any credentials were checked: both count. (A ZAP refusal is
HANDSHAKE_FAILED_AUTH, counted by the ZAP answer itself as uid or token.)
"""
from __future__ import annotations

import logging
import os
import struct
import time

import zmq

from pipeline.bus import channel

log = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
HELLO = b"HELO"
_HEAD = struct.Struct("<4sIq")       # tag, strategy id, epoch (as the 16-byte READY frames)
_COUNT = struct.Struct("<H")
_SID = struct.Struct("<I")
MAX_IDS = 1024                       # strategy ids one HELLO may announce
KINDS = ("uid", "token", "no_auth", "bad_hello", "unknown_strategy", "before_ready")
_LOG_EVERY_S = 10.0


def hello_frame(strategy_id: int, epoch: int, token: bytes, ids: tuple[int, ...] = ()) -> bytes:
    """The HELLO control frame: b"HELO", strategy id, epoch, 1 byte token length, the token,
    2 bytes count, that many 4-byte further strategy ids (little-endian)."""
    return (_HEAD.pack(HELLO, strategy_id, epoch) + bytes([len(token)]) + token
            + _COUNT.pack(len(ids)) + b"".join(_SID.pack(i) for i in ids))


def parse_hello(frame: bytes) -> tuple[int, int, bytes, tuple[int, ...]] | None:
    """(strategy id, epoch, token, further ids) of a HELLO frame, or None if it is not one."""
    if len(frame) < _HEAD.size + 1 or frame[:4] != HELLO:
        return None
    _tag, sid, epoch = _HEAD.unpack_from(frame, 0)
    at = _HEAD.size + 1 + frame[_HEAD.size]
    if len(frame) < at + _COUNT.size:
        return None
    token = bytes(frame[_HEAD.size + 1:at])
    (n,) = _COUNT.unpack_from(frame, at)
    at += _COUNT.size
    if n > MAX_IDS or len(frame) != at + n * _SID.size:
        return None
    return sid, epoch, token, tuple(_SID.unpack_from(frame, at + i * _SID.size)[0]
                                    for i in range(n))


class Refusals:
    """Counts per refusal kind, and a log line per kind at most every 10 s (with the count)."""

    def __init__(self, where: str):
        self.where = where
        self.counts = dict.fromkeys(KINDS, 0)
        self._last_log = dict.fromkeys(KINDS, -1e18)
        self._unlogged = dict.fromkeys(KINDS, 0)

    def __call__(self, kind: str, msg: str, *args) -> None:
        self.counts[kind] += 1
        now = time.monotonic()
        if now - self._last_log[kind] >= _LOG_EVERY_S:
            more = self._unlogged[kind]
            self._last_log[kind] = now
            self._unlogged[kind] = 0
            log.warning("signal channel %s: refused (%s): " + msg + " [%d refused so far%s]",
                        self.where, kind, *args, self.counts[kind],
                        f", {more} not logged" if more else "")
        else:
            self._unlogged[kind] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def peer_of(address: bytes) -> tuple[int, int] | None:
    """(uid, pid) from a ZAP request address of an ipc connection ("host:uid:gid:pid")."""
    try:
        parts = address.decode("ascii").rsplit(":", 3)
        if len(parts) != 4:
            return None
        return int(parts[1]), int(parts[3])
    except (UnicodeDecodeError, ValueError):
        return None


class ZapGuard:
    """Accept a connection only from this uid and with the channel token as PLAIN password.
    `sockets` get the ZAP domain and become PLAIN servers; call before they bind."""

    def __init__(self, ctx: zmq.Context, token: bytes, refuse: Refusals,
                 sockets: dict[bytes, zmq.Socket]):
        self.token = token
        self.refuse = refuse
        self.uid = os.getuid()
        self.accepted = 0
        self.rep = ctx.socket(zmq.REP)
        self.rep.setsockopt(zmq.LINGER, 0)
        try:
            self.rep.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            self.rep.close()
            raise RuntimeError(f"this ZeroMQ context already has a ZAP handler ({exc}): give the "
                               f"signal receiver a context of its own") from None
        self.monitors = []
        for domain, sock in sockets.items():
            sock.setsockopt(zmq.ZAP_DOMAIN, domain)
            sock.setsockopt(zmq.PLAIN_SERVER, 1)
            mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                          | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            mon.setsockopt(zmq.LINGER, 0)
            self.monitors.append(mon)

    def register(self, poller: zmq.Poller) -> None:
        poller.register(self.rep, zmq.POLLIN)
        for m in self.monitors:
            poller.register(m, zmq.POLLIN)

    def owns(self, sock) -> bool:
        return sock is self.rep or any(sock is m for m in self.monitors)

    def service(self) -> None:
        """Answer every pending ZAP request and read the monitors (non-blocking)."""
        while True:
            try:
                req = self.rep.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.rep.send_multipart(self._answer(req))
        for m in self.monitors:
            while True:
                try:
                    m.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                self.refuse("no_auth", "a connection without credentials (not a strategy of "
                            "this run; no token)")

    def _answer(self, req: list[bytes]) -> list[bytes]:
        if len(req) < 6:
            return [b"1.0", req[1] if len(req) > 1 else b"", b"500", b"bad ZAP request", b"", b""]
        version, rid, domain, address, _identity, mechanism = req[:6]
        creds = req[6:]

        def deny(code: bytes, why: bytes) -> list[bytes]:
            return [version, rid, code, why, b"", b""]

        peer = peer_of(address)
        what = domain.decode(errors="replace")
        if peer is None:
            self.refuse("uid", "%s connection with no peer credentials (address %r)", what,
                        address[:64])
            return deny(b"400", b"no peer credentials")
        uid, pid = peer
        if uid != self.uid:
            self.refuse("uid", "%s connection from pid %d running as uid %d (this run is uid %d)",
                        what, pid, uid, self.uid)
            return deny(b"400", b"wrong uid")
        if mechanism != b"PLAIN" or len(creds) != 2 or not channel.tokens_equal(creds[1],
                                                                               self.token):
            self.refuse("token", "%s connection from pid %d (uid %d, strategy %r) without the "
                        "channel token", what, pid, uid,
                        creds[0][:16].decode(errors="replace") if creds else "")
            return deny(b"400", b"wrong token")
        self.accepted += 1
        return [version, rid, b"200", b"OK", creds[0], b""]

    def close(self) -> None:
        for m in self.monitors:
            m.close()
        self.rep.close()
