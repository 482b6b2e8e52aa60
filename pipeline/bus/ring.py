"""The tick bus: a single-writer, many-reader broadcast ring of TICK_DTYPE records in shared memory.
The same ring carries signals from a strategy to the gateway (`SignalRing`, SIGNAL_SLOT_DTYPE
records: the hot-path alternative to the ZeroMQ frame, see pipeline/bus/signals.py).

    ring = TickRing.create("pipeline-ticks", capacity=1 << 16)     # the owner (launcher)
    w = TickRing.attach("pipeline-ticks").writer()                  # the collector
    w.publish(Kind.TRADE, venue=..., symbol=..., price=..., qty=...)
    r = TickRing.attach("pipeline-ticks").reader(wait="blocking")   # a strategy
    while r.wait(timeout=1.0):
        batch = r.poll()            # numpy copy of every new record, GAP first if any were lost

The writer never waits for a reader. A reader that falls more than `capacity` behind is lapped: it
receives a GAP record (id = records lost, exactly), its `lost` counter grows by the same amount, and
it skips to the newest record (acting on current data, not on a ring of backlog); a tick reader
that lost records also bumps the header's resync request, which the collector answers by resyncing
every book (`resync_requests`, `request_resync()`). `heartbeat_age_ns()` tells a reader how long
ago the writer last beat: a strategy suspends itself when it exceeds its feed_stale_ms. The kernels live in ext/ring.pyx; `backend="python"`
selects the pure-Python twin (pipeline/bus/ring_py.py) with identical behaviour.

Segment lifecycle: the owner creates and finally unlinks (context manager or close()). Segments
are POSIX shared memory (/dev/shm/<name>, what multiprocessing.shared_memory opens) mapped without
any resource tracker (gh-82300; see pipeline/bus/shm.py), so a reader that exits cannot unlink the
writer's segment. Pages are reserved at creation (posix_fallocate), so
a /dev/shm without room fails then with RingSpaceError instead of SIGBUS mid-session. A segment
left by a dead owner is detected and replaced by the next create.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Literal

import numpy as np
import psutil

from pipeline import _native
from pipeline.bus import segments, shm
from pipeline.bus.shm import SHM_DIR
from pipeline.records import (RING_HEADER_DTYPE, RING_MAGIC, RING_VERSION, SEQ_WRITING,
                              SIGNAL_SLOT_DTYPE, TICK_DTYPE)

log = logging.getLogger(__name__)

HEADER_SIZE = RING_HEADER_DTYPE.itemsize
Backend = Literal["cython", "python"]
WaitName = Literal["busy_spin", "yielding", "sleeping", "blocking"]

# What each wait strategy costs (measured by scripts/bench_bus.py on the 2-core dev box).
WAIT_COSTS = {
    "busy_spin": "100% of one core at all times; wake-up ~0.1-0.5 us. Needs a core of its own.",
    "yielding": "100% of a core when alone (sched_yield loop) but gives way to other runnable "
                "threads; wake-up ~1-5 us.",
    "sleeping": "near 0% idle; spins briefly, then sleeps 1 us doubling to max_sleep (100 us): "
                "wake-up up to ~max_sleep + timer slack (~50-150 us).",
    "blocking": "0% idle (futex on the header; the writer wakes only when a reader is parked); "
                "wake-up ~5-50 us (scheduler).",
}


class RingError(RuntimeError):
    """A tick ring cannot be created, attached or used as asked."""


class RingExistsError(RingError):
    """A live owner already holds a segment of that name."""


class RingSpaceError(RingError, shm.SegmentSpaceError):
    """/dev/shm has no room for the segment."""


class RingFormatError(RingError):
    """The segment is not a tick ring of this version."""


def _backend(name: Backend):
    if name == "cython":
        return _native.load("ring")
    if name == "python":
        from pipeline.bus import ring_py
        return ring_py
    raise ValueError(f"unknown ring backend {name!r} (cython or python)")


def segment_size(capacity: int, dtype: np.dtype = TICK_DTYPE) -> int:
    return HEADER_SIZE + capacity * dtype.itemsize


def segment_path(name: str) -> str:
    return shm.segment_path(name)


def inspect(name: str) -> dict | None:
    """The header of segment `name` as a dict (None if there is no such segment)."""
    try:
        seg = shm.open_segment(name, create=False)
    except FileNotFoundError:
        return None
    try:
        if seg.size < HEADER_SIZE:
            return {"valid": False, "size": seg.size}
        h = np.frombuffer(seg.buf, dtype=RING_HEADER_DTYPE, count=1)[0]
        info = {k: int(h[k]) for k in ("magic", "version", "record_size", "capacity", "owner_pid",
                                       "writer_pid", "epoch_ns", "cursor", "writer_closed",
                                       "tag")}
        info["valid"] = info["magic"] == RING_MAGIC
        info["size"] = seg.size
        info["owner_alive"] = shm.pid_alive(info["owner_pid"], info["epoch_ns"])
        del h
        return info
    finally:
        seg.close()


unlink = shm.unlink

# Rings this process writes to through an open RingWriter: a second writer in the same process
# (two senders on one signal ring) is refused like one in another process.
_LIVE_WRITERS: set[str] = set()


class Ring:
    """A mapped ring of `RECORD_DTYPE` records: the owner's handle (create) or an attachment
    (attach). Use a subclass: TickRing (the tick bus) or SignalRing (strategy → gateway)."""

    RECORD_DTYPE: np.dtype = TICK_DTYPE
    RECORD_NAME = "TICK_DTYPE"

    def __init__(self, seg: shm.Segment, owner: bool, backend: Backend):
        self._shm = seg
        self.owner = owner
        self.backend = backend
        self._mod = _backend(backend)
        self.core = self._mod.RingCore(seg.buf)
        self.name = seg.name
        self.capacity = int(self.core.capacity)
        self.dtype = self.RECORD_DTYPE
        self._header = np.frombuffer(seg.buf, dtype=RING_HEADER_DTYPE, count=1)
        self._closed = False
        self._writer: RingWriter | None = None

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def create(cls, name: str, capacity: int, *, backend: Backend = "cython",
               replace_stale: bool = True) -> "Ring":
        """Create segment `name` with `capacity` records (a power of two) and own it."""
        if capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two >= 2, got {capacity}")
        _backend(backend)                       # fail early (and clearly) if not built
        dtype = cls.RECORD_DTYPE
        size = segment_size(capacity, dtype)
        try:
            shm.check_free_space(name, size)
        except shm.SegmentSpaceError as exc:
            raise RingSpaceError(f"ring {exc}") from None
        try:
            seg = shm.open_segment(name, create=True, size=size)
        except FileExistsError:
            info = inspect(name)
            if info is not None and info.get("valid") and info["owner_alive"]:
                raise RingExistsError(
                    f"ring {name!r} is in use: its owner pid {info['owner_pid']} is alive") from None
            if not replace_stale:
                raise RingExistsError(f"a stale segment {name!r} exists (owner gone)") from None
            log.warning("replacing stale segment %r left by dead owner (header: %s)", name, info)
            shm.unlink(name)
            seg = shm.open_segment(name, create=True, size=size)
        try:
            shm.reserve(seg, size)                  # every page now, not SIGBUS later
        except shm.SegmentSpaceError as exc:
            raise RingSpaceError(f"ring {exc}") from None
        h = np.frombuffer(seg.buf, dtype=RING_HEADER_DTYPE, count=1)
        h["version"] = RING_VERSION
        h["record_size"] = dtype.itemsize
        h["capacity"] = capacity
        h["owner_pid"] = os.getpid()
        h["epoch_ns"] = time.time_ns()
        h["created_mono"] = time.perf_counter_ns()
        h["tag"] = segments.creator_tag()         # whose run this is (pipeline/bus/segments.py)
        h["cursor"] = 0
        recs = np.frombuffer(seg.buf, dtype=dtype, count=capacity, offset=HEADER_SIZE)
        recs["seq"] = SEQ_WRITING                # touches every page; no slot matches a sequence
        h["magic"] = RING_MAGIC                  # last: a segment with magic is fully initialised
        del h, recs
        return cls(seg, owner=True, backend=backend)

    @classmethod
    def attach(cls, name: str, *, backend: Backend = "cython", timeout: float = 0.0) -> "Ring":
        """Attach to an existing ring, waiting up to `timeout` seconds for it to appear."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                seg = shm.open_segment(name, create=False)
                if seg.size >= HEADER_SIZE and int(
                        np.frombuffer(seg.buf, dtype="<u8", count=1)[0]) == RING_MAGIC:
                    break
                seg.close()
                err: RingError = RingFormatError(f"segment {name!r} is not an initialised ring")
            except FileNotFoundError:
                err = RingError(f"no ring named {name!r} in {SHM_DIR}")
            if time.monotonic() >= deadline:
                raise err
            time.sleep(0.01)
        h = np.frombuffer(seg.buf, dtype=RING_HEADER_DTYPE, count=1)[0]
        problems = []
        if int(h["version"]) != RING_VERSION:
            problems.append(f"version {int(h['version'])} != {RING_VERSION}")
        if int(h["record_size"]) != cls.RECORD_DTYPE.itemsize:
            problems.append(f"record size {int(h['record_size'])} != {cls.RECORD_DTYPE.itemsize} "
                            f"(not a {cls.__name__})")
        if seg.size < segment_size(int(h["capacity"]), cls.RECORD_DTYPE):
            problems.append("segment smaller than its capacity")
        del h
        if problems:
            seg.close()
            raise RingFormatError(f"ring {name!r}: " + "; ".join(problems))
        return cls(seg, owner=False, backend=backend)

    def close(self) -> None:
        """Unmap; the owner also unlinks the segment. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        self.core.release()
        self._header = None
        try:
            self._shm.close()
        except BufferError:
            # A reader still holds a view (e.g. an array from poll_into's buffer): the mapping
            # lives until that view is dropped; the unlink below still removes the name.
            log.debug("ring %r: buffer still exported at close", self.name)
        if self.owner:
            try:
                shm.unlink_segment(self._shm)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "Ring":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ state
    def _h(self, field: str) -> int:
        return int(self._header[0][field])

    @property
    def cursor(self) -> int:
        return int(self.core.cursor)

    @property
    def owner_pid(self) -> int:
        return self._h("owner_pid")

    @property
    def writer_pid(self) -> int:
        return self._h("writer_pid")

    @property
    def epoch_ns(self) -> int:
        return self._h("epoch_ns")

    def heartbeat_age_ns(self) -> int | None:
        """Nanoseconds since the writer's last heartbeat (None if it never beat)."""
        hb = int(self.core.heartbeat_mono)
        return None if hb == 0 else time.perf_counter_ns() - hb

    @property
    def resync_requests(self) -> int:
        """Times readers asked the writer for a book resync (each loss on a tick ring)."""
        return int(self.core.resync_requests)

    def request_resync(self) -> None:
        self.core.request_resync()

    @property
    def writer_closed(self) -> bool:
        return bool(self.core.writer_closed)

    # ------------------------------------------------------------------ roles
    def writer(self) -> "RingWriter":
        """Become the ring's one writer. Fails if another live process is the writer."""
        me = os.getpid()
        pid = self.writer_pid
        if pid == me and self.name in _LIVE_WRITERS and not self.writer_closed:
            raise RingError(f"ring {self.name!r} already has a live writer (in this process)")
        if pid not in (0, me):
            started = self._h("writer_start_ns")
            if shm.pid_alive(pid, started) and not self.writer_closed:
                raise RingError(f"ring {self.name!r} already has a live writer (pid {pid})")
        if not self.core.claim_writer(pid, me):       # another process won the race
            raise RingError(f"ring {self.name!r}: another process became the writer "
                            f"(pid {self.writer_pid})")
        self._header["writer_start_ns"] = int(psutil.Process(me).create_time() * 1e9)
        self._header["writer_closed"] = 0
        self.core.sync_writer()
        self._writer = RingWriter(self)
        _LIVE_WRITERS.add(self.name)
        return self._writer

    def reader(self, wait: WaitName = "sleeping", max_batch: int = 4096,
               start: Literal["next", "oldest"] | int = "next",
               max_sleep_ns: int = 100_000) -> "RingReader":
        """A reader starting at the next record to be published ("next"), the oldest still in the
        ring ("oldest") or a given sequence."""
        if start == "next":
            seq = self.cursor
        elif start == "oldest":
            seq = max(0, self.cursor - self.capacity)
        elif isinstance(start, int):
            seq = start
        else:
            raise ValueError(f"start must be 'next', 'oldest' or a sequence, got {start!r}")
        return RingReader(self, wait, max_batch, seq, max_sleep_ns)


class RingWriter:
    """The one writer of a ring. `publish` is the kernel's own method (no wrapper frame)."""

    def __init__(self, ring: Ring):
        self.ring = ring
        core = ring.core
        self.publish = core.publish          # (kind, venue, symbol, side, flags, exch_ts,
        self.heartbeat = core.heartbeat      #  local_ts, price, qty, id) -> seq
        self.publish_bytes = core.publish_bytes   # (body) -> seq; the rest of the slot zeroed
        self._publish_array = core.publish_array
        self._closed = False

    def publish_array(self, arr: np.ndarray, stamp: bool = True) -> int:
        """Publish every record of an array of the ring's records in order; returns the last
        sequence."""
        if arr.dtype != self.ring.dtype:
            raise TypeError(f"publish_array needs {self.ring.RECORD_NAME} records, "
                            f"got {arr.dtype}")
        return self._publish_array(np.ascontiguousarray(arr), stamp)

    @property
    def next_seq(self) -> int:
        return int(self.ring.core.cursor)

    def close(self) -> None:
        """Mark the writer closed (readers' waits return). Idempotent."""
        if not self._closed and not self.ring._closed:  # noqa: SLF001
            self.ring.core.close_writer()
        if not self._closed:
            _LIVE_WRITERS.discard(self.ring.name)
        self._closed = True


class RingReader:
    """A reader's cursor into a ring, with its wait strategy and loss accounting."""

    def __init__(self, ring: Ring, wait: WaitName, max_batch: int, start_seq: int,
                 max_sleep_ns: int):
        if wait not in WAIT_COSTS:
            raise ValueError(f"unknown wait strategy {wait!r}; one of {', '.join(WAIT_COSTS)}")
        if max_batch < 2:
            raise ValueError("max_batch must be >= 2 (a tick ring keeps one slot for a GAP record)")
        self.ring = ring
        self.wait_name = wait
        self.max_batch = max_batch
        self.core = ring._mod.ReaderCore(ring.core, start_seq, ring._mod.WAIT_KINDS[wait],  # noqa: SLF001
                                         max_sleep_ns)
        self.poll_into = self.core.poll_into

    def poll(self, max_batch: int | None = None) -> np.ndarray:
        """Every new record (up to max_batch; on a tick ring a GAP record first if any were lost) as
        a new array; empty when there is nothing new."""
        m = self.max_batch if max_batch is None else max_batch
        avail = self.core.available()
        dtype = self.ring.dtype
        if avail <= 0:
            return np.empty(0, dtype=dtype)
        out = np.empty(min(avail + 1, m), dtype=dtype)
        n = self.core.poll_into(out)
        return out[:n]

    def wait(self, timeout: float | None = None) -> bool:
        """Wait with this reader's strategy until new data (True), or the writer closed or the
        timeout passed (False). Waits in slices of 100 ms so signals are handled promptly."""
        deadline = None if timeout is None else time.perf_counter_ns() + int(timeout * 1e9)
        while True:
            slice_ns = 100_000_000
            if deadline is not None:
                slice_ns = min(slice_ns, deadline - time.perf_counter_ns())
                if slice_ns <= 0:
                    return self.core.available() > 0
            if self.core.wait(slice_ns):
                return True
            if self.ring.writer_closed:
                return self.core.available() > 0

    def read(self, timeout: float | None = None) -> np.ndarray:
        """wait() then poll()."""
        self.wait(timeout)
        return self.poll()

    # counters
    @property
    def next_seq(self) -> int:
        return int(self.core.next_seq)

    @property
    def received(self) -> int:
        return int(self.core.received)

    @property
    def lost(self) -> int:
        return int(self.core.lost)

    @property
    def gaps(self) -> int:
        return int(self.core.gaps)

    @property
    def overwritten(self) -> int:
        return int(self.core.overwritten)

    def lag(self) -> int:
        """Records published and not yet taken by this reader."""
        return int(self.core.available())

    def stats(self) -> dict:
        """Counters; `lag` is None once the ring is closed (the counters stay readable)."""
        return {"received": self.received, "lost": self.lost, "gaps": self.gaps,
                "overwritten": self.overwritten, "next_seq": self.next_seq,
                "lag": None if self.ring._closed else self.lag()}  # noqa: SLF001


class TickRing(Ring):
    """The tick bus: TICK_DTYPE records, mono_ts stamped at publish, GAP records when lapped."""

    RECORD_DTYPE = TICK_DTYPE


class SignalRing(Ring):
    """Strategy → gateway signals: SIGNAL_SLOT_DTYPE records (seq stamp + the 80 signal bytes).
    The gateway creates (owns) it and reads; one strategy process attaches and writes with
    `RingWriter.publish_bytes(encode(signal))`. A lapped reader skips to the newest signal, counted
    in `lost` (and seen by the gateway as a gap in the signals' own sequence)."""

    RECORD_DTYPE = SIGNAL_SLOT_DTYPE
    RECORD_NAME = "SIGNAL_SLOT_DTYPE"
