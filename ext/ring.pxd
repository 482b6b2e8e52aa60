# Table of contents of ext/ring.pyx — the ring kernels (one writer, many readers, broadcast) for
# any record type that starts with its int64 seq stamp: tick records, signal slots.
# Pure-Python twin: pipeline/bus/ring_py.py (same classes, same methods, same results).
from libc.stdint cimport int64_t, uint32_t
from pipeline._ext.records cimport TickRecord, RingHeader

# ---------------------------------------------------------------- ATOMICS (ext/pl_atomic.h)
cdef extern from "pl_atomic.h" nogil:
    int64_t pl_load_acquire_i64(const int64_t *p)
    int64_t pl_load_relaxed_i64(const int64_t *p)
    int64_t pl_load_seqcst_i64(const int64_t *p)
    void pl_store_release_i64(int64_t *p, int64_t v)
    void pl_store_relaxed_i64(int64_t *p, int64_t v)
    void pl_store_seqcst_i64(int64_t *p, int64_t v)
    uint32_t pl_load_seqcst_u32(const uint32_t *p)
    uint32_t pl_load_acquire_u32(const uint32_t *p)
    uint32_t pl_fetch_add_u32(uint32_t *p, uint32_t v)
    uint32_t pl_fetch_sub_u32(uint32_t *p, uint32_t v)
    int64_t pl_fetch_add_i64(int64_t *p, int64_t v)
    void pl_fence_acquire()
    void pl_fence_release()
    void pl_cpu_relax()
    int64_t pl_mono_ns()
    int64_t pl_wall_ns()
    void pl_sleep_ns(int64_t ns)
    long pl_futex_wait(uint32_t *addr, uint32_t expected, int64_t timeout_ns)
    long pl_futex_wake_all(uint32_t *addr)
    int pl_sched_yield()

# ---------------------------------------------------------------- WAIT STRATEGIES
cdef enum:
    WAIT_BUSY_SPIN = 0   # spins on the cursor: lowest latency, burns its whole core
    WAIT_YIELDING = 1    # spins briefly then sched_yield(): low latency, core looks 100% busy
    WAIT_SLEEPING = 2    # spin, yield, then nanosleep back-off: ~50-100 us latency, little CPU
    WAIT_BLOCKING = 3    # futex on the header: no CPU while idle, wake-up ~5-50 us

# ---------------------------------------------------------------- RING (writer side)
cdef class RingCore:
    cdef object _mv                 # memoryview of the segment, kept alive while mapped
    cdef RingHeader *hdr
    cdef unsigned char *base        # first record slot
    cdef readonly int64_t stride    # record size in bytes (header.record_size)
    cdef readonly bint ticks        # records are TickRecords (mono_ts stamping, GAP records)
    cdef readonly int64_t capacity
    cdef int64_t mask
    cdef int64_t wseq               # writer's next sequence (writer-local copy of the cursor)

    cdef inline unsigned char *_slot(self, int64_t seq) noexcept nogil:
        return self.base + (seq & self.mask) * self.stride

    cdef int _check_open(self) except -1
    cdef int64_t _publish_one(self, int kind, int venue, uint32_t symbol, int side, int flags,
                              int64_t exch_ts, int64_t local_ts, double price, double qty,
                              int64_t id) noexcept nogil
    cdef void _commit(self, int64_t next_seq) noexcept nogil
    cdef int64_t _publish_body(self, const unsigned char *body, Py_ssize_t n) noexcept nogil

# ---------------------------------------------------------------- READER
cdef class ReaderCore:
    cdef RingCore ring                  # keeps the mapping alive
    cdef RingHeader *hdr
    cdef unsigned char *base
    cdef int64_t stride
    cdef bint ticks
    cdef int64_t capacity, mask
    cdef readonly int64_t next_seq      # next sequence this reader expects
    cdef readonly int64_t received      # records delivered (GAP records not counted)
    cdef readonly int64_t lost          # records this reader never saw, exactly
    cdef readonly int64_t gaps          # GAP records delivered
    cdef readonly int64_t overwritten   # part of `lost`: slots overwritten while being copied
    cdef readonly int wait_kind
    cdef readonly int64_t max_sleep_ns  # cap of the sleeping back-off
    cdef uint32_t nudged                # nudge() calls not yet taken by a wait (other threads)

    cdef int64_t _poll(self, unsigned char *out, int64_t max_n) noexcept nogil
    cdef bint _wait(self, int64_t timeout_ns) noexcept nogil
    cdef bint _take_nudge(self) noexcept nogil
    cdef int _check_open(self) except -1
