"""What every simulator WebSocket shares: an outbound queue drained by one writer task, server
pings with a pong deadline, a maximum lifetime, and the connection-level faults.

Binance rules (ws_control.json): the server pings every 20 s; a client that does not answer
within a minute is disconnected; a connection lives at most 24 h. The pong must carry the
ping's payload; unsolicited pongs are allowed but do not count.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time

from aiohttp import WSMsgType, web
from aiohttp.http import WebSocketWriter

log = logging.getLogger(__name__)

_ids = itertools.count(1)
BATCH = 512                 # frames per transport.write
HIGH_WATER = 1 << 20        # bytes in the transport buffer before the writer waits
TURN_MAX = 1 << 16          # frames one writer sends before it yields the event loop


class WsConn:
    """One accepted WebSocket. Subclasses read; everything sent goes through `push`."""

    kind = "ws"

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, *, ping_interval_s: float,
                 pong_timeout_s: float, max_lifetime_s: float, max_queue: int) -> None:
        self.id = next(_ids)
        self.ws = ws
        self.request = request
        self.peer = request.remote or "?"
        self.q: collections.deque[bytes] = collections.deque()
        self.wake = asyncio.Event()
        self.closed = False
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.max_lifetime_s = max_lifetime_s
        self.max_queue = max_queue
        self.created = time.monotonic()
        self.ping_payload: bytes | None = None
        self.ping_sent_at = 0.0
        self.silent_until = 0.0
        # per-connection frame faults: counts of frames still to spoil
        self.malformed = 0
        self.truncated = 0
        self.duplicate = 0
        self.faulty = False
        self.sent = 0
        self.pings_sent = 0         # server pings sent (for tests: /_sim/state md_conns)
        self.pongs_matched = 0      # pongs that carried the outstanding ping's payload
        self._tasks: list[asyncio.Task] = []

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._writer(), name=f"{self.kind}-{self.id}-writer"),
                       asyncio.create_task(self._watchdog(), name=f"{self.kind}-{self.id}-watchdog")]

    async def stop(self) -> None:
        self.closed = True
        self.wake.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - teardown must not raise
                pass

    def abort(self) -> None:
        """Cut the TCP connection without a close frame (fault: drop)."""
        self.closed = True
        self.wake.set()
        tr = self.request.transport
        if tr is not None:
            tr.abort()

    async def close(self, code: int = 1000, message: bytes = b"", drain_s: float = 1.0) -> None:
        """Close with a close frame, after the frames already queued went out (up to drain_s)."""
        deadline = time.monotonic() + drain_s
        while self.q and not self.closed and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        self.closed = True
        self.wake.set()
        try:
            await self.ws.close(code=code, message=message)
        except Exception as exc:  # noqa: BLE001 - the peer may already be gone
            log.debug("%s %d: close: %s", self.kind, self.id, exc)

    # ---------------------------------------------------------------- outbound

    def push(self, frame: bytes) -> None:
        """Queue a text frame and wake the writer."""
        if self.closed:
            return
        self.q.append(frame)
        self.pushed()

    def pushed(self) -> None:
        """After frames were appended to `q` (the hub appends a batch directly): wake the
        writer; a consumer too slow to keep up is disconnected."""
        q = self.q
        if len(q) > self.max_queue and not self.closed:
            log.warning("%s %d (%s): %d frames queued, slow consumer disconnected", self.kind,
                        self.id, self.peer, len(q))
            q.clear()
            self.closed = True
            asyncio.get_running_loop().create_task(self.close(1008, b"slow consumer"))
        self.wake.set()

    def spoil(self, malformed: int = 0, truncated: int = 0, duplicate: int = 0) -> None:
        self.malformed += malformed
        self.truncated += truncated
        self.duplicate += duplicate
        self.faulty = True

    async def _writer(self) -> None:
        """Drain the queue in batches: aiohttp's own WebSocketWriter frames each message into a
        list, and the batch goes to the socket in one transport.write (one syscall for up to
        BATCH frames instead of one each). Flow control: wait while the transport buffer is
        above HIGH_WATER (the peer is slow), so the queue, not the kernel, holds the backlog."""
        q = self.q
        transport = self.request.transport
        if transport is None:
            self.closed = True
            return
        sink = _Collect(transport)
        framer = WebSocketWriter(self.request.protocol, sink, limit=1 << 62)  # type: ignore[arg-type]
        text = WSMsgType.TEXT
        try:
            while not self.closed:
                if not q:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                if self.silent_until:
                    if time.monotonic() < self.silent_until:
                        q.clear()     # silence: the frames are lost, as on a stalled feed
                        self.wake.clear()
                        await asyncio.sleep(0.01)
                        continue
                    self.silent_until = 0.0
                if transport.is_closing():
                    break
                turn = 0                       # drain everything queued, batch by batch
                while q and turn < TURN_MAX and transport.get_write_buffer_size() <= HIGH_WATER:
                    n = min(len(q), BATCH)
                    if self.faulty:
                        for _ in range(n):
                            await self._send_spoiled(framer, q.popleft())
                    else:
                        for _ in range(n):
                            await framer.send_frame(q.popleft(), text)
                    transport.write(b"".join(sink.parts))
                    sink.parts.clear()
                    self.sent += n
                    turn += n
                if transport.get_write_buffer_size() > HIGH_WATER:
                    while (transport.get_write_buffer_size() > HIGH_WATER // 4
                           and not transport.is_closing() and not self.closed):
                        await asyncio.sleep(0.0005)
                else:
                    await asyncio.sleep(0)
        except (ConnectionError, RuntimeError, asyncio.CancelledError) as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.info("%s %d: writer stopped: %s", self.kind, self.id, exc)
        self.closed = True

    async def _send_spoiled(self, framer: WebSocketWriter, frame: bytes) -> None:
        text = WSMsgType.TEXT
        if self.malformed:
            self.malformed -= 1
            await framer.send_frame(b"\x7fnot json {" + frame[:16], text)
        elif self.truncated:
            self.truncated -= 1
            await framer.send_frame(frame[: max(1, len(frame) // 2)], text)
        elif self.duplicate:
            self.duplicate -= 1
            await framer.send_frame(frame, text)
            await framer.send_frame(frame, text)
        else:
            await framer.send_frame(frame, text)
        self.faulty = bool(self.malformed or self.truncated or self.duplicate)


    # ---------------------------------------------------------------- pings and lifetime

    async def _watchdog(self) -> None:
        tick = max(0.01, min(self.ping_interval_s, self.pong_timeout_s, self.max_lifetime_s) / 4)
        next_ping = time.monotonic() + self.ping_interval_s
        try:
            while not self.closed:
                await asyncio.sleep(tick)
                now = time.monotonic()
                if now - self.created >= self.max_lifetime_s:
                    log.info("%s %d: maximum lifetime %.1f s reached, closing", self.kind, self.id,
                             self.max_lifetime_s)
                    await self.close(1000, b"connection lifetime exceeded")
                    return
                if self.silent_until and now < self.silent_until:
                    next_ping = now + self.ping_interval_s
                    self.ping_payload = None
                    continue
                if self.ping_payload is not None and now - self.ping_sent_at > self.pong_timeout_s:
                    log.info("%s %d: no pong within %.1f s, closing", self.kind, self.id,
                             self.pong_timeout_s)
                    await self.close(1008, b"pong timeout")
                    return
                if now >= next_ping:
                    next_ping = now + self.ping_interval_s
                    payload = str(int(time.time() * 1000)).encode()
                    if self.ping_payload is None:
                        self.ping_payload = payload
                        self.ping_sent_at = now
                    await self.ws.ping(payload)
                    self.pings_sent += 1
        except (ConnectionError, RuntimeError) as exc:
            log.debug("%s %d: watchdog stopped: %s", self.kind, self.id, exc)
            self.closed = True
        except asyncio.CancelledError:
            pass

    def on_pong(self, payload: bytes) -> None:
        if self.ping_payload is not None and payload == self.ping_payload:
            self.ping_payload = None
            self.pongs_matched += 1

    async def answer_ping(self, payload: bytes) -> None:
        try:
            await self.ws.pong(payload)
        except (ConnectionError, RuntimeError):
            self.closed = True


class _Collect:
    """A write sink for WebSocketWriter: frames are collected, then written in one go.
    (`write` is the list's append and `is_closing` the transport's: no Python frame per call.)"""

    __slots__ = ("parts", "write", "is_closing")

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self.parts: list[bytes] = []
        self.write = self.parts.append
        self.is_closing = transport.is_closing
