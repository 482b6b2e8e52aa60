"""status.json of the gateway: written atomically (tmp + rename), in the background while the
gateway runs so its spinning loop is not blind for the file I/O (~0.5 ms here)."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class StatusFile:
    """Writes status.json atomically (tmp + rename); in the background on a helper thread when
    asked (latest wins: a newer status replaces one not yet written)."""

    def __init__(self, path: Path, background: bool = False, cores: set[int] | None = None):
        self.path = path
        self.cores = cores
        self._lock = threading.Lock()
        self._pending: bytes | None = None
        self._wake = threading.Event()
        self._thread = None
        if background:
            self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
            self._thread.start()

    def write(self, data: bytes) -> None:
        with self._lock:                      # never interleaved with the helper's write
            self._pending = None              # anything queued is older than this
            tmp = self.path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, self.path)

    def submit(self, data: bytes) -> None:
        self._pending = data
        self._wake.set()

    def _run(self) -> None:
        from pipeline.gateway.wire import pin_this_thread
        pin_this_thread(self.cores)
        while True:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                data, self._pending = self._pending, None
                if data is None:
                    continue
                try:
                    tmp = self.path.with_suffix(".tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, self.path)
                except OSError as exc:
                    log.warning("status file %s: %s", self.path, exc)
