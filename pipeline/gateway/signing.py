"""Signing facade: the compiled kernels (ext/sign.pyx) for the hot path, `cryptography` for Ed25519.

    signer = BinanceSigner(secret, recv_window_ms=5000)     # key schedule computed once, here
    signer.set_instrument(rules)                             # same InstrumentRules as the risk engine
    body = signer.encode_sign(symbol_id, side, order_type, tif, qty_units, price_units, cid, ts_ms)

The signer only signs: the hot path from a signal record is pipeline.gateway.orderpath.OrderPath
(the risk kernel decides, then this signer encodes and signs, one compiled call).

The pure-Python twins live in `pipeline.gateway.sign_py` (same classes, same bytes).
Ed25519 (Binance Ed25519 API keys) is on the cool path through the `cryptography` package; the
libcrypto EVP version in the kernel (`_sign.Ed25519Signer`) gives the same signatures.
"""
from __future__ import annotations

from pipeline import _native
from pipeline.gateway import sign_py

_sign = _native.load("sign")

HmacSha256 = _sign.HmacSha256
BinanceSigner = _sign.BinanceSigner
OkxSigner = _sign.OkxSigner
okx_prehash = _sign.okx_prehash
Ed25519Signer = sign_py.Ed25519Signer          # cryptography, cool path
ed25519_verify = sign_py.ed25519_verify
format_units = sign_py.format_units
client_order_id = sign_py.client_order_id      # bytes; orders.client_id is the builder (str)
ws_api_payload = sign_py.ws_api_payload        # WS-API params → signature payload (cool path)

__all__ = ["HmacSha256", "BinanceSigner", "OkxSigner", "okx_prehash", "Ed25519Signer",
           "ed25519_verify", "format_units", "client_order_id", "ws_api_payload"]
