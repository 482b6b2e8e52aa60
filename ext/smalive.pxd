# Table of contents of ext/smalive.pyx — the live SMA crossover's per-batch kernel (the strategy
# process's hot path for the demo strategy). Pure-Python twin: the Python path of
# pipeline/strategy/sma.py (SmaCrossover.on_ticks → on_trades → SmaCore.update → target), which
# tests/parity/test_sma_parity.py compares against this kernel record by record.
from libc.stdint cimport int64_t, uint32_t
from pipeline._ext.records cimport TickRecord, SignalRecord
from pipeline._ext.ring cimport RingCore

cdef extern from *:
    ctypedef long long i128 "__int128"      # exact window arithmetic (Python ints in the twin)

cdef class SmaLive:
    # parameters
    cdef readonly int64_t fast, slow
    cdef readonly double price_increment, qty
    cdef readonly uint32_t symbol, strategy_id
    cdef readonly int venue
    cdef readonly bint allow_short
    cdef readonly int64_t ttl_ns
    # SmaCore state: a ring of the last `slow` prices (integer units) and two window sums
    cdef int64_t *buf
    cdef readonly int64_t count
    cdef i128 sf, ss
    cdef readonly int trend
    # Strategy state
    cdef public int position            # intended position in units of qty: -1, 0, 1
                                        # (the backtester resyncs it from fills)
    cdef readonly bint suspended
    cdef readonly int64_t gaps, stales, bad_prices
    # emitting straight into a signal ring (process() with `ring`): the sender's numbering
    cdef RingCore ring
    cdef int64_t epoch
    cdef readonly int64_t seq            # the last signal number used

    cdef void _reset(self) noexcept nogil
    cdef int _update(self, int64_t q) noexcept nogil
    cdef int _trade(self, const TickRecord *r, SignalRecord *out) noexcept nogil
