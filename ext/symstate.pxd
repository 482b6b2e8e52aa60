# Table of contents of ext/symstate.pyx — per-symbol state shared by a feed's frame decoders.
# Pure-Python twin: SymbolState in pipeline/venues/binance/wsdecode_py.py.
from libc.stdint cimport int64_t, uint8_t
from libcpp.map cimport map as cmap
from libcpp.vector cimport vector

# ---------------------------------------------------------------- SYMBOL TABLE
cdef struct SymSlot:
    char name[32]
    int len             # 0 = empty slot
    int id

# ---------------------------------------------------------------- SHARED STATE (per feed)
cdef class SymbolState:
    cdef readonly int venue
    cdef readonly int n                      # symbol ids 0..n-1
    cdef dict symbols
    cdef SymSlot *table
    cdef int64_t tmask
    cdef int64_t *last                      # 3 * n: last trade id, agg id, bookTicker u
    cdef uint8_t *synced_                   # depth book in sync
    cdef int64_t *last_u_                   # depth: last applied final update id
    cdef vector[cmap[double, double]] bids  # ascending; best = rbegin
    cdef vector[cmap[double, double]] asks  # ascending; best = begin

    cdef int _lookup(self, const unsigned char *p, Py_ssize_t n) noexcept nogil
    cdef bint _accept(self, int slot, int sym, int64_t id) noexcept nogil
    cdef bint _crossed(self, int sym) noexcept nogil
    cdef void _set(self, int sym, int kind, double price, double qty) noexcept nogil

