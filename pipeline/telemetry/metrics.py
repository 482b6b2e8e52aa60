"""Prometheus endpoint on loopback: the launcher exports every role's status slot.

Counters (ticks, signals, orders, fills, rejects, errors, dropped) as counters per role, PnL and
the role's main-hop p50/p99 as gauges, and heartbeat age. Rates are Prometheus' business
(rate(pipeline_ticks_total[10s])).
"""
from __future__ import annotations

import time

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from pipeline.telemetry.status import COUNTERS, StatusBlock


class StatusCollector:
    def __init__(self, block: StatusBlock, names: dict[int, tuple[str, str]]):
        self.block = block
        self.names = names          # slot → (role name, kind)

    def collect(self):
        if self.block.slots is None:
            return
        snap = self.block.snapshot()
        now = time.perf_counter_ns()
        fams = {c: CounterMetricFamily(f"pipeline_{c}", f"{c} per role", labels=["role", "kind"])
                for c in COUNTERS}
        pnl = GaugeMetricFamily("pipeline_pnl", "realized + unrealized PnL", labels=["role"])
        hop = GaugeMetricFamily("pipeline_hop_latency_ns", "main hop latency quantile",
                                labels=["role", "quantile"])
        hb = GaugeMetricFamily("pipeline_heartbeat_age_seconds", "since last heartbeat",
                               labels=["role"])
        state = GaugeMetricFamily("pipeline_trading_state", "0 ACTIVE, 1 REDUCING, 2 HALTED",
                                  labels=["role"])
        for i, (name, kind) in self.names.items():
            s = snap[i]
            for c in COUNTERS:
                fams[c].add_metric([name, kind], float(s[c]))
            pnl.add_metric([name], float(s["pnl"]))
            hop.add_metric([name, "0.5"], float(s["hop_p50_ns"]))
            hop.add_metric([name, "0.99"], float(s["hop_p99_ns"]))
            if int(s["heartbeat_mono"]):
                hb.add_metric([name], (now - int(s["heartbeat_mono"])) / 1e9)
            if kind == "gateway":
                state.add_metric([name], float(s["trading_state"]))
        yield from fams.values()
        yield from (pnl, hop, hb, state)


def serve(block: StatusBlock, names: dict[int, tuple[str, str]], port: int) -> int:
    """Serve /metrics on 127.0.0.1:port (0 = any free port); returns the port."""
    registry = CollectorRegistry()
    registry.register(StatusCollector(block, names))
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    return server.server_address[1]
