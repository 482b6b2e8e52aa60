"""A benchmark or profiler that fails (an exception, Ctrl-C, SIGTERM) stops what it started and
removes every shared-memory segment it created: scripts/bench_gateway.py --e2e (the gateway's
signal ring, which a killed gateway cannot unlink itself) and scripts/profile_latency.py (the
launcher's tick ring, status block and the gateway's signal ring). Their temporary directories
(/tmp/bench-gw-*, /tmp/profile-<variant>-*) go too; only --keep DIR keeps a run. Real
processes, real /dev/shm."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.integration.test_demo import demo_config, segments

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "scripts" / "bench_gateway.py"
PROFILE = REPO / "scripts" / "profile_latency.py"


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise TimeoutError(f"never saw {what} within {timeout:g} s")


def alive(procs: set[psutil.Process]) -> list[psutil.Process]:
    out = []
    for k in procs:
        try:
            if k.is_running() and k.status() != psutil.STATUS_ZOMBIE:
                out.append(k)
        except psutil.NoSuchProcess:
            pass
    return out


def bench_rings(pid: int) -> list[str]:
    """The signal rings of the gateways a bench_gateway process started (its channel names are
    gwtest-<bench pid>-<clock>, pipeline.gateway.testing.GatewayProc)."""
    return [n for n in os.listdir("/dev/shm") if n.startswith(f"gwtest-{pid}-") and n.endswith(".sig")]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_e2e_bench_stops_its_processes_and_removes_its_signal_ring(tmp_path, signum):
    # far more orders than it can send before the signal: it is interrupted mid-run
    p = subprocess.Popen([sys.executable, str(BENCH), "--e2e", "--orders", "1000000",
                          "--rate", "200", "--stall-s", "600"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO))
    kids: set[psutil.Process] = set()
    try:
        rings = wait_for(lambda: bench_rings(p.pid), 90, "the gateway's signal ring")
        kids = set(psutil.Process(p.pid).children(recursive=True))
        assert any("pipeline.gateway" in " ".join(k.cmdline()) for k in kids)
        time.sleep(0.5)                          # orders are flowing
        p.send_signal(signum)                    # the bench only: its children see nothing
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:        # stuck: say where (its faulthandler), then fail
            p.send_signal(signal.SIGUSR1)
            time.sleep(1)
            p.kill()
            _, err = p.communicate(timeout=10)
            pytest.fail(f"the bench did not exit within 60 s of {signum.name}; its stacks:\n"
                        f"{err[-6000:]}")
    except BaseException:
        for k in alive(kids):                    # a failed run leaves no orphan either
            k.kill()
        raise
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert p.returncode == 130, err[-2000:]
    assert "interrupted" in err
    assert not any(os.path.exists(f"/dev/shm/{r}") for r in rings)
    assert not bench_rings(p.pid)
    assert not alive(kids), alive(kids)


def test_e2e_bench_that_raises_stops_its_processes_and_removes_its_signal_ring():
    spec = importlib.util.spec_from_file_location("bench_gateway_under_test", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    seen = {}

    def fail(gw):           # the gateway is up and owns its ring: now the benchmark breaks
        seen["ring"] = f"/dev/shm/{gw.channel}.sig"
        seen["evt"] = f"/dev/shm/{gw.channel}.evt"          # the order-event ring
        from pipeline.bus import channel
        seen["dir"] = channel.channel_dir(gw.channel, create=False)   # its socket directory
        seen["tmp"] = gw.tmp                        # /tmp/bench-gw-*: its logs, journal
        seen["gateway"] = psutil.Process(gw.proc.pid)
        seen["sim"] = psutil.Process(gw.sim.proc.pid)
        assert os.path.exists(seen["ring"])
        os.kill(gw.proc.pid, signal.SIGKILL)     # the worst case: the owner cannot unlink it
        gw.proc.wait(5)
        raise RuntimeError("forced failure")

    with pytest.raises(RuntimeError, match="forced failure"):
        bench.run_e2e(100, 16, "never", "rest", on_ready=fail)
    assert not os.path.exists(seen["ring"]) and not os.path.exists(seen["evt"])
    assert not seen["dir"].exists()
    assert seen["tmp"].name.startswith("bench-gw-") and not seen["tmp"].exists()
    assert not alive({seen["gateway"], seen["sim"]})


def test_interrupted_profile_removes_every_segment_of_its_pipeline(tmp_path, shm_name):
    cfg = demo_config(tmp_path, shm_name)
    p = subprocess.Popen([sys.executable, str(PROFILE), "--config", str(cfg), "--seconds", "120",
                          "--variants", "tuned"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO))
    try:
        # the tick ring, the status block and the gateway's signal ring all exist: it runs
        wait_for(lambda: len(segments(shm_name)) >= 3, 120, "the pipeline's three segments")
        kids = set(psutil.Process(p.pid).children(recursive=True))
        assert kids
        # the variant's run directory: every role runs with --config <it>/config.toml
        work = {Path(a).parent for k in kids for a in k.cmdline()
                if a.endswith("config.toml") and Path(a).parent.name.startswith("profile-tuned-")}
        assert len(work) == 1, [k.cmdline() for k in kids]
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
    assert p.returncode == 130, err[-2000:]
    assert not segments(shm_name)
    assert not alive(kids), alive(kids)
    assert not next(iter(work)).exists()            # /tmp/profile-tuned-*: removed
