"""Pure-Python twin of ext/orderpath.pyx: from a signal record to a signed request body.

`OrderPath(risk, signer).process(msg, now_mono, timestamp_ms)`: the risk engine decides (check():
every rule; ACCEPT commits the order's quantity as open), then the signer encodes and signs the
checked order. The signer only says whether it can encode it; when it cannot, the commitment goes
back to the risk engine (release_open) and the reason is UNKNOWN_SYMBOL / MALFORMED. Returns the
body, or None with the reason in `last_reason`; `last_gap` and `risk_done_ns` as the kernel's.
`probe()` is the same path without effect (the gateway's idle warm-up).
"""
from __future__ import annotations

import operator
import time

from pipeline.records import SIGNAL_STRUCT


class OrderPath:
    def __init__(self, risk, signer):
        self.risk = risk
        self.signer = signer
        self.last_reason = 0
        self.last_gap = 0
        self.risk_done_ns = 0

    def process(self, msg, now_mono: int, timestamp_ms: int) -> bytes | None:
        timestamp_ms = _int64(timestamp_ms)
        r = self.risk.check(msg, now_mono)
        self.risk_done_ns = time.perf_counter_ns()
        self.last_gap = self.risk.last_gap
        self.last_reason = r
        if r:
            return None
        f = SIGNAL_STRUCT.unpack(msg)
        symbol, side = f[9], f[11]
        r = self.signer._can_sign(symbol, timestamp_ms)
        if r:
            self.risk.release_open(symbol, side, f[6])      # the kernel's uncommit
            self.last_reason = r
            return None
        return self._sign(f, timestamp_ms)

    def probe(self, msg, now_mono: int, timestamp_ms: int) -> bytes | None:
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
         _ver) = f
        return self.signer._sign_checked(symbol, side, otype, tif, qty, price, strategy_id, epoch,
                                         seq, timestamp_ms)


def _int64(x) -> int:
    x = operator.index(x)          # TypeError, as the kernel's int64 argument
    if not -(1 << 63) <= x < (1 << 63):
        raise OverflowError("timestamp_ms out of int64 range")
    return x
