"""Clocks in integer nanoseconds.

`mono_ns` is CLOCK_MONOTONIC (time.perf_counter_ns() on Linux): it compares across processes on
one machine and is the only clock used for latency. `wall_ns` is CLOCK_REALTIME (time.time_ns()):
it stamps socket reads and compares with the exchange's clock only through a measured offset.
Components take a clock so tests can drive time by hand.
"""
from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def mono_ns(self) -> int: ...
    def wall_ns(self) -> int: ...
    def sleep_ns(self, ns: int) -> None: ...


class LiveClock:
    """The machine's clocks."""

    __slots__ = ()
    mono_ns = staticmethod(time.perf_counter_ns)
    wall_ns = staticmethod(time.time_ns)

    @staticmethod
    def sleep_ns(ns: int) -> None:
        if ns > 0:
            time.sleep(ns / 1e9)


class TestClock:
    """A clock that moves only when told to; `sleep_ns` advances it instead of sleeping."""

    __test__ = False  # not a pytest test class

    def __init__(self, mono_ns: int = 1_000_000_000, wall_ns: int = 1_700_000_000_000_000_000):
        self._lock = threading.Lock()
        self._mono = int(mono_ns)
        self._wall = int(wall_ns)

    def mono_ns(self) -> int:
        return self._mono

    def wall_ns(self) -> int:
        return self._wall

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._mono += int(ns)
            self._wall += int(ns)

    def set_wall(self, wall_ns: int) -> None:
        """Step the wall clock only (as NTP would); the monotonic clock is unaffected."""
        with self._lock:
            self._wall = int(wall_ns)

    def sleep_ns(self, ns: int) -> None:
        if ns > 0:
            self.advance(ns)


LIVE = LiveClock()
