"""OKX gateway parts without a venue: answer classification, the per-endpoint budget, the clOrdId
mapping, ISO timestamps, the passphrase loading and its redaction."""
from __future__ import annotations

import time

import pytest

from pipeline.venues.okx.rest import Budget, classify
from pipeline.gateway.rest import Outcome
from pipeline.gateway.secrets import CredentialError, Redactor, load_passphrase
from pipeline.venues.okx import orders as ox


def test_okx_answers_map_to_gateway_outcomes():
    ok = {"code": "0", "msg": "", "data": [{"ordId": "1", "sCode": "0", "sMsg": ""}]}
    assert classify(200, ok) == (Outcome.OK, 0, "")
    one_failed = {"code": "1", "msg": "All operations failed",
                  "data": [{"sCode": "51008", "sMsg": "Insufficient balance"}]}
    assert classify(200, one_failed) == (Outcome.REJECTED, 51008, "Insufficient balance")
    assert classify(200, {"code": "1", "data": [{"sCode": "50001", "sMsg": "busy"}]})[0] is \
        Outcome.UNKNOWN                                  # the order's own answer is "unknown"
    assert classify(503, {"code": "50001", "msg": "x", "data": []})[0] is Outcome.UNKNOWN
    assert classify(502, None)[0] is Outcome.UNKNOWN      # a proxy page, not JSON
    assert classify(200, {"code": "50004", "data": []})[0] is Outcome.UNKNOWN
    assert classify(429, {"code": "50011", "data": []})[:2] == (Outcome.RATE_LIMITED, 50011)
    assert classify(401, {"code": "50113", "msg": "Invalid Sign"}) == \
        (Outcome.REJECTED, 50113, "Invalid Sign")
    assert classify(200, {"code": "50102", "msg": "expired"})[:2] == (Outcome.REJECTED, 50102)


def test_budget_refuses_past_the_endpoint_limit_and_recovers():
    b = Budget({"/x": (3, 0.2)})
    assert [b.take("/x") for _ in range(3)] == ["", "", ""]
    why = b.take("/x")
    assert "rate budget" in why and "3/3" in why and b.refused == 1
    assert b.take("/unlimited") == ""
    time.sleep(0.25)
    assert b.take("/x") == ""
    assert Budget().limits[ox.ORDER_PATH + " POST"] == (60, 2.0)


def test_client_ids_map_both_ways_and_fit_okx():
    cid = f"pl{0xffff:x}.{2**64 - 1:x}.{2**40 - 1:x}"
    w = ox.wire_cid(cid)
    assert len(w) == 32 and w.isalnum() and ox.our_cid(w) == cid
    assert ox.our_cid("someone-else") == "" and ox.our_cid("1x2") == "" and ox.our_cid("gxax1") == ""
    with pytest.raises(ValueError):
        ox.wire_cid("x1.2.3")


def test_iso_timestamps_round_trip():
    assert ox.iso_ms(1607418537715) == "2020-12-08T09:08:57.715Z"
    assert ox.parse_iso_ms("2020-12-08T09:08:57.715Z") == 1607418537715
    with pytest.raises(ValueError):
        ox.parse_iso_ms("2020-12-08 09:08:57")


def test_passphrase_from_file_or_env_and_redacted(tmp_path):
    f = tmp_path / "keys"
    f.touch(mode=0o600)
    f.write_text("api_key=k1234\napi_secret=s1234\napi_passphrase=pass-phrase-1\n")
    assert load_passphrase(env="NOPE", file=str(f)).reveal() == "pass-phrase-1"
    assert load_passphrase(env="P", environ={"P": "from-env-1"}).reveal() == "from-env-1"
    with pytest.raises(CredentialError, match="P2"):
        load_passphrase(env="P2", environ={})
    g = tmp_path / "keys2"
    g.touch(mode=0o600)
    g.write_text("api_key=k1234\napi_secret=s1234\n")
    with pytest.raises(CredentialError, match="api_passphrase"):
        load_passphrase(env="X", file=str(g))
    r = Redactor("k1234", "s1234")
    r.add(load_passphrase(env="NOPE", file=str(f)))
    assert "pass-phrase-1" not in r("login with pass-phrase-1 failed")


def test_launcher_keeps_the_passphrase_in_the_gateway_and_requires_it(tmp_path, monkeypatch):
    from pipeline import config
    from pipeline.launcher import supervisor
    path = tmp_path / "okx.toml"
    path.write_text('[gateway]\nvenue = "OKX"\nsymbols = ["BTC-USDT"]\n'
                    '[roles.gateway]\nkind = "gateway"\n'
                    '[risk.symbols."OKX:BTC-USDT"]\nmax_order_qty = 1.0\nmax_position_qty = 1.0\n')
    monkeypatch.setenv("PIPELINE_API_KEY", "k" * 8)
    monkeypatch.setenv("PIPELINE_API_SECRET", "s" * 8)
    monkeypatch.delenv("PIPELINE_API_PASSPHRASE", raising=False)
    with pytest.raises(supervisor.LaunchError, match="PIPELINE_API_PASSPHRASE"):
        supervisor.Launcher(config.load(path), str(path))
    monkeypatch.setenv("PIPELINE_API_PASSPHRASE", "p" * 8)
    la = supervisor.Launcher(config.load(path), str(path))
    assert "PIPELINE_API_PASSPHRASE" in la.secret_env_names()
