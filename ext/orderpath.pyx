# cython: language_level=3
"""The order path: one compiled call from a signal record to a signed request body.

`OrderPath(risk, signer).process(msg, now_mono, timestamp_ms)` runs the risk kernel's check (every
rule; on ACCEPT the order's quantity is committed as open) and then the signer's encode + sign of
the checked order. The decision is the risk kernel's alone: the signer only reports whether it can
encode the order (an instrument it has, a timestamp >= 0); when it cannot, the risk kernel takes
the commitment back (`uncommit`) and the answer is UNKNOWN_SYMBOL / MALFORMED. Returns the signed
body, or None with the reason in `last_reason`.

`probe(...)` is the same path without effect (the risk kernel's probe, the same encode + sign, the
signer's count restored): the gateway's idle warm-up runs it so the hot path's code and data are
in cache when a rare real signal comes. A compiled "journal record + write on a held connection"
step slots in right after process() (the body is in hand, nothing else ran).
"""
from libc.stdint cimport int64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from pipeline._ext.risk cimport RiskEngine, CheckedOrder
from pipeline._ext.sign cimport BinanceSigner


cdef class OrderPath:
    """Risk check then encode + sign, one call (see the module docstring)."""

    def __init__(self, RiskEngine risk, BinanceSigner signer):
        self.risk = risk
        self.signer = signer
        self.last_reason = 0
        self.last_gap = 0
        self.risk_done_ns = 0

    def process(self, msg, now_mono, int64_t timestamp_ms):
        """One signal record → the signed request body, or None (reason in last_reason)."""
        cdef CheckedOrder o
        cdef timespec ts
        cdef int r = self.risk.check_buffer(msg, now_mono, &o)
        clock_gettime(CLOCK_MONOTONIC, &ts)
        self.risk_done_ns = ts.tv_sec * 1_000_000_000 + ts.tv_nsec
        self.last_gap = self.risk.last_gap
        self.last_reason = r
        if r:
            return None
        r = self.signer.can_sign(&o, timestamp_ms)
        if r:
            self.risk.uncommit(&o)
            self.last_reason = r
            return None
        return self.signer.sign_checked(&o, timestamp_ms)

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
