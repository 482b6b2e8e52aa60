# Table of contents of ext/risk.pyx — the gateway's pre-trade risk check.
# Pure-Python twin: pipeline/gateway/risk_py.py (same class, same methods, same decisions); the
# order of the checks and every boundary rule are documented there.
from libc.stdint cimport int8_t, uint8_t, int32_t, uint32_t, int64_t
from pipeline._ext.records cimport SignalRecord, TickRecord

# ---------------------------------------------------------------- REASONS (pipeline.gateway.reasons.Reason)
cdef enum:
    R_ACCEPT = 0
    R_MALFORMED = 1             # Reason.MALFORMED (old name BAD_MESSAGE)
    R_BAD_VERSION = 2
    R_BAD_ID = 3
    R_BAD_TIMESTAMP = 4
    R_UNKNOWN_SYMBOL = 5
    R_BAD_SIDE = 6
    R_BAD_ORDER_TYPE = 7
    R_BAD_TIF = 8
    R_BAD_QTY = 9
    R_BAD_PRICE = 10
    R_EXPIRED = 11
    R_DUPLICATE = 12
    R_HALTED = 13
    R_REDUCE_ONLY = 14
    R_PRICE_TICK = 15
    R_PRICE_RANGE = 16
    R_QTY_STEP = 17
    R_QTY_RANGE = 18
    R_MIN_NOTIONAL = 19
    R_MAX_NOTIONAL = 20
    R_MAX_ORDER_QTY = 21
    R_MAX_ORDER_NOTIONAL = 22
    R_NO_REFERENCE = 23
    R_STALE_REFERENCE = 24
    R_PRICE_COLLAR = 25
    R_POSITION_LIMIT = 26
    R_GROSS_EXPOSURE = 27
    R_RATE_LIMIT = 28
    R_RUNAWAY = 29
    # CLIENT_ID_REUSED / ENCODE are judged after the kernel (the order book, the signer)
    R_CLIENT_ID_REUSED = 30
    R_HOST_CLOSED = 31
    R_RATE_BUDGET = 32
    R_ENCODE = 33
    R_STALE_TRIGGER = 34        # the signal's trigger tick older than the symbol's max_tick_age_ns
    R_DUPLICATE_ORDER = 35      # an identical order of the same strategy within duplicate_window_ns
    R_SELF_TRADE = 36           # the order would cross one of our own resting orders
    R_PRICE_WINDOW = 37         # the price beyond window_collar_bps from a reference of the window

# ---------------------------------------------------------------- STATES (reasons.TradingState)
cdef enum:
    ST_ACTIVE = 0
    ST_REDUCING = 1
    ST_HALTED = 2

cdef enum:
    MAX_SYMBOLS = 256           # instrument table (id 0 = none)
    MAX_STRATEGIES = 16         # duplicate filter slots
    MAX_RUNAWAY_SIGNALS = 4096
    RECENT_ORDERS = 8           # per instrument: the last accepted orders (duplicate-order filter)
    WINDOW_SLICES = 16          # per instrument: the time-window collar's slices of references

# ---------------------------------------------------------------- STRUCTS
cdef struct RecentOrder:                          # an accepted order, for DUPLICATE_ORDER
    int64_t mono                                  # 0 = empty slot
    int64_t price_units, qty_units
    uint32_t strategy_id
    int32_t side, order_type

cdef struct RefSlice:                             # one slice of the time-window collar
    int64_t idx                                   # mono_ts // window_slice_ns of its references
    double lo, hi                                 # lowest / highest reference in it (0 = empty)

cdef struct Instrument:
    bint configured
    uint8_t venue
    int32_t price_decimals, qty_decimals
    double price_scale, qty_scale                 # 10**decimals, exact
    int64_t tick_units, step_units
    int64_t min_price_units, max_price_units      # max 0 = none
    int64_t min_qty_units, max_qty_units
    int64_t min_notional_units, max_notional_units
    bint min_notional_market, max_notional_market   # filters also apply to MARKET orders
    int64_t max_order_qty_units, max_position_units
    double max_order_notional
    int64_t max_tick_age_ns                       # trigger tick older → STALE_TRIGGER (increasing)
    # live state, moved by check() (accepts) and the gateway (fills, cancels, reconcile, ticks)
    int64_t pos, open_buy, open_sell              # qty units
    double ref
    int64_t ref_mono                              # 0 = invalidated (GAP, RESYNC, STALE)
    double bid, ask                               # best bid/ask seen by apply_ticks (0 = none)
    RecentOrder recent[RECENT_ORDERS]             # ring of the last accepted orders
    int64_t own_bid, own_ask                      # our best resting buy / sell (price units, 0 none)
    int32_t recent_head
    RefSlice window[WINDOW_SLICES]                # references of the last window_collar_ns

cdef struct DedupSlot:
    uint32_t strategy_id
    int64_t epoch, seq

# What a successful check hands to the encoder: exact integer units (no float re-rounding).
cdef struct CheckedOrder:
    const Instrument *inst
    uint32_t symbol
    int side, order_type, tif
    int64_t qty_units, price_units
    int64_t strategy_id, epoch, seq

# ---------------------------------------------------------------- CHECKS (pure, noexcept nogil)
# defined in ext/risk_checks.pxi (included by risk.pyx)
cdef int64_t to_units(double x, double scale) noexcept nogil       # -1 absurd/NaN, -2 off precision
cdef int64_t round_units(double x, double scale) noexcept nogil
cdef int check_fields(const SignalRecord *s, int64_t now, const Instrument *inst,
                      CheckedOrder *out) noexcept nogil
cdef int check_filters(const Instrument *inst, const CheckedOrder *o, double price,
                       double qty) noexcept nogil
cdef bint is_reducing(const Instrument *inst, int side, int64_t qu) noexcept nogil
cdef int check_collar(double price, double ref, double collar_bps) noexcept nogil
cdef void note_ref(Instrument *inst, double ref, int64_t mono, int64_t slice_ns) noexcept nogil
cdef int window_out(const Instrument *inst, double px, int64_t now, int64_t slice_ns,
                    double bps) noexcept nogil

# ---------------------------------------------------------------- ENGINE (STATE + ENTRY)
cdef class RiskEngine:
    cdef Instrument insts[MAX_SYMBOLS]
    cdef int32_t ids[MAX_SYMBOLS]                 # configured symbol ids, ascending
    cdef int n_ids
    cdef readonly int state
    # limits
    cdef readonly double max_gross_notional, collar_bps
    cdef readonly int64_t ref_stale_ns, throttle_orders, throttle_window_ns
    cdef readonly int64_t runaway_signals, runaway_window_ns, max_tick_age_ns
    cdef readonly int64_t duplicate_window_ns      # 0 = no duplicate-order filter
    cdef RecentOrder recent_saved                 # the slot the last accept overwrote (probe)
    cdef readonly bint self_trade                 # refuse orders crossing our own resting ones
    # time-window collar: 0 bps = off; the window in WINDOW_SLICES slices of window_slice_ns
    cdef readonly double window_collar_bps
    cdef readonly int64_t window_collar_ns, window_slice_ns
    cdef int64_t own_saved_bid, own_saved_ask     # before the last accept (probe)
    # order-rate limit (sliding window): the last `throttle_orders` accepted order times (ring)
    cdef int64_t *rate_times
    cdef int64_t rate_head, rate_count
    # runaway guard: the last `runaway_signals` signal times (ring)
    cdef int64_t *run_times
    cdef int64_t run_head, run_count
    # fill-rate runaway guard: the last `runaway_fills` fill times (ring; 0 fills = off)
    cdef readonly int64_t runaway_fills, runaway_fill_window_ns
    cdef int64_t *fill_times
    cdef int64_t fill_head, fill_count
    # duplicate filter
    cdef DedupSlot dedup[MAX_STRATEGIES]
    cdef int n_dedup
    cdef readonly int64_t last_gap                # signals missing before the last checked one
    # the venue's rate limits, set by ratelimit.HostGate (CLOCK_MONOTONIC ns; 0 = none)
    cdef readonly int64_t gate_host_until         # closed after a 429/418: HOST_CLOSED
    cdef readonly int64_t gate_budget_until       # budget used up in this window: RATE_BUDGET
    cdef readonly int64_t gate_pace_ns, gate_pace_until   # at most one order every pace_ns
    cdef readonly int64_t gate_next               # pacing: no order before this

    cdef Instrument *_inst(self, symbol_id) except NULL
    cdef int _check(self, const SignalRecord *s, int64_t now, CheckedOrder *out) noexcept nogil
    cdef bint _runaway(self, int64_t now) noexcept nogil
    cdef int _dedup_check(self, uint32_t strategy_id, int64_t epoch, int64_t seq) noexcept nogil
    cdef int _exposure(self, const Instrument *inst, int side, int64_t qu) noexcept nogil
    cdef bint _rate_admit(self, int64_t now) noexcept nogil
    cdef bint _is_duplicate(self, const Instrument *inst, const CheckedOrder *o,
                            int64_t now) noexcept nogil
    cdef int64_t _apply_ticks(self, const TickRecord *t, int64_t n) noexcept nogil
    cdef int check_buffer(self, object msg, object now_mono, CheckedOrder *out) noexcept
    cdef int probe_buffer(self, object msg, object now_mono, CheckedOrder *out) noexcept
    cdef void uncommit(self, const CheckedOrder *o) noexcept nogil
