"""The launcher with real processes: bounded runs, SIGTERM, a killed or stuck role, bad configs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCH = [sys.executable, str(REPO / "scripts" / "launch.py")]
ROLE = [sys.executable, str(Path(__file__).with_name("heartbeat_role.py"))]


def write_config(tmp_path, shm_name, roles: str, launcher: str = "") -> Path:
    p = tmp_path / "c.toml"
    p.write_text(f"""
[ring]
name = "{shm_name}"
capacity = 1024
[launcher]
run_id = "{shm_name}-run"
run_dir = "{tmp_path / 'run'}"
status_interval = 0.2
{launcher}
{roles}
""")
    return p


def hb_role(name, extra="", cores="[]", **kw):
    args = ", ".join(f'"{a}"' for a in ROLE + ([extra] if extra else []))
    more = "\n".join(f"{k} = {v}" for k, v in kw.items())
    return (f"[roles.{name}]\nkind = \"command\"\ncommand = [{args}]\ncores = {cores}\n"
            f"ready = \"heartbeat\"\n{more}\n")


def our_segments(prefix):
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]


def children_of(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_bounded_run_pins_counts_and_cleans_up(tmp_path, shm_name):
    cfg = write_config(tmp_path, shm_name, hb_role("a", cores="[0]") + hb_role("b", cores="[1]"))
    out = tmp_path / "summary.json"
    r = subprocess.run(LAUNCH + ["--config", str(cfg), "--duration", "1.0", "--summary-json",
                                 str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    s = json.loads(out.read_text())
    assert s["stop_reason"] == "duration" and not s["halted"]
    assert s["roles"]["a"]["exit_code"] == 0 and s["roles"]["b"]["exit_code"] == 0
    assert s["roles"]["a"]["ticks"] > 10
    assert "ticks" in r.stdout and "preflight" in r.stdout
    assert not our_segments(shm_name)
    started = [e for e in s["events"] if e["event"] == "started"]
    assert {e["cores"] for e in started} == {"0", "1"}


def test_sigterm_stops_everything_in_order(tmp_path, shm_name):
    cfg = write_config(tmp_path, shm_name, hb_role("a", cores="[1]") + hb_role("b"),
                       'prometheus_port = 0')
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--summary-json",
                                   str(tmp_path / "s.json")], stdout=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:                       # wait until it runs (first status line)
            if line.startswith("ticks"):
                break
        kids = children_of(p.pid)
        assert len(kids) >= 2
        assert sorted(k.cpu_affinity() for k in kids) == [[0, 1], [1]]   # a pinned, b not
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        assert time.monotonic() - t0 < 10
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["stop_reason"] == "SIGTERM"
    stops = [e["role"] for e in s["events"] if e["event"] == "stopped"]
    assert sorted(stops) == ["a", "b"]
    assert not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids)
    assert not our_segments(shm_name)


@pytest.mark.parametrize("how", ["killed", "stuck"])
def test_dead_or_stuck_role_halts_and_stops(tmp_path, shm_name, how):
    roles = hb_role("a") + hb_role("b", extra="--stuck" if how == "stuck" else "",
                                   heartbeat_timeout=0.5)
    cfg = write_config(tmp_path, shm_name, roles)
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--summary-json",
                                   str(tmp_path / "s.json")], stdout=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:
            if line.startswith("ticks"):
                break
        if how == "killed":
            role_b = tmp_path / "run" / "logs" / "b.out"
            victim = None
            deadline = time.monotonic() + 10
            while victim is None and time.monotonic() < deadline:
                for k in children_of(p.pid):
                    try:
                        if k.cmdline()[-1:] == [ROLE[1]] and k.name().startswith("python"):
                            victim = k
                    except psutil.Error:
                        pass
                time.sleep(0.05)
            assert victim is not None and role_b.exists()
            victim.kill()
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["halted"]
    assert ("killed by signal 9" if how == "killed" else "stuck") in s["stop_reason"]
    assert not our_segments(shm_name)


def test_heartbeat_stuck_requires_heartbeats(tmp_path, shm_name):
    """A role that never heartbeated is not declared stuck (commands need not heartbeat)."""
    cfg = write_config(tmp_path, shm_name, '[roles.s]\nkind = "command"\ncommand = ["sleep", "5"]\n'
                       'heartbeat_timeout = 0.2\n')
    r = subprocess.run(LAUNCH + ["--config", str(cfg), "--duration", "0.8"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("body,needle", [
    ('[roles.a]\nkind = "command"\ncommand = ["true"]\ncoers = [0]\n', "roles.a.coers"),
    ('[roles.a]\nkind = "command"\ncommand = ["true"]\ncores = [64]\n', "CPU 64 does not exist"),
    ('[roles.a]\nkind = "collectr"\n', "roles.a.kind"),
    ('[roles.a]\nkind = "command"\n', "needs a command"),
    ('[launcher]\nduration = "x"\n', "launcher.duration"),
    ('[roles.g]\nkind = "gateway"\n[gateway]\napi_key_env = "PLTEST_NO_SUCH_KEY"\n',
     "PLTEST_NO_SUCH_KEY"),
    ('[roles.g]\nkind = "gateway"\n[gateway]\ncredentials_file = "/nonexistent/keys"\n',
     "does not exist"),
])
def test_bad_config_fails_before_anything_starts(tmp_path, shm_name, body, needle):
    p = tmp_path / "bad.toml"
    p.write_text(f'[ring]\nname = "{shm_name}"\n' + body)
    r = subprocess.run(LAUNCH + ["--config", str(p)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert needle in r.stderr and "bad.toml" in r.stderr
    assert not our_segments(shm_name)


def test_gateway_secrets_reach_the_gateway_only(tmp_path, shm_name):
    """With the secrets in the launcher's environment, only a gateway role inherits them."""
    dump = ("import os,sys; from pipeline.telemetry.status import RoleStatus; "
            "from pipeline.records import RoleState; "
            "open(sys.argv[1],'w').write(repr(sorted(k for k in os.environ "
            "if k.startswith('PLTEST_SECRET')))); s = RoleStatus.from_env(); "
            "s.set_state(RoleState.RUNNING); import time; time.sleep(30)")
    roles = (f'[roles.other]\nkind = "command"\nready = "heartbeat"\ncommand = '
             f'["{sys.executable}", "-c", "{dump}", "{tmp_path / "other.env"}"]\n')
    cfg = write_config(tmp_path, shm_name, roles,
                       '[gateway]\napi_key_env = "PLTEST_SECRET_K"\napi_secret_env = "PLTEST_SECRET_S"')
    env = dict(os.environ, PLTEST_SECRET_K="canary-key", PLTEST_SECRET_S="canary-secret")
    r = subprocess.run(LAUNCH + ["--config", str(cfg), "--duration", "0.5"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "other.env").read_text() == "[]"
    # and the gateway role's environment is the one place they go
    from pipeline import config
    from pipeline.launcher.supervisor import Launcher
    os.environ.update(PLTEST_SECRET_K="k", PLTEST_SECRET_S="s")
    try:
        cfg2 = config.loads(cfg.read_text() + '[roles.gw]\nkind = "gateway"\n')
        launcher = Launcher(cfg2, str(cfg))
        gw_env = launcher._env(launcher.roles["gw"])
        other_env = launcher._env(launcher.roles["other"])
    finally:
        del os.environ["PLTEST_SECRET_K"], os.environ["PLTEST_SECRET_S"]
    assert gw_env["PLTEST_SECRET_K"] == "k" and gw_env["PLTEST_SECRET_S"] == "s"
    assert "PLTEST_SECRET_K" not in other_env and "PLTEST_SECRET_S" not in other_env


def test_processes_a_role_started_are_stopped_with_it(tmp_path, shm_name):
    marker = f"{shm_name}-child"
    roles = ('[roles.sh]\nkind = "command"\ncommand = ["bash", "-c", '
             f'"exec -a {marker} sleep 300 & wait"]\n')
    cfg = write_config(tmp_path, shm_name, roles)
    r = subprocess.run(LAUNCH + ["--config", str(cfg), "--duration", "1.0"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    left = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    for p in left:
        p.kill()
    assert not left


def test_spinning_role_sharing_any_core_is_warned():
    from pipeline import config
    from pipeline.launcher.preflight import validate_placement
    cfg = config.loads('[roles.s]\nkind = "strategy"\nwait = "busy_spin"\ncores = [0]\n'
                       '[roles.x]\nkind = "sim"\n')               # x unpinned: may run on core 0
    assert any("roles.s spins" in w for w in validate_placement(cfg.roles))
    cfg = config.loads('[roles.s]\nkind = "strategy"\nwait = "busy_spin"\ncores = [1]\n'
                       '[roles.x]\nkind = "sim"\ncores = [0]\n')
    assert validate_placement(cfg.roles) == []


def test_killed_launcher_leaves_no_orphans(tmp_path, shm_name):
    cfg = write_config(tmp_path, shm_name, hb_role("a") + hb_role("b"))
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg)], stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("ticks"):
            break
    kids = children_of(p.pid)
    p.kill()
    p.wait(10)
    gone, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive
    # its segments are left (the owner was SIGKILLed); the next create replaces them
    from pipeline.bus import shm
    for n in our_segments(shm_name):
        shm.unlink(n)
