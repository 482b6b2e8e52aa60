"""A venue host closed to us (HTTP 429 / 418 with Retry-After), shared by every process of a run.

Venues limit REST request weight per IP, not per process: Binance answers the first request over
the limit with 429 and bans the IP (418, two minutes and more) for any request that follows
before its Retry-After, whichever process sends it. The gateway and the collector's depth
snapshots are two processes on one IP, so a closure one of them is told about must hold for the
other too. (Seen in the chaos soak: the gateway got a 429, the collector's next depth snapshot
4 s later earned the IP a 120 s ban, and every gateway start during it failed.)

One small JSON record per host in the run directory, `<run_dir>/venue-closed-<host>.json`
(host, until_wall_s, status), written under a lock by whoever is told (a later closure is never
shortened) and read by everyone before they send (re-read only when the file changed: one stat
per check). Without a run directory (a role started by hand, no PIPELINE_RUN_DIR) nothing is
shared and each process keeps its own closure, as before. Nothing here names a venue.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)
ENV_RUN_DIR = "PIPELINE_RUN_DIR"


def closure_path(run_dir: str | Path, host: str) -> Path:
    return Path(run_dir) / f"venue-closed-{re.sub(r'[^A-Za-z0-9._-]', '_', host)}.json"


class SharedClosure:
    """The run's record of `host` being closed. `record(status, until)` after a 429/418;
    `wait_s()` before a request: seconds until the host is open again (0: open)."""

    def __init__(self, host: str, run_dir: str | Path | None = None, clock=time.time):
        self.host = host
        self.clock = clock
        rd = run_dir if run_dir is not None else os.environ.get(ENV_RUN_DIR)
        self.path = closure_path(rd, host) if rd else None
        self._stamp: tuple | None = None
        self._until, self._status = 0.0, 0

    def record(self, status: int, until_wall_s: float) -> None:
        """This process was told the host is closed until `until_wall_s`: say so to the run."""
        if self.path is None:
            return
        try:
            fd = os.open(self.path.with_name(self.path.name + ".lock"),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._stamp = None
                until, _ = self.until()
                if until_wall_s <= until:
                    return                      # a later closure is already recorded
                tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
                with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
                    json.dump({"host": self.host, "until_wall_s": until_wall_s,
                               "status": int(status), "pid": os.getpid()}, f)
                os.replace(tmp, self.path)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("cannot share the closure of %s in %s: %s", self.host, self.path, exc)

    def until(self) -> tuple[float, int]:
        """(until_wall_s, HTTP status) of the recorded closure, (0.0, 0) if none."""
        if self.path is None:
            return 0.0, 0
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._until, self._status = None, 0.0, 0
            return 0.0, 0
        except OSError:
            return self._until, self._status
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                rec = json.loads(self.path.read_text())
                if rec["host"] != self.host:
                    raise ValueError(f"a record of host {rec['host']!r}")
                self._until, self._status = float(rec["until_wall_s"]), int(rec["status"])
            except FileNotFoundError:
                self._stamp, self._until, self._status = None, 0.0, 0
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring an unreadable venue closure record %s: %s", self.path, exc)
                self._until, self._status = 0.0, 0
        return self._until, self._status

    def wait_s(self) -> float:
        return max(0.0, self.until()[0] - self.clock())
