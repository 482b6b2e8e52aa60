"""Binance Ed25519 API keys for the gateway (`[gateway] key_type = "ed25519"`).

With an Ed25519 key the "secret" is the private key, which never leaves this box: Binance only
holds its public half. In the credentials file (or the secret's environment variable) it is one
line: the base64 body of the PKCS#8 PEM (`openssl genpkey -algorithm ed25519 -out key.pem`, then
`grep -v -- ----- key.pem | tr -d '\\n'`), or the base64 of the 32-byte seed, or the whole PEM
where newlines are allowed.

Signatures are base64 Ed25519 over the same payloads HMAC keys sign (percent-encoded in a REST
query string). Orders go over the WebSocket API, whose connections log on once (session.logon) so
that each order needs no signature; the REST calls of the cool path (reconciliation, cancels,
queries) are signed here.
"""
from __future__ import annotations

import base64
from typing import Callable
from urllib.parse import quote

from pipeline.gateway.sign_py import Ed25519Signer


def ed25519_signer(secret: str) -> Ed25519Signer:
    """The signer of a private key given as PEM, base64 PKCS#8 DER or base64 32-byte seed.
    ValueError (never quoting the key) when it is none of these."""
    t = secret.strip()
    if t.startswith("-----BEGIN"):
        return Ed25519Signer(t)
    try:
        raw = base64.b64decode(t, validate=True)
    except ValueError:
        raise ValueError("the Ed25519 private key is not PEM or base64") from None
    if len(raw) == 32:
        return Ed25519Signer(raw)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption,
                                                              PrivateFormat, load_der_private_key)
    try:
        k = load_der_private_key(raw, password=None)
    except (ValueError, TypeError):
        raise ValueError("the Ed25519 private key is not a PKCS#8 key") from None
    if not isinstance(k, Ed25519PrivateKey):
        raise ValueError("the private key is not an Ed25519 key")
    return Ed25519Signer(k.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def rest_sign(signer: Ed25519Signer) -> Callable[[bytes], str]:
    """REST: the signature parameter's value (base64, percent-encoded)."""
    return lambda payload: quote(signer.sign_b64(payload), safe="")


def ws_sign(signer: Ed25519Signer) -> Callable[[bytes], str]:
    """WebSocket API: base64 in the JSON params."""
    return signer.sign_b64
