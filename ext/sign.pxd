# Table of contents of ext/sign.pyx — request encoding and signing for the gateway's hot path.
# Pure-Python twin: pipeline/gateway/sign_py.py (same classes, same methods, same bytes); the wire
# formats are documented there.
from libc.stdint cimport int64_t, uint8_t, uint64_t
from pipeline._ext.risk cimport RiskEngine, CheckedOrder

# ---------------------------------------------------------------- OPENSSL (ext/pl_crypto.h, libcrypto)
cdef extern from "pl_crypto.h" nogil:
    ctypedef struct SHA256_CTX:
        pass
    int SHA256_Init(SHA256_CTX *c)
    int SHA256_Update(SHA256_CTX *c, const void *data, size_t n)
    int SHA256_Final(unsigned char *md, SHA256_CTX *c)
    unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md)
    int EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n)
    void OPENSSL_cleanse(void *ptr, size_t len)
    ctypedef struct EVP_PKEY:
        pass
    ctypedef struct EVP_MD_CTX:
        pass
    ctypedef struct ENGINE:
        pass
    ctypedef struct EVP_PKEY_CTX:
        pass
    ctypedef struct EVP_MD:
        pass
    int EVP_PKEY_ED25519
    EVP_PKEY *EVP_PKEY_new_raw_private_key(int type, ENGINE *e, const unsigned char *priv, size_t n)
    EVP_PKEY *EVP_PKEY_new_raw_public_key(int type, ENGINE *e, const unsigned char *pub, size_t n)
    void EVP_PKEY_free(EVP_PKEY *pkey)
    int EVP_PKEY_get_raw_public_key(const EVP_PKEY *pkey, unsigned char *pub, size_t *n)
    EVP_MD_CTX *EVP_MD_CTX_new()
    void EVP_MD_CTX_free(EVP_MD_CTX *ctx)
    int EVP_DigestSignInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *t, ENGINE *e,
                           EVP_PKEY *pkey)
    int EVP_DigestSign(EVP_MD_CTX *ctx, unsigned char *sig, size_t *siglen,
                       const unsigned char *tbs, size_t tbslen)
    int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *t, ENGINE *e,
                             EVP_PKEY *pkey)
    int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sig, size_t siglen,
                         const unsigned char *tbs, size_t tbslen)

cdef enum:
    BUF_SIZE = 512            # one encoded + signed order; the longest possible is ~340 bytes
    NAME_MAX = 64             # percent-encoded symbol name (instruments.MAX_NAME_BYTES)
    PREFIX_MAX = 160          # constant parameter prefix of one (symbol, side, type, tif)
    N_COMBOS = 10             # 2 sides x (LIMIT GTC/IOC/FOK, MARKET, LIMIT_MAKER)
    MAX_SYMBOLS = 256

# ---------------------------------------------------------------- SIGNING (pre-keyed HMAC-SHA256)
cdef struct HmacKey:
    SHA256_CTX inner          # SHA256 state after (key ^ ipad): computed once per key
    SHA256_CTX outer          # SHA256 state after (key ^ opad)

cdef void hmac_init(HmacKey *k, const unsigned char *key, size_t n) noexcept nogil
cdef void hmac_sha256(const HmacKey *k, const unsigned char *msg, size_t n,
                      unsigned char *out) noexcept nogil
cdef void hex_encode(const unsigned char *src, size_t n, char *dst) noexcept nogil

cdef class HmacSha256:
    cdef HmacKey key

# ---------------------------------------------------------------- ENCODING (Binance query string)
cdef struct Prefix:
    SHA256_CTX state          # HMAC inner state after ipad + text[:absorbed]
    int len                   # bytes of text
    int absorbed              # whole 64-byte blocks of text already hashed into state
    char text[PREFIX_MAX]

cdef struct SymbolEntry:
    int price_decimals, qty_decimals
    Prefix combos[N_COMBOS]   # index: (0 BUY / 1 SELL) * 5 + (tif-1 for LIMIT, 3 MARKET, 4 MAKER)

cdef int combo_index(int side, int order_type, int tif) noexcept nogil
cdef size_t put(char *dst, const char *src, size_t n) noexcept nogil
cdef size_t put_int(char *dst, int64_t v) noexcept nogil
cdef size_t put_hex(char *dst, uint64_t v) noexcept nogil
cdef size_t put_units(char *dst, int64_t units, int decimals) noexcept nogil
cdef size_t put_client_id(char *dst, int64_t strategy_id, int64_t epoch, int64_t seq) noexcept nogil

cdef class BinanceSigner:
    cdef HmacKey key
    cdef SymbolEntry *syms[MAX_SYMBOLS]       # malloc'd per configured symbol
    cdef char buf[BUF_SIZE]
    cdef readonly int recv_window_ms
    cdef readonly bint recv_window_first
    cdef readonly str resp_type
    cdef readonly str stp_mode                # Binance selfTradePreventionMode ("" = not sent)
    cdef char tail[96]                        # "&newOrderRespType=..&selfTradePreventionMode=..
                                              # &recvWindow=N" (doc layout)
    cdef int tail_len
    cdef public int64_t signed_count          # orders signed (sign_checked / encode_sign)

    cdef size_t _encode(self, const CheckedOrder *o, const char *cid, size_t cid_len,
                        int64_t timestamp_ms, const Prefix **pre) noexcept nogil
    cdef size_t _sign_append(self, const Prefix *pre, size_t n) noexcept nogil
    cdef int _prepare(self, CheckedOrder *o, symbol_id, side, order_type, tif, qty_units,
                      price_units, bytes cid, timestamp_ms) except -1
    # the order path (ext/orderpath.pyx): after the risk kernel's ACCEPT
    cdef int can_sign(self, const CheckedOrder *o, int64_t timestamp_ms) noexcept nogil
    cdef object sign_checked(self, const CheckedOrder *o, int64_t timestamp_ms)

# ---------------------------------------------------------------- OKX and Ed25519 (cool path)
cdef class OkxSigner:
    cdef HmacKey key

cdef class Ed25519Signer:
    cdef EVP_PKEY *pkey
    cdef EVP_MD_CTX *ctx
