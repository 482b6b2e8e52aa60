"""Shared fixtures. Tests own their resources: every shm segment a test makes has a unique name
with the prefix below, and the session fails if one is left in /dev/shm afterwards."""
from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

# Shared fixture modules (e.g. sim_fixtures) import as top-level names from tests/.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Segments of this test session (other sessions, e.g. in other checkouts, use other prefixes).
SHM_PREFIX = f"pltest-{os.getpid()}-"
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


def pytest_sessionfinish(session, exitstatus):
    # Only this session's segments (SHM_PREFIX carries our pid): other checkouts run tests in
    # parallel. (SHM_PREFIX already holds the pid; adding it again matched nothing.)
    left = [n for n in os.listdir("/dev/shm") if n.startswith(SHM_PREFIX)]
    if left:
        for n in left:
            try:
                os.unlink(os.path.join("/dev/shm", n))
            except OSError:
                pass
        print(f"\nERROR: shared-memory segments left behind by tests: {left}")
        session.exitstatus = 1
