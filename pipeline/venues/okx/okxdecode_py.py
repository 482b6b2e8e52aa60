"""Pure-Python twin of ext/okxdecode.pyx: the same scanner, statuses, counters and records.

Readable reference for the Cython kernel (see its docstring for the accepted form). Byte by byte
it takes the same decisions in the same order, so both give the same status and records for any
input; tests/parity/test_okxdecode_parity.py checks it on the recording and on fuzzed bytes.
"""
from __future__ import annotations

import re

import numpy as np

from pipeline.records import FLAG_LAST_IN_MSG, Kind, Venue

ST_OK, ST_NOT_TRADES, ST_MALFORMED, ST_UNKNOWN_SYMBOL, ST_BAD_NUMBER, ST_BAD_INT, ST_BAD_SIDE, \
    ST_MISSING_FIELD, ST_OUT_FULL, ST_NOT_BYTES = range(10)
N_STATUS = 10
STATUS_NAMES = ("ok", "not_trades", "malformed", "unknown_symbol", "bad_number", "bad_int",
                "bad_side", "missing_field", "out_full", "not_bytes")
MAX_SYMBOLS = 256
MAX_INST_LEN = 32
MAX_DEC_LEN = 40
MAX_TS_MS = 9_000_000_000_000
MAX_INT = 10**18
PREFIX = b'{"arg":{"channel":"trades","instId":"'
MID = b'},"data":['
_DIGITS = frozenset(b"0123456789")
_SCALAR = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-")
_JSON_SCALAR = re.compile(
    rb"(?:true|false|null|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\Z")
Q, BS, COLON, COMMA, LBRACE, RBRACE, RBRACKET = b'"\\:,{}]'


def parse_dec(s: bytes) -> float | None:
    """-?[0-9]+(.[0-9]+)? of at most MAX_DEC_LEN bytes → float, else None."""
    n = len(s)
    if n == 0 or n > MAX_DEC_LEN:
        return None
    i = 1 if s[0] == 0x2D else 0
    j = i
    while j < n and s[j] in _DIGITS:
        j += 1
    if j == i:
        return None
    if j < n:
        if s[j] != 0x2E:
            return None
        k = j + 1
        while k < n and s[k] in _DIGITS:
            k += 1
        if k == j + 1 or k != n:
            return None
    return float(s)


def parse_uint(s: bytes) -> int | None:
    if not 0 < len(s) <= 19 or any(c not in _DIGITS for c in s):
        return None
    v = int(s)
    return v if v < MAX_INT else None


class TradeDecoder:
    """Same constructor, methods and counters as pipeline._ext.okxdecode.TradeDecoder."""

    def __init__(self, symbols: dict, venue: int = int(Venue.OKX)):
        if len(symbols) > MAX_SYMBOLS:
            raise ValueError(f"at most {MAX_SYMBOLS} symbols per decoder")
        self._ids: dict[bytes, int] = {}
        for name, sid in symbols.items():
            b = name.encode() if isinstance(name, str) else bytes(name)
            if not 0 < len(b) <= MAX_INST_LEN:
                raise ValueError(f"instId {name!r} must be 1..{MAX_INST_LEN} bytes")
            if not 0 <= sid < (1 << 32):
                raise ValueError(f"symbol id {sid} out of range")
            self._ids[b] = sid
        self.venue = venue
        self._counts = [0] * N_STATUS
        self.records = 0

    @property
    def counts(self) -> dict[str, int]:
        return {STATUS_NAMES[i]: c for i, c in enumerate(self._counts) if c}

    @property
    def errors(self) -> int:
        return sum(c for i, c in enumerate(self._counts) if i >= ST_MALFORMED and i != ST_OUT_FULL)

    def _decode_one(self, s: bytes, local_ts: int, rows: list, room: int) -> int:
        n = len(s)
        if n < len(PREFIX) or not s.startswith(PREFIX):
            return ST_NOT_TRADES
        i = len(PREFIX)
        j = i
        while j < n and s[j] != Q:
            if not 0x20 <= s[j] <= 0x7E or s[j] == BS:
                return ST_MALFORMED
            j += 1
        if j >= n or j == i or j - i > MAX_INST_LEN:
            return ST_MALFORMED
        sid = self._ids.get(s[i:j])
        if sid is None:
            return ST_UNKNOWN_SYMBOL
        i = j + 1
        if s[i:i + len(MID)] != MID:
            return ST_MALFORMED
        i += len(MID)
        while True:                                    # data items
            if i >= n or s[i] != LBRACE:
                return ST_MALFORMED
            i += 1
            have = 0
            px = sz = 0.0
            tid = ts = side = 0
            while True:                                # members
                if i >= n or s[i] != Q:
                    return ST_MALFORMED
                ks = i = i + 1
                while i < n and s[i] != Q:
                    if not 0x20 <= s[i] <= 0x7E or s[i] == BS:
                        return ST_MALFORMED
                    i += 1
                if i >= n:
                    return ST_MALFORMED
                key = s[ks:i]
                i += 1
                if i >= n or s[i] != COLON:
                    return ST_MALFORMED
                i += 1
                if i >= n:
                    return ST_MALFORMED
                if s[i] == Q:
                    is_str = True
                    vs = i = i + 1
                    while i < n and s[i] != Q:
                        if not 0x20 <= s[i] <= 0x7E or s[i] == BS:
                            return ST_MALFORMED
                        i += 1
                    if i >= n:
                        return ST_MALFORMED
                    val = s[vs:i]
                    i += 1
                else:
                    is_str = False
                    vs = i
                    while i < n and s[i] in _SCALAR:
                        i += 1
                    if not _JSON_SCALAR.match(s[vs:i]):
                        return ST_MALFORMED
                    val = s[vs:i]
                if key == b"px" or key == b"sz":
                    v = parse_dec(val) if is_str else None
                    if v is None:
                        return ST_BAD_NUMBER
                    if key == b"px":
                        px, have = v, have | 1
                    else:
                        sz, have = v, have | 2
                elif key == b"tradeId":
                    v = parse_uint(val) if is_str else None
                    if v is None:
                        return ST_BAD_INT
                    tid, have = v, have | 4
                elif key == b"ts":
                    v = parse_uint(val) if is_str else None
                    if v is None or v > MAX_TS_MS:
                        return ST_BAD_INT
                    ts, have = v, have | 8
                elif key == b"side":
                    if is_str and val == b"buy":
                        side = 1
                    elif is_str and val == b"sell":
                        side = -1
                    else:
                        return ST_BAD_SIDE
                    have |= 16
                if i >= n:
                    return ST_MALFORMED
                if s[i] == COMMA:
                    i += 1
                    continue
                if s[i] == RBRACE:
                    i += 1
                    break
                return ST_MALFORMED
            if have != 31:
                return ST_MISSING_FIELD
            if len(rows) >= room:
                return ST_OUT_FULL
            rows.append((0, sid, self.venue, 0, int(Kind.TRADE), side, ts * 1_000_000, local_ts,
                         0, px, sz, tid))
            if i >= n:
                return ST_MALFORMED
            if s[i] == COMMA:
                i += 1
                continue
            if s[i] == RBRACKET:
                i += 1
                break
            return ST_MALFORMED
        if i + 1 != n or s[i] != RBRACE:
            return ST_MALFORMED
        last = rows[-1]
        rows[-1] = last[:3] + (FLAG_LAST_IN_MSG,) + last[4:]
        return ST_OK

    def _check_out(self, out: np.ndarray, start: int) -> None:
        if not isinstance(out, np.ndarray):
            raise TypeError("out must be a numpy array")
        if out.ndim != 1 or out.itemsize != 64 or not out.flags.c_contiguous:
            raise ValueError("out must be a 1-D C-contiguous TICK_DTYPE array")
        if not 0 <= start <= out.shape[0]:
            raise ValueError("start out of range")

    def decode(self, frames: list, local_ts: int, out: np.ndarray, start: int = 0,
               status: np.ndarray | None = None) -> tuple[int, int]:
        """See pipeline._ext.okxdecode.TradeDecoder.decode."""
        if not isinstance(frames, list):
            raise TypeError("frames must be a list")
        self._check_out(out, start)
        if status is not None and (status.dtype.itemsize != 1 or status.shape[0] < len(frames)
                                   or not status.flags.c_contiguous):
            raise ValueError("status must be a C-contiguous int8 array, one entry per frame")
        pos = start
        for k, f in enumerate(frames):
            rows: list = []
            if not isinstance(f, bytes):
                st = ST_NOT_BYTES
            else:
                st = self._decode_one(f, local_ts, rows, out.shape[0] - pos)
            if st == ST_OUT_FULL:
                return pos, k
            self._counts[st] += 1
            if status is not None:
                status[k] = st
            if st == ST_OK:
                for r in rows:
                    out[pos] = r
                    pos += 1
                self.records += len(rows)
        return pos, len(frames)

    def decode_one(self, frame: bytes, local_ts: int, out: np.ndarray, start: int = 0):
        if not isinstance(frame, bytes):
            raise TypeError("frame must be bytes")
        self._check_out(out, start)
        rows: list = []
        st = self._decode_one(frame, local_ts, rows, out.shape[0] - start)
        w = 0
        if st != ST_OUT_FULL:
            self._counts[st] += 1
            if st == ST_OK:
                for k, r in enumerate(rows):
                    out[start + k] = r
                w = len(rows)
                self.records += w
        return st, w
