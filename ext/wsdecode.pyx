# distutils: language = c++
# cython: language_level=3
"""WebSocket frame decoder and Binance hot-field extractor: socket bytes → tick records.

A transliteration of the pure-Python twin pipeline/venues/binance/wsdecode_py.py, which documents the
algorithm (events, reasons, what the hot path accepts). The loop touches no Python object until it
stops for an event; records are written straight into the caller's TICK_DTYPE array, a message
completely or not at all. Per-symbol state (symbol table, duplicate filters, the depth books of
synced symbols) is the SymbolState of ext/symstate.pyx, shared by a feed's decoders.
"""
cimport cython
cimport numpy as cnp
from cpython.bytearray cimport PyByteArray_AS_STRING
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport strtod
from libc.string cimport memcpy, memmove, memset, memcmp

from pipeline._ext.records cimport TickRecord, FLAG_LAST_IN_MSG
from pipeline._ext.symstate cimport SymbolState

cnp.import_array()

# events (same values as the twin)
EV_NONE, EV_FULL, EV_MESSAGE, EV_PING, EV_PONG, EV_CLOSE, EV_BAD, EV_PROTOCOL = range(8)
cdef enum:
    C_EV_NONE = 0
    C_EV_FULL = 1
    C_EV_MESSAGE = 2
    C_EV_PING = 3
    C_EV_PONG = 4
    C_EV_CLOSE = 5
    C_EV_BAD = 6
    C_EV_PROTOCOL = 7
cdef enum:
    R_NONE = 0
    R_NOT_HOT = 1
    R_UNKNOWN_SYMBOL = 2
    R_DEPTH_UNSYNCED = 3
    R_DEPTH_SEQ = 4
    R_CROSSED = 5
    R_SCAN = 6
    R_FRAGMENTED = 7
    R_BINARY = 8
    R_TOO_BIG = 9
    R_COLD = 10
    R_FULL = -100
cdef enum:
    SLOT_TRADE = 0
    SLOT_AGG = 1
    SLOT_BBO = 2
    KIND_BID = 3
    KIND_ASK = 4
    KIND_BOOK_BID = 5
    KIND_BOOK_ASK = 6
DEF MAX_EVENT_MS = 9000000000000
DEF MAX_DEC_LEN = 40
DEF MAX_DEPTH = 32
DEF SAMPLE_LEN = 200
DEF RECORD_SIZE = 64

cdef double POW10[23]
for _k in range(23):
    POW10[_k] = float(10 ** _k)

# byte classes: STR_CLS 0 = plain string byte, 1 = closing quote, 2 = not for the hot path
# (backslash, control, non-ASCII); NUM_CH 1 = may appear in a JSON number token
cdef uint8_t STR_CLS[256]
cdef uint8_t NUM_CH[256]
for _k in range(256):
    STR_CLS[_k] = 2 if (_k == 92 or _k < 32 or _k >= 128) else (1 if _k == 34 else 0)
    NUM_CH[_k] = 1 if (48 <= _k <= 57 or _k in (45, 43, 46, 101, 69)) else 0


# ---------------------------------------------------------------- scanning helpers
cdef inline bint _isws(unsigned char c) noexcept nogil:
    return c == 32 or c == 9 or c == 10 or c == 13


cdef inline Py_ssize_t _ws(const unsigned char *b, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    while i < end and _isws(b[i]):
        i += 1
    return i


cdef inline Py_ssize_t _str(const unsigned char *b, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t j = i + 1
    cdef uint8_t c
    while j < end:
        c = STR_CLS[b[j]]
        if c:
            return j + 1 if c == 1 else -1
        j += 1
    return -1


cdef inline bint _isnumch(unsigned char c) noexcept nogil:
    return NUM_CH[c]


cdef inline bint _isdig(unsigned char c) noexcept nogil:
    return 48 <= c <= 57


cdef Py_ssize_t _num(const unsigned char *b, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """A JSON number token: the same grammar as the twin's regex, over the maximal run of
    number characters."""
    cdef Py_ssize_t j = i, k
    while j < end and _isnumch(b[j]):
        j += 1
    if j == i:
        return -1
    k = i
    if b[k] == 45:
        k += 1
    if k >= j or not _isdig(b[k]):
        return -1
    if b[k] == 48:
        k += 1
    else:
        while k < j and _isdig(b[k]):
            k += 1
    if k < j and b[k] == 46:
        k += 1
        if k >= j or not _isdig(b[k]):
            return -1
        while k < j and _isdig(b[k]):
            k += 1
    if k < j and (b[k] == 101 or b[k] == 69):
        k += 1
        if k < j and (b[k] == 43 or b[k] == 45):
            k += 1
        if k >= j or not _isdig(b[k]):
            return -1
        while k < j and _isdig(b[k]):
            k += 1
    if k != j:
        return -1
    return j


cdef Py_ssize_t _skip(const unsigned char *b, Py_ssize_t i, Py_ssize_t end, int depth) noexcept nogil:
    cdef unsigned char c, close
    if i >= end or depth > MAX_DEPTH:
        return -1
    c = b[i]
    if c == 34:
        return _str(b, i, end)
    if c == 123 or c == 91:
        close = 125 if c == 123 else 93
        i = _ws(b, i + 1, end)
        if i < end and b[i] == close:
            return i + 1
        while True:
            if c == 123:
                if i >= end or b[i] != 34:
                    return -1
                i = _str(b, i, end)
                if i < 0:
                    return -1
                i = _ws(b, i, end)
                if i >= end or b[i] != 58:
                    return -1
                i = _ws(b, i + 1, end)
            i = _skip(b, i, end, depth + 1)
            if i < 0:
                return -1
            i = _ws(b, i, end)
            if i >= end:
                return -1
            if b[i] == close:
                return i + 1
            if b[i] != 44:
                return -1
            i = _ws(b, i + 1, end)
    if c == 116:
        return i + 4 if i + 4 <= end and memcmp(b + i, b"true", 4) == 0 else -1
    if c == 102:
        return i + 5 if i + 5 <= end and memcmp(b + i, b"false", 5) == 0 else -1
    if c == 110:
        return i + 4 if i + 4 <= end and memcmp(b + i, b"null", 4) == 0 else -1
    return _num(b, i, end)


cdef inline bint _int(const unsigned char *b, Py_ssize_t s, Py_ssize_t e, int64_t *out) noexcept nogil:
    """[0-9]{1,18} exactly."""
    cdef int64_t v = 0
    cdef Py_ssize_t i
    if s < 0 or e - s < 1 or e - s > 18:
        return False
    for i in range(s, e):
        if not _isdig(b[i]):
            return False
        v = v * 10 + (b[i] - 48)
    out[0] = v
    return True


cdef bint _dec(const unsigned char *b, Py_ssize_t s, Py_ssize_t e, double *out) noexcept nogil:
    """A quoted decimal string "[0-9]+(.[0-9]+)?" → the correctly rounded double (Clinger's fast
    path: an exact mantissa below 2^53 divided by an exact power of ten; strtod otherwise)."""
    cdef Py_ssize_t i, n
    cdef uint64_t m = 0
    cdef int nd = 0, fd = 0
    cdef bint dot = False, lead = True
    cdef char tmp[48]
    cdef unsigned char c
    if s < 0 or b[s] != 34:
        return False
    s += 1
    e -= 1
    n = e - s
    if n < 1 or n > MAX_DEC_LEN or not _isdig(b[s]) or not _isdig(b[e - 1]):
        return False
    for i in range(s, e):
        c = b[i]
        if _isdig(c):
            if dot:
                fd += 1
            if lead and c == 48:
                continue
            lead = False
            nd += 1
            if nd <= 19:
                m = m * 10 + (c - 48)
        elif c == 46 and not dot:
            dot = True
        else:
            return False
    if nd <= 19 and m <= 9007199254740992ULL and fd <= 22:
        out[0] = <double>m / POW10[fd]
        return True
    memcpy(tmp, b + s, n)
    tmp[n] = 0
    out[0] = strtod(tmp, NULL)
    return True


# ---------------------------------------------------------------- WsDecoder
cdef class WsDecoder:
    """One connection's frame decoder (see the twin for the contract)."""

    def __cinit__(self, SymbolState state, Py_ssize_t max_message=1 << 20, bint hot=True,
                  bint recording=False, Py_ssize_t read_size=1 << 16):
        self.state = state
        self.recording = recording
        self.rec = bytearray()
        self.venue = state.venue
        self.max_message = max_message
        self.hot = hot
        self.cap = max_message + 16 + 2 * read_size
        self.store = bytearray(self.cap)
        self.base = <unsigned char *>PyByteArray_AS_STRING(self.store)
        self.pos = self.end = 0
        self.skip = 0
        self.frag = None
        self.event = C_EV_NONE
        self.reason = R_NONE
        self.message = b""
        self.error = ""
        self.ntouched = 0
        memset(self.touched, 0, sizeof(self.touched))

    # ------------------------------------------------------------------ input
    cdef void _make_room(self, Py_ssize_t k):
        if self.cap - self.end < k and self.pos > 0:
            memmove(self.base, self.base + self.pos, self.end - self.pos)
            self.end -= self.pos
            self.pos = 0

    def writable(self, Py_ssize_t k):
        """A writable view of up to k free bytes at the end of the buffer (recv_into it, then
        commit). The view is valid until the next writable/feed/decode call."""
        self._make_room(k)
        k = min(k, self.cap - self.end)
        if k <= 0:
            raise BufferError("decoder buffer full: decode() before reading more")
        return memoryview(self.store)[self.end:self.end + k]

    def commit(self, Py_ssize_t nbytes, int64_t local_ts):
        """nbytes were written into the last writable() view at local_ts (CLOCK_REALTIME ns)."""
        if nbytes < 0 or self.end + nbytes > self.cap:
            raise ValueError("commit beyond the buffer")
        self.end += nbytes
        self.bytes += nbytes
        self.local_ts = local_ts

    def feed(self, const unsigned char[::1] data, int64_t local_ts):
        """Append socket bytes (copying); see writable/commit for the zero-copy way."""
        cdef Py_ssize_t n = data.shape[0], off = 0, k
        self.local_ts = local_ts
        while off < n:
            self._make_room(n - off)
            k = min(n - off, self.cap - self.end)
            if k <= 0:
                raise BufferError("decoder buffer full: decode() before feeding more")
            memcpy(self.base + self.end, &data[off], k)
            self.end += k
            off += k
        self.bytes += n

    def pending(self):
        return self.end - self.pos + self.skip

    def counters(self):
        return {"frames": self.frames, "messages": self.messages, "bytes": self.bytes,
                "records": self.records, "hot_messages": self.hot_messages,
                "deferred": self.deferred, "duplicates": self.duplicates,
                "oversized": self.oversized, "protocol_errors": self.protocol_errors,
                "pings": self.pings, "pongs": self.pongs, "closes": self.closes}

    cdef int _protocol(self, str why):
        self.failed = True
        self.protocol_errors += 1
        self.error = why
        self.event = C_EV_PROTOCOL
        return C_EV_PROTOCOL

    cdef bytes _slice(self, Py_ssize_t s, Py_ssize_t e):
        return (<char *>self.base)[s:e]

    cdef void _record(self, bytes payload):
        if b"\n" in payload or b"\r" in payload:
            self.unrecordable += 1
            return
        self.rec += b"%d " % self.local_ts
        self.rec += payload
        self.rec += b"\n"

    def take_recording(self):
        """The `<local_ts_ns> <raw>` lines of the text messages decoded since the last call."""
        out = bytes(self.rec)
        del self.rec[:]
        return out

    # ------------------------------------------------------------------ frames
    @cython.boundscheck(False)
    @cython.wraparound(False)
    def decode(self, cnp.ndarray out):
        """Fill out (TICK_DTYPE) from index 0; returns the record count. See the twin."""
        cdef Py_ssize_t cap, n = 0, avail, p, hl, s, e, k
        cdef uint64_t ln
        cdef unsigned char b0, b1
        cdef int op
        cdef bint fin
        cdef Py_ssize_t r
        cdef TickRecord *outp
        cdef const unsigned char *buf = self.base
        if not cnp.PyArray_IS_C_CONTIGUOUS(out) or out.ndim != 1 or out.itemsize != RECORD_SIZE:
            raise ValueError("out must be a 1-D C-contiguous TICK_DTYPE array")
        cap = out.shape[0]
        outp = <TickRecord *>cnp.PyArray_DATA(out)
        self.event = C_EV_NONE
        self.reason = R_NONE
        if self.failed:
            self.event = C_EV_PROTOCOL
            return 0
        while True:
            avail = self.end - self.pos
            if self.skip:
                k = min(<int64_t>avail, self.skip)
                self.pos += k
                self.skip -= k
                if self.skip:
                    return n
                continue
            if avail < 2:
                return n
            p = self.pos
            b0 = buf[p]
            b1 = buf[p + 1]
            ln = b1 & 0x7F
            hl = 2
            if ln == 126:
                hl = 4
            elif ln == 127:
                hl = 10
            if avail < hl:
                return n
            if ln == 126:
                ln = (<uint64_t>buf[p + 2] << 8) | buf[p + 3]
            elif ln == 127:
                ln = 0
                for k in range(8):
                    ln = (ln << 8) | buf[p + 2 + k]
                if ln >> 63:
                    self._protocol("frame length has the top bit set")
                    return n
            fin = (b0 & 0x80) != 0
            op = b0 & 0x0F
            if b0 & 0x70:
                self._protocol("reserved bits set")
                return n
            if b1 & 0x80:
                self._protocol("masked frame from the server")
                return n
            if op >= 8:
                if op != 8 and op != 9 and op != 10:
                    self._protocol(f"unknown control opcode {op}")
                    return n
                if not fin or ln > 125:
                    self._protocol("fragmented or oversized control frame")
                    return n
            elif op != 0 and op != 1 and op != 2:
                self._protocol(f"unknown data opcode {op}")
                return n
            elif op == 0 and self.frag is None and not self.frag_discard:
                self._protocol("continuation frame without a message")
                return n
            elif op != 0 and (self.frag is not None or self.frag_discard):
                self._protocol("new message inside a fragmented one")
                return n
            if ln > <uint64_t>self.max_message and op < 8:
                self.frames += 1
                self.oversized += 1
                self.pos = p + hl
                self.skip = <int64_t>ln
                k = min(<Py_ssize_t>SAMPLE_LEN, avail - hl)
                self.message = self._slice(self.pos, self.pos + k)
                self.error = "oversized"
                if op == 0 or not fin:
                    self.frag = None
                    self.frag_discard = not fin
                self.event = C_EV_BAD
                return n
            if <uint64_t>avail < hl + ln:
                return n
            s = p + hl
            e = s + <Py_ssize_t>ln
            self.frames += 1
            if op >= 8:
                self.pos = e
                self.message = self._slice(s, e)
                if op == 9:
                    self.pings += 1
                    self.event = C_EV_PING
                elif op == 10:
                    self.pongs += 1
                    self.event = C_EV_PONG
                else:
                    self.closes += 1
                    self.event = C_EV_CLOSE
                return n
            if op == 0 or not fin:
                self.pos = e
                if self.frag_discard:
                    if fin:
                        self.frag_discard = False
                    continue
                if op != 0:
                    self.frag = bytearray()
                    self.frag_opcode = op
                self.frag += self._slice(s, e)
                if len(self.frag) > self.max_message:
                    self.oversized += 1
                    self.message = bytes(self.frag[:SAMPLE_LEN])
                    self.frag = None
                    self.frag_discard = not fin
                    self.error = "oversized"
                    self.event = C_EV_BAD
                    return n
                if fin:
                    self.messages += 1
                    self.deferred += 1
                    self.message = bytes(self.frag)
                    if self.recording and self.frag_opcode == 1:
                        self._record(self.message)
                    self.reason = R_BINARY if self.frag_opcode == 2 else R_FRAGMENTED
                    self.frag = None
                    self.event = C_EV_MESSAGE
                    return n
                continue
            if op == 2:
                self.pos = e
                self.messages += 1
                self.deferred += 1
                self.message = self._slice(s, e)
                self.reason = R_BINARY
                self.event = C_EV_MESSAGE
                return n
            if self.recording:
                self._record(self._slice(s, e))
            if self.hot:
                r = self._extract(buf, s, e, outp, n, cap)
            else:
                r = -R_COLD
            if r >= 0:
                self.pos = e
                self.messages += 1
                self.hot_messages += 1
                self.records += r - n
                n = r
                continue
            if r == R_FULL:
                if n > 0:
                    self.event = C_EV_FULL
                    return n
                r = -R_TOO_BIG
            self.pos = e
            self.messages += 1
            self.deferred += 1
            self.message = self._slice(s, e)
            self.reason = <int>(-r)
            self.event = C_EV_MESSAGE
            return n

    # ------------------------------------------------------------------ JSON
    cdef Py_ssize_t _payload(self, const unsigned char *b, Py_ssize_t i, Py_ssize_t end) noexcept:
        cdef Py_ssize_t ks, ke, vs, ve
        cdef unsigned char k
        i = _ws(b, i + 1, end)
        if i < end and b[i] == 125:
            return i + 1
        while True:
            if i >= end or b[i] != 34:
                return -R_SCAN
            ks = i + 1
            i = _str(b, i, end)
            if i < 0:
                return -R_SCAN
            ke = i - 1
            i = _ws(b, i, end)
            if i >= end or b[i] != 58:
                return -R_SCAN
            vs = _ws(b, i + 1, end)
            ve = _skip(b, vs, end, 2)
            if ve < 0:
                return -R_SCAN
            if ke - ks == 1:
                k = b[ks]
                if self.touched[k]:
                    return -R_SCAN
                self.touched[k] = 1
                self.fs[k] = vs
                self.fe[k] = ve
                self.ntouched += 1
                if k == 101:
                    if not ((ve - vs == 7 and memcmp(b + vs, b'"trade"', 7) == 0)
                            or (ve - vs == 10 and memcmp(b + vs, b'"aggTrade"', 10) == 0)
                            or (ve - vs == 13 and memcmp(b + vs, b'"depthUpdate"', 13) == 0)):
                        return -R_NOT_HOT
            i = _ws(b, ve, end)
            if i >= end:
                return -R_SCAN
            if b[i] == 125:
                return i + 1
            if b[i] != 44:
                return -R_SCAN
            i = _ws(b, i + 1, end)

    cdef Py_ssize_t _extract(self, const unsigned char *b, Py_ssize_t s, Py_ssize_t e,
                             TickRecord *out, Py_ssize_t n, Py_ssize_t cap) noexcept:
        cdef Py_ssize_t i, j, ks, r
        cdef bint have_data = False
        cdef int kk
        if self.ntouched:
            memset(self.touched, 0, sizeof(self.touched))
            self.ntouched = 0
        i = _ws(b, s, e)
        if i >= e or b[i] != 123:
            return -R_SCAN
        j = _ws(b, i + 1, e)
        if j < e and b[j] == 34 and ((j + 8 <= e and memcmp(b + j, b'"stream"', 8) == 0)
                                     or (j + 6 <= e and memcmp(b + j, b'"data"', 6) == 0)):
            i = j
            while True:
                if i >= e or b[i] != 34:
                    return -R_SCAN
                ks = i
                i = _str(b, i, e)
                if i < 0:
                    return -R_SCAN
                kk = 0
                if i - ks == 8 and memcmp(b + ks, b'"stream"', 8) == 0:
                    kk = 1
                elif i - ks == 6 and memcmp(b + ks, b'"data"', 6) == 0:
                    kk = 2
                i = _ws(b, i, e)
                if i >= e or b[i] != 58:
                    return -R_SCAN
                i = _ws(b, i + 1, e)
                if kk == 1 and i < e and b[i] == 34:
                    i = _str(b, i, e)
                    if i < 0:
                        return -R_SCAN
                elif kk == 2 and not have_data and i < e and b[i] == 123:
                    have_data = True
                    i = self._payload(b, i, e)
                    if i < 0:
                        return i
                else:
                    return -R_NOT_HOT
                i = _ws(b, i, e)
                if i >= e:
                    return -R_SCAN
                if b[i] == 125:
                    i += 1
                    break
                if b[i] != 44:
                    return -R_SCAN
                i = _ws(b, i + 1, e)
            if not have_data:
                return -R_NOT_HOT
        else:
            i = self._payload(b, i, e)
            if i < 0:
                return i
        if _ws(b, i, e) != e:
            return -R_SCAN
        return self._fields(b, out, n, cap)

    cdef Py_ssize_t _levels(self, const unsigned char *b, int key, int kind, int side,
                            TickRecord *out, Py_ssize_t n, Py_ssize_t cap, int sym,
                            int64_t exch, int64_t u) noexcept:
        cdef Py_ssize_t i, end, ps, pe, qs, qe
        cdef double p, q
        cdef TickRecord *r
        if not self.touched[key] or b[self.fs[key]] != 91:
            return -R_SCAN
        i = _ws(b, self.fs[key] + 1, self.fe[key])
        end = self.fe[key] - 1
        if i == end:
            return n
        while True:
            if b[i] != 91:
                return -R_SCAN
            ps = _ws(b, i + 1, end)
            if ps >= end or b[ps] != 34:
                return -R_SCAN
            pe = _str(b, ps, end)
            if pe < 0:
                return -R_SCAN
            i = _ws(b, pe, end)
            if i >= end or b[i] != 44:
                return -R_SCAN
            qs = _ws(b, i + 1, end)
            if qs >= end or b[qs] != 34:
                return -R_SCAN
            qe = _str(b, qs, end)
            if qe < 0:
                return -R_SCAN
            i = _ws(b, qe, end)
            if i >= end or b[i] != 93:
                return -R_SCAN
            if not _dec(b, ps, pe, &p) or not _dec(b, qs, qe, &q):
                return -R_SCAN
            if n >= cap:
                return R_FULL
            r = &out[n]
            r.seq = 0
            r.symbol = sym
            r.venue = <uint8_t>self.venue
            r.flags = 0
            r.kind = <uint8_t>kind
            r.side = <signed char>side
            r.exch_ts = exch
            r.local_ts = self.local_ts
            r.mono_ts = 0
            r.price = p
            r.qty = q
            r.id = u
            n += 1
            i = _ws(b, i + 1, end)
            if i == end:
                return n
            if b[i] != 44:
                return -R_SCAN
            i = _ws(b, i + 1, end)

    cdef Py_ssize_t _fields(self, const unsigned char *b, TickRecord *out, Py_ssize_t n,
                            Py_ssize_t cap) noexcept:
        cdef SymbolState st = self.state
        cdef int kind, sym, side, k
        cdef Py_ssize_t ss, n0
        cdef int64_t u = 0, U = 0, E = 0, tid = 0, exch
        cdef double bp, bq, ap, aq, p, q
        cdef TickRecord *r
        cdef Py_ssize_t ms, me
        if not self.touched[101]:
            if not (self.touched[117] and self.touched[98] and self.touched[66]
                    and self.touched[97] and self.touched[65] and self.touched[115]):
                return -R_NOT_HOT
            kind = 0
        else:
            k = self.fe[101] - self.fs[101]
            kind = 1 if k == 7 else (2 if k == 10 else 3)
        if not self.touched[115] or b[self.fs[115]] != 34:
            return -R_SCAN
        ss = self.fs[115]
        sym = st._lookup(b + ss + 1, self.fe[115] - ss - 2)
        if sym < 0:
            return -R_UNKNOWN_SYMBOL
        if kind == 0:
            if not (_int(b, self.fs[117], self.fe[117], &u)
                    and _dec(b, self.fs[98], self.fe[98], &bp)
                    and _dec(b, self.fs[66], self.fe[66], &bq)
                    and _dec(b, self.fs[97], self.fe[97], &ap)
                    and _dec(b, self.fs[65], self.fe[65], &aq)):
                return -R_SCAN
            if n + 2 > cap:
                return R_FULL
            if not st._accept(SLOT_BBO, sym, u):
                self.duplicates += 1
                return n
            r = &out[n]
            r.seq = 0; r.symbol = sym; r.venue = <uint8_t>self.venue; r.flags = 0
            r.kind = KIND_BID; r.side = 1; r.exch_ts = 0; r.local_ts = self.local_ts
            r.mono_ts = 0; r.price = bp; r.qty = bq; r.id = u
            r = &out[n + 1]
            r.seq = 0; r.symbol = sym; r.venue = <uint8_t>self.venue; r.flags = FLAG_LAST_IN_MSG
            r.kind = KIND_ASK; r.side = -1; r.exch_ts = 0; r.local_ts = self.local_ts
            r.mono_ts = 0; r.price = ap; r.qty = aq; r.id = u
            return n + 2
        if not self.touched[69] or not _int(b, self.fs[69], self.fe[69], &E) or E > MAX_EVENT_MS:
            return -R_SCAN
        exch = E * 1000000
        if kind <= 2:
            k = 116 if kind == 1 else 97
            if not (self.touched[k] and _int(b, self.fs[k], self.fe[k], &tid)
                    and self.touched[112] and _dec(b, self.fs[112], self.fe[112], &p)
                    and self.touched[113] and _dec(b, self.fs[113], self.fe[113], &q)
                    and self.touched[109]):
                return -R_SCAN
            ms = self.fs[109]
            me = self.fe[109]
            if me - ms == 4 and memcmp(b + ms, b"true", 4) == 0:
                side = -1
            elif me - ms == 5 and memcmp(b + ms, b"false", 5) == 0:
                side = 1
            else:
                return -R_SCAN
            if n >= cap:
                return R_FULL
            if not st._accept(SLOT_TRADE if kind == 1 else SLOT_AGG, sym, tid):
                self.duplicates += 1
                return n
            r = &out[n]
            r.seq = 0; r.symbol = sym; r.venue = <uint8_t>self.venue; r.flags = FLAG_LAST_IN_MSG
            r.kind = <uint8_t>kind; r.side = <signed char>side; r.exch_ts = exch
            r.local_ts = self.local_ts; r.mono_ts = 0; r.price = p; r.qty = q; r.id = tid
            return n + 1
        if not (self.touched[85] and _int(b, self.fs[85], self.fe[85], &U)
                and self.touched[117] and _int(b, self.fs[117], self.fe[117], &u)) or U > u:
            return -R_SCAN
        if not st.synced_[sym]:
            return -R_DEPTH_UNSYNCED
        if U != st.last_u_[sym] + 1:
            return -R_DEPTH_SEQ
        n0 = n
        n = self._levels(b, 98, KIND_BOOK_BID, 1, out, n, cap, sym, exch, u)
        if n < 0:
            return n
        n = self._levels(b, 97, KIND_BOOK_ASK, -1, out, n, cap, sym, exch, u)
        if n < 0:
            return n
        for k in range(n0, n):
            st._set(sym, out[k].kind, out[k].price, out[k].qty)
        st.last_u_[sym] = u
        if st._crossed(sym):
            st.synced_[sym] = 0
            return -R_CROSSED
        if n > n0:
            out[n - 1].flags = FLAG_LAST_IN_MSG
        return n


# The twin's module has both classes; so does this one (the cdef class lives in symstate).
globals()["SymbolState"] = SymbolState
