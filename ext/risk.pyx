# cython: language_level=3
# distutils: extra_compile_args = -ffp-contract=off
"""Pre-trade risk check: small noexcept nogil checks over C structs behind one entry point.

`RiskEngine.check(msg, now_mono) -> int` takes one 80-byte SIGNAL_DTYPE record and CLOCK_MONOTONIC
ns and returns a reason code (0 = ACCEPT, see pipeline/gateway/reasons.py). The order of the checks
and every boundary rule are documented in the pure-Python twin, pipeline/gateway/risk_py.py, which
this file mirrors statement for statement; tests/parity checks identical decisions and state.

Float rules: every float expression is written in the same order as the twin and compiled with
-ffp-contract=off (no fused multiply-add), so binary64 results are identical to Python's.
Exchange filters are checked on exact integer units (pipeline/gateway/instruments.py).
"""
cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.long cimport PyLong_Check
from cpython.bytes cimport PyBytes_CheckExact, PyBytes_GET_SIZE, PyBytes_AS_STRING
from cpython.number cimport PyNumber_Index
from libc.math cimport floor, fabs, INFINITY
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from libc.stdint cimport int64_t, uint32_t

from pipeline._ext.records cimport (SignalRecord, TickRecord, KIND_TRADE, KIND_AGG_TRADE,
                                    KIND_BID, KIND_ASK, KIND_BOOK_CLEAR, KIND_GAP,
                                    KIND_RESYNC_START, KIND_STALE)

DEF SIGNAL_SIZE = 80
DEF SIGNAL_VERSION = 1
DEF MAX_STRATEGY_ID = 1 << 16
DEF MAX_UNITS_F = 1e13
DEF ORDER_LIMIT = 1
DEF ORDER_MARKET = 2
DEF ORDER_LIMIT_MAKER = 3
DEF TIF_GTC = 1

cdef int64_t MAX_SEQ = (<int64_t>1) << 40
cdef int64_t INT64_MAX = 0x7FFFFFFFFFFFFFFF   # keeps newClientOrderId within 36 characters
cdef double POW10[19]
for _i in range(19):
    POW10[_i] = float(10 ** _i)

REASON_CODES = {
    "ACCEPT": R_ACCEPT, "MALFORMED": R_MALFORMED, "BAD_VERSION": R_BAD_VERSION,
    "BAD_ID": R_BAD_ID, "BAD_TIMESTAMP": R_BAD_TIMESTAMP, "UNKNOWN_SYMBOL": R_UNKNOWN_SYMBOL,
    "BAD_SIDE": R_BAD_SIDE, "BAD_ORDER_TYPE": R_BAD_ORDER_TYPE, "BAD_TIF": R_BAD_TIF,
    "BAD_QTY": R_BAD_QTY, "BAD_PRICE": R_BAD_PRICE, "EXPIRED": R_EXPIRED,
    "DUPLICATE": R_DUPLICATE, "HALTED": R_HALTED, "REDUCE_ONLY": R_REDUCE_ONLY,
    "PRICE_TICK": R_PRICE_TICK, "PRICE_RANGE": R_PRICE_RANGE, "QTY_STEP": R_QTY_STEP,
    "QTY_RANGE": R_QTY_RANGE, "MIN_NOTIONAL": R_MIN_NOTIONAL, "MAX_NOTIONAL": R_MAX_NOTIONAL,
    "MAX_ORDER_QTY": R_MAX_ORDER_QTY, "MAX_ORDER_NOTIONAL": R_MAX_ORDER_NOTIONAL,
    "NO_REFERENCE": R_NO_REFERENCE, "STALE_REFERENCE": R_STALE_REFERENCE,
    "PRICE_COLLAR": R_PRICE_COLLAR, "POSITION_LIMIT": R_POSITION_LIMIT,
    "GROSS_EXPOSURE": R_GROSS_EXPOSURE, "RATE_LIMIT": R_RATE_LIMIT, "RUNAWAY": R_RUNAWAY,
    "CLIENT_ID_REUSED": R_CLIENT_ID_REUSED, "HOST_CLOSED": R_HOST_CLOSED,
    "RATE_BUDGET": R_RATE_BUDGET, "ENCODE": R_ENCODE, "STALE_TRIGGER": R_STALE_TRIGGER,
    "DUPLICATE_ORDER": R_DUPLICATE_ORDER, "SELF_TRADE": R_SELF_TRADE,
    "PRICE_WINDOW": R_PRICE_WINDOW,
}
STATE_CODES = {"ACTIVE": ST_ACTIVE, "REDUCING": ST_REDUCING, "HALTED": ST_HALTED}
LIMITS = {"MAX_SYMBOLS": MAX_SYMBOLS, "MAX_STRATEGIES": MAX_STRATEGIES,
          "MAX_RUNAWAY_SIGNALS": MAX_RUNAWAY_SIGNALS, "WINDOW_SLICES": WINDOW_SLICES}


# ====================================================================== CHECKS
# to_units, round_units, check_fields, check_filters, is_reducing, crosses_own, check_collar,
# the time-window collar (note_ref, window_out): ext/risk_checks.pxi
include "risk_checks.pxi"


# ====================================================================== ENGINE
cdef class RiskEngine:
    """State of the gateway's risk (instruments, positions, open orders, reference prices, trading
    state, throttle, runaway guard, duplicate filter) and the one entry point, check()."""

    def __cinit__(self, *args, **kwargs):
        memset(self.insts, 0, sizeof(self.insts))
        memset(self.dedup, 0, sizeof(self.dedup))
        self.run_times = NULL
        self.rate_times = NULL
        self.fill_times = NULL

    def __init__(self, *, max_gross_notional, collar_bps, ref_stale_ns, throttle_orders,
                 throttle_window_ns, runaway_signals, runaway_window_ns,
                 max_tick_age_ns=1_000_000_000, duplicate_window_ns=0, self_trade=False,
                 runaway_fills=0, runaway_fill_window_ns=1_000_000_000, window_collar_bps=0.0,
                 window_collar_ns=1_000_000_000, state=ST_ACTIVE):
        from pipeline.gateway.risk_py import (_validate_fill_guard, _validate_limits,
                                              _validate_window_collar)
        _validate_fill_guard(runaway_fills, runaway_fill_window_ns)
        _validate_window_collar(window_collar_bps, window_collar_ns)
        self.window_collar_bps = float(window_collar_bps)
        self.window_collar_ns = window_collar_ns
        self.window_slice_ns = window_collar_ns // WINDOW_SLICES
        _validate_limits(max_gross_notional, collar_bps, ref_stale_ns, throttle_orders,
                         throttle_window_ns, runaway_signals, runaway_window_ns, state,
                         max_tick_age_ns, duplicate_window_ns)
        self.duplicate_window_ns = duplicate_window_ns
        self.self_trade = bool(self_trade)
        self.own_saved_bid = self.own_saved_ask = 0
        memset(&self.recent_saved, 0, sizeof(RecentOrder))
        self.max_gross_notional = float(max_gross_notional)
        self.collar_bps = float(collar_bps)
        self.ref_stale_ns = ref_stale_ns
        self.throttle_orders = throttle_orders
        self.throttle_window_ns = throttle_window_ns
        self.runaway_signals = runaway_signals
        self.runaway_window_ns = runaway_window_ns
        self.max_tick_age_ns = max_tick_age_ns
        self.state = int(state)
        free(self.rate_times)
        self.rate_times = <int64_t *>calloc(throttle_orders, sizeof(int64_t))
        if self.rate_times == NULL:
            raise MemoryError()
        self.rate_head = 0
        self.rate_count = 0
        free(self.run_times)
        self.run_times = <int64_t *>calloc(runaway_signals, sizeof(int64_t))
        if self.run_times == NULL:
            raise MemoryError()
        self.run_head = 0
        self.run_count = 0
        self.runaway_fills = runaway_fills
        self.runaway_fill_window_ns = runaway_fill_window_ns
        free(self.fill_times)
        self.fill_times = <int64_t *>calloc(max(1, runaway_fills), sizeof(int64_t))
        if self.fill_times == NULL:
            raise MemoryError()
        self.fill_head = 0
        self.fill_count = 0
        self.n_dedup = 0
        self.last_gap = 0
        self.gate_host_until = self.gate_budget_until = 0
        self.gate_pace_ns = self.gate_pace_until = self.gate_next = 0
        self.n_ids = 0

    def __dealloc__(self):
        free(self.run_times)
        free(self.rate_times)
        free(self.fill_times)

    # ------------------------------------------------------------------ state (gateway side)
    def set_state(self, state):
        if int(state) not in (0, 1, 2):
            raise ValueError(f"trading state must be 0, 1 or 2, got {state!r}")
        self.state = int(state)

    def set_instrument(self, rules):
        from pipeline.gateway.instruments import InstrumentRules
        if not isinstance(rules, InstrumentRules):
            raise TypeError("set_instrument takes an InstrumentRules")
        cdef int sid = rules.symbol_id
        cdef Instrument *i = &self.insts[sid]
        memset(i, 0, sizeof(Instrument))
        i.configured = True
        i.venue = rules.venue
        i.price_decimals = rules.price_decimals
        i.qty_decimals = rules.qty_decimals
        i.price_scale = POW10[i.price_decimals]
        i.qty_scale = POW10[i.qty_decimals]
        i.tick_units = rules.tick_units
        i.step_units = rules.step_units
        i.min_price_units = rules.min_price_units
        i.max_price_units = rules.max_price_units
        i.min_qty_units = rules.min_qty_units
        i.max_qty_units = rules.max_qty_units
        i.min_notional_units = rules.min_notional_units
        i.max_notional_units = rules.max_notional_units
        i.min_notional_market = rules.notional_applies_to_market
        i.max_notional_market = rules.max_notional_applies_to_market
        i.max_order_qty_units = rules.max_order_qty_units
        i.max_position_units = rules.max_position_units
        i.max_order_notional = rules.max_order_notional
        i.max_tick_age_ns = self.max_tick_age_ns
        self.n_ids = 0
        for k in range(1, MAX_SYMBOLS):
            if self.insts[k].configured:
                self.ids[self.n_ids] = k
                self.n_ids += 1

    cdef Instrument *_inst(self, symbol_id) except NULL:
        if not isinstance(symbol_id, int) or not 0 < symbol_id < MAX_SYMBOLS \
                or not self.insts[<int>symbol_id].configured:
            raise ValueError(f"symbol id {symbol_id!r} is not configured")
        return &self.insts[<int>symbol_id]

    def set_max_tick_age(self, symbol_id, max_tick_age_ns):
        """This symbol's own limit on the age of a signal's trigger tick (set_instrument gives it
        the engine's max_tick_age_ns); ValueError outside 1..10**12 ns."""
        from pipeline.gateway.risk_py import _check_tick_age
        cdef Instrument *i = self._inst(symbol_id)
        i.max_tick_age_ns = _check_tick_age(max_tick_age_ns)

    def max_tick_age(self, symbol_id):
        return self._inst(symbol_id).max_tick_age_ns

    def set_reference(self, symbol_id, double price, int64_t mono_ns):
        """Live reference price and its CLOCK_MONOTONIC stamp; False (ignored) for an unknown symbol,
        a price that is not finite and > 0, or a negative stamp."""
        if not isinstance(symbol_id, int) or not 0 < symbol_id < MAX_SYMBOLS or mono_ns < 0:
            return False
        cdef Instrument *i = &self.insts[<int>symbol_id]
        if not i.configured or not (price > 0.0 and price < INFINITY):
            return False
        i.ref = price
        i.ref_mono = mono_ns
        if self.window_collar_bps > 0.0:
            note_ref(i, price, mono_ns, self.window_slice_ns)
        return True

    def set_position(self, symbol_id, qty):
        cdef Instrument *i = self._inst(symbol_id)
        i.pos = _qty_units(qty, i.qty_scale, True)

    def set_open_orders(self, symbol_id, buy_qty, sell_qty):
        cdef Instrument *i = self._inst(symbol_id)
        b = _qty_units(buy_qty, i.qty_scale, False)
        s = _qty_units(sell_qty, i.qty_scale, False)
        i.open_buy, i.open_sell = b, s

    def release_open(self, symbol_id, side, qty):
        """An order ended unfilled (cancelled, expired, rejected by the venue) for `qty`."""
        cdef Instrument *i = self._inst(symbol_id)
        cdef int64_t u = _qty_units(qty, i.qty_scale, False)
        if side == 1:
            i.open_buy = i64max(0, i.open_buy - u)
        elif side == -1:
            i.open_sell = i64max(0, i.open_sell - u)
        else:
            raise ValueError(f"side must be 1 or -1, got {side!r}")

    def apply_fill(self, symbol_id, side, qty):
        """`qty` of an open order was filled: it leaves the open orders and moves the position."""
        cdef Instrument *i = self._inst(symbol_id)
        cdef int64_t u = _qty_units(qty, i.qty_scale, False)
        if side == 1:
            i.open_buy = i64max(0, i.open_buy - u)
            i.pos += u
        elif side == -1:
            i.open_sell = i64max(0, i.open_sell - u)
            i.pos -= u
        else:
            raise ValueError(f"side must be 1 or -1, got {side!r}")

    def position(self, symbol_id):
        cdef Instrument *i = self._inst(symbol_id)
        return i.pos / i.qty_scale

    def open_orders(self, symbol_id):
        cdef Instrument *i = self._inst(symbol_id)
        return i.open_buy / i.qty_scale, i.open_sell / i.qty_scale

    def apply_ticks(self, ticks):
        """Reference prices from a batch of tick records (TICK_DTYPE array or its bytes): the mid
        of the best bid/ask once both are known, else the last trade; GAP (symbol 0: every
        instrument), RESYNC_START, STALE and BOOK_CLEAR invalidate the reference's stamp (stale
        until fresh data). Returns the number of records that applied."""
        cdef Py_buffer view
        cdef int64_t n, count
        PyObject_GetBuffer(ticks, &view, PyBUF_SIMPLE)
        try:
            if view.len % sizeof(TickRecord):
                raise ValueError("expected whole 64-byte tick records")
            n = view.len // sizeof(TickRecord)
            count = self._apply_ticks(<const TickRecord *>view.buf, n)
        finally:
            PyBuffer_Release(&view)
        return count

    cdef int64_t _apply_ticks(self, const TickRecord *t, int64_t n) noexcept nogil:
        cdef int64_t k, count = 0
        cdef int j
        cdef const TickRecord *r
        cdef Instrument *inst
        for k in range(n):
            r = &t[k]
            if r.kind == KIND_GAP and r.symbol == 0:
                for j in range(self.n_ids):
                    inst = &self.insts[self.ids[j]]
                    inst.ref_mono = 0
                    inst.bid = 0.0
                    inst.ask = 0.0
                count += 1
                continue
            if r.symbol >= MAX_SYMBOLS:
                continue
            inst = &self.insts[r.symbol]
            if not inst.configured or inst.venue != r.venue:
                continue
            if r.kind == KIND_BID or r.kind == KIND_ASK:
                if not (r.price > 0.0 and r.price < INFINITY) or r.mono_ts < 0:
                    continue
                if r.kind == KIND_BID:
                    inst.bid = r.price
                else:
                    inst.ask = r.price
                if inst.bid > 0.0 and inst.ask > 0.0:
                    inst.ref = (inst.bid + inst.ask) / 2.0
                    inst.ref_mono = r.mono_ts
                    if self.window_collar_bps > 0.0:
                        note_ref(inst, inst.ref, r.mono_ts, self.window_slice_ns)
                count += 1
            elif r.kind == KIND_TRADE or r.kind == KIND_AGG_TRADE:
                if not (r.price > 0.0 and r.price < INFINITY) or r.mono_ts < 0:
                    continue
                if not (inst.bid > 0.0 and inst.ask > 0.0):
                    inst.ref = r.price
                    inst.ref_mono = r.mono_ts
                    if self.window_collar_bps > 0.0:
                        note_ref(inst, r.price, r.mono_ts, self.window_slice_ns)
                count += 1
            elif r.kind == KIND_GAP or r.kind == KIND_RESYNC_START or r.kind == KIND_STALE \
                    or r.kind == KIND_BOOK_CLEAR:
                inst.ref_mono = 0
                inst.bid = 0.0
                inst.ask = 0.0
                count += 1
        return count

    def snapshot(self):
        """Every piece of mutable state, for parity tests (same tuple as the twin)."""
        cdef int64_t k = self.runaway_signals
        if self.run_count >= k:
            run = tuple(self.run_times[(self.run_head + j) % k] for j in range(k))
        else:
            run = tuple(self.run_times[j] for j in range(self.run_count))
        k = self.throttle_orders
        if self.rate_count >= k:
            rate = tuple(self.rate_times[(self.rate_head + j) % k] for j in range(k))
        else:
            rate = tuple(self.rate_times[j] for j in range(self.rate_count))
        dd = tuple((self.dedup[j].strategy_id, self.dedup[j].epoch, self.dedup[j].seq)
                   for j in range(self.n_dedup))
        insts = []
        for j in range(self.n_ids):
            sid = self.ids[j]
            insts.append((sid, self.insts[sid].pos, self.insts[sid].open_buy,
                          self.insts[sid].open_sell, self.insts[sid].ref,
                          self.insts[sid].ref_mono, self.insts[sid].bid, self.insts[sid].ask,
                          self.insts[sid].max_tick_age_ns, self.insts[sid].recent_head,
                          self._recent_tuple(sid), self.insts[sid].own_bid,
                          self.insts[sid].own_ask, self._window_tuple(sid)))
        return (self.state, rate, run, dd, tuple(insts), self.last_gap,
                (self.gate_host_until, self.gate_budget_until, self.gate_pace_ns,
                 self.gate_pace_until, self.gate_next))

    def count_fill(self, now_mono):
        """One fill (or partial fill) reported at CLOCK_MONOTONIC `now_mono` ns: more than
        `runaway_fills` within `runaway_fill_window_ns` (half-open, as the signal runaway guard)
        → state HALTED and True, once, at the trip; False otherwise and always with the guard
        off (runaway_fills 0). Not in check(): the gateway calls it per fill."""
        cdef int64_t now = now_mono
        cdef int64_t k = self.runaway_fills
        cdef bint tripped
        if k == 0:
            return False
        tripped = (self.fill_count >= k
                   and now - self.fill_times[self.fill_head] < self.runaway_fill_window_ns)
        self.fill_times[self.fill_head] = now
        self.fill_head = (self.fill_head + 1) % k
        if self.fill_count < k:
            self.fill_count += 1
        if tripped and self.state != ST_HALTED:
            self.state = ST_HALTED
            return True
        return False

    def set_own_quotes(self, symbol_id, bid, ask):
        """Our best resting BUY and SELL prices on this symbol as the order book of record has
        them (0 = none): what an order may not cross (SELF_TRADE)."""
        cdef Instrument *i = self._inst(symbol_id)
        from pipeline.gateway.risk_py import _price_units
        i.own_bid = _price_units(bid, i.price_scale)
        i.own_ask = _price_units(ask, i.price_scale)

    def own_quotes(self, symbol_id):
        cdef Instrument *i = self._inst(symbol_id)
        return i.own_bid / i.price_scale, i.own_ask / i.price_scale

    def _window_tuple(self, int sid):
        cdef RefSlice *w
        out = []
        for j in range(WINDOW_SLICES):
            w = &self.insts[sid].window[j]
            out.append((w.idx, w.lo, w.hi) if w.lo > 0.0 else None)
        return tuple(out)

    def _recent_tuple(self, int sid):
        cdef RecentOrder *o
        out = []
        for j in range(RECENT_ORDERS):
            o = &self.insts[sid].recent[j]
            out.append((o.mono, o.strategy_id, o.side, o.order_type, o.price_units, o.qty_units))
        return tuple(out)

    def set_venue_gate(self, int64_t host_until, int64_t budget_until, int64_t pace_ns,
                       int64_t pace_until):
        """The venue's rate limits as ratelimit.HostGate last learnt them (CLOCK_MONOTONIC ns):
        no order before host_until (HOST_CLOSED) or budget_until (RATE_BUDGET); until pace_until
        at most one order every pace_ns (RATE_BUDGET). 0 = none."""
        if pace_ns < 0:
            raise ValueError(f"pace_ns must be >= 0, got {pace_ns}")
        self.gate_host_until = host_until
        self.gate_budget_until = budget_until
        self.gate_pace_ns = pace_ns
        self.gate_pace_until = pace_until

    def restore_mark(self, strategy_id, epoch, seq):
        """A strategy's (epoch, seq) from the journal at restart: a signal at or below it is a
        DUPLICATE. Only moves the mark up; False when the duplicate filter is full."""
        cdef int j
        for j in range(self.n_dedup):
            if self.dedup[j].strategy_id == strategy_id:
                if (epoch, seq) > (self.dedup[j].epoch, self.dedup[j].seq):
                    self.dedup[j].epoch = epoch
                    self.dedup[j].seq = seq
                return True
        if self.n_dedup >= MAX_STRATEGIES:
            return False
        self.dedup[self.n_dedup].strategy_id = strategy_id
        self.dedup[self.n_dedup].epoch = epoch
        self.dedup[self.n_dedup].seq = seq
        self.n_dedup += 1
        return True

    cdef void uncommit(self, const CheckedOrder *o) noexcept nogil:
        """Take back what an ACCEPT committed (the order path: the signer cannot encode it)."""
        cdef Instrument *inst = &self.insts[o.symbol]
        if o.side == 1:
            inst.open_buy -= o.qty_units
        else:
            inst.open_sell -= o.qty_units

    # ------------------------------------------------------------------ ENTRY
    def check(self, msg, now_mono):
        """One SIGNAL_DTYPE record (80 bytes) → reason code (0 = ACCEPT). Never raises."""
        cdef CheckedOrder out
        return self.check_buffer(msg, now_mono, &out)

    def probe(self, msg, now_mono):
        """check() without effect: the same path and the same answer, then every state change
        undone (runaway times, duplicate marks, order-rate window, open quantity, HALTED by a
        runaway). The gateway runs it on a dummy signal between rare real ones, so the kernel's
        code and data are in cache when a real signal comes."""
        cdef CheckedOrder out
        return self.probe_buffer(msg, now_mono, &out)

    cdef int probe_buffer(self, object msg, object now_mono, CheckedOrder *out) noexcept:
        cdef int st = self.state, nd = self.n_dedup, r
        cdef int64_t gap = self.last_gap, gnext = self.gate_next
        cdef int64_t qh = self.rate_head, qc = self.rate_count
        cdef int64_t qt = self.rate_times[self.rate_head]
        cdef int64_t rh = self.run_head, rc = self.run_count
        cdef int64_t rt = self.run_times[self.run_head]
        cdef DedupSlot dd[MAX_STRATEGIES]
        cdef Instrument *inst
        memcpy(dd, self.dedup, nd * sizeof(DedupSlot))
        out.inst = NULL
        r = self.check_buffer(msg, now_mono, out)
        if r == R_ACCEPT:
            self.uncommit(out)
            inst = &self.insts[out.symbol]
            inst.recent_head = (inst.recent_head + RECENT_ORDERS - 1) % RECENT_ORDERS
            inst.recent[inst.recent_head] = self.recent_saved
            inst.own_bid, inst.own_ask = self.own_saved_bid, self.own_saved_ask
        self.last_gap = gap
        self.gate_next = gnext
        self.state = st
        self.rate_head, self.rate_count = qh, qc
        self.rate_times[qh] = qt
        self.run_head, self.run_count = rh, rc
        self.run_times[rh] = rt
        memcpy(self.dedup, dd, nd * sizeof(DedupSlot))
        self.n_dedup = nd
        return r

    cdef int check_buffer(self, object msg, object now_mono, CheckedOrder *out) noexcept:
        cdef SignalRecord s
        cdef Py_buffer view
        cdef int64_t now
        self.last_gap = 0                       # as the twin: a refused message reports no gap
        try:
            if PyLong_Check(now_mono):
                now = now_mono
            else:
                now = PyNumber_Index(now_mono)      # ints only (numpy ints too), never floats
        except Exception:
            return R_MALFORMED
        if PyBytes_CheckExact(msg):             # what a ZeroMQ recv() gives: no buffer export
            if PyBytes_GET_SIZE(msg) != SIGNAL_SIZE:
                return R_MALFORMED
            memcpy(&s, PyBytes_AS_STRING(msg), SIGNAL_SIZE)
            return self._check(&s, now, out)
        try:
            PyObject_GetBuffer(msg, &view, PyBUF_SIMPLE)
        except Exception:
            return R_MALFORMED
        if view.len != SIGNAL_SIZE:
            PyBuffer_Release(&view)
            return R_MALFORMED
        memcpy(&s, view.buf, SIGNAL_SIZE)
        PyBuffer_Release(&view)
        return self._check(&s, now, out)

    @cython.cdivision(True)
    cdef int _check(self, const SignalRecord *s, int64_t now, CheckedOrder *out) noexcept nogil:
        cdef int r
        cdef Instrument *inst
        self.last_gap = 0
        if s.version != SIGNAL_VERSION:
            return R_BAD_VERSION
        if now <= 0:                            # CLOCK_MONOTONIC is > 0; keeps differences exact
            return R_BAD_TIMESTAMP
        # 2. runaway guard (an expired signal does not count: a backlog delivered late, e.g. after
        # a gateway stop, is refused as EXPIRED below and never trips the guard), 3. halted
        if (not (s.ttl_ns > 0 and 0 < s.created_mono <= now and now - s.created_mono > s.ttl_ns)
                and self._runaway(now) and self.state != ST_HALTED):    # RUNAWAY once: the trip
            self.state = ST_HALTED
            return R_RUNAWAY
        if self.state == ST_HALTED:
            return R_HALTED
        # 4. fields
        if s.epoch <= 0 or s.seq <= 0 or s.seq >= MAX_SEQ or s.strategy_id >= MAX_STRATEGY_ID:
            return R_BAD_ID
        if s.ttl_ns <= 0 or s.created_mono <= 0 or s.created_mono > now:
            return R_BAD_TIMESTAMP
        if s.symbol >= MAX_SYMBOLS:
            return R_UNKNOWN_SYMBOL
        inst = &self.insts[s.symbol]
        if not inst.configured or inst.venue != s.venue:
            return R_UNKNOWN_SYMBOL
        r = check_fields(s, now, inst, out)
        if r:
            return r
        # 5. TTL (now >= created here, so no overflow)
        if now - s.created_mono > s.ttl_ns:
            return R_EXPIRED
        # 6. duplicates
        r = self._dedup_check(s.strategy_id, s.epoch, s.seq)
        if r:
            return r
        # 7. reference exists; exchange filters; 8. our order limits
        if inst.ref <= 0.0:
            return R_NO_REFERENCE
        r = check_filters(inst, out, s.price, s.qty)
        if r:
            return r
        # 9. market data freshness and the collar
        cdef bint reducing = is_reducing(inst, out.side, out.qty_units)
        if (not reducing or out.order_type == ORDER_MARKET) \
                and now - inst.ref_mono > self.ref_stale_ns:
            return R_STALE_REFERENCE               # a MARKET order: even when reducing
        if not reducing and s.trigger_mono > 0 and now - s.trigger_mono > inst.max_tick_age_ns:
            return R_STALE_TRIGGER
        cdef double px = s.price if out.order_type != ORDER_MARKET else \
            (inst.ask if out.side == 1 else inst.bid)  # MARKET: the protection price (0 = none)
        if px > 0.0:
            r = check_collar(px, inst.ref, self.collar_bps)
            if r:
                return r
            # the time-window collar: risk-increasing orders, against the window's references
            if self.window_collar_bps > 0.0 and not reducing:
                r = window_out(inst, px, now, self.window_slice_ns, self.window_collar_bps)
                if r:
                    return r
        # 10. reduce-only state
        if self.state == ST_REDUCING and not reducing:
            return R_REDUCE_ONLY
        # 11. the same order again (duplicate-order filter), worst-case position, gross exposure
        if self.duplicate_window_ns and self._is_duplicate(inst, out, now):
            return R_DUPLICATE_ORDER
        if self.self_trade and crosses_own(inst, out):
            return R_SELF_TRADE
        r = self._exposure(inst, out.side, out.qty_units)
        if r:
            return r
        # 12. the venue's rate limits (set_venue_gate): closed, used up, pacing
        if now < self.gate_host_until:
            return R_HOST_CLOSED
        if now < self.gate_budget_until:
            return R_RATE_BUDGET
        if self.gate_pace_ns and now < self.gate_pace_until and now < self.gate_next:
            return R_RATE_BUDGET
        # 13. our order-rate limit (sliding window; the accept below is recorded in it)
        if not self._rate_admit(now):
            return R_RATE_LIMIT
        # 14. accept: the order is open now, and the next one paced
        if self.gate_pace_ns and now < self.gate_pace_until:
            if now > INT64_MAX - self.gate_pace_ns:
                self.gate_next = INT64_MAX
            else:
                self.gate_next = now + self.gate_pace_ns
        if out.side == 1:
            inst.open_buy += out.qty_units
        else:
            inst.open_sell += out.qty_units
        cdef RecentOrder *rec = &inst.recent[inst.recent_head]
        self.recent_saved = rec[0]
        rec.mono = now
        rec.price_units = out.price_units
        rec.qty_units = out.qty_units
        rec.strategy_id = s.strategy_id
        rec.side = out.side
        rec.order_type = out.order_type
        inst.recent_head = (inst.recent_head + 1) % RECENT_ORDERS
        self.own_saved_bid, self.own_saved_ask = inst.own_bid, inst.own_ask
        if out.order_type == ORDER_LIMIT_MAKER or (out.order_type == ORDER_LIMIT
                                                   and out.tif == TIF_GTC):
            if out.side == 1:
                if out.price_units > inst.own_bid:
                    inst.own_bid = out.price_units
            elif inst.own_ask == 0 or out.price_units < inst.own_ask:
                inst.own_ask = out.price_units
        return R_ACCEPT

    cdef bint _is_duplicate(self, const Instrument *inst, const CheckedOrder *o,
                            int64_t now) noexcept nogil:
        """An accepted order of the same strategy, symbol, side, type, price and quantity less
        than duplicate_window_ns ago (half-open: exactly a window later is a new order)."""
        cdef int j
        cdef const RecentOrder *r
        for j in range(RECENT_ORDERS):
            r = &inst.recent[j]
            if r.mono and now - r.mono < self.duplicate_window_ns \
                    and r.strategy_id == o.strategy_id and r.side == o.side \
                    and r.order_type == o.order_type and r.price_units == o.price_units \
                    and r.qty_units == o.qty_units:
                return True
        return False

    cdef int _exposure(self, const Instrument *inst, int side, int64_t qu) noexcept nogil:
        cdef int64_t pos = inst.pos, long_w, short_w, w
        cdef double gross = 0.0
        cdef const Instrument *o
        cdef int j
        if side == 1:
            long_w = pos + inst.open_buy + qu
            short_w = pos - inst.open_sell
            if long_w > inst.max_position_units:
                return R_POSITION_LIMIT
        else:
            long_w = pos + inst.open_buy
            short_w = pos - inst.open_sell - qu
            if -short_w > inst.max_position_units:
                return R_POSITION_LIMIT
        for j in range(self.n_ids):
            o = &self.insts[self.ids[j]]
            if o == inst:
                w = i64max(i64abs(long_w), i64abs(short_w))
            else:
                w = i64max(i64abs(o.pos + o.open_buy), i64abs(o.pos - o.open_sell))
            gross += <double>w / o.qty_scale * o.ref
        if gross > self.max_gross_notional:
            return R_GROSS_EXPOSURE
        return R_ACCEPT

    cdef bint _runaway(self, int64_t now) noexcept nogil:
        cdef int64_t k = self.runaway_signals
        cdef bint tripped = (self.run_count >= k
                             and now - self.run_times[self.run_head] < self.runaway_window_ns)
        self.run_times[self.run_head] = now
        self.run_head = (self.run_head + 1) % k
        if self.run_count < k:
            self.run_count += 1
        return tripped

    cdef int _dedup_check(self, uint32_t strategy_id, int64_t epoch, int64_t seq) noexcept nogil:
        cdef int j
        for j in range(self.n_dedup):
            if self.dedup[j].strategy_id == strategy_id:
                if epoch < self.dedup[j].epoch or (epoch == self.dedup[j].epoch
                                                   and seq <= self.dedup[j].seq):
                    return R_DUPLICATE
                if epoch == self.dedup[j].epoch and seq > self.dedup[j].seq + 1:
                    self.last_gap = seq - self.dedup[j].seq - 1
                self.dedup[j].epoch = epoch
                self.dedup[j].seq = seq
                return R_ACCEPT
        if self.n_dedup >= MAX_STRATEGIES:
            return R_BAD_ID
        if seq > 1:
            self.last_gap = seq - 1
        self.dedup[self.n_dedup].strategy_id = strategy_id
        self.dedup[self.n_dedup].epoch = epoch
        self.dedup[self.n_dedup].seq = seq
        self.n_dedup += 1
        return R_ACCEPT

    cdef bint _rate_admit(self, int64_t now) noexcept nogil:
        """At most throttle_orders accepted orders in any half-open window of throttle_window_ns:
        admitted when fewer are recorded, or the oldest of the last throttle_orders is at least a
        window old; an admitted order's time is recorded (the caller accepts it)."""
        cdef int64_t k = self.throttle_orders
        if self.rate_count >= k and now - self.rate_times[self.rate_head] < self.throttle_window_ns:
            return False
        self.rate_times[self.rate_head] = now
        self.rate_head = (self.rate_head + 1) % k
        if self.rate_count < k:
            self.rate_count += 1
        return True


cdef int64_t _qty_units(object x, double scale, bint signed) except? -1:
    from pipeline.gateway.risk_py import _qty_units as py_qty_units
    return py_qty_units(x, scale, signed)
