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
line (O_APPEND), so a SIGKILL leaves at most one torn last line, which `read` skips (logged).
Opening a journal whose last byte is not a newline (a torn last line) first writes a newline, so
the torn line stays one bad line and cannot swallow the next session's first record
(`torn_at_open`).

A failed write (ENOSPC, EIO) loses nothing: `commit()` keeps every unwritten byte buffered, counts
the failure (`write_errors`), logs it, and raises `JournalWriteError`; the next commit retries
from the first unwritten byte. Callers on the order path treat the error as "the write-ahead
record is not on disk": nothing is sent.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

log = logging.getLogger(__name__)


class JournalWriteError(OSError):
    """The journal could not write its buffered records (they stay buffered for the next try)."""


LOG_EVERY_NS = 1_000_000_000        # write-failure log lines at most once a second


class SyncPolicy:
    """The fsync policy of a write-ahead journal (always / interval / never), shared by the JSON
    lines journal and the binary one (pipeline/gateway/binjournal.py). The owner provides
    commit(), _sync() (which clears _dirty) and the policy, fsync_ns, _last_sync, _dirty and
    closed attributes."""

    def maybe_sync(self) -> None:
        self.commit()
        if self._dirty and self.policy == "interval":
            now = time.perf_counter_ns()
            if now - self._last_sync >= self.fsync_ns:
                self._last_sync = now
                self._sync()

    def prefault(self) -> None:
        """Nothing to do (the binary journal makes its next pages writable here)."""

    def flush(self) -> None:
        """Commit, then fsync (any policy but never: then it is the OS's business)."""
        self.commit()
        if self._dirty and self.policy != "never" and not self.closed:
            self._last_sync = time.perf_counter_ns()
            self._sync()


class Journal(SyncPolicy):
    def __init__(self, path: str | Path, *, fsync: str = "interval", fsync_ms: int = 200,
                 redact: Callable[[str], str] | None = None):
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"fsync must be always, interval or never, got {fsync!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.policy = fsync
        self.fsync_ns = fsync_ms * 1_000_000
        self._last_sync = time.perf_counter_ns()
        self._dirty = False
        self.redact = redact
        self.records = 0
        self.closed = False
        self._buf: list[bytes] = []
        self._pending = b""          # bytes of an earlier commit that are not on disk yet
        self.write_errors = 0
        self.sync_errors = 0
        self._last_error_log = 0
        self.torn_at_open = 0
        try:
            self._close_torn_line()
        except BaseException:
            os.close(self.fd)
            raise

    def _close_torn_line(self) -> None:
        """A last line without its newline (torn by a crash or a full disk) is ended here, so
        the next record starts on a line of its own (the torn line is skipped on reading)."""
        size = os.fstat(self.fd).st_size
        if size and os.pread(self.fd, 1, size - 1) != b"\n":
            self.torn_at_open = 1
            log.warning("journal %s: the last line is incomplete (torn write); ending it so it "
                        "stays one skipped line", self.path)
            os.write(self.fd, b"\n")

    def render(self, kind: str, **fields: Any) -> bytes:
        """One record as the line `write` would buffer (the gateway's idle dry run formats one
        to keep this path warm; nothing is buffered)."""
        rec = {"k": kind, "t": time.time_ns(), "m": time.perf_counter_ns(), **fields}
        line = orjson.dumps(rec, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
                            default=str)
        if self.redact is not None:
            line = self.redact(line.decode()).encode()
        return line

    def write(self, kind: str, **fields: Any) -> None:
        """Buffer one record (see commit)."""
        self._buf.append(self.render(kind, **fields))
        self.records += 1

    @property
    def pending(self) -> int:
        """Records or bytes waiting to be written (0 when everything is on disk)."""
        return len(self._buf) + (1 if self._pending else 0)

    def commit(self) -> None:
        """Write the buffered records (one os.write, O_APPEND); fsync under "always".

        On a write error the unwritten bytes stay buffered (nothing is lost, the next commit
        retries them first) and JournalWriteError is raised."""
        if self.closed or not (self._buf or self._pending):
            return
        if self._buf:
            data = self._pending + b"\n".join(self._buf) + b"\n"
            self._buf.clear()
        else:
            data = self._pending
        self._pending = data
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self.fd, view[done:])
        except OSError as exc:
            self._pending = data[done:]     # a partial write: the rest follows it next time
            self.write_errors += 1
            now = time.perf_counter_ns()
            if now - self._last_error_log >= LOG_EVERY_NS:
                self._last_error_log = now
                log.error("journal %s: write failed (%s); %d bytes kept for the next try "
                          "(%d write errors so far)", self.path, exc, len(self._pending),
                          self.write_errors)
            raise JournalWriteError(exc.errno, f"journal write failed: {exc.strerror}") from exc
        self._pending = b""
        self._dirty = True
        if self.policy == "always":
            self._sync()
        # "interval": the owner's loop calls maybe_sync() (never an fsync on the order path)

    def _sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as exc:
            self.sync_errors += 1
            log.error("journal %s: fsync failed (%s; %d so far)", self.path, exc,
                      self.sync_errors)
            raise JournalWriteError(exc.errno, f"journal fsync failed: {exc.strerror}") from exc
        self._dirty = False

    def close(self) -> None:
        """Flush (best effort: a failing disk is logged, the file is closed anyway)."""
        if self.closed:
            return
        try:
            self.flush()
        except JournalWriteError as exc:
            log.error("journal %s: closing with %d unwritten record(s)/byte run(s) (%s)",
                      self.path, self.pending, exc)
        os.close(self.fd)
        self.closed = True


def read(path: str | Path, stats: dict[str, int] | None = None) -> Iterator[dict]:
    """Every well-formed record of a journal, in order (a torn or corrupt line: logged, skipped,
    counted in `stats["torn"]` when a dict is given)."""
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
                if stats is not None:
                    stats["torn"] = stats.get("torn", 0) + 1
                log.warning("journal %s: line %d is not a complete record (torn write?); skipped",
                            p, n)
                continue
            if isinstance(rec, dict) and "k" in rec:
                yield rec
