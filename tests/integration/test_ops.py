"""Operating a running pipeline: the launcher + simulator + collector + strategy + gateway as real
processes; its Prometheus endpoint scraped over real HTTP, checked against what the run did; the
kill switch (`python -m pipeline.gateway kill`) halts it, and the HALTED alert reaches a loopback
webhook and a loopback Telegram Bot API, with the bot token in none of the logs."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.demo_harness import LAUNCH, REPO, demo_config, free_port, hooks  # noqa: F401

TOKEN = "123456:AAF-test-bot-token-never-logged-0123456789"


def scrape(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict, family: str, sample: str | None = None, **labels) -> float:
    f = fams[family]
    got = [s.value for s in f.samples if s.name == (sample or family)
           and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(got) == 1, (family, sample, labels, f.samples)
    return got[0]


def wait_for(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_and_alerts_of_a_running_pipeline_that_is_killed(tmp_path, shm_name, hooks):
    port = free_port()
    (tmp_path / "tg-token").write_text(TOKEN + "\n")
    (tmp_path / "tg-token").chmod(0o600)
    cfg = demo_config(tmp_path, shm_name, duration="0", prometheus_port=str(port), extra=f"""
[alerts]
on = ["halted", "reducing", "role_death", "stale_feed", "fill"]
webhook_url = "{hooks.url}/hook"
telegram_chat_id = "4242"
telegram_token_file = "{tmp_path / 'tg-token'}"
telegram_api_url = "{hooks.url}"
""")
    out = tmp_path / "summary.json"
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--summary-json", str(out), "-v"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True)
    reader.start()
    try:
        # a running pipeline that has traded
        def traded():
            f = _try_scrape(port)
            return f if f and value(f, "pipeline_fills", "pipeline_fills_total",
                                    role="gateway") >= 2 else None
        fams = wait_for(traded, 90, "two fills in the metrics")
        # types by Prometheus' rules
        assert fams["pipeline_hop_latency_seconds"].type == "histogram"
        for c in ("pipeline_ticks", "pipeline_orders", "pipeline_fills", "pipeline_reconnects",
                  "pipeline_resyncs", "pipeline_role_cpu_seconds", "process_cpu_seconds"):
            assert fams[c].type == "counter", c
        for g in ("pipeline_trading_state", "pipeline_role_state", "pipeline_position",
                  "pipeline_open_orders", "pipeline_pnl", "pipeline_clock_offset_seconds",
                  "pipeline_rate_limit_used", "pipeline_role_resident_memory_bytes"):
            assert fams[g].type == "gauge", g
        assert value(fams, "pipeline_trading_state", role="gateway", state="ACTIVE") == 1
        assert value(fams, "pipeline_role_state", role="strategy", kind="strategy",
                     state="RUNNING") == 1
        assert value(fams, "pipeline_ticks", "pipeline_ticks_total", role="collector") > 100
        assert value(fams, "pipeline_rate_limit_used", limit="weight_60s") > 0
        hops = {s.labels["hop"] for s in fams["pipeline_hop_latency_seconds"].samples}
        assert {"socket_to_ring", "ring_to_strategy", "gateway_risk", "tick_to_order"} <= hops
        _check_histograms(fams)

        # the kill switch → HALTED; the alert goes out on both channels
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "pipeline.gateway", "kill", "--config", str(cfg)],
                       check=True, cwd=REPO, capture_output=True, timeout=30)
        halted = hooks.wait(lambda p: p[1].get("event") == "halted", 15)
        assert halted and time.monotonic() - t0 < 15
        path, body = halted[0]
        assert path == "/hook" and "HALTED" in body["text"] and "kill" in body["text"].lower()
        assert body["run_id"] == f"{shm_name}-run" and body["details"]["currency"] == "USDT"
        tg = hooks.wait(lambda p: p[0].endswith("/sendMessage") and "HALTED" in p[1]["text"], 15)
        assert tg and tg[0][0] == f"/bot{TOKEN}/sendMessage" and tg[0][1]["chat_id"] == "4242"
        assert hooks.wait(lambda p: p[1].get("event") == "fill", 1), "no fill alert"

        # halted: nothing trades any more; the metrics settle on what the gateway did
        gw = tmp_path / "gw" / "status.json"

        def settled():
            f = _try_scrape(port)
            st = json.loads(gw.read_text())
            orders = value(f, "pipeline_orders", "pipeline_orders_total", role="gateway")
            n = value(f, "pipeline_hop_latency_seconds", "pipeline_hop_latency_seconds_count",
                      role="gateway", hop="gateway_risk")
            if (st["trading"] == "HALTED" and orders == st["accepted"] and n == orders
                    and value(f, "pipeline_fills", "pipeline_fills_total", role="gateway")
                    == st["fills"]):
                return f, st
            return None
        fams, st = wait_for(settled, 20, "metrics matching the halted gateway's status.json")
        assert value(fams, "pipeline_trading_state", role="gateway", state="HALTED") == 1
        assert value(fams, "pipeline_trading_state", role="gateway", state="ACTIVE") == 0
        for sym, pos in st["positions"].items():
            assert value(fams, "pipeline_position", symbol=sym) == pytest.approx(pos["qty"])
            assert value(fams, "pipeline_realized_pnl", symbol=sym, currency="USDT") == \
                pytest.approx(pos["realized"])
        assert value(fams, "pipeline_open_orders", symbol="BTCUSDT") == len(st["open_orders"])
        for state, n in st["orders"].items():
            assert value(fams, "pipeline_orders_in_state", state=state) == n
        assert value(fams, "pipeline_pnl", role="gateway", currency="USDT") == pytest.approx(
            st["pnl"], abs=0.01)
        assert value(fams, "pipeline_clock_offset_seconds") == pytest.approx(
            st["clock"]["offset_ms"] / 1e3)
        assert value(fams, "pipeline_reconnects", "pipeline_reconnects_total", role="gateway",
                     stream="user_data") == st["stream"]["connects"] - 1
        # signals keep coming while HALTED: each is rejected, counted by reason
        n = wait_for(lambda: _reason_count(port, "HALTED"), 60, "a signal rejected while HALTED")
        assert n >= 1
        wait_for(lambda: _reason_count(port, "HALTED")
                 == json.loads(gw.read_text())["rejects"].get("HALTED"), 10,
                 "the HALTED rejects of the metrics and of status.json to agree")
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
        reader.join(5)
    s = json.loads(out.read_text())
    assert s["stop_reason"] == "SIGINT"
    gw_report = s["roles"]["gateway"]["report"]
    assert s["totals"]["orders"] == gw_report["accepted"]
    assert s["hops"]["gateway_risk"]["count"] == gw_report["accepted"]
    assert s["alerts"]["sent"] >= 3 and s["alerts"]["failed"] == 0
    # the bot token is nowhere: not in the launcher's output, a role's log, the summary
    text = "".join(lines) + out.read_text()
    for f in [*(tmp_path / "run").rglob("*.log*"), *(tmp_path / "run").rglob("*.out")]:
        text += f.read_text(errors="replace")
    assert TOKEN not in text and TOKEN.split(":")[1] not in text


def _try_scrape(port: int) -> dict | None:
    try:
        f = scrape(port)
    except OSError:
        return None
    return f if "pipeline_fills" in f else None      # the roles are not all up yet


def _reason_count(port: int, reason: str) -> float:
    """pipeline_rejects_by_reason_total{source="risk",reason=...} (0 while absent)."""
    f = _try_scrape(port) or {}
    fam = f.get("pipeline_rejects_by_reason")
    return sum(s.value for s in (fam.samples if fam else ()) if s.labels.get("reason") == reason
               and s.labels.get("source") == "risk" and s.name.endswith("_total"))


def _check_histograms(fams: dict) -> None:
    """Cumulative buckets never decrease, +Inf equals _count, and the sum is plausible."""
    by: dict[tuple, dict] = {}
    for s in fams["pipeline_hop_latency_seconds"].samples:
        key = (s.labels["role"], s.labels["hop"])
        d = by.setdefault(key, {"buckets": []})
        if s.name.endswith("_bucket"):
            d["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            d["count"] = s.value
        elif s.name.endswith("_sum"):
            d["sum"] = s.value
    for key, d in by.items():
        b = sorted(d["buckets"])
        counts = [c for _, c in b]
        assert counts == sorted(counts), key
        assert b[-1][0] == float("inf") and counts[-1] == d["count"], key
        assert 0 < d["sum"] < d["count"] * 60, key      # seconds: a positive mean below a minute
