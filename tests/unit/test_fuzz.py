"""The atheris harnesses (fuzz/) in the normal suite: every stored corpus input (the seeds from
tests/data and every crash found so far) is replayed through its harness, and each harness runs
coverage-guided for a few thousand inputs in a subprocess (atheris calls exit). The long run is
`make fuzz` (FUZZ_SECONDS per harness); docs/testing.md says how to keep a find."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.runner import replay

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"
HARNESSES = ["ws_binance", "ws_okx", "rest_reply", "risk_kernel"]
RUNS = int(os.environ.get("FUZZ_TEST_RUNS", "1500"))


@pytest.mark.parametrize("name", HARNESSES)
def test_stored_corpus_replays_clean(name):
    files = sorted((CORPUS / name).iterdir())
    assert len(files) >= 8, f"corpus of {name} is nearly empty"
    assert replay(importlib.import_module(f"fuzz.{name}").one_input, files) == len(files)


def test_every_crash_found_is_kept_in_the_corpus():
    crashes = sorted(p.name for p in CORPUS.glob("*/crash-*"))
    assert {"crash-used-weight-0m", "crash-ws-status-not-int", "crash-ws-interval-0",
            "crash-last-gap-after-malformed"} <= set(crashes)


@pytest.mark.parametrize("name", HARNESSES)
def test_brief_coverage_guided_run_finds_nothing(name, tmp_path):
    pytest.importorskip("atheris")
    work = tmp_path / "work"
    work.mkdir()
    p = subprocess.run(
        [sys.executable, "-m", f"fuzz.{name}", str(work), str(CORPUS / name), f"-runs={RUNS}",
         "-seed=17", f"-artifact_prefix={tmp_path}/", "-max_len=8192", "-rss_limit_mb=1024"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    tail = (p.stdout + p.stderr)[-3000:]
    assert p.returncode == 0, f"fuzz.{name} found a crash:\n{tail}"
    assert "Done " in tail, tail
    assert not list(tmp_path.glob("crash-*")), tail


def test_what_the_fuzzer_found_is_handled():
    from pipeline.gateway.ratelimit import HostGate
    from pipeline.gateway.rest import Outcome
    from pipeline.venues.binance.ws_api import ws_reply
    from pipeline.gateway import risk_py
    from pipeline.gateway.risk import RiskEngine
    from tests.gateway_helpers import LIMITS, NOW, Sig, btc_rules

    from pipeline.venues.binance.ratelimits import used_from_headers, used_from_ws_limits
    gate = HostGate("h", weight_limit_1m=6000, order_limit_10s=100, used_of=used_from_headers)
    gate.observe_headers({"X-MBX-USED-WEIGHT-0M": "12", "X-MBX-USED-WEIGHT-1M": "7"})
    assert gate.used == {("weight", 60): (7, gate.used[("weight", 60)][1])}
    gate.observe(used_from_ws_limits([{"rateLimitType": "ORDERS", "interval": "SECOND",
                                       "intervalNum": 0, "count": 1}]))
    assert ("orders", 0) not in gate.used
    r = ws_reply({"id": 1, "status": "NEW", "result": {}}, gate, lambda s: s, 1, 2)
    assert r.outcome is Outcome.UNKNOWN and "malformed WS-API answer" in r.msg
    for cls in (RiskEngine, risk_py.RiskEngine):        # a refused message reports no gap
        eng = cls(**LIMITS)
        eng.set_instrument(btc_rules())
        eng.set_reference(1, 50_000.0, NOW)
        sig = Sig()
        sig()
        eng.check(sig(seq=5), NOW)
        assert eng.last_gap == 4
        eng.check(b"\0" * 71, NOW)
        assert eng.last_gap == 0, cls
