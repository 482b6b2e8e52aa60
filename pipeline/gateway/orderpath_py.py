"""Pure-Python twin of ext/orderpath.pyx: from a signal record to a signed request body.

`OrderPath(risk, signer).process(msg, now_mono, timestamp_ms)`: the risk engine decides (check():
every rule; ACCEPT commits the order's quantity as open), then the signer encodes and signs the
checked order. The signer only says whether it can encode it; when it cannot, the commitment goes
back to the risk engine (release_open) and the reason is UNKNOWN_SYMBOL / MALFORMED. Returns the
body, or None with the reason in `last_reason`; `last_gap` and `risk_done_ns` as the kernel's.
`probe()` is the same path without effect (the gateway's idle warm-up).

`send(msg, now_mono, timestamp_ms, journal, writer, fd, sync, via)`: process(), then the
write-ahead ORDER record (journal_py.JournalWriter.write_order; msync when `sync`), then the
request on `fd` (wirefmt_py.RequestWriter.send) after a look that the held connection is not
closed; `journal_state` / `wire_state` / `sent` / `written_ns` as the kernel's (the J_* / W_*
codes below are ext/orderpath.pxd's).
"""
from __future__ import annotations

import errno
import operator
import select
import time

from pipeline.gateway.orders import client_id
from pipeline.records import SIGNAL_STRUCT

MAX_SYMBOLS = 256
J_NONE, J_WRITTEN, J_FULL, J_SYNC_FAILED, J_NO_NAME = 0, 1, 2, 3, 4
W_NONE, W_SENT, W_SHORT, W_CLOSED, W_ERROR, W_TOO_BIG = 0, 1, 2, 3, 4, 5
JOURNAL_STATES = {"NONE": J_NONE, "WRITTEN": J_WRITTEN, "FULL": J_FULL,
                  "SYNC_FAILED": J_SYNC_FAILED, "NO_NAME": J_NO_NAME}
WIRE_STATES = {"NONE": W_NONE, "SENT": W_SENT, "SHORT": W_SHORT, "CLOSED": W_CLOSED,
               "ERROR": W_ERROR, "TOO_BIG": W_TOO_BIG}


class OrderPath:
    def __init__(self, risk, signer):
        self.risk = risk
        self.signer = signer
        self.last_reason = 0
        self.last_gap = 0
        self.risk_done_ns = 0
        self.signed_ns = 0
        self.journal_state = J_NONE
        self.wire_state = W_NONE
        self.sent = 0
        self.written_ns = 0
        self._names: dict[int, bytes] = {}

    def set_name(self, symbol_id: int, name: bytes) -> None:
        if not 0 < symbol_id < MAX_SYMBOLS:
            raise ValueError(f"symbol id {symbol_id} outside 1..{MAX_SYMBOLS - 1}")
        if not isinstance(name, bytes):
            raise TypeError("name must be bytes")
        if not 0 < len(name) <= 24:
            raise ValueError("a symbol name of 1..24 bytes")
        self._names[symbol_id] = name

    def send(self, msg, now_mono: int, timestamp_ms: int, journal, writer, fd: int, sync: bool,
             via: int) -> bytes | None:
        self.journal_state = J_NONE
        self.wire_state = W_NONE
        self.sent = 0
        self.written_ns = 0
        body = self.process(msg, now_mono, timestamp_ms)
        if body is None:
            return None
        if journal is not None:
            f = SIGNAL_STRUCT.unpack(msg)
            (epoch, seq, _ts, trigger, created, _ttl, qty, price, strategy, symbol, _v, side,
             otype, tif, _ver, _action, _back) = f
            name = self._names.get(symbol)
            if name is None:
                self.journal_state = J_NO_NAME
                return body
            ok = journal.write_order(
                t=time.time_ns(), m=time.perf_counter_ns(),
                cid=client_id(strategy, epoch, seq).encode("ascii"), symbol=name,
                symbol_id=symbol, strategy=strategy, epoch=epoch, sig_seq=seq, side=side,
                order_type=otype, tif=tif, qty=qty, price=price, trigger_mono=trigger,
                created_mono=created, recv_mono=now_mono, ts_ms=timestamp_ms, attempt=1,
                via=via)
            if not ok:
                self.journal_state = J_FULL
                return body
            if sync:
                try:
                    journal.sync()
                except OSError:
                    self.journal_state = J_SYNC_FAILED
                    return body
            self.journal_state = J_WRITTEN
        if writer is None or fd < 0:
            return body
        if _closed(fd):
            self.wire_state = W_CLOSED
            return body
        try:
            r = writer.send(fd, body)
        except ValueError:
            self.wire_state = W_TOO_BIG
            return body
        except OSError as exc:
            self.written_ns = writer.stamp
            self.sent = -(exc.errno or errno.EIO)
            self.wire_state = W_ERROR
            return body
        self.written_ns = writer.stamp
        self.sent = r
        self.wire_state = W_SENT if r == writer.length else W_SHORT
        return body

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
        body = self._sign(f, timestamp_ms)
        self.signed_ns = time.perf_counter_ns()
        return body

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
         _ver, _action, _back) = f
        return self.signer._sign_checked(symbol, side, otype, tif, qty, price, strategy_id, epoch,
                                         seq, timestamp_ms)


def _closed(fd: int) -> bool:
    """An idle keep-alive connection that is readable is closed (EOF) or out of step."""
    return bool(select.select([fd], [], [], 0)[0])


def _int64(x) -> int:
    x = operator.index(x)          # TypeError, as the kernel's int64 argument
    if not -(1 << 63) <= x < (1 << 63):
        raise OverflowError("timestamp_ms out of int64 range")
    return x
