# cython: language_level=3
"""Request encoding and signing: Binance order query strings into a preallocated buffer, signed
with HMAC-SHA256 from a pre-keyed state (OpenSSL libcrypto); the OKX prehash with base64 output;
Ed25519 through libcrypto's EVP (the `cryptography` twin is the default on the cool path).

HMAC-SHA256(K, m) = SHA256((K0 ^ opad) || SHA256((K0 ^ ipad) || m)) (RFC 2104). The two SHA-256
states after absorbing the 64-byte (K0 ^ ipad) and (K0 ^ opad) blocks are computed once per key
(hmac_init); each message copies them by value (two 112-byte struct copies, no allocation) and runs
the remaining compressions through libcrypto's SHA256_Update/Final. The key itself is wiped after
the schedule and never stored; only the derived hash states live in the object.

Formats and rules are documented in the pure-Python twin, pipeline/gateway/sign_py.py; tests/parity
checks identical bytes.
"""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.string cimport memcpy, memset
from libc.stdlib cimport calloc, free
from libc.stdint cimport int64_t, uint64_t
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

from pipeline._ext.risk cimport CheckedOrder, R_UNKNOWN_SYMBOL, R_MALFORMED

DEF SIG_HEX = 64
DEF SIG_PREFIX_LEN = 11       # "&signature="

cdef const char *HEX = b"0123456789abcdef"


# ====================================================================== SIGNING
cdef void hmac_init(HmacKey *k, const unsigned char *key, size_t n) noexcept nogil:
    cdef unsigned char k0[64]
    cdef unsigned char pad[64]
    cdef int i
    memset(k0, 0, 64)
    if n > 64:
        SHA256(key, n, k0)               # RFC 2104: keys longer than a block are hashed first
    else:
        memcpy(k0, key, n)
    for i in range(64):
        pad[i] = k0[i] ^ 0x36
    SHA256_Init(&k.inner)
    SHA256_Update(&k.inner, pad, 64)
    for i in range(64):
        pad[i] = k0[i] ^ 0x5c
    SHA256_Init(&k.outer)
    SHA256_Update(&k.outer, pad, 64)
    OPENSSL_cleanse(k0, 64)
    OPENSSL_cleanse(pad, 64)


cdef void hmac_sha256(const HmacKey *k, const unsigned char *msg, size_t n,
                      unsigned char *out) noexcept nogil:
    cdef SHA256_CTX c
    cdef unsigned char inner[32]
    memcpy(&c, &k.inner, sizeof(SHA256_CTX))
    SHA256_Update(&c, msg, n)
    SHA256_Final(inner, &c)
    memcpy(&c, &k.outer, sizeof(SHA256_CTX))
    SHA256_Update(&c, inner, 32)
    SHA256_Final(out, &c)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void hex_encode(const unsigned char *src, size_t n, char *dst) noexcept nogil:
    cdef size_t i
    for i in range(n):
        dst[2 * i] = HEX[src[i] >> 4]
        dst[2 * i + 1] = HEX[src[i] & 15]


cdef bytes _key_bytes(object key, str what):
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"{what} must be str or bytes, got {type(key).__name__}")


cdef class HmacSha256:
    """HMAC-SHA256 keyed once; digest / hexdigest / b64digest per message. Same API as the twin."""

    def __init__(self, key):
        cdef bytes kb = _key_bytes(key, "key")
        hmac_init(&self.key, kb, len(kb))

    def __dealloc__(self):
        OPENSSL_cleanse(&self.key, sizeof(HmacKey))

    def __repr__(self):
        return "<HmacSha256 key=<redacted>>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("signers hold secrets and cannot be pickled")

    def digest(self, msg):
        cdef unsigned char out[32]
        cdef bytes m = _key_bytes(msg, "msg")
        hmac_sha256(&self.key, m, len(m), out)
        return PyBytes_FromStringAndSize(<char *>out, 32)

    def hexdigest(self, msg):
        cdef unsigned char out[32]
        cdef char hx[64]
        cdef bytes m = _key_bytes(msg, "msg")
        hmac_sha256(&self.key, m, len(m), out)
        hex_encode(out, 32, hx)
        return hx[:64].decode("ascii")

    def b64digest(self, msg):
        cdef unsigned char out[32]
        cdef unsigned char b64[48]
        cdef bytes m = _key_bytes(msg, "msg")
        hmac_sha256(&self.key, m, len(m), out)
        cdef int n = EVP_EncodeBlock(b64, out, 32)
        return (<char *>b64)[:n].decode("ascii")


# ====================================================================== ENCODING
cdef inline size_t put(char *dst, const char *src, size_t n) noexcept nogil:
    memcpy(dst, src, n)
    return n


cdef const char *DIGITS2 = (b"00010203040506070809101112131415161718192021222324252627282930313233"
                            b"34353637383940414243444546474849505152535455565758596061626364656667"
                            b"6869707172737475767778798081828384858687888990919293949596979899")


cdef inline int rev_digits(uint64_t u, char *end) noexcept nogil:
    """Writes the decimal digits of u so that they end just before `end`; returns their count."""
    cdef char *p = end
    cdef uint64_t q
    cdef unsigned int r
    while u >= 100:
        q = u // 100
        r = <unsigned int>(u - q * 100)
        p -= 2
        p[0] = DIGITS2[2 * r]
        p[1] = DIGITS2[2 * r + 1]
        u = q
    if u >= 10:
        p -= 2
        p[0] = DIGITS2[2 * u]
        p[1] = DIGITS2[2 * u + 1]
    else:
        p -= 1
        p[0] = <char>(48 + u)
    return <int>(end - p)


cdef size_t put_int(char *dst, int64_t v) noexcept nogil:
    """Decimal digits of v >= 0."""
    cdef char tmp[24]
    cdef int n = rev_digits(<uint64_t>v, tmp + 24)
    memcpy(dst, tmp + 24 - n, n)
    return n


cdef size_t put_hex(char *dst, uint64_t v) noexcept nogil:
    """Lowercase hex digits of v, no leading zeros ("0" for 0): as Python's "%x"."""
    cdef char tmp[16]
    cdef int n = 0, i
    while True:
        tmp[n] = HEX[v & 15]
        n += 1
        v >>= 4
        if v == 0:
            break
    for i in range(n):
        dst[i] = tmp[n - 1 - i]
    return n


cdef size_t put_units(char *dst, int64_t units, int decimals) noexcept nogil:
    """Exact decimal text of units * 10**-decimals: (5200000, 2) → "52000.00", (1, 0) → "1"."""
    cdef char tmp[24]
    cdef int c = rev_digits(<uint64_t>units, tmp + 24)
    cdef const char *digits = tmp + 24 - c
    cdef int k = 0, zeros
    if decimals == 0:
        memcpy(dst, digits, c)
        return c
    if c > decimals:
        memcpy(dst, digits, c - decimals)
        k = c - decimals
        dst[k] = 46     # '.'
        memcpy(dst + k + 1, digits + c - decimals, decimals)
        return k + 1 + decimals
    zeros = decimals - c
    dst[0] = 48         # '0'
    dst[1] = 46         # '.'
    memset(dst + 2, 48, zeros)
    memcpy(dst + 2 + zeros, digits, c)
    return 2 + decimals


cdef size_t put_client_id(char *dst, int64_t strategy_id, int64_t epoch, int64_t seq) noexcept nogil:
    """The client order id "pl<strategy hex>.<epoch hex>.<seq hex>" (twin: orders.client_id)."""
    cdef size_t k
    dst[0] = 112    # 'p'
    dst[1] = 108    # 'l'
    k = 2 + put_hex(dst + 2, <uint64_t>strategy_id)
    dst[k] = 46     # '.'
    k += 1
    k += put_hex(dst + k, <uint64_t>epoch)
    dst[k] = 46
    k += 1
    k += put_hex(dst + k, <uint64_t>seq)
    return k


def client_id(strategy_id, epoch, seq):
    """The client order id of a signal, as the order path builds it (str)."""
    cdef char buf[56]
    cdef size_t n = put_client_id(buf, strategy_id, epoch, seq)
    return buf[:n].decode("ascii")


cdef int combo_index(int side, int order_type, int tif) noexcept nogil:
    cdef int k
    if order_type == 1:
        k = tif - 1
    elif order_type == 2:
        k = 3
    else:
        k = 4
    return (0 if side == 1 else 5) + k


cdef object _check_client_id = None


cdef class BinanceSigner:
    """Encodes Binance orders into a preallocated buffer and signs them (pre-keyed HMAC-SHA256).
    The constant parameter prefix of every (symbol, side, type, timeInForce) is built, and its whole
    64-byte blocks hashed into a copy of the HMAC inner state, once in set_instrument()."""

    def __cinit__(self, *args, **kwargs):
        memset(self.syms, 0, sizeof(self.syms))
        self.signed_count = 0

    def __init__(self, secret, *, recv_window_ms=5000, resp_type="", recv_window_first=True,
                 stp_mode=""):
        global _check_client_id
        from pipeline.gateway.sign_py import STP_MODES, check_client_id
        if stp_mode not in STP_MODES:
            raise ValueError(f"stp_mode must be one of {STP_MODES}, got {stp_mode!r}")
        _check_client_id = check_client_id
        if isinstance(recv_window_ms, bool) or not isinstance(recv_window_ms, int) \
                or not 1 <= recv_window_ms <= 60000:
            raise ValueError(f"recv_window_ms must be 1..60000, got {recv_window_ms!r}")
        if resp_type not in ("", "ACK", "RESULT", "FULL"):
            raise ValueError(f"resp_type must be one of ('', 'ACK', 'RESULT', 'FULL'), got "
                             f"{resp_type!r}")
        cdef bytes kb = _key_bytes(secret, "secret")
        hmac_init(&self.key, kb, len(kb))
        self.recv_window_ms = recv_window_ms
        self.resp_type = resp_type
        self.stp_mode = stp_mode
        self.recv_window_first = bool(recv_window_first)
        tail = (b"&newOrderRespType=" + resp_type.encode("ascii") if resp_type else b"") \
            + (b"&selfTradePreventionMode=" + stp_mode.encode("ascii") if stp_mode else b"") \
            + b"&recvWindow=%d" % recv_window_ms
        self.tail_len = len(tail)
        memcpy(self.tail, <char *>tail, self.tail_len)
        for k in range(MAX_SYMBOLS):        # a re-init drops instruments keyed with the old key
            if self.syms[k] != NULL:
                OPENSSL_cleanse(self.syms[k], sizeof(SymbolEntry))
                free(self.syms[k])
                self.syms[k] = NULL

    def __dealloc__(self):
        OPENSSL_cleanse(&self.key, sizeof(HmacKey))
        for k in range(MAX_SYMBOLS):
            if self.syms[k] != NULL:
                OPENSSL_cleanse(self.syms[k], sizeof(SymbolEntry))
                free(self.syms[k])

    def __repr__(self):
        return f"<BinanceSigner secret=<redacted> recv_window_ms={self.recv_window_ms}>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("signers hold secrets and cannot be pickled")

    def set_instrument(self, rules):
        from pipeline.gateway.instruments import InstrumentRules
        from pipeline.gateway.sign_py import order_prefix
        if not isinstance(rules, InstrumentRules):
            raise TypeError("set_instrument takes an InstrumentRules")
        cdef int sid = rules.symbol_id
        cdef SymbolEntry *e = self.syms[sid]
        cdef Prefix *p
        cdef bytes text
        if e == NULL:
            e = <SymbolEntry *>calloc(1, sizeof(SymbolEntry))
            if e == NULL:
                raise MemoryError()
            self.syms[sid] = e
        e.price_decimals = rules.price_decimals
        e.qty_decimals = rules.qty_decimals
        for side in (1, -1):
            for otype, tif in ((1, 1), (1, 2), (1, 3), (2, 0), (3, 0)):
                text = order_prefix(rules.encoded_name, side, otype, tif, self.resp_type,
                                    self.recv_window_ms, self.recv_window_first, self.stp_mode)
                if len(text) > PREFIX_MAX:
                    raise ValueError("order prefix too long for the encoder's buffer")
                p = &e.combos[combo_index(side, otype, tif)]
                memcpy(p.text, <char *>text, len(text))
                p.len = len(text)
                p.absorbed = (p.len // 64) * 64
                memcpy(&p.state, &self.key.inner, sizeof(SHA256_CTX))
                if p.absorbed:
                    SHA256_Update(&p.state, p.text, p.absorbed)

    def sign(self, query):
        """hex(HMAC-SHA256(secret, query))."""
        cdef unsigned char out[32]
        cdef char hx[64]
        cdef bytes m = _key_bytes(query, "query")
        hmac_sha256(&self.key, m, len(m), out)
        hex_encode(out, 32, hx)
        return hx[:64].decode("ascii")

    cdef size_t _encode(self, const CheckedOrder *o, const char *cid, size_t cid_len,
                        int64_t timestamp_ms, const Prefix **pre) noexcept nogil:
        cdef const SymbolEntry *e = self.syms[o.symbol]
        cdef const Prefix *p = &e.combos[combo_index(o.side, o.order_type, o.tif)]
        cdef char *b = self.buf
        cdef size_t n = 0
        pre[0] = p
        n += put(b + n, p.text, p.len)
        n += put(b + n, "quantity=", 9)
        n += put_units(b + n, o.qty_units, e.qty_decimals)
        if o.order_type != 2:
            n += put(b + n, "&price=", 7)
            n += put_units(b + n, o.price_units, e.price_decimals)
        if cid_len:
            n += put(b + n, "&newClientOrderId=", 18)
            n += put(b + n, cid, cid_len)
        if not self.recv_window_first:
            n += put(b + n, self.tail, self.tail_len)
        n += put(b + n, "&timestamp=", 11)
        n += put_int(b + n, timestamp_ms)
        return n

    cdef size_t _sign_append(self, const Prefix *pre, size_t n) noexcept nogil:
        """HMAC from the prefix's pre-hashed inner state over the rest of the buffer, hex appended."""
        cdef SHA256_CTX c
        cdef unsigned char inner[32]
        cdef unsigned char mac[32]
        memcpy(&c, &pre.state, sizeof(SHA256_CTX))
        SHA256_Update(&c, self.buf + pre.absorbed, n - pre.absorbed)
        SHA256_Final(inner, &c)
        memcpy(&c, &self.key.outer, sizeof(SHA256_CTX))
        SHA256_Update(&c, inner, 32)
        SHA256_Final(mac, &c)
        OPENSSL_cleanse(&c, sizeof(SHA256_CTX))
        self.signed_count += 1
        memcpy(self.buf + n, b"&signature=", SIG_PREFIX_LEN)
        hex_encode(mac, 32, self.buf + n + SIG_PREFIX_LEN)
        return n + SIG_PREFIX_LEN + SIG_HEX

    cdef int _prepare(self, CheckedOrder *o, symbol_id, side, order_type, tif, qty_units,
                      price_units, bytes cid, timestamp_ms) except -1:
        if not isinstance(symbol_id, int) or not 0 < symbol_id < MAX_SYMBOLS \
                or self.syms[<int>symbol_id] == NULL:
            raise ValueError(f"symbol id {symbol_id!r} has no instrument")
        if side not in (1, -1) or order_type not in (1, 2, 3):
            raise ValueError("bad side or order type")
        if order_type == 1 and tif not in (1, 2, 3):
            raise ValueError("LIMIT needs timeInForce GTC, IOC or FOK")
        if qty_units <= 0 or (order_type != 2 and price_units <= 0) or timestamp_ms < 0:
            raise ValueError("quantity and price units must be > 0, timestamp >= 0")
        _check_client_id(cid)
        o.symbol = symbol_id
        o.side = side
        o.order_type = order_type
        o.tif = tif if order_type == 1 else 0
        o.qty_units = qty_units
        o.price_units = price_units
        return 0

    def encode(self, symbol_id, side, order_type, tif, qty_units, price_units, client_id,
               timestamp_ms):
        """The unsigned query string."""
        cdef CheckedOrder o
        cdef const Prefix *pre
        cdef bytes cid = _key_bytes(client_id, "client_id")
        self._prepare(&o, symbol_id, side, order_type, tif, qty_units, price_units, cid,
                      timestamp_ms)
        cdef size_t n = self._encode(&o, cid, len(cid), timestamp_ms, &pre)
        return PyBytes_FromStringAndSize(self.buf, n)

    def encode_sign(self, symbol_id, side, order_type, tif, qty_units, price_units, client_id,
                    timestamp_ms):
        """The query string with `&signature=<hex>` appended: the request body to send."""
        cdef CheckedOrder o
        cdef const Prefix *pre
        cdef bytes cid = _key_bytes(client_id, "client_id")
        self._prepare(&o, symbol_id, side, order_type, tif, qty_units, price_units, cid,
                      timestamp_ms)
        cdef size_t n = self._encode(&o, cid, len(cid), timestamp_ms, &pre)
        n = self._sign_append(pre, n)
        return PyBytes_FromStringAndSize(self.buf, n)

    cdef int can_sign(self, const CheckedOrder *o, int64_t timestamp_ms) noexcept nogil:
        """0 when this signer can encode the checked order, else the Reason why not (the order
        path hands the order back to the risk kernel then)."""
        if o.symbol >= MAX_SYMBOLS or self.syms[o.symbol] == NULL:
            return R_UNKNOWN_SYMBOL
        if timestamp_ms < 0:
            return R_MALFORMED
        return 0

    cdef object sign_checked(self, const CheckedOrder *o, int64_t timestamp_ms):
        """Encode + sign an order the risk kernel accepted (can_sign() said 0): the body."""
        cdef const Prefix *pre
        cdef char cid[56]
        cdef size_t k = put_client_id(cid, o.strategy_id, o.epoch, o.seq)
        cdef size_t n = self._encode(o, cid, k, timestamp_ms, &pre)
        n = self._sign_append(pre, n)
        return PyBytes_FromStringAndSize(self.buf, n)


# ====================================================================== OKX
def okx_prehash(timestamp, method, path, body=b""):
    """OKX v5: timestamp + METHOD + requestPath (with query) + body, as bytes."""
    return (_key_bytes(timestamp, "timestamp") + _key_bytes(method, "method").upper()
            + _key_bytes(path, "path") + _key_bytes(body, "body"))


cdef class OkxSigner:
    """OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath + body))."""

    def __init__(self, secret):
        cdef bytes kb = _key_bytes(secret, "secret")
        hmac_init(&self.key, kb, len(kb))

    def __dealloc__(self):
        OPENSSL_cleanse(&self.key, sizeof(HmacKey))

    def __repr__(self):
        return "<OkxSigner secret=<redacted>>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("signers hold secrets and cannot be pickled")

    def sign(self, timestamp, method, path, body=b""):
        cdef bytes pre = okx_prehash(timestamp, method, path, body)
        cdef unsigned char out[32]
        cdef unsigned char b64[48]
        hmac_sha256(&self.key, pre, len(pre), out)
        cdef int n = EVP_EncodeBlock(b64, out, 32)
        return (<char *>b64)[:n].decode("ascii")


# ====================================================================== Ed25519 (libcrypto EVP)
cdef class Ed25519Signer:
    """Ed25519 through the system libcrypto (the twin uses the `cryptography` package)."""

    def __cinit__(self, *args, **kwargs):
        self.pkey = NULL
        self.ctx = NULL

    def __init__(self, private_key):
        from pipeline.gateway.sign_py import ed25519_raw_private
        cdef bytes seed = ed25519_raw_private(private_key)     # PEM parsing: cool path
        if self.pkey != NULL:
            EVP_PKEY_free(self.pkey)
        self.pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32)
        if self.ctx == NULL:
            self.ctx = EVP_MD_CTX_new()
        if self.pkey == NULL or self.ctx == NULL:
            raise ValueError("libcrypto refused the Ed25519 key")

    def __dealloc__(self):
        if self.pkey != NULL:
            EVP_PKEY_free(self.pkey)
        if self.ctx != NULL:
            EVP_MD_CTX_free(self.ctx)

    def __repr__(self):
        return "<Ed25519Signer private_key=<redacted>>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("signers hold secrets and cannot be pickled")

    def sign(self, msg):
        cdef bytes m = _key_bytes(msg, "msg")
        cdef unsigned char sig[64]
        cdef size_t siglen = 64
        if EVP_DigestSignInit(self.ctx, NULL, NULL, NULL, self.pkey) != 1 or \
                EVP_DigestSign(self.ctx, sig, &siglen, m, len(m)) != 1:
            raise RuntimeError("libcrypto Ed25519 signing failed")
        return PyBytes_FromStringAndSize(<char *>sig, siglen)

    def sign_b64(self, msg):
        import base64
        return base64.b64encode(self.sign(msg)).decode("ascii")

    def public_key(self):
        cdef unsigned char pub[32]
        cdef size_t n = 32
        if EVP_PKEY_get_raw_public_key(self.pkey, pub, &n) != 1:
            raise RuntimeError("libcrypto could not export the Ed25519 public key")
        return PyBytes_FromStringAndSize(<char *>pub, n)


def ed25519_verify(public_key, signature, msg):
    """True iff `signature` is a valid Ed25519 signature of msg under public_key (raw or PEM)."""
    from pipeline.gateway.sign_py import ed25519_raw_public
    try:
        pub = ed25519_raw_public(public_key)
    except (ValueError, TypeError):
        return False
    cdef bytes sig = bytes(signature)
    cdef bytes m = _key_bytes(msg, "msg")
    cdef EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, <bytes>pub, 32)
    cdef EVP_MD_CTX *ctx = EVP_MD_CTX_new()
    cdef int ok = 0
    if pk != NULL and ctx != NULL:
        if EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1:
            ok = EVP_DigestVerify(ctx, sig, len(sig), m, len(m)) == 1
    if ctx != NULL:
        EVP_MD_CTX_free(ctx)
    if pk != NULL:
        EVP_PKEY_free(pk)
    return bool(ok)
