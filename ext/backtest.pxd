# Table of contents of ext/backtest.pyx — the fused SMA-crossover backtest kernel.
# Pure-Python twin (numpy, vectorized): pipeline/backtest/kernel_py.py (same signature, same
# results; tests/parity/test_backtest_kernel.py checks them against each other and against an
# independent per-tick loop).
from libc.stdint cimport int64_t, uint8_t

# ---------------------------------------------------------------- RESULT CODES
cdef enum:
    BT_OK = 0
    BT_NOMEM = -1       # malloc/realloc failed
    BT_RANGE = -2       # |q - q0| beyond the exact int64 limit (see pipeline/strategy/sma.py)

# ---------------------------------------------------------------- STATE
cdef struct Fill:
    int64_t tick        # index of the tick the fill happened at
    int64_t signal      # index of the tick that made the signal
    double qty          # signed base quantity (+ buy, - sell)
    double price        # fill price (after slippage)
    double fee          # fee paid (quote)

cdef struct Pending:
    int64_t exec_ts     # the signal acts on the first tick with ts >= exec_ts
    int64_t signal      # tick index of the signal
    int64_t direction   # +1 / -1

cdef struct Book:       # the account and the running statistics
    double cash
    double qty
    int64_t unit        # -1, 0, +1: the position in units
    double open_equity  # equity just before the current position was opened
    int64_t trades      # closed round trips
    int64_t wins        # closed round trips with pnl > 0
    double turnover     # traded notional (quote)
    double fees
    int64_t n_fills
    int64_t n_signals

# ---------------------------------------------------------------- KERNEL
cdef int _execute(Book *b, int64_t direction, double p, int64_t tick, int64_t signal,
                  bint allow_short, double fee_rate, double slip_rate, bint fixed_size,
                  double size, Fill **fills, int64_t *n_fills, int64_t *cap_fills) noexcept nogil
