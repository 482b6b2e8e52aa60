"""Hop latency histograms (HdrHistogram) and their files.

Every hop stamps CLOCK_MONOTONIC ns (time.perf_counter_ns()): socket read, ring publish, strategy
read, signal sent, gateway receive, risk done, signed, request written, response. A role records
the differences it can see into a `HopRecorder`; at exit it writes them to
<run_dir>/<role>.hdr.json ({hop: base64 HdrHistogram}), which scripts/profile_latency.py merges.

For Prometheus a role also exports each hop as cumulative bucket counts (BUCKETS_S, seconds) into
its record of the launcher's status block (`HopRecorder.export`, at most once a second: a
reduceat over the HdrHistogram's count array, a few µs per hop that changed, never a percentile
walk). The launcher serves them as the histogram `pipeline_hop_latency_seconds{hop=...}`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
from hdrh.histogram import HdrHistogram

from pipeline.records import HOP_CELLS, HOP_SLOTS

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
    "tick_to_order": "end to end: trigger tick's ring publish → order request signed",
    "tick_to_wire": "end to end: trigger tick's ring publish → signed request written to the socket",
    "intake_to_wire": "gateway: signal received → request written to the socket",
}
HOP_NAMES = tuple(HOPS)             # row i of a role's exported histograms is hop HOP_NAMES[i]
HOP_INDEX = {h: i for i, h in enumerate(HOP_NAMES)}

# Prometheus bucket bounds (seconds) for every hop: 1 µs .. 10 s, 1-2.5-5 per decade.
BUCKETS_S = tuple(float(f"{m}e{e}") for e in range(-6, 1) for m in (1, 2.5, 5)) + (10.0,)
BUCKETS_NS = np.array([round(b * 1e9) for b in BUCKETS_S], dtype=np.int64)
assert len(HOP_NAMES) <= HOP_SLOTS and len(BUCKETS_S) == HOP_CELLS - 2


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, DIGITS)


RECENT = 1024        # live quantiles: the last this many values per hop


def _bucket_starts() -> np.ndarray:
    """For every bound of BUCKETS_NS, the first HdrHistogram count index whose values lie above
    it (values of one index differ by < 0.1 % at 3 digits, so the bucket edge is that close)."""
    h = new_histogram()
    idx = np.arange(h.counts_len, dtype=np.int64)        # HdrHistogram.get_value_from_index
    bucket = (idx >> h.sub_bucket_half_count_magnitude) - 1
    sub = (idx & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
    sub = np.where(bucket < 0, sub - h.sub_bucket_half_count, sub)
    vals = sub << (np.maximum(bucket, 0) + h.unit_magnitude)
    starts = np.searchsorted(vals, BUCKETS_NS, side="right")
    assert np.all(np.diff(starts) > 0) and starts[0] > 0
    return np.concatenate(([0], starts)).astype(np.intp)


_STARTS = _bucket_starts()


class HopRecorder:
    """One HdrHistogram per hop (the run's record, dumped at exit), plus the last RECENT values of
    each hop for live quantiles (`live`): a percentile query on an HdrHistogram walks its whole
    count array in Python (0.7-2 ms here), which a role's hot loop must never pay."""

    def __init__(self, hops: Iterable[str] = ()):
        self.hist: dict[str, HdrHistogram] = {}
        self._recent: dict[str, np.ndarray] = {}
        self._n: dict[str, int] = {}
        self._sum: dict[str, int] = {}
        self._counts: dict[str, np.ndarray] = {}     # each histogram's count array, as numpy
        self._exported: dict[str, int] = {}
        for h in hops:
            self._add(h)

    def _add(self, hop: str) -> HdrHistogram:
        h = self.hist[hop] = new_histogram()
        self._recent[hop] = np.zeros(RECENT, dtype=np.int64)
        self._n[hop] = 0
        self._sum[hop] = 0
        self._counts[hop] = np.ctypeslib.as_array(h.counts).view(np.int64)
        return h

    def record(self, hop: str, ns: int) -> None:
        h = self.hist.get(hop)
        if h is None:
            h = self._add(hop)
        v = min(max(int(ns), LOWEST_NS), HIGHEST_NS)
        h.record_value(v)
        n = self._n[hop]
        self._recent[hop][n % RECENT] = v
        self._n[hop] = n + 1
        self._sum[hop] += v

    def recorder(self, hop: str):
        """A one-argument function recording into `hop` (for a role's loop)."""
        if hop not in self.hist:
            self._add(hop)
        rec = self.record
        return lambda ns: rec(hop, ns)

    def live(self, hop: str) -> dict:
        """{count, window, p50, p99, max} over the last RECENT values of `hop` ({} if none): cheap
        enough for a status line every 100 ms."""
        n = self._n.get(hop, 0)
        if not n:
            return {}
        w = self._recent[hop][:min(n, RECENT)]
        p50, p99 = np.percentile(w, (50, 99), method="inverted_cdf")
        return {"count": n, "window": len(w), "p50": int(p50), "p99": int(p99),
                "max": int(w.max())}

    def export(self, area: np.ndarray) -> int:
        """Write every hop of HOP_NAMES that changed since the last export into `area` (a role's
        (HOP_SLOTS, HOP_CELLS) int64 rows: cumulative counts per BUCKETS_S bound, count, sum ns).
        Call it at most about once a second from a loop; returns the hops written."""
        written = 0
        for hop in self.hist:
            i = HOP_INDEX.get(hop)
            n = self._n[hop]
            if i is None or n == 0 or self._exported.get(hop) == n:
                continue
            counts = self._counts[hop]
            row = np.empty(HOP_CELLS, dtype=np.int64)
            row[:HOP_CELLS - 2] = np.cumsum(np.add.reduceat(counts, _STARTS)[:-1])
            row[HOP_CELLS - 2] = n
            row[HOP_CELLS - 1] = self._sum[hop]
            area[i] = row
            self._exported[hop] = n
            written += 1
        return written

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
