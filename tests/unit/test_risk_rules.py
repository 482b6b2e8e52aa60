"""Every pre-trade rule, on both engines (ext/risk.pyx and its twin): accepted at its boundary,
rejected just past it; states; gateway updates; malformed fields → reason codes."""
from __future__ import annotations

import math

import pytest

from pipeline import _native
from pipeline.gateway.reasons import Reason, TradingState
from tests.gateway_helpers import (
    BINANCE,
    LIMITS,
    NOW,
    T0,
    Sig,
    btc_rules,
    engines,
    eth_rules,
    toy_rules,
)

R = Reason


@pytest.fixture(params=engines(), ids=["cython", "python"])
def Engine(request):
    return request.param


def make(Engine, *rules, ref=None, **limits):
    kw = dict(LIMITS)
    kw.update(limits)
    e = Engine(**kw)
    for r in rules or (btc_rules(),):
        e.set_instrument(r)
        p = (ref or {}).get(r.symbol_id, {1: 50_000.0, 2: 50.0, 3: 2_500.0}.get(r.symbol_id, 1.0))
        e.set_reference(r.symbol_id, p, T0)
    return e


def test_reason_codes_mirror_the_pxd():
    risk = _native.load("risk")
    assert risk.REASON_CODES == {r.name: int(r) for r in Reason}
    assert risk.STATE_CODES == {s.name: int(s) for s in TradingState}


def test_a_plain_limit_order_is_accepted_and_counted_as_open(Engine):
    e, sig = make(Engine), Sig()
    assert e.check(sig(), NOW) == R.ACCEPT
    assert e.open_orders(1) == (0.01, 0.0)
    assert e.check(sig(side=-1, qty=0.02), NOW) == R.ACCEPT
    assert e.open_orders(1) == (0.01, 0.02)


# ------------------------------------------------------------------ exchange filters and limits
TOY = [  # (price, qty, expected)
    (10.00, 2.0, R.ACCEPT), (9.95, 2.0, R.PRICE_RANGE),              # minPrice 10
    (100.0, 1.0, R.ACCEPT), (100.05, 1.0, R.PRICE_RANGE),            # maxPrice 100
    (10.05, 2.0, R.ACCEPT), (10.07, 2.0, R.PRICE_TICK),              # tick 0.05 (modulo)
    (10.051, 2.0, R.PRICE_TICK),                                     # finer than the precision
    (20.0, 1.0, R.ACCEPT), (20.0, 0.5, R.QTY_RANGE),                 # minQty 1
    (20.0, 1.5, R.ACCEPT), (20.0, 1.2, R.QTY_STEP),                  # step 0.5 (modulo)
    (20.0, 1.55, R.QTY_STEP),                                        # finer than the precision
    (20.0, 1.0, R.ACCEPT), (19.95, 1.0, R.MIN_NOTIONAL),             # minNotional 20
    (80.0, 4.5, R.MAX_ORDER_NOTIONAL),                               # 360 > our 270
    (60.0, 4.5, R.ACCEPT), (60.05, 4.5, R.MAX_ORDER_NOTIONAL),       # our max notional 270
    (50.0, 4.5, R.ACCEPT), (50.0, 5.0, R.MAX_ORDER_QTY),             # our max order qty 4.5
    (50.0, 5.5, R.QTY_RANGE),                                        # maxQty 5
]


@pytest.mark.parametrize("price,qty,expected", TOY)
def test_toy_instrument_boundaries(Engine, price, qty, expected):
    e = make(Engine, toy_rules(), collar_bps=10_000.0)
    assert e.check(Sig()(symbol=2, price=price, qty=qty), NOW) == expected


@pytest.mark.parametrize("price,qty,expected", [(80.0, 5.0, R.ACCEPT), (80.05, 5.0, R.MAX_NOTIONAL)])
def test_max_notional_filter_boundary(Engine, price, qty, expected):
    e = make(Engine, toy_rules(max_order_qty="5", max_order_notional=1e6), collar_bps=10_000.0)
    assert e.check(Sig()(symbol=2, price=price, qty=qty), NOW) == expected


def test_btc_filters_from_recorded_exchange_info(vectors, Engine):
    import json
    info = json.loads((vectors / "binance" / "rest_exchangeInfo.json").read_text())
    sym = next(s for s in info["recorded_excerpt"]["message"]["symbols"] if s["symbol"] == "BTCUSDT")
    from pipeline.gateway.instruments import InstrumentRules
    rules = InstrumentRules.from_binance(sym, symbol_id=1, venue=BINANCE, max_order_qty="1",
                                         max_position_qty="2", max_order_notional=60_000.0)
    assert rules == btc_rules()
    e, sig = make(Engine, rules), Sig()
    assert e.check(sig(qty=0.0002, price=50_000.0), NOW) == R.ACCEPT       # 10.0 = minNotional
    assert e.check(sig(qty=0.00019, price=50_000.0), NOW) == R.MIN_NOTIONAL
    assert e.check(sig(qty=0.000015), NOW) == R.QTY_STEP
    assert e.check(sig(price=50_000.001), NOW) == R.PRICE_TICK


# ------------------------------------------------------------------ collar and market data
@pytest.mark.parametrize("price,expected", [
    (50_500.00, R.ACCEPT), (50_500.01, R.PRICE_COLLAR),       # ref 50000, 100 bps → band 500
    (49_500.00, R.ACCEPT), (49_499.99, R.PRICE_COLLAR),
])
def test_price_collar_boundary_is_inclusive(Engine, price, expected):
    assert make(Engine).check(Sig()(price=price), NOW) == expected


def test_collar_applies_to_limit_maker_not_market(Engine):
    e, sig = make(Engine), Sig()
    assert e.check(sig(order_type=3, price=60_000.0), NOW) == R.PRICE_COLLAR
    assert e.check(sig(order_type=2), NOW) == R.ACCEPT


@pytest.mark.parametrize("age,expected", [(2_000_000_000, R.ACCEPT),
                                          (2_000_000_001, R.STALE_REFERENCE)])
def test_stale_reference_boundary(Engine, age, expected):
    e = make(Engine)
    now = T0 + age
    assert e.check(Sig()(created_mono=now - 10), now) == expected


def test_stale_reference_still_lets_a_reducing_order_through(Engine):
    e, sig = make(Engine), Sig()
    e.set_position(1, 0.5)
    now = T0 + 60_000_000_000
    assert e.check(sig(side=1, created_mono=now - 1), now) == R.STALE_REFERENCE
    assert e.check(sig(side=-1, created_mono=now - 1), now) == R.ACCEPT


def test_no_reference_price_rejects(Engine):
    e, sig = Engine(**LIMITS), Sig()
    e.set_instrument(btc_rules())
    assert e.check(sig(), NOW) == R.NO_REFERENCE
    assert e.set_reference(1, math.nan, T0) is False
    assert e.set_reference(1, -1.0, T0) is False
    assert e.set_reference(1, math.inf, T0) is False
    assert e.set_reference(99, 1.0, T0) is False
    assert e.check(sig(), NOW) == R.NO_REFERENCE


def test_market_order_notional_uses_the_reference(Engine):
    e, sig = make(Engine, ref={1: 1000.0}), Sig()
    assert e.check(sig(order_type=2, qty=0.01), NOW) == R.ACCEPT           # 10.0 at ref 1000
    assert e.check(sig(order_type=2, qty=0.00999), NOW) == R.MIN_NOTIONAL


# ------------------------------------------------------------------ position and exposure
@pytest.mark.parametrize("pos,open_buy,expected", [
    (1.0, 0.0, R.ACCEPT), (1.00001, 0.0, R.POSITION_LIMIT),
    (0.5, 0.5, R.ACCEPT), (0.5, 0.50001, R.POSITION_LIMIT),
])
def test_position_limit_counts_open_orders_buy(Engine, pos, open_buy, expected):
    e = make(Engine, collar_bps=10_000.0)
    e.set_position(1, pos)
    e.set_open_orders(1, open_buy, 0.0)
    assert e.check(Sig()(qty=1.0), NOW) == expected


@pytest.mark.parametrize("pos,open_sell,expected", [
    (-1.0, 0.0, R.ACCEPT), (-1.00001, 0.0, R.POSITION_LIMIT),
    (-0.5, 0.5, R.ACCEPT), (-0.5, 0.50001, R.POSITION_LIMIT),
])
def test_position_limit_counts_open_orders_sell(Engine, pos, open_sell, expected):
    e = make(Engine, collar_bps=10_000.0)
    e.set_position(1, pos)
    e.set_open_orders(1, 0.0, open_sell)
    assert e.check(Sig()(side=-1, qty=1.0), NOW) == expected


def test_accepted_orders_fill_the_position_limit(Engine):
    e, sig = make(Engine), Sig()
    assert e.check(sig(qty=1.0), NOW) == R.ACCEPT
    assert e.check(sig(qty=1.0), NOW) == R.ACCEPT
    assert e.check(sig(qty=0.001), NOW) == R.POSITION_LIMIT
    e.release_open(1, 1, 0.5)
    assert e.check(sig(qty=0.5), NOW) == R.ACCEPT


@pytest.mark.parametrize("eth_qty,expected", [(4.0, R.ACCEPT), (4.0001, R.GROSS_EXPOSURE)])
def test_gross_exposure_over_all_instruments(Engine, eth_qty, expected):
    e = make(Engine, btc_rules(), eth_rules(), max_gross_notional=110_000.0)
    e.set_position(1, 2.0)                                  # 2 BTC x 50000 = 100000
    s = Sig()(symbol=3, qty=eth_qty, price=2_500.0)         # 4 ETH x 2500 = 10000
    assert e.check(s, NOW) == expected


def test_fills_move_open_orders_into_the_position(Engine):
    e, sig = make(Engine), Sig()
    assert e.check(sig(qty=0.5), NOW) == R.ACCEPT
    e.apply_fill(1, 1, 0.2)
    assert e.position(1) == 0.2 and e.open_orders(1) == (0.3, 0.0)
    e.apply_fill(1, 1, 0.3)
    assert e.position(1) == 0.5 and e.open_orders(1) == (0.0, 0.0)
    e.release_open(1, -1, 1.0)                              # never below zero
    assert e.open_orders(1) == (0.0, 0.0)


def test_gateway_update_methods_reject_bad_input(Engine):
    e = make(Engine)
    for bad in (lambda: e.set_position(99, 1.0), lambda: e.set_position(1, math.nan),
                lambda: e.set_open_orders(1, -1.0, 0.0), lambda: e.apply_fill(1, 0, 1.0),
                lambda: e.release_open(1, 1, math.inf), lambda: e.set_state(3),
                lambda: e.apply_fill(1, 1, -0.1), lambda: e.position("BTCUSDT")):
        with pytest.raises(ValueError):
            bad()


def test_bad_limits_are_rejected_at_construction(Engine):
    for over in (dict(collar_bps=0.0), dict(max_gross_notional=math.nan),
                 dict(throttle_orders=0), dict(runaway_signals=5000), dict(ref_stale_ns=1.5)):
        with pytest.raises(ValueError):
            Engine(**{**LIMITS, **over})


# ------------------------------------------------------------------ states
def test_reducing_accepts_only_reducing_orders(Engine):
    e, sig = make(Engine, state=TradingState.REDUCING), Sig()
    assert e.check(sig(side=1), NOW) == R.REDUCE_ONLY                     # flat: nothing reduces
    e.set_position(1, 0.5)
    assert e.check(sig(side=1), NOW) == R.REDUCE_ONLY                     # adds to a long
    assert e.check(sig(side=-1, qty=0.50001), NOW) == R.REDUCE_ONLY       # would go through zero
    assert e.check(sig(side=-1, qty=0.3), NOW) == R.ACCEPT
    assert e.check(sig(side=-1, qty=0.2), NOW) == R.ACCEPT                # 0.3 open + 0.2 = 0.5
    assert e.check(sig(side=-1, qty=0.001), NOW) == R.REDUCE_ONLY         # open sells cover it all
    e.set_position(1, -0.4)
    assert e.check(sig(side=1, qty=0.4), NOW) == R.ACCEPT


def test_halted_rejects_everything(Engine):
    e, sig = make(Engine), Sig()
    e.set_position(1, 0.5)
    e.set_state(TradingState.HALTED)
    assert e.state == TradingState.HALTED
    assert e.check(sig(side=-1), NOW) == R.HALTED                         # even reducing
    assert e.check(sig(side=1), NOW) == R.HALTED
    e.set_state(TradingState.ACTIVE)
    assert e.check(sig(side=1), NOW) == R.ACCEPT


# ------------------------------------------------------------------ throttle and runaway
def test_a_burst_beyond_the_rate_limit_gets_exactly_n_through(Engine):
    # the case: 101 signals at once against 100/s → exactly 100 forwarded, one refused
    e, sig = make(Engine, throttle_orders=100, throttle_window_ns=1_000_000_000), Sig()
    got = [e.check(sig(qty=0.001), NOW) for _ in range(101)]
    assert got == [R.ACCEPT] * 100 + [R.RATE_LIMIT]
    assert e.open_orders(1) == (pytest.approx(0.1), 0.0)   # the refused one is not open


def test_the_rate_window_slides_and_is_half_open(Engine):
    e, sig = make(Engine, throttle_orders=3, throttle_window_ns=1_000_000_000), Sig()
    times = [NOW, NOW + 400_000_000, NOW + 800_000_000]
    assert [e.check(sig(qty=0.001, created_mono=t), t) for t in times] == [R.ACCEPT] * 3
    t = NOW + 999_999_999                  # the first is still inside the window
    assert e.check(sig(qty=0.001, created_mono=t), t) == R.RATE_LIMIT
    t = NOW + 1_000_000_000                # exactly one window after the oldest: room for one
    assert e.check(sig(qty=0.001, created_mono=t), t) == R.ACCEPT
    t = NOW + 1_399_999_999                # the window now holds NOW+0.4, +0.8, +1.0 s
    assert e.check(sig(qty=0.001, created_mono=t), t) == R.RATE_LIMIT
    t = NOW + 1_400_000_000
    assert e.check(sig(qty=0.001, created_mono=t), t) == R.ACCEPT


def test_a_steady_sender_never_gets_more_than_n_into_any_window(Engine):
    # 250 signals/s for 3 s against 100/s: a token bucket let ~2x the limit into the first
    # second; the sliding window never admits more than 100 into any 1 s (half-open)
    w = 1_000_000_000
    e, sig = make(Engine, throttle_orders=100, throttle_window_ns=w), Sig()
    accepted = []
    for i in range(750):
        t = NOW + i * 4_000_000
        e.set_reference(1, 50_000.0, t)
        if e.check(sig(qty=0.001, side=1 if i % 2 else -1, created_mono=t), t) == R.ACCEPT:
            accepted.append(t)
    assert len(accepted) == 300                             # 100 per second, nothing queued
    for k, t in enumerate(accepted):                        # every window [t, t + w)
        assert sum(1 for u in accepted[k:k + 101] if u < t + w) <= 100


def test_only_accepted_orders_count_toward_the_rate_limit(Engine):
    e, sig = make(Engine, throttle_orders=2, throttle_window_ns=1_000_000_000), Sig()
    assert e.check(sig(qty=0.001, price=60_000.0), NOW) == R.PRICE_COLLAR     # not recorded
    assert e.probe(sig(qty=0.001), NOW) == R.ACCEPT                            # undone
    assert [e.check(sig(qty=0.001), NOW) for _ in range(3)] == [R.ACCEPT] * 2 + [R.RATE_LIMIT]


# ------------------------------------------------------------------ duplicate orders
def test_an_identical_order_within_the_window_is_refused(Engine):
    # the case: two identical LIMIT SELLs within 100 ms both rested
    e, sig = make(Engine, duplicate_window_ns=100_000_000), Sig()
    e.set_position(1, 1.0)
    sell = dict(side=-1, qty=0.01, price=50_010.0)
    assert e.check(sig(**sell), NOW) == R.ACCEPT
    t = NOW + 99_999_999
    assert e.check(sig(created_mono=t, **sell), t) == R.DUPLICATE_ORDER
    assert e.open_orders(1) == (0.0, 0.01)                   # the duplicate is not open
    t = NOW + 100_000_000                                    # exactly a window later: new order
    assert e.check(sig(created_mono=t, **sell), t) == R.ACCEPT


@pytest.mark.parametrize("change", [dict(side=1), dict(price=50_010.01), dict(qty=0.011),
                                    dict(order_type=3), dict(strategy_id=2), dict(symbol=3)])
def test_an_order_differing_in_one_field_is_not_a_duplicate(Engine, change):
    e, sig = make(Engine, btc_rules(), eth_rules(), duplicate_window_ns=100_000_000), Sig()
    base = dict(side=-1, qty=0.01, price=50_010.0)
    assert e.check(sig(**base), NOW) == R.ACCEPT
    other = {**base, **change}
    if "symbol" in change:
        other["price"] = 2_500.0
    assert e.check(sig(**other), NOW) == R.ACCEPT


def test_identical_market_orders_are_duplicates_and_refusals_are_not_remembered(Engine):
    e, sig = make(Engine, duplicate_window_ns=100_000_000), Sig()
    assert e.check(sig(order_type=2, qty=0.01), NOW) == R.ACCEPT
    assert e.check(sig(order_type=2, qty=0.01), NOW + 1) == R.DUPLICATE_ORDER
    assert e.check(sig(price=60_000.0), NOW) == R.PRICE_COLLAR          # refused: not recorded
    assert e.probe(sig(price=50_001.0), NOW) == R.ACCEPT                # probe: not recorded
    assert e.check(sig(price=50_001.0), NOW) == R.ACCEPT


def test_the_duplicate_filter_is_off_at_zero_and_remembers_the_last_eight(Engine):
    e, sig = make(Engine), Sig()                                        # default 0: off
    assert [e.check(sig(), NOW) for _ in range(3)] == [R.ACCEPT] * 3
    e, sig = make(Engine, duplicate_window_ns=10**9), Sig()
    assert e.check(sig(price=50_000.0), NOW) == R.ACCEPT
    for k in range(1, 8):                                   # 7 others: the first still kept
        assert e.check(sig(price=50_000.0 + k), NOW) == R.ACCEPT
    assert e.check(sig(price=50_000.0), NOW) == R.DUPLICATE_ORDER
    assert e.check(sig(price=50_010.0), NOW) == R.ACCEPT    # the 9th pushes the first out
    assert e.check(sig(price=50_000.0), NOW) == R.ACCEPT
    with pytest.raises(ValueError, match="duplicate_window_ns"):
        make(Engine, duplicate_window_ns=-1)


# ------------------------------------------------------------------ age of the trigger tick
def test_a_risk_increasing_order_on_an_old_trigger_tick_is_refused(Engine):
    e, sig = make(Engine, max_tick_age_ns=100_000_000), Sig()
    assert e.check(sig(trigger_mono=NOW - 100_000_000), NOW) == R.ACCEPT      # exactly the limit
    assert e.check(sig(trigger_mono=NOW - 100_000_001), NOW) == R.STALE_TRIGGER
    # the case: a 4.4 s-old tick after a strategy stall, the reference itself fresh
    assert e.check(sig(trigger_mono=NOW - 4_400_000_000), NOW) == R.STALE_TRIGGER
    assert e.open_orders(1) == (0.01, 0.0)                  # the refused ones are not open
    assert e.check(sig(trigger_mono=0), NOW) == R.ACCEPT    # no trigger tick: the reference's age


def test_a_reducing_order_on_an_old_trigger_tick_still_goes(Engine):
    e, sig = make(Engine, max_tick_age_ns=100_000_000), Sig()
    e.set_position(1, 0.05)
    assert e.check(sig(side=-1, qty=0.05, trigger_mono=NOW - 10**10), NOW) == R.ACCEPT
    assert e.check(sig(side=-1, qty=0.01, trigger_mono=NOW - 10**10), NOW) == R.STALE_TRIGGER


def test_the_tick_age_limit_is_per_symbol(Engine):
    e, sig = make(Engine, btc_rules(), eth_rules(), max_tick_age_ns=1_000_000_000), Sig()
    assert (e.max_tick_age(1), e.max_tick_age(3)) == (1_000_000_000, 1_000_000_000)
    e.set_max_tick_age(3, 50_000_000)
    old = NOW - 60_000_000
    assert e.check(sig(trigger_mono=old), NOW) == R.ACCEPT
    assert e.check(sig(symbol=3, price=2_500.0, qty=0.01, trigger_mono=old), NOW) \
        == R.STALE_TRIGGER
    for bad in (0, -1, 10**12 + 1, 1.5, True):
        with pytest.raises(ValueError, match="max_tick_age_ns"):
            e.set_max_tick_age(1, bad)
    with pytest.raises(ValueError, match="max_tick_age_ns"):
        make(Engine, max_tick_age_ns=0)


def test_runaway_guard_halts(Engine):
    e, sig = make(Engine, runaway_signals=5, runaway_window_ns=1_000_000_000), Sig()
    live = dict(qty=0.001, ttl_ns=2_000_000_000)           # every signal still within its TTL
    for i in range(5):
        assert e.check(sig(**live), NOW + i) == R.ACCEPT
    assert e.check(sig(**live), NOW + 999_999_999) == R.RUNAWAY          # 6th within the window
    assert e.state == TradingState.HALTED
    assert e.check(sig(**live), NOW + 999_999_999) == R.HALTED           # reported once


def test_runaway_window_is_half_open(Engine):
    e, sig = make(Engine, runaway_signals=5, runaway_window_ns=1_000_000_000), Sig()
    for i in range(5):
        assert e.check(sig(qty=0.001), NOW + i) == R.ACCEPT
    t = NOW + 1_000_000_000                # exactly one window after the oldest: not counted
    assert e.check(sig(qty=0.001, created_mono=t), t) == R.ACCEPT
    assert e.state == TradingState.ACTIVE


def test_a_late_backlog_of_expired_signals_never_trips_the_runaway_guard(Engine):
    # The strategy kept sending while the gateway was stopped: on resume the backlog arrives at
    # once, every signal past its TTL. They are refused as EXPIRED and do not count as runaway.
    e, sig = make(Engine, runaway_signals=5, runaway_window_ns=1_000_000_000), Sig()
    late = NOW + 60_000_000_000                                  # 60 s after they were made
    assert [e.check(sig(qty=0.001, ttl_ns=1_000_000), late + i) for i in range(20)] \
        == [R.EXPIRED] * 20
    assert e.state == TradingState.ACTIVE
    e.set_reference(1, 50_000.0, late)
    fresh = [e.check(sig(qty=0.001, created_mono=late + 100), late + 100 + i) for i in range(6)]
    assert fresh == [R.ACCEPT] * 5 + [R.RUNAWAY]                  # live signals still count
    assert e.state == TradingState.HALTED


def test_the_venue_gate_closes_runs_out_and_paces(Engine):
    e, sig = make(Engine), Sig()
    e.set_venue_gate(NOW + 10, 0, 0, 0)                     # closed after a 429 until NOW + 10
    assert e.check(sig(qty=0.001), NOW) == R.HOST_CLOSED
    assert e.open_orders(1) == (0.0, 0.0)                   # nothing committed
    e.set_venue_gate(0, NOW + 10, 0, 0)                     # the window's budget is used up
    assert e.check(sig(qty=0.001), NOW) == R.RATE_BUDGET
    e.set_venue_gate(0, 0, 1_000, NOW + 10_000)             # one order every 1 µs until +10 µs
    assert e.check(sig(qty=0.001), NOW) == R.ACCEPT
    assert e.check(sig(qty=0.001), NOW + 999) == R.RATE_BUDGET          # too soon
    assert e.check(sig(qty=0.001), NOW + 1_000) == R.ACCEPT
    assert e.check(sig(qty=0.001), NOW + 1_001) == R.RATE_BUDGET
    assert e.check(sig(qty=0.001), NOW + 10_000) == R.ACCEPT             # the window ended
    with pytest.raises(ValueError):
        e.set_venue_gate(0, 0, -1, 0)


# ------------------------------------------------------------------ duplicates and TTL
def test_duplicates(Engine):
    e, sig = make(Engine), Sig()
    assert e.check(sig(seq=5), NOW) == R.ACCEPT
    assert e.check(sig(seq=5), NOW) == R.DUPLICATE
    assert e.check(sig(seq=4), NOW) == R.DUPLICATE
    assert e.check(sig(seq=5, strategy_id=2), NOW) == R.ACCEPT            # another strategy
    assert e.check(sig(seq=1, epoch=1_800_000_000_000_000_000), NOW) == R.ACCEPT  # restarted
    assert e.check(sig(seq=6), NOW) == R.DUPLICATE                        # the old epoch is gone


def test_duplicate_filter_capacity(Engine):
    e, sig = make(Engine), Sig()
    for k in range(16):
        assert e.check(sig(strategy_id=100 + k, qty=0.001), NOW) == R.ACCEPT
    assert e.check(sig(strategy_id=999, qty=0.001), NOW) == R.BAD_ID


@pytest.mark.parametrize("age,expected", [(1_000_000_000, R.ACCEPT), (1_000_000_001, R.EXPIRED),
                                          (-1, R.BAD_TIMESTAMP)])
def test_ttl_boundary(Engine, age, expected):
    assert make(Engine).check(Sig()(created_mono=NOW - age, ttl_ns=1_000_000_000), NOW) == expected


# ------------------------------------------------------------------ malformed values
BAD_FIELDS = [
    (dict(qty=math.nan), R.BAD_QTY), (dict(qty=math.inf), R.BAD_QTY), (dict(qty=-math.inf), R.BAD_QTY),
    (dict(qty=0.0), R.BAD_QTY), (dict(qty=-0.01), R.BAD_QTY), (dict(qty=1e300), R.BAD_QTY),
    (dict(qty=1e-300), R.BAD_QTY), (dict(qty=5e-324), R.BAD_QTY),
    (dict(price=math.nan), R.BAD_PRICE), (dict(price=math.inf), R.BAD_PRICE),
    (dict(price=0.0), R.BAD_PRICE), (dict(price=-50_000.0), R.BAD_PRICE),
    (dict(price=1e300), R.BAD_PRICE), (dict(order_type=2, price=50_000.0), R.BAD_PRICE),
    (dict(side=0), R.BAD_SIDE), (dict(side=2), R.BAD_SIDE), (dict(side=-128), R.BAD_SIDE),
    (dict(order_type=0), R.BAD_ORDER_TYPE), (dict(order_type=4), R.BAD_ORDER_TYPE),
    (dict(order_type=255), R.BAD_ORDER_TYPE),
    (dict(tif=0), R.BAD_TIF), (dict(tif=4), R.BAD_TIF), (dict(order_type=2, tif=1), R.BAD_TIF),
    (dict(symbol=0), R.UNKNOWN_SYMBOL), (dict(symbol=7), R.UNKNOWN_SYMBOL),
    (dict(symbol=2**32 - 1), R.UNKNOWN_SYMBOL), (dict(venue=3), R.UNKNOWN_SYMBOL),
    (dict(version=2), R.BAD_VERSION), (dict(version=0), R.BAD_VERSION),
    (dict(epoch=0), R.BAD_ID), (dict(epoch=-5), R.BAD_ID), (dict(seq=0), R.BAD_ID),
    (dict(seq=2**40), R.BAD_ID), (dict(strategy_id=2**16), R.BAD_ID),
    (dict(ttl_ns=0), R.BAD_TIMESTAMP), (dict(ttl_ns=-1), R.BAD_TIMESTAMP),
    (dict(created_mono=0), R.BAD_TIMESTAMP), (dict(created_mono=-(2**63)), R.BAD_TIMESTAMP),
]


@pytest.mark.parametrize("over,expected", BAD_FIELDS)
def test_malformed_fields_are_reason_codes(Engine, over, expected):
    assert make(Engine).check(Sig()(**over), NOW) == expected


@pytest.mark.parametrize("msg", [b"", b"x" * 79, b"x" * 81, None, 42, "x" * 80, object(),
                                 [0] * 80])
def test_malformed_messages_are_reason_codes(Engine, msg):
    assert make(Engine).check(msg, NOW) == R.BAD_MESSAGE


@pytest.mark.parametrize("now", [None, 1.5, "1", 2**63, -(2**63) - 1])
def test_malformed_clock_is_a_reason_code(Engine, now):
    assert make(Engine).check(Sig()(), now) == R.BAD_MESSAGE


@pytest.mark.parametrize("now", [0, -1, -(2**63)])
def test_non_positive_clock_is_a_bad_timestamp(Engine, now):
    e = make(Engine, runaway_signals=1)
    assert e.check(Sig()(), now) == R.BAD_TIMESTAMP
    assert e.check(Sig()(), now) == R.BAD_TIMESTAMP        # and never counts for the runaway guard
    assert e.set_reference(1, 50_000.0, -1) is False


def test_buffers_other_than_bytes(Engine):
    import numpy as np

    from pipeline.records import SIGNAL_DTYPE
    e, sig = make(Engine), Sig()
    rec = np.frombuffer(sig(), dtype=SIGNAL_DTYPE).copy()
    assert e.check(rec, NOW) == R.ACCEPT                     # a 1-record numpy array
    assert e.check(memoryview(bytearray(sig())), NOW) == R.ACCEPT
    strided = np.frombuffer(sig() * 2, dtype=np.uint8)[::2]              # not contiguous
    assert e.check(strided, NOW) == R.BAD_MESSAGE


@pytest.mark.parametrize("flag,expected", [(False, R.ACCEPT), (True, R.MAX_NOTIONAL)])
def test_market_orders_and_the_max_notional_filter(Engine, flag, expected):
    rules = toy_rules(max_order_qty="5", max_order_notional=1e6,
                      max_notional_applies_to_market=flag)
    e = make(Engine, rules, ref={2: 100.0})
    assert e.check(Sig()(symbol=2, order_type=2, qty=5.0), NOW) == expected     # 500 > 400


# ------------------------------------------------------------------ reference prices from ticks
def _ticks(*rows):
    import numpy as np

    from pipeline.records import TICK_DTYPE
    a = np.zeros(len(rows), dtype=TICK_DTYPE)
    for i, (kind, symbol, venue, price, mono) in enumerate(rows):
        a[i]["kind"], a[i]["symbol"], a[i]["venue"] = kind, symbol, venue
        a[i]["price"], a[i]["mono_ts"] = price, mono
    return a


def test_apply_ticks_mid_then_trade_fallback_and_invalidation(Engine):
    from pipeline.records import Kind
    e = Engine(**LIMITS)
    e.set_instrument(btc_rules())
    e.set_instrument(eth_rules())
    sig = Sig()
    t = T0
    n = e.apply_ticks(_ticks((Kind.TRADE, 1, BINANCE, 50_010.0, t),        # no BBO yet: last trade
                             (Kind.BID, 9, BINANCE, 1.0, t),               # unknown symbol
                             (Kind.BID, 1, 3, 1.0, t)))                    # other venue
    assert n == 1 and e.snapshot()[4][0][4:6] == (50_010.0, T0)
    e.apply_ticks(_ticks((Kind.BID, 1, BINANCE, 49_990.0, t + 1),
                         (Kind.ASK, 1, BINANCE, 50_010.0, t + 2),
                         (Kind.TRADE, 1, BINANCE, 60_000.0, t + 3),        # BBO known: ignored
                         (Kind.ASK, 1, BINANCE, float("nan"), t + 4)))     # bad price: ignored
    assert e.snapshot()[4][0][4:6] == (50_000.0, T0 + 2)
    assert e.check(sig(price=50_500.0), NOW) == R.ACCEPT                  # collar around 50000
    e.apply_ticks(_ticks((Kind.RESYNC_START, 1, BINANCE, 0.0, t + 5)))
    assert e.check(sig(), NOW) == R.STALE_REFERENCE                       # until fresh data
    e.apply_ticks(_ticks((Kind.BID, 1, BINANCE, 49_990.0, NOW), (Kind.ASK, 1, BINANCE, 50_010.0, NOW)))
    assert e.check(sig(), NOW) == R.ACCEPT
    e.apply_ticks(_ticks((Kind.GAP, 0, 0, 0.0, 0)).tobytes())             # ring GAP: everything
    assert e.check(sig(), NOW) == R.STALE_REFERENCE
    assert e.check(sig(symbol=3, price=2_500.0, qty=0.01), NOW) == R.NO_REFERENCE
    with pytest.raises(ValueError):
        e.apply_ticks(b"x" * 65)


# ------------------------------------------------------------------ self-trade prevention
def test_an_order_crossing_our_own_resting_order_is_refused(Engine):
    # the case: a SELL crossing our own resting BUY was sent and filled
    e, sig = make(Engine, self_trade=True), Sig()
    assert e.check(sig(side=1, price=50_000.0), NOW) == R.ACCEPT          # rests (GTC)
    assert e.own_quotes(1) == (50_000.0, 0.0)
    assert e.check(sig(side=-1, price=50_000.0), NOW) == R.SELF_TRADE     # at our bid
    assert e.check(sig(side=-1, price=49_990.0), NOW) == R.SELF_TRADE     # through it
    assert e.check(sig(side=-1, order_type=2), NOW) == R.SELF_TRADE       # MARKET: may reach it
    assert e.check(sig(side=-1, price=50_000.01), NOW) == R.ACCEPT        # above: no cross
    assert e.own_quotes(1) == (50_000.0, 50_000.01)
    assert e.check(sig(side=1, price=50_000.01), NOW) == R.SELF_TRADE     # BUY at our ask
    assert e.check(sig(side=1, price=50_000.0), NOW) == R.ACCEPT
    assert e.open_orders(1) == (0.02, 0.01)                               # refusals not open


def test_orders_that_do_not_rest_do_not_become_own_quotes(Engine):
    e, sig = make(Engine, self_trade=True), Sig()
    assert e.check(sig(side=1, price=50_000.0, tif=2), NOW) == R.ACCEPT    # IOC
    assert e.check(sig(side=1, order_type=2), NOW) == R.ACCEPT             # MARKET
    assert e.own_quotes(1) == (0.0, 0.0)
    assert e.check(sig(side=-1, price=49_990.0), NOW) == R.ACCEPT
    assert e.check(sig(side=1, price=50_005.0, order_type=3), NOW) == R.SELF_TRADE   # maker
    assert e.probe(sig(side=1, price=49_800.0, order_type=3), NOW) == R.ACCEPT
    assert e.own_quotes(1) == (0.0, 49_990.0)                              # probe: undone


def test_the_gateway_sets_own_quotes_from_its_book_and_off_means_off(Engine):
    e, sig = make(Engine, self_trade=True), Sig()
    assert e.check(sig(side=1, price=50_000.0), NOW) == R.ACCEPT
    e.set_own_quotes(1, 0.0, 0.0)                          # the resting BUY ended (book of record)
    assert e.check(sig(side=-1, price=49_990.0), NOW) == R.ACCEPT
    with pytest.raises(ValueError):
        e.set_own_quotes(1, -1.0, 0.0)
    off, sig = make(Engine), Sig()                          # self_trade=False (the default)
    assert off.check(sig(side=1, price=50_000.0), NOW) == R.ACCEPT
    assert off.check(sig(side=-1, price=49_990.0), NOW) == R.ACCEPT


def test_sync_own_quotes_takes_the_best_resting_prices_of_open_orders(Engine):
    from pipeline.gateway.orders import Order, OrderState
    from pipeline.gateway.risk import sync_own_quotes
    e = make(Engine, self_trade=True)
    orders = [Order("a", "BTCUSDT", 1, 1, 1, 1, 0.01, 49_000.0, OrderState.ACK),
              Order("b", "BTCUSDT", 1, 1, 3, 0, 0.01, 49_500.0, OrderState.PARTIALLY_FILLED),
              Order("c", "BTCUSDT", 1, 1, 1, 1, 0.01, 49_900.0, OrderState.CANCELED),   # ended
              Order("d", "BTCUSDT", 1, 1, 1, 2, 0.01, 49_950.0, OrderState.ACK),        # IOC
              Order("e", "BTCUSDT", 1, -1, 1, 1, 0.01, 51_000.0, OrderState.NEW),
              Order("f", "BTCUSDT", 1, -1, 1, 1, 0.01, 50_500.0, OrderState.UNKNOWN),
              Order("g", "ETHUSDT", 3, -1, 1, 1, 0.01, 2_000.0, OrderState.ACK)]        # other
    sync_own_quotes(e, orders, 1)
    assert e.own_quotes(1) == (49_500.0, 50_500.0)


# ------------------------------------------------------------------ MARKET protection price
def test_a_market_order_is_refused_on_a_stale_reference_even_when_reducing(Engine):
    e, sig = make(Engine), Sig()
    e.set_position(1, 0.5)
    now = T0 + 60_000_000_000
    assert e.check(sig(side=-1, created_mono=now - 1), now) == R.ACCEPT          # LIMIT reduces
    assert e.check(sig(side=-1, order_type=2, created_mono=now - 1), now) == R.STALE_REFERENCE


def test_a_market_order_is_refused_when_the_price_it_would_take_is_beyond_the_collar(Engine):
    from pipeline.records import Kind
    e, sig = make(Engine), Sig()                                  # collar 100 bps
    e.apply_ticks(_ticks((Kind.BID, 1, BINANCE, 49_000.0, NOW), (Kind.ASK, 1, BINANCE, 51_500.0, NOW)))
    assert e.check(sig(side=1, order_type=2), NOW) == R.PRICE_COLLAR   # ask 2.5 % above the mid
    assert e.check(sig(side=-1, order_type=2), NOW) == R.PRICE_COLLAR  # bid 2.5 % below it
    e.apply_ticks(_ticks((Kind.BID, 1, BINANCE, 49_990.0, NOW), (Kind.ASK, 1, BINANCE, 50_010.0, NOW)))
    assert e.check(sig(side=1, order_type=2), NOW) == R.ACCEPT
    assert e.check(sig(side=-1, order_type=2), NOW) == R.ACCEPT
