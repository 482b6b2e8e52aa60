# Mirror of pipeline/records.py — the one schema. Change both together. Plain (naturally
# aligned) structs: every field sits at its natural alignment with explicit padding, so C and numpy
# agree without `packed` (which would make atomics on these fields unaligned in the compiler's eyes);
# tests/unit/test_records.py checks every field offset and the struct sizes.
from libc.stdint cimport int8_t, uint8_t, uint32_t, int64_t, uint64_t

# ---------------------------------------------------------------- TICK RECORD (64 bytes)
cdef struct TickRecord:
    int64_t seq          # 0   ring sequence; slot stamp (-1 while being written)
    uint32_t symbol      # 8
    uint8_t venue        # 12
    uint8_t flags        # 13
    uint8_t kind         # 14
    int8_t side          # 15
    int64_t exch_ts      # 16
    int64_t local_ts     # 24
    int64_t mono_ts      # 32
    double price         # 40
    double qty           # 48
    int64_t id           # 56

# ---------------------------------------------------------------- EVENT KINDS (records.Kind)
cdef enum:
    KIND_NONE = 0
    KIND_TRADE = 1
    KIND_AGG_TRADE = 2
    KIND_BID = 3
    KIND_ASK = 4
    KIND_BOOK_BID = 5
    KIND_BOOK_ASK = 6
    KIND_BOOK_CLEAR = 7
    KIND_GAP = 16
    KIND_RESYNC_START = 17
    KIND_RESYNC_DONE = 18
    KIND_STALE = 19
    KIND_HEARTBEAT = 20

cdef enum:
    FLAG_SNAPSHOT = 0x01
    FLAG_LAST_IN_MSG = 0x02
    FLAG_SYNTHETIC = 0x04

cdef enum:
    SEQ_WRITING = -1

# ---------------------------------------------------------------- SIGNAL RECORD (80 bytes)
cdef struct SignalRecord:
    int64_t epoch         # 0
    int64_t seq           # 8
    int64_t trigger_seq   # 16
    int64_t trigger_mono  # 24
    int64_t created_mono  # 32
    int64_t ttl_ns        # 40
    double qty            # 48
    double price          # 56
    uint32_t strategy_id  # 64
    uint32_t symbol       # 68
    uint8_t venue         # 72
    int8_t side           # 73
    uint8_t order_type    # 74
    uint8_t tif           # 75
    uint8_t version       # 76
    uint8_t _pad[3]       # 77

# ---------------------------------------------------------------- RING HEADER (256 bytes)
cdef struct RingHeader:
    uint64_t magic          # 0
    uint32_t version        # 8
    uint32_t record_size    # 12
    int64_t capacity        # 16
    int64_t owner_pid       # 24
    int64_t writer_pid      # 32
    int64_t epoch_ns        # 40
    int64_t created_mono    # 48
    int64_t writer_start_ns # 56
    int64_t cursor          # 64   own cache line
    int64_t tag             # 72   the creator's PIPELINE_SHM_TAG
    int64_t resync_req      # 80   readers that lost records ask the writer for a book resync
    int64_t _pad1[5]        # 88
    int64_t heartbeat_mono  # 128
    int64_t writer_closed   # 136
    int64_t _pad2[6]        # 144
    uint32_t futex_word     # 192
    uint32_t waiters        # 196
    uint32_t _pad3[14]      # 200
