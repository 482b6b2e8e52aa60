"""What the launcher reports: the status line, the summary, the trade-price taps, alerts and the
Prometheus endpoint (a mixin of supervisor.Launcher). A run of several venues reports every
gateway: its PnL and state on the status line, its trading section in the summary
(`trading_by_gateway`; `trading` is the first gateway's), its alerts and its metrics (label
`role`). Symbols, ids and currencies come from the run's instrument cache once it is loaded."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pipeline.records import TradingState
from pipeline.telemetry import latency
from pipeline.telemetry import status as st

log = logging.getLogger("pipeline.launcher")


ENDED_AS_ASKED = ("duration", "SIGINT", "SIGTERM")


def exit_status(summary: dict) -> int:
    """The launcher's exit status for a run's summary (scripts/launch.py; docs/trading-box.md):
    0 the run ended as asked (its duration, SIGINT / SIGTERM) and no role failed for good;
    1 the run stopped because something failed (a role, a launch error);
    3 the run ended as asked but a role failed for good during it (its restarts used up, or
      it may not restart and the run went on: another venue's gateway traded on), named in
      summary["failed_roles"].
    (2, a config or credentials error before anything starts, is scripts/launch.py's own.)"""
    if summary.get("stop_reason") not in ENDED_AS_ASKED:
        return 1
    return 3 if summary.get("failed_roles") else 0


class Reporting:
    """The launcher's outputs (uses Launcher's fields)."""

    def registry(self):
        """The run's instruments (its cache, once loaded), else the offline registry."""
        if getattr(self, "_registry", None) is None:
            if self.instruments_path is None:
                from pipeline.registry import DEFAULT
                return DEFAULT
            from pipeline import instruments as instr
            self._registry = instr.read_cache(self.instruments_path)[0]
        return self._registry

    def gateway_views(self) -> list:
        """(role, its view of the config) of every gateway, in start order."""
        return [(r, self.cfg.for_role(r.name)) for r in self.roles.values()
                if r.spec.kind == "gateway"]

    def currency_of(self, name: str) -> str:
        """The PnL currency of gateway `name` (its symbols' quote), "" if unknown."""
        from pipeline.telemetry.report import pnl_currency
        got = getattr(self, "_currencies", {})
        if name not in got:
            cur = pnl_currency(self.cfg.for_role(name), self.registry())
            if self.instruments_path is None:
                return cur                   # not the run's instruments yet: asked again later
            self._currencies = got
            got[name] = cur
        return got[name]

    def start_tap(self) -> None:
        """Trade prices for the summary and the plots: a non-waiting reader of each ring a
        gateway references, for its symbols (ids from the run's instruments: call it once they
        are loaded, before the collectors start)."""
        if self.taps or not self.rings:
            return
        from pipeline.telemetry.market import PriceTap
        reg = self.registry()
        rings = {r.name: r for r in self.rings}
        for role, view in self.gateway_views():
            ring = rings.get(view.ring.name)
            if ring is None or ring.name in self.taps:
                continue
            names = {s.upper() for _, v in self.gateway_views() if v.ring.name == ring.name
                     for s in v.gateway.symbols}
            self.taps[ring.name] = PriceTap(ring, {i.id: i.symbol for i in reg
                                                   if i.symbol.upper() in names})
        self.tap = next(iter(self.taps.values()), None)

    def poll_tap(self) -> None:
        for name, tap in list(self.taps.items()):
            try:
                tap.poll()
            except Exception as exc:  # noqa: BLE001 - the tap is a nicety; the run goes on
                log.warning("price tap of %s stopped: %s: %s", name, type(exc).__name__, exc)
                del self.taps[name]
        self.tap = next(iter(self.taps.values()), None)

    def trading(self, summary: dict) -> None:
        """The summary's trading sections (PnL with currency, position, fees, fills): `trading`
        for the first gateway, and with several, `trading_by_gateway` for each; and
        <run_dir>/market.npz (the trade prices the plots draw)."""
        from pipeline.telemetry.report import trading_summary
        self.poll_tap()
        by_gw = {}
        for role, view in self.gateway_views():
            report = summary["roles"].get(role.name, {}).get("report")
            if report:
                by_gw[role.name] = trading_summary(view, report, self.taps.get(view.ring.name),
                                                   self.started_ns, registry=self.registry())
        if not by_gw:
            return
        summary["trading"] = next(iter(by_gw.values()))
        if len(self.gateway_views()) > 1:
            summary["trading_by_gateway"] = by_gw
        if self.taps:
            import numpy as np
            arrays = {k: v for tap in self.taps.values() for k, v in tap.arrays().items()}
            np.savez(self.run_dir / "market.npz", **{f"{k}__t": v[0] for k, v in arrays.items()},
                     **{f"{k}__p": v[1] for k, v in arrays.items()})

    def start_alerts(self) -> None:
        """The alert threads (pipeline/alerts.py): they read the status block, never a role."""
        if not self.cfg.alerts.enabled:
            return
        from pipeline.alerts import AlertSender, AlertWatcher
        sender = AlertSender(self.cfg.alerts, self.cfg.launcher.run_id, self.alert_token)
        watcher = AlertWatcher(
            sender, self.status,
            gateways={r.slot: (r.name, Path(v.gateway.state_dir) / "status.json",
                               lambda n=r.name: self.currency_of(n))
                      for r, v in self.gateway_views()},
            collectors={r.slot: r.name for r in self.roles.values() if r.spec.kind == "collector"})
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
        coll = metrics.PipelineCollector(
            self.status, {r.slot: (r.name, r.spec.kind) for r in self.roles.values()},
            gateway_status={r.name: Path(v.gateway.state_dir) / "status.json"
                            for r, v in self.gateway_views()},
            currency=self.currency_of,
            pids=lambda: {r.slot: r.proc.pid for r in self.roles.values() if r.alive},
            restarts=lambda: {r.slot: r.restarts for r in self.roles.values()})
        port, self.metrics_server = metrics.serve(coll, self.cfg.launcher.prometheus_port)
        return port

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
            parts.append(f"{name}PnL {money(float(s['pnl']), self.currency_of(r.name))}")
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
                 "restarts": r.restarts, "problem": r.exit_reason,
                 "failed_for_good": r.given_up}
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
                "failed_roles": sorted(r.name for r in self.roles.values() if r.given_up),
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
