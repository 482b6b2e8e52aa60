"""The venue limits REST weight per IP, so a 429/418 told to one process of a run closes the host
to all of them (pipeline/venueclosure.py): the collector's depth snapshots and the gateway share
one record in the run directory. Real simulator, real collector, real gateway process.

What the chaos soak showed before: the gateway got a 429 (Retry-After 10 s), the collector's next
depth snapshot 4 s later earned the IP a 120 s ban (418), and every gateway start during that ban
failed ("cannot measure the venue clock ... is the venue reachable?", exit 3) or outlasted the
soak's start deadline."""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from pipeline.collector.collector import Collector
from pipeline.config import CollectorConfig
from pipeline.gateway.ratelimit import HostBlocked, HostGate
from pipeline.records import Venue
from pipeline.sim.testing import start_sim
from pipeline.venueclosure import SharedClosure
from pipeline.venues.binance.market import BinanceAdapter
from tests.integration.gateway_harness import SIM_DEFAULTS, GatewayProc

pytestmark = pytest.mark.timeout(90)


def host_of(sim) -> str:
    return urlsplit(sim.rest_url).netloc


def rest_requests(sim) -> int:
    return sim.state()["rest_requests"]


def depth_collector(sim) -> Collector:
    cfg = CollectorConfig(venue_id="SIM", ws_url=sim.ws_url, rest_url=sim.rest_url,
                          symbols=["BTCUSDT"], channels=["depth@100ms"], stale_after_s=30.0,
                          backoff_initial_s=0.05, backoff_max_s=0.5)
    return Collector(cfg, lambda recs: None, adapter=BinanceAdapter({"BTCUSDT": 1}, int(Venue.SIM)))


def step_until(col: Collector, cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout} s: {what}; counters {dict(col.counters)}")
        col.step(0.02)


def test_a_closure_told_to_another_process_holds_back_the_collectors_snapshots(tmp_path,
                                                                               monkeypatch):
    sim = start_sim(tmp_path / "sim", rate=50.0, ping_interval_s=20.0, pong_timeout_s=60.0)
    try:
        monkeypatch.setenv("PIPELINE_RUN_DIR", str(tmp_path))
        until = time.time() + 2.5
        SharedClosure(host_of(sim), tmp_path).record(429, until)     # as the gateway would
        n0 = rest_requests(sim)
        with depth_collector(sim) as col:
            step_until(col, lambda: time.time() >= until - 0.3, 10, "the closure nearly over")
            assert col.counters["snapshot_requests"] == 0 and rest_requests(sim) == n0
            assert col.counters["snapshot_host_closed"] == 1
            step_until(col, lambda: col.counters["snapshot_requests"] >= 1, 20, "a snapshot")
            assert time.time() >= until
            step_until(col, lambda: col.feed.counters["book_synced"] >= 1, 20, "the book synced")
        assert rest_requests(sim) > n0
    finally:
        sim.stop()


def test_a_429_told_to_the_collector_closes_the_host_to_the_run(tmp_path, monkeypatch):
    sim = start_sim(tmp_path / "sim", rate=50.0, ping_interval_s=20.0, pong_timeout_s=60.0)
    try:
        monkeypatch.setenv("PIPELINE_RUN_DIR", str(tmp_path))
        sim.fault("force_429", count=1)          # the next request: 429, Retry-After 10 s
        with depth_collector(sim) as col:
            step_until(col, lambda: col.counters["snapshot_rate_limited"] >= 1, 20, "the 429")
        until, status = SharedClosure(host_of(sim), tmp_path).until()
        assert status == 429 and 7.0 < until - time.time() <= 10.5
        # the gateway's gate (another process in a run) takes it over: nothing is sent
        gate = HostGate(host_of(sim), weight_limit_1m=6000, order_limit_10s=100,
                        shared=SharedClosure(host_of(sim), tmp_path))
        assert gate.poll_shared() > 7.0
        with pytest.raises(HostBlocked):
            gate.check_open()
    finally:
        sim.stop()


def test_a_gateway_starting_inside_the_runs_closure_waits_it_out_asking_the_venue_nothing(
        tmp_path):
    sim = start_sim(tmp_path / "sim", **SIM_DEFAULTS)
    gw = GatewayProc(tmp_path, sim, start_timeout_s=2.0)     # PIPELINE_RUN_DIR = tmp_path
    try:
        # the collector was banned (418) for 4 s: longer than the gateway's start_timeout_s
        until = time.time() + 4.0
        SharedClosure(host_of(sim), tmp_path).record(418, until)
        n0 = rest_requests(sim)
        gw.spawn()
        while time.time() < until - 0.5:
            assert gw.proc.poll() is None, gw.stderr()[-2000:]
            time.sleep(0.1)
        assert rest_requests(sim) == n0, "the gateway asked the venue inside the closure"
        deadline = time.monotonic() + 40
        while not gw.ready_path.exists():         # was: exit 3, "is the venue reachable?"
            assert gw.proc.poll() is None, gw.stderr()[-2000:]
            assert time.monotonic() < deadline, "the gateway never became ready"
            time.sleep(0.05)
        assert time.time() >= until and rest_requests(sim) > n0
        assert "closed to this run (HTTP 418" in gw.stderr()
        assert gw.stop() == 0
    finally:
        gw.kill()
        sim.stop()
