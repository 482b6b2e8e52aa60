"""The affinity tuner ranks every placement on one hop and one statistic, and only on a p99 that
enough samples carry (pipeline/launcher/profile.py: choose_ranking, next_chunk, extend)."""
import numpy as np

from pipeline.launcher import profile
from pipeline.launcher.affinity import Placement
from pipeline.telemetry import latency


def hist(values_ns):
    h = latency.new_histogram()
    for v in values_ns:
        h.record_value(int(v))
    return h


def run(label, stop="duration", **hops):
    pl = Placement({"strategy": 0}, {"strategy": "blocking"})
    return profile.ProfileRun(label, pl, {k: hist(v) for k, v in hops.items()},
                              {"stop_reason": stop, "seconds": 8.0})


def test_few_orders_rank_on_p50_and_say_so():
    # 12 and 14 orders: a p99 of these is the maximum, so the tuner must not rank on it
    a = run("a", tick_to_order=[30_000] * 11 + [900_000], ring_to_strategy=[5_000] * 5000)
    b = run("b", tick_to_order=[40_000] * 14, ring_to_strategy=[5_000] * 5000)
    r = profile.choose_ranking([a, b])
    assert (r.hop, r.stat, r.min_count) == ("tick_to_order", "p50", 12)
    assert any("p50, not p99" in n and "12" in n for n in r.notes)
    assert any(n.startswith("WARNING") for n in r.notes)          # 12 < MIN_P50_SAMPLES
    # on p50, a beats b (30 vs 40 us) although a's single outlier gives it the worse p99
    assert a.rank_key(r.hop, r.stat) < b.rank_key(r.hop, r.stat)
    assert a.rank_key("tick_to_order", "p99") > b.rank_key("tick_to_order", "p99")


def test_enough_samples_rank_on_p99_without_notes():
    rng = np.random.default_rng(1)
    a = run("a", tick_to_order=rng.integers(20_000, 60_000, 1500))
    b = run("b", tick_to_order=rng.integers(20_000, 60_000, 1200))
    r = profile.choose_ranking([a, b])
    assert (r.hop, r.stat, r.min_count, r.notes) == ("tick_to_order", "p99", 1200, [])


def test_a_placement_without_orders_moves_every_placement_to_the_strategy_hop():
    a = run("a", tick_to_order=[30_000] * 2000, ring_to_strategy=[4_000] * 3000)
    b = run("b", ring_to_strategy=[6_000] * 2500)
    r = profile.choose_ranking([a, b])
    assert (r.hop, r.stat) == ("ring_to_strategy", "p99")        # one hop for all, never a mix
    assert any("no order" in n for n in r.notes)


def test_failed_runs_are_not_ranked_and_rank_last():
    a = run("a", tick_to_order=[30_000] * 20)
    dead = run("dead", stop="role strategy died", tick_to_order=[1_000] * 5)
    r = profile.choose_ranking([a, dead])
    assert r.min_count == 20                                      # the failed run's 5 ignored
    assert dead.rank_key(r.hop, r.stat) == float("inf")
    assert profile.choose_ranking([dead]) is None


def test_next_chunk_runs_on_until_enough_samples_within_the_budget():
    # 2 orders/s seen over 8 s: 1,000 samples need ~492 s more; the budget allows 52
    assert profile.next_chunk(16, 8.0, 1000, 8.0, 60.0) == 52.0
    # 100 samples/s: ~9.9 s more
    assert abs(profile.next_chunk(800, 8.0, 1000, 1.0, 60.0) - 2.2) < 1e-9
    assert profile.next_chunk(800, 8.0, 1000, 8.0, 60.0) == 8.0   # at least one step
    assert profile.next_chunk(1000, 8.0, 1000, 8.0, 60.0) == 0.0  # enough
    assert profile.next_chunk(5, 60.0, 1000, 8.0, 60.0) == 0.0    # budget spent
    assert profile.next_chunk(0, 8.0, 1000, 8.0, 60.0) == 0.0     # no rate to go on


def test_extend_merges_the_histograms_of_a_further_run():
    a = run("a", tick_to_order=[30_000] * 10)
    a.extend(run("a2", tick_to_order=[50_000] * 30, ring_to_strategy=[1_000] * 7))
    assert a.count("tick_to_order") == 40 and a.count("ring_to_strategy") == 7
    assert a.summary["seconds"] == 16.0 and a.ok
    a.extend(run("a3", stop="role gateway died"))
    assert not a.ok
