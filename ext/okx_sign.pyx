# cython: language_level=3
"""The OKX order path: one compiled call from a signal record to a signed OKX v5 order request.

`OkxOrderPath(risk, signer).process(msg, now_mono, timestamp_ms)` runs the risk kernel's check
(as ext/orderpath.pyx does for Binance), then `OkxOrderSigner` writes the order's JSON body and
signs it: OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp + "POST" + "/api/v5/trade/order"
+ body)), from the key's pre-computed HMAC states (ext/sign.pyx hmac_init), no allocation but the
returned bytes. The result is one bytes object:

    [0:24)   OK-ACCESS-TIMESTAMP, ISO 8601 UTC with milliseconds ("2020-12-08T09:08:57.715Z")
    [24:68)  OK-ACCESS-SIGN (base64, 44 characters)
    [68:)    the request body (pipeline/venues/okx/okx_sign_py.py documents its layout)

`split(blob)` (twin module) gives the three parts. Formats and rules are documented in the twin;
tests/parity checks identical bytes.
"""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.string cimport memcpy, memset
from libc.stdlib cimport calloc, free
from libc.stdint cimport int64_t, uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from pipeline._ext.sign cimport (HmacKey, hmac_init, put_hex, put_int, put_units, SHA256_CTX,
                                 SHA256_Update, SHA256_Final, EVP_EncodeBlock, OPENSSL_cleanse)
from pipeline._ext.risk cimport RiskEngine, CheckedOrder, R_UNKNOWN_SYMBOL, R_MALFORMED

DEF HEAD = 68                  # OKX_TS_LEN + OKX_SIGN_LEN
cdef const char *POST_PATH = b"POST/api/v5/trade/order"
DEF POST_PATH_LEN = 23


cdef inline size_t put(char *dst, const char *src, size_t n) noexcept nogil:
    memcpy(dst, src, n)
    return n


cdef inline void put2(char *dst, int v) noexcept nogil:
    dst[0] = <char>(48 + v // 10)
    dst[1] = <char>(48 + v % 10)


cdef size_t put_iso_ms(char *dst, int64_t ms) noexcept nogil:
    """"YYYY-MM-DDTHH:MM:SS.mmmZ" of a Unix time in ms >= 0 (civil_from_days, H. Hinnant)."""
    cdef int64_t days = ms // 86400000
    cdef int64_t rem = ms - days * 86400000
    cdef int64_t z = days + 719468
    cdef int64_t era = z // 146097
    cdef int64_t doe = z - era * 146097
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef int64_t y = yoe + era * 400
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef int64_t mp = (5 * doy + 2) // 153
    cdef int d = <int>(doy - (153 * mp + 2) // 5 + 1)
    cdef int m = <int>(mp + 3 if mp < 10 else mp - 9)
    if m <= 2:
        y += 1
    put2(dst, <int>(y // 100))
    put2(dst + 2, <int>(y % 100))
    dst[4] = 45
    put2(dst + 5, m)
    dst[7] = 45
    put2(dst + 8, d)
    dst[10] = 84          # T
    cdef int secs = <int>(rem // 1000)
    put2(dst + 11, secs // 3600)
    dst[13] = 58
    put2(dst + 14, (secs // 60) % 60)
    dst[16] = 58
    put2(dst + 17, secs % 60)
    dst[19] = 46
    cdef int milli = <int>(rem % 1000)
    dst[20] = <char>(48 + milli // 100)
    put2(dst + 21, milli % 100)
    dst[23] = 90          # Z
    return 24


def iso_ms(ms):
    """OK-ACCESS-TIMESTAMP of a Unix time in ms (as pipeline.venues.okx.orders.iso_ms)."""
    cdef char out[24]
    if ms < 0:
        raise ValueError("timestamp must be >= 0")
    put_iso_ms(out, ms)
    return out[:24].decode("ascii")


cdef size_t put_okx_cid(char *dst, int64_t strategy_id, int64_t epoch, int64_t seq) noexcept nogil:
    """OKX clOrdId of our client id: "<strategy hex>x<epoch hex>x<seq hex>"."""
    cdef size_t k = put_hex(dst, <uint64_t>strategy_id)
    dst[k] = 120      # 'x'
    k += 1
    k += put_hex(dst + k, <uint64_t>epoch)
    dst[k] = 120
    k += 1
    k += put_hex(dst + k, <uint64_t>seq)
    return k


cdef bytes _b(object x, str what):
    if isinstance(x, str):
        return x.encode("utf-8")
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise TypeError(f"{what} must be str or bytes, got {type(x).__name__}")


cdef class OkxOrderSigner:
    """Encodes OKX v5 spot orders (JSON) and signs them (pre-keyed HMAC-SHA256, base64)."""

    def __cinit__(self, *args, **kwargs):
        memset(self.syms, 0, sizeof(self.syms))
        self.signed_count = 0

    def __init__(self, secret):
        cdef bytes kb = _b(secret, "secret")
        hmac_init(&self.key, kb, len(kb))

    def __dealloc__(self):
        OPENSSL_cleanse(&self.key, sizeof(HmacKey))
        for k in range(OKX_MAX_SYMBOLS):
            if self.syms[k] != NULL:
                free(self.syms[k])

    def __repr__(self):
        return "<OkxOrderSigner secret=<redacted>>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("signers hold secrets and cannot be pickled")

    def set_instrument(self, rules):
        from pipeline.gateway.instruments import InstrumentRules
        if not isinstance(rules, InstrumentRules):
            raise TypeError("set_instrument takes an InstrumentRules")
        cdef bytes name = rules.name.encode("ascii")
        cdef int sid = rules.symbol_id
        if not 0 < sid < OKX_MAX_SYMBOLS:
            raise ValueError(f"symbol id {sid} out of range")
        if len(name) > OKX_NAME_MAX or b'"' in name or b"\\" in name:
            raise ValueError(f"instId {rules.name!r} cannot be encoded")
        cdef OkxSym *e = self.syms[sid]
        if e == NULL:
            e = <OkxSym *>calloc(1, sizeof(OkxSym))
            if e == NULL:
                raise MemoryError()
            self.syms[sid] = e
        e.price_decimals = rules.price_decimals
        e.qty_decimals = rules.qty_decimals
        e.name_len = len(name)
        memcpy(e.name, <char *>name, e.name_len)

    def sign(self, timestamp, method, path, body=b""):
        """OK-ACCESS-SIGN of any request (cool path: queries, cancels, the WS login)."""
        from pipeline.gateway.sign_py import okx_prehash
        cdef bytes m = okx_prehash(timestamp, method, path, body)
        cdef SHA256_CTX c
        cdef unsigned char inner[32]
        cdef unsigned char mac[32]
        cdef unsigned char b64[48]
        memcpy(&c, &self.key.inner, sizeof(SHA256_CTX))
        SHA256_Update(&c, <char *>m, len(m))
        SHA256_Final(inner, &c)
        memcpy(&c, &self.key.outer, sizeof(SHA256_CTX))
        SHA256_Update(&c, inner, 32)
        SHA256_Final(mac, &c)
        cdef int n = EVP_EncodeBlock(b64, mac, 32)
        return (<char *>b64)[:n].decode("ascii")

    cdef size_t _body(self, const CheckedOrder *o, const char *cid, size_t cid_len,
                      char *dst) noexcept nogil:
        cdef const OkxSym *e = self.syms[o.symbol]
        cdef size_t n = 0
        n += put(dst + n, '{"instId":"', 11)
        n += put(dst + n, e.name, e.name_len)
        n += put(dst + n, '","tdMode":"cash","clOrdId":"', 29)
        n += put(dst + n, cid, cid_len)
        if o.side == 1:
            n += put(dst + n, '","side":"buy","ordType":"', 26)
        else:
            n += put(dst + n, '","side":"sell","ordType":"', 27)
        if o.order_type == 2:
            n += put(dst + n, 'market","tgtCcy":"base_ccy', 26)
        elif o.order_type == 3:
            n += put(dst + n, 'post_only', 9)
        elif o.tif == 2:
            n += put(dst + n, 'ioc', 3)
        elif o.tif == 3:
            n += put(dst + n, 'fok', 3)
        else:
            n += put(dst + n, 'limit', 5)
        n += put(dst + n, '","sz":"', 8)
        n += put_units(dst + n, o.qty_units, e.qty_decimals)
        if o.order_type != 2:
            n += put(dst + n, '","px":"', 8)
            n += put_units(dst + n, o.price_units, e.price_decimals)
        n += put(dst + n, '"}', 2)
        return n

    cdef size_t _finish(self, size_t body_len, int64_t timestamp_ms) noexcept nogil:
        """Timestamp at [0:24), sign at [24:68) over ts + POST + path + body at [68:)."""
        cdef SHA256_CTX c
        cdef unsigned char inner[32]
        cdef unsigned char mac[32]
        cdef unsigned char b64[48]
        put_iso_ms(self.buf, timestamp_ms)
        memcpy(&c, &self.key.inner, sizeof(SHA256_CTX))
        SHA256_Update(&c, self.buf, 24)
        SHA256_Update(&c, POST_PATH, POST_PATH_LEN)
        SHA256_Update(&c, self.buf + HEAD, body_len)
        SHA256_Final(inner, &c)
        memcpy(&c, &self.key.outer, sizeof(SHA256_CTX))
        SHA256_Update(&c, inner, 32)
        SHA256_Final(mac, &c)
        OPENSSL_cleanse(&c, sizeof(SHA256_CTX))
        EVP_EncodeBlock(b64, mac, 32)
        memcpy(self.buf + 24, b64, 44)
        self.signed_count += 1
        return HEAD + body_len

    cdef int can_sign(self, const CheckedOrder *o, int64_t timestamp_ms) noexcept nogil:
        if o.symbol >= OKX_MAX_SYMBOLS or self.syms[o.symbol] == NULL:
            return R_UNKNOWN_SYMBOL
        if timestamp_ms < 0:
            return R_MALFORMED
        return 0

    cdef object sign_checked(self, const CheckedOrder *o, int64_t timestamp_ms):
        cdef char cid[40]
        cdef size_t k = put_okx_cid(cid, o.strategy_id, o.epoch, o.seq)
        cdef size_t n = self._body(o, cid, k, self.buf + HEAD)
        n = self._finish(n, timestamp_ms)
        return PyBytes_FromStringAndSize(self.buf, n)

    cdef int _prepare(self, CheckedOrder *o, symbol_id, side, order_type, tif, qty_units,
                      price_units, timestamp_ms) except -1:
        if not isinstance(symbol_id, int) or not 0 < symbol_id < OKX_MAX_SYMBOLS \
                or self.syms[<int>symbol_id] == NULL:
            raise ValueError(f"symbol id {symbol_id!r} has no instrument")
        if side not in (1, -1) or order_type not in (1, 2, 3):
            raise ValueError("bad side or order type")
        if order_type == 1 and tif not in (1, 2, 3):
            raise ValueError("LIMIT needs timeInForce GTC, IOC or FOK")
        if qty_units <= 0 or (order_type != 2 and price_units <= 0) or timestamp_ms < 0:
            raise ValueError("quantity and price units must be > 0, timestamp >= 0")
        o.symbol = symbol_id
        o.side = side
        o.order_type = order_type
        o.tif = tif if order_type == 1 else 0
        o.qty_units = qty_units
        o.price_units = price_units
        return 0

    def encode(self, symbol_id, side, order_type, tif, qty_units, price_units, client_id,
               timestamp_ms=0):
        """The order's JSON body (unsigned)."""
        cdef CheckedOrder o
        cdef bytes cid = _check_cid(client_id)
        self._prepare(&o, symbol_id, side, order_type, tif, qty_units, price_units, timestamp_ms)
        cdef size_t n = self._body(&o, cid, len(cid), self.buf + HEAD)
        return PyBytes_FromStringAndSize(self.buf + HEAD, n)

    def encode_sign(self, symbol_id, side, order_type, tif, qty_units, price_units, client_id,
                    timestamp_ms):
        """timestamp + sign + body (the layout in the module docstring)."""
        cdef CheckedOrder o
        cdef bytes cid = _check_cid(client_id)
        self._prepare(&o, symbol_id, side, order_type, tif, qty_units, price_units, timestamp_ms)
        cdef size_t n = self._body(&o, cid, len(cid), self.buf + HEAD)
        n = self._finish(n, timestamp_ms)
        return PyBytes_FromStringAndSize(self.buf, n)


cdef bytes _check_cid(object client_id):
    from pipeline.venues.okx.okx_sign_py import check_okx_cid
    return check_okx_cid(_b(client_id, "client_id"))


cdef class OkxOrderPath:
    """Risk check then OKX encode + sign, one call (as ext/orderpath.pyx OrderPath)."""

    def __init__(self, RiskEngine risk, OkxOrderSigner signer):
        self.risk = risk
        self.signer = signer
        self.last_reason = 0
        self.last_gap = 0
        self.risk_done_ns = 0

    def set_name(self, symbol_id, name):
        """The order path's interface (ext/orderpath.pyx names symbols for its compiled journal
        record): the OKX path has no compiled journal + send step, so there is nothing to name."""

    def process(self, msg, now_mono, int64_t timestamp_ms):
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
