"""Pytest fixtures for tests that need the exchange simulator as a real process.

Use in a test module with `from sim_fixtures import sim, sim_factory  # noqa: F401` (tests/ is on
sys.path through tests/conftest.py).

- `sim`: a simulator with defaults suitable for tests (fast pings, tape paused, high limits),
  started once per module.
- `sim_factory(**overrides)`: start one with your own [sim] keys; all are stopped at teardown.
"""
from __future__ import annotations

import pytest

from pipeline.sim.testing import SimProcess, start_sim

TEST_DEFAULTS = dict(rate=200, paused=True, ping_interval_s=20.0, pong_timeout_s=60.0,
                     weight_limit_1m=100_000, order_limit_10s=10_000)


@pytest.fixture
def sim_factory(tmp_path):
    started: list[SimProcess] = []

    def make(**overrides) -> SimProcess:
        cfg = {**TEST_DEFAULTS, **overrides}
        s = start_sim(tmp_path, **cfg)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = start_sim(tmp_path_factory.mktemp("sim"), **TEST_DEFAULTS)
    yield s
    s.stop()
