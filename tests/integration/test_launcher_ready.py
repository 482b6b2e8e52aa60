"""The launcher's readiness wait has one owner per deadline: a role heartbeating while it starts is
waited for past ready_timeout (the gateway retries the venue for its own start_timeout_s); only
ready_timeout without any heartbeat fails the start."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.integration.test_launcher import LAUNCH, ROLE, write_config

pytestmark = pytest.mark.timeout(60)


def role(name: str, *args: str) -> str:
    argv = ", ".join(f'"{a}"' for a in [*ROLE, *args])
    return (f'[roles.{name}]\nkind = "command"\ncommand = [{argv}]\nready = "heartbeat"\n'
            f"ready_timeout = 3.0\n")


def test_a_role_heartbeating_while_it_starts_is_waited_for_past_ready_timeout(tmp_path,
                                                                            shm_name):
    cfg = write_config(tmp_path, shm_name, role("slow", "--starting", "5.0"))
    t0 = time.monotonic()
    r = subprocess.run(LAUNCH + ["--config", str(cfg), "--duration", "0.3", "--summary-json",
                                 str(tmp_path / "s.json")],
                       capture_output=True, text=True, timeout=40)
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - t0 > 5.0                # waited for it, well past ready_timeout
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["stop_reason"] == "duration" and s["roles"]["slow"]["exit_code"] == 0


def test_a_role_silent_for_ready_timeout_fails_the_start_and_names_its_logs(tmp_path, shm_name):
    cfg = write_config(tmp_path, shm_name, role("mute", "--silent-start", "8"))
    r = subprocess.run(LAUNCH + ["--config", str(cfg), "--duration", "5"],
                       capture_output=True, text=True, timeout=40)
    assert r.returncode != 0
    assert "role mute did not become ready: no heartbeat for 3 s while starting" in r.stderr
    assert str(tmp_path / "run" / "logs" / "mute.out") in r.stderr
