/* OpenSSL libcrypto declarations for ext/sign.pyx.
 * The SHA256_* low-level functions are deprecated (not removed) in OpenSSL 3; they are what lets the
 * HMAC key schedule (the ipad/opad hash states) be computed once and copied by value per request,
 * with no allocation: HMAC_CTX_copy / EVP_MAC_CTX_dup allocate provider contexts on every copy.
 * They run the same assembly (SHA-NI / AVX2) as the EVP path. No SHA-256 is written here. */
#ifndef PL_CRYPTO_H
#define PL_CRYPTO_H
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include <openssl/obj_mac.h>
#endif
