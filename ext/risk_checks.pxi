# Included by ext/risk.pyx (textually: `include "risk_checks.pxi"`, so every check inlines into
# the kernel as before): the pure checks over one signal and one instrument, noexcept nogil, no
# engine state. Declared in ext/risk.pxd (section CHECKS); the pure-Python twin of each is inline
# in pipeline/gateway/risk_py.py's check(), in the same order. The DEF constants (ORDER_*, TIF_*,
# MAX_UNITS_F) and the cimports are risk.pyx's.
# ====================================================================== CHECKS
cdef inline int64_t i64max(int64_t a, int64_t b) noexcept nogil:
    return a if a > b else b

cdef inline int64_t i64abs(int64_t a) noexcept nogil:
    return -a if a < 0 else a


cdef int64_t to_units(double x, double scale) noexcept nogil:
    """round(x*scale) when on the precision grid; -1 absurd or NaN; -2 finer than the precision."""
    cdef double y = x * scale
    if not y <= MAX_UNITS_F:
        return -1
    cdef double n = floor(y + 0.5)
    if fabs(y - n) > 1e-9 + y * 1e-15:
        return -2
    return <int64_t>n


cdef int64_t round_units(double x, double scale) noexcept nogil:
    return <int64_t>floor(x * scale + 0.5)


cdef int check_fields(const SignalRecord *s, int64_t now, const Instrument *inst,
                      CheckedOrder *out) noexcept nogil:
    """Step 4 (fields) of the twin's check(): ids, timestamps, side/type/tif, qty, price."""
    cdef int otype = s.order_type
    cdef int64_t qu, pu = 0
    if s.side != 1 and s.side != -1:
        return R_BAD_SIDE
    if otype != ORDER_LIMIT and otype != ORDER_MARKET and otype != ORDER_LIMIT_MAKER:
        return R_BAD_ORDER_TYPE
    if otype == ORDER_LIMIT:
        if s.tif < 1 or s.tif > 3:
            return R_BAD_TIF
    elif s.tif != 0:
        return R_BAD_TIF
    if not (s.qty > 0.0):
        return R_BAD_QTY
    qu = to_units(s.qty, inst.qty_scale)
    if qu == -1 or qu == 0:
        return R_BAD_QTY
    if qu == -2:
        return R_QTY_STEP
    if otype == ORDER_MARKET:
        if s.price == s.price:
            return R_BAD_PRICE
    else:
        if not (s.price > 0.0):
            return R_BAD_PRICE
        pu = to_units(s.price, inst.price_scale)
        if pu == -1 or pu == 0:
            return R_BAD_PRICE
        if pu == -2:
            return R_PRICE_TICK
    out.inst = inst
    out.symbol = s.symbol
    out.side = s.side
    out.order_type = otype
    out.tif = s.tif
    out.qty_units = qu
    out.price_units = pu
    out.strategy_id = s.strategy_id
    out.epoch = s.epoch
    out.seq = s.seq
    return R_ACCEPT


cdef int check_filters(const Instrument *inst, const CheckedOrder *o, double price,
                       double qty) noexcept nogil:
    """Step 7 (exchange filters, exact integers) and step 8 (our order limits)."""
    cdef int64_t qu = o.qty_units, pu = o.price_units, npu
    cdef bint is_market = o.order_type == ORDER_MARKET
    cdef bint apply_min = True, apply_max = True
    cdef double notional
    if qu % inst.step_units != 0:
        return R_QTY_STEP
    if qu < inst.min_qty_units or (inst.max_qty_units and qu > inst.max_qty_units):
        return R_QTY_RANGE
    if is_market:
        apply_min = inst.min_notional_market
        apply_max = inst.max_notional_market
        npu = to_units(inst.ref, inst.price_scale)
        if npu == -1:
            return R_NO_REFERENCE
        if npu == -2:
            npu = round_units(inst.ref, inst.price_scale)
    else:
        if pu % inst.tick_units != 0:
            return R_PRICE_TICK
        if pu < inst.min_price_units or (inst.max_price_units and pu > inst.max_price_units):
            return R_PRICE_RANGE
        npu = pu
    # pu * qu >= M  <=>  pu >= ceil(M / qu);  pu * qu <= X  <=>  pu <= X // qu (exact, no overflow)
    if apply_min and inst.min_notional_units and npu < (inst.min_notional_units + qu - 1) // qu:
        return R_MIN_NOTIONAL
    if apply_max and inst.max_notional_units and npu > inst.max_notional_units // qu:
        return R_MAX_NOTIONAL
    if qu > inst.max_order_qty_units:
        return R_MAX_ORDER_QTY
    notional = (inst.ref if is_market else price) * qty
    if notional > inst.max_order_notional:
        return R_MAX_ORDER_NOTIONAL
    return R_ACCEPT


cdef bint is_reducing(const Instrument *inst, int side, int64_t qu) noexcept nogil:
    if side == 1:
        return inst.pos < 0 and inst.open_buy + qu <= -inst.pos
    return inst.pos > 0 and inst.open_sell + qu <= inst.pos


cdef bint crosses_own(const Instrument *inst, const CheckedOrder *o) noexcept nogil:
    """A BUY at or above our best resting SELL, a SELL at or below our best resting BUY; a MARKET
    order whenever we rest on the other side (it may walk the book to our price)."""
    if o.side == 1:
        return inst.own_ask != 0 and (o.order_type == ORDER_MARKET or o.price_units >= inst.own_ask)
    return inst.own_bid != 0 and (o.order_type == ORDER_MARKET or o.price_units <= inst.own_bid)


cdef int check_collar(double price, double ref, double collar_bps) noexcept nogil:
    """Inclusive boundary: a price exactly collar_bps away from ref is accepted."""
    if fabs(price - ref) > ref * collar_bps / 10000.0:
        return R_PRICE_COLLAR
    return R_ACCEPT


# ---------------------------------------------------------------------- the time-window collar
cdef void note_ref(Instrument *inst, double ref, int64_t mono, int64_t slice_ns) noexcept nogil:
    """Fold a new reference (its CLOCK_MONOTONIC stamp `mono` >= 0) into the instrument's window:
    slice mono // slice_ns keeps the lowest and highest reference seen in it. A slot holding an
    older slice starts over; a reference stamped older than its slot's slice folds into it (it
    then counts a little longer: stricter, never looser)."""
    cdef int64_t idx = mono // slice_ns
    cdef RefSlice *w = &inst.window[idx % WINDOW_SLICES]
    if w.lo == 0.0 or idx > w.idx:
        w.idx = idx
        w.lo = ref
        w.hi = ref
        return
    if ref < w.lo:
        w.lo = ref
    if ref > w.hi:
        w.hi = ref


cdef int window_out(const Instrument *inst, double px, int64_t now, int64_t slice_ns,
                    double bps) noexcept nogil:
    """PRICE_WINDOW when px is more than bps from the lowest or the highest reference of the
    window (the current reference and every slice newer than now // slice_ns - WINDOW_SLICES),
    with check_collar's inclusive boundary; ACCEPT otherwise."""
    cdef double lo = inst.ref, hi = inst.ref
    cdef int64_t oldest = now // slice_ns - WINDOW_SLICES
    cdef const RefSlice *w
    cdef int j
    for j in range(WINDOW_SLICES):
        w = &inst.window[j]
        if w.lo > 0.0 and w.idx > oldest:
            if w.lo < lo:
                lo = w.lo
            if w.hi > hi:
                hi = w.hi
    if check_collar(px, lo, bps) or check_collar(px, hi, bps):
        return R_PRICE_WINDOW
    return R_ACCEPT
