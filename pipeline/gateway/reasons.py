"""The gateway's one refusal vocabulary, and its trading states.

Every refusal of a signal, whoever judges it, is one `Reason`; the journal and the status file
carry its name. Mirrored in ext/risk.pxd (section REASONS / STATES); tests/unit/test_risk_rules.py
checks that the compiled module reports the same numbers; change both together. TradingState is
defined in pipeline/records.py (the launcher's status block carries it) and re-exported here.

0 is ACCEPT. 1..29, HOST_CLOSED, RATE_BUDGET, STALE_TRIGGER, DUPLICATE_ORDER, SELF_TRADE and
PRICE_WINDOW are judged by the risk kernel, in the order
documented in pipeline/gateway/risk_py.py (the first rule that fails is the answer):
  HOST_CLOSED       the venue closed us after a 429/418 (ratelimit.HostGate pushes it in)
  RATE_BUDGET       the venue's order/weight budget is used up in this window, or the order
                    comes sooner than the pacing allows
The others are judged once each, after the kernel, by the part that owns the fact:
  CLIENT_ID_REUSED  the order book of record (orders.OrderTable): the signal is a duplicate whose
                    client order id already names an order (so the venue would see it twice)
  ENCODE            the signer could not encode an order the kernel accepted
"""
from __future__ import annotations

from enum import IntEnum

from pipeline.records import TradingState  # the one schema: ACTIVE / REDUCING / HALTED

__all__ = ["Reason", "TradingState", "REASON_NAMES"]


class Reason(IntEnum):
    ACCEPT = 0
    # the message itself
    MALFORMED = 1           # not an 80-byte SIGNAL_DTYPE record (or not a buffer at all)
    BAD_MESSAGE = 1         # the old name of MALFORMED (an alias)
    BAD_VERSION = 2         # record version != SIGNAL_VERSION
    BAD_ID = 3              # epoch <= 0, seq <= 0 or >= 2**40, strategy_id >= 2**16
    BAD_TIMESTAMP = 4       # created_mono <= 0 or in the future, ttl_ns <= 0
    UNKNOWN_SYMBOL = 5      # symbol id not configured, or configured for another venue
    BAD_SIDE = 6
    BAD_ORDER_TYPE = 7
    BAD_TIF = 8             # LIMIT needs GTC/IOC/FOK; MARKET and LIMIT_MAKER carry NONE
    BAD_QTY = 9             # NaN, ±inf, <= 0, or absurd (beyond 1e13 units of the step precision)
    BAD_PRICE = 10          # LIMIT: NaN, ±inf, <= 0 or absurd; MARKET: anything but NaN
    # signal hygiene
    EXPIRED = 11            # now_mono > created_mono + ttl_ns
    DUPLICATE = 12          # (epoch, seq) already seen for this strategy, or an older epoch
    # trading state
    HALTED = 13             # trading state HALTED: no new orders
    REDUCE_ONLY = 14        # trading state REDUCING and the order would not reduce the position
    # exchange filters (exchangeInfo)
    PRICE_TICK = 15         # price not a multiple of tickSize (or finer than its precision)
    PRICE_RANGE = 16        # outside [minPrice, maxPrice]
    QTY_STEP = 17           # quantity not a multiple of stepSize
    QTY_RANGE = 18          # outside [minQty, maxQty]
    MIN_NOTIONAL = 19       # price * quantity < minNotional
    MAX_NOTIONAL = 20       # price * quantity > maxNotional (NOTIONAL filter)
    # our own limits
    MAX_ORDER_QTY = 21
    MAX_ORDER_NOTIONAL = 22
    NO_REFERENCE = 23       # no reference price yet for the symbol
    STALE_REFERENCE = 24    # reference older than ref_stale_ns and the order increases risk
    PRICE_COLLAR = 25       # |price - ref| > ref * collar_bps / 10000
    POSITION_LIMIT = 26     # worst-case position (open orders included) beyond max_position
    GROSS_EXPOSURE = 27     # worst-case gross notional over all symbols beyond max_gross_notional
    RATE_LIMIT = 28         # our order-rate limit: throttle_orders already in the sliding window
    THROTTLED = 28          # the old name of RATE_LIMIT (an alias)
    RUNAWAY = 29            # too many signals in the runaway window: state is now HALTED
    CLIENT_ID_REUSED = 30   # the order book (after the kernel; see the module docstring)
    HOST_CLOSED = 31        # the venue's limits, judged in the kernel (set_venue_gate)
    RATE_BUDGET = 32
    ENCODE = 33             # the signer (after the kernel)
    STALE_TRIGGER = 34      # the signal's trigger tick is older than the symbol's max_tick_age_ns
                            # and the order increases risk (judged in the kernel, step 9)
    DUPLICATE_ORDER = 35    # the same order (strategy, symbol, side, type, price, qty) accepted
                            # less than duplicate_window_ns ago (the kernel, step 11)
    SELF_TRADE = 36         # the order would cross one of our own resting orders (the kernel,
                            # step 11, with [risk].self_trade_prevention)
    PRICE_WINDOW = 37       # time-window collar: a risk-increasing order's price more than
                            # window_collar_bps from the lowest or highest reference of the last
                            # window_collar_ms (the kernel, step 9; the price walked too far)


REASON_NAMES = {int(r): r.name for r in Reason}
