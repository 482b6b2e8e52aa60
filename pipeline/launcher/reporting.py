"""What the launcher reports: the status line, the summary, the trade-price tap, alerts and the
Prometheus endpoint (a mixin of supervisor.Launcher)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pipeline.records import TradingState
from pipeline.telemetry import latency
from pipeline.telemetry import status as st

log = logging.getLogger("pipeline.launcher")


class Reporting:
    """The launcher's outputs (uses Launcher's fields)."""

    def start_tap(self) -> None:
        """Trade prices for the summary and the plots (a non-waiting reader of the tick ring)."""
        if not any(r.spec.kind == "gateway" for r in self.roles.values()) or not self.rings:
            return
        from pipeline.registry import DEFAULT
        from pipeline.telemetry.market import PriceTap
        wanted = set(self.cfg.gateway.symbols)
        self.tap = PriceTap(self.rings[0], {i.id: i.symbol for i in DEFAULT if i.symbol in wanted})

    def poll_tap(self) -> None:
        if self.tap is None:
            return
        try:
            self.tap.poll()
        except Exception as exc:  # noqa: BLE001 - the tap is a nicety; the run goes on
            log.warning("price tap stopped: %s: %s", type(exc).__name__, exc)
            self.tap = None

    def trading(self, summary: dict) -> None:
        """The summary's trading section (PnL with currency, position, fees, fills) and
        <run_dir>/market.npz (the trade prices the plots draw)."""
        report = (summary["roles"].get(next((r.name for r in self.roles.values()
                                             if r.spec.kind == "gateway"), ""), {})
                  .get("report"))
        if not report:
            return
        from pipeline.telemetry.report import trading_summary
        self.poll_tap()
        summary["trading"] = trading_summary(self.cfg, report, self.tap, self.started_ns)
        if self.tap is not None:
            import numpy as np
            arrays = self.tap.arrays()
            np.savez(self.run_dir / "market.npz", **{f"{k}__t": v[0] for k, v in arrays.items()},
                     **{f"{k}__p": v[1] for k, v in arrays.items()})

    def start_alerts(self) -> None:
        """The alert threads (pipeline/alerts.py): they read the status block, never a role."""
        if not self.cfg.alerts.enabled:
            return
        from pipeline.alerts import AlertSender, AlertWatcher
        from pipeline.telemetry.report import pnl_currency
        sender = AlertSender(self.cfg.alerts, self.cfg.launcher.run_id, self.alert_token)
        gw = [r.slot for r in self.roles.values() if r.spec.kind == "gateway"]
        watcher = AlertWatcher(
            sender, self.status, gateway=gw[0] if gw else None,
            collectors={r.slot: r.name for r in self.roles.values() if r.spec.kind == "collector"},
            status_json=Path(self.cfg.gateway.state_dir) / "status.json" if gw else None,
            currency=pnl_currency(self.cfg))
        self.alerts = (sender, watcher)
        watcher.start()

    def stop_alerts(self) -> dict:
        """Stop watching (before the roles stop: a stopping feed is no alert), send what is
        queued; the counts for the summary."""
        if self.alerts is None:
            return {}
        sender, watcher = self.alerts
        watcher.stop()
        watcher.check()             # a HALT of the last moments still goes out
        sender.close()
        self.alerts = None
        return {**sender.counts, "sent_to": sender.sent}

    def serve_metrics(self) -> int:
        """The Prometheus endpoint (pipeline/telemetry/metrics.py) on 127.0.0.1; its port."""
        from pipeline.telemetry import metrics
        from pipeline.telemetry.report import pnl_currency
        gw = any(r.spec.kind == "gateway" for r in self.roles.values())
        coll = metrics.PipelineCollector(
            self.status, {r.slot: (r.name, r.spec.kind) for r in self.roles.values()},
            gateway_status=Path(self.cfg.gateway.state_dir) / "status.json" if gw else None,
            currency=pnl_currency(self.cfg),
            pids=lambda: {r.slot: r.proc.pid for r in self.roles.values() if r.alive},
            restarts=lambda: {r.slot: r.restarts for r in self.roles.values()})
        port, self.metrics_server = metrics.serve(coll, self.cfg.launcher.prometheus_port)
        return port

    @property
    def currency(self) -> str:
        from pipeline.telemetry.report import pnl_currency
        if not hasattr(self, "_currency"):
            self._currency = pnl_currency(self.cfg)
        return self._currency

    def status_line(self, prev: dict) -> str:
        from pipeline.telemetry.report import money
        snap = self.status.snapshot()
        now = time.monotonic()
        parts = []
        ticks = sum(int(snap[r.slot]["ticks"]) for r in self.roles.values()
                    if r.spec.kind == "collector")
        dt = now - prev.get("t", now) or 1.0
        rate = (ticks - prev.get("ticks", ticks)) / dt if prev else 0.0
        prev.update(t=now, ticks=ticks)
        parts.append(f"ticks {ticks:,} ({rate:,.0f}/s)")
        for kind, label, fld in (("strategy", "signals", "signals"), ("gateway", "orders", "orders"),
                                 ("gateway", "fills", "fills")):
            v = sum(int(snap[r.slot][fld]) for r in self.roles.values() if r.spec.kind == kind)
            parts.append(f"{label} {v:,}")
        gateways = [r for r in self.roles.values() if r.spec.kind == "gateway"]
        for r in gateways:
            s = snap[r.slot]
            name = f"{r.name} " if len(gateways) > 1 else ""     # several venues: say whose
            parts.append(f"{name}PnL {money(float(s['pnl']), self.currency)}")
            parts.append(TradingState(int(s["trading_state"])).name)
        hops = [f"{r.name} p99 {int(snap[r.slot]['hop_p99_ns']) / 1000:,.0f}us"
                for r in self.roles.values() if int(snap[r.slot]["hop_p99_ns"])]
        return " | ".join(parts + hops)

    def summary(self, started: float) -> dict:
        snap = self.status.snapshot() if self.status is not None else None
        roles = {}
        for r in self.roles.values():
            d = {"kind": r.spec.kind, "pid": r.proc.pid if r.proc else None,
                 "exit_code": r.proc.returncode if r.proc else None,
                 "restarts": r.restarts, "problem": r.exit_reason}
            if snap is not None:
                s = snap[r.slot]
                d.update({k: int(s[k]) for k in st.COUNTERS})
                d["pnl"] = float(s["pnl"])
                d["hop_p50_ns"], d["hop_p99_ns"] = int(s["hop_p50_ns"]), int(s["hop_p99_ns"])
            extra = self.run_dir / f"{r.name}.summary.json"
            if extra.exists():
                try:
                    d["report"] = json.loads(extra.read_text())
                except ValueError as exc:
                    d["report_error"] = str(exc)
            roles[r.name] = d
        return {"seconds": time.monotonic() - started, "started_ns": self.started_ns,
                "stop_reason": self.stop_reason,
                "halted": self.halted_at is not None, "halts_cleared": self.halts_cleared,
                "halted_gateways": sorted(g.name for g in self.gateways
                                          if self._covered(g.name, False)),
                "totals": self._totals(roles),
                "hops": {hop: latency.summarize(h) for hop, h in self.hop_histograms().items()},
                "roles": roles,
                "events": [{k: v for k, v in e.items() if k != "t"} for e in self.events]}

    def hop_histograms(self) -> dict:
        return latency.load(sorted(self.run_dir.glob("*.hdr.json")))

    @staticmethod
    def _totals(roles: dict) -> dict:
        def total(kind, field):
            return sum(r.get(field, 0) for r in roles.values() if r["kind"] == kind)
        t = {"ticks": total("collector", "ticks"), "signals": total("strategy", "signals"),
             "orders": total("gateway", "orders"), "fills": total("gateway", "fills"),
             "rejects": total("gateway", "rejects"),
             "pnl": sum(r.get("pnl", 0.0) for r in roles.values() if r["kind"] == "gateway")}
        by_state: dict[str, int] = {}
        for r in roles.values():
            rep = r.get("report") or {}
            for state, n in (rep.get("orders") or {}).items():
                by_state[state] = by_state.get(state, 0) + int(n)
        if by_state:
            t["orders_by_state"] = by_state
        return t
