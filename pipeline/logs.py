"""The one logging setup of every role, and the one-line events an operator joins.

Where: a role the launcher starts logs to `<log dir>/<role>.log` (the log dir is `[logging].dir`,
by default `<launcher.run_dir>/logs`; the launcher hands it to each role as PIPELINE_LOG_DIR),
rotated by size (`max_bytes`, `backup_count`), as text or JSON lines (`format`). Whatever a role
writes to stdout/stderr outside logging (a crash's traceback) lands in `<role>.stderr` beside it.
A role run by hand (no launcher, no `[logging].dir`) logs to stderr.

The hot loops never wait for the disk, nor for another thread: a record is appended to a
buffer (no lock beyond the GIL) and a writer thread formats and writes the buffer 0.1 s after its
first record came (at once for WARNING and above). The writer sleeps on an event, not a poll: an
idle role's writer never wakes, and a busy one wakes once per 0.1 s batch. The gateway logs an
order's lines after its request is on the wire. A pinned role moves that thread off its
loop's cores with pin_writer (the gateway does, beside its other helper threads). Filters on the
buffering handler (the gateway's secret redaction: pipeline.gateway.secrets.install_log_redaction
adds it to the root logger's handlers) run before a record leaves the thread that logged it.

Events (INFO, one line each, `key=value` in text, fields in JSON):
    order_log("SENT", cid, symbol=..., ...)    every order decision (logger pipeline.orders);
                                                the client order id pl<strategy>.<epoch>.<seq>
                                                (hex) is expanded into strategy/epoch/seq
    event_log("HALT", why=..., ...)             trading state, reconnect, resync, clock
                                                (logger pipeline.events)
"""
from __future__ import annotations

import atexit
import collections
import logging
import logging.handlers
import os
import threading
import sys
import time
from pathlib import Path
from typing import Any

ENV_LOG_DIR = "PIPELINE_LOG_DIR"
ENV_ROLE = "PIPELINE_ROLE"
TEXT_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"

orders_log = logging.getLogger("pipeline.orders")
events_log = logging.getLogger("pipeline.events")

_writer: "_Deferred | None" = None
_installed: list[logging.Handler] = []
_saved: list[tuple[Any, int]] = []          # (root or a caller's handler, its level before)
_saved_globals: dict[str, Any] = {}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601 with ms), level, role, pid, logger, msg, and
    the event's fields (event, cid, strategy, epoch, seq, symbol, ...) at the top level."""

    def __init__(self, role: str):
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        import orjson
        d: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "role": self.role, "pid": record.process,
            "logger": record.name, "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for k, v in fields.items():
                d.setdefault(k, v)
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            d["exc"] = record.exc_text
        return orjson.dumps(d, default=str).decode()


class _TextFormatter(logging.Formatter):
    converter = time.gmtime          # UTC, like the JSON lines and the journal


class _Deferred(logging.Handler):
    """Buffers records for a writer thread that hands them to the real handlers (`targets`,
    each with its own level) `interval_s` after the first record of a batch, or at once for
    WARNING and above; woken by events only (the first record of a batch, a WARNING, pin, close). The message is
    rendered here, once, so the writer needs nothing of the caller's arguments."""

    def __init__(self, targets: list[logging.Handler], interval_s: float = 0.1):
        super().__init__()
        self.targets = targets
        self.interval_s = interval_s
        self.buf: collections.deque = collections.deque()
        self._wake = threading.Event()      # a batch began (or pin/close)
        self._now = threading.Event()       # a WARNING (or close): write without waiting
        self._drain_lock = threading.Lock()
        self._stop = False
        self._cores: set[int] | None = None
        self.wakeups = 0                    # writer wake-ups (tests: none while nothing is logged)
        self.thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self.thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None           # the text is kept; the traceback objects are not
        self.buf.append(record)          # atomic under the GIL
        if record.levelno >= logging.WARNING:
            self._now.set()
            self._wake.set()
        elif len(self.buf) == 1:         # the first record since the writer's last drain
            self._wake.set()

    def pin(self, cores: set[int] | None) -> None:
        self._cores = set(cores) if cores else None
        self._wake.set()

    def _run(self) -> None:
        from pipeline.hotloop import quiet_signals
        quiet_signals()                 # the loop's signals go to the loop
        while True:
            self._wake.wait()
            self._wake.clear()
            self.wakeups += 1
            if self.buf and not self._stop:
                self._now.wait(self.interval_s)      # gather the batch (a WARNING cuts it short)
            self._now.clear()
            if self._cores:
                cores, self._cores = self._cores, None
                try:
                    os.sched_setaffinity(0, cores)       # this thread only (Linux)
                except OSError:
                    pass
            self.drain()
            if self._stop:
                return

    def drain(self) -> None:
        with self._drain_lock:
            while True:
                try:
                    r = self.buf.popleft()
                except IndexError:
                    break
                for h in self.targets:
                    if r.levelno >= h.level:
                        h.handle(r)
            for h in self.targets:
                h.flush()

    def close(self) -> None:
        self._stop = True
        self._now.set()
        self._wake.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(5)
        self.drain()
        for h in self.targets:
            try:
                h.close()
            except Exception:  # noqa: BLE001 - closing at exit, nothing to do about it
                pass
        super().close()


def log_dir(cfg=None, run_dir: str | os.PathLike | None = None) -> Path | None:
    """Where this process's role logs go: PIPELINE_LOG_DIR (set by the launcher), else
    [logging].dir, else None (stderr)."""
    env = os.environ.get(ENV_LOG_DIR)
    if env:
        return Path(env)
    lc = getattr(cfg, "logging", None)
    if lc is not None and lc.dir:
        return Path(lc.dir)
    if run_dir is not None:
        return Path(run_dir) / "logs"
    return None


def launcher_log_dir(cfg) -> Path:
    """The run's log directory as the launcher decides it: [logging].dir or <run_dir>/logs."""
    return Path(cfg.logging.dir) if cfg.logging.dir else Path(cfg.launcher.run_dir) / "logs"


def make_formatter(fmt: str, role: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(role)
    return _TextFormatter(TEXT_FORMAT, DATE_FORMAT)


def setup(role: str, cfg=None, *, level: str | None = None, directory: str | Path | None = None,
          console_level: str | None = None) -> Path | None:
    """Configure the root logger for one role; returns the log file (None: stderr only).

    cfg: the PipelineConfig (its [logging] section) or None for the defaults; level overrides
    [logging].level (a role's --log-level); directory overrides where the file goes;
    console_level also logs to stderr at that level (the launcher: warnings on the console).
    Idempotent: a second call replaces the handlers of the first."""
    from pipeline.config import LoggingConfig
    lc = getattr(cfg, "logging", None) or LoggingConfig()
    lvl = (level or lc.level).upper()
    teardown()
    root = logging.getLogger()
    # handlers a caller put on the root logger (a console) keep showing what they showed: each is
    # pinned to the root's level from before (restored by teardown); and no second console
    _saved[:] = [(root, root.level)] + [(h, h.level) for h in root.handlers]
    for h in root.handlers:
        h.setLevel(max(h.level, root.level))
    if any(type(h) is logging.StreamHandler for h in root.handlers):
        console_level = None
    where = Path(directory) if directory is not None else log_dir(cfg)
    targets: list[logging.Handler] = []
    path = None
    if where is not None:
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"{role}.log"
        fh = logging.handlers.RotatingFileHandler(path, maxBytes=lc.max_bytes,
                                                  backupCount=lc.backup_count, encoding="utf-8")
        fh.setFormatter(make_formatter(lc.format, role))
        targets.append(fh)
    if (where is None and not root.handlers) or console_level:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(make_formatter("text", role))
        if where is not None:
            sh.setLevel(console_level.upper())
        targets.append(sh)
    # what the formats never show is not computed per record (the logging docs' "Optimization"):
    # no caller frame walk, no thread or multiprocessing names; the pid is kept
    _saved_globals.update(_srcfile=logging._srcfile, logThreads=logging.logThreads,
                          logMultiprocessing=logging.logMultiprocessing)
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    global _writer
    _writer = _Deferred(targets)
    root.addHandler(_writer)
    root.setLevel(lvl)
    _installed[:] = [_writer]
    return path


def pin_writer(cores: set[int] | None) -> None:
    """Run the log writer thread on these CPUs (a pinned role's loop keeps its own core)."""
    if _writer is not None and cores:
        _writer.pin(cores)


def flush() -> None:
    """Wait until every record logged so far is written (tests, before reading a log)."""
    if _writer is not None:
        _writer.drain()


def teardown() -> None:
    """Undo setup(): remove its handler from the root logger, write what is queued, close."""
    root = logging.getLogger()
    for h in _installed:
        root.removeHandler(h)
    _installed.clear()
    for obj, level in _saved:
        obj.setLevel(level)
    _saved.clear()
    for k, v in _saved_globals.items():
        setattr(logging, k, v)
    _saved_globals.clear()
    shutdown()


def shutdown() -> None:
    """Stop the writer thread (writing what is buffered) and close the files."""
    global _writer
    if _writer is not None:
        w, _writer = _writer, None
        logging.getLogger().removeHandler(w)
        w.close()


atexit.register(shutdown)


# ------------------------------------------------------------------------------------------ events
def _kv(fields: dict[str, Any]) -> str:
    parts = []
    for k, v in fields.items():
        if v is None or v == "":
            continue
        s = str(v)
        if " " in s or "=" in s:
            s = '"' + s.replace('"', "'") + '"'
        parts.append(f"{k}={s}")
    return " ".join(parts)


def ids_of_cid(cid: str) -> dict[str, int]:
    """strategy/epoch/seq of one of our client order ids (pl<strategy>.<epoch>.<seq>, hex);
    {} for any other id."""
    if not cid.startswith("pl"):
        return {}
    try:
        s, e, q = cid[2:].split(".")
        return {"strategy": int(s, 16), "epoch": int(e, 16), "seq": int(q, 16)}
    except ValueError:
        return {}


def order_log(event: str, cid: str = "", level: int = logging.INFO, **fields: Any) -> None:
    """One order decision, one line: `order <EVENT> cid=… strategy=… epoch=… seq=… symbol=…`.
    Events: SENT, ACK, FILL, FILLED, PARTIALLY_FILLED, REJECTED (reason=…), CANCELED, EXPIRED,
    UNKNOWN, LOST, RESOLVED (UNKNOWN → a venue state), and REFUSED (a signal the gateway would
    not send: reason=…)."""
    if not orders_log.isEnabledFor(level):
        return
    f: dict[str, Any] = {"event": event}
    if cid:
        f["cid"] = cid
        f.update(ids_of_cid(cid))
    for k, v in fields.items():
        f.setdefault(k, v)
    orders_log.log(level, "order %s %s", event, _kv({k: v for k, v in f.items() if k != "event"}),
                   extra={"fields": f})


def event_log(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """One operational event, one line: HALT, REDUCE, ACTIVE (reset), RECONNECT, RESYNC_START,
    RESYNC_DONE, STALE, CLOCK_SYNC, CLOCK_SKEW, ROLE_STARTED, ROLE_FAILED, ..."""
    if not events_log.isEnabledFor(level):
        return
    f = {"event": event, **fields}
    events_log.log(level, "%s %s", event, _kv(fields), extra={"fields": f})


def setup_role(kind: str, cfg=None, level: str | None = None) -> Path | None:
    """setup() for a role process: named as the launcher named it (PIPELINE_ROLE), else `kind`."""
    return setup(os.environ.get(ENV_ROLE) or kind, cfg, level=level)
