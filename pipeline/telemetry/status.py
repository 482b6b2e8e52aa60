"""The status block: a small shared-memory segment the launcher owns, one slot per role.

A role started by the launcher finds its slot through the environment (PIPELINE_STATUS = segment
name, PIPELINE_STATUS_SLOT = index) and calls `RoleStatus.from_env()`; run on its own (no launcher)
it gets a `RoleStatus` backed by private memory, so role code never branches on how it was started.
Each role writes only its own slot; plain aligned 8-byte stores suffice (counters, not a protocol).
After the slots, one ROLE_EXTRA_DTYPE record per role: feed counters (reconnects, resyncs, ...)
and the hop histograms the role exports for Prometheus (`RoleStatus.hops`, written at most once a
second by `HopRecorder.export`).
"""
from __future__ import annotations

import os
import time

import numpy as np

from pipeline.bus import segments, shm
from pipeline.records import (HOP_CELLS, HOP_SLOTS, ROLE_EXTRA_DTYPE, ROLE_STATUS_DTYPE,
                              STATUS_HEADER_DTYPE, STATUS_MAGIC, RoleState, TradingState)

ENV_SEGMENT = "PIPELINE_STATUS"
ENV_SLOT = "PIPELINE_STATUS_SLOT"
ENV_ROLE = "PIPELINE_ROLE"
HEADER = STATUS_HEADER_DTYPE.itemsize
COUNTERS = ("ticks", "signals", "orders", "fills", "rejects", "errors", "dropped")
EXTRA_COUNTERS = ("reconnects", "resyncs", "stale", "gaps")
HOP_LAYOUT = HOP_SLOTS << 16 | HOP_CELLS


def block_size(nslots: int) -> int:
    return HEADER + nslots * (ROLE_STATUS_DTYPE.itemsize + ROLE_EXTRA_DTYPE.itemsize)


class StatusBlock:
    """The launcher's handle (create) or a role's attachment (attach)."""

    def __init__(self, seg, owner: bool):
        self._seg = seg
        self.owner = owner
        self.name = seg.name
        self.header = np.frombuffer(seg.buf, dtype=STATUS_HEADER_DTYPE, count=1)
        n = int(self.header[0]["nslots"])
        self.slots = np.frombuffer(seg.buf, dtype=ROLE_STATUS_DTYPE, count=n, offset=HEADER)
        self.extras = np.frombuffer(seg.buf, dtype=ROLE_EXTRA_DTYPE, count=n,
                                    offset=HEADER + n * ROLE_STATUS_DTYPE.itemsize)
        self._closed = False

    @classmethod
    def create(cls, name: str, nslots: int) -> "StatusBlock":
        size = block_size(nslots)
        shm.check_free_space(name, size)
        try:
            seg = shm.open_segment(name, create=True, size=size)
        except FileExistsError:
            old = cls.attach(name)
            owner, epoch = int(old.header[0]["owner_pid"]), int(old.header[0]["epoch_ns"])
            old.close()
            if shm.pid_alive(owner, epoch):
                raise RuntimeError(f"status block {name!r} is in use by live pid {owner}") from None
            shm.unlink(name)
            seg = shm.open_segment(name, create=True, size=size)
        shm.reserve(seg, size)
        h = np.frombuffer(seg.buf, dtype=STATUS_HEADER_DTYPE, count=1)
        h["nslots"] = nslots
        h["owner_pid"] = os.getpid()
        h["epoch_ns"] = time.time_ns()
        h["tag"] = segments.creator_tag()       # whose run this is (pipeline/bus/segments.py)
        h["hop_layout"] = HOP_LAYOUT
        h["magic"] = STATUS_MAGIC
        del h
        return cls(seg, owner=True)

    @classmethod
    def attach(cls, name: str) -> "StatusBlock":
        seg = shm.open_segment(name, create=False)
        if seg.size < HEADER or int(np.frombuffer(seg.buf, "<u8", count=1)[0]) != STATUS_MAGIC:
            seg.close()
            raise RuntimeError(f"segment {name!r} is not a status block")
        h = np.frombuffer(seg.buf, dtype=STATUS_HEADER_DTYPE, count=1)[0]
        if seg.size < block_size(int(h["nslots"])) or int(h["hop_layout"]) != HOP_LAYOUT:
            del h
            seg.close()
            raise RuntimeError(f"status block {name!r} has another layout (a different build?)")
        del h
        return cls(seg, owner=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.header = self.slots = self.extras = None
        try:
            self._seg.close()
        except BufferError:      # a snapshot still holds a view: unmapped when it is dropped
            pass
        if self.owner:
            try:
                shm.unlink_segment(self._seg)
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request_halt(self, slot: int | None = None) -> None:
        """The launcher's HALT request: to every gateway (the header's word), or to the gateway
        of one slot only (its extra record's word: a run of several venues)."""
        if slot is None:
            self.header[0]["halt"] = 1
        else:
            self.extras[slot]["halt"] = 1

    def clear_halt(self, slot: int | None = None) -> None:
        """Lift the launcher's HALT request, run-wide or one slot's (the gateway lifts a HALT it
        took for this word when no word asks for it any more; a kill switch or its own HALT
        stays)."""
        if slot is None:
            self.header[0]["halt"] = 0
        else:
            self.extras[slot]["halt"] = 0

    def request_shutdown(self) -> None:
        self.header[0]["shutdown"] = 1

    def snapshot(self) -> np.ndarray:
        return self.slots.copy()

    def extras_snapshot(self) -> np.ndarray:
        return self.extras.copy()


class RoleStatus:
    """A role's own slot: heartbeat, state, counters, hop latency."""

    def __init__(self, slot: np.ndarray, header: np.ndarray | None, block: StatusBlock | None,
                 extra: np.ndarray | None = None):
        self._slot = slot            # a 1-element ROLE_STATUS_DTYPE view
        self._extra = extra if extra is not None else np.zeros(1, dtype=ROLE_EXTRA_DTYPE)
        self.hops = self._extra[0]["hops"]     # (HOP_SLOTS, HOP_CELLS) int64 view
        self._header = header
        self._block = block
        self.role = os.environ.get(ENV_ROLE, "standalone")
        self._slot[0]["pid"] = os.getpid()
        self._slot[0]["started_mono"] = time.perf_counter_ns()

    @classmethod
    def from_env(cls) -> "RoleStatus":
        name = os.environ.get(ENV_SEGMENT)
        if name:
            block = StatusBlock.attach(name)
            i = int(os.environ.get(ENV_SLOT, "0"))
            return cls(block.slots[i:i + 1], block.header, block, block.extras[i:i + 1])
        return cls(np.zeros(1, dtype=ROLE_STATUS_DTYPE), None, None)

    def heartbeat(self) -> None:
        self._slot[0]["heartbeat_mono"] = time.perf_counter_ns()

    def set_state(self, state: RoleState) -> None:
        self._slot[0]["state"] = int(state)
        self.heartbeat()

    def set(self, **fields) -> None:
        """Set counters/gauges by name (ticks=..., pnl=..., hop_p99_ns=...)."""
        s = self._slot[0]
        for k, v in fields.items():
            s[k] = v

    def set_extra(self, **fields) -> None:
        """Set the extra record's counters by name (reconnects=..., resyncs=...)."""
        s = self._extra[0]
        for k, v in fields.items():
            s[k] = v

    def add(self, field: str, n: int = 1) -> None:
        self._slot[0][field] += n

    def get(self, field: str):
        return self._slot[0][field].item()

    def set_trading_state(self, state: TradingState) -> None:
        self._slot[0]["trading_state"] = int(state)

    @property
    def halt_requested(self) -> bool:
        """The launcher asks this role (a gateway) to HALT: run-wide, or this slot only."""
        return self._header is not None and (bool(self._header[0]["halt"])
                                             or bool(self._extra[0]["halt"]))

    @property
    def shutdown_requested(self) -> bool:
        return self._header is not None and bool(self._header[0]["shutdown"])

    def close(self) -> None:
        if self._block is not None:
            self._slot = np.zeros(1, dtype=ROLE_STATUS_DTYPE)
            self._extra = np.zeros(1, dtype=ROLE_EXTRA_DTYPE)
            self.hops = self._extra[0]["hops"]
            self._header = None
            self._block.close()
            self._block = None
