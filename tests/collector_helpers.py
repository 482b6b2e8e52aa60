"""Shared helpers for the collector tests (not a test module)."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from pipeline.records import Venue
from registry_fixture import DEFAULT

BINANCE = {i.symbol: i.id for i in DEFAULT.for_venue(Venue.BINANCE)}
BSYMS = {s.encode(): i for s, i in BINANCE.items()}


def gz_lines(path: Path):
    with gzip.open(path, "rb") as f:
        for line in f:
            ts, _, raw = line.rstrip(b"\n").partition(b" ")
            yield int(ts), raw


def vector_messages(vectors: Path, name: str) -> list[bytes]:
    """The exact wire text of every recorded example in a ws_*.json vector file."""
    d = json.loads((vectors / "binance" / name).read_text())
    return [e["raw"].encode() for e in d.get("examples", []) if e.get("raw")]


def strip_ring(a: np.ndarray) -> np.ndarray:
    """Records without the fields the ring stamps (seq, mono_ts)."""
    a = a.copy()
    a["seq"] = 0
    a["mono_ts"] = 0
    return a
