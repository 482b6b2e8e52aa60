"""Pytest fixtures for the gateway's integration tests; the process helpers live in
pipeline.gateway.testing (also used by scripts/bench_gateway*.py)."""
from __future__ import annotations

import pytest

from pipeline.gateway.testing import (BTC, BUY, SELL, SIM_DEFAULTS, GatewayProc,  # noqa: F401
                                      StrategySide, cid_of, gateway_toml)


@pytest.fixture
def sim(tmp_path):
    from pipeline.sim.testing import start_sim
    s = start_sim(tmp_path, **SIM_DEFAULTS)
    yield s
    s.stop()


@pytest.fixture
def gw_factory(tmp_path, sim):
    made: list[GatewayProc] = []

    def make(**kw) -> GatewayProc:
        g = GatewayProc(tmp_path, kw.pop("sim", sim), **kw)
        made.append(g)
        return g

    yield make
    for g in made:
        g.stop()


def acct(sim) -> dict:
    return next(iter(sim.state()["accounts"].values()))


