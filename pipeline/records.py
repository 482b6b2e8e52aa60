"""The one schema: every record that crosses a process boundary is defined here.

`TICK_DTYPE` is the 64-byte (one cache line) market-data record carried by the tick bus; the
pipeline's own truth (GAP, RESYNC_START, RESYNC_DONE, STALE, HEARTBEAT) travels in the same record
so strategies, risk and backtests see outages as data. `SIGNAL_DTYPE` is the fixed-size binary
signal the strategy sends to the gateway (signal ring or ZeroMQ); `SIGNAL_STRUCT` is the one
`struct` format of it, built from the dtype (every Python codec packs and unpacks with it), and
`SIGNAL_FIELDS` its field names in order (without padding).

`ext/records.pxd` mirrors both as packed C structs; tests/unit/test_records.py checks that every
field offset agrees. Change both together.

Timestamps are int64 nanoseconds named by whose clock they come from:
  exch_ts   the exchange's clock (event time), converted to ns
  local_ts  CLOCK_REALTIME at socket read (time.time_ns())
  mono_ts   CLOCK_MONOTONIC (time.perf_counter_ns()) written by the ring at publish; compares
            across processes on one machine, never with the two above
"""
from __future__ import annotations

import struct
from enum import IntEnum

import numpy as np


class Kind(IntEnum):
    """Event kind of a tick record (uint8)."""

    NONE = 0
    # market data
    TRADE = 1          # price, qty, side = aggressor side, id = trade id
    AGG_TRADE = 2      # price, qty, side, id = aggregate trade id
    BID = 3            # best bid (from bookTicker / bbo): price, qty, id = update id
    ASK = 4            # best ask
    BOOK_BID = 5       # depth level change on the bid side: price, qty (0 = remove), id = final update id
    BOOK_ASK = 6       # depth level change on the ask side
    BOOK_CLEAR = 7     # the consumer must drop its book for (venue, symbol): a snapshot follows
    # the pipeline's own truth
    GAP = 16           # records were lost: id = number lost (reader lapped or venue sequence break)
    RESYNC_START = 17  # the book for (venue, symbol) is invalid from here until RESYNC_DONE
    RESYNC_DONE = 18   # the book is valid again; id = snapshot lastUpdateId
    STALE = 19         # no data from the feed for longer than the watchdog allows
    HEARTBEAT = 20     # writer is alive; no market meaning


MARKET_KINDS = frozenset({Kind.TRADE, Kind.AGG_TRADE, Kind.BID, Kind.ASK, Kind.BOOK_BID,
                          Kind.BOOK_ASK, Kind.BOOK_CLEAR})
CONTROL_KINDS = frozenset({Kind.GAP, Kind.RESYNC_START, Kind.RESYNC_DONE, Kind.STALE,
                           Kind.HEARTBEAT})


class Side(IntEnum):
    """Side (int8). For trades: the aggressor. For book records: the book side."""

    NONE = 0
    BUY = 1
    SELL = -1


class Venue(IntEnum):
    """Venue id (uint8)."""

    NONE = 0
    SIM = 1
    BINANCE = 2
    OKX = 3


# Flags (uint8) on a tick record.
FLAG_SNAPSHOT = 0x01     # part of a snapshot (book rebuild), not an incremental change
FLAG_LAST_IN_MSG = 0x02  # last record produced from one venue message (a book update is complete)
FLAG_SYNTHETIC = 0x04    # produced by the pipeline, not by the venue (GAP, STALE, ...)

TICK_DTYPE = np.dtype(
    [
        ("seq", "<i8"),       # 0   ring sequence; also the slot stamp (-1 while being written)
        ("symbol", "<u4"),    # 8   instrument id from the registry
        ("venue", "u1"),      # 12  Venue
        ("flags", "u1"),      # 13  FLAG_*
        ("kind", "u1"),       # 14  Kind
        ("side", "i1"),       # 15  Side
        ("exch_ts", "<i8"),   # 16  exchange clock, ns (0 when the venue gives none)
        ("local_ts", "<i8"),  # 24  CLOCK_REALTIME at socket read, ns
        ("mono_ts", "<i8"),   # 32  CLOCK_MONOTONIC at ring publish, ns
        ("price", "<f8"),     # 40
        ("qty", "<f8"),       # 48
        ("id", "<i8"),        # 56  trade id / update id / lost count (GAP)
    ],
    align=True,
)
assert TICK_DTYPE.itemsize == 64, TICK_DTYPE.itemsize
assert TICK_DTYPE.alignment == 8

# The seq value a slot holds while the writer is changing it (and before its first write).
SEQ_WRITING = -1


class OrderSide(IntEnum):
    BUY = 1
    SELL = -1


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2
    LIMIT_MAKER = 3


class TimeInForce(IntEnum):
    NONE = 0   # MARKET orders carry none
    GTC = 1
    IOC = 2
    FOK = 3


SIGNAL_VERSION = 1


class SignalAction(IntEnum):
    """What a signal record asks for (uint8 at offset 77; was padding, so 0 = a new order).
    CANCEL names the order to cancel by the record's own (strategy_id, epoch, seq): it is not an
    order and takes no number. REPLACE is a new order (numbered) that replaces the order
    `replace_back` numbers before it (pipeline/gateway/intents.py)."""
    NEW = 0
    CANCEL = 1
    REPLACE = 2

SIGNAL_DTYPE = np.dtype(
    [
        ("epoch", "<i8"),         # 0   strategy process epoch (CLOCK_REALTIME ns at its start)
        ("seq", "<i8"),           # 8   per-epoch sequence, from 1; (epoch, seq) is unique
        ("trigger_seq", "<i8"),   # 16  ring sequence of the tick that triggered the signal
        ("trigger_mono", "<i8"),  # 24  that tick's mono_ts (ring publish stamp)
        ("created_mono", "<i8"),  # 32  CLOCK_MONOTONIC when the signal was made
        ("ttl_ns", "<i8"),        # 40  the gateway rejects it after created_mono + ttl_ns
        ("qty", "<f8"),           # 48  base-asset quantity (> 0)
        ("price", "<f8"),         # 56  limit price (NaN for MARKET)
        ("strategy_id", "<u4"),   # 64
        ("symbol", "<u4"),        # 68  instrument id from the registry
        ("venue", "u1"),          # 72  Venue
        ("side", "i1"),           # 73  OrderSide
        ("order_type", "u1"),     # 74  OrderType
        ("tif", "u1"),            # 75  TimeInForce
        ("version", "u1"),        # 76  SIGNAL_VERSION
        ("action", "u1"),         # 77  SignalAction: NEW (0, every older record), CANCEL, REPLACE
        ("replace_back", "<u2"),  # 78  REPLACE: the order replaced is seq - replace_back (same
                                  #     strategy and epoch); 0 otherwise
    ],
    align=True,
)
assert SIGNAL_DTYPE.itemsize == 80, SIGNAL_DTYPE.itemsize

_STRUCT_CODES = {"<i8": "q", "<u8": "Q", "<i4": "i", "<u4": "I", "<i2": "h", "<u2": "H",
                 "|i1": "b", "|u1": "B", "<f8": "d", "<f4": "f"}


def struct_format(dtype: np.dtype) -> str:
    """The little-endian `struct` format of a record dtype, field for field at its offsets;
    fields whose name starts with "_" (and alignment gaps) are pad bytes."""
    fmt, pos = ["<"], 0
    for name, (ft, off) in sorted(dtype.fields.items(), key=lambda kv: kv[1][1]):
        if off > pos:
            fmt.append(f"{off - pos}x")
        if name.startswith("_"):
            fmt.append(f"{ft.itemsize}x")
        elif ft.subdtype is not None:
            raise ValueError(f"field {name!r}: sub-arrays have no struct code")
        elif ft.kind == "S":
            fmt.append(f"{ft.itemsize}s")
        else:
            fmt.append(_STRUCT_CODES[ft.str])
        pos = off + ft.itemsize
    if dtype.itemsize > pos:
        fmt.append(f"{dtype.itemsize - pos}x")
    return "".join(fmt)


# The signal record as a struct: the one Python codec layout (pipeline.bus.signals, the risk and
# signing twins, tools), derived from SIGNAL_DTYPE so the two cannot drift.
SIGNAL_STRUCT = struct.Struct(struct_format(SIGNAL_DTYPE))
SIGNAL_FIELDS = tuple(n for n in SIGNAL_DTYPE.names if not n.startswith("_"))
assert SIGNAL_STRUCT.size == SIGNAL_DTYPE.itemsize, SIGNAL_STRUCT.format

# A signal as it travels in a signal ring (strategy → gateway over shared memory, the hot-path
# alternative to the ZeroMQ frame): the ring's slot stamp first, then the 80 signal bytes exactly as
# encoded for ZeroMQ, padded to two cache lines. Every ring record type starts with its int64 seq.
SIGNAL_SLOT_DTYPE = np.dtype(
    [
        ("seq", "<i8"),           # 0   ring sequence; the slot stamp (-1 while being written)
        ("signal", SIGNAL_DTYPE), # 8   the signal record (pipeline.bus.signals.encode)
        ("_pad", "u1", (40,)),    # 88
    ],
    align=True,
)
assert SIGNAL_SLOT_DTYPE.itemsize == 128, SIGNAL_SLOT_DTYPE.itemsize


def empty_ticks(n: int) -> np.ndarray:
    """A zeroed array of n tick records."""
    return np.zeros(n, dtype=TICK_DTYPE)


def make_tick(kind: Kind, *, seq: int = 0, venue: int = 0, symbol: int = 0, side: int = 0,
              flags: int = 0, exch_ts: int = 0, local_ts: int = 0, mono_ts: int = 0,
              price: float = 0.0, qty: float = 0.0, id: int = 0) -> np.ndarray:
    """One tick record as a 1-element array (cool path: tests, control records)."""
    r = np.zeros(1, dtype=TICK_DTYPE)
    r[0] = (seq, symbol, venue, flags, int(kind), side, exch_ts, local_ts, mono_ts, price, qty, id)
    return r


# ----------------------------------------------------------------------------- order events
# What happened to a strategy's orders, gateway → strategy over the event ring (pipeline/bus/
# events.py: the gateway creates it and is its one writer; every strategy process reads it and
# takes its own strategy ids' events). The ring's slot stamp `seq` is the events' own numbering.
class OrderEventKind(IntEnum):
    """Kind (uint8) of an order event record."""
    NONE = 0
    ACCEPTED = 1         # the venue accepted the order (resting or about to fill)
    FILL = 2             # one fill: price, qty, fee (+ fee_asset), trade_id; filled / remaining
    REJECTED = 3         # refused: reason = the risk kernel's reason name (reason_code its value)
    #                      or the venue's error (venue_code, reason "<status> <code> <msg>")
    CANCELLED = 4        # cancelled (by the strategy, a halt, or the venue)
    EXPIRED = 5          # IOC/FOK remainder, a post-only order that would take, ...
    UNKNOWN = 6          # the request may or may not have reached the venue: a resolution follows
    LOST = 7             # an UNKNOWN order the venue never got (terminal, nothing filled after)
    CANCEL_REJECTED = 8  # a cancel (or the cancel of a cancel/replace) was refused: reason
    # start-up state, answering a strategy process's HELLO (epoch = that process's epoch)
    POSITION = 16        # qty = the strategy's net position in `symbol` from the gateway's fills
    OPEN = 17            # a working order of the strategy (any epoch): price, qty, filled
    SYNCED = 18          # end of the start-up state for `epoch`: live events follow


ORDER_EVENT_DTYPE = np.dtype(
    [
        ("seq", "<i8"),           # 0   event ring sequence; the slot stamp (-1 while written)
        ("epoch", "<i8"),         # 8   the order's strategy epoch (POSITION/SYNCED: the HELLO's)
        ("client_seq", "<i8"),    # 16  the order's seq: its client id within (strategy, epoch)
        ("ts_ns", "<i8"),         # 24  CLOCK_REALTIME when the gateway learned it
        ("mono_ns", "<i8"),       # 32  CLOCK_MONOTONIC at publish
        ("price", "<f8"),         # 40  FILL: fill price; OPEN: the order's limit price
        ("qty", "<f8"),           # 48  FILL: fill qty; OPEN: order qty; POSITION: signed position
        ("fee", "<f8"),           # 56  FILL: commission, in fee_asset
        ("filled", "<f8"),        # 64  the order's cumulative filled quantity
        ("remaining", "<f8"),     # 72  quantity still working (0 once it ended)
        ("trade_id", "<i8"),      # 80  FILL: the venue's trade id (else -1)
        ("order_id", "<i8"),      # 88  the venue's order id (-1 unknown)
        ("strategy_id", "<u4"),   # 96
        ("symbol", "<u4"),        # 100 instrument id
        ("venue_code", "<i4"),    # 104 REJECTED / CANCEL_REJECTED by the venue: its error code
        ("kind", "u1"),           # 108 OrderEventKind
        ("side", "i1"),           # 109 OrderSide of the order
        ("maker", "u1"),          # 110 FILL: 1 = resting liquidity
        ("reason_code", "u1"),    # 111 REJECTED by the gateway: the risk Reason's value
        ("fee_asset", "S8"),      # 112
        ("reason", "S40"),        # 120 why (ASCII, NUL-padded): reason name or venue message
    ],
    align=True,
)
assert ORDER_EVENT_DTYPE.itemsize == 160, ORDER_EVENT_DTYPE.itemsize
# The body of an event slot (every field after the seq stamp) as a struct: the writer packs it
# (RingWriter.publish_bytes), the reader unpacks it.
ORDER_EVENT_STRUCT = struct.Struct(struct_format(ORDER_EVENT_DTYPE))
ORDER_EVENT_FIELDS = tuple(ORDER_EVENT_DTYPE.names)
assert ORDER_EVENT_STRUCT.format.startswith("<q")
ORDER_EVENT_BODY_STRUCT = struct.Struct("<" + ORDER_EVENT_STRUCT.format[2:])
assert ORDER_EVENT_BODY_STRUCT.size == ORDER_EVENT_DTYPE.itemsize - 8


# ----------------------------------------------------------------------------- ring header
# The shared-memory layout of a ring: this header, then `capacity` records of `record_size` bytes
# (TICK_DTYPE for the tick bus, SIGNAL_SLOT_DTYPE for a signal ring; see RING_RECORD_DTYPES).
# Hot words sit on their own cache lines (cursor: written by the writer on every publish and read
# by every reader; futex/waiters: touched only by blocking readers).
RING_MAGIC = int.from_bytes(b"PLRING01", "little")
RING_VERSION = 1
RING_HEADER_DTYPE = np.dtype(
    [
        ("magic", "<u8"),           # 0   RING_MAGIC
        ("version", "<u4"),         # 8   RING_VERSION
        ("record_size", "<u4"),     # 12  itemsize of the record type (RING_RECORD_DTYPES)
        ("capacity", "<i8"),        # 16  records, a power of two
        ("owner_pid", "<i8"),       # 24  the process that created (and will unlink) the segment
        ("writer_pid", "<i8"),      # 32  the one writer (0 = none yet)
        ("epoch_ns", "<i8"),        # 40  CLOCK_REALTIME at creation
        ("created_mono", "<i8"),    # 48  CLOCK_MONOTONIC at creation
        ("writer_start_ns", "<i8"), # 56  the writer process's start time (CLOCK_REALTIME ns)
        ("cursor", "<i8"),          # 64  next sequence to publish (= records published)
        ("tag", "<i8"),             # 72  the creator's PIPELINE_SHM_TAG (0 = none): whose it is
        ("resync_req", "<i8"),      # 80  bumped by a tick reader that lost records: the writer
                                    #     (collector) resyncs every book when it grows
        ("_pad1", "<i8", (5,)),     # 88
        ("heartbeat_mono", "<i8"),  # 128 writer's last heartbeat, CLOCK_MONOTONIC
        ("writer_closed", "<i8"),   # 136 1 once the writer has closed
        ("_pad2", "<i8", (6,)),     # 144
        ("futex_word", "<u4"),      # 192 bumped by the writer when blocking readers wait
        ("waiters", "<u4"),         # 196 blocking readers parked on futex_word
        ("_pad3", "<u4", (14,)),    # 200
    ],
    align=True,
)
assert RING_HEADER_DTYPE.itemsize == 256, RING_HEADER_DTYPE.itemsize

# The record types a ring can carry, by record_size (each starts with its int64 seq stamp).
RING_RECORD_DTYPES = {TICK_DTYPE.itemsize: TICK_DTYPE, SIGNAL_SLOT_DTYPE.itemsize: SIGNAL_SLOT_DTYPE,
                      ORDER_EVENT_DTYPE.itemsize: ORDER_EVENT_DTYPE}


# ----------------------------------------------------------------------------- role status
# The launcher's status block in shared memory: a header, then one 128-byte slot per role, then
# one ROLE_EXTRA_DTYPE record per role (feed counters and hop latency histograms). Each role
# writes only its own slot and extra; the launcher reads them for supervision, the status line,
# the summary and the Prometheus endpoint.
class RoleState(IntEnum):
    EMPTY = 0
    STARTING = 1
    RUNNING = 2
    STOPPING = 3
    STOPPED = 4
    FAILED = 5


class TradingState(IntEnum):
    """The gateway's trading state (mirrored in ext/risk.pxd by the risk kernel)."""
    ACTIVE = 0
    REDUCING = 1
    HALTED = 2


STATUS_MAGIC = int.from_bytes(b"PLSTAT02", "little")
STATUS_HEADER_DTYPE = np.dtype(
    [
        ("magic", "<u8"),          # 0
        ("nslots", "<i8"),         # 8
        ("owner_pid", "<i8"),      # 16
        ("epoch_ns", "<i8"),       # 24  CLOCK_REALTIME at creation
        ("halt", "<i8"),           # 32  launcher → every gateway: go HALTED now (1)
        ("shutdown", "<i8"),       # 40  launcher → all: orderly shutdown in progress (1)
        ("tag", "<i8"),            # 48  the creator's PIPELINE_SHM_TAG (0 = none): whose it is
        ("hop_layout", "<i8"),     # 56  HOP_SLOTS << 16 | HOP_CELLS of every extra record (layout check)
    ],
    align=True,
)
assert STATUS_HEADER_DTYPE.itemsize == 64

ROLE_STATUS_DTYPE = np.dtype(
    [
        ("pid", "<i8"),             # 0
        ("state", "<i8"),           # 8   RoleState
        ("heartbeat_mono", "<i8"),  # 16  CLOCK_MONOTONIC of the role's last heartbeat
        ("started_mono", "<i8"),    # 24
        ("ticks", "<i8"),           # 32  records published (collector) or read (strategy)
        ("signals", "<i8"),         # 40  signals sent (strategy) or received (gateway)
        ("orders", "<i8"),          # 48  orders sent
        ("fills", "<i8"),           # 56  fills received
        ("rejects", "<i8"),         # 64  risk or venue rejects
        ("errors", "<i8"),          # 72  malformed input, failed requests, ...
        ("dropped", "<i8"),         # 80  signals dropped at a full socket, records lost, ...
        ("pnl", "<f8"),             # 88  realized + unrealized, quote currency (gateway)
        ("hop_p50_ns", "<i8"),      # 96  the role's main hop latency (see docs/telemetry)
        ("hop_p99_ns", "<i8"),      # 104
        ("trading_state", "<i8"),   # 112 TradingState (gateway)
        ("open_orders", "<i8"),     # 120 (gateway)
    ],
    align=True,
)
assert ROLE_STATUS_DTYPE.itemsize == 128

# Hop latency histograms a role exports for Prometheus (pipeline/telemetry/latency.py): row i is
# hop HOP_NAMES[i] there; per row HOP_CELLS int64: the cumulative count of values <= each of the
# HOP_CELLS - 2 bucket bounds (latency.BUCKETS_S), then the total count, then the sum in ns.
# Written at most once a second by the role (one numpy store per hop that changed), read by the
# launcher at each scrape (which repairs a row it catches half-written: counts are monotone).
HOP_SLOTS = 16
HOP_CELLS = 24

ROLE_EXTRA_DTYPE = np.dtype(
    [
        ("reconnects", "<i8"),      # 0   connections re-established (collector; gateway: user stream)
        ("resyncs", "<i8"),         # 8   order book resyncs (collector)
        ("stale", "<i8"),           # 16  feeds declared stale (collector)
        ("gaps", "<i8"),            # 24  sequence gaps seen (collector: book; gateway: intake)
        ("halt", "<i8"),            # 32  launcher → this gateway only: go HALTED now (1); the
        #                                 header's halt word is the run-wide one
        ("_pad", "<i8", (3,)),      # 40
        ("hops", "<i8", (HOP_SLOTS, HOP_CELLS)),   # 64
    ],
    align=True,
)
assert ROLE_EXTRA_DTYPE.itemsize == 64 + HOP_SLOTS * HOP_CELLS * 8

# ----------------------------------------------------------------------------- gateway journal
# The gateway's binary write-ahead journal (<state_dir>/journal.bin; pipeline/gateway/binjournal.py,
# ext/journal.pyx and its twin pipeline/gateway/journal_py.py): a file header of one record's size,
# then fixed 256-byte records in a preallocated, memory-mapped file. Every record starts with the
# same 40-byte head; a record whose payload does not fit its slot (a long TEXT record) spans
# `span` consecutive slots. `crc` is zlib's crc32 of all spanned bytes with crc = 0 and seq = 0;
# `seq` (1, 2, 3, ...) is stored last, so a slot whose seq is 0 was never completed: the end of
# the journal (or a torn last record when its other bytes are not zero).
JOURNAL_MAGIC = int.from_bytes(b"PLJRNL01", "little")
JOURNAL_VERSION = 1
JOURNAL_RECORD_SIZE = 256


class JournalKind(IntEnum):
    """Kind (uint16) of a binary journal record."""
    NONE = 0
    ORDER = 1      # the write-ahead record of one order request: signal accepted + order + request
    TEXT = 2       # any other journal record: its JSON object (orjson bytes) as the payload


class JournalVia(IntEnum):
    """The transport an order request went out on (uint8)."""
    REST = 1
    WS_API = 2


JOURNAL_FILE_DTYPE = np.dtype(
    [
        ("magic", "<u8"),           # 0   JOURNAL_MAGIC
        ("version", "<u4"),         # 8   JOURNAL_VERSION
        ("record_size", "<u4"),     # 12  JOURNAL_RECORD_SIZE
        ("created_ns", "<i8"),      # 16  CLOCK_REALTIME when the file was made
        ("_pad", "u1", (232,)),     # 24
    ],
    align=True,
)
assert JOURNAL_FILE_DTYPE.itemsize == JOURNAL_RECORD_SIZE

JOURNAL_HEAD_FIELDS = [
    ("seq", "<u8"),                 # 0   record number from 1; 0 = never completed (written last)
    ("t", "<i8"),                   # 8   CLOCK_REALTIME ns
    ("m", "<i8"),                   # 16  CLOCK_MONOTONIC ns
    ("kind", "<u2"),                # 24  JournalKind
    ("span", "<u2"),                # 26  slots this record occupies (>= 1)
    ("length", "<u4"),              # 28  payload bytes (TEXT: the JSON's length)
    ("crc", "<u4"),                 # 32  crc32 of the span's bytes with crc = seq = 0
    ("_hpad", "<u4"),               # 36
]
JOURNAL_PAYLOAD_OFFSET = 40
JOURNAL_TEXT_DTYPE = np.dtype(JOURNAL_HEAD_FIELDS + [("payload", "u1", (216,))], align=True)
assert JOURNAL_TEXT_DTYPE.itemsize == JOURNAL_RECORD_SIZE

JOURNAL_ORDER_DTYPE = np.dtype(
    JOURNAL_HEAD_FIELDS + [
        ("epoch", "<i8"),           # 40  the signal's strategy epoch
        ("sig_seq", "<i8"),         # 48  the signal's seq
        ("qty", "<f8"),             # 56  base quantity
        ("price", "<f8"),           # 64  limit price, NaN for MARKET
        ("trigger_mono", "<i8"),    # 72  the triggering tick's ring stamp
        ("created_mono", "<i8"),    # 80  the signal's creation
        ("recv_mono", "<i8"),       # 88  the gateway received it
        ("ts_ms", "<i8"),           # 96  the request's timestamp parameter
        ("symbol_id", "<u4"),       # 104 registry id
        ("strategy", "<u4"),        # 108 strategy id
        ("side", "i1"),             # 112 OrderSide
        ("order_type", "u1"),       # 113 OrderType
        ("tif", "u1"),              # 114 TimeInForce
        ("attempt", "u1"),          # 115 1, or 2 for the -1021 retry
        ("via", "u1"),              # 116 JournalVia
        ("cid_len", "u1"),          # 117
        ("symbol_len", "u1"),       # 118
        ("_opad", "u1"),            # 119
        ("cid", "S40"),             # 120 client order id (<= 36 ASCII)
        ("symbol", "S24"),          # 160 exchange symbol (ASCII)
        ("_rest", "u1", (72,)),     # 184
    ],
    align=True,
)
assert JOURNAL_ORDER_DTYPE.itemsize == JOURNAL_RECORD_SIZE
