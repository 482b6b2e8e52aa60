"""Signals on the wire: the ZeroMQ sockets and the shared-memory ring that carry them.

A signal is one SIGNAL_DTYPE record (80 bytes, pipeline/records.py) sent as one ZeroMQ frame or
ring slot; its codec (`Signal`, `encode`, `decode`, `SignalFormatError`) is
pipeline/bus/signal_codec.py, re-exported here, and the HELLO codec and connection checks are
pipeline/bus/auth.py.

Sockets (filesystem ipc:// sockets in a directory private to the run's user, pipeline.bus.channel):

    data     ipc://<base>/<name>/sig   strategy PUSH (connect)  →  gateway PULL (bind)
    control  ipc://<base>/<name>/ctl   strategy DEALER (connect) ↔ gateway ROUTER (bind)

The gateway holds the channel's lock while bound, so a second gateway fails (SignalBindError)
instead of silently re-binding the sockets.

Who may send (pipeline.bus.auth): every connection is checked before it delivers a frame (ZAP:
the peer's SO_PEERCRED uid must be the gateway's, its PLAIN password the channel token), READY is
answered only to a HELLO carrying the token, and a signal of a strategy id no accepted HELLO
announced is refused; each refusal is counted by kind (`SignalReceiver.refusals`).

READY handshake. The strategy sends HELLO on the control socket (resent every `hello_every_s`
until answered); the gateway answers each valid HELLO with READY carrying the same epoch (or
REFUSED, and the sender logs why). If the gateway goes away while the sender is ready (the control
connection drops, or the ring's owner dies) the sender handshakes again. Until READY arrives the sender keeps signals in a small bounded buffer (`pending_max`); on READY it flushes the
ones still within their TTL, in order, and drops the expired ones (counted). The PUSH connection
may complete a little after the control one (each reconnects on its own timer), so until the data
pipe has accepted a message (or reports POLLOUT) the buffer is kept, not dropped. After that, `send`
is one non-blocking `zmq.NOBLOCK` send: if the pipe is full (SNDHWM) or no gateway is connected
(IMMEDIATE is set, so nothing queues towards an absent peer) the signal is dropped and counted.
The market-data loop never blocks on the gateway. LINGER is explicit (default 200 ms), so closing
with the gateway absent takes at most that long.

Control frames: READY/REFUSED are 16 bytes: 4-byte tag (b"REDY" / b"REDS" / b"RFSD"), 4 bytes
strategy id, 8 bytes epoch. HELLO is b"HELO", strategy id, epoch, then 1 byte token length, the
token, 2 bytes count and that many 4-byte further strategy ids (all little-endian).

Signal ring (the hot path). A ZeroMQ hop wakes an idle receiver through its I/O thread: tens to
hundreds of microseconds on a small box. So a gateway made with `ring_capacity > 0` also creates a
`SignalRing` (pipeline/bus/ring.py: the tick ring's kernel with 128-byte slots holding these same
80 bytes) named `ring_name(name)`, before it answers any HELLO, and answers with REDS instead of
REDY. A sender that gets REDS attaches to the ring and claims its one writer slot; from then on
`send` is one `publish_bytes` into shared memory and the gateway waits on the ring (spinning or on
its futex). Only one sender can hold the ring: a second strategy process (claim refused) keeps
using the PUSH socket, which the gateway still reads. If the ring's owner dies (a restarted
gateway makes a new ring), the sender notices within `hello_every_s`, drops the old mapping and
handshakes again. A ring never refuses a signal: a gateway lapped by more than the capacity loses
the oldest, counted by its reader and seen as a gap in the (epoch, seq) numbering.

Signals are numbered by (epoch, seq): epoch is CLOCK_REALTIME ns at the sender's creation, seq
counts from 1 within the epoch, so a restarted strategy never reuses a number. The gateway rejects
duplicates and stale signals (created_mono + ttl_ns in the past); `SignalReceiver` only receives.
"""
from __future__ import annotations

import collections
import logging
import os
import struct
import time

import numpy as np
import zmq

from pipeline.bus import channel, shm
from pipeline.bus.auth import MAX_IDS, hello_frame, parse_hello  # noqa: F401 (HELLO codec)
from pipeline.bus.ring import RingError, SignalRing
from pipeline.bus.signal_codec import (SIGNAL_SIZE, _STRUCT, _WARM_SIGNAL, Signal,  # noqa: F401
                                       SignalFormatError, decode, encode, from_array, to_array)
from pipeline.records import SIGNAL_DTYPE

log = logging.getLogger(__name__)

_CTL = struct.Struct("<4sIq")
_EPOCH_SEQ = struct.Struct("<qq")      # the first two fields of a signal record
HELLO = b"HELO"
READY = b"REDY"          # ready; signals over ZeroMQ
READY_RING = b"REDS"     # ready; signals over the shared-memory ring ring_name(channel)
REFUSED = b"RFSD"        # HELLO refused (wrong token or a strategy id not allowed)
_SID = struct.Struct("<I")
_SID_OFFSET = SIGNAL_DTYPE.fields["strategy_id"][1]


class SignalBindError(RuntimeError):
    """The gateway's endpoint is already bound (another gateway is running)."""


def endpoints(name: str) -> tuple[str, str]:
    """(data, control) ipc:// endpoints of a signal channel (pipeline.bus.channel)."""
    return channel.endpoints(name)


def ring_name(name: str) -> str:
    """The shared-memory segment of a channel's signal ring (/dev/shm/<name>.sig)."""
    channel.check_name(name)             # same naming rules
    return f"{name}.sig"


# ----------------------------------------------------------------------------- strategy side


class SignalSender:
    """The strategy's end: PUSH for signals, DEALER for the READY handshake. Never blocks.

    `token` is the channel token (default: $PIPELINE_SIGNAL_TOKEN, else the token file of a
    standalone gateway, looked for until found: the sockets connect once it is known).
    `strategy_ids` are the further strategy ids this sender sends for (several instances share a
    process and its sender); the gateway refuses signals of ids no HELLO announced.

    Counters: sent, sent_ring (of which through the signal ring), dropped_hwm (pipe full or no
    gateway), dropped_expired (TTL ran out while waiting for READY), dropped_pending (pre-READY
    buffer full), ring_detached (the ring's gateway went away), refused (HELLOs the gateway
    refused: wrong token or id not allowed)."""

    def __init__(self, name: str, *, strategy_id: int = 0, epoch: int | None = None,
                 sndhwm: int = 1000, linger_ms: int = 200, hello_every_s: float = 0.5,
                 pending_max: int = 1024, ctx: zmq.Context | None = None,
                 token: str | bytes | None = None, strategy_ids: tuple[int, ...] = ()):
        if linger_ms < 0 or linger_ms > 2000:
            raise ValueError(f"linger_ms must be within 0..2000 (shutdown bound), got {linger_ms}")
        if sndhwm < 1:
            raise ValueError(f"sndhwm must be >= 1, got {sndhwm}")
        self.name = name
        self.data_ep, self.ctl_ep = endpoints(name)
        channel.channel_dir(name)          # ours and private (0700), or ChannelSecurityError
        self.strategy_id = int(strategy_id)
        self.strategy_ids = tuple(sorted({int(i) for i in strategy_ids} - {self.strategy_id}))
        if len(self.strategy_ids) > MAX_IDS:
            raise ValueError(f"at most {MAX_IDS} strategy ids per sender")
        self.epoch = time.time_ns() if epoch is None else int(epoch)
        self._token = channel.check_token(token) if token is not None else channel.env_token()
        self._token_from_file = self._token is None   # a standalone gateway's: re-read on need
        self._own_ctx = ctx is None
        self.ctx = zmq.Context() if ctx is None else ctx
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, sndhwm)
        self.push.setsockopt(zmq.LINGER, linger_ms)
        self.push.setsockopt(zmq.IMMEDIATE, 1)   # never queue towards an absent gateway
        self.ctl = self.ctx.socket(zmq.DEALER)
        self.ctl.setsockopt(zmq.LINGER, 0)
        self.ctl.setsockopt(zmq.SNDHWM, 4)
        self._ctl_mon = self.ctl.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._ctl_mon.setsockopt(zmq.LINGER, 0)
        self.rehandshakes = 0       # the gateway went away while ready: HELLO again
        self.connected = False
        self._next_token_look = 0
        self.hello_every_ns = int(hello_every_s * 1e9)
        self._last_hello = 0
        self._last_hello_sent = False
        self.ready = False          # READY received and the data pipe proven (a send went through)
        self.got_ready = False      # READY received; the PUSH connection may still be completing
        self._pending: collections.deque[Signal] = collections.deque()
        self.pending_max = pending_max
        self.seq = 0
        self.sent = 0
        self.dropped_hwm = 0
        self.dropped_expired = 0
        self.dropped_pending = 0
        self.sent_ring = 0
        self.ring_detached = 0
        self.refused = 0
        self.ring_refused = ""      # why the ring offered by the gateway is not used ("" = n/a)
        self._ring_name = ring_name(name)
        self._ring: SignalRing | None = None
        self._publish = None        # the ring writer's publish_bytes while attached
        self._next_ring_check = 0
        self._closed = False
        self._connect()

    def __repr__(self) -> str:          # never the token
        return (f"SignalSender({self.name!r}, strategy_id={self.strategy_id}, "
                f"ready={self.ready}, connected={self.connected})")

    def _connect(self) -> bool:
        """Connect both sockets with the token as their PLAIN credentials, once it is known."""
        if self.connected:
            return True
        if self._token is None:
            self._token = channel.read_token_file(self.name)
            if self._token is None:
                return False
            log.info("signal channel %s: using the standalone gateway's token file",
                     self.data_ep)
        user = str(self.strategy_id).encode()
        for sock in (self.push, self.ctl):
            sock.setsockopt(zmq.PLAIN_USERNAME, user)
            sock.setsockopt(zmq.PLAIN_PASSWORD, self._token)
        self.push.connect(self.data_ep)
        self.ctl.connect(self.ctl_ep)
        self.connected = True
        return True

    @property
    def dropped(self) -> int:
        return self.dropped_hwm + self.dropped_expired + self.dropped_pending

    def service(self, now_mono: int | None = None) -> bool:
        """Drive the handshake (non-blocking): send HELLO when due, take READY, flush the
        buffered signals once the data pipe accepts them. Returns ready."""
        if self.ready:
            now = time.perf_counter_ns() if now_mono is None else now_mono
            if now >= self._next_ring_check:
                self._next_ring_check = now + self.hello_every_ns
                self.check_gateway()
            return self.ready
        now = time.perf_counter_ns() if now_mono is None else now_mono
        self._drain_monitor()          # disconnects before READY (a refused try) mean nothing
        if not self.connected:
            if now < self._next_token_look:
                return False
            self._next_token_look = now + self.hello_every_ns
            if not self._connect():
                return False
        while not self.got_ready:
            try:
                frame = self.ctl.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frame) == _CTL.size:
                tag, _sid, epoch = _CTL.unpack(frame)
                if tag in (READY, READY_RING) and epoch == self.epoch:
                    self.got_ready = True
                    log.info("signal channel %s: gateway READY (epoch %d)", self.data_ep, epoch)
                    if tag == READY_RING:
                        self._attach_ring()
                    break
                if tag == REFUSED and epoch == self.epoch:
                    self.refused += 1
                    if self.refused == 1 or self.refused % 100 == 0:
                        log.error("signal channel %s: the gateway refused our HELLO (strategy "
                                  "%d): wrong channel token or a strategy id it does not "
                                  "allow (%d refusals)", self.ctl_ep, self.strategy_id,
                                  self.refused)
                    continue
            log.warning("signal channel %s: unexpected control frame %r", self.ctl_ep, frame[:16])
        if self.got_ready:
            return self._flush(now)
        if now - self._last_hello >= self.hello_every_ns:
            self._last_hello = now
            if self._token_from_file and self._last_hello_sent:
                self._refresh_token()
            self._last_hello_sent = True
            try:
                self.ctl.send(hello_frame(self.strategy_id, self.epoch, self._token,
                                          self.strategy_ids), zmq.NOBLOCK)
            except zmq.Again:
                pass
        return False

    def _refresh_token(self) -> None:
        """No READY yet and the token came from a standalone gateway's file: a restarted gateway
        made a new one. Reconnect with it (the old connections are refused by its ZAP)."""
        try:
            tok = channel.read_token_file(self.name)
        except channel.ChannelSecurityError as exc:
            log.error("signal channel %s: %s", self.ctl_ep, exc)
            return
        if tok is None or channel.tokens_equal(tok, self._token):
            return
        log.info("signal channel %s: the gateway's token file changed; reconnecting",
                 self.ctl_ep)
        for sock, ep in ((self.push, self.data_ep), (self.ctl, self.ctl_ep)):
            try:
                sock.disconnect(ep)
            except zmq.ZMQError:
                pass
        self._token = tok
        self.connected = False
        self._connect()

    def _attach_ring(self) -> None:
        """Attach to the gateway's signal ring and become its writer; on any refusal keep ZeroMQ
        (logged once, kept in `ring_refused`)."""
        try:
            ring = SignalRing.attach(self._ring_name)
        except RingError as exc:
            self.ring_refused = str(exc)
            log.warning("signal channel %s: ring not usable, staying on ZeroMQ: %s",
                        self.data_ep, exc)
            return
        try:
            w = ring.writer()
        except RingError as exc:          # another strategy process holds it
            ring.close()
            self.ring_refused = str(exc)
            log.warning("signal channel %s: %s; this sender stays on ZeroMQ", self.data_ep, exc)
            return
        self._ring = ring
        self._publish = w.publish_bytes
        self.ring_refused = ""
        self._next_ring_check = time.perf_counter_ns() + self.hello_every_ns
        log.info("signal channel %s: signals go through shared-memory ring %r", self.data_ep,
                 ring.name)

    def _detach_ring(self) -> None:
        ring, self._ring, self._publish = self._ring, None, None
        if ring is not None:
            ring.close()              # marks the writer closed: the gateway stops waiting on it

    def _drain_monitor(self) -> int:
        n = 0
        while True:
            try:
                self._ctl_mon.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return n
            n += 1

    def check_gateway(self) -> None:
        """While ready: has the gateway gone away (its control connection dropped, or its ring's
        owner died)? Then handshake again, keeping new signals buffered until READY: a restarted
        gateway refuses signals from a sender that has not said HELLO to it. `service` calls this
        every `hello_every_s`."""
        ring = self._ring
        if ring is not None and not shm.pid_alive(ring.owner_pid, ring.epoch_ns):
            log.warning("signal channel %s: the gateway owning ring %r is gone; handshaking "
                        "again", self.data_ep, ring.name)
            self._detach_ring()
            self.ring_detached += 1
        elif self._drain_monitor():
            log.warning("signal channel %s: the gateway dropped the control connection; "
                        "handshaking again", self.ctl_ep)
            self._detach_ring()
        else:
            return
        self.rehandshakes += 1
        self.ready = self.got_ready = False
        self._last_hello = 0
        while True:                      # READYs the dead gateway queued (one per HELLO it got)
            try:                         # are stale: only the next gateway's READY counts
                self.ctl.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        self._drain_monitor()

    def _flush(self, now: int) -> bool:
        """After READY: send the buffered signals in order. The PUSH connection can complete a
        little after the control one (IMMEDIATE refuses sends until it has), so a refused send
        keeps the rest buffered for the next call instead of dropping them. Ready once a send
        has gone through and the buffer is empty."""
        sent_any = False
        while self._pending:
            sig = self._pending[0]
            if sig.expired(now):
                self._pending.popleft()
                self.dropped_expired += 1
                continue
            if self._publish is not None:
                self._publish(_STRUCT.pack(*sig))
                self.sent_ring += 1
            else:
                try:
                    self.push.send(_STRUCT.pack(*sig), zmq.NOBLOCK)
                except zmq.Again:
                    return False
            self._pending.popleft()
            self.sent += 1
            sent_any = True
        if sent_any or self._publish is not None or self._probe():
            self.ready = True
        return self.ready

    def _probe(self) -> bool:
        """Nothing was buffered: is the data pipe attached? (zero-length frames are never sent;
        ask the socket whether it can take a message now)."""
        return bool(self.push.getsockopt(zmq.EVENTS) & zmq.POLLOUT)

    def _send(self, sig: Signal) -> bool:
        try:
            self.push.send(_STRUCT.pack(*sig), zmq.NOBLOCK)
        except zmq.Again:
            self.dropped_hwm += 1
            return False
        self.sent += 1
        return True

    def send(self, sig: Signal) -> bool:
        """Number and send one signal without blocking. Returns True if handed to ZeroMQ (or
        buffered until the gateway is READY), False if dropped. A signal that already carries a
        seq keeps its (epoch, seq): strategies number their own orders, one stream per strategy
        id (several instances share a process and its sender)."""
        if sig.seq:                           # numbered by its strategy (the hot path)
            if self._publish is not None and self.ready:
                self._publish(_STRUCT.pack(*sig))
                self.sent += 1
                self.sent_ring += 1
                return True
            return self._send_or_buffer(sig)
        self.seq += 1
        if self._publish is not None and self.ready:
            # the hot path: numbered while packed (no NamedTuple._replace), one shared-memory write
            self._publish(_STRUCT.pack(self.epoch, self.seq, *sig[2:]))
            self.sent += 1
            self.sent_ring += 1
            return True
        sig = sig._replace(epoch=self.epoch, seq=self.seq)
        return self._send_or_buffer(sig)

    def _send_or_buffer(self, sig: Signal) -> bool:
        if self.ready:
            return self._send(sig)
        if len(self._pending) >= self.pending_max:
            self.dropped_pending += 1
            return False
        self._pending.append(sig)
        if self.got_ready:
            self._flush(time.perf_counter_ns())
        return True

    def ring_target(self):
        """(ring core, epoch, last seq) for a compiled strategy to publish numbered signal records
        into the signal ring itself, or None when signals do not go through the ring now (not
        ready, or ZeroMQ). Report what was published with `account_ring`."""
        if self._publish is None or not self.ready:
            return None
        return self._ring.core, self.epoch, self.seq

    def account_ring(self, n: int, last_seq: int) -> None:
        """A compiled strategy published n signals numbered up to last_seq into the ring."""
        self.seq = last_seq
        self.sent += n
        self.sent_ring += n

    def send_record(self, rec) -> bool:
        """Number and send one signal given as its 80 encoded bytes (a SIGNAL_DTYPE record from
        a compiled strategy; epoch and seq are overwritten unless seq is set, as in `send`).
        Same outcomes as `send`."""
        if _EPOCH_SEQ.unpack_from(rec, 0)[1]:
            if self._publish is not None and self.ready:
                self._publish(bytes(rec))
                self.sent += 1
                self.sent_ring += 1
                return True
            return self.send(decode(bytes(rec)))
        if self._publish is not None and self.ready:
            self.seq += 1
            buf = bytearray(rec)
            _EPOCH_SEQ.pack_into(buf, 0, self.epoch, self.seq)
            self._publish(buf)
            self.sent += 1
            self.sent_ring += 1
            return True
        return self.send(decode(bytes(rec)))

    def warm(self) -> None:
        """Run the send path dry (number a signal, pack it; nothing sent or counted), so a rare
        real signal finds it in cache. The strategy calls it between signals."""
        _STRUCT.pack(self.epoch, self.seq + 1, *_WARM_SIGNAL[2:])

    def stats(self) -> dict:
        return {"sent": self.sent, "dropped": self.dropped, "dropped_hwm": self.dropped_hwm,
                "dropped_expired": self.dropped_expired, "dropped_pending": self.dropped_pending,
                "pending": len(self._pending), "ready": self.ready,
                "got_ready": self.got_ready, "epoch": self.epoch,
                "seq": self.seq, "sent_ring": self.sent_ring, "ring": self._ring is not None,
                "ring_detached": self.ring_detached, "refused": self.refused,
                "rehandshakes": self.rehandshakes,
                "connected": self.connected}

    def close(self) -> None:
        """Close both sockets (LINGER bounds the wait); idempotent."""
        if self._closed:
            return
        self._closed = True
        self.dropped_pending += len(self._pending)
        self._pending.clear()
        self._detach_ring()
        try:
            self.ctl.disable_monitor()
        except zmq.ZMQError:
            pass
        self._ctl_mon.close()
        self.push.close()
        self.ctl.close()
        if self._own_ctx:
            self.ctx.term()
        try:                            # the directory this sender made, if no gateway came
            os.rmdir(channel.base_dir() / self.name)
        except OSError:
            pass

    def __enter__(self) -> "SignalSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------- gateway side


class SignalReceiver:
    """The gateway's end: takes the channel's lock, binds PULL (signals) and ROUTER (handshake)
    on the channel's private ipc:// sockets and checks every connection (`auth.ZapGuard`: the
    peer's uid, the token). A second receiver on the same name fails with SignalBindError.

    `token`: the channel token (default $PIPELINE_SIGNAL_TOKEN; without one a token is made and
    written to the channel's 0600 token file for standalone strategies). `allowed_ids`: the
    strategy ids a HELLO may announce (None: any). Refusals are counted by kind in `refusals`.

    With `ring_capacity` > 0 it also owns the channel's SignalRing (created after the binds, so
    the bind decides which gateway owns the channel; unlinked at close) and waits on it with
    `ring_wait` (a ring wait strategy: busy_spin on a core of its own, else blocking)."""

    def __init__(self, name: str, *, rcvhwm: int = 10000, ctx: zmq.Context | None = None,
                 ring_capacity: int = 0, ring_wait: str = "blocking",
                 token: str | bytes | None = None, allowed_ids=None):
        from pipeline.bus import auth
        self.name = name
        self.data_ep, self.ctl_ep = endpoints(name)
        try:
            self._lock = channel.ChannelLock(name)
        except channel.ChannelBusy:
            raise SignalBindError(
                f"signal endpoint {self.data_ep} is already bound by another process "
                f"(is a second gateway running?)") from None
        except (channel.ChannelSecurityError, OSError) as exc:
            raise SignalBindError(f"signal channel {name!r}: {exc}") from None
        self._closed = False
        self.ring = None
        self._reader = self._poll = None
        try:
            tok = channel.check_token(token) if token is not None else channel.env_token()
            if tok is None:
                tok = channel.new_token().encode()
                channel.write_token_file(name, tok)
                log.info("signal channel %s: no token given; made one for this gateway (token "
                         "file in %s)", self.data_ep, self._lock.dir)
        except (channel.ChannelSecurityError, OSError) as exc:
            self._lock.release()
            raise SignalBindError(f"signal channel {name!r}: {exc}") from None
        self._token = tok
        self.allowed_ids = None if allowed_ids is None else frozenset(int(i) for i in allowed_ids)
        self.refusals = auth.Refusals(self.data_ep)
        self._own_ctx = ctx is None
        self.ctx = zmq.Context() if ctx is None else ctx
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.setsockopt(zmq.RCVHWM, rcvhwm)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.guard = None
        try:
            self.guard = auth.ZapGuard(self.ctx, tok, self.refusals,
                                       {b"sig": self.pull, b"ctl": self.router})
            self.pull.bind(self.data_ep)
            self.router.bind(self.ctl_ep)
        except (zmq.ZMQError, RuntimeError) as exc:
            if self.guard is not None:
                self.guard.close()
            self.pull.close()
            self.router.close()
            if self._own_ctx:
                self.ctx.term()
            self._lock.release()
            raise SignalBindError(f"cannot bind {self.data_ep}: {exc}") from None
        self.poller = zmq.Poller()
        self.poller.register(self.pull, zmq.POLLIN)
        self.poller.register(self.router, zmq.POLLIN)
        self.guard.register(self.poller)
        self.hellos: dict[int, int] = {}   # strategy id -> epoch of the latest HELLO answered
        self.ready_ids: set[int] = set()   # ids announced by an accepted HELLO
        self.received = 0
        self.malformed = 0
        self.received_ring = 0
        self._ring_lost: int | None = None
        self._n = self._i = 0
        if ring_capacity:
            try:
                ring = SignalRing.create(ring_name(name), ring_capacity)
            except (RingError, ValueError) as exc:
                self.close()
                raise SignalBindError(f"signal ring for {self.data_ep}: {exc}") from None
            self.ring = ring
            try:
                self._reader = ring.reader(wait=ring_wait, max_batch=64)
            except ValueError:
                self.close()
                raise
            self._ring_wait = self._reader.core.wait
            self._poll = self._reader.core.poll_into
            self._slots = np.zeros(64, dtype=self.ring.dtype)
            self._slot_mv = memoryview(self._slots.view(np.uint8))
            self._stride = self.ring.dtype.itemsize
        self._ready_tag = READY_RING if self.ring is not None else READY

    def __repr__(self) -> str:          # never the token
        return f"SignalReceiver({self.name!r}, ready_ids={sorted(self.ready_ids)})"

    def refusal_stats(self) -> dict:
        return dict(self.refusals.counts)

    def service(self) -> int:
        """Answer ZAP requests (who connects) and every pending HELLO: READY to a valid one,
        REFUSED otherwise (non-blocking). Returns how many were answered READY."""
        self.guard.service()
        n = 0
        while True:
            try:
                ident, frame = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return n
            except ValueError:
                continue
            hello = parse_hello(frame)
            if hello is None:
                self.refusals("bad_hello", "control frame %r is not a HELLO", bytes(frame[:16]))
                continue
            sid, epoch, tok, ids = hello
            if not channel.tokens_equal(tok, self._token):
                self.refusals("token", "HELLO from strategy %d (epoch %d) with a wrong token",
                              sid, epoch)
                self._answer(ident, REFUSED, sid, epoch)
                continue
            unknown = ([i for i in (sid, *ids) if i not in self.allowed_ids]
                       if self.allowed_ids is not None else [])
            if unknown:
                self.refusals("unknown_strategy", "HELLO from strategy %d (epoch %d) announcing "
                              "ids %s this gateway does not allow", sid, epoch, unknown[:8])
                self._answer(ident, REFUSED, sid, epoch)
                continue
            self.hellos[sid] = epoch
            self.ready_ids.add(sid)
            self.ready_ids.update(ids)
            n += self._answer(ident, self._ready_tag, sid, epoch)

    def _answer(self, ident: bytes, tag: bytes, sid: int, epoch: int) -> int:
        try:
            self.router.send_multipart([ident, _CTL.pack(tag, sid, epoch)], zmq.NOBLOCK)
            return 1
        except zmq.ZMQError:
            return 0

    def _admit(self, buf) -> bool:
        """A signal frame may go on only if its strategy id was announced by an accepted HELLO
        (a frame too short to carry one goes on: the risk kernel refuses it as malformed)."""
        if len(buf) < _SID_OFFSET + 4:
            return True
        sid = _SID.unpack_from(buf, _SID_OFFSET)[0]
        if sid in self.ready_ids:
            return True
        if self.ready_ids:
            self.refusals("unknown_strategy", "signal from strategy %d, which no accepted HELLO "
                          "announced", sid)
        else:
            self.refusals("before_ready", "signal from strategy %d before any READY", sid)
        return False

    def wait(self, timeout_ms: int) -> bool:
        """Wait up to timeout_ms for a signal on the ring or the PULL socket, answering HELLOs.
        True: `recv_raw` has one. With a ring (and a writer on it) the wait is the ring's (spin
        or futex) after one non-blocking look at the sockets, so a ZeroMQ-only sender is seen
        within one wait (timeout_ms)."""
        if self._i < self._n:
            return True
        ring = self.ring
        on_ring = ring is not None and not ring.writer_closed
        if on_ring and self._reader.lag() > 0:
            return True
        events = dict(self.poller.poll(0 if on_ring else max(0, int(timeout_ms))))
        if len(events) > (self.pull in events):
            self.guard.service()
        if self.router in events:
            n = self.service()
            if n:
                log.info("signal channel %s: answered %d HELLO(s) with %s", self.data_ep, n,
                         self._ready_tag.decode())
        if self.pull in events:
            return True
        if on_ring:
            return self._ring_wait(int(timeout_ms * 1_000_000))   # the kernel's wait, nogil
        return False

    def recv_raw(self) -> bytes | None:
        """The next signal's 80 bytes (ring first, then the PULL socket), without waiting; None
        if there is none. Not decoded: the gateway's risk kernel reads the raw record. A frame
        whose strategy id no accepted HELLO announced is refused here (counted, logged)."""
        while True:
            if self._i >= self._n and self._poll is not None:
                self._n = self._poll(self._slots)       # 0 when the ring has nothing new
                self._i = 0
            if self._i < self._n:
                off = self._i * self._stride + 8
                self._i += 1
                self.received_ring += 1
                buf = bytes(self._slot_mv[off:off + SIGNAL_SIZE])
            else:
                try:
                    buf = self.pull.recv(zmq.NOBLOCK, copy=True)
                except zmq.Again:
                    return None
            if self._admit(buf):
                return buf

    def warm(self) -> None:
        """Run the ring receive path dry (the gateway's idle loop): a poll that finds nothing
        new, and the copy out of a slot. A signal that lands meanwhile is kept for recv_raw."""
        if self._poll is not None and self._i >= self._n:
            self._n = self._poll(self._slots)
            self._i = 0
            bytes(self._slot_mv[8:8 + SIGNAL_SIZE])

    def ring_stats(self) -> dict:
        if self._reader is not None:
            self._ring_lost = self._reader.lost
        if self._ring_lost is None:
            return {}
        return {"ring_received": self.received_ring, "ring_lost": self._ring_lost}

    def recv(self, timeout: float | None = None) -> Signal | None:
        """The next signal within `timeout` seconds (None = wait), answering HELLOs meanwhile.
        Returns None on timeout. Malformed frames are counted and logged, never raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            buf = self.recv_raw()
            if buf is not None:
                try:
                    sig = decode(buf)
                except SignalFormatError as exc:
                    self.malformed += 1
                    log.warning("signal dropped: %s", exc)
                    continue
                self.received += 1
                return sig
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self.wait(100 if left is None else max(1, min(100, int(left * 1000))))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.ring_stats()               # keep the final counters
        self._reader = self._poll = None
        if self.ring is not None:
            self.ring.close()           # the owner: unlinks the segment
        if hasattr(self, "pull"):
            for sock in (self.pull, self.router):
                try:
                    sock.disable_monitor()
                except zmq.ZMQError:
                    pass
            if self.guard is not None:
                self.guard.close()
            self.pull.close()
            self.router.close()
            if self._own_ctx:
                self.ctx.term()
        self._lock.release()            # the sockets' and token's files, the lock, the dir

    def __enter__(self) -> "SignalReceiver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
