"""The launcher's SIGTERM never kills a role (exit -15), whenever it arrives.

- Late: the launcher SIGTERMs every role still alive in its stop order, and a role that stopped
  on its own first (the shutdown word; the strategy when its ring writer closed) may be in
  interpreter finalisation then, which puts the default action back on every signal Python
  handled. Every role's `python -m` entry ends through exit_role (SIGTERM ignored from there on).
  Proved at the point past Python's finalisation: a C-level exit handler (run by libc's exit()
  after Py_FinalizeEx) marks the moment on stderr and parks the process in pause(); the kernel's
  view of the disposition (/proc/<pid>/status SigIgn) is read there and a SIGTERM sent. Without
  exit_role it died by it (143), for every role.
- Early: the launcher stops a role from the moment it says RUNNING (it starts the next one then).
  The collector said RUNNING before installing its stop handler; a SIGTERM sent by the role
  itself at the instant it says RUNNING must stop it cleanly (exit 0, stats written).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pipeline.bus.ring import TickRing

pytestmark = pytest.mark.timeout(60)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PARKED = textwrap.dedent("""
    import ctypes, runpy, sys
    libc = ctypes.CDLL(None)
    libc.strdup.restype = ctypes.c_void_p
    # libc runs these after Python's finalisation, last registered first
    libc.__cxa_atexit(libc.pause, None, None)
    libc.__cxa_atexit(libc.perror, ctypes.c_void_p(libc.strdup(b"PAST-FINALISATION")), None)
    sys.argv = [sys.argv[1], "--config", "/nonexistent/pipeline.toml"]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
""")


def sig_ignored(pid: int, sig: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    return bool(mask >> (sig - 1) & 1)


@pytest.mark.parametrize("module", ["pipeline.collector", "pipeline.strategy", "pipeline.gateway",
                                    "pipeline.collector.recorder", "pipeline.sim"])
def test_a_sigterm_after_a_role_finished_cannot_kill_its_finalisation(module, tmp_path):
    env = {**os.environ, "PIPELINE_RUN_DIR": str(tmp_path), "PIPELINE_LOG_DIR": str(tmp_path)}
    p = subprocess.Popen([sys.executable, "-c", PARKED, module], cwd=ROOT, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in p.stderr:                      # until the process is past finalisation
            seen.append(line)
            if line.startswith("PAST-FINALISATION"):
                break
        else:
            pytest.fail(f"{module} exited ({p.wait()}) before its exit handlers: {seen}")
        assert sig_ignored(p.pid, signal.SIGTERM), f"{module}: SIGTERM at its default action"
        p.send_signal(signal.SIGTERM)              # the launcher's late stop
        p.send_signal(signal.SIGKILL)              # ends the parked process
        assert p.wait(10) == -signal.SIGKILL, f"{module} died by the SIGTERM"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


STOP_AT_RUNNING = textwrap.dedent("""
    import os, signal, sys
    from pipeline.telemetry import role
    said = role.RoleTelemetry.running
    def running(self):
        said(self)
        os.kill(os.getpid(), signal.SIGTERM)     # the launcher's stop, the instant we are RUNNING
    role.RoleTelemetry.running = running
    sys.path.insert(0, "tests")
    from registry_fixture import FIXTURE_JSON
    from pipeline.collector.process import run_from_dict
    cfg = {"ws_url": "ws://127.0.0.1:9", "rest_url": "http://127.0.0.1:9", "symbols": ["BTCUSDT"],
           "channels": ["trade"], "stale_after_s": 30.0}
    run_from_dict(cfg, sys.argv[1], 30.0, sys.argv[2], instruments=FIXTURE_JSON)
""")


def test_a_collector_stopped_the_instant_it_says_running_stops_cleanly(tmp_path, shm_name):
    ring = TickRing.create(shm_name, 1 << 12)
    stats = tmp_path / "stats.json"
    try:
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-c", STOP_AT_RUNNING, shm_name, str(stats)],
                           cwd=ROOT, capture_output=True, text=True, timeout=40)
        assert r.returncode == 0, r.stderr[-2000:]          # was -15: no handler yet
        assert time.monotonic() - t0 < 25                   # stopped, not run for its 30 s
        assert json.loads(stats.read_text())["records_published"] == 0
    finally:
        ring.close()
