# cython: language_level=3
"""OKX `trades` push → TICK records, decoded in place from the frame bytes (no JSON objects).

The fast path accepts exactly the compact form OKX sends:

  {"arg":{"channel":"trades","instId":"<inst>"},"data":[{<member>,...},...]}

where each data item is a flat object whose members are "key":"string" or "key":scalar
(a run of [0-9A-Za-z.+-] that is a JSON number, true, false or null); strings are printable
ASCII without escapes. Keys used: px, sz (plain decimals), tradeId, ts (decimal integer strings),
side ("buy"/"sell"); others (instId, count, source, seqId, ...) are skipped; the last duplicate
wins.
A frame that does not start with the prefix is ST_NOT_TRADES (the caller routes it on the cool
path); anything else that deviates gets a status code, counted, and writes no record: the
records of a frame are written to `out` but only become part of the result once the whole frame
has been checked.

Numbers: a decimal of at most 19 significant digits with at most 22 fraction digits is
mantissa / 10**k, exact and correctly rounded (both operands exactly representable); longer ones go
through strtod (correctly rounded in glibc). Python's float() gives the same double for both.
"""
cimport cython
cimport numpy as cnp
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE, PyBytes_Check
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport strtod
from libc.string cimport memcmp, memcpy

from pipeline._ext.records cimport TickRecord, KIND_TRADE, FLAG_LAST_IN_MSG

cnp.import_array()

DEF RECORD_SIZE = 64
DEF VENUE_OKX = 3
cdef int64_t MAX_TS_MS = 9000000000000
cdef uint64_t MAX_INT = 1000000000000000000

cdef const char *PREFIX = b'{"arg":{"channel":"trades","instId":"'
cdef Py_ssize_t PREFIX_LEN = 37
cdef const char *MID = b'},"data":['
cdef Py_ssize_t MID_LEN = 10

cdef double POW10[23]
POW10[0] = 1.0
for _i in range(1, 23):
    POW10[_i] = POW10[_i - 1] * 10.0

STATUS_NAMES = ("ok", "not_trades", "malformed", "unknown_symbol", "bad_number", "bad_int",
                "bad_side", "missing_field", "out_full", "not_bytes")


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int parse_dec(const char *s, Py_ssize_t n, double *out) noexcept nogil:
    """-?[0-9]+(.[0-9]+)? of at most MAX_DEC_LEN chars → 0 and *out; else -1."""
    cdef Py_ssize_t i = 0, int_digits = 0, frac_digits = 0, sig = 0
    cdef uint64_t m = 0
    cdef bint neg = False, nonzero = False
    cdef char c
    cdef char buf[MAX_DEC_LEN + 1]
    if n <= 0 or n > MAX_DEC_LEN:
        return -1
    if s[0] == c'-':
        neg = True
        i = 1
    while i < n and c'0' <= s[i] <= c'9':
        c = s[i]
        if c != c'0' or nonzero:
            nonzero = True
            sig += 1
            if sig <= 19:
                m = m * 10 + <uint64_t>(c - c'0')
        int_digits += 1
        i += 1
    if int_digits == 0:
        return -1
    if i < n:
        if s[i] != c'.':
            return -1
        i += 1
        while i < n and c'0' <= s[i] <= c'9':
            c = s[i]
            if c != c'0' or nonzero:
                nonzero = True
                sig += 1
                if sig <= 19:
                    m = m * 10 + <uint64_t>(c - c'0')
            frac_digits += 1
            i += 1
        if frac_digits == 0 or i != n:
            return -1
    if sig <= 19 and m < (<uint64_t>1 << 53) and frac_digits <= 22:
        out[0] = (<double>m) / POW10[frac_digits]
        if neg:
            out[0] = -out[0]
        return 0
    memcpy(buf, s, n)
    buf[n] = 0
    out[0] = strtod(buf, NULL)
    return 0


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int parse_uint(const char *s, Py_ssize_t n, int64_t *out) noexcept nogil:
    """[0-9]{1,19} below 10**18 → 0 and *out; else -1."""
    cdef Py_ssize_t i
    cdef uint64_t v = 0
    if n <= 0 or n > 19:
        return -1
    for i in range(n):
        if not (c'0' <= s[i] <= c'9'):
            return -1
        v = v * 10 + <uint64_t>(s[i] - c'0')
    if v >= MAX_INT:
        return -1
    out[0] = <int64_t>v
    return 0


cdef inline bint _str_char(char c) noexcept nogil:
    """A byte allowed inside a fast-path string: printable ASCII except '"' (the scanner stops
    there) and the backslash (no escapes on the fast path)."""
    return 0x20 <= <unsigned char>c <= 0x7E and c != c'\\'


cdef bint _json_scalar(const char *s, Py_ssize_t n) noexcept nogil:
    """true | false | null | a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?"""
    cdef Py_ssize_t i = 0, d
    if n == 4 and (memcmp(s, b"true", 4) == 0 or memcmp(s, b"null", 4) == 0):
        return True
    if n == 5 and memcmp(s, b"false", 5) == 0:
        return True
    if i < n and s[i] == c'-':
        i += 1
    if i >= n or not (c'0' <= s[i] <= c'9'):
        return False
    if s[i] == c'0':
        i += 1
    else:
        while i < n and c'0' <= s[i] <= c'9':
            i += 1
    if i < n and s[i] == c'.':
        i += 1
        d = i
        while i < n and c'0' <= s[i] <= c'9':
            i += 1
        if i == d:
            return False
    if i < n and (s[i] == c'e' or s[i] == c'E'):
        i += 1
        if i < n and (s[i] == c'+' or s[i] == c'-'):
            i += 1
        d = i
        while i < n and c'0' <= s[i] <= c'9':
            i += 1
        if i == d:
            return False
    return i == n


cdef inline bint _scalar_char(char c) noexcept nogil:
    return (c'0' <= c <= c'9') or (c'a' <= c <= c'z') or (c'A' <= c <= c'Z') or c == c'.' \
        or c == c'+' or c == c'-'


cdef class TradeDecoder:
    """Decodes batches of frames and counts every status. `symbols`: instId → record symbol id."""

    def __cinit__(self, dict symbols, int venue=VENUE_OKX):
        cdef bytes b
        self.n_symbols = 0
        self.last_hit = 0
        self.venue = venue
        self.records = 0
        for i in range(N_STATUS):
            self.counts[i] = 0
        if len(symbols) > MAX_SYMBOLS:
            raise ValueError(f"at most {MAX_SYMBOLS} symbols per decoder")
        for name, sid in symbols.items():
            b = name.encode() if isinstance(name, str) else bytes(name)
            if not 0 < len(b) <= MAX_INST_LEN:
                raise ValueError(f"instId {name!r} must be 1..{MAX_INST_LEN} bytes")
            if not 0 <= sid < (1 << 32):
                raise ValueError(f"symbol id {sid} out of range")
            memcpy(self.names[self.n_symbols], <const char *>b, len(b))
            self.name_len[self.n_symbols] = len(b)
            self.ids[self.n_symbols] = sid
            self.n_symbols += 1

    @property
    def counts(self):
        """{status name: frames} for every status seen (ok counts decoded frames)."""
        return {STATUS_NAMES[i]: self.counts[i] for i in range(N_STATUS) if self.counts[i]}

    @property
    def errors(self):
        """Trades frames that could not be decoded (not_trades and out_full are not errors)."""
        return sum(self.counts[i] for i in range(ST_MALFORMED, N_STATUS)
                   if i != ST_OUT_FULL)

    cdef int _symbol(self, const char *s, Py_ssize_t n, uint32_t *sid) noexcept nogil:
        cdef int k, j
        for j in range(self.n_symbols):
            k = (self.last_hit + j) % self.n_symbols
            if self.name_len[k] == n and memcmp(self.names[k], s, n) == 0:
                self.last_hit = k
                sid[0] = self.ids[k]
                return 0
        return -1

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef int _decode_one(self, const char *s, Py_ssize_t n, int64_t local_ts, TickRecord *out,
                         int64_t room, int64_t *written) noexcept nogil:
        cdef Py_ssize_t i, j, ks, kn, vs, vn
        cdef uint32_t sid = 0
        cdef int64_t items = 0, tid = 0, ts = 0
        cdef double px = 0.0, sz = 0.0
        cdef int side = 0
        cdef int have
        cdef bint is_str
        cdef TickRecord *r
        written[0] = 0
        if n < PREFIX_LEN or memcmp(s, PREFIX, PREFIX_LEN) != 0:
            return ST_NOT_TRADES
        i = PREFIX_LEN
        j = i
        while j < n and s[j] != c'"':
            if not _str_char(s[j]):
                return ST_MALFORMED
            j += 1
        if j >= n or j == i or j - i > MAX_INST_LEN:
            return ST_MALFORMED
        if self._symbol(s + i, j - i, &sid) != 0:
            return ST_UNKNOWN_SYMBOL
        i = j + 1
        if n - i < MID_LEN or memcmp(s + i, MID, MID_LEN) != 0:
            return ST_MALFORMED
        i += MID_LEN
        while True:                                   # data items
            if i >= n or s[i] != c'{':
                return ST_MALFORMED
            i += 1
            have = 0
            while True:                               # members
                if i >= n or s[i] != c'"':
                    return ST_MALFORMED
                ks = i + 1
                i = ks
                while i < n and s[i] != c'"':
                    if not _str_char(s[i]):
                        return ST_MALFORMED
                    i += 1
                if i >= n:
                    return ST_MALFORMED
                kn = i - ks
                i += 1
                if i >= n or s[i] != c':':
                    return ST_MALFORMED
                i += 1
                if i >= n:
                    return ST_MALFORMED
                if s[i] == c'"':
                    is_str = True
                    vs = i + 1
                    i = vs
                    while i < n and s[i] != c'"':
                        if not _str_char(s[i]):
                            return ST_MALFORMED
                        i += 1
                    if i >= n:
                        return ST_MALFORMED
                    vn = i - vs
                    i += 1
                else:
                    is_str = False
                    vs = i
                    while i < n and _scalar_char(s[i]):
                        i += 1
                    vn = i - vs
                    if not _json_scalar(s + vs, vn):
                        return ST_MALFORMED
                if kn == 2 and s[ks] == c'p' and s[ks + 1] == c'x':
                    if not is_str or parse_dec(s + vs, vn, &px) != 0:
                        return ST_BAD_NUMBER
                    have |= 1
                elif kn == 2 and s[ks] == c's' and s[ks + 1] == c'z':
                    if not is_str or parse_dec(s + vs, vn, &sz) != 0:
                        return ST_BAD_NUMBER
                    have |= 2
                elif kn == 7 and memcmp(s + ks, b"tradeId", 7) == 0:
                    if not is_str or parse_uint(s + vs, vn, &tid) != 0:
                        return ST_BAD_INT
                    have |= 4
                elif kn == 2 and s[ks] == c't' and s[ks + 1] == c's':
                    if not is_str or parse_uint(s + vs, vn, &ts) != 0 or ts > MAX_TS_MS:
                        return ST_BAD_INT
                    have |= 8
                elif kn == 4 and memcmp(s + ks, b"side", 4) == 0:
                    if is_str and vn == 3 and memcmp(s + vs, b"buy", 3) == 0:
                        side = 1
                    elif is_str and vn == 4 and memcmp(s + vs, b"sell", 4) == 0:
                        side = -1
                    else:
                        return ST_BAD_SIDE
                    have |= 16
                if i >= n:
                    return ST_MALFORMED
                if s[i] == c',':
                    i += 1
                    continue
                if s[i] == c'}':
                    i += 1
                    break
                return ST_MALFORMED
            if have != 31:
                return ST_MISSING_FIELD
            if items >= room:
                return ST_OUT_FULL
            r = &out[items]
            r.seq = 0
            r.symbol = sid
            r.venue = <unsigned char>self.venue
            r.flags = 0
            r.kind = KIND_TRADE
            r.side = <signed char>side
            r.exch_ts = ts * 1000000
            r.local_ts = local_ts
            r.mono_ts = 0
            r.price = px
            r.qty = sz
            r.id = tid
            items += 1
            if i >= n:
                return ST_MALFORMED
            if s[i] == c',':
                i += 1
                continue
            if s[i] == c']':
                i += 1
                break
            return ST_MALFORMED
        if i + 1 != n or s[i] != c'}':
            return ST_MALFORMED
        out[items - 1].flags = FLAG_LAST_IN_MSG
        written[0] = items
        return ST_OK

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def decode(self, list frames not None, int64_t local_ts, cnp.ndarray out not None,
               Py_ssize_t start=0, cnp.ndarray status=None):
        """Decode `frames` (bytes) into `out` (TICK_DTYPE) from index `start`.

        Returns (next free index in out, frames consumed). Decoding stops early only when `out`
        is full (that frame is not consumed). `status`, if given, is an int8 array with one entry
        per frame: the frame's status code (ST_NOT_TRADES frames belong to the cool path)."""
        cdef Py_ssize_t nf = len(frames), k
        cdef int64_t cap, pos = start, w = 0
        cdef int st
        cdef TickRecord *recs
        cdef signed char *stp = NULL
        cdef object f
        if out.ndim != 1 or out.itemsize != RECORD_SIZE or not cnp.PyArray_IS_C_CONTIGUOUS(out):
            raise ValueError("out must be a 1-D C-contiguous TICK_DTYPE array")
        cap = out.shape[0]
        if start < 0 or start > cap:
            raise ValueError("start out of range")
        if status is not None:
            if status.dtype.itemsize != 1 or status.shape[0] < nf or \
                    not cnp.PyArray_IS_C_CONTIGUOUS(status):
                raise ValueError("status must be a C-contiguous int8 array, one entry per frame")
            stp = <signed char *>cnp.PyArray_DATA(status)
        recs = <TickRecord *>cnp.PyArray_DATA(out)
        for k in range(nf):
            f = frames[k]
            if not PyBytes_Check(f):
                st = ST_NOT_BYTES
                w = 0
            else:
                st = self._decode_one(PyBytes_AS_STRING(f), PyBytes_GET_SIZE(f), local_ts,
                                      recs + pos, cap - pos, &w)
            if st == ST_OUT_FULL:
                return pos, k
            self.counts[st] += 1
            if stp != NULL:
                stp[k] = st
            pos += w
            self.records += w
        return pos, nf

    def decode_one(self, bytes frame not None, int64_t local_ts, cnp.ndarray out not None,
                   Py_ssize_t start=0):
        """One frame → (status, records written at out[start:])."""
        cdef int64_t w = 0
        cdef int st
        if out.ndim != 1 or out.itemsize != RECORD_SIZE or not cnp.PyArray_IS_C_CONTIGUOUS(out):
            raise ValueError("out must be a 1-D C-contiguous TICK_DTYPE array")
        if start < 0 or start > out.shape[0]:
            raise ValueError("start out of range")
        st = self._decode_one(PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame), local_ts,
                              <TickRecord *>cnp.PyArray_DATA(out) + start,
                              out.shape[0] - start, &w)
        if st != ST_OUT_FULL:
            self.counts[st] += 1
            self.records += w
        return st, w
