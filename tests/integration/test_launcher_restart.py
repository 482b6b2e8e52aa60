"""The launcher's restart policy with real processes: a restartable role that dies is restarted
with backoff and the HALT it caused clears once it is back; past its hourly cap, or for a role
without a policy, the HALT stays and the run stops."""
import json
import signal
import subprocess
import time

import psutil

from tests.integration.test_launcher import LAUNCH, children_of, hb_role, write_config

POLICY = ('restart = "on-failure"\n[roles.a.restart_policy]\nbackoff_s = 0.2\n'
          'max_per_hour = {cap}\n')


def role_pid(launcher_pid, marker, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for k in children_of(launcher_pid):
            try:
                if marker in k.cmdline():
                    return k.pid
            except psutil.Error:
                pass
        time.sleep(0.05)
    raise AssertionError(f"no role process with {marker}")


def start(tmp_path, shm_name, cap):
    cfg = write_config(tmp_path, shm_name,
                       hb_role("a", extra="--role-a") + POLICY.format(cap=cap) + hb_role("b"))
    out = tmp_path / "s.json"
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--summary-json", str(out)],
                         stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("ticks"):
            break
    return p, out


def halt_word(shm_name, launcher_pid):
    from pipeline.telemetry.status import StatusBlock
    with StatusBlock.attach(f"{shm_name}-run-{launcher_pid}-status") as b:
        return int(b.header[0]["halt"])


def wait_for(pred, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_dead_restartable_role_comes_back_and_its_halt_clears(tmp_path, shm_name):
    p, out = start(tmp_path, shm_name, cap=5)
    try:
        first = role_pid(p.pid, "--role-a")
        psutil.Process(first).send_signal(signal.SIGKILL)
        wait_for(lambda: halt_word(shm_name, p.pid) == 1, "the HALT word")
        wait_for(lambda: role_pid(p.pid, "--role-a") != first, "a new role a")
        wait_for(lambda: halt_word(shm_name, p.pid) == 0, "the HALT to clear")
        assert p.poll() is None                        # still running
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    s = json.loads(out.read_text())
    assert s["stop_reason"] == "SIGTERM" and not s["halted"] and s["halts_cleared"] == 1
    assert s["roles"]["a"]["restarts"] == 1 and s["roles"]["b"]["restarts"] == 0
    ev = [e["event"] for e in s["events"]]
    i = ev.index("role-failed")
    assert ev[i:i + 3] == ["role-failed", "restart-scheduled", "halt"]
    assert ev.index("role-recovered") < ev.index("halt-cleared")
    assert [e["final"] for e in s["events"] if e["event"] == "halt"] == [False]


def test_restart_cap_reached_halts_for_good_and_stops(tmp_path, shm_name):
    p, out = start(tmp_path, shm_name, cap=1)
    try:
        first = role_pid(p.pid, "--role-a")
        psutil.Process(first).send_signal(signal.SIGKILL)
        wait_for(lambda: role_pid(p.pid, "--role-a") != first, "a new role a")
        second = role_pid(p.pid, "--role-a")
        psutil.Process(second).send_signal(signal.SIGKILL)
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
    s = json.loads(out.read_text())
    assert p.returncode == 1 and s["halted"]
    assert "restart cap reached" in s["stop_reason"] and s["roles"]["a"]["restarts"] == 1
    assert [e["final"] for e in s["events"] if e["event"] == "halt"][-1] is True


def test_role_without_policy_still_halts_and_stops(tmp_path, shm_name):
    p, out = start(tmp_path, shm_name, cap=5)
    try:
        b = [k for k in children_of(p.pid) if "heartbeat_role.py" in " ".join(k.cmdline())
             and "--role-a" not in k.cmdline()]
        b[0].send_signal(signal.SIGKILL)
        p.wait(60)
    finally:
        if p.poll() is None:
            p.kill()
    s = json.loads(out.read_text())
    assert s["halted"] and "role b" in s["stop_reason"] and s["halts_cleared"] == 0


def test_a_role_that_fails_for_good_while_the_run_goes_on_makes_the_exit_status_3(tmp_path,
                                                                                 shm_name):
    """halt_on_role_death = false: a role without a restart policy dies, the launcher gives up on
    it and the run goes on; it ends as asked (SIGTERM) but exits 3 (not 0), the summary naming
    the role in failed_roles."""
    cfg = write_config(tmp_path, shm_name, hb_role("a", extra="--role-a") + hb_role("b"),
                       launcher="halt_on_role_death = false")
    out = tmp_path / "s.json"
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--summary-json", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:
            if line.startswith("ticks"):
                break
        b = [k for k in children_of(p.pid) if "heartbeat_role.py" in " ".join(k.cmdline())
             and "--role-a" not in k.cmdline()]
        b[0].send_signal(signal.SIGKILL)
        wait_for(lambda: any("ROLE_FAILED" in f.read_text()
                             for f in tmp_path.rglob("launcher.log")), "b given up")
        assert p.poll() is None                      # the run goes on without b
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    s = json.loads(out.read_text())
    assert s["stop_reason"] == "SIGTERM" and s["failed_roles"] == ["b"]
    assert s["roles"]["b"]["failed_for_good"] and not s["roles"]["a"]["failed_for_good"]
    assert p.returncode == 3, err[-2000:]
    assert "roles that failed for good: b" in err
