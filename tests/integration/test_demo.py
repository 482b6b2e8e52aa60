"""The demo config end to end: launcher → simulator, collector, strategy, gateway, as real
processes over real shared memory, ZeroMQ, WebSocket and HTTP."""
import json
import os
import re
import signal
import subprocess
import time

import psutil
import pytest

from tests.integration.demo_harness import LAUNCH, demo_config, hooks  # noqa: F401


def segments(prefix):
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]


def test_demo_runs_end_to_end(tmp_path, shm_name):
    cfg = demo_config(tmp_path, shm_name)
    out = tmp_path / "summary.json"
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--duration", "10", "--summary-json",
                                   str(out), "--plots", str(tmp_path / "plots")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kids: set[psutil.Process] = set()
    printed: list[str] = []
    try:
        for line in p.stdout:                      # collect the role processes while it runs
            printed.append(line)
            if line.startswith("ticks"):
                kids.update(psutil.Process(p.pid).children(recursive=True))
        p.wait(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    s = json.loads(out.read_text())
    t = s["totals"]
    assert s["stop_reason"] == "duration" and not s["halted"]
    assert t["ticks"] > 1000 and t["signals"] > 0 and t["orders"] > 0 and t["fills"] > 0
    # every order is accounted for: filled + open + cancelled + rejected + unknown (+ expired)
    assert sum(t["orders_by_state"].values()) == t["orders"]
    assert set(t["orders_by_state"]) <= {"FILLED", "PARTIALLY_FILLED", "ACK", "NEW", "CANCELED",
                                         "REJECTED", "EXPIRED", "UNKNOWN"}
    report = s["roles"]["gateway"]["report"]
    assert report["open_orders"] == []             # on_shutdown = "cancel"
    for name, r in s["roles"].items():
        assert r["exit_code"] == 0, (name, r)
    assert "tick_to_order" in s["hops"] and s["hops"]["tick_to_order"]["count"] > 0
    assert (tmp_path / "plots" / "hop_latency.png").stat().st_size > 1000
    # the trader's view: market, PnL with its currency, final position, fees, fills explained
    tr = s["trading"]
    btc = tr["symbols"]["BTCUSDT"]
    assert tr["currency"] == "USDT" and btc["base"] == "BTC" and btc["quote"] == "USDT"
    assert btc["position"] == pytest.approx(report["positions"]["BTCUSDT"]["qty"])
    assert btc["position"] == pytest.approx(btc["bought"] - btc["sold"])
    assert btc["fills"] == tr["fills"]["count"] == t["fills"]
    assert btc["fees"] > 0 and tr["pnl_after_fees"] == pytest.approx(tr["pnl"] - tr["fees"])
    m = btc["market"]
    assert m["low"] <= min(m["first"], m["last"]) and m["high"] >= max(m["first"], m["last"])
    assert m["high"] - m["low"] > 1.0               # the tape moves (dollars, not cents)
    assert sum(tr["fills"]["first_report"].values()) == tr["fills"]["count"]
    text = "".join(printed)
    assert re.search(r"^PnL -?[\d,]+\.\d\d USDT \(realized \+ unrealized, before fees\) \| fees "
                     r"[\d,]+\.\d\d USDT", text, re.M), text
    assert "-0.00" not in text
    assert re.search(r"^position BTCUSDT at the end: (flat|(long|short) [\d.e-]+ BTC @ )", text,
                     re.M)
    assert "in the reply to the order and on the user-data stream" in text
    assert re.search(r"^market BTCUSDT: [\d,.]+ → [\d,.]+ USDT", text, re.M)
    trading_png = tmp_path / "plots" / "trading.png"
    assert trading_png.stat().st_size > 20_000 and trading_png.read_bytes()[:4] == b"\x89PNG"
    assert f"plot: {trading_png}" in text
    assert not segments(shm_name)
    assert kids and not any(k.is_running() and k.status() != psutil.STATUS_ZOMBIE for k in kids)


def test_killed_strategy_halts_gateway_within_one_second(tmp_path, shm_name, hooks):
    cfg = demo_config(tmp_path, shm_name, duration="0",
                      extra=f'[alerts]\nwebhook_url = "{hooks.url}/hook"\n')
    out = tmp_path / "summary.json"
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--summary-json", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in p.stdout:
            if line.startswith("ticks"):
                break
        strat = [k for k in psutil.Process(p.pid).children(recursive=True)
                 if "pipeline.strategy" in " ".join(k.cmdline())]
        assert len(strat) == 1
        t_kill = time.perf_counter_ns()            # CLOCK_MONOTONIC, as the journal's "m"
        strat[0].send_signal(signal.SIGKILL)
        p.stdout.read()
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1
    s = json.loads(out.read_text())
    assert s["halted"] and "strategy" in s["stop_reason"]
    halts = [r for r in journal(tmp_path) if r["k"] == "trading" and r.get("state") == "HALTED"]
    assert halts, "the gateway never went HALTED"
    assert halts[0]["m"] - t_kill < 1_000_000_000
    stops = [e["role"] for e in s["events"] if e["event"] in ("stopped", "killed")]
    assert stops == ["collector", "gateway", "sim"]    # in order; the strategy was already dead
    # the operator heard of it: the role's death (and the HALT it caused) on the webhook
    died = hooks.wait(lambda p: p[1].get("event") == "role_death", 5)
    assert died and "strategy" in died[0][1]["text"] and "signal 9" in died[0][1]["text"]
    assert s["alerts"]["failed"] == 0 and s["alerts"]["sent"] >= 1
    assert not segments(shm_name)


def journal(tmp_path):
    """The gateway's journal records (journal.bin, the default, or journal.jsonl)."""
    from pipeline.gateway import binjournal
    b = tmp_path / "gw" / "journal.bin"
    if b.exists():
        return list(binjournal.read(b))
    p = tmp_path / "gw" / "journal.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass                                   # a line being written
    return out


def test_killed_collector_is_restarted_and_trading_resumes_without_reset(tmp_path, shm_name):
    cfg = demo_config(tmp_path, shm_name, duration="0")
    out = tmp_path / "summary.json"
    p = subprocess.Popen(LAUNCH + ["--config", str(cfg), "--summary-json", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in p.stdout:
            if line.startswith("ticks"):
                break
        col = [k for k in psutil.Process(p.pid).children(recursive=True)
               if "pipeline.collector" in " ".join(k.cmdline())]
        assert len(col) == 1
        col[0].send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 120          # restart, resync, then fresh SMA windows
        lifted = None
        while time.monotonic() < deadline:
            j = journal(tmp_path)
            lifted = next((i for i, r in enumerate(j) if r.get("k") == "trading"
                           and r.get("state") == "ACTIVE" and "lifted" in r.get("why", "")),
                          None)
            if lifted is not None and any(r.get("k") == "order" for r in j[lifted:]):
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"trading did not resume with an order: lifted at {lifted}; "
                                 f"{[r for r in journal(tmp_path) if r.get('k') == 'trading']}")
        p.send_signal(signal.SIGTERM)
        p.stdout.read()
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    s = json.loads(out.read_text())
    assert s["stop_reason"] == "SIGTERM" and not s["halted"] and s["halts_cleared"] == 1
    assert s["roles"]["collector"]["restarts"] == 1
    states = [r["state"] for r in journal(tmp_path) if r.get("k") == "trading"]
    assert states[-2:] == ["HALTED", "ACTIVE"]
    assert not segments(shm_name)
