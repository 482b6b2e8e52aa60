"""Pure-Python twin of ext/wsdecode.pyx: the WebSocket frame decoder and hot-field extractor.

Same classes, same methods, same results (tests/parity checks it message by message). This file is
the readable specification of the algorithm; the Cython kernel is a transliteration.

A `WsDecoder` (one per connection) takes socket bytes with `feed(data, local_ts)` and turns the
complete frames into records with `decode(out)`, which fills `out` (TICK_DTYPE) from index 0 and
returns the count. It stops, leaving `event` set, when:

  EV_NONE     no complete frame is left (feed more)
  EV_FULL     `out` cannot take the next message (publish, then call again)
  EV_MESSAGE  a message for the cool path: `message` (bytes), `reason` (R_*), `local_ts`
  EV_PING / EV_PONG / EV_CLOSE    a control frame: `message` is its payload
  EV_BAD      a frame was dropped (oversized): `error` names it, `message` is a sample; counted
  EV_PROTOCOL the byte stream is not valid WebSocket (the connection must be dropped); sticky

The hot extractor handles the four Binance shapes (trade, aggTrade, bookTicker, depthUpdate) in
raw or combined form. It is strict: anything it does not fully understand (escapes, non-ASCII or
control bytes in strings, odd numbers, unknown symbols, a depth update for a book that is not in
sync) goes to the cool path unchanged, which parses with orjson and decides. A message is written
to `out` completely or not at all. A `SymbolState` (shared by the connections of one feed) holds
per-symbol last ids (duplicates are dropped and counted) and the books of synced depth streams.
"""
from __future__ import annotations

import re

import numpy as np

from pipeline.collector.book import Book
from pipeline.records import FLAG_LAST_IN_MSG, TICK_DTYPE

# events
EV_NONE, EV_FULL, EV_MESSAGE, EV_PING, EV_PONG, EV_CLOSE, EV_BAD, EV_PROTOCOL = range(8)
EVENT_NAMES = ("none", "full", "message", "ping", "pong", "close", "bad", "protocol")
# reasons a message goes to the cool path
(R_NONE, R_NOT_HOT, R_UNKNOWN_SYMBOL, R_DEPTH_UNSYNCED, R_DEPTH_SEQ, R_CROSSED, R_SCAN,
 R_FRAGMENTED, R_BINARY, R_TOO_BIG, R_COLD) = range(11)
REASON_NAMES = ("none", "not_hot", "unknown_symbol", "depth_unsynced", "depth_seq", "crossed",
                "scan", "fragmented", "binary", "too_big", "cold")
R_FULL = -100   # internal: out has no room for this message

SLOT_TRADE, SLOT_AGG, SLOT_BBO = 0, 1, 2
KIND_TRADE, KIND_AGG, KIND_BID, KIND_ASK, KIND_BOOK_BID, KIND_BOOK_ASK = 1, 2, 3, 4, 5, 6
MAX_EVENT_MS = 9_000_000_000_000
MAX_DEC_LEN = 40
MAX_DEPTH = 32
SAMPLE_LEN = 200
_DEC = re.compile(rb"[0-9]+(?:\.[0-9]+)?\Z")
_INT = re.compile(rb"[0-9]{1,18}\Z")
_WS = b" \t\n\r"
_NUMCH = frozenset(b"-+.eE0123456789")
_NUMRE = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")


class SymbolState:
    """Per-symbol state shared by the decoders of one feed: the symbol table, last ids per
    message kind (duplicate filter) and the depth books in sync."""

    def __init__(self, symbols: dict[bytes, int], venue: int):
        self.venue = venue
        self.symbols = dict(symbols)
        n = max(self.symbols.values(), default=0) + 1
        self.n = n
        self.last = [[-1] * n for _ in range(3)]
        self.synced = [False] * n
        self.last_u = [-1] * n
        self.books = [Book() for _ in range(n)]

    def lookup(self, name: bytes) -> int:
        return self.symbols.get(name, -1)

    def accept(self, slot: int, sym: int, id: int) -> bool:
        """Duplicate filter: True (and remember) iff id is newer than the last one seen."""
        if id <= self.last[slot][sym]:
            return False
        self.last[slot][sym] = id
        return True

    def last_id(self, slot: int, sym: int) -> int:
        return self.last[slot][sym]

    def depth_synced(self, sym: int) -> bool:
        return self.synced[sym]

    def depth_last(self, sym: int) -> int:
        return self.last_u[sym]

    def unsync(self, sym: int) -> None:
        self.synced[sym] = False

    def load_book(self, sym: int, last_u: int, bids, asks) -> bool:
        """Replace the book and mark it synced at last_u. Returns whether it is crossed (then it
        stays unsynced)."""
        b = self.books[sym]
        b.clear()
        b.apply(bids, asks)
        self.last_u[sym] = last_u
        self.synced[sym] = not b.crossed()
        return b.crossed()

    def apply_diff(self, sym: int, bids, asks, last_u: int) -> bool:
        """Apply levels to a synced book; returns crossed (then the book is unsynced)."""
        b = self.books[sym]
        b.apply(bids, asks)
        self.last_u[sym] = last_u
        if b.crossed():
            self.synced[sym] = False
            return True
        return False

    def top(self, sym: int, n: int):
        return self.books[sym].top(n)


def ws_frame(payload: bytes, opcode: int = 1, fin: bool = True, mask: bytes | None = None,
             rsv: int = 0) -> bytes:
    """Build one WebSocket frame (server → client frames are unmasked)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mb = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((b0, mb | n))
    elif n < 65536:
        head = bytes((b0, mb | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mb | 127)) + n.to_bytes(8, "big")
    if mask is not None:
        payload = bytes(c ^ mask[i & 3] for i, c in enumerate(payload))
        head += mask
    return head + payload


class WsDecoder:
    """One connection's frame decoder. See the module docstring."""

    def __init__(self, state: SymbolState, max_message: int = 1 << 20, hot: bool = True,
                 recording: bool = False, read_size: int = 1 << 16):
        self.state = state
        self.recording = recording
        self.rec = bytearray()
        self.unrecordable = 0
        self._scratch = bytearray(read_size)
        self.venue = state.venue
        self.max_message = max_message
        self.hot = hot
        self.buf = bytearray()
        self.pos = 0
        self.local_ts = 0
        self.skip = 0
        self.frag = None            # bytearray while a fragmented message is assembled
        self.frag_discard = False
        self.frag_opcode = 0
        self.failed = False
        self.event = EV_NONE
        self.reason = R_NONE
        self.message = b""
        self.error = ""
        self.frames = self.messages = self.bytes = self.records = self.hot_messages = 0
        self.deferred = self.duplicates = self.oversized = self.protocol_errors = 0
        self.pings = self.pongs = self.closes = 0

    # ------------------------------------------------------------------ input
    def feed(self, data, local_ts: int) -> None:
        if self.pos > 0 and self.pos >= len(self.buf) // 2:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data
        self.bytes += len(data)
        self.local_ts = local_ts

    def writable(self, k: int) -> memoryview:
        """A writable view of up to k bytes (recv_into it, then commit)."""
        if len(self._scratch) < k:
            self._scratch = bytearray(k)
        return memoryview(self._scratch)[:k]

    def commit(self, nbytes: int, local_ts: int) -> None:
        self.feed(self._scratch[:nbytes], local_ts)

    def _record(self, payload: bytes) -> None:
        if b"\n" in payload or b"\r" in payload:
            self.unrecordable += 1
            return
        self.rec += b"%d " % self.local_ts + payload + b"\n"

    def take_recording(self) -> bytes:
        """The `<local_ts_ns> <raw>` lines of the text messages decoded since the last call."""
        out = bytes(self.rec)
        del self.rec[:]
        return out

    def pending(self) -> int:
        """Bytes fed and not yet consumed (a partial frame at connection end is truncated)."""
        return len(self.buf) - self.pos + self.skip

    def counters(self) -> dict:
        return {k: getattr(self, k) for k in (
            "frames", "messages", "bytes", "records", "hot_messages", "deferred", "duplicates",
            "oversized", "protocol_errors", "pings", "pongs", "closes")}

    def _protocol(self, why: str) -> int:
        self.failed = True
        self.protocol_errors += 1
        self.error = why
        self.event = EV_PROTOCOL
        return EV_PROTOCOL

    # ------------------------------------------------------------------ frames
    def decode(self, out: np.ndarray) -> int:
        cap = len(out)
        n = 0
        self.event = EV_NONE
        self.reason = R_NONE
        if self.failed:
            self.event = EV_PROTOCOL
            return 0
        buf = self.buf
        while True:
            avail = len(buf) - self.pos
            if self.skip:
                k = min(self.skip, avail)
                self.pos += k
                self.skip -= k
                if self.skip:
                    return n
                continue
            if avail < 2:
                return n
            p = self.pos
            b0, b1 = buf[p], buf[p + 1]
            ln = b1 & 0x7F
            hl = 2
            if ln == 126:
                hl = 4
            elif ln == 127:
                hl = 10
            if avail < hl:
                return n
            if ln == 126:
                ln = (buf[p + 2] << 8) | buf[p + 3]
            elif ln == 127:
                ln = int.from_bytes(buf[p + 2:p + 10], "big")
                if ln >> 63:
                    self._protocol("frame length has the top bit set")
                    return n
            fin = b0 & 0x80
            op = b0 & 0x0F
            if b0 & 0x70:
                self._protocol("reserved bits set")
                return n
            if b1 & 0x80:
                self._protocol("masked frame from the server")
                return n
            if op >= 8:
                if op not in (8, 9, 10):
                    self._protocol(f"unknown control opcode {op}")
                    return n
                if not fin or ln > 125:
                    self._protocol("fragmented or oversized control frame")
                    return n
            elif op not in (0, 1, 2):
                self._protocol(f"unknown data opcode {op}")
                return n
            elif op == 0 and self.frag is None and not self.frag_discard:
                self._protocol("continuation frame without a message")
                return n
            elif op != 0 and (self.frag is not None or self.frag_discard):
                self._protocol("new message inside a fragmented one")
                return n
            if ln > self.max_message and op < 8:
                # oversized: drop it without buffering it
                self.frames += 1
                self.oversized += 1
                self.pos = p + hl
                self.skip = ln
                self.message = bytes(buf[self.pos:self.pos + min(ln, SAMPLE_LEN, avail - hl)])
                self.error = "oversized"
                if op == 0 or not fin:
                    self.frag = None
                    self.frag_discard = not fin
                self.event = EV_BAD
                return n
            if avail < hl + ln:
                return n
            s = p + hl
            e = s + ln
            self.frames += 1
            if op >= 8:
                self.pos = e
                self.message = bytes(buf[s:e])
                if op == 9:
                    self.pings += 1
                    self.event = EV_PING
                elif op == 10:
                    self.pongs += 1
                    self.event = EV_PONG
                else:
                    self.closes += 1
                    self.event = EV_CLOSE
                return n
            if op == 0 or not fin:                     # fragmented data message
                self.pos = e
                if self.frag_discard:
                    if fin:
                        self.frag_discard = False
                    continue
                if op != 0:
                    self.frag = bytearray()
                    self.frag_opcode = op
                self.frag += buf[s:e]
                if len(self.frag) > self.max_message:
                    self.oversized += 1
                    self.message = bytes(self.frag[:SAMPLE_LEN])
                    self.frag = None
                    self.frag_discard = not fin
                    self.error = "oversized"
                    self.event = EV_BAD
                    return n
                if fin:
                    self.messages += 1
                    self.deferred += 1
                    self.message = bytes(self.frag)
                    if self.recording and self.frag_opcode == 1:
                        self._record(self.message)
                    self.reason = R_BINARY if self.frag_opcode == 2 else R_FRAGMENTED
                    self.frag = None
                    self.event = EV_MESSAGE
                    return n
                continue
            if op == 2:
                self.pos = e
                self.messages += 1
                self.deferred += 1
                self.message = bytes(buf[s:e])
                self.reason = R_BINARY
                self.event = EV_MESSAGE
                return n
            # a complete text message
            if self.recording:
                self._record(bytes(buf[s:e]))
            r = self._extract(buf, s, e, out, n, cap) if self.hot else R_COLD
            if r >= 0:
                self.pos = e
                self.messages += 1
                self.hot_messages += 1
                self.records += r - n
                n = r
                continue
            if r == R_FULL:
                if n > 0:
                    self.event = EV_FULL
                    return n
                r = -R_TOO_BIG
            self.pos = e
            self.messages += 1
            self.deferred += 1
            self.message = bytes(buf[s:e])
            self.reason = -r if r != R_COLD else R_COLD
            self.event = EV_MESSAGE
            return n

    # ------------------------------------------------------------------ JSON scanning
    # Each helper returns the index after the token, or -1 if the hot path cannot take it.
    @staticmethod
    def _ws(b, i, end):
        while i < end and b[i] in _WS:
            i += 1
        return i

    @staticmethod
    def _str(b, i, end):
        j = i + 1
        while j < end:
            c = b[j]
            if c == 34:
                return j + 1
            if c == 92 or c < 32 or c >= 128:
                return -1
            j += 1
        return -1

    def _num(self, b, i, end):
        j = i
        while j < end and b[j] in _NUMCH:
            j += 1
        if j == i or not _NUMRE.match(bytes(b[i:j])):
            return -1
        return j

    def _skip(self, b, i, end, depth):
        if i >= end or depth > MAX_DEPTH:
            return -1
        c = b[i]
        if c == 34:
            return self._str(b, i, end)
        if c == 123 or c == 91:
            close = 125 if c == 123 else 93
            i = self._ws(b, i + 1, end)
            if i < end and b[i] == close:
                return i + 1
            while True:
                if c == 123:
                    if i >= end or b[i] != 34:
                        return -1
                    i = self._str(b, i, end)
                    if i < 0:
                        return -1
                    i = self._ws(b, i, end)
                    if i >= end or b[i] != 58:
                        return -1
                    i = self._ws(b, i + 1, end)
                i = self._skip(b, i, end, depth + 1)
                if i < 0:
                    return -1
                i = self._ws(b, i, end)
                if i >= end:
                    return -1
                if b[i] == close:
                    return i + 1
                if b[i] != 44:
                    return -1
                i = self._ws(b, i + 1, end)
        if c == 116:
            return i + 4 if b[i:i + 4] == b"true" else -1
        if c == 102:
            return i + 5 if b[i:i + 5] == b"false" else -1
        if c == 110:
            return i + 4 if b[i:i + 4] == b"null" else -1
        return self._num(b, i, end)

    def _payload(self, b, i, end, f):
        """Scan the payload object at b[i] == '{' recording single-letter keys' value spans in f
        (dict key byte → (start, end)). Returns the index after '}', or -R_*."""
        i = self._ws(b, i + 1, end)
        if i < end and b[i] == 125:
            return i + 1
        while True:
            if i >= end or b[i] != 34:
                return -R_SCAN
            ks = i + 1
            i = self._str(b, i, end)
            if i < 0:
                return -R_SCAN
            ke = i - 1
            i = self._ws(b, i, end)
            if i >= end or b[i] != 58:
                return -R_SCAN
            vs = self._ws(b, i + 1, end)
            ve = self._skip(b, vs, end, 2)
            if ve < 0:
                return -R_SCAN
            if ke - ks == 1:
                k = b[ks]
                if k in f:
                    return -R_SCAN
                f[k] = (vs, ve)
                if k == 101:              # "e": leave early for events that are not hot
                    ev = bytes(b[vs:ve])
                    if ev not in (b'"trade"', b'"aggTrade"', b'"depthUpdate"'):
                        return -R_NOT_HOT
            i = self._ws(b, ve, end)
            if i >= end:
                return -R_SCAN
            if b[i] == 125:
                return i + 1
            if b[i] != 44:
                return -R_SCAN
            i = self._ws(b, i + 1, end)

    # field readers: value or None
    @staticmethod
    def _int(b, span):
        if span is None:
            return None
        t = bytes(b[span[0]:span[1]])
        return int(t) if _INT.match(t) else None

    @staticmethod
    def _dec(b, span):
        if span is None or b[span[0]] != 34:
            return None
        t = bytes(b[span[0] + 1:span[1] - 1])
        if len(t) > MAX_DEC_LEN or not _DEC.match(t):
            return None
        return float(t)

    def _levels(self, b, span, kind, side, out, n, cap, sym, exch, u):
        """Parse [[p,q],...] into records out[n:]; returns the new n or -R_*."""
        if span is None or b[span[0]] != 91:
            return -R_SCAN
        i = self._ws(b, span[0] + 1, span[1])
        end = span[1] - 1
        if i == end:
            return n
        while True:
            if b[i] != 91:
                return -R_SCAN
            ps = self._ws(b, i + 1, end)
            if ps >= end or b[ps] != 34:
                return -R_SCAN
            pe = self._str(b, ps, end)
            if pe < 0:
                return -R_SCAN
            i = self._ws(b, pe, end)
            if i >= end or b[i] != 44:
                return -R_SCAN
            qs = self._ws(b, i + 1, end)
            if qs >= end or b[qs] != 34:
                return -R_SCAN
            qe = self._str(b, qs, end)
            if qe < 0:
                return -R_SCAN
            i = self._ws(b, qe, end)
            if i >= end or b[i] != 93:
                return -R_SCAN
            p = self._dec(b, (ps, pe))
            q = self._dec(b, (qs, qe))
            if p is None or q is None:
                return -R_SCAN
            if n >= cap:
                return R_FULL
            out[n] = (0, sym, self.venue, 0, kind, side, exch, self.local_ts, 0, p, q, u)
            n += 1
            i = self._ws(b, i + 1, end)
            if i == end:
                return n
            if b[i] != 44:
                return -R_SCAN
            i = self._ws(b, i + 1, end)

    def _extract(self, b, s, e, out, n, cap):
        """One text message → records at out[n:] (returns the new n) or -R_* / R_FULL."""
        i = self._ws(b, s, e)
        if i >= e or b[i] != 123:
            return -R_SCAN
        f = {}
        j = self._ws(b, i + 1, e)
        if j < e and b[j] == 34 and (b[j:j + 8] == b'"stream"' or b[j:j + 6] == b'"data"'):
            # combined form {"stream": "...", "data": {...}}
            have_data = False
            i = j
            while True:
                if i >= e or b[i] != 34:
                    return -R_SCAN
                ks = i
                i = self._str(b, i, e)
                if i < 0:
                    return -R_SCAN
                key = bytes(b[ks:i])
                i = self._ws(b, i, e)
                if i >= e or b[i] != 58:
                    return -R_SCAN
                i = self._ws(b, i + 1, e)
                if key == b'"stream"' and i < e and b[i] == 34:
                    i = self._str(b, i, e)
                    if i < 0:
                        return -R_SCAN
                elif key == b'"data"' and not have_data and i < e and b[i] == 123:
                    have_data = True
                    i = self._payload(b, i, e, f)
                    if i < 0:
                        return i
                else:
                    return -R_NOT_HOT
                i = self._ws(b, i, e)
                if i >= e:
                    return -R_SCAN
                if b[i] == 125:
                    i += 1
                    break
                if b[i] != 44:
                    return -R_SCAN
                i = self._ws(b, i + 1, e)
            if not have_data:
                return -R_NOT_HOT
        else:
            i = self._payload(b, i, e, f)
            if i < 0:
                return i
        if self._ws(b, i, e) != e:
            return -R_SCAN
        return self._fields(b, f, out, n, cap)

    def _fields(self, b, f, out, n, cap):
        st = self.state
        ev = f.get(101)                              # e
        sspan = f.get(115)                           # s
        if ev is None:
            # bookTicker: u s b B a A, all strings but u
            for k in (117, 98, 66, 97, 65):
                if k not in f:
                    return -R_NOT_HOT
            if sspan is None:
                return -R_NOT_HOT
            kind = 0
        else:
            kind = {b'"trade"': 1, b'"aggTrade"': 2, b'"depthUpdate"': 3}[bytes(b[ev[0]:ev[1]])]
        if sspan is None or b[sspan[0]] != 34:
            return -R_SCAN
        sym = st.lookup(bytes(b[sspan[0] + 1:sspan[1] - 1]))
        if sym < 0:
            return -R_UNKNOWN_SYMBOL
        if kind == 0:
            u = self._int(b, f.get(117))
            bp, bq = self._dec(b, f.get(98)), self._dec(b, f.get(66))
            ap, aq = self._dec(b, f.get(97)), self._dec(b, f.get(65))
            if u is None or bp is None or bq is None or ap is None or aq is None:
                return -R_SCAN
            if n + 2 > cap:
                return R_FULL
            if not st.accept(SLOT_BBO, sym, u):
                self.duplicates += 1
                return n
            lt = self.local_ts
            out[n] = (0, sym, self.venue, 0, KIND_BID, 1, 0, lt, 0, bp, bq, u)
            out[n + 1] = (0, sym, self.venue, FLAG_LAST_IN_MSG, KIND_ASK, -1, 0, lt, 0, ap, aq, u)
            return n + 2
        E = self._int(b, f.get(69))
        if E is None or E > MAX_EVENT_MS:
            return -R_SCAN
        exch = E * 1_000_000
        if kind <= 2:
            tid = self._int(b, f.get(116 if kind == 1 else 97))
            p, q = self._dec(b, f.get(112)), self._dec(b, f.get(113))
            mspan = f.get(109)
            if tid is None or p is None or q is None or mspan is None:
                return -R_SCAN
            mv = bytes(b[mspan[0]:mspan[1]])
            if mv == b"true":
                side = -1
            elif mv == b"false":
                side = 1
            else:
                return -R_SCAN
            if n >= cap:
                return R_FULL
            if not st.accept(SLOT_TRADE if kind == 1 else SLOT_AGG, sym, tid):
                self.duplicates += 1
                return n
            out[n] = (0, sym, self.venue, FLAG_LAST_IN_MSG, kind, side, exch, self.local_ts, 0,
                      p, q, tid)
            return n + 1
        # depthUpdate
        U, u = self._int(b, f.get(85)), self._int(b, f.get(117))
        if U is None or u is None or U > u:
            return -R_SCAN
        if not st.synced[sym]:
            return -R_DEPTH_UNSYNCED
        if U != st.last_u[sym] + 1:
            return -R_DEPTH_SEQ
        n0 = n
        n = self._levels(b, f.get(98), KIND_BOOK_BID, 1, out, n, cap, sym, exch, u)
        if n < 0:
            return n
        n = self._levels(b, f.get(97), KIND_BOOK_ASK, -1, out, n, cap, sym, exch, u)
        if n < 0:
            return n
        book = st.books[sym]
        for k in range(n0, n):
            r = out[k]
            if r["kind"] == KIND_BOOK_BID:
                book.set_bid(float(r["price"]), float(r["qty"]))
            else:
                book.set_ask(float(r["price"]), float(r["qty"]))
        st.last_u[sym] = u
        if book.crossed():
            st.synced[sym] = False
            return -R_CROSSED
        if n > n0:
            out[n - 1]["flags"] = FLAG_LAST_IN_MSG
        return n


def new_records(n: int) -> np.ndarray:
    return np.zeros(n, dtype=TICK_DTYPE)
