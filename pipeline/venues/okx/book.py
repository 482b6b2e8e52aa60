"""OKX order book with seqId/prevSeqId sync and CRC32 checksum verification (pure, no I/O).

One `OkxBookSync` per instrument. It eats BookMsg (pipeline.venues.okx.market) from the WebSocket and
REST snapshots the collector fetches when `need_snapshot` is set, and returns the tick records to
publish. It never returns records of a book it knows to be wrong: an update is applied to the
book, checked (sequence, checksum, crossed), and only then turned into records.

Sequence rules (OKX v5 docs, tests/data/okx/ws_books.json):
  * a snapshot has prevSeqId -1; each update's prevSeqId equals the previous message's seqId;
  * a heartbeat update (no levels, prevSeqId == seqId == last seqId) is accepted and publishes
    nothing;
  * prevSeqId != last seqId → gap: GAP + RESYNC_START, the book is dropped and updates are
    buffered until a snapshot arrives (a WebSocket snapshot or REST /api/v5/market/books);
  * seqId < prevSeqId → the venue reset its sequence (maintenance): resync the same way;
    buffered updates before a reset or a hole in their chain are dropped (no snapshot can bridge
    to them);
  * an update already applied (its (seqId, prevSeqId) pair is among the last 256 applied: a
    duplicate, e.g. while two connections overlap) or, right after a REST snapshot, one with
    seqId <= the snapshot's (already contained) is counted and ignored; so is a snapshot of a
    seqId already applied (a second connection's, during make-before-break);
  * messages without seqId (the 2022 recording) are applied in arrival order; then the checksum
    is the only integrity check.
Checksum: when non-zero, CRC32 (zlib.crc32, as a signed 32-bit int) of the top 25 bids and asks
interleaved "bidPx:bidSz:askPx:askSz:..." using the exact strings received. 0 means "not given"
(OKX fixed it to 0 in 2026) and is never a failure. A mismatch resyncs.

Records: a snapshot publishes BOOK_CLEAR (FLAG_SNAPSHOT), then every level as BOOK_BID / BOOK_ASK
(FLAG_SNAPSHOT), FLAG_LAST_IN_MSG on the last, then RESYNC_DONE (id = snapshot seqId): a consumer's
book is valid from there (pipeline.collector.book.BookRebuilder). An update publishes its level
changes (qty 0 = remove), id = seqId, FLAG_LAST_IN_MSG on
the last. GAP (FLAG_SYNTHETIC, id = seqIds skipped when known) and RESYNC_START mark a break.
"""
from __future__ import annotations

import heapq
import logging
import zlib
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from pipeline.records import (FLAG_LAST_IN_MSG, FLAG_SNAPSHOT, FLAG_SYNTHETIC, TICK_DTYPE, Kind,
                              Side, Venue)
from pipeline.venues.okx.market import CHECKSUM_LEVELS, BookMsg

log = logging.getLogger(__name__)

MAX_BUFFERED = 10_000   # updates kept while waiting for a snapshot; beyond: the oldest are dropped
MAX_BRIDGE_STALE = 100  # updates older than a REST snapshot tolerated right after it
RECENT = 256            # (seqId, prevSeqId) pairs remembered to recognise duplicates


def checksum_string(bids, asks, depth: int = CHECKSUM_LEVELS) -> str:
    """'bp1:bs1:ap1:as1:bp2:...' over the top `depth` levels; a shorter side is skipped."""
    parts: list[str] = []
    for i in range(max(min(len(bids), depth), min(len(asks), depth))):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    return ":".join(parts)


def crc32_signed(s: str) -> int:
    v = zlib.crc32(s.encode())
    return v - (1 << 32) if v >= (1 << 31) else v


class OkxBook:
    """price → (price string, size string) per side; best levels found on demand."""

    __slots__ = ("bids", "asks")

    def __init__(self):
        self.bids: dict[float, tuple[str, str]] = {}
        self.asks: dict[float, tuple[str, str]] = {}

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def apply(self, bids, asks) -> None:
        for p, s in bids:
            _set(self.bids, p, s)
        for p, s in asks:
            _set(self.asks, p, s)

    def top(self, n: int = CHECKSUM_LEVELS):
        """(bids best-first, asks best-first) as lists of (price str, size str)."""
        b = [self.bids[k] for k in heapq.nlargest(n, self.bids)]
        a = [self.asks[k] for k in heapq.nsmallest(n, self.asks)]
        return b, a

    def checksum(self) -> int:
        b, a = self.top(CHECKSUM_LEVELS)
        return crc32_signed(checksum_string(b, a))

    def best(self) -> tuple[float | None, float | None]:
        return (max(self.bids) if self.bids else None, min(self.asks) if self.asks else None)

    def crossed(self) -> bool:
        b, a = self.best()
        return b is not None and a is not None and b >= a


def _set(side: dict, p: str, s: str) -> None:
    px = float(p)
    if float(s) == 0.0:
        side.pop(px, None)
    else:
        side[px] = (p, s)


@dataclass
class SyncStats:
    updates: int = 0
    heartbeats: int = 0
    snapshots: int = 0
    checksums_verified: int = 0
    checksum_failures: int = 0
    gaps: int = 0
    seq_resets: int = 0
    crossed: int = 0
    resyncs: int = 0
    buffered_dropped: int = 0
    duplicates: int = 0
    snapshots_unused: int = 0
    extra: dict = field(default_factory=dict)


class OkxBookSync:
    """The book of one instrument and its sequence state. Methods return TICK_DTYPE arrays."""

    def __init__(self, symbol: int, venue: int = int(Venue.OKX)):
        self.symbol = symbol
        self.venue = venue
        self.book = OkxBook()
        self.live = False               # the book is valid and published
        self.need_snapshot = False      # the collector should fetch a REST snapshot
        self.resyncing = False          # a GAP/RESYNC_START was published; RESYNC_DONE owed
        self.last_seq: int | None = None
        self._bridge = False            # the next update may straddle the snapshot's seqId
        self._bridge_ts = 0             # snapshot without seqId: drop updates older than this
        self._bridge_stale = 0          # updates older than the REST snapshot seen since it
        self.buffer: deque[BookMsg] = deque(maxlen=MAX_BUFFERED)
        self._recent: dict[tuple[int, int | None], None] = {}   # (seqId, prevSeqId) applied
        self._recent_seq: dict[int, None] = {}                   # their seqIds
        self.stats = SyncStats()

    # ------------------------------------------------------------------ input
    def on_message(self, m: BookMsg) -> np.ndarray:
        """A WebSocket books message → records to publish (possibly none)."""
        if m.snapshot:
            return self._snapshot(m)
        if not self.live:
            if m.seq_id is not None and m.prev_seq_id is not None and self.buffer:
                last = self.buffer[-1]
                if (m.seq_id, m.prev_seq_id) == (last.seq_id, last.prev_seq_id):
                    self.stats.duplicates += 1
                    return _empty()
                if m.seq_id < m.prev_seq_id or m.prev_seq_id != last.seq_id:
                    # a new sequence epoch, or a hole in the buffered chain: no snapshot can
                    # bridge to what came before, so it is dropped
                    self.buffer.clear()
            if len(self.buffer) == self.buffer.maxlen:
                self.stats.buffered_dropped += 1
            self.buffer.append(m)
            if not self.resyncing:       # first update before any snapshot: ask for one
                self.need_snapshot = True
            return _empty()
        return self._update(m)

    def on_snapshot(self, m: BookMsg) -> np.ndarray:
        """A REST snapshot (parse_rest_books) → records (snapshot, RESYNC_DONE, bridged updates).
        Ignored when the book is live already (a WebSocket snapshot came first)."""
        if self.live:
            self.stats.snapshots_unused += 1
            return _empty()
        return self._snapshot(m)

    def start_resync(self, reason: str, lost: int = 0, exch_ts: int = 0,
                     local_ts: int = 0) -> np.ndarray:
        """Drop the book: GAP + RESYNC_START, then wait for a snapshot."""
        self.stats.resyncs += 1
        log.info("okx book %d resync: %s", self.symbol, reason)
        self.book.clear()
        self.live = False
        self.need_snapshot = True
        self.last_seq = None
        self.buffer.clear()
        self._recent.clear()
        self._recent_seq.clear()
        recs = _control(self, (Kind.GAP, Kind.RESYNC_START), exch_ts, local_ts, lost)
        self.resyncing = True
        return recs

    # ------------------------------------------------------------------ internals
    def _snapshot(self, m: BookMsg) -> np.ndarray:
        if (self.live and m.seq_id is not None and m.seq_id >= 0
                and (m.seq_id == self.last_seq or m.seq_id in self._recent_seq)):
            # a book we already had (a second connection's snapshot during make-before-break):
            # we are at or past it, and its following updates are duplicates
            self.stats.snapshots_unused += 1
            return _empty()
        self.stats.snapshots += 1
        self.book.clear()
        self.book.apply(m.bids, m.asks)
        if m.checksum != 0:
            if self.book.checksum() != m.checksum:
                self.stats.checksum_failures += 1
                return self._fail("snapshot checksum mismatch", m)
            self.stats.checksums_verified += 1
        if self.book.crossed():
            self.stats.crossed += 1
            return self._fail("crossed snapshot", m)
        # RESYNC_DONE after every snapshot: BOOK_CLEAR invalidates a consumer's book
        # (pipeline.collector.book.BookRebuilder) until it sees RESYNC_DONE
        parts = [self._snapshot_records(m),
                 _control(self, (Kind.RESYNC_DONE,), m.exch_ts, m.local_ts,
                          m.seq_id if m.seq_id is not None else 0)]
        self.resyncing = False
        self.live = True
        self.need_snapshot = False
        self.last_seq = m.seq_id
        if m.seq_id is not None:
            self._recent_seq[m.seq_id] = None
        self._bridge = m.rest
        self._bridge_stale = 0
        self._bridge_ts = m.exch_ts if m.rest and m.seq_id is None else 0
        pending = list(self.buffer)
        self.buffer.clear()
        for u in pending:
            if not self.live:          # a buffered update broke the chain: buffer the rest
                self.buffer.append(u)
                continue
            if self._stale(u):
                continue
            parts.append(self._update(u))
        return np.concatenate(parts)

    def _stale(self, u: BookMsg) -> bool:
        """A buffered update the snapshot already contains."""
        if self.last_seq is not None and u.seq_id is not None:
            return u.seq_id <= self.last_seq
        if self._bridge_ts:
            return u.exch_ts < self._bridge_ts
        return False

    def _update(self, m: BookMsg) -> np.ndarray:
        if m.seq_id is not None and m.prev_seq_id is not None:
            if m.seq_id < m.prev_seq_id:
                self.stats.seq_resets += 1
                return self._fail(f"seqId reset {m.prev_seq_id} -> {m.seq_id}", m)
            if self.last_seq is not None:
                if self._bridge and m.seq_id <= self.last_seq:
                    # in flight behind the REST snapshot. A heartbeat cannot be (no update for
                    # ~60 s means the snapshot is at its seqId), and only a few updates can be:
                    # more means a missed reset or a broken snapshot.
                    self._bridge_stale += 1
                    if (m.heartbeat and m.seq_id < self.last_seq) or \
                            self._bridge_stale > MAX_BRIDGE_STALE:
                        self.stats.gaps += 1
                        return self._fail("stale updates after the snapshot", m)
                    self.stats.duplicates += 1
                    return _empty()
                if (m.seq_id, m.prev_seq_id) in self._recent:
                    self.stats.duplicates += 1                # already applied
                    return _empty()
                ok = (m.prev_seq_id <= self.last_seq < m.seq_id) if self._bridge \
                    else m.prev_seq_id == self.last_seq
                if not ok:
                    self.stats.gaps += 1
                    return self._fail(f"seq gap: prevSeqId {m.prev_seq_id} after {self.last_seq}",
                                      m, lost=max(0, m.prev_seq_id - self.last_seq))
        elif self._bridge_ts and m.exch_ts < self._bridge_ts:
            return _empty()
        self.book.apply(m.bids, m.asks)
        if m.checksum != 0:
            if self.book.checksum() != m.checksum:
                self.stats.checksum_failures += 1
                return self._fail("checksum mismatch", m)
            self.stats.checksums_verified += 1
        if self.book.crossed():
            self.stats.crossed += 1
            return self._fail("crossed book", m)
        if m.heartbeat:
            self.stats.heartbeats += 1
        else:
            self.stats.updates += 1
        if m.seq_id is not None:
            self.last_seq = m.seq_id
            self._recent[(m.seq_id, m.prev_seq_id)] = None
            self._recent_seq[m.seq_id] = None
            if len(self._recent) > RECENT:
                del self._recent[next(iter(self._recent))]
            if len(self._recent_seq) > RECENT:
                del self._recent_seq[next(iter(self._recent_seq))]
        self._bridge = False
        self._bridge_ts = 0
        return self._level_records(m, 0)

    def _fail(self, reason: str, m: BookMsg, lost: int = 0) -> np.ndarray:
        return self.start_resync(reason, lost, m.exch_ts, m.local_ts)

    def _snapshot_records(self, m: BookMsg) -> np.ndarray:
        clear = _control(self, (Kind.BOOK_CLEAR,), m.exch_ts, m.local_ts,
                         m.seq_id or 0, flags=FLAG_SNAPSHOT)
        return np.concatenate([clear, self._level_records(m, FLAG_SNAPSHOT, only_live=True)])

    def _level_records(self, m: BookMsg, flags: int, only_live: bool = False) -> np.ndarray:
        bids = [(float(p), float(s)) for p, s in m.bids]
        asks = [(float(p), float(s)) for p, s in m.asks]
        if only_live:
            bids = [(p, q) for p, q in bids if q != 0.0]
            asks = [(p, q) for p, q in asks if q != 0.0]
        n = len(bids) + len(asks)
        r = np.zeros(n, dtype=TICK_DTYPE)
        if n == 0:
            return r
        r["venue"] = self.venue
        r["symbol"] = self.symbol
        r["flags"] = flags
        r["exch_ts"] = m.exch_ts
        r["local_ts"] = m.local_ts
        r["id"] = m.seq_id or 0
        nb = len(bids)
        r["kind"][:nb] = int(Kind.BOOK_BID)
        r["side"][:nb] = int(Side.BUY)
        r["kind"][nb:] = int(Kind.BOOK_ASK)
        r["side"][nb:] = int(Side.SELL)
        if nb:
            r["price"][:nb], r["qty"][:nb] = zip(*bids)
        if asks:
            r["price"][nb:], r["qty"][nb:] = zip(*asks)
        r["flags"][-1] |= FLAG_LAST_IN_MSG
        return r


def _empty() -> np.ndarray:
    return np.zeros(0, dtype=TICK_DTYPE)


def _control(sync: OkxBookSync, kinds, exch_ts: int, local_ts: int, id: int,
             flags: int = FLAG_SYNTHETIC) -> np.ndarray:
    r = np.zeros(len(kinds), dtype=TICK_DTYPE)
    r["venue"] = sync.venue
    r["symbol"] = sync.symbol
    r["flags"] = flags
    r["kind"] = [int(k) for k in kinds]
    r["exch_ts"] = exch_ts
    r["local_ts"] = local_ts
    r["id"] = id
    return r
