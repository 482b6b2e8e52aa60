# Table of contents of ext/okx_sign.pyx — the OKX order path: risk check, then the OKX v5 order
# body (JSON) and its OK-ACCESS-SIGN (base64 HMAC-SHA256 over timestamp + POST + path + body), one
# compiled call. Pure-Python twin: pipeline/venues/okx/okx_sign_py.py (same classes, same bytes).
from libc.stdint cimport int64_t
from pipeline._ext.sign cimport HmacKey
from pipeline._ext.risk cimport RiskEngine, CheckedOrder

cdef enum:
    OKX_BUF = 512              # ts(24) + sign(44) + body (the longest body is ~230 bytes)
    OKX_NAME_MAX = 40          # instId bytes
    OKX_MAX_SYMBOLS = 256
    OKX_TS_LEN = 24            # "2020-12-08T09:08:57.715Z"
    OKX_SIGN_LEN = 44          # base64 of 32 bytes

cdef struct OkxSym:
    int price_decimals, qty_decimals
    int name_len
    char name[OKX_NAME_MAX]

cdef size_t put_iso_ms(char *dst, int64_t ms) noexcept nogil

cdef class OkxOrderSigner:
    cdef HmacKey key
    cdef OkxSym *syms[OKX_MAX_SYMBOLS]
    cdef char buf[OKX_BUF]
    cdef public int64_t signed_count

    cdef size_t _body(self, const CheckedOrder *o, const char *cid, size_t cid_len,
                      char *dst) noexcept nogil
    cdef size_t _finish(self, size_t body_len, int64_t timestamp_ms) noexcept nogil
    cdef int _prepare(self, CheckedOrder *o, symbol_id, side, order_type, tif, qty_units,
                      price_units, timestamp_ms) except -1
    cdef int can_sign(self, const CheckedOrder *o, int64_t timestamp_ms) noexcept nogil
    cdef object sign_checked(self, const CheckedOrder *o, int64_t timestamp_ms)

cdef class OkxOrderPath:
    cdef readonly RiskEngine risk
    cdef readonly OkxOrderSigner signer
    cdef readonly int last_reason
    cdef readonly int64_t last_gap
    cdef readonly int64_t risk_done_ns
