"""Pure-Python twin of ext/ring.pyx: same classes, same methods, same results.

Readable reference for the protocol (see the docstring of ext/ring.pyx) and the backend the parity
tests compare against. Loads and stores are plain numpy reads and writes of aligned 8-byte words,
which x86-64 performs atomically and in program order (TSO); the Cython kernel states the orderings
explicitly with C11 atomics. The blocking wait uses the same shared futex through ctypes, so a
Python reader and a Cython writer (or the reverse) interoperate on one segment. Its `waiters`
counter is updated without atomic read-modify-write: use the twin's blocking wait from one
reader process at a time (the Cython kernel has no such limit).
"""
from __future__ import annotations

import ctypes
import os
import time

import numpy as np

from pipeline.records import (FLAG_SYNTHETIC, RING_HEADER_DTYPE, RING_RECORD_DTYPES, SEQ_WRITING,
                              TICK_DTYPE, Kind)

WAIT_BUSY_SPIN, WAIT_YIELDING, WAIT_SLEEPING, WAIT_BLOCKING = 0, 1, 2, 3
WAIT_KINDS = {"busy_spin": WAIT_BUSY_SPIN, "yielding": WAIT_YIELDING,
              "sleeping": WAIT_SLEEPING, "blocking": WAIT_BLOCKING}

HEADER_SIZE = RING_HEADER_DTYPE.itemsize
_OFF = {name: RING_HEADER_DTYPE.fields[name][1] for name in RING_HEADER_DTYPE.names}
# int64 / uint32 word indexes of the header fields
_CURSOR = _OFF["cursor"] // 8
_HEARTBEAT = _OFF["heartbeat_mono"] // 8
_CLOSED = _OFF["writer_closed"] // 8
_RESYNC = _OFF["resync_req"] // 8
_CAPACITY = _OFF["capacity"] // 8
_WRITER_PID = _OFF["writer_pid"] // 8
_RECORD_SIZE = _OFF["record_size"] // 4
_FUTEX = _OFF["futex_word"] // 4
_WAITERS = _OFF["waiters"] // 4

_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(os.uname().machine)
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1
_libc = ctypes.CDLL(None, use_errno=True)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def mono_ns() -> int:
    return time.perf_counter_ns()


class RingCore:
    """The mapped segment (header + records) and the writer's operations."""

    def __init__(self, buf):
        mv = memoryview(buf)
        if mv.nbytes < HEADER_SIZE:
            raise ValueError("segment smaller than the ring header")
        self._h64 = np.frombuffer(mv, dtype="<i8", count=HEADER_SIZE // 8)
        self._h32 = np.frombuffer(mv, dtype="<u4", count=HEADER_SIZE // 4)
        self.stride = int(self._h32[_RECORD_SIZE])
        if self.stride < 8 or self.stride % 8:
            raise ValueError(f"bad record size in ring header: {self.stride}")
        # the twin views records through their dtype; the kernel needs only the stride
        self.dtype = RING_RECORD_DTYPES.get(self.stride) or np.dtype(
            [("seq", "<i8"), ("body", "u1", (self.stride - 8,))])
        self.ticks = self.dtype == TICK_DTYPE
        self.capacity = int(self._h64[_CAPACITY])
        cap = self.capacity
        if cap <= 0 or cap & (cap - 1):
            raise ValueError(f"bad capacity in ring header: {cap}")
        if mv.nbytes < HEADER_SIZE + cap * self.stride:
            raise ValueError("segment smaller than header + capacity records")
        self.mask = cap - 1
        self.recs = np.frombuffer(mv, dtype=self.dtype, count=cap, offset=HEADER_SIZE)
        self._bytes = np.frombuffer(mv, dtype=np.uint8, count=cap * self.stride,
                                    offset=HEADER_SIZE).reshape(cap, self.stride)
        self.seqs = self.recs["seq"]
        self._futex_addr = self._h32.__array_interface__["data"][0] + _FUTEX * 4
        self.wseq = int(self._h64[_CURSOR])

    def release(self) -> None:
        self._h64 = self._h32 = self.recs = self.seqs = self._bytes = None

    def _check_open(self) -> None:
        if self._h64 is None:
            raise ValueError("the ring was closed")

    @property
    def cursor(self) -> int:
        self._check_open()
        return int(self._h64[_CURSOR])

    # ------------------------------------------------------------------ writer
    def sync_writer(self) -> None:
        self._check_open()
        self.wseq = int(self._h64[_CURSOR])

    def claim_writer(self, expected_pid: int, pid: int) -> bool:
        """Compare-and-swap of the writer pid. Not atomic across processes in this twin (the
        kernel's is): the twin serves single-writer parity tests."""
        self._check_open()
        if int(self._h64[_WRITER_PID]) != expected_pid:
            return False
        self._h64[_WRITER_PID] = pid
        return True

    def publish(self, kind, venue=0, symbol=0, side=0, flags=0, exch_ts=0, local_ts=0,
                price=0.0, qty=0.0, id=0) -> int:
        if self.recs is None:
            raise ValueError("the ring was closed")
        if not self.ticks:
            raise TypeError("publish() writes tick records; this ring carries other records")
        s = self.wseq
        slot = s & self.mask
        self.seqs[slot] = SEQ_WRITING                 # mark first
        self.recs[slot] = (SEQ_WRITING, symbol, venue, flags, kind, side, exch_ts, local_ts,
                           time.perf_counter_ns(), price, qty, id)
        self.seqs[slot] = s                           # stamp last
        self._commit(s + 1)
        return s

    def _commit(self, next_seq: int) -> None:
        self.wseq = next_seq
        self._h64[_CURSOR] = next_seq
        if self._h32[_WAITERS]:
            self._h32[_FUTEX] += np.uint32(1)
            _futex_wake(self._futex_addr)

    def publish_bytes(self, body) -> int:
        if self.recs is None:
            raise ValueError("the ring was closed")
        body = bytes(body)
        n = len(body)
        if n > self.stride - 8:
            raise ValueError(f"record body of {n} bytes does not fit a {self.stride}-byte slot")
        s = self.wseq
        slot = s & self.mask
        self.seqs[slot] = SEQ_WRITING                 # mark first
        row = self._bytes[slot]
        row[8:8 + n] = np.frombuffer(body, dtype=np.uint8)
        row[8 + n:] = 0
        self.seqs[slot] = s                           # stamp last
        self._commit(s + 1)
        return s

    def publish_array(self, arr: np.ndarray, stamp: bool = True) -> int:
        if self.recs is None:
            raise ValueError("the ring was closed")
        if arr.ndim != 1 or arr.dtype.itemsize != self.stride or not arr.flags.c_contiguous:
            raise ValueError(f"expected a 1-D C-contiguous array of {self.stride}-byte ring "
                             f"records")
        n = len(arr)
        if n == 0:
            return -1
        now = time.perf_counter_ns()
        s = self.wseq
        half = max(self.capacity >> 1, 1)
        for lo in range(0, n, half):                  # never rewrite a slot before publishing it
            hi = min(lo + half, n)
            seqs = np.arange(s + lo, s + hi, dtype=np.int64)
            slots = seqs & self.mask
            self.seqs[slots] = SEQ_WRITING
            body = arr[lo:hi].view(self.dtype).copy()
            body["seq"] = SEQ_WRITING
            if stamp and self.ticks:
                body["mono_ts"] = now
            self.recs[slots] = body
            self.seqs[slots] = seqs
            self._commit(s + hi)
        return s + n - 1

    def heartbeat(self) -> None:
        self._check_open()
        self._h64[_HEARTBEAT] = time.perf_counter_ns()

    def close_writer(self) -> None:
        self._check_open()
        self._h64[_CLOSED] = 1
        self._h32[_FUTEX] += np.uint32(1)
        _futex_wake(self._futex_addr)

    @property
    def writer_closed(self) -> bool:
        self._check_open()
        return bool(self._h64[_CLOSED])

    @property
    def resync_requests(self) -> int:
        self._check_open()
        return int(self._h64[_RESYNC])

    def request_resync(self) -> None:
        """Not atomic across processes in this twin (the kernel's fetch-add is)."""
        self._check_open()
        self._h64[_RESYNC] += 1

    @property
    def heartbeat_mono(self) -> int:
        self._check_open()
        return int(self._h64[_HEARTBEAT])

    @property
    def waiters(self) -> int:
        self._check_open()
        return int(self._h32[_WAITERS])


class ReaderCore:
    """One reader's position and counters over a RingCore."""

    def __init__(self, ring: RingCore, start_seq: int, wait_kind: int = WAIT_SLEEPING,
                 max_sleep_ns: int = 100_000):
        if wait_kind not in (WAIT_BUSY_SPIN, WAIT_YIELDING, WAIT_SLEEPING, WAIT_BLOCKING):
            raise ValueError(f"unknown wait strategy {wait_kind}")
        if ring.recs is None:
            raise ValueError("ring core was released")
        self.ring = ring
        self.next_seq = int(start_seq)
        self.wait_kind = wait_kind
        self.max_sleep_ns = max_sleep_ns
        self.received = self.lost = self.gaps = self.overwritten = 0
        self._nudged = 0                  # nudge() calls not yet taken by a wait

    def _check_open(self) -> None:
        if self.ring.recs is None:
            raise ValueError("the ring was closed")

    def poll_into(self, out: np.ndarray) -> int:
        self._check_open()
        ring = self.ring
        if out.ndim != 1 or out.dtype.itemsize != ring.stride or not out.flags.c_contiguous:
            raise ValueError(f"expected a 1-D C-contiguous array of {ring.stride}-byte ring "
                             f"records")
        out = out.view(ring.dtype)
        keep = 1 if ring.ticks else 0                 # tick rings keep one slot for a GAP record
        max_n = len(out)
        cursor = ring.cursor
        first_lost = nxt = self.next_seq
        avail = cursor - nxt
        if avail <= 0 or max_n < 1 + keep:
            return 0
        lost = 0
        if avail > ring.capacity:                     # lapped: skip to the newest record
            lost = avail - 1
            nxt = cursor - 1
            avail = 1
        n = min(avail, max_n - keep)
        expect = np.arange(nxt, nxt + n, dtype=np.int64)
        slots = expect & ring.mask
        out[:n] = ring.recs[slots]                    # copy ...
        restamp = ring.seqs[slots]                    # ... then re-read the stamps
        bad_idx = np.flatnonzero((restamp != expect) | (out["seq"][:n] != expect))
        bad = int(bad_idx[-1]) if len(bad_idx) else -1
        if bad >= 0:
            lost += bad + 1
            self.overwritten += bad + 1
        valid = n - (bad + 1)
        self.next_seq = nxt + n
        self.received += valid
        if lost == 0:
            return n
        self.lost += lost
        self.gaps += 1
        if not ring.ticks:                            # no GAP record type: the valid ones only
            out[:valid] = out[bad + 1:n].copy()
            return valid
        ring._h64[_RESYNC] += 1                       # books built from this ring are now wrong
        out[1:valid + 1] = out[bad + 1:n].copy()
        out[0] = np.zeros(1, dtype=TICK_DTYPE)[0]
        out[0]["seq"] = first_lost
        out[0]["kind"] = Kind.GAP
        out[0]["flags"] = FLAG_SYNTHETIC
        out[0]["id"] = lost
        out[0]["mono_ts"] = time.perf_counter_ns()
        return valid + 1

    def available(self) -> int:
        self._check_open()
        return self.ring.cursor - self.next_seq

    def seek(self, seq: int) -> None:
        self.next_seq = int(seq)

    def wait(self, timeout_ns: int) -> bool:
        self._check_open()
        ring = self.ring
        nxt = self.next_seq
        h64, h32 = ring._h64, ring._h32
        if h64[_CURSOR] > nxt:
            return True
        deadline = time.perf_counter_ns() + timeout_ns
        sleep_ns = 1000
        while True:
            if self.wait_kind == WAIT_BLOCKING and _SYS_FUTEX is not None:
                word = int(h32[_FUTEX])
                if h64[_CURSOR] > nxt:
                    return True
                h32[_WAITERS] += np.uint32(1)
                if h64[_CURSOR] > nxt or h64[_CLOSED] or self._nudged:
                    h32[_WAITERS] -= np.uint32(1)
                    self._take_nudge()
                    return bool(h64[_CURSOR] > nxt)
                now = time.perf_counter_ns()
                if now < deadline:
                    _futex_wait(ring._futex_addr, word, deadline - now)
                h32[_WAITERS] -= np.uint32(1)
            else:
                for _ in range(64):
                    if h64[_CURSOR] > nxt:
                        return True
                if self._take_nudge():
                    return bool(h64[_CURSOR] > nxt)
                if self.wait_kind == WAIT_YIELDING:
                    os.sched_yield()
                elif self.wait_kind in (WAIT_SLEEPING, WAIT_BLOCKING):
                    time.sleep(sleep_ns / 1e9)
                    sleep_ns = min(sleep_ns * 2, self.max_sleep_ns)
            if h64[_CURSOR] > nxt:
                return True
            if self._take_nudge():
                return False
            if h64[_CLOSED] or time.perf_counter_ns() >= deadline:
                return False

    def _take_nudge(self) -> bool:
        n, self._nudged = self._nudged, 0
        return n != 0

    def nudge(self) -> None:
        """End this reader's wait now (or its next one), without a record (ring.pyx nudge)."""
        self._check_open()
        ring = self.ring
        self._nudged += 1
        if ring._h32[_WAITERS]:
            ring._h32[_FUTEX] += np.uint32(1)
            _futex_wake(ring._futex_addr)


def _futex_wait(addr: int, expected: int, timeout_ns: int) -> None:
    ts = _Timespec(timeout_ns // 1_000_000_000, timeout_ns % 1_000_000_000)
    _libc.syscall(_SYS_FUTEX, ctypes.c_void_p(addr), _FUTEX_WAIT, ctypes.c_uint32(expected),
                  ctypes.byref(ts), None, 0)


def _futex_wake(addr: int) -> None:
    if _SYS_FUTEX is not None:
        _libc.syscall(_SYS_FUTEX, ctypes.c_void_p(addr), _FUTEX_WAKE, 0x7FFFFFFF, None, None, 0)
