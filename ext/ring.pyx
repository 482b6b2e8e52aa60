# cython: language_level=3
"""Ring kernels: publish with release stores, read with acquire loads, verify per-slot stamps.

One kernel for every record type whose first 8 bytes are its int64 sequence stamp: 64-byte tick
records (the tick bus) and 128-byte signal slots (the strategy → gateway signal ring). The stride
comes from the header's record_size. Tick rings also get mono_ts stamped at publish and a GAP
record leading a lapped batch, and a reader that lost records asks the writer for a book resync
(header.resync_req); other record types report loss through the counters only.

Protocol (Disruptor vocabulary: sequences grow forever, slot = seq & mask):

  writer, per record s:
    1. store slot.seq = SEQ_WRITING (relaxed), then a RELEASE fence: the mark is visible before
       any body byte changes, so a reader that later sees the old stamp knows it read old bytes.
    2. write the body.
    3. store slot.seq = s with RELEASE: the body is visible before the stamp.
    4. store header.cursor = s + 1 with SEQ_CST: publishes everything before it (release) and is
       ordered before the load of `waiters` (Dekker pairing with blocking readers).
    5. if waiters: bump futex_word and FUTEX_WAKE.

  reader, for [next, cursor):
    1. load cursor with ACQUIRE: every record below it was fully written (its stamps happened before).
    2. copy the records (memcpy), then an ACQUIRE fence: the copy completes before step 3's loads.
    3. re-load each slot's stamp: a record is valid iff the stamp and the copied seq both equal its
       sequence. Overwrites hit the oldest slots first, so invalid records form a prefix: they are
       counted as lost, a GAP record leads the batch, and the reader goes on with the valid ones.
  a lapped reader (cursor - next > capacity) skips to the NEWEST record: everything before
  cursor - 1 is lost (counted, GAP id = the count), so it acts on current data, not on up to a
  ring of backlog; on a tick ring it also bumps header.resync_req (SEQ_CST fetch-add), which the
  collector watches to resync every book.

The pure-Python twin is pipeline/bus/ring_py.py; tests/parity checks both give identical results.
"""
cimport cython
cimport numpy as cnp
from libc.stdint cimport int64_t, uint32_t, uintptr_t
from libc.string cimport memcpy, memmove, memset
from libc.errno cimport errno, EINTR

cdef extern from *:
    bint __atomic_compare_exchange_n(int64_t *ptr, int64_t *expected, int64_t desired, bint weak,
                                     int success_memorder, int failure_memorder) nogil
    int __ATOMIC_SEQ_CST

from pipeline._ext.records cimport (TickRecord, RingHeader, SEQ_WRITING, KIND_GAP, FLAG_SYNTHETIC)

cnp.import_array()

DEF HEADER_SIZE = 256
DEF TICK_SIZE = 64


cdef inline unsigned char *_records_ptr(cnp.ndarray arr, int64_t stride, int64_t *n) except NULL:
    """Pointer to a C-contiguous array of this ring's records (dtype checked by the caller)."""
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr) or arr.itemsize != stride or arr.ndim != 1:
        raise ValueError(f"expected a 1-D C-contiguous array of {stride}-byte ring records")
    n[0] = arr.shape[0]
    return <unsigned char *>cnp.PyArray_DATA(arr)


cdef class RingCore:
    """The mapped segment (header + records) and the writer's operations."""

    def __cinit__(self, buf):
        cdef unsigned char[::1] mv = buf
        if mv.shape[0] < HEADER_SIZE:
            raise ValueError("segment smaller than the ring header")
        self._mv = mv
        self.hdr = <RingHeader *>&mv[0]
        self.base = &mv[0] + HEADER_SIZE
        self.stride = self.hdr.record_size
        if self.stride < 8 or self.stride % 8:
            raise ValueError(f"bad record size in ring header: {self.stride}")
        self.ticks = self.stride == TICK_SIZE
        self.capacity = self.hdr.capacity
        if self.capacity <= 0 or (self.capacity & (self.capacity - 1)):
            raise ValueError(f"bad capacity in ring header: {self.capacity}")
        if mv.shape[0] < HEADER_SIZE + self.capacity * self.stride:
            raise ValueError("segment smaller than header + capacity records")
        self.mask = self.capacity - 1
        self.wseq = pl_load_acquire_i64(&self.hdr.cursor)

    def release(self):
        """Drop the buffer export so the SharedMemory can be closed. The core is unusable after."""
        self.hdr = NULL
        self.base = NULL
        self._mv = None

    cdef int _check_open(self) except -1:
        if self.hdr == NULL:                   # released: the mapping may be gone
            raise ValueError("the ring was closed")
        return 0

    @property
    def cursor(self):
        """Next sequence to be published (acquire load)."""
        self._check_open()
        return pl_load_acquire_i64(&self.hdr.cursor)

    # ------------------------------------------------------------------ writer
    def sync_writer(self):
        """Take the writer's next sequence from the header (a new writer resumes the sequence).
        `waiters` is left alone: readers may be parked already (resetting it would underflow
        their decrement and lose every later wake-up). A reader SIGKILLed while parked leaves it
        counted: the writer then makes one needless FUTEX_WAKE per publish until the ring is
        recreated — a cost, never a lost wake-up."""
        self._check_open()
        self.wseq = pl_load_acquire_i64(&self.hdr.cursor)

    def claim_writer(self, int64_t expected_pid, int64_t pid):
        """Compare-and-swap the header's writer pid: True if it was `expected_pid` and is now
        `pid` (two processes racing to become the writer: exactly one wins)."""
        self._check_open()
        return __atomic_compare_exchange_n(&self.hdr.writer_pid, &expected_pid, pid, False,
                                           __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int64_t _publish_one(self, int kind, int venue, uint32_t symbol, int side, int flags,
                              int64_t exch_ts, int64_t local_ts, double price, double qty,
                              int64_t id) noexcept nogil:
        cdef int64_t s = self.wseq
        cdef TickRecord *r = <TickRecord *>self._slot(s)
        pl_store_relaxed_i64(&r.seq, SEQ_WRITING)
        pl_fence_release()                      # WRITING mark before any body store
        r.symbol = symbol
        r.venue = <unsigned char>venue
        r.flags = <unsigned char>flags
        r.kind = <unsigned char>kind
        r.side = <signed char>side
        r.exch_ts = exch_ts
        r.local_ts = local_ts
        r.price = price
        r.qty = qty
        r.id = id
        r.mono_ts = pl_mono_ns()
        pl_store_release_i64(&r.seq, s)         # body before stamp
        self._commit(s + 1)
        return s

    cdef void _commit(self, int64_t next_seq) noexcept nogil:
        self.wseq = next_seq
        # SEQ_CST: a release for the records, and ordered before the waiters load below so that a
        # blocking reader either sees this cursor or is seen in `waiters` (never both missed).
        pl_store_seqcst_i64(&self.hdr.cursor, next_seq)
        if pl_load_seqcst_u32(&self.hdr.waiters) != 0:
            pl_fetch_add_u32(&self.hdr.futex_word, 1)
            pl_futex_wake_all(&self.hdr.futex_word)

    def publish(self, int kind, int venue=0, uint32_t symbol=0, int side=0, int flags=0,
                int64_t exch_ts=0, int64_t local_ts=0, double price=0.0, double qty=0.0,
                int64_t id=0):
        """Publish one tick record; returns its sequence. mono_ts is stamped here (CLOCK_MONOTONIC)."""
        if self.hdr == NULL:
            raise ValueError("the ring was closed")
        if not self.ticks:
            raise TypeError("publish() writes tick records; this ring carries other records")
        return self._publish_one(kind, venue, symbol, side, flags, exch_ts, local_ts, price, qty,
                                 id)

    def publish_bytes(self, const unsigned char[::1] body not None):
        """Publish one record whose body (everything after the seq stamp) is `body`, at most
        record_size - 8 bytes (the rest of the slot is zeroed); returns its sequence. The path of
        a signal ring: the 80 encoded signal bytes go in as they are, no numpy on the way."""
        cdef Py_ssize_t n = body.shape[0]
        cdef int64_t s
        if self.hdr == NULL:
            raise ValueError("the ring was closed")
        if n > self.stride - 8:
            raise ValueError(f"record body of {n} bytes does not fit a {self.stride}-byte slot")
        with nogil:
            s = self._publish_body(&body[0] if n else NULL, n)
        return s

    cdef int64_t _publish_body(self, const unsigned char *body, Py_ssize_t n) noexcept nogil:
        """publish_bytes for C callers (a compiled strategy emitting a signal): the caller checked
        that the ring is open and that n <= stride - 8."""
        cdef int64_t s = self.wseq
        cdef unsigned char *r = self._slot(s)
        pl_store_relaxed_i64(<int64_t *>r, SEQ_WRITING)
        pl_fence_release()                      # WRITING mark before any body store
        if n:
            memcpy(r + 8, body, n)
        memset(r + 8 + n, 0, self.stride - 8 - n)
        pl_store_release_i64(<int64_t *>r, s)   # body before stamp
        self._commit(s + 1)
        return s

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def publish_array(self, cnp.ndarray arr, bint stamp=True):
        """Publish every record of an array of this ring's records in order; returns the last
        sequence (or -1 for an empty array). `seq` is assigned here; on a tick ring `mono_ts` too
        unless stamp=False."""
        cdef int64_t n = 0, i, s
        cdef unsigned char *src = _records_ptr(arr, self.stride, &n) if self.hdr != NULL else NULL
        cdef unsigned char *r
        cdef int64_t now
        cdef bint stamp_mono = stamp and self.ticks
        if self.hdr == NULL:
            raise ValueError("the ring was closed")
        if n == 0:
            return -1
        with nogil:
            now = pl_mono_ns()
            s = self.wseq
            for i in range(n):
                r = self._slot(s + i)
                pl_store_relaxed_i64(<int64_t *>r, SEQ_WRITING)
                pl_fence_release()              # WRITING mark before any body store
                memcpy(r + 8, src + i * self.stride + 8, self.stride - 8)
                if stamp_mono:
                    (<TickRecord *>r).mono_ts = now
                pl_store_release_i64(<int64_t *>r, s + i)   # body before stamp
                # Publish in chunks of at most half the ring so readers see progress on huge
                # batches and a slot is never rewritten before its sequence was published.
                if ((i + 1) & ((self.capacity >> 1) - 1)) == 0 and self.capacity > 1:
                    self._commit(s + i + 1)
            self._commit(s + n)
        return s + n - 1

    def heartbeat(self):
        """Stamp the writer's heartbeat (CLOCK_MONOTONIC) in the header."""
        self._check_open()
        pl_store_release_i64(&self.hdr.heartbeat_mono, pl_mono_ns())

    def close_writer(self):
        """Mark the writer closed and wake every blocked reader."""
        self._check_open()
        pl_store_seqcst_i64(&self.hdr.writer_closed, 1)
        pl_fetch_add_u32(&self.hdr.futex_word, 1)
        pl_futex_wake_all(&self.hdr.futex_word)

    @property
    def writer_closed(self):
        self._check_open()
        return pl_load_acquire_i64(&self.hdr.writer_closed) != 0

    @property
    def resync_requests(self):
        """How many times readers asked for a book resync (lost records); the writer compares."""
        self._check_open()
        return pl_load_acquire_i64(&self.hdr.resync_req)

    def request_resync(self):
        """Ask the writer to resync every book (a consumer found its book invalid)."""
        self._check_open()
        pl_fetch_add_i64(&self.hdr.resync_req, 1)

    @property
    def heartbeat_mono(self):
        """The writer's last heartbeat (CLOCK_MONOTONIC ns; 0 = never)."""
        self._check_open()
        return pl_load_acquire_i64(&self.hdr.heartbeat_mono)

    @property
    def waiters(self):
        self._check_open()
        return pl_load_seqcst_u32(&self.hdr.waiters)


cdef class ReaderCore:
    """One reader's position and counters over a RingCore."""

    def __cinit__(self, RingCore ring, int64_t start_seq, int wait_kind=WAIT_SLEEPING,
                  int64_t max_sleep_ns=100_000):
        if wait_kind < WAIT_BUSY_SPIN or wait_kind > WAIT_BLOCKING:
            raise ValueError(f"unknown wait strategy {wait_kind}")
        if ring.hdr == NULL:
            raise ValueError("ring core was released")
        self.ring = ring
        self.hdr = ring.hdr
        self.base = ring.base
        self.stride = ring.stride
        self.ticks = ring.ticks
        self.capacity = ring.capacity
        self.mask = ring.mask
        self.next_seq = start_seq
        self.wait_kind = wait_kind
        self.max_sleep_ns = max_sleep_ns

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int64_t _poll(self, unsigned char *out, int64_t max_n) noexcept nogil:
        cdef int64_t cursor = pl_load_acquire_i64(&self.hdr.cursor)  # records < cursor are complete
        cdef int64_t first_lost = self.next_seq
        cdef int64_t nxt = self.next_seq
        cdef int64_t avail = cursor - nxt
        cdef int64_t lost = 0, n, start, first, i, bad = -1, valid
        cdef int64_t stride = self.stride
        cdef int64_t keep = 1 if self.ticks else 0   # tick rings keep one slot for a GAP record
        cdef TickRecord *g
        if avail <= 0 or max_n < 1 + keep:
            return 0
        if avail > self.capacity:                # lapped: skip to the newest record
            lost = avail - 1
            nxt = cursor - 1
            avail = 1
        n = avail if avail < max_n - keep else max_n - keep
        start = nxt & self.mask
        first = n if n < self.capacity - start else self.capacity - start
        memcpy(out, self.base + start * stride, first * stride)
        if n > first:
            memcpy(out + first * stride, self.base, (n - first) * stride)
        pl_fence_acquire()                       # copies complete before the stamps are re-read
        for i in range(n):
            if (pl_load_relaxed_i64(<int64_t *>self.ring._slot(nxt + i)) != nxt + i
                    or (<int64_t *>(out + i * stride))[0] != nxt + i):
                bad = i
        if bad >= 0:                             # overwritten while copying: a lost prefix
            lost += bad + 1
            self.overwritten += bad + 1
        valid = n - (bad + 1)
        self.next_seq = nxt + n
        self.received += valid
        if lost == 0:
            return n
        self.lost += lost
        self.gaps += 1
        if not self.ticks:                       # no GAP record type: the valid records only
            memmove(out, out + (bad + 1) * stride, valid * stride)
            return valid
        pl_fetch_add_i64(&self.hdr.resync_req, 1)   # books built from this ring are now wrong
        memmove(out + stride, out + (bad + 1) * stride, valid * stride)
        g = <TickRecord *>out
        memset(g, 0, TICK_SIZE)
        g.seq = first_lost
        g.kind = KIND_GAP
        g.flags = FLAG_SYNTHETIC
        g.id = lost
        g.mono_ts = pl_mono_ns()
        return valid + 1

    def poll_into(self, cnp.ndarray out):
        """Copy every new record into `out`; returns how many were written. Tick rings: up to
        len(out) - 1, plus a leading GAP record if records were lost. Other rings: up to len(out);
        lost records are only counted (`lost`, `gaps`)."""
        cdef int64_t cap = 0, n
        self._check_open()
        cdef unsigned char *dst = _records_ptr(out, self.stride, &cap)
        with nogil:
            n = self._poll(dst, cap)
        return n

    cdef int _check_open(self) except -1:
        if self.ring.hdr == NULL:              # the mapping is gone: never touch it
            raise ValueError("the ring was closed")
        return 0

    def available(self):
        """Records published that this reader has not taken yet (may exceed capacity if lapped)."""
        self._check_open()
        return pl_load_acquire_i64(&self.hdr.cursor) - self.next_seq

    def seek(self, int64_t seq):
        self.next_seq = seq

    cdef bint _wait(self, int64_t timeout_ns) noexcept nogil:
        cdef RingHeader *h = self.hdr
        cdef int64_t nxt = self.next_seq
        cdef int64_t deadline, now, sleep_ns = 1000
        cdef uint32_t word
        cdef int k
        if pl_load_acquire_i64(&h.cursor) > nxt:
            return True
        deadline = pl_mono_ns() + timeout_ns
        while True:
            if self.wait_kind == WAIT_BLOCKING:
                word = pl_load_acquire_u32(&h.futex_word)
                if pl_load_acquire_i64(&h.cursor) > nxt:
                    return True
                pl_fetch_add_u32(&h.waiters, 1)
                # SEQ_CST load after the SEQ_CST increment: pairs with the writer's cursor store
                # (and with nudge(): its increment, then its look at the waiters)
                if pl_load_seqcst_i64(&h.cursor) > nxt or pl_load_acquire_i64(&h.writer_closed) \
                        or pl_load_seqcst_u32(&self.nudged):
                    pl_fetch_sub_u32(&h.waiters, 1)
                    self._take_nudge()
                    return pl_load_acquire_i64(&h.cursor) > nxt
                now = pl_mono_ns()
                if now < deadline:
                    if pl_futex_wait(&h.futex_word, word, deadline - now) != 0 \
                            and errno == EINTR:
                        # a signal: back to Python, whose handler runs now (not at the deadline)
                        pl_fetch_sub_u32(&h.waiters, 1)
                        return pl_load_acquire_i64(&h.cursor) > nxt
                pl_fetch_sub_u32(&h.waiters, 1)
            else:
                for k in range(64):
                    if pl_load_acquire_i64(&h.cursor) > nxt:
                        return True
                    pl_cpu_relax()
                if self._take_nudge():
                    return pl_load_acquire_i64(&h.cursor) > nxt
                if self.wait_kind == WAIT_YIELDING:
                    pl_sched_yield()
                elif self.wait_kind == WAIT_SLEEPING:
                    pl_sleep_ns(sleep_ns)
                    sleep_ns = sleep_ns * 2 if sleep_ns * 2 < self.max_sleep_ns else self.max_sleep_ns
            if pl_load_acquire_i64(&h.cursor) > nxt:
                return True
            if self._take_nudge():
                return False
            if pl_load_acquire_i64(&h.writer_closed) or pl_mono_ns() >= deadline:
                return False

    cdef bint _take_nudge(self) noexcept nogil:
        cdef uint32_t n = pl_load_seqcst_u32(&self.nudged)
        if n:
            pl_fetch_sub_u32(&self.nudged, n)      # nudges that come meanwhile stay counted
        return n != 0

    def nudge(self):
        """End this reader's wait now (or its next one, if it is not waiting), without a record:
        wait() returns (False unless a record came). For another thread of the reader's process
        that has something for the waiting thread (the gateway's order wire and user stream:
        an answer or an execution report queued). Cheap when nobody waits: no system call."""
        self._check_open()
        cdef RingHeader *h = self.hdr
        with nogil:
            pl_fetch_add_u32(&self.nudged, 1)
            if pl_load_seqcst_u32(&h.waiters):
                pl_fetch_add_u32(&h.futex_word, 1)
                pl_futex_wake_all(&h.futex_word)

    def wait(self, int64_t timeout_ns):
        """Wait with this reader's strategy until a record past next_seq is published, the writer
        closes, nudge() is called, or timeout_ns passes. Returns True when data is available.
        Releases the GIL."""
        cdef bint ok
        self._check_open()
        with nogil:
            ok = self._wait(timeout_ns)
        return ok


def mono_ns():
    """CLOCK_MONOTONIC in ns, as the ring stamps it (equals time.perf_counter_ns() on Linux)."""
    return pl_mono_ns()


WAIT_KINDS = {"busy_spin": WAIT_BUSY_SPIN, "yielding": WAIT_YIELDING,
              "sleeping": WAIT_SLEEPING, "blocking": WAIT_BLOCKING}
