"""Pure-Python twin of ext/journal.pyx: the binary journal's record writer, byte for byte.

`JournalWriter(buf, next_slot, next_seq)` writes fixed 256-byte records (pipeline/records.py,
JOURNAL_*) into `buf`, a writable mapping of the whole journal file whose first 256 bytes are the
file header. Rules (the kernel follows them statement for statement):

- slot i (from 0) starts at byte 256 * (1 + i);
- ORDER: one slot; `length` = 216 (the payload after the 40-byte head); the client id and the
  symbol are ASCII, zero-padded to 40 and 24 bytes; every unused byte is zero;
- TEXT: the payload (a JSON object's bytes) starts at byte 40 of the first slot and continues
  through `span - 1` more slots (216 bytes in the first, 256 in each further one); `length` is its
  size; the rest of the last slot is zero;
- the record is first written with seq = 0 and crc = 0; crc = zlib.crc32 of all its span bytes;
  then crc is stored, and seq last (a slot whose seq is 0 is incomplete: the end, or a torn write);
- no room for the whole span: nothing is written, the call answers False (the owner grows the
  file, remaps and `attach`es again).

`sync()` flushes (msync) the pages written since the last sync.
"""
from __future__ import annotations

import mmap
import struct
import zlib

from pipeline.records import JOURNAL_PAYLOAD_OFFSET, JOURNAL_RECORD_SIZE, JournalKind

REC = JOURNAL_RECORD_SIZE
FIRST_PAYLOAD = REC - JOURNAL_PAYLOAD_OFFSET       # 216
MAX_CID = 40
MAX_SYMBOL = 24
HEAD = struct.Struct("<QqqHHIII")                  # seq t m kind span length crc _hpad
ORDER = struct.Struct("<qqddqqqqIIbBBBBBBB40s24s72x")
SEQ = struct.Struct("<Q")
CRC = struct.Struct("<I")
assert HEAD.size == JOURNAL_PAYLOAD_OFFSET and HEAD.size + ORDER.size == REC


def text_span(n: int) -> int:
    """Slots a TEXT record of n payload bytes occupies."""
    return 1 if n <= FIRST_PAYLOAD else 1 + (n - FIRST_PAYLOAD + REC - 1) // REC


class JournalWriter:
    def __init__(self, buf, next_slot: int = 0, next_seq: int = 1):
        if next_seq < 1:
            raise ValueError("next_seq starts at 1")
        self._buf = None
        self.nslots = 0
        self.synced_slot = next_slot
        self.attach(buf, next_slot)
        self.next_seq = next_seq
        self.synced_slot = next_slot
        self.records = 0

    def attach(self, buf, next_slot: int) -> None:
        self.detach()
        size = len(buf)
        if size < 2 * REC or size % REC:
            raise ValueError(f"journal buffer must be a multiple of {REC} bytes >= {2 * REC}, "
                             f"got {size}")
        n = size // REC - 1
        if next_slot < 0 or next_slot > n:
            raise ValueError(f"next_slot {next_slot} outside 0..{n}")
        self._buf = buf
        self._view = memoryview(buf)
        if self._view.readonly:
            self._view.release()
            self._buf = None
            raise TypeError("journal buffer is read-only")
        self.nslots = n
        self.next_slot = next_slot
        if self.synced_slot > next_slot:
            self.synced_slot = next_slot

    def detach(self) -> None:
        if self._buf is not None:
            self._view.release()
            self._buf = None
            self.nslots = 0

    @property
    def capacity(self) -> int:
        return self.nslots

    def _put(self, rec: bytearray) -> None:
        """Seal `rec` (a whole span, seq = crc = 0) and store it at next_slot, seq last."""
        CRC.pack_into(rec, 32, zlib.crc32(rec))
        off = REC * (1 + self.next_slot)
        self._view[off:off + len(rec)] = rec
        self._view[off:off + 8] = SEQ.pack(self.next_seq)
        self.next_seq += 1
        self.next_slot += len(rec) // REC
        self.records += 1

    def write_order(self, *, t: int, m: int, cid: bytes, symbol: bytes, symbol_id: int,
                    strategy: int, epoch: int, sig_seq: int, side: int, order_type: int,
                    tif: int, qty: float, price: float, trigger_mono: int, created_mono: int,
                    recv_mono: int, ts_ms: int, attempt: int, via: int) -> bool:
        if len(cid) > MAX_CID or len(symbol) > MAX_SYMBOL:
            raise ValueError(f"client id <= {MAX_CID} and symbol <= {MAX_SYMBOL} bytes")
        if not (-128 <= side <= 127) or not (0 <= order_type <= 255 and 0 <= tif <= 255
                                             and 0 <= attempt <= 255 and 0 <= via <= 255):
            raise ValueError("side, order_type, tif, attempt or via out of range")
        if self._buf is None or self.next_slot >= self.nslots:
            return False
        rec = bytearray(REC)
        HEAD.pack_into(rec, 0, 0, t, m, int(JournalKind.ORDER), 1, REC - JOURNAL_PAYLOAD_OFFSET,
                       0, 0)
        ORDER.pack_into(rec, JOURNAL_PAYLOAD_OFFSET, epoch, sig_seq, qty, price, trigger_mono,
                        created_mono, recv_mono, ts_ms, symbol_id, strategy, side, order_type,
                        tif, attempt, via, len(cid), len(symbol), 0, cid, symbol)
        self._put(rec)
        return True

    def write_text(self, t: int, m: int, payload: bytes) -> bool:
        n = len(payload)
        span = text_span(n)
        if span > 65535:
            raise ValueError(f"journal record of {n} bytes is too long")
        if self._buf is None or self.next_slot + span > self.nslots:
            return False
        rec = bytearray(span * REC)
        HEAD.pack_into(rec, 0, 0, t, m, int(JournalKind.TEXT), span, n, 0, 0)
        rec[JOURNAL_PAYLOAD_OFFSET:JOURNAL_PAYLOAD_OFFSET + n] = payload
        self._put(rec)
        return True

    def prefault(self, slots: int = 16) -> int:
        """The kernel's prefault: one byte of each page of the next `slots` free slots
        rewritten with its own value (no byte changes); the pages touched."""
        if self._buf is None or slots <= 0:
            return 0
        end = min(self.next_slot + slots, self.nslots)
        off, hi, n = REC * (1 + self.next_slot), REC * (1 + end), 0
        buf = self._buf
        while off < hi:
            buf[off] = buf[off]
            n += 1
            off = (off // mmap.PAGESIZE + 1) * mmap.PAGESIZE
        return n

    def sync(self) -> None:
        upto = self.next_slot
        if self._buf is None or self.synced_slot >= upto:
            return
        lo = (REC * (1 + self.synced_slot)) // mmap.PAGESIZE * mmap.PAGESIZE
        hi = REC * (1 + upto)
        if isinstance(self._buf, mmap.mmap):
            self._buf.flush(lo, hi - lo)
        self.synced_slot = upto
