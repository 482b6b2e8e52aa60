"""The Prometheus exporter over a real status block: names, types and values by Prometheus' rules,
hop histograms exported by a role's HopRecorder, and a Grafana dashboard that queries only
metrics the exporter serves."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import ProcessCollector, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from pipeline.records import RoleState, TradingState
from pipeline.telemetry.latency import HOP_INDEX, HopRecorder
from pipeline.telemetry.metrics import PipelineCollector, _hist_row
from pipeline.telemetry.status import StatusBlock

REPO = Path(__file__).resolve().parents[2]
ROLES = {0: ("collector", "collector"), 1: ("strategy", "strategy"), 2: ("gateway", "gateway")}
STATUS = {
    "trading": "HALTED", "halt_reason": "kill switch",
    "rejects": {"HALTED": 3, "MAX_POSITION": 1},
    "counts": {"venue_reject_-2010": 2, "fills_reported_twice": 5},
    "orders": {"FILLED": 5, "ACK": 1},
    "open_orders": [{"symbol": "BTCUSDT", "cid": "x"}],
    "positions": {"BTCUSDT": {"qty": 0.002, "avg_price": 61000.5, "realized": -1.25,
                              "unrealized": 0.5, "fees": {"BNB": 0.01}}},
    "gate": {"blocked_for_s": 0.0, "blocks": 1, "used": {"weight_60s": 40, "orders_10s": 3}},
    "clock": {"synced": True, "offset_ms": -2.5, "rtt_ms": 1.0, "syncs": 4},
}


def _families(collector: PipelineCollector) -> dict:
    reg = CollectorRegistry()
    reg.register(collector)
    ProcessCollector(registry=reg)
    return {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}


def _value(fams, family, sample=None, **labels):
    got = [s.value for s in fams[family].samples if s.name == (sample or family)
           and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(got) == 1, (family, labels)
    return got[0]


@pytest.fixture
def block(shm_name, tmp_path):
    b = StatusBlock.create(shm_name, len(ROLES))
    s = b.slots
    s["heartbeat_mono"] = time.perf_counter_ns()
    s[0]["ticks"], s[0]["state"] = 1234, int(RoleState.RUNNING)
    s[1]["ticks"], s[1]["signals"] = 1230, 7
    s[2]["orders"], s[2]["fills"], s[2]["rejects"] = 6, 5, 4
    s[2]["pnl"], s[2]["trading_state"] = -0.75, int(TradingState.HALTED)
    b.extras[0]["reconnects"], b.extras[0]["resyncs"], b.extras[0]["stale"] = 2, 3, 1
    rec = HopRecorder()
    for ns in (1_500, 30_000, 2_000_000):
        rec.record("gateway_risk", ns)
    assert rec.export(b.extras[2]["hops"]) == 1
    assert rec.export(b.extras[2]["hops"]) == 0          # unchanged hops are not rewritten
    (tmp_path / "status.json").write_text(json.dumps(STATUS))
    yield b
    b.close()


def test_exporter_names_types_and_values_follow_prometheus_rules(block, tmp_path):
    fams = _families(PipelineCollector(block, ROLES, gateway_status=tmp_path / "status.json",
                                       currency="USDT", pids=lambda: {}, restarts=lambda: {2: 1}))
    assert fams["pipeline_ticks"].type == "counter"
    assert _value(fams, "pipeline_ticks", "pipeline_ticks_total", role="collector") == 1234
    assert _value(fams, "pipeline_role_restarts", "pipeline_role_restarts_total",
                  role="gateway") == 1
    # enums: one labelled gauge, 1 for the current state only
    assert fams["pipeline_trading_state"].type == "gauge"
    assert {s.labels["state"]: s.value for s in fams["pipeline_trading_state"].samples} == \
        {"ACTIVE": 0, "REDUCING": 0, "HALTED": 1}
    assert _value(fams, "pipeline_role_state", role="collector", state="RUNNING") == 1
    assert _value(fams, "pipeline_role_state", role="collector", state="STOPPED") == 0
    assert _value(fams, "pipeline_pnl", role="gateway", currency="USDT") == -0.75
    # the histogram: base units (seconds), cumulative buckets, exact sum
    h = fams["pipeline_hop_latency_seconds"]
    assert h.type == "histogram"
    b = {float(s.labels["le"]): s.value for s in h.samples if s.name.endswith("_bucket")}
    assert b[1e-06] == 0 and b[2.5e-06] == 1 and b[2.5e-05] == 1 and b[5e-05] == 2
    assert b[0.001] == 2 and b[0.0025] == 3 and b[float("inf")] == 3
    assert _value(fams, "pipeline_hop_latency_seconds", "pipeline_hop_latency_seconds_count",
                  role="gateway", hop="gateway_risk") == 3
    assert _value(fams, "pipeline_hop_latency_seconds", "pipeline_hop_latency_seconds_sum",
                  role="gateway", hop="gateway_risk") == pytest.approx(2_031_500e-9)
    # feeds, positions, rejects by reason, rate limits, clock, from the block and status.json
    assert _value(fams, "pipeline_reconnects", "pipeline_reconnects_total", role="collector",
                  stream="market_data") == 2
    assert _value(fams, "pipeline_resyncs", "pipeline_resyncs_total", role="collector") == 3
    assert _value(fams, "pipeline_position", symbol="BTCUSDT") == 0.002
    assert _value(fams, "pipeline_realized_pnl", symbol="BTCUSDT", currency="USDT") == -1.25
    assert _value(fams, "pipeline_fees", "pipeline_fees_total", symbol="BTCUSDT",
                  asset="BNB") == 0.01
    assert _value(fams, "pipeline_open_orders", symbol="BTCUSDT") == 1
    assert _value(fams, "pipeline_orders_in_state", state="ACK") == 1
    rej = fams["pipeline_rejects_by_reason"]
    assert rej.type == "counter"
    assert _value(fams, "pipeline_rejects_by_reason", "pipeline_rejects_by_reason_total",
                  source="risk", reason="HALTED") == 3
    assert _value(fams, "pipeline_rejects_by_reason", "pipeline_rejects_by_reason_total",
                  source="venue", reason="-2010") == 2
    assert _value(fams, "pipeline_rate_limit_used", limit="weight_60s") == 40
    assert _value(fams, "pipeline_clock_offset_seconds") == -0.0025
    assert fams["process_cpu_seconds"].type == "counter"


def test_a_half_written_histogram_row_is_served_consistent():
    row = np.zeros(24, dtype=np.int64)
    row[:22] = 5
    row[3] = 2                     # caught mid-store: lower than the bucket before it
    row[22], row[23] = 4, 1000     # and the count not yet raised to the buckets'
    buckets, total, n = _hist_row(row)
    counts = [c for _, c in buckets]
    assert counts == sorted(counts) and counts[-1] == 4 and max(counts) == 4 and n == 4


def test_export_skips_hops_without_a_row_and_never_an_empty_one():
    rec = HopRecorder(["gateway_risk", "not_a_named_hop"])
    rec.record("not_a_named_hop", 10)
    area = np.zeros((16, 24), dtype=np.int64)
    assert rec.export(area) == 0 and not area.any()
    rec.record("gateway_risk", 10)
    assert rec.export(area) == 1 and area[HOP_INDEX["gateway_risk"], 22] == 1


def test_grafana_dashboard_queries_only_metrics_the_exporter_serves(block, tmp_path):
    dash = json.loads((REPO / "deploy" / "grafana" / "pipeline-dashboard.json").read_text())
    fams = _families(PipelineCollector(block, ROLES, gateway_status=tmp_path / "status.json",
                                       currency="USDT", pids=lambda: {0: __import__("os").getpid()}))
    served = {s.name for f in fams.values() for s in f.samples}
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    queried = {m for e in exprs for m in re.findall(r"\b((?:pipeline|process)_[a-z0-9_]+)", e)}
    assert queried and queried <= served, sorted(queried - served)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and dash["uid"]


def test_every_gateway_of_a_run_of_several_venues_is_exported_with_its_role(shm_name, tmp_path):
    roles = {0: ("gateway", "gateway"), 1: ("gateway_okx", "gateway")}
    b = StatusBlock.create(shm_name, 2)
    try:
        b.slots["heartbeat_mono"] = time.perf_counter_ns()
        b.slots[1]["trading_state"] = int(TradingState.HALTED)
        b.slots[0]["pnl"], b.slots[1]["pnl"] = 1.5, -2.0
        (tmp_path / "a.json").write_text(json.dumps(STATUS))
        okx = dict(STATUS, positions={"BTC-USDT": {"qty": -0.001, "avg_price": 60000.0}},
                   clock={"synced": True, "offset_ms": 7.0, "rtt_ms": 2.0, "syncs": 2})
        (tmp_path / "b.json").write_text(json.dumps(okx))
        fams = _families(PipelineCollector(
            b, roles, gateway_status={"gateway": tmp_path / "a.json",
                                      "gateway_okx": tmp_path / "b.json"},
            currency=lambda name: {"gateway": "USDT", "gateway_okx": "USDC"}[name]))
        assert _value(fams, "pipeline_position", role="gateway", symbol="BTCUSDT") == 0.002
        assert _value(fams, "pipeline_position", role="gateway_okx", symbol="BTC-USDT") == -0.001
        assert _value(fams, "pipeline_clock_offset_seconds", role="gateway_okx") == 0.007
        assert _value(fams, "pipeline_clock_offset_seconds", role="gateway") == -0.0025
        assert _value(fams, "pipeline_pnl", role="gateway_okx", currency="USDC") == -2.0
        assert _value(fams, "pipeline_trading_state", role="gateway_okx", state="HALTED") == 1
        assert _value(fams, "pipeline_trading_state", role="gateway", state="HALTED") == 0
        ages = {s.labels["role"] for s in fams["pipeline_gateway_status_age_seconds"].samples}
        assert ages == {"gateway", "gateway_okx"}
    finally:
        b.close()
