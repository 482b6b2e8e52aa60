"""Prometheus endpoint on loopback: the launcher exports the whole pipeline, by Prometheus' rules.

Everything is read at scrape time by the launcher, never pushed by a role, so no role's loop does
any work for a scrape: the status block in shared memory (every role's slot, its feed counters
and the hop histograms it exports once a second) and the gateway's status.json (positions, open
orders, rejects by reason, rate-limit use, clock offset; written by the gateway's helper thread
once a second). Names use base units (`_seconds`, `_bytes`), counters end in `_total`, enums are
labelled gauges (1 for the current state, 0 for the others). docs/metrics.md lists every metric.

    pipeline_<counter>_total{role,kind}            ticks, signals, orders, fills, rejects, errors, dropped
    pipeline_role_state{role,kind,state}           RoleState enum
    pipeline_role_heartbeat_age_seconds{role,kind}
    pipeline_role_cpu_seconds_total / pipeline_role_resident_memory_bytes{role,kind}
    pipeline_role_restarts_total{role,kind}
    pipeline_hop_latency_seconds{role,hop}         histogram (buckets: latency.BUCKETS_S)
    pipeline_reconnects_total{role,stream} / pipeline_resyncs_total{role} /
    pipeline_stale_feeds_total{role} / pipeline_sequence_gaps_total{role}
    pipeline_trading_state{role,state}             TradingState enum (gateway)
    pipeline_pnl{role,currency}                    realized + unrealized
  from each gateway's status.json (label role = the gateway's role name; several venues, several):
    pipeline_position{role,symbol} / pipeline_position_avg_price{role,symbol}
    pipeline_realized_pnl{role,symbol,currency} / pipeline_unrealized_pnl{role,symbol,currency}
    pipeline_fees_total{role,symbol,asset}
    pipeline_open_orders{role,symbol} / pipeline_orders_in_state{role,state}
    pipeline_rejects_by_reason_total{role,source,reason}  source = risk (ours) or venue (its code)
    pipeline_rate_limit_used{role,limit} / pipeline_rate_limit_blocked_seconds{role} /
    pipeline_rate_limit_blocks_total{role}
    pipeline_clock_offset_seconds{role} / pipeline_clock_rtt_seconds{role} /
    pipeline_clock_syncs_total{role}
    pipeline_gateway_status_age_seconds{role}
    process_* (prometheus_client's process collector: the launcher itself)
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
from prometheus_client import ProcessCollector, start_http_server
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.registry import CollectorRegistry

from pipeline.records import HOP_CELLS, RoleState, TradingState
from pipeline.telemetry.latency import BUCKETS_S, HOP_NAMES
from pipeline.telemetry.status import COUNTERS, StatusBlock

log = logging.getLogger(__name__)

NB = HOP_CELLS - 2
_LE = [f"{b:g}" for b in BUCKETS_S] + ["+Inf"]


def _hist_row(row: np.ndarray) -> tuple[list[tuple[str, float]], float, int] | None:
    """(buckets, sum seconds, count) of one exported hop row, or None if empty. A row caught
    half-written by its role is made consistent (cumulative counts never decrease)."""
    count = int(row[NB])
    if count <= 0:
        return None
    cum = np.maximum.accumulate(np.minimum(row[:NB], count))
    buckets = [(le, float(c)) for le, c in zip(_LE, cum)] + [("+Inf", float(count))]
    return buckets, int(row[NB + 1]) / 1e9, count


class PipelineCollector:
    """A prometheus_client custom collector over the status block and the gateway's status.json.

    roles: slot → (role name, kind); gateway_status: each gateway role's status.json ({name:
    path}; a single path is the first gateway's); currency: the quote currency PnL is counted in,
    or a callable (gateway role name → currency); pids / restarts: callables the launcher gives
    (a role's current pid, its restart count)."""

    def __init__(self, block: StatusBlock, roles: dict[int, tuple[str, str]], *,
                 gateway_status: Path | dict[str, Path] | None = None,
                 currency: str | Callable[[str], str] = "",
                 pids: Callable[[], dict[int, int]] | None = None,
                 restarts: Callable[[], dict[int, int]] | None = None):
        self.block = block
        self.roles = roles
        if isinstance(gateway_status, Path):
            first = next((n for n, k in roles.values() if k == "gateway"), "gateway")
            gateway_status = {first: gateway_status}
        self.gateway_status: dict[str, Path] = dict(gateway_status or {})
        self.currency = currency
        self.pids = pids or (lambda: {})
        self.restarts = restarts or (lambda: {})
        self._status_cache: dict[str, tuple[float, dict]] = {}

    def _currency(self, name: str) -> str:
        return self.currency(name) if callable(self.currency) else self.currency

    # ------------------------------------------------------------------ status.json
    def _gateway(self, name: str) -> tuple[dict, float | None]:
        """Gateway `name`'s status.json (cached by mtime) and its age in seconds."""
        p = self.gateway_status.get(name)
        if p is None:
            return {}, None
        try:
            mtime = p.stat().st_mtime
        except OSError:
            return {}, None
        if mtime != self._status_cache.get(name, (0.0, {}))[0]:
            try:
                self._status_cache[name] = (mtime, json.loads(p.read_bytes()))
            except (OSError, ValueError) as exc:
                log.warning("metrics: cannot read %s: %s", p, exc)
                return {}, None
        return self._status_cache[name][1], max(0.0, time.time() - mtime)

    # ------------------------------------------------------------------ collect
    def collect(self):
        if self.block.slots is None:
            return
        snap = self.block.snapshot()
        extras = self.block.extras_snapshot()
        yield from self._roles(snap, extras)
        yield from self._hops(extras)
        yield from self._feeds(extras)
        yield from self._trading(snap)
        yield from self._gateway_metrics()

    def _roles(self, snap, extras):
        now = time.perf_counter_ns()
        lab = ["role", "kind"]
        fams = {c: CounterMetricFamily(f"pipeline_{c}", f"{c} per role (see docs/metrics.md)",
                                       labels=lab) for c in COUNTERS}
        state = GaugeMetricFamily("pipeline_role_state", "1 for the role's current state",
                                  labels=lab + ["state"])
        hb = GaugeMetricFamily("pipeline_role_heartbeat_age_seconds",
                               "seconds since the role's last heartbeat", labels=lab)
        cpu = CounterMetricFamily("pipeline_role_cpu_seconds",
                                  "user + system CPU time of the role's process", labels=lab)
        rss = GaugeMetricFamily("pipeline_role_resident_memory_bytes",
                                "resident memory of the role's process", labels=lab)
        restarts = CounterMetricFamily("pipeline_role_restarts",
                                       "times the launcher restarted the role", labels=lab)
        pids, nrestart = self.pids(), self.restarts()
        for i, (name, kind) in self.roles.items():
            s = snap[i]
            for c in COUNTERS:
                fams[c].add_metric([name, kind], float(s[c]))
            cur = int(s["state"])
            for rs in RoleState:
                state.add_metric([name, kind, rs.name], 1.0 if rs == cur else 0.0)
            if int(s["heartbeat_mono"]):
                hb.add_metric([name, kind], max(0.0, (now - int(s["heartbeat_mono"])) / 1e9))
            restarts.add_metric([name, kind], float(nrestart.get(i, 0)))
            pid = pids.get(i)
            if pid:
                usage = _proc_usage(pid)
                if usage is not None:
                    cpu.add_metric([name, kind], usage[0])
                    rss.add_metric([name, kind], usage[1])
        yield from fams.values()
        yield from (state, hb, cpu, rss, restarts)

    def _hops(self, extras):
        fam = HistogramMetricFamily("pipeline_hop_latency_seconds",
                                    "latency of each named hop (docs/metrics.md lists them)",
                                    labels=["role", "hop"])
        for i, (name, _kind) in self.roles.items():
            rows = extras[i]["hops"]
            for j, hop in enumerate(HOP_NAMES):
                h = _hist_row(rows[j])
                if h is not None:
                    buckets, total, _n = h
                    fam.add_metric([name, hop], buckets, total)
        yield fam

    def _feeds(self, extras):
        rec = CounterMetricFamily("pipeline_reconnects", "connections re-established",
                                  labels=["role", "stream"])
        resync = CounterMetricFamily("pipeline_resyncs", "order book resyncs", labels=["role"])
        stale = CounterMetricFamily("pipeline_stale_feeds", "feeds declared stale",
                                    labels=["role"])
        gaps = CounterMetricFamily("pipeline_sequence_gaps", "sequence gaps seen",
                                   labels=["role"])
        for i, (name, kind) in self.roles.items():
            e = extras[i]
            if kind == "collector":
                rec.add_metric([name, "market_data"], float(e["reconnects"]))
                resync.add_metric([name], float(e["resyncs"]))
                stale.add_metric([name], float(e["stale"]))
                gaps.add_metric([name], float(e["gaps"]))
            elif kind == "gateway":
                rec.add_metric([name, "user_data"], float(e["reconnects"]))
                gaps.add_metric([name], float(e["gaps"]))
        yield from (rec, resync, stale, gaps)

    def _trading(self, snap):
        state = GaugeMetricFamily("pipeline_trading_state",
                                  "1 for the gateway's current trading state",
                                  labels=["role", "state"])
        pnl = GaugeMetricFamily("pipeline_pnl", "realized + unrealized PnL of the gateway",
                                labels=["role", "currency"])
        for i, (name, kind) in self.roles.items():
            if kind != "gateway":
                continue
            cur = int(snap[i]["trading_state"])
            for ts in TradingState:
                state.add_metric([name, ts.name], 1.0 if ts == cur else 0.0)
            pnl.add_metric([name, self._currency(name)], float(snap[i]["pnl"]))
        yield from (state, pnl)

    def _gateway_metrics(self):
        """The families from every gateway's status.json, each sample labelled with its role."""
        R = ["role"]
        age_f = GaugeMetricFamily("pipeline_gateway_status_age_seconds",
                                  "age of the gateway's status.json (written once a second)",
                                  labels=R)
        pos = GaugeMetricFamily("pipeline_position", "position per symbol, base asset units",
                                labels=R + ["symbol"])
        avg = GaugeMetricFamily("pipeline_position_avg_price", "average entry price",
                                labels=R + ["symbol"])
        rpl = GaugeMetricFamily("pipeline_realized_pnl", "realized PnL per symbol",
                                labels=R + ["symbol", "currency"])
        upl = GaugeMetricFamily("pipeline_unrealized_pnl", "unrealized PnL per symbol",
                                labels=R + ["symbol", "currency"])
        fees = CounterMetricFamily("pipeline_fees", "fees paid per symbol, in the fee asset",
                                   labels=R + ["symbol", "asset"])
        opens = GaugeMetricFamily("pipeline_open_orders", "open orders per symbol",
                                  labels=R + ["symbol"])
        orders = GaugeMetricFamily("pipeline_orders_in_state",
                                   "orders in the gateway's table by state", labels=R + ["state"])
        rej = CounterMetricFamily("pipeline_rejects_by_reason",
                                  "rejected orders and signals by reason",
                                  labels=R + ["source", "reason"])
        used = GaugeMetricFamily("pipeline_rate_limit_used",
                                 "venue rate-limit use in its window (weight or orders)",
                                 labels=R + ["limit"])
        blocked = GaugeMetricFamily("pipeline_rate_limit_blocked_seconds",
                                    "seconds until the venue's rate limit lets us send again",
                                    labels=R)
        blocks = CounterMetricFamily("pipeline_rate_limit_blocks", "times the venue throttled us",
                                     labels=R)
        offset = GaugeMetricFamily("pipeline_clock_offset_seconds",
                                   "venue clock minus ours (the gateway's last sync)", labels=R)
        rtt = GaugeMetricFamily("pipeline_clock_rtt_seconds", "round trip of the last sync",
                                labels=R)
        syncs = CounterMetricFamily("pipeline_clock_syncs", "clock syncs with the venue",
                                    labels=R)
        any_gw = False
        for name in self.gateway_status:
            g, age = self._gateway(name)
            if age is None:
                continue
            any_gw = True
            cur = self._currency(name)
            age_f.add_metric([name], age)
            for sym, p in (g.get("positions") or {}).items():
                pos.add_metric([name, sym], float(p.get("qty", 0.0)))
                avg.add_metric([name, sym], float(p.get("avg_price", 0.0)))
                rpl.add_metric([name, sym, cur], float(p.get("realized", 0.0)))
                upl.add_metric([name, sym, cur], float(p.get("unrealized", 0.0)))
                for asset, amount in (p.get("fees") or {}).items():
                    fees.add_metric([name, sym, asset], float(amount))
            per_sym: dict[str, int] = {s: 0 for s in (g.get("positions") or {})}
            for o in g.get("open_orders") or ():
                per_sym[o.get("symbol", "")] = per_sym.get(o.get("symbol", ""), 0) + 1
            for sym, n in per_sym.items():
                opens.add_metric([name, sym], float(n))
            for state, n in (g.get("orders") or {}).items():
                orders.add_metric([name, state], float(n))
            for reason, n in (g.get("rejects") or {}).items():
                rej.add_metric([name, "risk", reason], float(n))
            for k, n in (g.get("counts") or {}).items():
                if k.startswith("venue_reject_"):
                    rej.add_metric([name, "venue", k[len("venue_reject_"):]], float(n))
            gate = g.get("gate") or {}
            for k, v in (gate.get("used") or {}).items():
                used.add_metric([name, k], float(v))
            blocked.add_metric([name], float(gate.get("blocked_for_s", 0.0)))
            blocks.add_metric([name], float(gate.get("blocks", 0)))
            clock = g.get("clock") or {}
            if clock.get("synced"):
                offset.add_metric([name], float(clock.get("offset_ms", 0.0)) / 1e3)
                rtt.add_metric([name], float(clock.get("rtt_ms", 0.0)) / 1e3)
            syncs.add_metric([name], float(clock.get("syncs", 0)))
        if not any_gw:
            return
        yield from (age_f, pos, avg, rpl, upl, fees, opens, orders, rej, used, blocked, blocks)
        if offset.samples:
            yield from (offset, rtt)
        yield syncs

def _proc_usage(pid: int) -> tuple[float, float] | None:
    """(cpu seconds, rss bytes) of a process from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open(f"/proc/{pid}/statm", "rb") as f:
            rss_pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck, float(rss_pages * os.sysconf("SC_PAGE_SIZE"))


def serve(collector: PipelineCollector, port: int) -> tuple[int, object]:
    """Serve /metrics on 127.0.0.1:port (0 = any free port); returns (port, server)."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server.server_address[1], server
