# Table of contents of ext/journal.pyx — the gateway's binary write-ahead journal writer.
# Pure-Python twin: pipeline/gateway/journal_py.py (same class, same methods, same bytes). The
# record layout is pipeline/records.py (JOURNAL_*), mirrored in ext/records.pxd; the file's
# lifecycle (create, preallocate, grow, map, fsync policy, read, export) is
# pipeline/gateway/binjournal.py.
from libc.stdint cimport int64_t, uint64_t
from pipeline._ext.records cimport JournalOrder

cdef extern from "zlib.h" nogil:
    unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int n)

cdef class JournalWriter:
    cdef object _owner            # the exporter of the mapped buffer (kept alive while attached)
    cdef Py_buffer _view
    cdef bint _attached
    cdef char *base               # the file's first byte (the file header's)
    cdef Py_ssize_t nslots        # record slots after the file header
    cdef readonly Py_ssize_t next_slot   # the next free slot (0 = the first after the header)
    cdef readonly uint64_t next_seq      # the next record's seq (from 1)
    cdef readonly Py_ssize_t synced_slot # slots before this one are synced to disk
    cdef readonly uint64_t records       # records written through this writer

    # the hot path: one ORDER record copied from `rec` (head.t / head.m set by the caller;
    # seq, span, length, crc filled here). 0 = written; 1 = no room (the owner grows the file).
    cdef int put_order(self, JournalOrder *rec) noexcept nogil
    cdef int put_text(self, int64_t t, int64_t m, const char *data, Py_ssize_t n) noexcept nogil
    cdef int sync_c(self) noexcept nogil
