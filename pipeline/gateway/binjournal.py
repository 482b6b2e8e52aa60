"""The gateway's binary write-ahead journal (`<state_dir>/journal.bin`): fixed 256-byte records in a
preallocated, memory-mapped file, written by compiled code (ext/journal.pyx; its twin is
pipeline/gateway/journal_py.py; the layout is pipeline/records.py JOURNAL_*).

    j = BinaryJournal(path, fsync="interval", fsync_ms=200, redact=...)
    j.write_order(cid=..., symbol=..., ...)   # the hot path's write-ahead record (signal accepted,
                                              # order, request in one ORDER record)
    j.write("state", cid=..., to="FILLED")   # every other record: its JSON in a TEXT record
    j.commit()                                # fsync "always": msync now; else nothing to do
    j.maybe_sync(); j.flush(); j.close()
    for rec in read(path): ...               # the same dicts as pipeline.gateway.journal.read
    export(path, out)                        # JSON lines for people

The interface is pipeline.gateway.journal.Journal's, and so are the rules:

- Write-ahead: a record is in the file's pages (the kernel's page cache, so a SIGKILL loses
  nothing) when `write` / `write_order` return; "always" makes it durable (msync) at `commit`,
  "interval" at most every `fsync_ms` in `maybe_sync`, "never" leaves it to the OS. Under
  "interval" the msync itself runs on the journal's sync thread (`maybe_sync` asks for it and
  returns; the GIL is released during the msync): an msync on ext4 takes ~0.25 ms, several ms at
  times, and on the gateway's loop a signal arriving meanwhile waited for it. `flush` and `close`
  wait for it; a failed msync is counted, logged, and retried at the next interval.
- Preallocated: the file grows `chunk_records` slots at a time with posix_fallocate, so a full disk
  is an error at growth (JournalWriteError, counted in `write_errors`, logged at most once a
  second), never a SIGBUS on a mapped page. A TEXT record that finds no room stays pending in
  memory and goes first at the next write or commit (nothing lost, as the JSON journal's buffer);
  an ORDER record that finds no room raises JournalWriteError: the order is not sent.
- Bounded residency: the scan at open reads every page; they are dropped from the mapping
  right after (madvise DONTNEED: the file keeps them), and each growth maps the file afresh, so
  the journal adds about one chunk (4 MiB) to the process's RSS however long it gets.
- Torn records: a record's seq is stored last and a crc32 covers it, so a slot with seq 0 is the
  end and a slot whose crc does not match is skipped on reading (counted in `stats["torn"]`).
  Opening a journal whose end slot holds bytes (a record torn while being written) zeroes them
  (`torn_at_open`), so the next record starts clean.
"""
from __future__ import annotations

import errno
import logging
import math
import mmap
import os
import threading
import time
import zlib
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import numpy as np
import orjson

from pipeline import _native
from pipeline.gateway.journal import JournalWriteError, SyncPolicy
from pipeline.gateway import journal_py
from pipeline.records import (JOURNAL_FILE_DTYPE, JOURNAL_MAGIC, JOURNAL_ORDER_DTYPE,
                              JOURNAL_PAYLOAD_OFFSET, JOURNAL_RECORD_SIZE, JOURNAL_VERSION,
                              JournalKind, JournalVia)

log = logging.getLogger(__name__)

REC = JOURNAL_RECORD_SIZE
CHUNK_RECORDS = 16384                # 4 MiB of slots per growth step
LOG_EVERY_NS = 1_000_000_000
PREFAULT_SLOTS = 32                  # the next 8 KiB of slots kept writable (prefault)
VIA_NAME = {int(JournalVia.REST): "rest", int(JournalVia.WS_API): "ws_api"}
VIA_OF = {v: k for k, v in VIA_NAME.items()}
ORDER_PATH = "/api/v3/order"


def kernel_writer():
    """The compiled JournalWriter (ExtensionNotBuilt names the build command)."""
    return _native.load("journal").JournalWriter


def is_binary(path: str | Path) -> bool:
    """Does the file start with the binary journal's magic?"""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and int.from_bytes(head, "little") == JOURNAL_MAGIC


def _file_header(created_ns: int) -> bytes:
    h = np.zeros(1, dtype=JOURNAL_FILE_DTYPE)
    h["magic"], h["version"], h["record_size"], h["created_ns"] = (
        JOURNAL_MAGIC, JOURNAL_VERSION, REC, created_ns)
    return h.tobytes()


def _check_header(buf, path) -> None:
    h = np.frombuffer(bytes(buf[:REC]), dtype=JOURNAL_FILE_DTYPE, count=1)[0]
    if int(h["magic"]) != JOURNAL_MAGIC or int(h["record_size"]) != REC:
        raise ValueError(f"{path} is not a binary gateway journal (magic/record size)")
    if int(h["version"]) != JOURNAL_VERSION:
        raise ValueError(f"{path}: journal version {int(h['version'])}, this gateway reads "
                         f"{JOURNAL_VERSION}")


def scan(buf, nslots: int, stats: dict[str, int] | None = None) -> Iterator[tuple[int, int, bytes]]:
    """(slot, span, a copy of the span's bytes) of every complete record in `buf` (the whole file:
    an mmap or bytes), in order, up to the first never-completed slot. A record whose crc does
    not match is skipped (counted in stats["torn"]) and scanning goes on at the next slot."""
    i = 0
    while i < nslots:
        off = REC * (1 + i)
        head = buf[off:off + JOURNAL_PAYLOAD_OFFSET]
        seq = int.from_bytes(head[0:8], "little")
        if seq == 0:
            return
        span = int.from_bytes(head[26:28], "little")
        ok = False
        if 1 <= span and i + span <= nslots:
            rec = bytearray(buf[off:off + span * REC])
            crc = int.from_bytes(rec[32:36], "little")
            rec[0:8] = bytes(8)
            rec[32:36] = bytes(4)
            ok = zlib.crc32(rec) == crc
        if not ok:
            if stats is not None:
                stats["torn"] = stats.get("torn", 0) + 1
            log.warning("journal slot %d: record %d does not match its checksum (torn or "
                        "corrupt); skipped", i, seq)
            i += 1
            continue
        yield i, span, bytes(buf[off:off + span * REC])
        i += span


def decode(span_bytes: bytes) -> list[dict]:
    """The journal dicts of one record (an ORDER record is the "signal" accept, "order" and
    "request" records of the JSON journal; a retry's ORDER record only its "request")."""
    head = np.frombuffer(span_bytes[:REC], dtype=JOURNAL_ORDER_DTYPE, count=1)[0]
    kind = int(head["kind"])
    t, m = int(head["t"]), int(head["m"])
    if kind == JournalKind.TEXT:
        n = int(head["length"])
        rec = orjson.loads(bytes(span_bytes[JOURNAL_PAYLOAD_OFFSET:JOURNAL_PAYLOAD_OFFSET + n]))
        if not isinstance(rec, dict):
            raise ValueError("TEXT record is not a JSON object")
        return [{"k": rec.pop("k", "?"), "t": t, "m": m, **rec}]
    if kind != JournalKind.ORDER:
        raise ValueError(f"unknown journal record kind {kind}")
    cid = bytes(head["cid"])[:int(head["cid_len"])].decode("ascii")
    symbol = bytes(head["symbol"])[:int(head["symbol_len"])].decode("ascii")
    price = float(head["price"])
    strategy, epoch, seq = int(head["strategy"]), int(head["epoch"]), int(head["sig_seq"])
    attempt = int(head["attempt"])
    via = VIA_NAME.get(int(head["via"]), str(int(head["via"])))
    request = {"k": "request", "t": t, "m": m, "cid": cid, "via": via, "attempt": attempt,
               "ts_ms": int(head["ts_ms"])}
    if via == "rest":
        request.update(method="POST", path=ORDER_PATH)
    else:
        request.update(method="order.place")
    if attempt > 1:
        return [request]
    return [
        {"k": "signal", "t": t, "m": m, "decision": "accept", "cid": cid, "strategy": strategy,
         "epoch": epoch, "seq": seq, "symbol": int(head["symbol_id"]), "side": int(head["side"]),
         "qty": float(head["qty"]), "trigger_mono": int(head["trigger_mono"]),
         "created_mono": int(head["created_mono"]), "recv_mono": int(head["recv_mono"])},
        {"k": "order", "t": t, "m": m, "cid": cid, "symbol": symbol,
         "symbol_id": int(head["symbol_id"]), "side": int(head["side"]),
         "order_type": int(head["order_type"]), "tif": int(head["tif"]),
         "qty": float(head["qty"]), "price": None if math.isnan(price) else price,
         "strategy": strategy, "epoch": epoch, "seq": seq},
        request,
    ]


def read(path: str | Path, stats: dict[str, int] | None = None) -> Iterator[dict]:
    """Every well-formed record of a binary journal, as pipeline.gateway.journal.read gives them
    (torn or corrupt records: logged, skipped, counted in stats["torn"])."""
    p = Path(path)
    if not p.exists() or p.stat().st_size < 2 * REC:
        return
    with p.open("rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        _check_header(buf, p)
        nslots = len(buf) // REC - 1
        for slot, _span, data in scan(buf, nslots, stats):
            try:
                recs = decode(data)
            except (ValueError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
                if stats is not None:
                    stats["torn"] = stats.get("torn", 0) + 1
                log.warning("journal %s slot %d: not understood (%s); skipped", p, slot, exc)
                continue
            yield from recs
    finally:
        buf.close()


def read_any(path: str | Path, stats: dict[str, int] | None = None) -> Iterator[dict]:
    """A journal's records, binary or JSON lines (by the file's first bytes)."""
    if is_binary(path):
        yield from read(path, stats)
    else:
        from pipeline.gateway import journal
        yield from journal.read(path, stats)


def export(path: str | Path, out: IO[bytes]) -> int:
    """Write a journal (binary or JSON lines) as JSON lines to `out`; returns the record count."""
    n = 0
    for rec in read_any(path):
        out.write(orjson.dumps(rec) + b"\n")
        n += 1
    return n


class SyncThread:
    """Runs `fn` on a thread of its own (started at the first `ask`) once per `ask`, several asks
    made while it runs served by one run after it; `wait` for what was asked so far; `stop`.
    `cores`: the CPUs it runs on (the gateway's helper cores: off the loop's core)."""

    def __init__(self, fn: Callable[[], None], name: str):
        self.fn = fn
        self.name = name
        self.cores: set[int] | None = None
        self._cv = threading.Condition()
        self._asked = self._served = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def ask(self) -> None:
        with self._cv:
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._asked += 1
            self._cv.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        with self._cv:
            if self._thread is None:
                return True
            target = self._asked
            return self._cv.wait_for(lambda: self._served >= target, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        with self._cv:
            t, self._thread = self._thread, None
            self._stopping = True
            self._cv.notify_all()
        if t is not None:
            t.join(timeout)

    def _run(self) -> None:
        if self.cores:
            try:
                os.sched_setaffinity(0, self.cores)     # per thread on Linux
            except OSError as exc:
                log.warning("%s thread: cannot move to CPUs %s: %s", self.name,
                            sorted(self.cores), exc)
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._asked > self._served or self._stopping)
                if self._asked == self._served:
                    return                              # stopping, nothing asked
                asked = self._asked
            try:
                self.fn()
            except Exception:  # noqa: BLE001 - the thread must go on; fn counts its errors
                log.exception("%s: internal error (continuing)", self.name)
            with self._cv:
                self._served = asked
                self._cv.notify_all()


class BinaryJournal(SyncPolicy):
    """The binary journal with pipeline.gateway.journal.Journal's interface (see the module)."""

    writes_orders = True      # the gateway journals an order as one ORDER record (write_order)

    def __init__(self, path: str | Path, *, fsync: str = "interval", fsync_ms: int = 200,
                 redact: Callable[[str], str] | None = None, chunk_records: int = CHUNK_RECORDS,
                 writer_cls=None, background_sync: bool = True):
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"fsync must be always, interval or never, got {fsync!r}")
        if chunk_records < 1:
            raise ValueError("chunk_records must be >= 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.policy = fsync
        self.fsync_ns = fsync_ms * 1_000_000
        self.redact = redact
        self.chunk = chunk_records
        self._writer_cls = writer_cls or kernel_writer()
        self._last_sync = time.perf_counter_ns()
        self._dirty = False
        self.records = 0
        self.closed = False
        self._pending: list[tuple[int, int, bytes]] = []    # TEXT records that found no room
        self.write_errors = 0
        self.sync_errors = 0
        self._last_error_log = 0
        self.torn_at_open = 0
        # "interval": the msync on a thread of its own (maybe_sync asks, the thread syncs)
        self.background_sync = background_sync and fsync == "interval"
        self.syncs = 0                         # msyncs done
        self._map_lock = threading.Lock()      # the mapping (grow, close) vs an msync on it
        self._syncer = SyncThread(self._background_sync, name="journal-sync")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        self._mm: mmap.mmap | None = None
        self.w = None
        try:
            self._open()
        except BaseException:
            self._unmap()
            os.close(self.fd)
            raise

    # ------------------------------------------------------------------ file
    def _open(self) -> None:
        size = os.fstat(self.fd).st_size
        if size == 0:
            self._grow_to(REC * (1 + self.chunk))
            os.pwrite(self.fd, _file_header(time.time_ns()), 0)
            os.fsync(self.fd)
            self._map()
            self.w = self._writer_cls(self._mm, 0, 1)
            return
        if size < 2 * REC:
            raise ValueError(f"{self.path}: size {size} is not a binary journal's")
        if size % REC:                # an allocation cut short by a full disk
            os.ftruncate(self.fd, size - size % REC)
        self._map()
        _check_header(self._mm, self.path)
        nslots = len(self._mm) // REC - 1
        next_slot, next_seq = 0, 1
        for slot, span, data in scan(self._mm, nslots):
            next_slot = slot + span
            next_seq = int.from_bytes(data[0:8], "little") + 1
        end = REC * (1 + next_slot)
        if next_slot < nslots and any(self._mm[end:end + REC]):
            # a record torn while being written (its seq never stored): clear what it left
            self.torn_at_open = 1
            log.warning("journal %s: the last record is incomplete (torn write); clearing it",
                        self.path)
            i = end
            while i < len(self._mm) and any(self._mm[i:i + REC]):
                self._mm[i:i + REC] = bytes(REC)
                i += REC
            self._mm.flush()
        self.w = self._writer_cls(self._mm, next_slot, next_seq)
        self._release_pages(end)

    def _release_pages(self, upto: int) -> None:
        """Drop this mapping's resident pages below `upto` (the scan at open read every one):
        the file and the page cache keep their bytes, the process's RSS need not. Later writes
        only touch pages after it, and each growth maps the file afresh (nothing resident), so
        the mapping's RSS stays about one chunk whatever the journal's size."""
        n = upto - upto % mmap.PAGESIZE
        if n <= 0 or self._mm is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        try:
            self._mm.madvise(mmap.MADV_DONTNEED, 0, n)
        except (OSError, ValueError) as exc:       # an optimisation only: never fatal
            log.info("journal %s: madvise(DONTNEED) failed: %s", self.path, exc)

    def _grow_to(self, size: int) -> None:
        os.posix_fallocate(self.fd, 0, size)          # reserves the blocks and sets the size

    def _map(self) -> None:
        self._mm = mmap.mmap(self.fd, 0, flags=mmap.MAP_SHARED,
                             prot=mmap.PROT_READ | mmap.PROT_WRITE)

    def _unmap(self) -> None:
        if self.w is not None:
            self.w.detach()
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def _grow(self) -> None:
        """Room for `chunk` more slots (posix_fallocate: a full disk fails here, not later)."""
        old = REC * (1 + self.w.capacity)
        try:
            os.posix_fallocate(self.fd, old, REC * self.chunk)
        except OSError as exc:
            try:
                os.ftruncate(self.fd, old)            # whatever a partial allocation added
            except OSError:
                pass
            self._failed(exc)
        nxt = self.w.next_slot
        with self._map_lock:                  # not while the sync thread msyncs the old mapping
            self._unmap()
            self._map()
            self.w.attach(self._mm, nxt)

    def _failed(self, exc: OSError):
        self.write_errors += 1
        now = time.perf_counter_ns()
        if now - self._last_error_log >= LOG_EVERY_NS:
            self._last_error_log = now
            log.error("journal %s: cannot grow the file (%s); %d record(s) kept for the next try "
                      "(%d write errors so far)", self.path, exc, len(self._pending),
                      self.write_errors)
        raise JournalWriteError(exc.errno or errno.EIO,
                                f"journal write failed: {exc.strerror or exc}") from exc

    # ------------------------------------------------------------------ records
    def render(self, kind: str, **fields: Any) -> bytes:
        """One TEXT record's JSON payload (t and m go in the record head)."""
        line = orjson.dumps({"k": kind, **fields},
                            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
                            default=str)
        if self.redact is not None:
            line = self.redact(line.decode()).encode()
        return line

    def write(self, kind: str, **fields: Any) -> None:
        """One TEXT record (never raises for a full disk: the record stays pending)."""
        if self.closed:
            return
        self._pending.append((time.time_ns(), time.perf_counter_ns(), self.render(kind, **fields)))
        self.records += 1
        try:
            self._drain()
        except JournalWriteError:
            pass                      # counted and logged; commit() raises it to its caller

    def _drain(self) -> None:
        while self._pending:
            t, m, payload = self._pending[0]
            if not self.w.write_text(t, m, payload):
                self._grow()
                continue
            self._pending.pop(0)
            self._dirty = True

    def write_order(self, *, cid: str, symbol: str, symbol_id: int, strategy: int, epoch: int,
                    sig_seq: int, side: int, order_type: int, tif: int, qty: float, price: float,
                    trigger_mono: int, created_mono: int, recv_mono: int, ts_ms: int,
                    attempt: int, via: str) -> None:
        """The write-ahead ORDER record; JournalWriteError when it cannot be written (then the
        order must not be sent). Pending TEXT records go first (order of the journal kept)."""
        if self.closed:
            raise JournalWriteError(errno.EBADF, "journal closed")
        self._drain()
        kw = dict(t=time.time_ns(), m=time.perf_counter_ns(), cid=cid.encode("ascii"),
                  symbol=symbol.encode("ascii"), symbol_id=symbol_id, strategy=strategy,
                  epoch=epoch, sig_seq=sig_seq, side=side, order_type=order_type, tif=tif,
                  qty=qty, price=price, trigger_mono=trigger_mono, created_mono=created_mono,
                  recv_mono=recv_mono, ts_ms=ts_ms, attempt=attempt, via=VIA_OF[via])
        if not self.w.write_order(**kw):
            self._grow()
            if not self.w.write_order(**kw):
                raise JournalWriteError(errno.ENOSPC, "journal: no slot after growing")
        self.records += 1
        self._dirty = True

    def note_order(self, synced: bool) -> None:
        """An ORDER record the compiled order path wrote through `self.w` (ext/orderpath.pyx
        send): counted, and due for the next sync unless `synced` (msync'ed under "always")."""
        self.records += 1
        # a record written earlier (a gap, ...) may still be unsynced: never clear that here
        self._dirty = self._dirty or not (synced and self.policy == "always")

    def prefault(self) -> None:
        """Make the pages of the next free slots writable now (the loop's housekeeping, every
        turn): after an msync, or before its first write, the next store into a page faults into
        the filesystem (~10-30 us on ext4), and without this that store is the compiled order
        path's ORDER record, between signed and on the wire. No byte of the file changes."""
        if not self.closed and self.w is not None:
            self.w.prefault(PREFAULT_SLOTS)

    @property
    def pending(self) -> int:
        """Records waiting for room (0 when everything is in the file)."""
        return len(self._pending)

    def commit(self) -> None:
        """Pending records first; msync under "always". JournalWriteError if a record could not
        be written (it stays pending) or the sync failed."""
        if self.closed:
            return
        self._drain()
        if self.policy == "always" and self._dirty:
            self._sync()

    def maybe_sync(self) -> None:
        """"interval": when due, the msync of what was written since the last one is asked of
        the sync thread and this returns at once (the loop never waits for the disk); the other
        policies as SyncPolicy."""
        if not self.background_sync:
            super().maybe_sync()
            return
        self.commit()
        if self._dirty and not self.closed:
            now = time.perf_counter_ns()
            if now - self._last_sync >= self.fsync_ns:
                self._last_sync = now
                self._dirty = False            # records written from now on: the next sync's
                self._syncer.ask()

    def set_cores(self, cores: set[int] | None) -> None:
        """The CPUs of the sync thread (the gateway's helper cores, off its loop's core)."""
        self._syncer.cores = cores

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait until every msync asked of the sync thread so far is done; False on timeout."""
        return self._syncer.wait(timeout)

    def _background_sync(self) -> None:
        """The sync thread's msync (the GIL is released in it; the loop writes on)."""
        with self._map_lock:
            try:
                if self.w is not None and self._mm is not None:
                    self.w.sync()
                    self.syncs += 1
            except OSError as exc:
                self.sync_errors += 1
                self._dirty = True                  # asked again at the next interval
                log.error("journal %s: msync failed (%s; %d so far)", self.path, exc,
                          self.sync_errors)

    def flush(self) -> None:
        """Commit, then fsync (any policy but never); an msync the sync thread is doing is
        waited for first."""
        self._syncer.wait(10.0)
        super().flush()

    def _sync(self) -> None:
        try:
            with self._map_lock:
                self.w.sync()
                self.syncs += 1
        except OSError as exc:
            self.sync_errors += 1
            log.error("journal %s: msync failed (%s; %d so far)", self.path, exc,
                      self.sync_errors)
            raise JournalWriteError(exc.errno, f"journal fsync failed: {exc.strerror}") from exc
        self._dirty = False

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        except JournalWriteError as exc:
            log.error("journal %s: closing with %d unwritten record(s) (%s)", self.path,
                      self.pending, exc)
        self._syncer.stop()
        with self._map_lock:
            self._unmap()
        os.close(self.fd)
        self.closed = True


def open_journal(gcfg, path: str | Path, *, redact: Callable[[str], str] | None = None,
                 fsync: str | None = None):
    """The journal `[gateway] journal_format` asks for: BinaryJournal ("binary") or the JSON-lines
    Journal ("jsonl"), with the config's fsync policy (or `fsync`)."""
    from pipeline.gateway.journal import Journal
    cls = BinaryJournal if getattr(gcfg, "journal_format", "binary") == "binary" else Journal
    return cls(path, fsync=fsync or gcfg.journal_fsync, fsync_ms=gcfg.journal_fsync_ms,
               redact=redact)


def twin_writer():
    """The pure-Python writer (tests; a machine without the compiled kernel)."""
    return journal_py.JournalWriter
