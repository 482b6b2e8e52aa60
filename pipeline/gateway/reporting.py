"""What the gateway tells others about itself: hop latencies (from the orders' stamps), the
launcher's role slot (counters, PnL, trading state), and status.json (statusfile.py builds it).
"""
from __future__ import annotations

from typing import Any

import orjson

from pipeline.gateway.statusfile import StatusFile, gateway_status


class Reporting:
    """Gateway mixin: uses gw.ex, gw.hops, gw.role, gw.intake, gw.redact, gw.paths."""

    def _record_hops(self) -> None:
        """Move per-order stamps into the hop histograms (off the order path)."""
        ex = self.ex
        total = ex.latency_trimmed + len(ex.latency)
        done = max(0, getattr(self, "_hops_done", 0) - ex.latency_trimmed)
        lat = ex.latency
        rec = self.hops.record
        for (recv, risk, signed, written, resp, created, trigger) in lat[done:]:
            if created and recv >= created:
                rec("signal_to_gateway", recv - created)
            rec("gateway_risk", risk - recv)
            rec("gateway_sign", signed - risk)
            rec("gateway_write", written - signed)
            rec("gateway_response", resp - written)
            rec("intake_to_wire", written - recv)
            if trigger and signed > trigger:
                rec("tick_to_order", signed - trigger)      # the "tick → signed order"
            if trigger and written > trigger:
                rec("tick_to_wire", written - trigger)
        self._hops_done = total

    def _hop(self, name: str) -> dict:
        """Live quantiles of a hop (the last RECENT orders): the main loop calls this several
        times a second, so never an HdrHistogram percentile walk (milliseconds)."""
        hops = getattr(self, "hops", None)
        return hops.live(name) if hops is not None else {}

    def _publish_role(self, pnl: float) -> None:
        from pipeline.records import TradingState
        ex = self.ex
        w = self._hop("intake_to_wire")
        self.role.set(signals=self.intake.received, orders=self.accepted, fills=len(ex.book.seen),
                      rejects=sum(self.rejects.values()) + ex.counts.get("rejects", 0),
                      errors=self.internal_errors + self.intake.malformed,
                      pnl=pnl, open_orders=len(ex.table.open_orders()),
                      hop_p50_ns=w.get("p50", 0), hop_p99_ns=w.get("p99", 0))
        self.role.set_trading_state(TradingState[self.trading])

    def status(self) -> dict[str, Any]:
        return gateway_status(self)

    def write_status(self, sync: bool = False) -> None:
        """status.json, redacted. The file I/O (~0.5 ms: write, rename) goes to a helper thread
        while running, so the main loop is not blind that long every status_every_ms; start-up,
        the kill switch and shutdown write synchronously."""
        data = orjson.dumps(self.status(), option=orjson.OPT_NON_STR_KEYS, default=str)
        data = self.redact.bytes(data).encode() if hasattr(self, "redact") else data
        writer = getattr(self, "status_writer", None)
        if writer is None or sync:
            (writer or StatusFile(self.paths["status"])).write(data)
        else:
            writer.submit(data)
