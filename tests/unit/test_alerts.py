"""Alerts: the [alerts] config is strict, the Telegram token never shows (repr, logs, errors), the
sender never blocks its caller and counts what it could not send; against a loopback server."""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline import config
from pipeline.alerts import Alert, AlertSender, AlertWatcher, _money, load_token
from pipeline.gateway.secrets import CredentialError
from pipeline.records import TradingState
from pipeline.telemetry.status import StatusBlock

TOKEN = "987654:ZZsecret-bot-token-for-tests-abcdef"


@pytest.fixture
def server():
    posts, status = [], {"code": 200}
    done = threading.Event()

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            posts.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(status["code"])
            self.end_headers()
            done.set()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", posts, status
    srv.shutdown()
    srv.server_close()


def _cfg(**kw) -> config.AlertsConfig:
    return config.AlertsConfig(**kw)


def test_alerts_config_is_strict_and_refuses_plain_http_off_this_machine():
    with pytest.raises(config.ConfigError, match="unknown key 'alerts.telegram_token'"):
        config.loads('[alerts]\ntelegram_token = "x"\n')     # a secret is never a config key
    with pytest.raises(config.ConfigError, match="https"):
        config.loads('[alerts]\nwebhook_url = "http://hooks.example.com/x"\n')
    with pytest.raises(config.ConfigError, match="must be one of"):
        config.loads('[alerts]\non = ["halted", "lunch"]\n')
    c = config.loads('[alerts]\nwebhook_url = "https://hooks.example.com/x"\n').alerts
    assert c.enabled and "fill" not in c.on
    assert not config.AlertsConfig().enabled


def test_token_comes_from_a_0600_file_or_the_environment_and_never_prints(tmp_path):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    f.chmod(0o644)
    cfg = _cfg(telegram_chat_id="1", telegram_token_file=str(f))
    with pytest.raises(CredentialError, match="chmod 600") as exc:
        load_token(cfg)
    assert TOKEN not in str(exc.value)
    f.chmod(0o600)
    tok = load_token(cfg)
    assert tok.reveal() == TOKEN and TOKEN not in repr(tok) and TOKEN not in f"{tok}"
    with pytest.raises(CredentialError, match="PIPELINE_TELEGRAM_TOKEN"):
        load_token(_cfg(telegram_chat_id="1"), environ={})
    assert load_token(_cfg(telegram_chat_id="1"),
                      environ={"PIPELINE_TELEGRAM_TOKEN": TOKEN}).reveal() == TOKEN
    assert load_token(_cfg(webhook_url="https://x.example/h")) is None    # no Telegram, no token


def test_webhook_and_telegram_requests_have_the_documented_shape(server):
    url, posts, _ = server
    cfg = _cfg(webhook_url=f"{url}/hook", telegram_chat_id="42", telegram_api_url=url,
               on=["halted", "fill"])
    tok = load_token(cfg, environ={"PIPELINE_TELEGRAM_TOKEN": TOKEN})
    s = AlertSender(cfg, "run-1", tok)
    assert TOKEN not in repr(s)
    assert s.notify(Alert("halted", "gateway HALTED: kill switch", {"reason": "kill switch"}))
    assert not s.notify(Alert("stale_feed", "not wanted"))       # not in `on`
    s.close()
    assert s.counts == {"queued": 1, "sent": 2, "failed": 0, "dropped": 0}
    by_path = dict(posts)
    assert set(by_path) == {"/hook", f"/bot{TOKEN}/sendMessage"}
    tg, hook = by_path[f"/bot{TOKEN}/sendMessage"], by_path["/hook"]
    assert tg["chat_id"] == "42" and tg["text"] == "[run-1] gateway HALTED: kill switch"
    assert hook["event"] == "halted" and hook["run_id"] == "run-1"
    assert hook["details"] == {"reason": "kill switch"} and hook["time"].endswith("+00:00")


def test_a_failing_endpoint_is_retried_once_counted_and_logged_without_the_token(server, caplog):
    url, posts, status = server
    status["code"] = 500
    cfg = _cfg(telegram_chat_id="42", telegram_api_url=url, timeout_s=2)
    s = AlertSender(cfg, "run-1", load_token(cfg, environ={"PIPELINE_TELEGRAM_TOKEN": TOKEN}))
    with caplog.at_level(logging.WARNING, logger="pipeline.alerts"):
        s.notify(Alert("halted", "gateway HALTED"))
        s.close(timeout=10)
    assert len(posts) == 2 and s.counts["failed"] == 1 and s.counts["sent"] == 0
    assert "alert to telegram failed" in caplog.text and TOKEN not in caplog.text


def test_a_full_queue_drops_and_counts_instead_of_blocking():
    cfg = _cfg(webhook_url="http://127.0.0.1:9/never", queue_size=1, timeout_s=0.2)
    s = AlertSender(cfg, "r")
    results = [s.notify(Alert("halted", f"n{i}")) for i in range(50)]
    assert not all(results) and s.counts["dropped"] >= 1
    assert s.counts["queued"] + s.counts["dropped"] == 50
    s.close(timeout=0.1)


def test_watcher_turns_the_status_block_into_alerts(shm_name, tmp_path):
    block = StatusBlock.create(shm_name, 2)
    try:
        got = []

        class Sink:
            cfg = _cfg(webhook_url="https://x.example/h", stale_feed_s=2.0,
                       on=["halted", "reducing", "stale_feed", "fill", "role_death"])

            def notify(self, a):
                got.append(a)

        w = AlertWatcher(Sink(), block, gateway=1, collectors={0: "collector"}, currency="USDT",
                         status_json=tmp_path / "status.json")
        block.slots[0]["ticks"] = 10
        w.check(now=100.0)
        assert got == []
        block.slots[1]["fills"], block.slots[1]["pnl"] = 2, -0.001
        w.check(now=100.5)
        assert [a.event for a in got] == ["fill"] and "2 new fills" in got[0].text
        assert "PnL 0.00 USDT" in got[0].text                    # never "-0.00"
        block.slots[1]["trading_state"] = int(TradingState.HALTED)
        w.check(now=101.0)
        assert [a.event for a in got] == ["fill"]               # waits for status.json's reason
        w.check(now=101.5)
        w.check(now=103.2)                                       # ... at most REASON_WAIT_S
        w.check(now=103.5)                                       # once per transition
        assert [a.event for a in got] == ["fill", "halted", "stale_feed"]
        assert got[1].text == "gateway HALTED (PnL 0.00 USDT)"  # no status.json: no reason
        assert "collector" in got[2].text                         # 3 s without a tick
        w.check(now=110.0)
        assert [a.event for a in got].count("stale_feed") == 1   # once until ticks resume
        (tmp_path / "status.json").write_text(json.dumps({"trading": "REDUCING",
                                                          "halt_reason": ""}))
        block.slots[1]["trading_state"] = int(TradingState.REDUCING)
        w.check(now=110.5)                                       # status.json agrees: at once
        assert got[-1].event == "reducing" and got[-1].text.startswith("gateway REDUCING")
        block.slots[1]["trading_state"] = int(TradingState.HALTED)
        (tmp_path / "status.json").write_text(json.dumps({"trading": "HALTED",
                                                          "halt_reason": "loss limit"}))
        w.check(now=111.0)
        assert got[-1].event == "halted" and "HALTED: loss limit" in got[-1].text
        assert got[-1].details["reason"] == "loss limit"
        w.role_died("strategy", "killed by signal 9")
        assert got[-1].event == "role_death" and "strategy killed by signal 9" in got[-1].text
    finally:
        block.close()


def test_money_never_prints_minus_zero():
    assert _money(-0.0001, "USDT") == "0.00 USDT"
    assert _money(-1234.567, "USDT") == "-1,234.57 USDT"
    assert _money(0.5, "") == "0.50"


def test_the_watcher_alerts_for_every_gateway_and_names_it(shm_name, tmp_path):
    block = StatusBlock.create(shm_name, 3)
    try:
        got = []

        class Sink:
            cfg = _cfg(webhook_url="https://x.example/h", on=["halted", "fill"])

            def notify(self, a):
                got.append(a)

        (tmp_path / "okx.json").write_text(json.dumps({"trading": "HALTED",
                                                       "halt_reason": "launcher requested HALT"}))
        w = AlertWatcher(Sink(), block, collectors={},
                         gateways={0: ("gateway", tmp_path / "none.json", "USDT"),
                                   2: ("gateway_okx", tmp_path / "okx.json", lambda: "USDC")})
        w.check(now=100.0)
        block.slots[2]["trading_state"] = int(TradingState.HALTED)
        block.slots[0]["fills"] = 1
        w.check(now=100.5)
        assert sorted(a.event for a in got) == ["fill", "halted"]
        halted = next(a for a in got if a.event == "halted")
        assert halted.text == ("gateway gateway_okx HALTED: launcher requested HALT "
                               "(PnL 0.00 USDC)") and halted.details["role"] == "gateway_okx"
        fill = next(a for a in got if a.event == "fill")
        assert fill.text.startswith("gateway gateway: 1 new fill") and "USDT" in fill.text
    finally:
        block.close()
