"""Shared fixtures. Tests own their resources: every shm segment a test makes has a unique name
with the prefix below, and the session fails if one is left in /dev/shm afterwards.

The leak check sees every segment this session caused, whatever its name (a launcher's status
block, a gateway's signal ring, a benchmark's ring): the session exports PIPELINE_SHM_TAG, every
process it starts inherits it, and every pipeline segment records its creator's tag in its header
(pipeline/bus/segments.py). Other checkouts run their suites in parallel with other tags: their
segments are never blamed nor touched here."""
from __future__ import annotations

import hashlib
import os
import sys
import uuid
from pathlib import Path

import psutil
import pytest

# Shared fixture modules (e.g. sim_fixtures) import as top-level names from tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Segments of this test session (other sessions, e.g. in other checkouts, use other prefixes).
SHM_PREFIX = f"pltest-{os.getpid()}-"
# This session's tag, inherited by every process the tests start (nonzero, fits int64). Set
# once: a child that imports this module (a spawned test helper) keeps the session's tag, and a
# second import in the session computes nothing new.
os.environ.setdefault("PIPELINE_SHM_TAG", str(1 + int.from_bytes(hashlib.sha256(
    f"{os.getpid()}-{psutil.Process().create_time()}".encode()).digest()[:7], "little")))
SHM_TAG = int(os.environ["PIPELINE_SHM_TAG"])
REPO = Path(__file__).resolve().parent.parent
# The real exchange messages, recordings and signing vectors the suite reads, shipped with the
# repository (provenance and licences: tests/data/SOURCES.md).
VECTORS = REPO / "tests" / "data"


def unique_shm_name() -> str:
    return f"{SHM_PREFIX}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def shm_name():
    """A unique segment name; the segment is unlinked after the test whatever happened."""
    name = unique_shm_name()
    yield name
    from pipeline.bus import ring
    ring.unlink(name)


@pytest.fixture
def vectors() -> Path:
    """tests/data: the test vectors that ship with the repository."""
    return VECTORS


def leaked_segments() -> dict[str, str]:
    """This session's segments still in /dev/shm: {name: why it is ours (and its owner)}."""
    from pipeline.bus import segments
    left = {}
    for info in segments.scan():
        if info.tag == SHM_TAG:
            state = "alive" if info.owner_alive else "dead"
            left[info.name] = f"{info.kind}, owner pid {info.owner_pid} ({state})"
    for n in os.listdir("/dev/shm"):
        if n.startswith(SHM_PREFIX) and n not in left:
            left[n] = "test prefix"
    return left


def leaked_channels() -> list[str]:
    """Signal-channel directories (pipeline/bus/channel.py) of this session still there: the
    channels named with the session's prefixes (SHM_PREFIX, the gateway harness's gwtest-<pid>-)."""
    from pipeline.bus import channel
    mine = (SHM_PREFIX, f"gwtest-{os.getpid()}-")
    try:
        names = os.listdir(channel.base_dir())
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(mine))


def pytest_sessionfinish(session, exitstatus):
    # Only this session's segments (by tag or by SHM_PREFIX, which carries our pid): other
    # checkouts run tests in parallel and their segments are none of our business.
    left = leaked_segments()
    if left:
        for n in left:
            try:
                os.unlink(os.path.join("/dev/shm", n))
            except OSError:
                pass
        print("\nERROR: shared-memory segments left behind by tests: " +
              ", ".join(f"{n} ({why})" for n, why in sorted(left.items())))
        session.exitstatus = 1
    chans = leaked_channels()
    if chans:
        import shutil
        from pipeline.bus import channel
        for n in chans:
            shutil.rmtree(channel.base_dir() / n, ignore_errors=True)
        print("\nERROR: signal-channel directories left behind by tests: " + ", ".join(chans))
        session.exitstatus = 1
