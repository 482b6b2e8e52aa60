"""Hop latency histograms (HdrHistogram) and their files.

Every hop stamps CLOCK_MONOTONIC ns (time.perf_counter_ns()): socket read, ring publish, strategy
read, signal sent, gateway receive, risk done, signed, request written, response. A role records
the differences it can see into a `HopRecorder`; at exit it writes them to
<run_dir>/<role>.hdr.json ({hop: base64 HdrHistogram}), which scripts/profile_latency.py merges.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_NS, HIGHEST_NS, DIGITS = 1, 60_000_000_000, 3
PCTS = (50.0, 90.0, 99.0, 99.9)

# The hops, in pipeline order (name: what it measures).
HOPS = {
    "socket_to_ring": "collector: frame read from the socket → record published in the ring",
    "ring_to_strategy": "strategy: ring publish stamp → batch read by the strategy",
    "strategy_to_signal": "strategy: batch read → signal sent on the PUSH socket",
    "signal_to_gateway": "gateway: signal created → received from the PULL socket",
    "gateway_risk": "gateway: received → risk checks done",
    "gateway_sign": "gateway: risk done → request encoded and signed",
    "gateway_write": "gateway: signed → request written to the socket",
    "gateway_response": "gateway: request written → response parsed",
    "tick_to_order": "end to end: trigger tick's ring publish → signed order request written",
}


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, DIGITS)


class HopRecorder:
    """One HdrHistogram per hop."""

    def __init__(self, hops: Iterable[str] = ()):
        self.hist: dict[str, HdrHistogram] = {h: new_histogram() for h in hops}

    def record(self, hop: str, ns: int) -> None:
        h = self.hist.get(hop)
        if h is None:
            h = self.hist[hop] = new_histogram()
        h.record_value(min(max(int(ns), LOWEST_NS), HIGHEST_NS))

    def record_many(self, hop: str, values: np.ndarray) -> None:
        for v in np.clip(np.asarray(values, dtype=np.int64), LOWEST_NS, HIGHEST_NS):
            self.record(hop, int(v))

    def summary(self, hop: str) -> dict:
        return summarize(self.hist[hop])

    def dump(self, path: str | Path) -> None:
        data = {h: hist.encode().decode("ascii") for h, hist in self.hist.items()
                if hist.get_total_count()}
        tmp = Path(f"{path}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)


def summarize(h: HdrHistogram) -> dict:
    out = {"count": int(h.get_total_count())}
    for p in PCTS:
        out[f"p{p:g}".replace(".", "")] = int(h.get_value_at_percentile(p))
    out["max"] = int(h.get_max_value())
    return out


def load(paths: Iterable[str | Path]) -> dict[str, HdrHistogram]:
    """Merge hop histograms from several .hdr.json files."""
    merged: dict[str, HdrHistogram] = {}
    for p in paths:
        for hop, enc in json.loads(Path(p).read_text()).items():
            h = HdrHistogram.decode(enc.encode("ascii"))
            if hop in merged:
                merged[hop].add(h)
            else:
                merged[hop] = h
    return merged


def run_dir_recorder_path(role: str) -> Path | None:
    d = os.environ.get("PIPELINE_RUN_DIR")
    return Path(d) / f"{role}.hdr.json" if d else None
