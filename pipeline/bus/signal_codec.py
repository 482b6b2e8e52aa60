"""The signal record's codec: a `Signal` (a NamedTuple with the fields of SIGNAL_DTYPE,
pipeline/records.py, in order) to its 80 bytes and back. `decode` checks the size and the version
byte and raises `SignalFormatError` naming what is wrong. The transports (ZeroMQ sockets, the
shared-memory signal ring) are pipeline/bus/signals.py, which re-exports these names.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from pipeline.records import SIGNAL_DTYPE, SIGNAL_FIELDS, SIGNAL_STRUCT, SIGNAL_VERSION

SIGNAL_SIZE = SIGNAL_DTYPE.itemsize
_STRUCT = SIGNAL_STRUCT          # built from SIGNAL_DTYPE in pipeline/records.py (the one layout)


class SignalFormatError(ValueError):
    """Bytes that are not a signal record of this version."""


class Signal(NamedTuple):
    """One signal; the fields of SIGNAL_DTYPE in order (without padding)."""

    epoch: int = 0           # sender epoch (CLOCK_REALTIME ns at its start)
    seq: int = 0             # per-epoch sequence from 1
    trigger_seq: int = -1    # ring sequence of the triggering tick
    trigger_mono: int = 0    # that tick's mono_ts
    created_mono: int = 0    # CLOCK_MONOTONIC when made
    ttl_ns: int = 0          # valid until created_mono + ttl_ns
    qty: float = 0.0
    price: float = float("nan")  # NaN for MARKET
    strategy_id: int = 0
    symbol: int = 0
    venue: int = 0
    side: int = 0            # OrderSide: 1 buy, -1 sell
    order_type: int = 2      # OrderType (MARKET)
    tif: int = 0             # TimeInForce
    version: int = SIGNAL_VERSION
    action: int = 0          # records.SignalAction: 0 new order, 1 cancel, 2 replace
    replace_back: int = 0    # replace: the replaced order is seq - replace_back

    def expired(self, now_mono: int) -> bool:
        return now_mono > self.created_mono + self.ttl_ns


assert Signal._fields == SIGNAL_FIELDS, (Signal._fields, SIGNAL_FIELDS)

_WARM_SIGNAL = Signal(ttl_ns=1, created_mono=1, qty=1.0, side=1, order_type=2)


def encode(sig: Signal) -> bytes:
    """The 80 bytes of one signal record."""
    try:
        return _STRUCT.pack(*sig)
    except struct.error as exc:
        raise SignalFormatError(f"cannot encode signal {sig!r}: {exc}") from None


def decode(buf: bytes | memoryview) -> Signal:
    """One signal from its 80 bytes; SignalFormatError on a wrong size or version."""
    n = len(buf)
    if n != SIGNAL_SIZE:
        raise SignalFormatError(f"signal frame is {n} bytes, expected {SIGNAL_SIZE}")
    sig = Signal._make(_STRUCT.unpack(buf))
    if sig.version != SIGNAL_VERSION:
        raise SignalFormatError(
            f"signal version {sig.version} is not supported (this build speaks {SIGNAL_VERSION})")
    return sig


def to_array(signals: list[Signal]) -> np.ndarray:
    """Signals as a SIGNAL_DTYPE array (same bytes as their encodings, concatenated)."""
    return np.frombuffer(b"".join(encode(s) for s in signals), dtype=SIGNAL_DTYPE).copy()


def from_array(arr: np.ndarray) -> list[Signal]:
    if arr.dtype != SIGNAL_DTYPE:
        raise SignalFormatError(f"expected SIGNAL_DTYPE records, got {arr.dtype}")
    raw = np.ascontiguousarray(arr).tobytes()
    return [decode(raw[i:i + SIGNAL_SIZE]) for i in range(0, len(raw), SIGNAL_SIZE)]
