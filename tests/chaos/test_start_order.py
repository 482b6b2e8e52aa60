"""Randomised start order: the demo pipeline (simulator, collector, SMA strategy, gateway: real
processes under the launcher) started in a random order, each role either waited for (heartbeat)
or not (started: the next one starts at once, so roles come up concurrently), over RUNS runs with
a fixed seed (START_ORDER_SEED, START_ORDER_RUNS). The simulator is the venue: it is always there
first (the launcher loads the instruments from it).

In every run, from the gateway's journal: nothing about a signal (signal, order, request, fill) is
journalled before the gateway's "ready" mark (READY is answered only after it); every signal it
judged arrived after the mark; every order it placed comes from a signal it accepted, received
within that signal's TTL (a backlog a strategy buffered while the gateway was not READY is never
acted on late); and orders were placed (the run exercised it). The orders cycle through all six
permutations of collector / strategy / gateway, so the strategy starts (and signals) before the
gateway in half the runs."""
from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import subprocess
import time

import pytest

from pipeline.gateway.binjournal import read_any
from tests.integration.demo_harness import LAUNCH, demo_config

SEED = int(os.environ.get("START_ORDER_SEED", "17"))
RUNS = int(os.environ.get("START_ORDER_RUNS", "6"))    # each order once; more: the env
ROLES = ["collector", "strategy", "gateway"]
SIGNAL_KINDS = {"signal", "order", "request", "response", "fill"}


ORDERS = list(itertools.permutations(ROLES))          # every order comes up once per 6 runs
random.Random(SEED).shuffle(ORDERS)


def plan(k: int) -> tuple[list[str], dict[str, str]]:
    rng = random.Random(SEED * 1000 + k)
    order = list(ORDERS[k % len(ORDERS)])
    return ["sim"] + order, {r: rng.choice(["started", "heartbeat"]) for r in order}


def config(tmp_path, shm_name, order, ready) -> str:
    cfg = demo_config(tmp_path, shm_name, duration="0")       # until we stop it
    text = cfg.read_text()
    text = text.replace('wait = "busy_spin"', 'wait = "blocking"')      # a shared test box
    text = re.sub(r"(?m)^fifo_priority = \d+", "fifo_priority = 0", text)
    text = text.replace("params = { fast = 20, slow = 100 }", "params = { fast = 2, slow = 5 }")
    text = text.replace("[launcher]\n", "[launcher]\nstart_order = " + json.dumps(order) + "\n", 1)
    for role, mode in ready.items():
        text = text.replace(f"[roles.{role}]\n", f"[roles.{role}]\nready = \"{mode}\"\n", 1)
    cfg.write_text(text)
    return str(cfg)


def orders_in(journal) -> int:
    """Orders in the live journal so far (a record being written is skipped, not an error)."""
    return sum(1 for r in read_any(journal) if r["k"] == "order")


@pytest.mark.timeout(150)
@pytest.mark.parametrize("k", range(RUNS))
def test_no_signal_is_acted_on_before_the_gateway_is_ready(tmp_path, shm_name, k):
    order, ready = plan(k)
    cfg = config(tmp_path, shm_name, order, ready)
    summary = tmp_path / "summary.json"
    journal = tmp_path / "gw" / "journal.bin"              # the default journal_format
    p = subprocess.Popen(LAUNCH + ["--config", cfg, "--summary-json", str(summary)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:   # run until the gateway has placed 3 orders (an event, not a duration), then SIGTERM
        end = time.monotonic() + 90
        while not (journal.exists() and orders_in(journal) >= 3):
            assert p.poll() is None and time.monotonic() < end, f"{order} {ready}: no orders"
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        assert p.wait(60) == 0
    finally:
        if p.poll() is None:
            p.kill()
    s = json.loads(summary.read_text())
    assert s["stop_reason"] == "SIGTERM" and not s["halted"], (order, ready, s["stop_reason"])
    stats: dict[str, int] = {}
    recs = list(read_any(journal, stats))
    assert not stats.get("torn"), stats              # the gateway stopped cleanly: nothing torn
    kinds = [r["k"] for r in recs]
    assert kinds.count("ready") == 1, kinds[:20]
    at = kinds.index("ready")
    ready_m = recs[at]["m"]
    early = [r for r in recs[:at] if r["k"] in SIGNAL_KINDS]
    assert not early, f"{order} {ready}: journalled before READY: {early[:3]}"
    signals = [r for r in recs if r["k"] == "signal"]
    assert all(r["m"] >= ready_m for r in signals)
    accepted = {(r["strategy"], r["epoch"], r["seq"]): r for r in signals
                if r["decision"] == "accept"}
    for r in accepted.values():
        assert r["recv_mono"] >= ready_m, r
        assert r["recv_mono"] - r["created_mono"] <= 1_000_000_000, r    # ttl_ms = 1000
    orders = [r for r in recs if r["k"] == "order"]
    assert all((o["strategy"], o["epoch"], o["seq"]) in accepted for o in orders)
    assert orders, f"{order} {ready}: no order placed: the run proved nothing"
