"""Pure-Python twin of ext/sign.pyx: Binance order encoding, HMAC-SHA256 (hmac/hashlib), the OKX
prehash, Ed25519 (cryptography). Same classes, same signatures, same bytes (tests/parity).

Binance order query string (REST POST /api/v3/order body; WS-API params use the same values).
Default layout (`recv_window_first=True`):

    symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&recvWindow=5000&quantity=0.01000
    &price=52000.00&newClientOrderId=pl1.18a2b3c4d5e6f708.2a&timestamp=1700000000000
    &signature=<64 lowercase hex>

  Binance REST takes parameters in any order and signs exactly the bytes sent, so every parameter
  that is constant per (symbol, side, type, timeInForce) comes first: that prefix (>= 64 bytes for
  LIMIT orders) is absorbed into the HMAC's inner SHA-256 state once per instrument by the compiled
  kernel, which saves one SHA-256 block per order. `recv_window_first=False` gives the documentation
  order (recvWindow after the order fields), which reproduces Binance's published examples.
- timeInForce only for LIMIT; price not for MARKET; newClientOrderId and newOrderRespType only when
  non-empty (newOrderRespType sits just before recvWindow). Quantity and price are printed from exact integer units at the instrument's decimals
  (pipeline/gateway/instruments.py), so there are no float artifacts ("0.1" stays 0.1, never
  0.10000000000000001).
- signature = hex(HMAC-SHA256(secret, query)), over exactly the bytes sent.
- newClientOrderId = "pl<strategy_id hex>.<epoch hex>.<seq hex>", at most 34 characters because the
  risk check bounds strategy_id < 2**16 and seq < 2**40 (Binance allows 36, [.A-Za-z0-9:/_-]).

Secrets: a signer never stores the key in an attribute (the HMAC object keeps only the keyed hash
state), and every repr is redacted.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from pipeline.gateway.instruments import MAX_SYMBOL_ID, InstrumentRules
from pipeline.gateway.orders import client_id

SIDE_NAMES = {1: b"BUY", -1: b"SELL"}
TYPE_NAMES = {1: b"LIMIT", 2: b"MARKET", 3: b"LIMIT_MAKER"}
TIF_NAMES = {1: b"GTC", 2: b"IOC", 3: b"FOK"}
RESP_TYPES = ("", "ACK", "RESULT", "FULL")
# Binance selfTradePreventionMode ("" = not sent: the symbol's default applies)
STP_MODES = ("", "NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH")
MAX_CLIENT_ID = 36
CLIENT_ID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.:/_-")


def _as_bytes(x: Any, what: str) -> bytes:
    if isinstance(x, str):
        return x.encode("utf-8")
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise TypeError(f"{what} must be str or bytes, got {type(x).__name__}")


def format_units(units: int, decimals: int) -> bytes:
    """Exact decimal text of units * 10**-decimals: (5200000, 2) → b"52000.00", (1, 0) → b"1"."""
    if units < 0 or not 0 <= decimals <= 18:
        raise ValueError("units must be >= 0 and decimals 0..18")
    if decimals == 0:
        return b"%d" % units
    s = b"%0*d" % (decimals + 1, units)
    return s[:-decimals] + b"." + s[-decimals:]


def order_prefix(name: bytes, side: int, order_type: int, tif: int, resp_type: str,
                 recv_window_ms: int, recv_window_first: bool, stp_mode: str = "") -> bytes:
    """The parameters that are constant per (symbol, side, type, timeInForce), ending with "&":
    symbol, side, type, timeInForce (LIMIT only) and, when recv_window_first, newOrderRespType
    (if set), selfTradePreventionMode (if set) and recvWindow. The compiled kernel hashes whole
    64-byte blocks of it once."""
    parts = [b"symbol=", name, b"&side=", SIDE_NAMES[side], b"&type=", TYPE_NAMES[order_type]]
    if order_type == 1:
        parts += [b"&timeInForce=", TIF_NAMES[tif]]
    if recv_window_first:
        if resp_type:
            parts += [b"&newOrderRespType=", resp_type.encode("ascii")]
        if stp_mode:
            parts += [b"&selfTradePreventionMode=", stp_mode.encode("ascii")]
        parts.append(b"&recvWindow=%d" % recv_window_ms)
    parts.append(b"&")
    return b"".join(parts)


def client_order_id(strategy_id: int, epoch: int, seq: int) -> bytes:
    """orders.client_id as the bytes the encoder writes."""
    return client_id(strategy_id, epoch, seq).encode("ascii")


def check_client_id(cid: bytes) -> bytes:
    if len(cid) > MAX_CLIENT_ID or not set(cid) <= CLIENT_ID_CHARS:
        raise ValueError("newClientOrderId must be <= 36 characters of [.A-Za-z0-9:/_-]")
    return cid


class HmacSha256:
    """HMAC-SHA256 keyed once (the ipad/opad hash states); digest per message."""

    __slots__ = ("_template",)

    def __init__(self, key: bytes | str):
        self._template = hmac.new(_as_bytes(key, "key"), digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} key=<redacted>>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("signers hold secrets and cannot be pickled")

    def digest(self, msg: bytes | str) -> bytes:
        h = self._template.copy()
        h.update(_as_bytes(msg, "msg"))
        return h.digest()

    def hexdigest(self, msg: bytes | str) -> str:
        return self.digest(msg).hex()

    def b64digest(self, msg: bytes | str) -> str:
        return base64.b64encode(self.digest(msg)).decode("ascii")


class BinanceSigner:
    """Encodes Binance orders and signs them with HMAC-SHA256."""

    def __init__(self, secret: bytes | str, *, recv_window_ms: int = 5000, resp_type: str = "",
                 recv_window_first: bool = True, stp_mode: str = ""):
        if isinstance(recv_window_ms, bool) or not isinstance(recv_window_ms, int) \
                or not 1 <= recv_window_ms <= 60000:
            raise ValueError(f"recv_window_ms must be 1..60000, got {recv_window_ms!r}")
        if resp_type not in RESP_TYPES:
            raise ValueError(f"resp_type must be one of {RESP_TYPES}, got {resp_type!r}")
        if stp_mode not in STP_MODES:
            raise ValueError(f"stp_mode must be one of {STP_MODES}, got {stp_mode!r}")
        self._mac = HmacSha256(secret)
        self.recv_window_ms = recv_window_ms
        self.resp_type = resp_type
        self.stp_mode = stp_mode           # Binance selfTradePreventionMode ("" = not sent)
        self.recv_window_first = bool(recv_window_first)
        self._names: dict[int, tuple[bytes, int, int]] = {}
        self.signed_count = 0          # orders signed (_sign_checked / encode_sign)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} secret=<redacted> recv_window_ms={self.recv_window_ms}>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("signers hold secrets and cannot be pickled")

    def set_instrument(self, rules: InstrumentRules) -> None:
        if not isinstance(rules, InstrumentRules):
            raise TypeError("set_instrument takes an InstrumentRules")
        self._names[rules.symbol_id] = (rules.encoded_name, rules.price_decimals,
                                        rules.qty_decimals)

    def sign(self, query: bytes | str) -> str:
        """hex(HMAC-SHA256(secret, query))."""
        return self._mac.hexdigest(query)

    def encode(self, symbol_id: int, side: int, order_type: int, tif: int, qty_units: int,
               price_units: int, client_id: bytes, timestamp_ms: int) -> bytes:
        """The unsigned query string."""
        inst = self._names.get(symbol_id) if isinstance(symbol_id, int) else None
        if inst is None:
            raise ValueError(f"symbol id {symbol_id!r} has no instrument")
        name, pd, qd = inst
        if side not in SIDE_NAMES or order_type not in TYPE_NAMES:
            raise ValueError("bad side or order type")
        if order_type == 1 and tif not in TIF_NAMES:
            raise ValueError("LIMIT needs timeInForce GTC, IOC or FOK")
        if qty_units <= 0 or (order_type != 2 and price_units <= 0) or timestamp_ms < 0:
            raise ValueError("quantity and price units must be > 0, timestamp >= 0")
        cid = check_client_id(_as_bytes(client_id, "client_id"))
        parts = [order_prefix(name, side, order_type, tif, self.resp_type, self.recv_window_ms,
                              self.recv_window_first, self.stp_mode),
                 b"quantity=", format_units(qty_units, qd)]
        if order_type != 2:
            parts += [b"&price=", format_units(price_units, pd)]
        if cid:
            parts += [b"&newClientOrderId=", cid]
        if not self.recv_window_first:
            if self.resp_type:
                parts += [b"&newOrderRespType=", self.resp_type.encode()]
            if self.stp_mode:
                parts += [b"&selfTradePreventionMode=", self.stp_mode.encode()]
            parts.append(b"&recvWindow=%d" % self.recv_window_ms)
        parts.append(b"&timestamp=%d" % timestamp_ms)
        return b"".join(parts)

    def encode_sign(self, symbol_id: int, side: int, order_type: int, tif: int, qty_units: int,
                    price_units: int, client_id: bytes, timestamp_ms: int) -> bytes:
        """The query string with `&signature=<hex>` appended: the request body to send."""
        q = self.encode(symbol_id, side, order_type, tif, qty_units, price_units, client_id,
                        timestamp_ms)
        self.signed_count += 1
        return q + b"&signature=" + self._mac.hexdigest(q).encode("ascii")

    # the order path's two steps (pipeline/gateway/orderpath_py.py; cdef in the kernel)
    def _can_sign(self, symbol_id: int, timestamp_ms: int) -> int:
        """0 when this signer can encode an order the risk kernel accepted, else the Reason."""
        from pipeline.gateway.reasons import Reason
        if symbol_id not in self._names:
            return int(Reason.UNKNOWN_SYMBOL)
        if timestamp_ms < 0:
            return int(Reason.MALFORMED)
        return 0

    def _sign_checked(self, symbol_id: int, side: int, order_type: int, tif: int, qty: float,
                      price: float, strategy_id: int, epoch: int, seq: int,
                      timestamp_ms: int) -> bytes:
        """Encode + sign a checked order (the kernel's CheckedOrder, from the signal's fields)."""
        from pipeline.gateway.risk_py import POW10, to_units
        _name, pd, qd = self._names[symbol_id]
        qu = to_units(qty, POW10[qd])
        pu = 0 if order_type == 2 else to_units(price, POW10[pd])
        return self.encode_sign(symbol_id, side, order_type, tif, qu, pu,
                                client_order_id(strategy_id, epoch, seq), timestamp_ms)


def ws_api_payload(params: dict[str, Any]) -> bytes:
    """Binance WebSocket API signature payload: every parameter except `signature`, sorted by name,
    `name=value` joined with "&" (UTF-8, not percent-encoded; booleans as true/false). Reproduces
    all 17 verified WS-API examples from their request params (cool path; a hot WS-API encoder can
    pre-hash the constant `apiKey=<64 chars>&` prefix exactly like the REST one)."""
    def text(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            raise TypeError("WS-API decimals must be given as strings (exact), not floats")
        return str(v)
    return "&".join(f"{k}={text(params[k])}" for k in sorted(params)
                    if k != "signature").encode("utf-8")


def okx_prehash(timestamp: bytes | str, method: bytes | str, path: bytes | str,
                body: bytes | str = b"") -> bytes:
    """OKX v5: timestamp + METHOD + requestPath (with query) + body, as bytes."""
    return (_as_bytes(timestamp, "timestamp") + _as_bytes(method, "method").upper()
            + _as_bytes(path, "path") + _as_bytes(body, "body"))


class OkxSigner:
    """OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, prehash))."""

    def __init__(self, secret: bytes | str):
        self._mac = HmacSha256(secret)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} secret=<redacted>>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("signers hold secrets and cannot be pickled")

    def sign(self, timestamp: bytes | str, method: bytes | str, path: bytes | str,
             body: bytes | str = b"") -> str:
        return self._mac.b64digest(okx_prehash(timestamp, method, path, body))


def _ed25519_private(key: bytes | str):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    kb = _as_bytes(key, "key")
    if kb.lstrip().startswith(b"-----BEGIN"):
        try:
            k = load_pem_private_key(kb, password=None)
        except (ValueError, TypeError):
            raise ValueError("not a PEM Ed25519 private key") from None
        if not isinstance(k, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return k
    if len(kb) != 32:
        raise ValueError("an Ed25519 private key is 32 raw bytes or PKCS#8 PEM")
    return Ed25519PrivateKey.from_private_bytes(kb)


def ed25519_raw_private(key: bytes | str) -> bytes:
    """The 32-byte seed of a raw or PKCS#8 PEM Ed25519 private key (cool path)."""
    from cryptography.hazmat.primitives import serialization as s
    return _ed25519_private(key).private_bytes(s.Encoding.Raw, s.PrivateFormat.Raw,
                                               s.NoEncryption())


def ed25519_raw_public(key: bytes | str) -> bytes:
    """The 32-byte public key from raw bytes or an SPKI PEM (cool path)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    kb = _as_bytes(key, "key")
    if kb.lstrip().startswith(b"-----BEGIN"):
        try:
            k = load_pem_public_key(kb)
        except (ValueError, TypeError):
            raise ValueError("not a PEM Ed25519 public key") from None
        if not isinstance(k, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        from cryptography.hazmat.primitives import serialization as s
        return k.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)
    if len(kb) != 32:
        raise ValueError("an Ed25519 public key is 32 raw bytes or SPKI PEM")
    return kb


class Ed25519Signer:
    """Binance Ed25519 keys: signature = base64(Ed25519(private_key, payload))."""

    def __init__(self, private_key: bytes | str):
        self._key = _ed25519_private(private_key)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} private_key=<redacted>>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("signers hold secrets and cannot be pickled")

    def sign(self, msg: bytes | str) -> bytes:
        return self._key.sign(_as_bytes(msg, "msg"))

    def sign_b64(self, msg: bytes | str) -> str:
        return base64.b64encode(self.sign(msg)).decode("ascii")

    def public_key(self) -> bytes:
        from cryptography.hazmat.primitives import serialization as s
        return self._key.public_key().public_bytes(s.Encoding.Raw, s.PublicFormat.Raw)


def ed25519_verify(public_key: bytes | str, signature: bytes, msg: bytes | str) -> bool:
    """True iff `signature` is a valid Ed25519 signature of msg (the simulator's side)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        pk = Ed25519PublicKey.from_public_bytes(ed25519_raw_public(public_key))
        pk.verify(bytes(signature), _as_bytes(msg, "msg"))
        return True
    except (InvalidSignature, ValueError):
        return False


__all__ = ["HmacSha256", "BinanceSigner", "OkxSigner", "Ed25519Signer", "ed25519_verify",
           "okx_prehash", "format_units", "client_order_id", "MAX_SYMBOL_ID"]
