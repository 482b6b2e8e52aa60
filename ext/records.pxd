# Mirror of pipeline/records.py — the one schema. Change both together. Plain (naturally
# aligned) structs: every field sits at its natural alignment with explicit padding, so C and numpy
# agree without `packed` (which would make atomics on these fields unaligned in the compiler's eyes);
# tests/unit/test_records.py checks every field offset and the struct sizes.
from libc.stdint cimport int8_t, uint8_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t

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
    uint8_t action        # 77  records.SignalAction
    uint16_t replace_back # 78

# ---------------------------------------------------------------- ORDER EVENT (160 bytes)
# gateway → strategy (pipeline/bus/events.py); the slot stamp seq first, like every ring record
cdef struct OrderEventRecord:
    int64_t seq           # 0   event ring sequence (slot stamp)
    int64_t epoch         # 8
    int64_t client_seq    # 16
    int64_t ts_ns         # 24
    int64_t mono_ns       # 32
    double price          # 40
    double qty            # 48
    double fee            # 56
    double filled         # 64
    double remaining      # 72
    int64_t trade_id      # 80
    int64_t order_id      # 88
    uint32_t strategy_id  # 96
    uint32_t symbol       # 100
    int32_t venue_code    # 104
    uint8_t kind          # 108 records.OrderEventKind
    int8_t side           # 109
    uint8_t maker         # 110
    uint8_t reason_code   # 111
    char fee_asset[8]     # 112
    char reason[40]       # 120

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

# ---------------------------------------------------------------- GATEWAY JOURNAL (256-byte records)
# records.JOURNAL_HEAD_FIELDS / JOURNAL_TEXT_DTYPE / JOURNAL_ORDER_DTYPE; see pipeline/records.py.
cdef enum:
    JOURNAL_RECORD_SIZE = 256
    JOURNAL_PAYLOAD_OFFSET = 40
    JOURNAL_KIND_NONE = 0
    JOURNAL_KIND_ORDER = 1
    JOURNAL_KIND_TEXT = 2
    JOURNAL_VIA_REST = 1
    JOURNAL_VIA_WS_API = 2

cdef struct JournalHead:
    uint64_t seq         # 0   from 1; 0 = never completed (stored last)
    int64_t t            # 8
    int64_t m            # 16
    uint16_t kind        # 24
    uint16_t span        # 26
    uint32_t length      # 28
    uint32_t crc         # 32
    uint32_t _hpad       # 36

cdef struct JournalOrder:
    JournalHead head     # 0
    int64_t epoch        # 40
    int64_t sig_seq      # 48
    double qty           # 56
    double price         # 64
    int64_t trigger_mono # 72
    int64_t created_mono # 80
    int64_t recv_mono    # 88
    int64_t ts_ms        # 96
    uint32_t symbol_id   # 104
    uint32_t strategy    # 108
    int8_t side          # 112
    uint8_t order_type   # 113
    uint8_t tif          # 114
    uint8_t attempt      # 115
    uint8_t via          # 116
    uint8_t cid_len      # 117
    uint8_t symbol_len   # 118
    uint8_t _opad        # 119
    char cid[40]         # 120
    char symbol[24]      # 160
    uint8_t _rest[72]    # 184
