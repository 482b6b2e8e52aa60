"""Crash debris: every pipeline segment is recognised by its header, attributed by its tag, and
removed once its owner is dead (never while it lives); rings and status blocks are 0600 and ours."""
import multiprocessing as mp
import os
import stat
import subprocess
import sys
import uuid

import conftest
from pipeline.bus import segments, shm
from pipeline.bus.ring import SignalRing, TickRing
from pipeline.telemetry.status import StatusBlock

CTX = mp.get_context("spawn")


def _create_and_hang(kind, name, ready, tag):
    if tag is not None:
        os.environ[segments.ENV_TAG] = tag
    if kind == "status":
        StatusBlock.create(name, 2)
    elif kind == "signal":
        SignalRing.create(name, 64)
    else:
        TickRing.create(name, 64)
    ready.set()
    import time
    time.sleep(120)


def _killed_owner(kind, name, tag=None):
    """A segment whose creating process was SIGKILLed (so nothing unlinked it)."""
    ready = CTX.Event()
    p = CTX.Process(target=_create_and_hang, args=(kind, name, ready, tag), daemon=True)
    p.start()
    assert ready.wait(30)
    p.kill()
    p.join(20)
    assert os.path.exists(shm.segment_path(name))
    return p.pid


def _name(prefix="plseg"):
    # deliberately NOT the test prefix: the leak check must find segments by tag
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def test_segments_are_0600_and_owned_by_the_running_user(shm_name):
    old = os.umask(0)                   # even a permissive umask leaves them private
    try:
        with TickRing.create(shm_name, 64), StatusBlock.create(shm_name + "s", 1), \
                SignalRing.create(shm_name + "g", 64):
            for n in (shm_name, shm_name + "s", shm_name + "g"):
                st = os.stat(shm.segment_path(n))
                assert stat.S_IMODE(st.st_mode) == 0o600, n
                assert st.st_uid == os.getuid()
    finally:
        os.umask(old)


def test_scan_recognises_every_kind_and_its_owner(shm_name):
    with TickRing.create(shm_name, 64), StatusBlock.create(shm_name + "s", 1):
        found = {i.name: i for i in segments.scan(shm_name)}
        assert found[shm_name].kind == "ring" and found[shm_name + "s"].kind == "status"
        for i in found.values():
            assert i.owner_pid == os.getpid() and i.owner_alive and i.tag == conftest.SHM_TAG
        assert segments.reclaim(prefix=shm_name) == []          # live owner: never removed
        assert os.path.exists(shm.segment_path(shm_name))


def test_killed_owners_segments_are_reclaimed_whatever_the_name():
    names = {k: _name() for k in ("ring", "signal", "status")}
    pids = {k: _killed_owner(k, n) for k, n in names.items()}
    try:
        infos = {i.name: i for p in names.values() for i in segments.scan(p)}
        for k, n in names.items():
            assert not infos[n].owner_alive and infos[n].owner_pid == pids[k]
        # the session's leak check sees them although no name carries the test prefix
        leaked = conftest.leaked_segments()
        assert set(names.values()) <= set(leaked)
        removed = {i.name for p in names.values() for i in segments.reclaim(prefix=p)}
        assert removed == set(names.values())
        assert not any(os.path.exists(shm.segment_path(n)) for n in names.values())
    finally:
        for n in names.values():
            shm.unlink(n)


def test_leak_check_never_blames_another_sessions_segment():
    name = _name()
    _killed_owner("ring", name, tag="12345")      # as if another checkout's suite made it
    try:
        assert name not in conftest.leaked_segments()
    finally:
        shm.unlink(name)


def test_cli_lists_and_reclaims_dead_owners_only(shm_name):
    dead = _name()
    _killed_owner("ring", dead)
    try:
        with TickRing.create(shm_name, 64):
            cmd = [sys.executable, "-m", "pipeline.bus.segments"]
            r = subprocess.run(cmd + ["--prefix", dead], capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0 and dead in r.stdout and "(dead)" in r.stdout
            r = subprocess.run(cmd + ["--reclaim", "--prefix", dead], capture_output=True,
                               text=True, timeout=60)
            assert "dead, removed" in r.stdout
            assert not os.path.exists(shm.segment_path(dead))
            r = subprocess.run(cmd + ["--reclaim", "--prefix", shm_name], capture_output=True,
                               text=True, timeout=60)
            assert "(alive)" in r.stdout
            assert os.path.exists(shm.segment_path(shm_name))
    finally:
        shm.unlink(dead)
