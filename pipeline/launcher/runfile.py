"""<run_dir>/launcher.json: the running launcher's address book for operator tools.

Written atomically by the launcher (pipeline/launcher/supervisor.py) when its segments exist,
again when each role starts, and once more at the end with "stopped": true. `pipeline status`
reads it, checks the launcher's pid is still that launcher, and attaches the status block
read-only to show each role's live state, heartbeat and counters.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

NAME = "launcher.json"


def write(run_dir: Path, **fields: Any) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"written": time.time(), **fields}, indent=1, default=str))
    os.replace(tmp, path)
    return path


def read(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / NAME).read_text())
    except (OSError, ValueError):
        return None


def launcher_alive(info: dict[str, Any]) -> bool:
    """The launcher that wrote `info` still runs (its pid exists and the file is not marked
    stopped; a reused pid is caught by the status block's owner check when attaching)."""
    if info.get("stopped"):
        return False
    pid = int(info.get("pid") or 0)
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
