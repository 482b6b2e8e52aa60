"""The collector's operator log, from a real collector process against the simulator: connect,
book resync start/done per symbol, a dropped connection (DISCONNECTED, STALE) and the reconnect,
one line each, as JSON lines in [logging].dir."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from pipeline.bus.ring import TickRing
from pipeline.records import Kind

pytestmark = pytest.mark.timeout(90)
sim_testing = pytest.importorskip("pipeline.sim.testing")


def test_connect_resync_drop_and_reconnect_are_logged_one_line_each(tmp_path, shm_name):
    sim = sim_testing.start_sim(tmp_path, symbols=["BTCUSDT", "ETHUSDT"], rate=400.0,
                                ping_interval_s=0.4, pong_timeout_s=30.0)
    logs = tmp_path / "logs"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'''
[collector]
venue_id = "SIM"
ws_url = "{sim.ws_url}"
rest_url = "{sim.rest_url}"
symbols = ["BTCUSDT", "ETHUSDT"]
channels = ["trade", "bookTicker", "depth@100ms"]
backoff_initial_s = 0.05
backoff_max_s = 0.5
[logging]
dir = "{logs}"
format = "json"
''')
    ring = TickRing.create(shm_name, 1 << 18)
    reader = ring.reader(wait="sleeping", start="oldest", max_batch=1 << 16)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.collector", "--config", str(cfg),
                             "--ring", shm_name, "--seconds", "60"],
                            stderr=subprocess.PIPE, text=True)
    seen: list[np.ndarray] = []

    def pump_until(cond, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            b = reader.poll()
            if len(b):
                seen.append(b)
                if cond(np.concatenate(seen)):
                    return
            else:
                time.sleep(0.01)
        raise TimeoutError(what)

    try:
        pump_until(lambda r: (r["kind"] == Kind.RESYNC_DONE).sum() >= 2, 30, "books synced")
        n0 = sum(len(b) for b in seen)
        sim.fault("drop", target="md")

        def back(r) -> bool:
            st = np.flatnonzero(r["kind"][n0:] == Kind.STALE)
            return bool(len(st)) and (r["kind"][n0 + st[0]:] == Kind.TRADE).any()
        pump_until(back, 20, "trades again after the drop")
    finally:
        proc.terminate()
        proc.wait(20)
        reader = None
        ring.close()
        sim.stop()
    recs = [json.loads(line) for line in (logs / "collector.log").read_text().splitlines()]
    ev = [r for r in recs if r["logger"] == "pipeline.events"]
    names = [r["event"] for r in ev]
    assert names.count("CONNECTED") == 1 and names.count("RECONNECTED") >= 1, names
    assert names.index("CONNECTED") < names.index("DISCONNECTED") < names.index("STALE") \
        < names.index("RECONNECTED")
    done = {r["symbol"] for r in ev if r["event"] == "RESYNC_DONE"}
    assert done == {"BTCUSDT", "ETHUSDT"}
    assert {r["symbol"] for r in ev if r["event"] == "RESYNC_START"} == {"BTCUSDT", "ETHUSDT"}
    assert all(r["level"] in ("INFO", "WARNING") and r["role"] == "collector" for r in ev)
    recon = next(r for r in ev if r["event"] == "RECONNECTED")
    assert recon["reconnects"] >= 1 and recon["url"].startswith(sim.ws_url)
