"""status.json of the gateway: written atomically (tmp + rename), in the background while the
gateway runs so its spinning loop is not blind for the file I/O (~0.5 ms here)."""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

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


def gateway_status(gw) -> dict[str, Any]:
    """What status.json says about a running gateway (the operator's view)."""
    ex = gw.ex
    lat = gw._hop("intake_to_wire")
    rtt = gw._hop("gateway_response")
    by_state: dict[str, int] = dict(ex.table.retired_states) if ex else {}   # every order
    for o in (ex.table.by_cid.values() if ex else ()):
        by_state[o.state.value] = by_state.get(o.state.value, 0) + 1
    return {
        "phase": gw.phase, "pid": os.getpid(), "trading": gw.trading,
        "halt_reason": gw.halt_reason if gw.trading == "HALTED" else "",
        "accepted": gw.accepted, "rejects": gw.rejects,
        "warm_runs": getattr(gw, "warm_runs", 0),
        "inflight": len(ex.inflight) if ex else 0,
        "wire": {"sent": ex.wire.sent, "direct": ex.wire.direct,
                 "compiled": ex.wire.compiled, "expired": ex.wire.expired,
                 "idle": ex.wire.idle(), "opened": ex.wire.opened, "reopened": ex.wire.reopened,
                 "connect_errors": ex.wire.connect_errors} if ex and ex.wire else {},
        "internal_errors": gw.internal_errors,
        "orders": by_state,
        "open_orders": [o.to_json() for o in ex.table.open_orders()] if ex else [],
        "positions": {s: p.to_json(gw.refs.get(s, 0.0))
                      for s, p in ex.book.positions.items()} if ex else {},
        "pnl": ex.book.pnl(gw.refs) if ex else 0.0,
        "refs": gw.refs,
        "fills": len(ex.book.seen) + ex.book.forgotten if ex else 0,
        "retired_orders": ex.table.retired if ex else 0,     # final, left the table (orders.py)
        "fills_reported_twice": ex.book.duplicates if ex else 0,   # reply + user stream
        "counts": ex.counts if ex else {},
        "bad_reference": getattr(getattr(gw, "references", None), "bad", 0),
        "journal": {"write_errors": gw.journal.write_errors,
                    "sync_errors": gw.journal.sync_errors,
                    "pending": gw.journal.pending,
                    "torn_at_open": gw.journal.torn_at_open,
                    "torn_read": getattr(gw, "journal_read", {}).get("torn", 0)}
        if gw.journal else {},
        "foreign_orders": list(ex.foreign.values()) if ex else [],
        "intake": gw.intake.snapshot() if gw.intake else {},
        "gate": gw.gate.snapshot() if hasattr(gw, "gate") else {},
        "clock": gw.clock.snapshot() if hasattr(gw, "clock") else {},
        "stream": gw.stream.snapshot() if gw.stream else None,
        "requests": gw.rest.requests if gw.rest else 0,
        "reconcile": {k: v for k, v in gw.reconcile_report.items() if k != "balances"},
        "latency": {"intake_to_wire_p50_ns": lat.get("p50", 0),
                    "intake_to_wire_p99_ns": lat.get("p99", 0),
                    "rtt_p50_ns": rtt.get("p50", 0), "n": lat.get("count", 0)},
    }


def stopped_view(gcfg, start_state: str = "ACTIVE") -> dict[str, Any]:
    """What can be said of a gateway that is not running: its last status.json (as it was when
    it stopped: marked stale) and the trading state its next start will have (the kill file, else
    the journal's last trading record, else [risk].start_state) —
    so an operator's `reset` shows up at once, not the stale HALTED of the stopped process."""
    import orjson

    from pipeline.gateway.binjournal import read_any as read_journal   # binary or JSON lines
    from pipeline.gateway.process import state_paths
    paths = state_paths(gcfg)
    last: dict[str, Any] | None = None
    try:
        last = orjson.loads(paths["status"].read_bytes())
        mtime = paths["status"].stat().st_mtime
    except (OSError, ValueError):
        mtime = None
    journalled = None
    if paths["journal"].exists():
        for rec in read_journal(paths["journal"], {}):
            if rec.get("k") == "trading":
                journalled = (rec.get("state"), rec.get("why", ""))
    if paths["kill"].exists():
        nxt, why = "HALTED", f"kill file {paths['kill']} present"
    elif journalled is not None:
        nxt, why = journalled
    else:
        nxt, why = start_state, "no journal yet: [risk].start_state"
    return {"running": False, "state_dir": str(paths["dir"]),
            "trading_at_next_start": nxt, "why": why,
            "last_status_written": mtime, "last_status": last}
