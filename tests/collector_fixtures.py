"""A collector process writing a test ring, and this process's reader of it (shared by the
Binance and OKX collector integration tests)."""
from __future__ import annotations

import json
import multiprocessing as mp
import time
from contextlib import contextmanager

import numpy as np

from pipeline.bus.ring import TickRing
from pipeline.collector.process import run_from_dict
from pipeline.records import TICK_DTYPE
from registry_fixture import FIXTURE_JSON

COMMON = {"backoff_initial_s": 0.05, "backoff_max_s": 0.5, "overlap_s": 0.3}


class CollectorRun:
    """Start a collector (a real spawned process) with `cfg` (a [collector] table) on a new ring
    `shm_name`; pump() reads what it publishes; stop() ends it and returns its stats."""

    def __init__(self, tmp_path, shm_name, cfg: dict):
        self.ring = TickRing.create(shm_name, 1 << 18)
        self.reader = self.ring.reader(wait="sleeping", start="oldest", max_batch=1 << 16)
        self.stats_path = tmp_path / f"stats-{time.monotonic_ns()}.json"
        self.proc = mp.get_context("spawn").Process(
            target=run_from_dict, args=({**COMMON, **cfg}, shm_name, 50.0, str(self.stats_path)),
            kwargs={"instruments": FIXTURE_JSON}, daemon=True)
        self.proc.start()
        self.records: list[np.ndarray] = []

    def pump(self, seconds: float, until=None) -> np.ndarray:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            b = self.reader.poll()
            if len(b):
                self.records.append(b)
                if until is not None and until(self.all()):
                    break
            else:
                time.sleep(0.01)
        return self.all()

    def all(self) -> np.ndarray:
        return np.concatenate(self.records) if self.records else np.zeros(0, TICK_DTYPE)

    def stop(self) -> dict:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(15)
        self.pump(0.05)
        stats = json.loads(self.stats_path.read_text()) if self.stats_path.exists() else {}
        self.reader = None
        self.ring.close()
        return stats


@contextmanager
def collector_runs(make):
    """Yield start(**over) → make(**over), stopping every run still alive afterwards."""
    runs = []

    def start(**over):
        r = make(**over)
        runs.append(r)
        return r
    yield start
    for r in runs:
        if r.proc.is_alive():
            r.stop()
