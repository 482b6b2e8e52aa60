"""Pure-Python twin of ext/risk.pyx: the pre-trade risk check, readable, with the same signature
and the same decisions bit for bit (tests/parity feeds both random signals, limits and states).

The entry point is `RiskEngine.check(msg, now_mono) -> int` (a `Reason`; 0 = ACCEPT). `msg` is one
80-byte SIGNAL_DTYPE record as received from the strategy; `now_mono` is CLOCK_MONOTONIC ns
(time.perf_counter_ns()). Nothing raises out of check(): every malformed input is a reason code.

Checks, in this order (the first failing one is the answer):
  1. shape: an 80-byte buffer (MALFORMED), version == SIGNAL_VERSION (BAD_VERSION), a clock
     now_mono > 0 (BAD_TIMESTAMP; so every difference of stamps below fits in int64)
  2. runaway guard: more than `runaway_signals` well-formed signals within `runaway_window_ns`
     (half-open window: a signal exactly runaway_window_ns after the K-th previous one does not
     count it) → state becomes HALTED, RUNAWAY (reported once, at the trip: a signal that
     finds the state already HALTED is HALTED; its time still counts). An expired signal (the
     TTL test of step 5) is not counted: a backlog delivered late — the strategy kept sending
     while the gateway was stopped — is refused as EXPIRED and never halts trading
  3. state HALTED → HALTED
  4. fields: ids (BAD_ID), created/ttl (BAD_TIMESTAMP), symbol configured for that venue
     (UNKNOWN_SYMBOL), side, type, timeInForce, quantity, price (NaN/±inf/<=0/absurd → BAD_*)
  5. TTL: now_mono - created_mono > ttl_ns → EXPIRED (exactly ttl_ns old is still valid)
  6. duplicates: per strategy a high-water mark (epoch, seq); an older epoch or seq <= mark is
     DUPLICATE. The mark moves for every signal that gets here (ZeroMQ PUSH/PULL keeps order).
     `last_gap` reports the signals missing before this one (seq more than one above the mark in
     the same epoch; seq - 1 for a strategy's first signal); restore_mark() sets a mark from the
     journal at restart. The kernel is the one judge of TTL and duplicates.
  7. a reference price must exist (NO_REFERENCE); exchange filters on integer units: QTY_STEP,
     QTY_RANGE, PRICE_TICK, PRICE_RANGE, MIN_NOTIONAL, MAX_NOTIONAL (MARKET: reference price,
     when the filter applies to market orders)
  8. our order limits: MAX_ORDER_QTY, MAX_ORDER_NOTIONAL (limit price, or reference for MARKET)
  9. market data: a reference older than ref_stale_ns (age > ref_stale_ns) rejects risk-increasing
     orders (STALE_REFERENCE); so does a trigger tick older than the symbol's max_tick_age_ns
     (`trigger_mono > 0 and now - trigger_mono > max_tick_age_ns` → STALE_TRIGGER: the strategy
     decided on old data, e.g. after a stall or a lapped ring; trigger_mono 0 = no trigger tick,
     judged by the reference's age alone). Price collar, inclusive boundary, computed in binary64 exactly as
     `abs(price - ref) > ref * collar_bps / 10000.0` → PRICE_COLLAR (LIMIT and LIMIT_MAKER).
     MARKET orders: protection price. A stale reference refuses a MARKET order even when it
     reduces (STALE_REFERENCE: nothing to judge its price by), and the best price it would take
     first (the best ask for a BUY, bid for a SELL, as apply_ticks saw them; unknown = 0: not
     judged) beyond the collar from the reference → PRICE_COLLAR (a thin or broken book).
     Time-window collar (window_collar_bps > 0): a risk-increasing order whose price (LIMIT) or
     protection price (MARKET) is more than window_collar_bps from the lowest or the highest
     reference of the window → PRICE_WINDOW (the price walked too far in a short time: walking
     it 1.9 % per order, each order inside a 2 % collar of a reference that follows, is caught
     when the walk passes window_collar_bps). Same inclusive rule as the collar, against each of
     the two. The window: every reference set (set_reference, apply_ticks) is folded into slice
     mono // window_slice_ns (window_slice_ns = window_collar_ns // 16); the slices newer than
     now // window_slice_ns - 16 and the current reference count — a reference counts for at
     least 15/16 of window_collar_ns and never more than it. GAP/RESYNC/STALE do not clear it
     (what the market did stays what it did). Reducing orders are judged by the collar alone
     (a position can be closed in a fast market).
 10. state REDUCING: only reducing orders (REDUCE_ONLY)
 11. duplicate orders: with duplicate_window_ns > 0, an order of the same strategy, symbol, side,
     type, price and quantity as one accepted less than duplicate_window_ns ago (half-open) →
     DUPLICATE_ORDER (reducing or not: a double send is a bug either way). Each instrument keeps
     its last RECENT_ORDERS (8) accepted orders, so an identical order behind 8 newer ones on
     the same symbol within the window is not seen.
     Worst case with open orders: BUY → pos + open_buy + qty <= max_position,
     SELL → -(pos - open_sell - qty) <= max_position (POSITION_LIMIT); gross worst-case notional
     Σ_i max(|pos+open_buy|, |pos-open_sell|) / 10**qty_decimals * ref_i over all instruments in
     id order <= max_gross_notional (GROSS_EXPOSURE)
 12. the venue's rate limits as ratelimit.HostGate last set them (set_venue_gate, CLOCK_MONOTONIC):
     now < host_until → HOST_CLOSED (after a 429/418); now < budget_until → RATE_BUDGET (the
     window's budget is used up); pacing: while now < pace_until, an order sooner than pace_ns
     after the last accepted one → RATE_BUDGET. One mechanism, one state, judged here only.
 13. our order-rate limit, a sliding window: never more than `throttle_orders` accepted orders in
     any half-open window of `throttle_window_ns` (the times of the last throttle_orders accepts
     are kept; a new order is admitted when the oldest of them is at least a window old) →
     RATE_LIMIT. Refused, never queued; only an order that passed every other check is recorded
 14. ACCEPT: the order's quantity is added to the open orders of its side (the gateway releases it
     with release_open()/apply_fill() when the venue answers); while pacing, the next order waits
     pace_ns.

An order is *reducing* when it is opposite to the position and, together with the open orders on
its side, cannot take the position through zero: BUY: pos < 0 and open_buy + qty <= -pos.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from pipeline.gateway.instruments import MAX_SYMBOL_ID, MAX_UNITS, InstrumentRules
from pipeline.gateway.reasons import Reason, TradingState
from pipeline.records import SIGNAL_STRUCT, SIGNAL_VERSION, TICK_DTYPE, Kind, OrderType, TimeInForce

MAX_STRATEGIES = 16          # strategies the duplicate filter tracks at once
MAX_RUNAWAY_SIGNALS = 4096
RECENT_ORDERS = 8            # per instrument: accepted orders the duplicate-order filter keeps
WINDOW_SLICES = 16           # per instrument: the time-window collar's slices of references
_EMPTY = (0, 0, 0, 0, 0, 0)
MAX_SEQ = 1 << 40            # keeps newClientOrderId within Binance's 36 characters
MAX_STRATEGY_ID = 1 << 16
MAX_UNITS_F = float(MAX_UNITS)
POW10 = tuple(float(10**i) for i in range(19))   # exact doubles, as in ext/risk.pyx

LIMIT, MARKET, LIMIT_MAKER = int(OrderType.LIMIT), int(OrderType.MARKET), int(OrderType.LIMIT_MAKER)
GTC = int(TimeInForce.GTC)
R = Reason


def to_units(x: float, scale: float) -> int:
    """round(x * scale) if x*scale is within the absurd bound and lies on an integer (up to binary64
    representation error); -1 if absurd or NaN, -2 if finer than the precision. x > 0 assumed."""
    y = x * scale
    if not y <= MAX_UNITS_F:
        return -1
    n = math.floor(y + 0.5)
    if abs(y - n) > 1e-9 + y * 1e-15:
        return -2
    return n


def round_units(x: float, scale: float) -> int:
    """Nearest integer units (positions and fills: no precision check). x finite, |x| bounded."""
    return math.floor(x * scale + 0.5)


class _Inst:
    __slots__ = ("rules", "price_scale", "qty_scale", "pos", "open_buy", "open_sell", "ref",
                 "ref_mono", "bid", "ask", "max_tick_age_ns", "recent", "recent_head",
                 "own_bid", "own_ask", "window")

    def __init__(self, rules: InstrumentRules, max_tick_age_ns: int):
        self.rules = rules
        self.price_scale = POW10[rules.price_decimals]
        self.qty_scale = POW10[rules.qty_decimals]
        self.pos = self.open_buy = self.open_sell = 0
        self.ref = 0.0
        self.ref_mono = 0                 # 0 = invalidated (GAP, RESYNC, STALE)
        self.bid = self.ask = 0.0         # best bid/ask seen by apply_ticks (0 = none)
        self.max_tick_age_ns = max_tick_age_ns
        # ring of the last accepted orders: (mono, strategy, side, type, price_units, qty_units)
        self.recent = [_EMPTY] * RECENT_ORDERS
        self.recent_head = 0
        self.own_bid = self.own_ask = 0   # our best resting BUY / SELL, price units (0 = none)
        # the time-window collar: per slot [slice index, lowest, highest reference] or None
        self.window: list = [None] * WINDOW_SLICES


class RiskEngine:
    def __init__(self, *, max_gross_notional: float, collar_bps: float, ref_stale_ns: int,
                 throttle_orders: int, throttle_window_ns: int, runaway_signals: int,
                 runaway_window_ns: int, max_tick_age_ns: int = 1_000_000_000,
                 duplicate_window_ns: int = 0, self_trade: bool = False,
                 runaway_fills: int = 0, runaway_fill_window_ns: int = 1_000_000_000,
                 window_collar_bps: float = 0.0, window_collar_ns: int = 1_000_000_000,
                 state: int = TradingState.ACTIVE):
        _validate_limits(max_gross_notional, collar_bps, ref_stale_ns, throttle_orders,
                         throttle_window_ns, runaway_signals, runaway_window_ns, state,
                         max_tick_age_ns, duplicate_window_ns)
        _validate_fill_guard(runaway_fills, runaway_fill_window_ns)
        _validate_window_collar(window_collar_bps, window_collar_ns)
        self.window_collar_bps = float(window_collar_bps)        # 0 = no time-window collar
        self.window_collar_ns = int(window_collar_ns)
        self.window_slice_ns = self.window_collar_ns // WINDOW_SLICES
        self.duplicate_window_ns = int(duplicate_window_ns)
        self.runaway_fills = int(runaway_fills)                 # 0 = no fill-rate guard
        self.runaway_fill_window_ns = int(runaway_fill_window_ns)
        self._fill_times = [0] * max(1, self.runaway_fills)     # the last fill times (ring)
        self._fill_head = 0
        self._fill_count = 0
        self.self_trade = bool(self_trade)
        self.max_gross_notional = float(max_gross_notional)
        self.collar_bps = float(collar_bps)
        self.ref_stale_ns = int(ref_stale_ns)
        self.throttle_orders = int(throttle_orders)
        self.throttle_window_ns = int(throttle_window_ns)
        self.runaway_signals = int(runaway_signals)
        self.runaway_window_ns = int(runaway_window_ns)
        self.max_tick_age_ns = int(max_tick_age_ns)
        self._state = int(state)
        self._insts: dict[int, _Inst] = {}
        self._ids: list[int] = []                     # configured ids, ascending
        self._rate_times = [0] * self.throttle_orders  # the last accepted order times (ring)
        self._rate_head = 0
        self._rate_count = 0
        self._run_times = [0] * self.runaway_signals
        self._run_head = 0
        self._run_count = 0
        self._dedup: list[list[int]] = []             # [strategy_id, epoch, seq]
        self.last_gap = 0                             # signals missing before the last checked
        self.gate_host_until = self.gate_budget_until = 0     # the venue's limits (HostGate)
        self.gate_pace_ns = self.gate_pace_until = self.gate_next = 0

    # ------------------------------------------------------------------ state (gateway side)
    @property
    def state(self) -> int:
        return self._state

    def set_state(self, state: int) -> None:
        if int(state) not in (0, 1, 2):
            raise ValueError(f"trading state must be 0, 1 or 2, got {state!r}")
        self._state = int(state)

    def set_instrument(self, rules: InstrumentRules) -> None:
        if not isinstance(rules, InstrumentRules):
            raise TypeError("set_instrument takes an InstrumentRules")
        self._insts[rules.symbol_id] = _Inst(rules, self.max_tick_age_ns)
        self._ids = sorted(self._insts)

    def set_max_tick_age(self, symbol_id: int, max_tick_age_ns: int) -> None:
        """This symbol's own limit on the age of a signal's trigger tick (set_instrument gives it
        the engine's max_tick_age_ns); ValueError outside 1..10**12 ns."""
        inst = self._inst(symbol_id)
        inst.max_tick_age_ns = _check_tick_age(max_tick_age_ns)

    def max_tick_age(self, symbol_id: int) -> int:
        return self._inst(symbol_id).max_tick_age_ns

    def _inst(self, symbol_id: int) -> _Inst:
        inst = self._insts.get(symbol_id) if isinstance(symbol_id, int) else None
        if inst is None:
            raise ValueError(f"symbol id {symbol_id!r} is not configured")
        return inst

    def set_reference(self, symbol_id: int, price: float, mono_ns: int) -> bool:
        """Live reference price (e.g. mid) and its CLOCK_MONOTONIC stamp. False (ignored) for an
        unknown symbol, a price that is not finite and > 0, or a negative stamp."""
        inst = self._insts.get(symbol_id)
        if inst is None or not (price > 0.0 and price < math.inf) or mono_ns < 0:
            return False
        inst.ref = float(price)
        inst.ref_mono = int(mono_ns)
        if self.window_collar_bps > 0.0:
            self._note_ref(inst, inst.ref, inst.ref_mono)
        return True

    def set_position(self, symbol_id: int, qty: float) -> None:
        inst = self._inst(symbol_id)
        inst.pos = _qty_units(qty, inst.qty_scale, signed=True)

    def set_open_orders(self, symbol_id: int, buy_qty: float, sell_qty: float) -> None:
        inst = self._inst(symbol_id)
        b = _qty_units(buy_qty, inst.qty_scale)
        s = _qty_units(sell_qty, inst.qty_scale)
        inst.open_buy, inst.open_sell = b, s

    def release_open(self, symbol_id: int, side: int, qty: float) -> None:
        """An order ended unfilled (cancelled, expired, rejected by the venue) for `qty`."""
        inst = self._inst(symbol_id)
        u = _qty_units(qty, inst.qty_scale)
        if side == 1:
            inst.open_buy = max(0, inst.open_buy - u)
        elif side == -1:
            inst.open_sell = max(0, inst.open_sell - u)
        else:
            raise ValueError(f"side must be 1 or -1, got {side!r}")

    def apply_fill(self, symbol_id: int, side: int, qty: float) -> None:
        """`qty` of an open order was filled: it leaves the open orders and moves the position."""
        inst = self._inst(symbol_id)
        u = _qty_units(qty, inst.qty_scale)
        if side == 1:
            inst.open_buy = max(0, inst.open_buy - u)
            inst.pos += u
        elif side == -1:
            inst.open_sell = max(0, inst.open_sell - u)
            inst.pos -= u
        else:
            raise ValueError(f"side must be 1 or -1, got {side!r}")

    def count_fill(self, now_mono: int) -> bool:
        """One fill (or partial fill) reported at CLOCK_MONOTONIC `now_mono` ns: more than
        `runaway_fills` within `runaway_fill_window_ns` (half-open, as the signal runaway guard)
        → state HALTED and True, once, at the trip; False otherwise and always with the guard
        off (runaway_fills 0). Not in check(): the gateway calls it per fill."""
        k = self.runaway_fills
        if k == 0:
            return False
        now = int(now_mono)
        tripped = self._fill_count >= k and now - self._fill_times[self._fill_head] < \
            self.runaway_fill_window_ns
        self._fill_times[self._fill_head] = now
        self._fill_head = (self._fill_head + 1) % k
        if self._fill_count < k:
            self._fill_count += 1
        if tripped and self._state != TradingState.HALTED:
            self._state = int(TradingState.HALTED)
            return True
        return False

    def set_own_quotes(self, symbol_id: int, bid: float, ask: float) -> None:
        """Our best resting BUY and SELL prices on this symbol as the order book of record has
        them (0 = none): what an order may not cross (SELF_TRADE)."""
        inst = self._inst(symbol_id)
        inst.own_bid = _price_units(bid, inst.price_scale)
        inst.own_ask = _price_units(ask, inst.price_scale)

    def own_quotes(self, symbol_id: int) -> tuple[float, float]:
        inst = self._inst(symbol_id)
        return inst.own_bid / inst.price_scale, inst.own_ask / inst.price_scale

    def position(self, symbol_id: int) -> float:
        inst = self._inst(symbol_id)
        return inst.pos / inst.qty_scale

    def open_orders(self, symbol_id: int) -> tuple[float, float]:
        inst = self._inst(symbol_id)
        return inst.open_buy / inst.qty_scale, inst.open_sell / inst.qty_scale

    def apply_ticks(self, ticks) -> int:
        """Reference prices from a batch of tick records (TICK_DTYPE array or its bytes): the mid
        of the best bid/ask once both are known, else the last trade; GAP (symbol 0: every
        instrument), RESYNC_START, STALE and BOOK_CLEAR invalidate the reference's stamp (stale
        until fresh data). Returns the number of records that applied."""
        if isinstance(ticks, np.ndarray) and ticks.dtype == TICK_DTYPE:
            arr = ticks
        else:
            mv = memoryview(ticks)
            if mv.nbytes % TICK_DTYPE.itemsize:
                raise ValueError("expected whole 64-byte tick records")
            arr = np.frombuffer(mv.cast("B"), dtype=TICK_DTYPE)
        count = 0
        for kind, symbol, venue, price, mono in zip(arr["kind"].tolist(), arr["symbol"].tolist(),
                                                    arr["venue"].tolist(), arr["price"].tolist(),
                                                    arr["mono_ts"].tolist()):
            if kind == Kind.GAP and symbol == 0:
                for o in self._insts.values():
                    o.ref_mono, o.bid, o.ask = 0, 0.0, 0.0
                count += 1
                continue
            inst = self._insts.get(symbol)
            if inst is None or inst.rules.venue != venue:
                continue
            if kind == Kind.BID or kind == Kind.ASK:
                if not (0.0 < price < math.inf) or mono < 0:
                    continue
                if kind == Kind.BID:
                    inst.bid = price
                else:
                    inst.ask = price
                if inst.bid > 0.0 and inst.ask > 0.0:
                    inst.ref = (inst.bid + inst.ask) / 2.0
                    inst.ref_mono = mono
                    if self.window_collar_bps > 0.0:
                        self._note_ref(inst, inst.ref, mono)
                count += 1
            elif kind == Kind.TRADE or kind == Kind.AGG_TRADE:
                if not (0.0 < price < math.inf) or mono < 0:
                    continue
                if not (inst.bid > 0.0 and inst.ask > 0.0):
                    inst.ref, inst.ref_mono = price, mono
                    if self.window_collar_bps > 0.0:
                        self._note_ref(inst, price, mono)
                count += 1
            elif kind in (Kind.GAP, Kind.RESYNC_START, Kind.STALE, Kind.BOOK_CLEAR):
                inst.ref_mono, inst.bid, inst.ask = 0, 0.0, 0.0
                count += 1
        return count

    def snapshot(self) -> tuple:
        """Every piece of mutable state, for parity tests."""
        run = tuple(self._run_times[(self._run_head + i) % self.runaway_signals]
                    for i in range(self.runaway_signals)) if self._run_count >= self.runaway_signals \
            else tuple(self._run_times[:self._run_count])
        k = self.throttle_orders
        rate = tuple(self._rate_times[(self._rate_head + i) % k] for i in range(k)) \
            if self._rate_count >= k else tuple(self._rate_times[:self._rate_count])
        return (self._state, rate, run,
                tuple(tuple(d) for d in self._dedup),
                tuple((i, self._insts[i].pos, self._insts[i].open_buy, self._insts[i].open_sell,
                       self._insts[i].ref, self._insts[i].ref_mono, self._insts[i].bid,
                       self._insts[i].ask, self._insts[i].max_tick_age_ns,
                       self._insts[i].recent_head, tuple(self._insts[i].recent),
                       self._insts[i].own_bid, self._insts[i].own_ask,
                       tuple(None if w is None else tuple(w) for w in self._insts[i].window))
                      for i in self._ids),
                self.last_gap,
                (self.gate_host_until, self.gate_budget_until, self.gate_pace_ns,
                 self.gate_pace_until, self.gate_next))

    def set_venue_gate(self, host_until: int, budget_until: int, pace_ns: int,
                       pace_until: int) -> None:
        """The venue's rate limits (see check(), step 12); 0 = none."""
        vals = [operator.index(v) for v in (host_until, budget_until, pace_ns, pace_until)]
        if any(not -(1 << 63) <= v < (1 << 63) for v in vals):
            raise OverflowError("gate times out of int64 range")
        if vals[2] < 0:
            raise ValueError(f"pace_ns must be >= 0, got {pace_ns}")
        (self.gate_host_until, self.gate_budget_until, self.gate_pace_ns,
         self.gate_pace_until) = vals

    def restore_mark(self, strategy_id: int, epoch: int, seq: int) -> bool:
        """A strategy's (epoch, seq) from the journal at restart (only moves the mark up)."""
        for d in self._dedup:
            if d[0] == strategy_id:
                if (epoch, seq) > (d[1], d[2]):
                    d[1], d[2] = epoch, seq
                return True
        if len(self._dedup) >= MAX_STRATEGIES:
            return False
        self._dedup.append([strategy_id, epoch, seq])
        return True

    def probe(self, msg, now_mono: int) -> int:
        """check() without effect (the kernel's probe): same answer, every state change undone."""
        saved = (self._state, list(self._rate_times), self._rate_head, self._rate_count,
                 list(self._run_times),
                 self._run_head, self._run_count, [list(d) for d in self._dedup],
                 {i: (o.open_buy, o.open_sell, list(o.recent), o.recent_head, o.own_bid, o.own_ask)
                  for i, o in self._insts.items()}, self.last_gap,
                 self.gate_next)
        try:
            return self.check(msg, now_mono)
        finally:
            (self._state, self._rate_times, self._rate_head, self._rate_count, self._run_times,
             self._run_head,
             self._run_count, self._dedup, opens, self.last_gap, self.gate_next) = saved
            for i, (b, s, rc, rh, ob_, oa) in opens.items():
                o = self._insts[i]
                o.open_buy, o.open_sell, o.recent, o.recent_head = b, s, rc, rh
                o.own_bid, o.own_ask = ob_, oa

    # ------------------------------------------------------------------ the entry point
    def check(self, msg, now_mono: int) -> int:
        self.last_gap = 0
        try:
            (epoch, seq, _tseq, trigger, created, ttl, qty, price, strategy_id, symbol, venue,
             side, otype, tif, version, _action, _back) = SIGNAL_STRUCT.unpack(msg)
            now = operator.index(now_mono)
        except Exception:            # anything that is not an 80-byte buffer and an int clock
            return R.MALFORMED
        if not -(1 << 63) <= now < (1 << 63):
            return R.MALFORMED
        if version != SIGNAL_VERSION:
            return R.BAD_VERSION
        if now <= 0:                       # CLOCK_MONOTONIC is > 0; keeps differences in int64
            return R.BAD_TIMESTAMP
        # 2. runaway guard (an expired signal does not count: see the module docstring)
        expired = ttl > 0 and 0 < created <= now and now - created > ttl
        if not expired and self._runaway(now) and self._state != TradingState.HALTED:
            self._state = TradingState.HALTED
            return R.RUNAWAY
        # 3. halted
        if self._state == TradingState.HALTED:
            return R.HALTED
        # 4. fields
        if epoch <= 0 or seq <= 0 or seq >= MAX_SEQ or strategy_id >= MAX_STRATEGY_ID:
            return R.BAD_ID
        if ttl <= 0 or created <= 0 or created > now:
            return R.BAD_TIMESTAMP
        inst = self._insts.get(symbol) if symbol <= MAX_SYMBOL_ID else None
        if inst is None or inst.rules.venue != venue:
            return R.UNKNOWN_SYMBOL
        rules = inst.rules
        if side != 1 and side != -1:
            return R.BAD_SIDE
        if otype != LIMIT and otype != MARKET and otype != LIMIT_MAKER:
            return R.BAD_ORDER_TYPE
        if otype == LIMIT:
            if tif < 1 or tif > 3:
                return R.BAD_TIF
        elif tif != 0:
            return R.BAD_TIF
        if not (qty > 0.0):
            return R.BAD_QTY
        qu = to_units(qty, inst.qty_scale)
        if qu == -1 or qu == 0:
            return R.BAD_QTY
        if qu == -2:
            return R.QTY_STEP
        is_market = otype == MARKET
        pu = 0
        if is_market:
            if not math.isnan(price):
                return R.BAD_PRICE
        else:
            if not (price > 0.0):
                return R.BAD_PRICE
            pu = to_units(price, inst.price_scale)
            if pu == -1 or pu == 0:
                return R.BAD_PRICE
            if pu == -2:
                return R.PRICE_TICK
        # 5. TTL
        if now - created > ttl:
            return R.EXPIRED
        # 6. duplicates
        r = self._dedup_check(strategy_id, epoch, seq)
        if r:
            return r
        # 7. reference exists; exchange filters
        ref = inst.ref
        if ref <= 0.0:
            return R.NO_REFERENCE
        if qu % rules.step_units != 0:
            return R.QTY_STEP
        if qu < rules.min_qty_units or (rules.max_qty_units and qu > rules.max_qty_units):
            return R.QTY_RANGE
        apply_min = apply_max = True
        if is_market:
            apply_min = rules.notional_applies_to_market
            apply_max = rules.max_notional_applies_to_market
            npu = to_units(ref, inst.price_scale)
            if npu == -1:                      # absurd reference: nothing sensible to price with
                return R.NO_REFERENCE
            if npu == -2:                      # reference off the price grid: round it
                npu = round_units(ref, inst.price_scale)
        else:
            if pu % rules.tick_units != 0:
                return R.PRICE_TICK
            if pu < rules.min_price_units or (rules.max_price_units and pu > rules.max_price_units):
                return R.PRICE_RANGE
            npu = pu
        # pu * qu >= M  <=>  pu >= ceil(M / qu);  pu * qu <= X  <=>  pu <= X // qu (exact)
        if apply_min and rules.min_notional_units and \
                npu < (rules.min_notional_units + qu - 1) // qu:
            return R.MIN_NOTIONAL
        if apply_max and rules.max_notional_units and npu > rules.max_notional_units // qu:
            return R.MAX_NOTIONAL
        # 8. our order limits
        if qu > rules.max_order_qty_units:
            return R.MAX_ORDER_QTY
        notional = (ref if is_market else price) * qty
        if notional > rules.max_order_notional:
            return R.MAX_ORDER_NOTIONAL
        # 9. market data freshness and the collar
        pos, ob, os_ = inst.pos, inst.open_buy, inst.open_sell
        if side == 1:
            reducing = pos < 0 and ob + qu <= -pos
        else:
            reducing = pos > 0 and os_ + qu <= pos
        if (not reducing or is_market) and now - inst.ref_mono > self.ref_stale_ns:
            return R.STALE_REFERENCE               # a MARKET order: even when reducing
        if not reducing and trigger > 0 and now - trigger > inst.max_tick_age_ns:
            return R.STALE_TRIGGER
        px = (inst.ask if side == 1 else inst.bid) if is_market else price   # MARKET: the
        if px > 0.0:                                                        # protection price
            if abs(px - ref) > ref * self.collar_bps / 10000.0:
                return R.PRICE_COLLAR
            # the time-window collar: risk-increasing orders, against the window's references
            if self.window_collar_bps > 0.0 and not reducing and self._window_out(inst, px, now):
                return R.PRICE_WINDOW
        # 10. reduce-only state
        if self._state == TradingState.REDUCING and not reducing:
            return R.REDUCE_ONLY
        # 11. the same order again (duplicate-order filter), worst-case position, gross exposure
        if self.duplicate_window_ns and self._is_duplicate(inst, strategy_id, side, otype, pu,
                                                           qu, now):
            return R.DUPLICATE_ORDER
        if self.self_trade:
            if side == 1:
                if inst.own_ask and (is_market or pu >= inst.own_ask):
                    return R.SELF_TRADE
            elif inst.own_bid and (is_market or pu <= inst.own_bid):
                return R.SELF_TRADE
        if side == 1:
            long_w, short_w = pos + ob + qu, pos - os_
            if long_w > rules.max_position_units:
                return R.POSITION_LIMIT
        else:
            long_w, short_w = pos + ob, pos - os_ - qu
            if -short_w > rules.max_position_units:
                return R.POSITION_LIMIT
        gross = 0.0
        for i in self._ids:
            o = self._insts[i]
            if o is inst:
                w = max(abs(long_w), abs(short_w))
            else:
                w = max(abs(o.pos + o.open_buy), abs(o.pos - o.open_sell))
            gross += w / o.qty_scale * o.ref
        if gross > self.max_gross_notional:
            return R.GROSS_EXPOSURE
        # 12. the venue's rate limits (set_venue_gate): closed, used up, pacing
        if now < self.gate_host_until:
            return R.HOST_CLOSED
        if now < self.gate_budget_until:
            return R.RATE_BUDGET
        if self.gate_pace_ns and now < self.gate_pace_until and now < self.gate_next:
            return R.RATE_BUDGET
        # 13. our order-rate limit (sliding window; the accept below is recorded in it)
        if not self._rate_admit(now):
            return R.RATE_LIMIT
        # 14. accept: the order is open now, and the next one paced
        if self.gate_pace_ns and now < self.gate_pace_until:
            self.gate_next = min(now + self.gate_pace_ns, (1 << 63) - 1)     # int64, as the kernel
        if side == 1:
            inst.open_buy = ob + qu
        else:
            inst.open_sell = os_ + qu
        inst.recent[inst.recent_head] = (now, strategy_id, side, otype, pu, qu)
        inst.recent_head = (inst.recent_head + 1) % RECENT_ORDERS
        if otype == LIMIT_MAKER or (otype == LIMIT and tif == GTC):     # it may rest
            if side == 1:
                inst.own_bid = max(inst.own_bid, pu)
            elif inst.own_ask == 0 or pu < inst.own_ask:
                inst.own_ask = pu
        return R.ACCEPT

    # ------------------------------------------------------------------ helpers
    def _note_ref(self, inst: _Inst, ref: float, mono: int) -> None:
        """Fold a reference into its slice (mono // window_slice_ns) of the instrument's window:
        a slot holding an older slice starts over; one stamped older than its slot's slice folds
        into it (it counts a little longer: stricter, never looser)."""
        idx = mono // self.window_slice_ns
        w = inst.window[idx % WINDOW_SLICES]
        if w is None or idx > w[0]:
            inst.window[idx % WINDOW_SLICES] = [idx, ref, ref]
            return
        if ref < w[1]:
            w[1] = ref
        if ref > w[2]:
            w[2] = ref

    def _window_out(self, inst: _Inst, px: float, now: int) -> bool:
        """px more than window_collar_bps from the window's lowest or highest reference (the
        current one and every slice newer than now // window_slice_ns - WINDOW_SLICES)."""
        lo = hi = inst.ref
        oldest = now // self.window_slice_ns - WINDOW_SLICES
        for w in inst.window:
            if w is not None and w[0] > oldest:
                if w[1] < lo:
                    lo = w[1]
                if w[2] > hi:
                    hi = w[2]
        bps = self.window_collar_bps
        return abs(px - lo) > lo * bps / 10000.0 or abs(px - hi) > hi * bps / 10000.0

    def _runaway(self, now: int) -> bool:
        k = self.runaway_signals
        tripped = self._run_count >= k and now - self._run_times[self._run_head] < \
            self.runaway_window_ns
        self._run_times[self._run_head] = now
        self._run_head = (self._run_head + 1) % k
        if self._run_count < k:
            self._run_count += 1
        return tripped

    def _dedup_check(self, strategy_id: int, epoch: int, seq: int) -> int:
        for d in self._dedup:
            if d[0] == strategy_id:
                if epoch < d[1] or (epoch == d[1] and seq <= d[2]):
                    return R.DUPLICATE
                if epoch == d[1] and seq > d[2] + 1:
                    self.last_gap = seq - d[2] - 1
                d[1], d[2] = epoch, seq
                return 0
        if len(self._dedup) >= MAX_STRATEGIES:
            return R.BAD_ID
        if seq > 1:
            self.last_gap = seq - 1
        self._dedup.append([strategy_id, epoch, seq])
        return 0

    def _is_duplicate(self, inst: _Inst, strategy_id: int, side: int, otype: int, pu: int,
                      qu: int, now: int) -> bool:
        w = self.duplicate_window_ns
        for mono, sid, sd, ot, p, q in inst.recent:
            if mono and now - mono < w and sid == strategy_id and sd == side and ot == otype \
                    and p == pu and q == qu:
                return True
        return False

    def _rate_admit(self, now: int) -> bool:
        k = self.throttle_orders
        if self._rate_count >= k and now - self._rate_times[self._rate_head] < \
                self.throttle_window_ns:
            return False
        self._rate_times[self._rate_head] = now
        self._rate_head = (self._rate_head + 1) % k
        if self._rate_count < k:
            self._rate_count += 1
        return True


def _validate_window_collar(window_collar_bps, window_collar_ns) -> None:
    """The time-window collar's limits (shared by both engines): ValueError when bad."""
    if isinstance(window_collar_bps, bool) or not isinstance(window_collar_bps, (int, float)) \
            or not 0 <= window_collar_bps < math.inf:
        raise ValueError(f"window_collar_bps must be a finite number >= 0 (0 = off), got "
                         f"{window_collar_bps!r}")
    if isinstance(window_collar_ns, bool) or not isinstance(window_collar_ns, int) \
            or not WINDOW_SLICES <= window_collar_ns <= 10**12:
        raise ValueError(f"window_collar_ns must be an integer in {WINDOW_SLICES}..{10**12}, got "
                         f"{window_collar_ns!r}")


def _validate_fill_guard(runaway_fills, runaway_fill_window_ns) -> None:
    """The fill-rate runaway guard's limits (shared by both engines): ValueError when bad."""
    if isinstance(runaway_fills, bool) or not isinstance(runaway_fills, int) \
            or not 0 <= runaway_fills <= MAX_RUNAWAY_SIGNALS:
        raise ValueError(f"runaway_fills must be an integer in 0..{MAX_RUNAWAY_SIGNALS}, got "
                         f"{runaway_fills!r}")
    if isinstance(runaway_fill_window_ns, bool) or not isinstance(runaway_fill_window_ns, int) \
            or not 1 <= runaway_fill_window_ns <= 10**12:
        raise ValueError(f"runaway_fill_window_ns must be an integer in 1..{10**12}, got "
                         f"{runaway_fill_window_ns!r}")


def _qty_units(x: float, scale: float, signed: bool = False) -> int:
    """Quantity → nearest units for the gateway's updates; ValueError if not finite, negative
    (unless signed) or beyond MAX_UNITS."""
    x = float(x)
    lo = -MAX_UNITS_F if signed else 0.0
    if not lo <= x * scale <= MAX_UNITS_F:
        raise ValueError(f"quantity must be finite, {'bounded' if signed else '>= 0'}: {x!r}")
    return round_units(x, scale)


def _price_units(x, scale: float) -> int:
    """A resting price → nearest units (0 = none); ValueError if not finite, < 0 or absurd."""
    x = float(x)
    if not 0.0 <= x * scale <= MAX_UNITS_F:
        raise ValueError(f"price must be finite and >= 0 (0 = none): {x!r}")
    return round_units(x, scale)


def _check_tick_age(v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10**12:
        raise ValueError(f"max_tick_age_ns must be an integer in 1..{10**12}, got {v!r}")
    return int(v)


def _validate_limits(max_gross_notional, collar_bps, ref_stale_ns, throttle_orders,
                     throttle_window_ns, runaway_signals, runaway_window_ns, state,
                     max_tick_age_ns=1_000_000_000, duplicate_window_ns=0) -> None:
    """Shared by both engines: bad limits are a ValueError at construction (cool path)."""
    for name, v in (("max_gross_notional", max_gross_notional), ("collar_bps", collar_bps)):
        if not (isinstance(v, (int, float)) and 0 < v < math.inf):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    for name, v, hi in (("ref_stale_ns", ref_stale_ns, 10**12),
                        ("throttle_orders", throttle_orders, 10**6),
                        ("throttle_window_ns", throttle_window_ns, 10**12),
                        ("runaway_signals", runaway_signals, MAX_RUNAWAY_SIGNALS),
                        ("runaway_window_ns", runaway_window_ns, 10**12)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi:
            raise ValueError(f"{name} must be an integer in 1..{hi}, got {v!r}")
    _check_tick_age(max_tick_age_ns)
    if isinstance(duplicate_window_ns, bool) or not isinstance(duplicate_window_ns, int) \
            or not 0 <= duplicate_window_ns <= 10**12:
        raise ValueError(f"duplicate_window_ns must be an integer in 0..{10**12}, got "
                         f"{duplicate_window_ns!r}")
    if int(state) not in (0, 1, 2):
        raise ValueError(f"state must be 0, 1 or 2, got {state!r}")
