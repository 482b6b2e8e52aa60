# Table of contents of ext/okxdecode.pyx — OKX `trades` push → TICK records, straight from the
# frame bytes. Pure-Python twin: pipeline/venues/okx/okxdecode_py.py (same class, same statuses, same
# records); tests/parity/test_okxdecode_parity.py checks they agree on every message.
from libc.stdint cimport int64_t, uint32_t
from pipeline._ext.records cimport TickRecord

# ---------------------------------------------------------------- STATUS CODES (per frame)
cdef enum:
    ST_OK = 0               # records written
    ST_NOT_TRADES = 1       # not a compact `trades` push: the caller routes it on the cool path
    ST_MALFORMED = 2        # trades prefix but broken structure (the cool path may still read it)
    ST_UNKNOWN_SYMBOL = 3
    ST_BAD_NUMBER = 4       # px / sz not a plain decimal string
    ST_BAD_INT = 5          # tradeId / ts not a decimal integer string in range
    ST_BAD_SIDE = 6
    ST_MISSING_FIELD = 7
    ST_OUT_FULL = 8         # no room left in `out`: decoding stopped before this frame
    ST_NOT_BYTES = 9
    N_STATUS = 10

cdef enum:
    MAX_SYMBOLS = 256
    MAX_INST_LEN = 32
    MAX_DEC_LEN = 40

# ---------------------------------------------------------------- SCANNING (nogil kernels)
cdef int parse_dec(const char *s, Py_ssize_t n, double *out) noexcept nogil
cdef int parse_uint(const char *s, Py_ssize_t n, int64_t *out) noexcept nogil

# ---------------------------------------------------------------- DECODER
cdef class TradeDecoder:
    cdef char names[MAX_SYMBOLS][MAX_INST_LEN]
    cdef int name_len[MAX_SYMBOLS]
    cdef uint32_t ids[MAX_SYMBOLS]
    cdef int n_symbols
    cdef int last_hit
    cdef readonly int venue
    cdef int64_t counts[N_STATUS]
    cdef readonly int64_t records

    cdef int _symbol(self, const char *s, Py_ssize_t n, uint32_t *sid) noexcept nogil
    cdef int _decode_one(self, const char *s, Py_ssize_t n, int64_t local_ts, TickRecord *out,
                         int64_t room, int64_t *written) noexcept nogil
