import subprocess
import sys

import pytest

from pipeline import _native
from pipeline.clock import LIVE, TestClock


def test_missing_extension_names_the_build_command():
    with pytest.raises(_native.ExtensionNotBuilt, match=r"make build.*pip install -e \."):
        _native.load("no_such_kernel")


def test_unbuilt_ring_kernel_error_from_a_fresh_interpreter(tmp_path):
    """With pipeline._ext shadowed by an empty package, using the ring says how to build."""
    fake = tmp_path / "pipeline" / "_ext"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    code = ("import sys, pipeline; pipeline._ext.__path__[:] = [sys.argv[1]]\n"
            "from pipeline.bus.ring import TickRing\n"
            "try:\n    TickRing.create('x', 16)\nexcept ImportError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", "import pipeline._ext\n" + code, str(fake)],
                       capture_output=True, text=True, timeout=60)
    assert "not built" in r.stdout and "make build" in r.stdout, r.stdout + r.stderr


def test_test_clock_moves_only_when_told():
    c = TestClock(mono_ns=10, wall_ns=100)
    assert (c.mono_ns(), c.wall_ns()) == (10, 100)
    c.sleep_ns(5)
    assert (c.mono_ns(), c.wall_ns()) == (15, 105)
    c.set_wall(1000)
    assert (c.mono_ns(), c.wall_ns()) == (15, 1000)
    with pytest.raises(ValueError):
        c.advance(-1)


def test_live_clock_is_monotonic_ns():
    a = LIVE.mono_ns()
    b = LIVE.mono_ns()
    assert isinstance(a, int) and b >= a
    assert LIVE.wall_ns() > 1_600_000_000 * 10**9
