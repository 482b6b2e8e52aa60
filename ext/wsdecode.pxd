# Table of contents of ext/wsdecode.pyx — WebSocket frame decoder + Binance hot-field extractor.
# Pure-Python twin: pipeline/venues/binance/wsdecode_py.py (same classes, methods and results).
from libc.stdint cimport int64_t, uint8_t, uint64_t
from pipeline._ext.records cimport TickRecord
from pipeline._ext.symstate cimport SymbolState

# ---------------------------------------------------------------- FRAME DECODER (per connection)
cdef class WsDecoder:
    cdef readonly SymbolState state
    cdef readonly int venue
    cdef readonly Py_ssize_t max_message
    cdef readonly bint hot
    cdef bytearray store                     # fixed size, never resized (views stay valid)
    cdef unsigned char *base
    cdef Py_ssize_t cap, pos, end
    cdef int64_t skip
    cdef readonly int64_t local_ts
    cdef object frag                         # bytearray while a fragmented message is assembled
    cdef bint frag_discard
    cdef int frag_opcode
    cdef readonly bint failed
    cdef readonly int event, reason
    cdef readonly bytes message
    cdef readonly str error
    cdef public bint recording               # keep text messages as `<local_ts> <raw>` lines
    cdef bytearray rec
    cdef readonly int64_t unrecordable
    # counters
    cdef readonly int64_t frames, messages, bytes, records, hot_messages, deferred
    cdef readonly int64_t duplicates, oversized, protocol_errors, pings, pongs, closes
    # JSON field spans of the message being extracted (single-letter keys)
    cdef Py_ssize_t fs[128]
    cdef Py_ssize_t fe[128]
    cdef uint8_t touched[128]
    cdef int ntouched

    cdef int _protocol(self, str why)
    cdef void _make_room(self, Py_ssize_t k)
    cdef bytes _slice(self, Py_ssize_t s, Py_ssize_t e)
    cdef void _record(self, bytes payload)
    cdef Py_ssize_t _payload(self, const unsigned char *b, Py_ssize_t i, Py_ssize_t end) noexcept
    cdef Py_ssize_t _extract(self, const unsigned char *b, Py_ssize_t s, Py_ssize_t e,
                             TickRecord *out, Py_ssize_t n, Py_ssize_t cap) noexcept
    cdef Py_ssize_t _fields(self, const unsigned char *b, TickRecord *out, Py_ssize_t n,
                            Py_ssize_t cap) noexcept
    cdef Py_ssize_t _levels(self, const unsigned char *b, int key, int kind, int side,
                            TickRecord *out, Py_ssize_t n, Py_ssize_t cap, int sym,
                            int64_t exch, int64_t u) noexcept
