# cython: language_level=3
"""The SMA-crossover backtest in one pass over the ticks (strategy + execution + statistics).

Per tick j (price p, time t, reset flag r):
  1. strategy: integer price q = rint(p / increment) - q0; if r, the windows restart empty; the
     window sums Sf, Ss are updated in O(1) from a ring of the last `slow` prices (with time
     bars, bar_ns > 0: the close of a bar, fed when the first trade of a later bar arrives; a
     reset also drops the bar in progress); once the window
     is full the trend is sign(Sf*slow - Ss*fast); a change of a non-zero trend is a signal, queued
     to act at t + latency (exact rule: pipeline/strategy/sma.py).
  2. execution: every queued signal with exec_ts <= t fills at this tick, in order. A signal moves
     the position to +1 (up) or -1 / 0 (down; long/short / long/flat): first a close leg if a
     position is open, then an open leg sized at `size` x equity / p (fraction) or `size` units
     (fixed). Each leg pays slippage (price x (1 ± slip)) and the fee on its notional.
  3. marking: equity = cash + qty x p; drawdown, its duration, exposure time and the equity on the
     period grid (for Sharpe/Sortino) are updated in the same pass.

The pure-Python twin is pipeline/backtest/kernel_py.py (vectorized numpy).
"""
cimport cython
from libc.math cimport rint, fabs
from libc.stdint cimport int64_t, uint8_t
from libc.stdlib cimport malloc, realloc, free

import numpy as np

FILL_FIELDS = ("tick", "signal", "qty", "price", "fee")


cdef inline int _push_fill(Fill **fills, int64_t *n, int64_t *cap, int64_t tick, int64_t signal,
                           double qty, double price, double fee) noexcept nogil:
    cdef Fill *f
    if n[0] == cap[0]:
        f = <Fill *>realloc(fills[0], <size_t>(cap[0] * 2) * sizeof(Fill))
        if f == NULL:
            return BT_NOMEM
        fills[0] = f
        cap[0] *= 2
    fills[0][n[0]].tick = tick
    fills[0][n[0]].signal = signal
    fills[0][n[0]].qty = qty
    fills[0][n[0]].price = price
    fills[0][n[0]].fee = fee
    n[0] += 1
    return BT_OK


cdef int _execute(Book *b, int64_t direction, double p, int64_t tick, int64_t signal,
                  bint allow_short, double fee_rate, double slip_rate, bint fixed_size,
                  double size, Fill **fills, int64_t *n_fills, int64_t *cap_fills) noexcept nogil:
    """Move the position towards `direction` at market price p (close leg, then open leg)."""
    cdef int64_t target = direction if (direction > 0 or allow_short) else 0
    cdef double dq, pf, fee, amount
    if target == b.unit:
        return BT_OK
    if b.unit != 0:                                   # close leg
        dq = -b.qty
        pf = p * (1.0 + slip_rate) if dq > 0 else p * (1.0 - slip_rate)
        fee = fabs(dq) * pf * fee_rate
        b.cash -= dq * pf
        b.cash -= fee
        b.turnover += fabs(dq) * pf
        b.fees += fee
        b.qty = 0.0
        b.unit = 0
        b.trades += 1
        if b.cash - b.open_equity > 0:
            b.wins += 1
        b.n_fills += 1
        if _push_fill(fills, n_fills, cap_fills, tick, signal, dq, pf, fee) != BT_OK:
            return BT_NOMEM
    if target != 0:                                   # open leg
        # a fraction of the cash, sized so that price + slippage + fee fit in it
        amount = size if fixed_size else size * b.cash / (p * (1.0 + slip_rate) * (1.0 + fee_rate))
        if amount <= 0:                               # bust: nothing left to trade with
            return BT_OK
        dq = target * amount
        pf = p * (1.0 + slip_rate) if dq > 0 else p * (1.0 - slip_rate)
        fee = fabs(dq) * pf * fee_rate
        b.open_equity = b.cash
        b.cash -= dq * pf
        b.cash -= fee
        b.turnover += fabs(dq) * pf
        b.fees += fee
        b.qty = dq
        b.unit = target
        b.n_fills += 1
        if _push_fill(fills, n_fills, cap_fills, tick, signal, dq, pf, fee) != BT_OK:
            return BT_NOMEM
    return BT_OK


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.initializedcheck(False)
def sma_backtest(const double[:] price, const int64_t[:] ts, const uint8_t[:] reset,
                 int64_t fast, int64_t slow, double price_increment, int64_t bar_ns,
                 bint allow_short,
                 double fee_rate, double slip_rate, const double[:] half_spread,
                 int64_t latency_ns, bint fixed_size,
                 double size, double capital, int64_t period_ns, double[:] samples,
                 double[:] equity):
    """Run the backtest. `reset`, `half_spread` and `equity` may be empty (no resets / only
    the constant slip_rate / no curve); half_spread[j] (a fraction) adds to slip_rate for fills at
    tick j. `samples` has
    room for the equity on the period grid: samples[0] = capital, samples[k] = equity after the
    last tick with ts <= ts[0] + k*period_ns. Returns (stats dict, fills dict of arrays)."""
    cdef int64_t n = price.shape[0]
    if ts.shape[0] != n:
        raise ValueError(f"ts has {ts.shape[0]} elements, price {n}")
    if reset.shape[0] not in (0, n):
        raise ValueError(f"reset has {reset.shape[0]} elements, price {n}")
    if half_spread.shape[0] not in (0, n):
        raise ValueError(f"half_spread has {half_spread.shape[0]} elements, price {n}")
    if equity.shape[0] not in (0, n):
        raise ValueError(f"equity has {equity.shape[0]} elements, price {n}")
    if n == 0:
        raise ValueError("no ticks")
    if fast < 1 or fast >= slow:
        raise ValueError(f"need 1 <= fast < slow, got fast={fast} slow={slow}")
    if period_ns <= 0:
        raise ValueError("period_ns must be > 0")
    cdef int64_t nsamp = samples.shape[0]
    cdef int64_t need = (ts[n - 1] - ts[0] + period_ns - 1) // period_ns
    if need < 1:
        need = 1
    if nsamp < need + 1:
        raise ValueError(f"samples needs {need + 1} elements, got {nsamp}")
    cdef int64_t limit = (<int64_t>1 << 61) // (fast * slow)
    cdef bint has_reset = reset.shape[0] == n
    cdef bint has_equity = equity.shape[0] == n
    cdef bint has_hs = half_spread.shape[0] == n
    cdef double slip_j
    cdef int64_t *win = <int64_t *>malloc(<size_t>slow * sizeof(int64_t))
    cdef int64_t cap_fills = 1024, n_fills = 0
    cdef Fill *fills = <Fill *>malloc(<size_t>cap_fills * sizeof(Fill))
    cdef int64_t cap_q = 64, q_head = 0, q_tail = 0
    cdef Pending *queue = <Pending *>malloc(<size_t>cap_q * sizeof(Pending))
    cdef Pending *grown
    cdef Book b
    b.cash = capital; b.qty = 0.0; b.unit = 0; b.open_equity = capital; b.trades = 0
    b.wins = 0; b.turnover = 0.0; b.fees = 0.0; b.n_fills = 0; b.n_signals = 0
    cdef int64_t q0 = <int64_t>rint(price[0] / price_increment)
    cdef int64_t j, d, diff, sf = 0, ss = 0, count = 0, w = 0, r, trend = 0, t, tj, k = 1
    cdef int64_t t0 = ts[0], next_b = ts[0] + period_ns
    cdef double p, eq = capital, peak = capital, max_dd = 0.0, prev_eq = capital
    cdef int64_t peak_ts = ts[0], dd_dur = 0, exposure_ns = 0, prev_ts = ts[0], prev_unit = 0
    cdef int64_t bad_tick = -1
    cdef bint underwater = False, feed
    cdef int64_t x, bar, cur_bar = 0, last_q = 0
    cdef int status = BT_OK
    if win == NULL or fills == NULL or queue == NULL:
        free(win); free(fills); free(queue)
        raise MemoryError("backtest kernel: cannot allocate its buffers")
    samples[0] = capital
    with nogil:
        for j in range(n):
            p = price[j]
            tj = ts[j]
            while tj > next_b:                        # period grid: equity before this tick
                samples[k] = prev_eq
                k += 1
                next_b += period_ns
            # ---- strategy
            d = <int64_t>rint(p / price_increment) - q0
            if d > limit or d < -limit:
                status = BT_RANGE
                bad_tick = j
                break
            feed = True
            x = d
            if bar_ns > 0:                            # time bars: feed a bar's close when the
                bar = tj // bar_ns                    # first trade of a later bar arrives
                if tj < 0 and bar * bar_ns != tj:
                    bar -= 1                          # floor, like Python's //
                if j == 0 or (has_reset and reset[j]):
                    cur_bar = bar
                    last_q = d
                    feed = False
                elif bar > cur_bar:
                    x = last_q
                    cur_bar = bar
                    last_q = d
                else:
                    last_q = d
                    feed = False
            if has_reset and reset[j]:
                count = 0
                sf = 0
                ss = 0
                w = 0
            if feed:
                if count >= slow:
                    ss -= win[w]
                if count >= fast:
                    r = w - fast
                    if r < 0:
                        r += slow
                    sf -= win[r]
                win[w] = x
                sf += x
                ss += x
                w += 1
                if w == slow:
                    w = 0
                count += 1
                if count >= slow:
                    diff = sf * slow - ss * fast
                    t = (diff > 0) - (diff < 0)
                    if t != 0 and t != trend:
                        if trend != 0:
                            if q_tail == cap_q:           # grow the FIFO (compact first)
                                if q_head > 0:
                                    for r in range(q_tail - q_head):
                                        queue[r] = queue[q_head + r]
                                    q_tail -= q_head
                                    q_head = 0
                                if q_tail == cap_q:
                                    grown = <Pending *>realloc(
                                        queue, <size_t>(cap_q * 2) * sizeof(Pending))
                                    if grown == NULL:
                                        status = BT_NOMEM
                                        break
                                    queue = grown
                                    cap_q *= 2
                            queue[q_tail].exec_ts = tj + latency_ns
                            queue[q_tail].signal = j
                            queue[q_tail].direction = t
                            q_tail += 1
                            b.n_signals += 1
                        trend = t
            # ---- execution
            slip_j = slip_rate + half_spread[j] if has_hs else slip_rate
            while q_head < q_tail and queue[q_head].exec_ts <= tj:
                if _execute(&b, queue[q_head].direction, p, j, queue[q_head].signal,
                            allow_short, fee_rate, slip_j, fixed_size, size,
                            &fills, &n_fills, &cap_fills) != BT_OK:
                    status = BT_NOMEM
                    break
                q_head += 1
            if status != BT_OK:
                break
            if q_head == q_tail:
                q_head = 0
                q_tail = 0
            # ---- marking
            eq = b.cash + b.qty * p
            if has_equity:
                equity[j] = eq
            if prev_unit != 0:
                exposure_ns += tj - prev_ts
            prev_unit = b.unit
            prev_ts = tj
            if eq >= peak:
                if underwater:                        # recovered: peak → this tick
                    underwater = False
                    if tj - peak_ts > dd_dur:
                        dd_dur = tj - peak_ts
                peak = eq
                peak_ts = tj
            else:
                underwater = True
                if eq < peak * (1.0 + max_dd):
                    max_dd = eq / peak - 1.0
                if tj - peak_ts > dd_dur:
                    dd_dur = tj - peak_ts
            prev_eq = eq
        if status == BT_OK:
            while k < nsamp and k <= need:
                samples[k] = eq
                k += 1
    free(win)
    free(queue)
    if status != BT_OK:
        free(fills)
        if status == BT_RANGE:
            d = abs(<int64_t>rint(price[bad_tick] / price_increment) - q0)
            raise ValueError(
                f"tick {bad_tick}: price {price[bad_tick]} is {d} "
                f"increments from the first price, beyond the exact int64 limit {limit} for "
                f"windows {fast}/{slow}; use a coarser price_increment (now {price_increment})")
        raise MemoryError("backtest kernel: out of memory")
    out = {name: np.empty(n_fills, dtype=np.int64 if name in ("tick", "signal") else np.float64)
           for name in FILL_FIELDS}
    cdef int64_t[:] f_tick = out["tick"]
    cdef int64_t[:] f_sig = out["signal"]
    cdef double[:] f_qty = out["qty"]
    cdef double[:] f_price = out["price"]
    cdef double[:] f_fee = out["fee"]
    for j in range(n_fills):
        f_tick[j] = fills[j].tick
        f_sig[j] = fills[j].signal
        f_qty[j] = fills[j].qty
        f_price[j] = fills[j].price
        f_fee[j] = fills[j].fee
    free(fills)
    stats = {"final_equity": eq, "cash": b.cash, "qty": b.qty, "unit": b.unit,
             "trades": b.trades, "wins": b.wins, "turnover_notional": b.turnover,
             "fees": b.fees, "n_fills": b.n_fills, "n_signals": b.n_signals,
             "max_drawdown": max_dd, "max_drawdown_duration_ns": dd_dur,
             "exposure_ns": exposure_ns, "n_samples": need + 1,
             "pending_at_end": q_tail - q_head}
    return stats, out
