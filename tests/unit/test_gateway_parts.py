"""Unit tests of the gateway's pure parts: order state machine, positions, rate-limit gate, clock
sync, secrets and redaction, journal, answer classification."""
from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys

import pytest

from pipeline.gateway.clocksync import ClockSync
from pipeline.gateway.journal import Journal, read
from pipeline.venues.binance.rest import strip_signature
from pipeline.gateway.orders import (ClientIdReused, IllegalTransition, Order, OrderState,
                                     OrderTable, transition)
from pipeline.gateway.positions import Book, Fill, Position
from pipeline.gateway.ratelimit import HostBlocked, HostGate, retry_after_s
from pipeline.venues.binance.ratelimits import used_from_headers
from pipeline.gateway.rest import Outcome
from pipeline.venues.binance.rest import classify
from pipeline.gateway.secrets import (CredentialError, Credentials, RedactingFilter, Redactor,
                                      Secret, load_credentials)

KEY = "K" * 20 + "apikey0123456789"
SECRET = "S" * 20 + "secret9876543210"


def order(cid="pl1.a.1", qty=1.0) -> Order:
    return Order(cid=cid, symbol="BTCUSDT", symbol_id=18, side=1, order_type=1, tif=1, qty=qty,
                 price=100.0)


# ------------------------------------------------------------------ orders
def test_state_machine_paths_and_forbidden_moves():
    o = order()
    assert transition(o, OrderState.ACK)
    assert transition(o, OrderState.PARTIALLY_FILLED)
    assert transition(o, OrderState.FILLED)
    assert not transition(o, OrderState.CANCELED)        # late report for a terminal order
    assert o.state is OrderState.FILLED
    o2 = order("b")
    transition(o2, OrderState.ACK)
    with pytest.raises(IllegalTransition):
        transition(o2, OrderState.UNKNOWN)               # an acknowledged order is never unknown
    o3 = order("c")
    assert transition(o3, OrderState.UNKNOWN)
    assert transition(o3, OrderState.LOST)
    assert o3.state is OrderState.LOST and not o3.is_open


def test_idempotency_table_refuses_a_reused_client_id_in_any_state():
    t = OrderTable()
    o = t.add(order("x"))
    transition(o, OrderState.FILLED)
    with pytest.raises(ClientIdReused, match="FILLED"):
        t.add(order("x"))
    t.set_order_id(o, 42)
    assert t.by_order_id("BTCUSDT", 42) is o


# ------------------------------------------------------------------ positions
def test_position_average_price_and_realized_pnl_through_zero():
    p = Position("BTCUSDT")
    p.apply(1, 1.0, 100.0)
    p.apply(1, 1.0, 110.0)
    assert p.qty == 2.0 and p.avg_price == pytest.approx(105.0)
    r = p.apply(-1, 3.0, 120.0)                           # close 2 (+30), open 1 short at 120
    assert r == pytest.approx(30.0) and p.qty == -1.0 and p.avg_price == 120.0
    assert p.unrealized(100.0) == pytest.approx(20.0)
    r = p.apply(1, 1.0, 125.0)
    assert r == pytest.approx(-5.0) and p.qty == 0 and p.realized == pytest.approx(25.0)


def test_fills_are_deduplicated_by_trade_id():
    b = Book()
    f = Fill("BTCUSDT", 7, "c", 1, 1, 0.5, 100.0, 0.001, "BTC", "response")
    assert b.apply(f)
    assert not b.apply(dataclasses.replace(f, source="stream"))      # the stream's copy
    assert b.duplicates == 1 and b.position("BTCUSDT").qty == 0.5
    assert b.position("BTCUSDT").fees == {"BTC": 0.001}


# ------------------------------------------------------------------ rate limits
class FakeWall:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_gate_learns_headers_paces_then_stops_before_the_limit():
    clk = FakeWall(600.0)                                  # start of a minute and of a 10 s window
    g = HostGate("h", weight_limit_1m=1000, order_limit_10s=100, slowdown_fraction=0.8,
                 stop_fraction=0.95, clock=clk, used_of=used_from_headers)
    g.observe_headers({"X-MBX-USED-WEIGHT-1M": "100", "X-MBX-ORDER-COUNT-10S": "10"})
    assert g.order_wait_s() == (0.0, False)
    g.observe_headers({"x-mbx-order-count-10s": "85"})
    wait, stop = g.order_wait_s()
    assert not stop and wait > 0                           # paced
    g.observe_headers({"X-MBX-ORDER-COUNT-10S": "96"})
    wait, stop = g.order_wait_s()
    assert stop and wait == pytest.approx(10.0)            # until the 10 s window ends
    clk.t += 10.0                                          # next window: counts are stale
    assert g.order_wait_s() == (0.0, False)


def test_gate_closes_the_host_after_429_until_retry_after():
    clk = FakeWall()
    g = HostGate("h", weight_limit_1m=1000, order_limit_10s=100, clock=clk)
    g.block(429, retry_after_s({"Retry-After": "7"}))
    with pytest.raises(HostBlocked):
        g.check_open()
    clk.t += 6.9
    with pytest.raises(HostBlocked):
        g.check_open()
    clk.t += 0.2
    g.check_open()
    assert g.refused == 2 and g.blocks == 1
    assert retry_after_s({}, default=3.0) == 3.0


def test_gate_pushes_what_it_learns_into_the_kernel_that_admits_orders():
    import time

    from pipeline.gateway.reasons import Reason
    from pipeline.gateway.risk import RiskEngine
    from tests.gateway_helpers import LIMITS, Sig, btc_rules

    class Sink:
        def set_venue_gate(self, *args):
            self.got = args
    clk = FakeWall(600.0)
    g = HostGate("h", weight_limit_1m=1000, order_limit_10s=100, clock=clk,
                 used_of=used_from_headers)
    sink = Sink()
    g.bind(sink)
    assert sink.got == (0, 0, 0, 0)                         # nothing learnt: nothing closed
    t0 = time.perf_counter_ns()
    g.observe_headers({"X-MBX-ORDER-COUNT-10S": "85"})      # 10 left before the stop, 10 s left
    host, budget, pace_ns, pace_until = sink.got
    assert host == budget == 0 and pace_ns == 1_000_000_000
    assert t0 + 9.9e9 < pace_until < time.perf_counter_ns() + 10.1e9       # the window's end
    g.observe_headers({"X-MBX-ORDER-COUNT-10S": "96"})      # used up until the window ends
    assert sink.got[1] > t0 + 9.9e9
    g.block(429, 5.0)
    assert sink.got[0] > t0 + 4.9e9
    # the real kernel refuses an order while the gate it was given says closed
    e = RiskEngine(**LIMITS)
    e.set_instrument(btc_rules())
    now = time.perf_counter_ns()
    e.set_reference(1, 50_000.0, now)
    g.bind(e)
    msg = Sig()(created_mono=now - 10, qty=0.001)
    assert e.check(msg, now) == Reason.HOST_CLOSED


def test_the_venue_adapter_is_chosen_by_config_and_an_unknown_venue_is_a_clear_error():
    from types import SimpleNamespace

    from pipeline.gateway.assembly import GatewayError, venue_adapter
    from pipeline.venues.binance.gateway import BinanceVenue
    for v in ("BINANCE", "SIM"):
        assert isinstance(venue_adapter(SimpleNamespace(venue=v), None), BinanceVenue)
    from pipeline.venues.okx.gateway import OkxVenue
    assert isinstance(venue_adapter(SimpleNamespace(venue="OKX"), None), OkxVenue)
    with pytest.raises(GatewayError, match="no gateway adapter for venue 'KRAKEN'"):
        venue_adapter(SimpleNamespace(venue="KRAKEN"), None)


def test_classify_answers():
    assert classify(200, {})[0] is Outcome.OK
    assert classify(400, {"code": -2010, "msg": "x"}) == (Outcome.REJECTED, -2010, "x")
    assert classify(400, {"code": -1021})[0] is Outcome.REJECTED
    assert classify(429, {"code": -1003})[0] is Outcome.RATE_LIMITED
    assert classify(418, {"code": -1003})[0] is Outcome.BANNED
    assert classify(503, None)[0] is Outcome.UNKNOWN
    assert classify(400, {"code": -1007})[0] is Outcome.UNKNOWN
    assert classify(200, {"code": -1006})[0] is Outcome.UNKNOWN


# ------------------------------------------------------------------ clock
def test_clock_offset_is_the_median_and_needs_three_samples():
    wall = [10_000_000_000]
    samples = iter([(10_000_000_000, 10_050, 10_002_000_000), None,
                    (10_000_000_000, 10_040, 10_002_000_000),
                    (10_000_000_000, 11_000, 10_002_000_000)])  # an outlier
    c = ClockSync(lambda: next(samples), samples=4, wall_ns=lambda: wall[0])
    assert c.sync()
    assert c.offset_ns == 49_000_000                       # median of 49, 39, 999 ms
    assert c.timestamp_ms() == 10_049
    bad = ClockSync(lambda: None, samples=3)
    assert not bad.sync() and bad.failures == 1
    with pytest.raises(ValueError):
        ClockSync(lambda: None, samples=2)


def test_persistent_skew_trips_after_the_strikes():
    c = ClockSync(lambda: (0, 5_000, 0), samples=3, max_offset_ms=1000, strikes=2)
    c.sync()
    assert not c.skewed
    c.sync()
    assert c.skewed


# ------------------------------------------------------------------ secrets
def test_secret_and_credentials_never_print_their_values():
    s = Secret(SECRET)
    creds = Credentials(Secret(KEY), s, "env:X")
    for text in (repr(s), str(s), f"{s}", repr(creds), str(creds), f"{creds!r}"):
        assert SECRET not in text and KEY not in text
    with pytest.raises(TypeError):
        __import__("pickle").dumps(s)
    assert s.reveal() == SECRET


def test_credentials_file_mode_is_enforced(tmp_path):
    f = tmp_path / "creds"
    f.write_text(f"api_key={KEY}\napi_secret={SECRET}\n")
    for mode in (0o644, 0o640, 0o604, 0o660):
        f.chmod(mode)
        with pytest.raises(CredentialError, match=f"{mode:04o}") as ei:
            load_credentials(key_env="A", secret_env="B", file=str(f))
        assert SECRET not in str(ei.value)
    f.chmod(0o600)
    c = load_credentials(key_env="A", secret_env="B", file=str(f))
    assert c.api_key.reveal() == KEY and c.api_secret.reveal() == SECRET
    with pytest.raises(CredentialError, match="A, B"):
        load_credentials(key_env="A", secret_env="B", environ={})
    c = load_credentials(key_env="A", secret_env="B", environ={"A": KEY, "B": SECRET})
    assert c.source == "env:A,B"


def test_redactor_scrubs_values_signatures_and_hex_runs():
    r = Redactor(Secret(KEY), Secret(SECRET))
    sig = "ab" * 32
    text = (f"url ?symbol=X&timestamp=1&signature={sig} key {KEY} secret {SECRET} "
            f'{{"signature": "c2lnbmF0dXJl", "apiKey": "{KEY}"}} {"f" * 64}')
    out = r(text)
    assert KEY not in out and SECRET not in out and sig not in out and "f" * 64 not in out
    assert "c2lnbmF0dXJl" not in out and "symbol=X" in out


def test_logging_filter_redacts_messages_args_and_exceptions(caplog):
    lg = logging.getLogger("test.redact")
    f = RedactingFilter(Redactor(Secret(SECRET)))
    lg.addFilter(f)
    try:
        with caplog.at_level(logging.INFO, logger="test.redact"):
            lg.info("value %s", SECRET)
            try:
                raise RuntimeError(f"boom {SECRET}")
            except RuntimeError:
                lg.exception("failed")
    finally:
        lg.removeFilter(f)
    assert SECRET not in caplog.text and "boom <redacted>" in caplog.text


def test_hardening_sets_core_limit_zero_and_not_dumpable():
    code = ("from pipeline.gateway.secrets import harden_process; import resource;"
            "h = harden_process(); import ctypes; libc = ctypes.CDLL(None);"
            "print(resource.getrlimit(resource.RLIMIT_CORE), libc.prctl(3, 0, 0, 0, 0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split(")")
    assert out[0].strip() == "(0, 0" and out[1].strip() == "0"     # PR_GET_DUMPABLE → 0


# ------------------------------------------------------------------ journal
def test_journal_strips_signatures_redacts_and_survives_a_torn_line(tmp_path):
    p = tmp_path / "j.jsonl"
    body = f"symbol=BTCUSDT&side=BUY&timestamp=5&signature={'0a' * 32}"
    assert strip_signature(body) == "symbol=BTCUSDT&side=BUY&timestamp=5"
    j = Journal(p, fsync="always", redact=Redactor(Secret(SECRET)))
    j.write("request", body=strip_signature(body))
    j.write("note", text=f"oops {SECRET}")
    j.close()
    assert os.stat(p).st_mode & 0o077 == 0
    with open(p, "ab") as f:
        f.write(b'{"k": "fill", "trade_id": 1')                 # torn by a crash
    recs = list(read(p))
    assert [r["k"] for r in recs] == ["request", "note"]
    assert SECRET not in p.read_text() and "signature" not in p.read_text()
    with pytest.raises(ValueError):
        Journal(tmp_path / "x", fsync="sometimes")


def test_journal_interval_policy_syncs_at_most_every_interval(tmp_path):
    j = Journal(tmp_path / "j", fsync="interval", fsync_ms=10_000)
    j.write("a")
    j.write("b")
    assert not (tmp_path / "j").read_bytes()                # buffered until a commit
    j.commit()
    assert j._dirty                                         # written, not yet synced
    j.flush()
    assert not j._dirty
    j.close()
    assert [r["k"] for r in read(tmp_path / "j")] == ["a", "b"]


# ------------------------------------------------------------------ config
def test_gateway_config_example_documents_every_key_and_is_strict(tmp_path):
    import dataclasses as dc

    from pipeline.config import ConfigError, GatewayConfig, GatewayRiskConfig, load, loads
    from tests.conftest import REPO
    text = (REPO / "configs" / "gateway.toml").read_text()
    cfg = load(REPO / "configs" / "gateway.toml")
    # the example shows the defaults (but points at a local simulator)
    assert dc.replace(cfg.gateway, rest_url=GatewayConfig.rest_url,
                      ws_api_url=GatewayConfig.ws_api_url) == GatewayConfig()
    for f in dc.fields(GatewayConfig):
        assert f"\n{f.name} = " in text or f.name == "risk", f.name
    for f in dc.fields(GatewayRiskConfig):
        assert f"\n{f.name} = " in text, f.name
    with pytest.raises(ConfigError, match="gateway.request_timeout"):
        loads("[gateway]\nrequest_timeout = 1.0\n")
    with pytest.raises(ConfigError, match="timeouts everywhere"):
        loads("[gateway]\nrequest_timeout_s = 0\n")
    with pytest.raises(ConfigError, match="clock_samples"):
        loads("[gateway]\nclock_samples = 2\n")
