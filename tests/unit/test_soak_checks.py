"""The soak's end-of-run checks catch what they claim to: an order the journal cannot trace, a
status or fill the venue disagrees with, a position that differs, a torn tick record, and memory
growth after the warm-up."""
import numpy as np

from pipeline.records import TICK_DTYPE, Kind, Venue
from pipeline.soak import checks

BASE = {"BTCUSDT": "BTC"}


def journal(cid="c1", state="FILLED", qty=0.001, accepted=True, side=1, commission=0.000001):
    recs = []
    if accepted:
        recs.append({"k": "signal", "decision": "accept", "cid": cid})
    recs += [{"k": "order", "cid": cid, "symbol": "BTCUSDT"},
             {"k": "fill", "cid": cid, "symbol": "BTCUSDT", "trade_id": 7, "side": side,
              "qty": qty, "commission": commission, "commission_asset": "BTC"},
             # the same trade reported twice (order reply and user stream) counts once
             {"k": "fill", "cid": cid, "symbol": "BTCUSDT", "trade_id": 7, "side": side,
              "qty": qty, "commission": commission, "commission_asset": "BTC"},
             {"k": "state", "cid": cid, "to": state}]
    return checks.JournalView.of(recs, BASE)


def venue(cid="c1", status="FILLED", executed="0.00100000"):
    return [{"clientOrderId": cid, "status": status, "executedQty": executed}]


def test_a_venue_order_that_agrees_with_the_journal_passes_every_check():
    v = journal()
    assert checks.trace_orders(venue(), v) == []
    assert checks.compare_orders(venue(), v, [], []) == []
    assert checks.compare_positions({"BTCUSDT": 0.000999}, v) == []
    assert v.fills == 1


def test_an_order_without_an_accepted_signal_or_unknown_to_the_journal_is_untraced():
    assert checks.trace_orders(venue(), journal(accepted=False)) == ["c1"]
    assert checks.trace_orders(venue("other"), journal()) == ["other"]


def test_a_status_fill_open_order_or_position_that_differs_is_a_mismatch():
    v = journal()
    assert checks.compare_orders(venue(status="CANCELED"), v, [], [])
    assert checks.compare_orders(venue(executed="0.00200000"), v, [], [])
    assert checks.compare_orders([], v, [], [])                       # filled, venue never saw it
    open_ = [{"clientOrderId": "c9"}]
    assert checks.compare_orders(venue(), v, open_, []) == ["open orders: venue ['c9'], local []"]
    assert checks.compare_positions({"BTCUSDT": 0.001}, v)             # fee not taken off


def test_rss_growth_is_measured_from_the_warm_up_age_on():
    s = {1: [(10, 100), (61, 200), (120, 220)], 2: [(5, 100), (30, 500)]}
    g = checks.rss_growth_pct(s, warmup_s=60)
    assert g == {1: 10.0}


def ticks(n, first=0, t0=1_000):
    a = np.zeros(n, dtype=TICK_DTYPE)
    a["seq"] = np.arange(first, first + n)
    a["kind"], a["venue"], a["symbol"] = Kind.TRADE, Venue.SIM, 1
    a["price"], a["qty"] = 100.0, 0.5
    a["local_ts"], a["mono_ts"] = t0 + 10, np.arange(first, first + n) + 1
    return a


def test_whole_tick_records_pass_and_a_torn_or_misplaced_one_is_counted():
    v = checks.TickVerifier(venue=int(Venue.SIM), symbols=frozenset({1}), t0_ns=1_000)
    v.check(ticks(10), now_ns=10_000)
    assert (v.torn, v.received) == (0, 10)
    bad = ticks(4, first=10)
    bad["price"][1] = np.nan            # half a record: a NaN price
    bad["symbol"][2] = 999              # an instrument the run does not have
    v.check(bad, now_ns=10_000)
    assert v.torn == 2 and len(v.examples) == 2
    skipped = ticks(2, first=20)        # sequences jump without a GAP record
    v.check(skipped, now_ns=10_000)
    assert v.torn == 3


def test_a_gap_record_explains_a_sequence_jump():
    v = checks.TickVerifier(venue=int(Venue.SIM), symbols=frozenset({1}), t0_ns=1_000)
    v.check(ticks(3), now_ns=10_000)
    gap = np.zeros(1, dtype=TICK_DTYPE)
    gap["seq"], gap["kind"], gap["id"] = 3, Kind.GAP, 50
    v.check(np.concatenate([gap, ticks(2, first=53)]), now_ns=10_000)
    assert (v.torn, v.gaps, v.received) == (0, 1, 5)
