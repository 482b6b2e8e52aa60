# Table of contents of ext/matching.pyx — the event backtester's matching core (the simulated
# venue's books and resting orders; pipeline/backtest/exchange.py drives it and keeps the
# account, events and risk). Pure-Python twin: pipeline/backtest/matching_py.py (same class,
# same methods, same results; tests/parity/test_matching_parity.py runs both on the same inputs,
# method by method and through whole EventEngine runs). The model is stated in exchange.py.
from libc.stdint cimport int8_t, int64_t, uint8_t, uint32_t
from libcpp.map cimport map as cmap
from libcpp.vector cimport vector

# ---------------------------------------------------------------- STATE
cdef struct Rest:           # one resting order
    int64_t handle          # the Exchange's key for it (add's return value)
    uint32_t symbol
    int side                # +1 buy / -1 sell
    double price
    double qty
    double filled
    double queue            # quantity ahead of it at its price (INFINITY = unknown)
    bint bookq              # its instrument has book records (queue updates from them)

cdef class Book:            # one instrument's book, advanced lazily to a record index
    cdef object idx_arr     # keeps idx's buffer alive
    cdef const int64_t[::1] idx     # record indices of its BID/ASK/BOOK_* records
    cdef Py_ssize_t pos             # next entry of idx to apply
    cdef cmap[double, double] bids  # BOOK_BID levels (price → qty)
    cdef cmap[double, double] asks  # BOOK_ASK levels
    cdef double bb, bbq, ba, baq    # best bid / ask from BID / ASK records
    cdef bint depth                 # BOOK_* records seen

    cdef void advance(self, const uint8_t[:] kind, const double[:] price,
                      const double[:] qty, int64_t upto) noexcept
    cdef double best(self, int side) noexcept
    cdef double level_qty(self, int side, double price) noexcept

cdef class Matcher:
    # the run's record columns (strided views of the TICK_DTYPE array: no copies)
    cdef const uint8_t[:] kind
    cdef const uint32_t[:] sym
    cdef const double[:] price
    cdef const double[:] qty
    cdef const int8_t[:] aside
    cdef Py_ssize_t n
    cdef dict books                 # symbol → Book
    cdef vector[Rest] rest          # resting orders, in arrival order
    cdef int64_t next_handle

    cdef Book _book(self, uint32_t symbol)
    # the first record in [a, b) that could touch a resting order (b if none)
    cdef Py_ssize_t _next(self, Py_ssize_t a, Py_ssize_t b, bint fills_only) noexcept
    # record k against every resting order of its instrument; fills appended to `fills` as
    # (handle, qty, done); done orders removed. Returns whether anything filled.
    cdef bint _touch(self, Py_ssize_t k, list fills) except -1

cdef class Timeline:
    # the run's record times (mono_ts), checked non-decreasing
    cdef object arr
    cdef const int64_t[::1] t
    cdef readonly Py_ssize_t n
    # the first record i >= lo with t[i] >= x (n if none): a gallop from lo
    cdef Py_ssize_t _first_ge(self, int64_t x, Py_ssize_t lo) noexcept
