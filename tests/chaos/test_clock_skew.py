"""The gateway (its own process) against the simulator with our clock 1.5 s ahead of the venue's
(the simulator's clock_skew fault puts its serverTime, and the recvWindow check, behind real
time). The venue refuses a timestamp at or past serverTime + 1000 ms (-1021); the simulator notes
every signed request's timestamp against its own clock, so the test sees what went out.

Default gateway config: max_clock_offset_ms = 1000, so a 1.5 s offset counts as a skew strike at
each sync; three in a row would HALT (not reached here: one sync at start, one on the -1021)."""
from __future__ import annotations

import pytest

from pipeline.sim.testing import start_sim
from tests.integration.gateway_harness import BUY, SIM_DEFAULTS, GatewayProc, StrategySide

pytestmark = pytest.mark.timeout(90)


def orders(clock: dict) -> list[list]:
    return [r for r in clock["recent"] if r[0] == "/api/v3/order"]


def test_a_clock_1_5_s_ahead_resyncs_retries_once_and_never_stamps_past_server_time(tmp_path):
    sim = start_sim(tmp_path, **SIM_DEFAULTS)
    gw = None
    try:
        sim.fault("clock_skew", behind_ms=1500)          # ahead from the start
        gw = GatewayProc(tmp_path, sim).start()
        with StrategySide(gw.channel) as st:
            for n in (1, 2):
                st.send(side=BUY, qty=0.001)
                gw.wait(lambda s: s["orders"].get("FILLED") == n, what=f"order {n} filled")
            first = sim.state()["clock"]
            # the start sync measured the offset: nothing was stamped ahead
            assert first["ahead_rejected"] == 0 and first["behind_rejected"] == 0
            assert [v for _, _, v in orders(first)] == ["ok", "ok"]
            assert first["max_ahead_accepted_ms"] < 1000
            # then our clock steps another 1.5 s ahead while running (an NTP step, a VM resume)
            sim.fault("clock_skew", behind_ms=3000)
            for n in (3, 4):
                st.send(side=BUY, qty=0.001)
                s = gw.wait(lambda s: s["orders"].get("FILLED") == n, what=f"order {n} filled")
        clock = sim.state()["clock"]
        journal = gw.journal()
    finally:
        if gw is not None:
            gw.stop()
        sim.stop()
    assert s["trading"] == "ACTIVE"
    # order 3: stamped on the old offset → -1021 (ahead), resync, the one retry inside the window;
    # order 4: stamped on the new offset
    assert [v for _, _, v in orders(clock)] == ["ok", "ok", "ahead", "ok", "ok"], clock["recent"]
    ahead = [a for _, a, v in orders(clock)]
    assert 1000 <= ahead[2] < 2500                        # the 1.5 s step, seen once
    assert all(a < 1000 for a, v in zip(ahead, orders(clock)) if v[2] == "ok")
    assert clock["ahead_rejected"] == 1                   # no other signed request went ahead
    retries = [r for r in journal if r.get("k") == "clock" and r.get("why") == "-1021"]
    assert len(retries) == 1 and abs(retries[0]["offset_ms"] + 3000) < 500
