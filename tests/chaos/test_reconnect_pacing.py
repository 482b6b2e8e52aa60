"""The collector against the simulator (a real subprocess, real WebSockets; the collector runs
in this process, stepped by the test): a reconnect with 200 symbols never sends the venue more than
5 messages in any second (Binance's limit on incoming messages: SUBSCRIBEs and pongs alike; the
simulator disconnects above it, as Binance does), and a reconnect storm (the simulator cutting
every connection right after it opens) never exceeds the venue's connection-attempt cap.

Binance allows 300 connection attempts per 5 minutes per IP; the storm test runs the same rule
scaled to 20 attempts per 4 s ([collector] connect_limit / connect_window_s) so it finishes in
seconds. Nothing here decides by sleeping: the tests step the collector until a condition holds
(with a deadline), and the properties are caps that hold however slow the box is."""
from __future__ import annotations

import time

import pytest

from pipeline.collector.collector import Collector
from pipeline.config import CollectorConfig
from pipeline.records import Venue
from pipeline.sim.testing import start_sim
from pipeline.venues.binance import market as binance
from pipeline.venues.binance.market import BinanceAdapter

pytestmark = pytest.mark.timeout(120)
SYMS200 = [f"S{i:03d}USDT" for i in range(200)]


def step_until(col: Collector, cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout} s: {what}; counters {dict(col.counters)}")
        col.step(0.02)


def subscribed(sim) -> list[int]:
    return [c["streams"] for c in sim.state()["md_conns"]]


def max_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window_s:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_a_reconnect_with_200_symbols_never_sends_more_than_5_messages_a_second(tmp_path):
    # the simulator pings every 0.2 s: each pong is a message too, queued behind the SUBSCRIBEs
    # (a token bucket of 5 would send 3 SUBSCRIBEs and 2 pongs at once, then refill: 7 in a second).
    # The simulator counts on its arrival stamps: without send_guard_s the sixth message, sent
    # exactly 1 s after the first, arrived 0.8 ms less delayed and made six in 0.9997 s (a fourth
    # disconnect, intermittent under load)
    sim = start_sim(tmp_path, rate=50.0, ping_interval_s=0.2, pong_timeout_s=60.0)
    try:
        adapter = BinanceAdapter({s: i + 1 for i, s in enumerate(SYMS200)}, int(Venue.SIM))
        cfg = CollectorConfig(venue_id="SIM", ws_url=sim.ws_url, rest_url=sim.rest_url,
                              symbols=SYMS200, channels=["trade", "aggTrade", "bookTicker"],
                              url_streams_max=0, backoff_initial_s=0.05, backoff_max_s=0.5,
                              stale_after_s=30.0)
        with Collector(cfg, lambda recs: None, adapter=adapter) as col:
            assert len(col.groups) == 1                   # 600 streams on one connection
            step_until(col, lambda: subscribed(sim) == [600], 30, "600 streams subscribed")
            for k in range(1, 4):                         # three reconnects, each resubscribing
                sim.fault("drop", target="md")
                step_until(col, lambda: col.counters["reconnects"] >= k
                           and subscribed(sim) == [600], 30, f"reconnect {k} resubscribed")
            pongs = col.counters["pongs"]
            step_until(col, lambda: col.counters["pongs"] >= pongs + 10, 30, "pongs flowing")
        md = sim.state()["md_stats"]
    finally:
        sim.stop()
    assert col.counters["sent_text"] == 4 * 3             # 3 SUBSCRIBEs of 200 per connection
    assert md["rate_disconnects"] == 0
    assert 5 <= md["max_incoming_1s"] <= 5, md            # the limit reached, never passed
    assert col.counters["disconnects"] == 3               # only the three drops


def test_a_reconnect_storm_never_exceeds_the_connection_attempt_cap(tmp_path):
    assert (binance.RULES.max_connects, binance.RULES.connect_window_s) == (300, 300.0)
    sim = start_sim(tmp_path, rate=200.0, ping_interval_s=20.0, pong_timeout_s=60.0)
    try:
        cfg = dict(venue_id="SIM", ws_url=sim.ws_url, rest_url=sim.rest_url,
                   symbols=["BTCUSDT"], channels=["trade"], stale_after_s=30.0)
        adapter = BinanceAdapter({"BTCUSDT": 1}, int(Venue.SIM))
        # the venue's own cap is what a default collector uses
        with Collector(CollectorConfig(**cfg), lambda r: None, adapter=adapter) as col:
            assert (col.connect_window.limit, col.connect_window.window_s) == (300, 300.0)
        # a violent storm: every connection cut 20 ms after it opens (its first trades delivered,
        # so the back-off resets each time), back-off 10-50 ms
        sim.fault("flap", seconds=120, after_ms=20)
        scaled = CollectorConfig(**cfg, backoff_initial_s=0.01, backoff_max_s=0.05,
                                 connect_limit=20, connect_window_s=4.0)
        t0 = time.monotonic()
        with Collector(scaled, lambda r: None, adapter=adapter) as col:
            # two full windows of storm, and the cap hit in both
            step_until(col, lambda: col.counters["connect_attempts"] >= 41, 60,
                       "three windows' worth of attempts")
        elapsed = time.monotonic() - t0
        md = sim.state()["md_stats"]
    finally:
        sim.stop()
    attempts = col.counters["connect_attempts"]
    assert attempts == 41 and col.counters["connects_paced"] > 0
    assert elapsed >= 8.0                                  # 41 attempts need two full windows
    assert md["connect_attempts"] == attempts              # every one reached the venue
    # at the venue, in any window: at most the cap (the window shortened by 0.5 s for the jitter
    # of the handshake between the collector's count and the venue's arrival stamp)
    assert max_in_window(md["connect_times"][-attempts:], 3.5) <= 20
