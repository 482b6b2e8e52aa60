"""Pure-Python twin of ext/okx_sign.pyx: the OKX v5 order body, its signature, and the OKX order
path (risk check, then encode + sign). Same classes, same methods, same bytes (tests/parity).

Order body (POST /api/v5/trade/order), fields always in this order, no spaces:

    {"instId":"BTC-USDT","tdMode":"cash","clOrdId":"1x18a2b3c4d5e6f708x2a","side":"buy",
     "ordType":"limit","sz":"0.01000","px":"52000.00"}

- ordType: limit (LIMIT GTC), ioc, fok (LIMIT IOC / FOK), post_only (LIMIT_MAKER), market; a market
  order says "tgtCcy":"base_ccy" (right after ordType) so sz is always in the base currency (OKX's
  default for a spot market buy is the quote currency), and has no px.
- sz / px printed from exact integer units at the instrument's decimals (as for Binance).
- clOrdId: pipeline.venues.okx.orders.wire_cid of our client id (alphanumerics, <= 32).

The signed blob is timestamp (24 bytes, ISO 8601 ms UTC) + sign (44 bytes, base64 HMAC-SHA256 of
timestamp + "POST" + "/api/v5/trade/order" + body) + body; `split(blob)` returns the three.
"""
from __future__ import annotations

import time

from pipeline.gateway.instruments import InstrumentRules
from pipeline.gateway.sign_py import HmacSha256, format_units, okx_prehash
from pipeline.records import SIGNAL_STRUCT
from pipeline.venues.okx.orders import ORDER_PATH, iso_ms

TS_LEN, SIGN_LEN = 24, 44
HEAD = TS_LEN + SIGN_LEN
MAX_SYMBOLS = 256
_TYPES = {(1, 1): b"limit", (1, 2): b"ioc", (1, 3): b"fok", (3, 0): b"post_only"}


def split(blob: bytes) -> tuple[str, str, bytes]:
    """(OK-ACCESS-TIMESTAMP, OK-ACCESS-SIGN, body) of a signed order blob."""
    return blob[:TS_LEN].decode("ascii"), blob[TS_LEN:HEAD].decode("ascii"), blob[HEAD:]


def okx_client_id(strategy_id: int, epoch: int, seq: int) -> bytes:
    """The clOrdId of a signal ("<strategy hex>x<epoch hex>x<seq hex>")."""
    return b"%xx%xx%x" % (strategy_id, epoch, seq)


def check_okx_cid(cid: bytes) -> bytes:
    if not 1 <= len(cid) <= 32 or not cid.isalnum() or not cid.isascii():
        raise ValueError("clOrdId must be 1..32 ASCII alphanumerics")
    return cid


class OkxOrderSigner:
    """Encodes OKX v5 spot orders (JSON) and signs them (HMAC-SHA256, base64)."""

    def __init__(self, secret: bytes | str):
        self._mac = HmacSha256(secret)
        self._syms: dict[int, tuple[bytes, int, int]] = {}
        self.signed_count = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} secret=<redacted>>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("signers hold secrets and cannot be pickled")

    def set_instrument(self, rules: InstrumentRules) -> None:
        if not isinstance(rules, InstrumentRules):
            raise TypeError("set_instrument takes an InstrumentRules")
        name = rules.name.encode("ascii")
        if not 0 < rules.symbol_id < MAX_SYMBOLS:
            raise ValueError(f"symbol id {rules.symbol_id} out of range")
        if len(name) > 40 or b'"' in name or b"\\" in name:
            raise ValueError(f"instId {rules.name!r} cannot be encoded")
        self._syms[rules.symbol_id] = (name, rules.price_decimals, rules.qty_decimals)

    def sign(self, timestamp, method, path, body=b"") -> str:
        """OK-ACCESS-SIGN of any request (cool path)."""
        return self._mac.b64digest(okx_prehash(timestamp, method, path, body))

    def encode(self, symbol_id: int, side: int, order_type: int, tif: int, qty_units: int,
               price_units: int, client_id: bytes | str, timestamp_ms: int = 0) -> bytes:
        inst = self._syms.get(symbol_id) if isinstance(symbol_id, int) else None
        if inst is None:
            raise ValueError(f"symbol id {symbol_id!r} has no instrument")
        if side not in (1, -1) or order_type not in (1, 2, 3):
            raise ValueError("bad side or order type")
        if order_type == 1 and tif not in (1, 2, 3):
            raise ValueError("LIMIT needs timeInForce GTC, IOC or FOK")
        if qty_units <= 0 or (order_type != 2 and price_units <= 0) or timestamp_ms < 0:
            raise ValueError("quantity and price units must be > 0, timestamp >= 0")
        cid = check_okx_cid(client_id.encode() if isinstance(client_id, str) else bytes(client_id))
        name, pd, qd = inst
        ot = b'market","tgtCcy":"base_ccy' if order_type == 2 else \
            _TYPES[(order_type, tif if order_type == 1 else 0)]
        parts = [b'{"instId":"', name, b'","tdMode":"cash","clOrdId":"', cid,
                 b'","side":"', b"buy" if side == 1 else b"sell", b'","ordType":"', ot,
                 b'","sz":"', format_units(qty_units, qd)]
        if order_type != 2:
            parts += [b'","px":"', format_units(price_units, pd)]
        parts.append(b'"}')
        return b"".join(parts)

    def encode_sign(self, symbol_id: int, side: int, order_type: int, tif: int, qty_units: int,
                    price_units: int, client_id: bytes | str, timestamp_ms: int) -> bytes:
        body = self.encode(symbol_id, side, order_type, tif, qty_units, price_units, client_id,
                           timestamp_ms)
        ts = iso_ms(timestamp_ms)
        self.signed_count += 1
        return ts.encode() + self._mac.b64digest(okx_prehash(ts, "POST", ORDER_PATH, body)
                                                 ).encode() + body

    # the order path's two steps (as sign_py.BinanceSigner)
    def _can_sign(self, symbol_id: int, timestamp_ms: int) -> int:
        from pipeline.gateway.reasons import Reason
        if symbol_id not in self._syms:
            return int(Reason.UNKNOWN_SYMBOL)
        if timestamp_ms < 0:
            return int(Reason.MALFORMED)
        return 0

    def _sign_checked(self, symbol_id: int, side: int, order_type: int, tif: int, qty: float,
                      price: float, strategy_id: int, epoch: int, seq: int,
                      timestamp_ms: int) -> bytes:
        from pipeline.gateway.risk_py import POW10, to_units
        _name, pd, qd = self._syms[symbol_id]
        qu = to_units(qty, POW10[qd])
        pu = 0 if order_type == 2 else to_units(price, POW10[pd])
        return self.encode_sign(symbol_id, side, order_type, tif, qu, pu,
                                okx_client_id(strategy_id, epoch, seq), timestamp_ms)


class OkxOrderPath:
    """Risk check then OKX encode + sign (twin of ext/okx_sign.pyx OkxOrderPath)."""

    def __init__(self, risk, signer):
        self.risk = risk
        self.signer = signer
        self.last_reason = 0
        self.last_gap = 0
        self.risk_done_ns = 0

    def set_name(self, symbol_id: int, name: bytes) -> None:
        """The order path's interface; the OKX path has no compiled journal step to name for."""

    def process(self, msg, now_mono: int, timestamp_ms: int) -> bytes | None:
        from pipeline.gateway.orderpath_py import _int64
        timestamp_ms = _int64(timestamp_ms)
        r = self.risk.check(msg, now_mono)
        self.risk_done_ns = time.perf_counter_ns()
        self.last_gap = self.risk.last_gap
        self.last_reason = r
        if r:
            return None
        f = SIGNAL_STRUCT.unpack(msg)
        r = self.signer._can_sign(f[9], timestamp_ms)
        if r:
            self.risk.release_open(f[9], f[11], f[6])
            self.last_reason = r
            return None
        return self._sign(f, timestamp_ms)

    def probe(self, msg, now_mono: int, timestamp_ms: int) -> bytes | None:
        from pipeline.gateway.orderpath_py import _int64
        timestamp_ms = _int64(timestamp_ms)
        if self.risk.probe(msg, now_mono):
            return None
        f = SIGNAL_STRUCT.unpack(msg)
        if self.signer._can_sign(f[9], timestamp_ms):
            return None
        body = self._sign(f, timestamp_ms)
        self.signer.signed_count -= 1
        return body

    def _sign(self, f: tuple, timestamp_ms: int) -> bytes:
        (epoch, seq, _ts, _tm, _c, _ttl, qty, price, strategy_id, symbol, _v, side, otype, tif,
         _ver, _action, _back) = f
        return self.signer._sign_checked(symbol, side, otype, tif, qty, price, strategy_id, epoch,
                                         seq, timestamp_ms)


__all__ = ["OkxOrderSigner", "OkxOrderPath", "split", "okx_client_id", "check_okx_cid"]
