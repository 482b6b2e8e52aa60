# cython: language_level=3
# distutils: libraries = z
"""The gateway's binary write-ahead journal, written from compiled code.

`JournalWriter(buf, next_slot, next_seq)` writes fixed 256-byte records (pipeline/records.py
JOURNAL_*) into `buf`, a writable mapping of the whole journal file (file header first). A record
is built in its slot with seq = 0, its crc32 is computed over the span with crc = seq = 0, the crc
is stored, then the seq last: a slot whose seq is 0 was never completed (the end, or a torn last
record). Nothing here allocates, takes the GIL on the hot path (`put_order`), or touches the file
descriptor: growing and remapping the file, the fsync policy and reading belong to
pipeline/gateway/binjournal.py. The pure-Python twin is pipeline/gateway/journal_py.py;
tests/parity/test_journal_parity.py checks byte-identical files.
"""
cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE, PyBUF_SIMPLE
from libc.math cimport NAN
from libc.string cimport memcpy, memset
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.errno cimport errno
from posix.mman cimport msync, MS_SYNC

import os

from pipeline._ext.records cimport (JournalHead, JournalOrder, JOURNAL_RECORD_SIZE,
                                    JOURNAL_PAYLOAD_OFFSET, JOURNAL_KIND_ORDER, JOURNAL_KIND_TEXT)

cdef extern from *:
    """
    #include <stdint.h>
    static inline void pl_journal_store_seq(uint64_t *p, uint64_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);    /* after every other byte of the record */
    }
    static inline void pl_journal_touch(char *p) {
        volatile char *v = (volatile char *)p;     /* the same byte back: nothing changes */
        *v = *v;
    }
    """
    void pl_journal_store_seq(uint64_t *p, uint64_t v) nogil
    void pl_journal_touch(char *p) nogil

DEF REC = 256
DEF FIRST_PAYLOAD = 216      # payload bytes in a record's first slot
DEF MAX_CID = 40
DEF MAX_SYMBOL = 24
DEF PAGE = 4096


cdef inline void _seal(char *slot, Py_ssize_t span) noexcept nogil:
    """crc over the span (crc and seq are 0 here), store it, then the seq is stored by the caller."""
    cdef JournalHead *h = <JournalHead *>slot
    h.crc = <uint32_t>crc32(0, <const unsigned char *>slot, <unsigned int>(span * REC))


cdef class JournalWriter:
    def __cinit__(self):
        self._attached = False
        self.base = NULL
        self.nslots = 0

    def __init__(self, buf, Py_ssize_t next_slot=0, uint64_t next_seq=1):
        if next_seq < 1:
            raise ValueError("next_seq starts at 1")
        self.attach(buf, next_slot)
        self.next_seq = next_seq
        self.synced_slot = next_slot
        self.records = 0

    def attach(self, buf, Py_ssize_t next_slot):
        """Write into `buf` (the whole file mapped: header + slots) from slot `next_slot`."""
        self.detach()
        PyObject_GetBuffer(buf, &self._view, PyBUF_WRITABLE | PyBUF_SIMPLE)
        if self._view.len < 2 * REC or self._view.len % REC:
            PyBuffer_Release(&self._view)
            raise ValueError(f"journal buffer must be a multiple of {REC} bytes >= {2 * REC}, "
                             f"got {self._view.len}")
        n = self._view.len // REC - 1
        if next_slot < 0 or next_slot > n:
            PyBuffer_Release(&self._view)
            raise ValueError(f"next_slot {next_slot} outside 0..{n}")
        self._attached = True
        self._owner = buf
        self.base = <char *>self._view.buf
        self.nslots = n
        self.next_slot = next_slot
        if self.synced_slot > next_slot:
            self.synced_slot = next_slot

    def detach(self):
        """Release the buffer (before the owner remaps the file). Idempotent."""
        if self._attached:
            PyBuffer_Release(&self._view)
            self._attached = False
            self._owner = None
            self.base = NULL
            self.nslots = 0

    def __dealloc__(self):
        if self._attached:
            PyBuffer_Release(&self._view)

    @property
    def capacity(self):
        """Record slots in the attached buffer."""
        return self.nslots

    # ------------------------------------------------------------------ hot path (nogil)
    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int put_order(self, JournalOrder *rec) noexcept nogil:
        cdef char *slot
        cdef JournalOrder *dst
        if self.base == NULL or self.next_slot >= self.nslots:
            return 1
        slot = self.base + REC * (1 + self.next_slot)
        memcpy(slot, rec, REC)
        dst = <JournalOrder *>slot
        dst.head.seq = 0
        dst.head.kind = JOURNAL_KIND_ORDER
        dst.head.span = 1
        dst.head.length = REC - JOURNAL_PAYLOAD_OFFSET
        dst.head.crc = 0
        dst.head._hpad = 0
        _seal(slot, 1)
        pl_journal_store_seq(&dst.head.seq, self.next_seq)
        self.next_seq += 1
        self.next_slot += 1
        self.records += 1
        return 0

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int put_text(self, int64_t t, int64_t m, const char *data, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t span = 1
        cdef char *slot
        cdef JournalHead *h
        if n > FIRST_PAYLOAD:
            span = 1 + (n - FIRST_PAYLOAD + REC - 1) // REC
        if span > 65535:
            return 2
        if self.base == NULL or self.next_slot + span > self.nslots:
            return 1
        slot = self.base + REC * (1 + self.next_slot)
        memset(slot, 0, span * REC)
        memcpy(slot + JOURNAL_PAYLOAD_OFFSET, data, n)
        h = <JournalHead *>slot
        h.t = t
        h.m = m
        h.kind = JOURNAL_KIND_TEXT
        h.span = <uint16_t>span
        h.length = <uint32_t>n
        _seal(slot, span)
        pl_journal_store_seq(&h.seq, self.next_seq)
        self.next_seq += 1
        self.next_slot += span
        self.records += 1
        return 0

    cdef int sync_c(self) noexcept nogil:
        """msync(MS_SYNC) the pages written since the last sync. 0, or errno-style -1."""
        cdef Py_ssize_t lo, hi
        cdef Py_ssize_t upto = self.next_slot     # read once: the loop may write on meanwhile
        if self.base == NULL or self.synced_slot >= upto:
            return 0
        lo = (REC * (1 + self.synced_slot)) // PAGE * PAGE
        hi = REC * (1 + upto)
        if msync(self.base + lo, hi - lo, MS_SYNC) != 0:
            return -1
        self.synced_slot = upto
        return 0

    def prefault(self, Py_ssize_t slots=16):
        """Make the pages of the next `slots` free slots writable now, off the order path: one
        byte of each page rewritten with its own value (no byte of the file changes). A page of
        a MAP_SHARED file mapping is write-protected again after each msync (and is unallocated
        before its first write): the next store into it faults into the filesystem
        (page_mkwrite, ~10-30 us on ext4), and that store was the order path's ORDER record
        between signed and on the wire. Returns the pages touched."""
        cdef Py_ssize_t end, off, hi, n = 0
        if self.base == NULL or slots <= 0:
            return 0
        end = self.next_slot + slots
        if end > self.nslots:
            end = self.nslots
        off = REC * (1 + self.next_slot)
        hi = REC * (1 + end)
        while off < hi:
            pl_journal_touch(self.base + off)
            n += 1
            off = (off // PAGE + 1) * PAGE
        return n

    # ------------------------------------------------------------------ Python entry points
    def write_order(self, *, int64_t t, int64_t m, bytes cid, bytes symbol, uint32_t symbol_id,
                    uint32_t strategy, int64_t epoch, int64_t sig_seq, int side, int order_type,
                    int tif, double qty, double price, int64_t trigger_mono,
                    int64_t created_mono, int64_t recv_mono, int64_t ts_ms, int attempt,
                    int via):
        """One ORDER record. True = written, False = no room (grow the file, attach, retry)."""
        cdef JournalOrder rec
        if len(cid) > MAX_CID or len(symbol) > MAX_SYMBOL:
            raise ValueError(f"client id <= {MAX_CID} and symbol <= {MAX_SYMBOL} bytes")
        if not (-128 <= side <= 127) or not (0 <= order_type <= 255 and 0 <= tif <= 255
                                             and 0 <= attempt <= 255 and 0 <= via <= 255):
            raise ValueError("side, order_type, tif, attempt or via out of range")
        memset(&rec, 0, REC)
        rec.head.t = t
        rec.head.m = m
        rec.epoch = epoch
        rec.sig_seq = sig_seq
        rec.qty = qty
        rec.price = price
        rec.trigger_mono = trigger_mono
        rec.created_mono = created_mono
        rec.recv_mono = recv_mono
        rec.ts_ms = ts_ms
        rec.symbol_id = symbol_id
        rec.strategy = strategy
        rec.side = <signed char>side
        rec.order_type = <uint8_t>order_type
        rec.tif = <uint8_t>tif
        rec.attempt = <uint8_t>attempt
        rec.via = <uint8_t>via
        rec.cid_len = <uint8_t>len(cid)
        rec.symbol_len = <uint8_t>len(symbol)
        memcpy(rec.cid, <const char *>cid, len(cid))
        memcpy(rec.symbol, <const char *>symbol, len(symbol))
        return self.put_order(&rec) == 0

    def write_text(self, int64_t t, int64_t m, const unsigned char[::1] payload):
        """One TEXT record (a JSON object's bytes). True = written, False = no room."""
        cdef Py_ssize_t n = payload.shape[0]
        cdef const char *p = <const char *>&payload[0] if n else <const char *>""
        r = self.put_text(t, m, p, n)
        if r == 2:
            raise ValueError(f"journal record of {n} bytes is too long")
        return r == 0

    def sync(self):
        """msync the pages written since the last sync (raises OSError on failure). The GIL is
        released meanwhile (the binary journal's sync thread; the loop writes on)."""
        cdef int r
        with nogil:
            r = self.sync_c()
        if r != 0:
            e = errno
            raise OSError(e, os.strerror(e))
