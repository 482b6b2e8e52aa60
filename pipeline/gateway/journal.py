"""The gateway's append-only journal: one JSON object per line, every decision and every fact.

Record kinds (`k`), each with `t` (CLOCK_REALTIME ns) and `m` (CLOCK_MONOTONIC ns):

    start      a gateway process started (pid, transport)
    signal     a signal decision: accepted or rejected with its reason, (strategy, epoch, seq)
    gap        a sequence gap in a strategy's signals (missing count)
    order      an order was created locally (cid, symbol, side, type, tif, qty, price)
    request    a request written to the venue (method, path, body WITHOUT the signature, attempt)
    response   what came back (status, code, body excerpt) or the transport failure
    state      an order state change (cid, from, to, why)
    fill       one fill (symbol, trade id, cid, side, qty, price, commission), deduplicated
    trading    the trading state changed (ACTIVE / REDUCING / HALTED, why)
    clock      a clock sync result (offset, rtt)
    reconcile  the reconciliation report at start (unknown exchange orders included)
    stop       clean shutdown

Nothing secret goes in: request bodies are journalled with `&signature=` removed, and every line
passes the Redactor's fast scrub (key and secret values, signature fields) before it is written,
as a second line of defence.

Records are buffered and written by `commit()` with one os.write: the gateway commits right
before it writes a request to the venue (write-ahead: the order and the request are on disk before
any byte goes out), after each signal, and on every loop turn.

fsync policy: "always" (fsync at every commit: before each request goes out, after each signal,
on every loop turn that wrote something), "interval" (`maybe_sync()`, called by the
gateway's loop between signals, syncs at most every `fsync_ms`; flush/close sync), "never" (the OS
decides). A line is always written with one os.write of the whole
line (O_APPEND), so a SIGKILL leaves at most one torn last line, which `read` skips (counted).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

log = logging.getLogger(__name__)


def strip_signature(body: bytes | str) -> str:
    """A request body or query without its `signature` parameter."""
    s = body.decode("ascii", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    return "&".join(p for p in s.split("&") if not p.startswith("signature="))


class Journal:
    def __init__(self, path: str | Path, *, fsync: str = "interval", fsync_ms: int = 200,
                 redact: Callable[[str], str] | None = None):
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"fsync must be always, interval or never, got {fsync!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.policy = fsync
        self.fsync_ns = fsync_ms * 1_000_000
        self._last_sync = time.perf_counter_ns()
        self._dirty = False
        self.redact = redact
        self.records = 0
        self.closed = False
        self._buf: list[bytes] = []

    def write(self, kind: str, **fields: Any) -> None:
        """Buffer one record (see commit)."""
        rec = {"k": kind, "t": time.time_ns(), "m": time.perf_counter_ns(), **fields}
        line = orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
                            default=str)
        if self.redact is not None:
            line = self.redact(line.decode()).encode()
        self._buf.append(line)
        self.records += 1

    def commit(self) -> None:
        """Write the buffered records (one os.write, O_APPEND); fsync under "always"."""
        if not self._buf or self.closed:
            return
        data = b"\n".join(self._buf) + b"\n"
        self._buf.clear()
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self._dirty = True
        if self.policy == "always":
            os.fsync(self.fd)
            self._dirty = False
        # "interval": the owner's loop calls maybe_sync() (never an fsync on the order path)

    def maybe_sync(self) -> None:
        self.commit()
        if self._dirty and self.policy == "interval":
            now = time.perf_counter_ns()
            if now - self._last_sync >= self.fsync_ns:
                os.fsync(self.fd)
                self._last_sync = now
                self._dirty = False

    def flush(self) -> None:
        """Commit, then fsync (any policy but never: then it is the OS's business)."""
        self.commit()
        if self._dirty and self.policy != "never" and not self.closed:
            os.fsync(self.fd)
            self._dirty = False
            self._last_sync = time.perf_counter_ns()

    def close(self) -> None:
        if self.closed:
            return
        self.commit()
        if self.policy != "never":
            self.flush()
        os.close(self.fd)
        self.closed = True


def read(path: str | Path) -> Iterator[dict]:
    """Every well-formed record of a journal, in order (a torn or corrupt line: logged, skipped)."""
    p = Path(path)
    if not p.exists():
        return
    with p.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("journal %s: line %d is not a complete record (torn write?); skipped",
                            p, n)
                continue
            if isinstance(rec, dict) and "k" in rec:
                yield rec
