import numpy as np

from pipeline.telemetry import latency


def test_recorder_percentiles_and_file_round_trip(tmp_path):
    r = latency.HopRecorder(["a"])
    r.record_many("a", np.arange(1, 10_001))          # 1..10,000 ns
    r.record("b", 5_000)
    s = r.summary("a")
    assert s["count"] == 10_000
    assert abs(s["p50"] - 5_000) <= 5 and abs(s["p99"] - 9_900) <= 10 and s["max"] >= 10_000
    r.dump(tmp_path / "x.hdr.json")
    r2 = latency.HopRecorder()
    r2.record("a", 20_000)
    r2.dump(tmp_path / "y.hdr.json")
    merged = latency.load([tmp_path / "x.hdr.json", tmp_path / "y.hdr.json"])
    assert merged["a"].get_total_count() == 10_001
    assert merged["b"].get_total_count() == 1
    assert latency.summarize(merged["a"])["max"] >= 20_000


def test_out_of_range_values_are_clamped_not_lost():
    r = latency.HopRecorder()
    r.record("x", -5)
    r.record("x", 10**15)
    assert r.summary("x")["count"] == 2


def test_live_quantiles_come_from_the_recent_window():
    from pipeline.telemetry.latency import RECENT, HopRecorder
    h = HopRecorder(["a"])
    assert h.live("a") == {} and h.live("missing") == {}
    for v in range(1, 101):
        h.record("a", v * 1000)
    live = h.live("a")
    assert (live["count"], live["window"], live["p50"], live["p99"], live["max"]) == \
        (100, 100, 50_000, 99_000, 100_000)
    for _ in range(RECENT):                      # the window moves on: old values leave it
        h.record("a", 7)
    live = h.live("a")
    assert live["window"] == RECENT and live["p99"] == 7 and live["max"] == 7
    assert h.hist["a"].get_total_count() == 100 + RECENT     # the HdrHistogram keeps them all
    rec = h.recorder("b")
    rec(5)
    assert h.live("b")["p50"] == 5 and h.hist["b"].get_total_count() == 1
