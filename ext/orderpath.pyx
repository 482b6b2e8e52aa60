# cython: language_level=3
"""The order path: one compiled call from a signal record to the request's bytes on the socket.

`OrderPath(risk, signer).process(msg, now_mono, timestamp_ms)` runs the risk kernel's check (every
rule; on ACCEPT the order's quantity is committed as open) and then the signer's encode + sign of
the checked order. The decision is the risk kernel's alone: the signer only reports whether it can
encode the order (an instrument it has, a timestamp >= 0); when it cannot, the risk kernel takes
the commitment back (`uncommit`) and the answer is UNKNOWN_SYMBOL / MALFORMED. Returns the signed
body, or None with the reason in `last_reason`.

`send(msg, now_mono, timestamp_ms, journal, writer, fd, sync, via)` is process() followed, in the
same call and without Python in between, by
  1. the write-ahead ORDER record (ext/journal.pyx `put_order`: the signal, the order and this
     request in one fixed record; the client id by the signer's builder, the symbol name from
     `set_name`), and msync of it when `sync` (fsync "always") -- nothing is sent if either fails;
  2. the HTTP request (ext/wirefmt.pyx `send_c`) on `fd`, a keep-alive connection held ready,
     after a non-blocking look that the venue has not closed it (readable while idle = EOF or
     bytes nobody asked for: not used, nothing sent).
`journal` None skips 1 (the JSON-lines journal is written by Python, before); `writer` None or
fd < 0 skips 2 (the caller sends: TLS, WS-API, no connection ready). What happened is in
`journal_state` (J_*) and `wire_state` (W_*), the bytes written in `sent` (-errno on W_ERROR) and
the send() stamp in `written_ns`. The Python bookkeeping (order object, status, logs) runs after.

`probe(...)` is process() without effect (the risk kernel's probe, the same encode + sign, the
signer's count restored): the gateway's idle warm-up runs it so the hot path's code and data are
in cache when a rare real signal comes. The twin is pipeline/gateway/orderpath_py.py.
"""
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.errno cimport errno, EAGAIN, EINTR
from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.string cimport memcpy, memset
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_REALTIME

from pipeline._ext.records cimport SignalRecord, JournalOrder
from pipeline._ext.risk cimport RiskEngine, CheckedOrder, MAX_SYMBOLS
from pipeline._ext.sign cimport BinanceSigner, put_client_id
from pipeline._ext.journal cimport JournalWriter
from pipeline._ext.wirefmt cimport RequestWriter

cdef extern from "<sys/socket.h>" nogil:
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    int MSG_PEEK
    int MSG_DONTWAIT

# the state codes (the twin's constants are the same numbers: a parity test checks)
JOURNAL_STATES = {"NONE": J_NONE, "WRITTEN": J_WRITTEN, "FULL": J_FULL,
                  "SYNC_FAILED": J_SYNC_FAILED, "NO_NAME": J_NO_NAME}
WIRE_STATES = {"NONE": W_NONE, "SENT": W_SENT, "SHORT": W_SHORT, "CLOSED": W_CLOSED,
               "ERROR": W_ERROR, "TOO_BIG": W_TOO_BIG}


cdef inline int64_t _clock(int which) noexcept nogil:
    cdef timespec ts
    clock_gettime(which, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef bint _closed(int fd) noexcept nogil:
    """An idle keep-alive connection that is readable is closed (EOF) or out of step."""
    cdef char c
    cdef ssize_t r
    while True:
        r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT)
        if r < 0 and errno == EINTR:
            continue
        return not (r < 0 and errno == EAGAIN)


cdef class OrderPath:
    """Risk check, encode + sign, journal record, request on the socket: one call (see above)."""

    def __init__(self, RiskEngine risk, BinanceSigner signer):
        self.risk = risk
        self.signer = signer
        self.last_reason = 0
        self.last_gap = 0
        self.risk_done_ns = 0
        self.signed_ns = 0
        self.journal_state = 0
        self.wire_state = 0
        self.sent = 0
        self.written_ns = 0
        memset(self.name_len, 0, sizeof(self.name_len))

    def set_name(self, symbol_id, bytes name):
        """The venue's name of symbol `symbol_id` (the journal record's symbol, <= 24 bytes)."""
        if not 0 < symbol_id < MAX_SYMBOLS:
            raise ValueError(f"symbol id {symbol_id} outside 1..{MAX_SYMBOLS - 1}")
        if not 0 < len(name) <= 24:
            raise ValueError("a symbol name of 1..24 bytes")
        memcpy(self.names[symbol_id], <const char *>name, len(name))
        self.name_len[symbol_id] = <uint8_t>len(name)

    def process(self, msg, now_mono, int64_t timestamp_ms):
        """One signal record → the signed request body, or None (reason in last_reason)."""
        cdef CheckedOrder o
        return self._process(msg, now_mono, timestamp_ms, &o)

    cdef object _process(self, msg, now_mono, int64_t timestamp_ms, CheckedOrder *o):
        cdef timespec ts
        cdef int r = self.risk.check_buffer(msg, now_mono, o)
        clock_gettime(CLOCK_MONOTONIC, &ts)
        self.risk_done_ns = ts.tv_sec * 1_000_000_000 + ts.tv_nsec
        self.last_gap = self.risk.last_gap
        self.last_reason = r
        if r:
            return None
        r = self.signer.can_sign(o, timestamp_ms)
        if r:
            self.risk.uncommit(o)
            self.last_reason = r
            return None
        body = self.signer.sign_checked(o, timestamp_ms)
        self.signed_ns = _clock(CLOCK_MONOTONIC)
        return body

    def send(self, msg, now_mono, int64_t timestamp_ms, JournalWriter journal,
             RequestWriter writer, int fd, bint sync, int via):
        """process(), the write-ahead ORDER record, the request on `fd`: one call (see the
        module). Returns the body (None on a refusal); journal_state / wire_state say the rest."""
        cdef CheckedOrder o
        cdef JournalOrder rec
        cdef Py_buffer view
        cdef const SignalRecord *s
        cdef const char *p
        cdef Py_ssize_t n, r
        cdef int64_t recv_mono = now_mono
        self.journal_state = J_NONE
        self.wire_state = W_NONE
        self.sent = 0
        self.written_ns = 0
        body = self._process(msg, now_mono, timestamp_ms, &o)
        if body is None:
            return None
        if journal is not None:
            if self.name_len[o.symbol] == 0:
                self.journal_state = J_NO_NAME
                return body
            PyObject_GetBuffer(msg, &view, PyBUF_SIMPLE)    # a signal record: the kernel read it
            s = <const SignalRecord *>view.buf
            memset(&rec, 0, sizeof(rec))
            rec.epoch = s.epoch
            rec.sig_seq = s.seq
            rec.qty = s.qty
            rec.price = s.price
            rec.trigger_mono = s.trigger_mono
            rec.created_mono = s.created_mono
            rec.strategy = s.strategy_id
            rec.side = s.side
            rec.order_type = s.order_type
            rec.tif = s.tif
            PyBuffer_Release(&view)
            rec.recv_mono = recv_mono
            rec.ts_ms = timestamp_ms
            rec.symbol_id = o.symbol
            rec.attempt = 1
            rec.via = <uint8_t>via
            rec.cid_len = <uint8_t>put_client_id(rec.cid, o.strategy_id, o.epoch, o.seq)
            rec.symbol_len = self.name_len[o.symbol]
            memcpy(rec.symbol, self.names[o.symbol], rec.symbol_len)
            rec.head.t = _clock(CLOCK_REALTIME)
            rec.head.m = _clock(CLOCK_MONOTONIC)
            if journal.put_order(&rec) != 0:
                self.journal_state = J_FULL           # the owner grows the file; not sent
                return body
            if sync and journal.sync_c() != 0:
                self.journal_state = J_SYNC_FAILED    # not durable: not sent
                return body
            self.journal_state = J_WRITTEN
        if writer is None or fd < 0:
            return body
        if _closed(fd):
            self.wire_state = W_CLOSED
            return body
        p = PyBytes_AS_STRING(body)
        n = PyBytes_GET_SIZE(body)
        r = writer.send_c(fd, p, n)
        self.written_ns = writer.stamp
        if r == -7 and writer.format_c(p, n) < 0:
            self.wire_state = W_TOO_BIG
        elif r < 0:
            self.sent = r
            self.wire_state = W_ERROR
        else:
            self.sent = r
            self.wire_state = W_SENT if r == writer.length else W_SHORT
        return body

    def probe(self, msg, now_mono, int64_t timestamp_ms):
        """process() without effect: the same answer and body; nothing committed or counted."""
        cdef CheckedOrder o
        cdef int r = self.risk.probe_buffer(msg, now_mono, &o)
        cdef object body
        if r:
            return None
        if self.signer.can_sign(&o, timestamp_ms):
            return None
        body = self.signer.sign_checked(&o, timestamp_ms)
        self.signer.signed_count -= 1
        return body
