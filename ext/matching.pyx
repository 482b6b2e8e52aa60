# distutils: language = c++
# cython: language_level=3
"""The event backtester's matching core, compiled: books and resting orders of the simulated
venue (ext/matching.pxd is the table of contents; pipeline/backtest/matching_py.py is the twin
and documents the methods; pipeline/backtest/exchange.py states the model and drives it)."""
cimport cython
from cython.operator cimport dereference as deref, preincrement as inc
from libc.math cimport INFINITY, NAN, isnan
from libc.stdint cimport int8_t, int64_t, uint8_t, uint32_t
from libcpp.map cimport map as cmap

import numpy as np

from pipeline._ext.records cimport (KIND_TRADE, KIND_AGG_TRADE, KIND_BID, KIND_ASK,
                                    KIND_BOOK_BID, KIND_BOOK_ASK, KIND_BOOK_CLEAR)

BOOK_KINDS = (KIND_BID, KIND_ASK, KIND_BOOK_BID, KIND_BOOK_ASK, KIND_BOOK_CLEAR)


cdef class Book:
    def __cinit__(self, idx):
        self.idx_arr = np.ascontiguousarray(idx, dtype=np.int64)
        self.idx = self.idx_arr
        self.pos = 0
        self.bb = NAN
        self.ba = NAN
        self.bbq = 0.0
        self.baq = 0.0
        self.depth = False

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef void advance(self, const uint8_t[:] kind, const double[:] price,
                      const double[:] qty, int64_t upto) noexcept:
        cdef Py_ssize_t lo = self.pos, hi = self.idx.shape[0], mid, i
        cdef int64_t j
        cdef uint8_t k
        cdef double p, q
        while lo < hi:                       # first entry >= upto
            mid = (lo + hi) >> 1
            if self.idx[mid] < upto:
                lo = mid + 1
            else:
                hi = mid
        for i in range(self.pos, lo):
            j = self.idx[i]
            k = kind[j]
            p = price[j]
            q = qty[j]
            if k == KIND_BOOK_BID or k == KIND_BOOK_ASK:
                self.depth = True
                if isnan(p):
                    continue                 # no level at NaN (the twin skips it too)
                if k == KIND_BOOK_BID:
                    if q > 0:
                        self.bids[p] = q
                    else:
                        self.bids.erase(p)
                else:
                    if q > 0:
                        self.asks[p] = q
                    else:
                        self.asks.erase(p)
            elif k == KIND_BID:
                self.bb = p
                self.bbq = q
            elif k == KIND_ASK:
                self.ba = p
                self.baq = q
            elif k == KIND_BOOK_CLEAR:
                self.bids.clear()
                self.asks.clear()
        if lo > self.pos:
            self.pos = lo

    cdef double best(self, int side) noexcept:
        if self.depth:
            if side > 0 and not self.asks.empty():
                return deref(self.asks.begin()).first
            if side <= 0 and not self.bids.empty():
                return deref(self.bids.rbegin()).first
        return self.ba if side > 0 else self.bb

    cdef double level_qty(self, int side, double price) noexcept:
        cdef cmap[double, double].iterator it
        cdef double best, q
        if self.depth:
            if side > 0:
                it = self.bids.find(price)
                return 0.0 if it == self.bids.end() else deref(it).second
            it = self.asks.find(price)
            return 0.0 if it == self.asks.end() else deref(it).second
        if side > 0:
            best, q = self.bb, self.bbq
        else:
            best, q = self.ba, self.baq
        if isnan(best):
            return INFINITY
        if price == best:
            return q
        if (price > best) if side > 0 else (price < best):
            return 0.0
        return INFINITY


cdef inline bint _beyond(int side, double p, double limit) noexcept:
    return (p > limit) if side > 0 else (p < limit)


cdef class Matcher:
    def __init__(self, kind, symbol, price, qty, aside):
        self.kind = kind
        self.sym = symbol
        self.price = price
        self.qty = qty
        self.aside = aside
        self.n = self.kind.shape[0]
        if not (self.sym.shape[0] == self.price.shape[0] == self.qty.shape[0]
                == self.aside.shape[0] == self.n):
            raise ValueError("record columns of different lengths")
        self.books = {}
        self.next_handle = 0

    # ------------------------------------------------------------------ books
    cdef Book _book(self, uint32_t symbol):
        b = self.books.get(symbol)
        if b is None:
            k = np.asarray(self.kind)
            m = (np.asarray(self.sym) == symbol) & np.isin(k, BOOK_KINDS)
            b = self.books[symbol] = Book(np.flatnonzero(m))
        return <Book>b

    def advance(self, uint32_t symbol, int64_t upto):
        self._book(symbol).advance(self.kind, self.price, self.qty, upto)

    def has_book(self, uint32_t symbol):
        return self._book(symbol).idx.shape[0] > 0

    def depth(self, uint32_t symbol):
        return bool(self._book(symbol).depth)

    def bid_ask(self, uint32_t symbol):
        cdef Book b = self._book(symbol)
        return b.bb, b.ba

    def best(self, uint32_t symbol, int side):
        return self._book(symbol).best(side)

    def level_qty(self, uint32_t symbol, int side, double price):
        return self._book(symbol).level_qty(side, price)

    def walk(self, uint32_t symbol, int side, double qty, double limit=NAN):
        """(filled qty, notional) taking liquidity up to `limit` (NaN = none)."""
        cdef Book b = self._book(symbol)
        cdef double got = 0.0, notional = 0.0, last = NAN, p, take, shown
        cdef bint lim = not isnan(limit)
        cdef cmap[double, double].iterator it
        cdef cmap[double, double].reverse_iterator rit
        if b.depth:
            if side > 0:
                it = b.asks.begin()
                while it != b.asks.end():
                    p = deref(it).first
                    if lim and p > limit:
                        break
                    take = qty - got
                    if deref(it).second < take:
                        take = deref(it).second
                    got += take
                    notional += take * p
                    last = p
                    if got >= qty:
                        return got, notional
                    inc(it)
            else:
                rit = b.bids.rbegin()
                while rit != b.bids.rend():
                    p = deref(rit).first
                    if lim and p < limit:
                        break
                    take = qty - got
                    if deref(rit).second < take:
                        take = deref(rit).second
                    got += take
                    notional += take * p
                    last = p
                    if got >= qty:
                        return got, notional
                    inc(rit)
            if not lim and got < qty and not isnan(last):
                notional += (qty - got) * last
                got = qty
            return got, notional
        if side > 0:
            p, shown = b.ba, b.baq
        else:
            p, shown = b.bb, b.bbq
        if isnan(p) or (lim and _beyond(side, p, limit)):
            return 0.0, 0.0
        if lim and shown > 0:
            if shown < qty:
                qty = shown
        return qty, qty * p

    # ------------------------------------------------------------------ resting orders
    def add(self, uint32_t symbol, int side, double price, double qty, double filled,
            double queue):
        cdef Rest r
        self.next_handle += 1
        r.handle = self.next_handle
        r.symbol = symbol
        r.side = side
        r.price = price
        r.qty = qty
        r.filled = filled
        r.queue = queue
        r.bookq = self._book(symbol).idx.shape[0] > 0
        self.rest.push_back(r)
        return self.next_handle

    def remove(self, int64_t handle):
        cdef Py_ssize_t i
        for i in range(<Py_ssize_t>self.rest.size()):
            if self.rest[i].handle == handle:
                self.rest.erase(self.rest.begin() + i)
                return

    def __len__(self):
        return self.rest.size()

    def next_candidate(self, Py_ssize_t a, Py_ssize_t b, bint fills_only=True):
        """The first record in [a, b) that could touch a resting order (b if none)."""
        return self._next(a, b, fills_only)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef Py_ssize_t _next(self, Py_ssize_t a, Py_ssize_t b, bint fills_only) noexcept:
        cdef Py_ssize_t k, i, nr = self.rest.size()
        cdef uint8_t kd
        cdef uint32_t s
        cdef double p
        cdef int8_t ag
        cdef bint trade
        cdef Rest *w
        if nr == 0:
            return b
        if b > self.n:
            b = self.n
        for k in range(a, b):
            kd = self.kind[k]
            s = self.sym[k]
            p = self.price[k]
            ag = self.aside[k]
            trade = kd == KIND_TRADE or kd == KIND_AGG_TRADE
            for i in range(nr):
                w = &self.rest[i]
                if s != w.symbol:
                    continue
                if trade:
                    if w.side > 0:
                        if p < w.price or (p == w.price and ag == -1):
                            return k
                    elif p > w.price or (p == w.price and ag == 1):
                        return k
                elif not fills_only and w.bookq and p == w.price:
                    return k
        return b

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef bint _touch(self, Py_ssize_t k, list fills) except -1:
        cdef uint8_t kd = self.kind[k]
        cdef uint32_t s = self.sym[k]
        cdef double p = self.price[k], q = self.qty[k], got, left, rem, nq
        cdef int ag = self.aside[k]
        cdef bint trade = kd == KIND_TRADE or kd == KIND_AGG_TRADE, own, fin, any_done = False
        cdef bint filled = False
        cdef Py_ssize_t i, nr = self.rest.size(), j
        cdef Rest *w
        for i in range(nr):
            w = &self.rest[i]
            if w.symbol != s:
                continue
            got = 0.0
            if trade:
                if (p < w.price) if w.side > 0 else (p > w.price):
                    got = w.qty - w.filled
                elif p == w.price and ag == -w.side and w.queue < INFINITY:
                    left = q - w.queue
                    nq = w.queue - q
                    w.queue = nq if nq > 0.0 else 0.0
                    if left > 0:
                        rem = w.qty - w.filled
                        got = rem if rem < left else left
            elif p == w.price:
                if w.side > 0:
                    own = kd == KIND_BOOK_BID or kd == KIND_BID
                else:
                    own = kd == KIND_BOOK_ASK or kd == KIND_ASK
                if own and q < w.queue:
                    w.queue = q
            if got > 0:
                w.filled += got
                fin = w.qty - w.filled <= 1e-12 * w.qty
                fills.append((w.handle, got, fin))
                filled = True
                if fin:
                    w.handle = -w.handle - 1       # marked; removed below
                    any_done = True
        if any_done:
            j = 0
            for i in range(nr):
                if self.rest[i].handle >= 0:
                    self.rest[j] = self.rest[i]
                    j += 1
            self.rest.resize(j)
        return filled

    def touch(self, Py_ssize_t k):
        """Record k against every resting order of its instrument: [(handle, qty, done)]."""
        fills = []
        self._touch(k, fills)
        return fills

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def scan(self, Py_ssize_t a, Py_ssize_t b):
        """Records [a, b) against the resting orders, in order, up to the first that fills:
        (k, fills) or (b, None)."""
        cdef Py_ssize_t k
        cdef list fills
        if b > self.n:
            b = self.n
        k = a
        while k < b and self.rest.size():
            k = self._next(k, b, False)
            if k >= b:
                break
            fills = []
            if self._touch(k, fills):
                return k, fills
            k += 1
        return b, None


cdef class Timeline:
    """The run's record times (mono_ts, non-decreasing) and where the engine's batches end."""

    def __init__(self, t):
        cdef Py_ssize_t i
        self.arr = np.ascontiguousarray(t, dtype=np.int64)
        self.t = self.arr
        self.n = self.t.shape[0]
        for i in range(1, self.n):
            if self.t[i] < self.t[i - 1]:
                raise ValueError(f"records are not in time order: mono_ts decreases at "
                                 f"record {i} ({self.t[i - 1]} -> {self.t[i]})")

    def __len__(self):
        return self.n

    def at(self, Py_ssize_t i):
        return self.t[i]

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef Py_ssize_t _first_ge(self, int64_t x, Py_ssize_t lo) noexcept:
        cdef Py_ssize_t n = self.n, hi, step = 1, mid
        if lo < 0:
            lo = 0
        if lo >= n or self.t[lo] >= x:
            return lo if lo < n else n
        hi = lo + 1                  # gallop: t[lo] < x; find hi with t[hi] >= x (or n)
        while hi < n and self.t[hi] < x:
            lo = hi
            step <<= 1
            hi = lo + step
        if hi > n:
            hi = n
        lo += 1                      # t[lo - 1] < x; the answer is in [lo, hi]
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.t[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def first_ge(self, int64_t x, Py_ssize_t lo=0):
        """The first record i >= lo with time >= x (n if none)."""
        return self._first_ge(x, lo)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def batch_end(self, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t arr, Matcher m,
                  int64_t back_ns, int64_t due):
        """Where the engine's batch [pos, end) ends (see the twin's doc)."""
        cdef Py_ssize_t k, cand, a
        if arr >= 0 or m.rest.size():
            a = arr if arr >= 0 else end
            k = a if a < end else end
            cand = m._next(pos, k, True) if m.rest.size() else end
            if cand < k:
                k = cand
            if k < end:
                k = self._first_ge(self.t[k] + back_ns, pos)
                end = k if k < end else end
                if end < pos + 1:
                    end = pos + 1
        if due <= self.t[end - 1]:
            k = self._first_ge(due, pos)
            end = k if k < end else end
            if end < pos + 1:
                end = pos + 1
        return end
