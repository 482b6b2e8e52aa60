# distutils: language = c++
# cython: language_level=3
"""Per-symbol state shared by the frame decoders of one feed: the symbol table (open addressing,
FNV-1a), last ids per message kind (the duplicate filter) and the depth books of synced symbols as
C++ ordered maps (so the crossed-book check is two iterator dereferences).

Pure-Python twin: `SymbolState` in pipeline/venues/binance/wsdecode_py.py.
"""
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy, memset, memcmp
from libcpp.map cimport map as cmap
from cython.operator cimport dereference as deref, preincrement as inc

cdef enum:
    KIND_BOOK_BID = 5
    KIND_BOOK_ASK = 6


cdef inline uint64_t _hash(const unsigned char *p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = 1469598103934665603ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ p[i]) * 1099511628211ULL
    return h




cdef class SymbolState:
    """Per-symbol state shared by the decoders of one feed (see the twin)."""

    def __cinit__(self, dict symbols, int venue):
        cdef int64_t size = 16
        cdef int64_t h
        cdef bytes name
        self.venue = venue
        self.symbols = dict(symbols)
        self.n = max(self.symbols.values(), default=0) + 1
        while size < 4 * (len(self.symbols) + 1):
            size <<= 1
        self.tmask = size - 1
        self.table = <SymSlot *>PyMem_Malloc(size * sizeof(SymSlot))
        self.last = <int64_t *>PyMem_Malloc(3 * self.n * sizeof(int64_t))
        self.synced_ = <uint8_t *>PyMem_Malloc(self.n)
        self.last_u_ = <int64_t *>PyMem_Malloc(self.n * sizeof(int64_t))
        if not self.table or not self.last or not self.synced_ or not self.last_u_:
            raise MemoryError()
        memset(self.table, 0, size * sizeof(SymSlot))
        memset(self.synced_, 0, self.n)
        for h in range(3 * self.n):
            self.last[h] = -1
        for h in range(self.n):
            self.last_u_[h] = -1
        self.bids.resize(self.n)
        self.asks.resize(self.n)
        for name, sid in self.symbols.items():
            if not 0 < len(name) < 32:
                raise ValueError(f"symbol name {name!r}: 1..31 bytes")
            if not 0 <= sid < self.n:
                raise ValueError(f"bad symbol id {sid}")
            h = _hash(name, len(name)) & self.tmask
            while self.table[h].len:
                h = (h + 1) & self.tmask
            memcpy(self.table[h].name, <const char *>name, len(name))
            self.table[h].len = len(name)
            self.table[h].id = sid

    def __dealloc__(self):
        PyMem_Free(self.table)
        PyMem_Free(self.last)
        PyMem_Free(self.synced_)
        PyMem_Free(self.last_u_)

    cdef int _lookup(self, const unsigned char *p, Py_ssize_t n) noexcept nogil:
        cdef int64_t h
        if n <= 0 or n >= 32:
            return -1
        h = _hash(p, n) & self.tmask
        while self.table[h].len:
            if self.table[h].len == n and memcmp(self.table[h].name, p, n) == 0:
                return self.table[h].id
            h = (h + 1) & self.tmask
        return -1

    cdef bint _accept(self, int slot, int sym, int64_t id) noexcept nogil:
        cdef int64_t *l = &self.last[slot * self.n + sym]
        if id <= l[0]:
            return False
        l[0] = id
        return True

    cdef bint _crossed(self, int sym) noexcept nogil:
        if self.bids[sym].empty() or self.asks[sym].empty():
            return False
        return deref(self.bids[sym].rbegin()).first >= deref(self.asks[sym].begin()).first

    cdef void _set(self, int sym, int kind, double price, double qty) noexcept nogil:
        if kind == KIND_BOOK_BID:
            if qty > 0.0:
                self.bids[sym][price] = qty
            else:
                self.bids[sym].erase(price)
        else:
            if qty > 0.0:
                self.asks[sym][price] = qty
            else:
                self.asks[sym].erase(price)

    def lookup(self, bytes name):
        return self._lookup(name, len(name))

    def accept(self, int slot, int sym, int64_t id):
        """Duplicate filter: True (and remember) iff id is newer than the last one seen."""
        self._check(sym)
        return self._accept(slot, sym, id)

    def last_id(self, int slot, int sym):
        self._check(sym)
        return self.last[slot * self.n + sym]

    def depth_synced(self, int sym):
        self._check(sym)
        return bool(self.synced_[sym])

    def depth_last(self, int sym):
        self._check(sym)
        return self.last_u_[sym]

    def unsync(self, int sym):
        self._check(sym)
        self.synced_[sym] = 0

    def _check(self, int sym):
        if not 0 <= sym < self.n:
            raise IndexError(f"symbol id {sym} out of range")

    def load_book(self, int sym, int64_t last_u, bids, asks):
        """Replace the book and mark it synced at last_u; returns crossed (then unsynced)."""
        self._check(sym)
        self.bids[sym].clear()
        self.asks[sym].clear()
        for p, q in bids:
            self._set(sym, KIND_BOOK_BID, p, q)
        for p, q in asks:
            self._set(sym, KIND_BOOK_ASK, p, q)
        self.last_u_[sym] = last_u
        c = self._crossed(sym)
        self.synced_[sym] = not c
        return c

    def apply_diff(self, int sym, bids, asks, int64_t last_u):
        """Apply levels to the book; returns crossed (then the book is unsynced)."""
        self._check(sym)
        for p, q in bids:
            self._set(sym, KIND_BOOK_BID, p, q)
        for p, q in asks:
            self._set(sym, KIND_BOOK_ASK, p, q)
        self.last_u_[sym] = last_u
        if self._crossed(sym):
            self.synced_[sym] = 0
            return True
        return False

    def top(self, int sym, int n):
        """The best n levels per side: bids descending, asks ascending."""
        self._check(sym)
        b, a = [], []
        cdef cmap[double, double].reverse_iterator rit = self.bids[sym].rbegin()
        while rit != self.bids[sym].rend() and len(b) < n:
            b.append((deref(rit).first, deref(rit).second))
            inc(rit)
        cdef cmap[double, double].iterator it = self.asks[sym].begin()
        while it != self.asks[sym].end() and len(a) < n:
            a.append((deref(it).first, deref(it).second))
            inc(it)
        return b, a


