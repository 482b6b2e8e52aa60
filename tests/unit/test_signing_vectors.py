"""Every signing vector in tests/data/signing through both paths: the compiled kernel
(ext/sign.pyx, OpenSSL libcrypto) and the pure-Python twin (hmac/hashlib, cryptography)."""
from __future__ import annotations

import base64
import json
import pickle

import pytest

from pipeline import _native
from pipeline.gateway import sign_py
from pipeline.gateway.instruments import InstrumentRules
from tests.gateway_helpers import BINANCE, SECRET

_sign = _native.load("sign")
PATHS = [_sign, sign_py]
IDS = ["cython", "python"]


def _load(vectors, name):
    return json.loads((vectors / "signing" / name).read_text())


def _key(v):
    return bytes.fromhex(v["key"]) if v.get("key_encoding") == "hex" else v["key"].encode()


def _msg(v):
    return bytes.fromhex(v["message"]) if v.get("message_encoding") == "hex" \
        else v["message"].encode()


@pytest.fixture(params=PATHS, ids=IDS)
def M(request):
    return request.param


@pytest.mark.parametrize("name,least", [("binance_hmac_sha256.json", 4),
                                        ("binance_ws_api_hmac_sha256.json", 17)])
def test_binance_hmac_vectors(vectors, M, name, least):
    vs = [v for v in _load(vectors, name)["vectors"] if v["verified"]]
    assert len(vs) >= least
    for v in vs:
        assert M.HmacSha256(_key(v)).hexdigest(_msg(v)) == v["expected"], v["id"]


def test_binance_ws_api_unverified_examples_do_not_verify(vectors, M):
    bad = _load(vectors, "binance_ws_api_hmac_sha256.json")["doc_examples_that_do_not_verify"]
    assert len(bad) == 5
    for v in bad:
        assert M.HmacSha256(_key(v)).hexdigest(_msg(v)) != v["expected"], v.get("id")


def test_rfc4231(vectors, M):
    vs = _load(vectors, "rfc4231_hmac_sha256.json")["vectors"]
    assert len(vs) == 7
    for v in vs:
        out = M.HmacSha256(_key(v)).digest(_msg(v)).hex()
        bits = v.get("truncated_to_bits")
        assert (out[:bits // 4] if bits else out) == v["expected"], v["id"]


def test_wycheproof_hmac_sha256(vectors, M):
    data = json.loads((vectors / "signing" / "wycheproof" / "hmac_sha256_test.json").read_text())
    n = 0
    for g in data["testGroups"]:
        tag_bytes = g["tagSize"] // 8
        for t in g["tests"]:
            mac = M.HmacSha256(bytes.fromhex(t["key"])).digest(bytes.fromhex(t["msg"]))
            same = mac[:tag_bytes] == bytes.fromhex(t["tag"])
            assert same == (t["result"] == "valid"), t["tcId"]
            n += 1
    assert n == data["numberOfTests"] == 174


def test_okx_vectors(vectors, M):
    d = _load(vectors, "okx_hmac_sha256_base64.json")
    vs = d["vectors"] + d["derived_vectors"]
    assert len(vs) == 4
    for v in vs:
        assert M.okx_prehash(v["timestamp"], v["method"], v["request_path"], v["body"]) \
            == v["message"].encode()
        assert M.OkxSigner(v["key"]).sign(v["timestamp"], v["method"], v["request_path"],
                                          v["body"]) == v["expected"], v["id"]
    login = d["unverifiable"][0]
    assert M.OkxSigner("22582BD0CFF14C41EDBF1AB98506286D").sign(
        "1538054050", "GET", "/users/self/verify") == login["computed_with_doc_example_secret"]


def test_binance_ed25519_vector(vectors, M):
    v = _load(vectors, "binance_ed25519.json")["vectors"][0]
    s = M.Ed25519Signer(v["key"])
    assert s.sign_b64(v["message"]) == v["expected"]
    assert M.ed25519_verify(v["public_key_derived"], base64.b64decode(v["expected"]),
                            v["message"])
    assert not M.ed25519_verify(v["public_key_derived"], base64.b64decode(v["expected"]),
                                v["message"] + "x")


def test_wycheproof_ed25519(vectors, M):
    data = json.loads((vectors / "signing" / "wycheproof" / "ed25519_test.json").read_text())
    n = 0
    for g in data["testGroups"]:
        pk = bytes.fromhex(g["publicKey"]["pk"])
        for t in g["tests"]:
            ok = M.ed25519_verify(pk, bytes.fromhex(t["sig"]), bytes.fromhex(t["msg"]))
            assert ok == (t["result"] == "valid"), t["tcId"]
            n += 1
    assert n == data["numberOfTests"] == 151


def test_ed25519_paths_agree_on_fresh_keys():
    import os
    for _ in range(5):
        seed, msg = os.urandom(32), os.urandom(100)
        a, b = _sign.Ed25519Signer(seed), sign_py.Ed25519Signer(seed)
        assert a.sign(msg) == b.sign(msg) and a.public_key() == b.public_key()
        assert _sign.ed25519_verify(b.public_key(), a.sign(msg), msg)


# ------------------------------------------------------------------ the encoder reproduces the docs
def _ltcbtc():
    return InstrumentRules.build(symbol_id=1, venue=BINANCE, name="LTCBTC", tick="0.1", step="1",
                                 max_order_qty="100", max_position_qty="100",
                                 max_order_notional=1e6)


def test_encoder_reproduces_the_documented_rest_request(vectors, M):
    order = json.loads((vectors / "binance" / "rest_order.json").read_text())
    url = order["signed_request_example"]["url"]
    s = M.BinanceSigner(SECRET, recv_window_ms=5000, recv_window_first=False)
    s.set_instrument(_ltcbtc())
    body = s.encode_sign(1, 1, 1, 1, 1, 1, b"", 1499827319559)     # qty 1, price 0.1
    assert url.endswith("?" + body.decode())


def test_encoder_non_ascii_symbol_is_percent_encoded(vectors, M):
    v = next(v for v in _load(vectors, "binance_hmac_sha256.json")["vectors"]
             if v["id"] == "rest-non-ascii-percent-encoded")
    s = M.BinanceSigner(SECRET, recv_window_first=False)
    s.set_instrument(InstrumentRules.build(symbol_id=9, venue=BINANCE, name="１２３４５６",
                                           tick="0.1", step="1", max_order_qty="10",
                                           max_position_qty="10", max_order_notional=1e6))
    assert s.encode_sign(9, 1, 1, 1, 1, 1, b"", 1499827319559) \
        == v["message"].encode() + b"&signature=" + v["expected"].encode()


def test_default_layout_puts_the_constant_prefix_first(M):
    s = M.BinanceSigner(SECRET, resp_type="ACK")
    s.set_instrument(_ltcbtc())
    body = s.encode_sign(1, -1, 1, 2, 12, 3, b"pl1.a.b", 1499827319559)
    q, _, sig = body.partition(b"&signature=")
    assert q == (b"symbol=LTCBTC&side=SELL&type=LIMIT&timeInForce=IOC&newOrderRespType=ACK"
                 b"&recvWindow=5000&quantity=12&price=0.3&newClientOrderId=pl1.a.b"
                 b"&timestamp=1499827319559")
    import hashlib
    import hmac
    assert sig.decode() == hmac.new(SECRET.encode(), q, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("units,decimals,text", [
    (5200000, 2, b"52000.00"), (1, 0, b"1"), (1, 1, b"0.1"), (5, 3, b"0.005"), (0, 2, b"0.00"),
    (123456789, 8, b"1.23456789"), (10**13, 12, b"10.000000000000"), (100, 2, b"1.00"),
])
def test_format_units(units, decimals, text):
    assert sign_py.format_units(units, decimals) == text
    for Signer in (_sign.BinanceSigner, sign_py.BinanceSigner):   # the kernel prints the same
        s = Signer(SECRET, recv_window_first=False)
        s.set_instrument(InstrumentRules.build(
            symbol_id=1, venue=BINANCE, name="X", tick=f"{10**-decimals:.{decimals}f}",
            step="1", max_order_qty="1", max_position_qty="1", max_order_notional=1.0))
        q = s.encode(1, 1, 1, 1, 1, max(units, 1), b"", 0)
        assert b"&price=" + sign_py.format_units(max(units, 1), decimals) + b"&" in q


# ------------------------------------------------------------------ secrets stay secret
@pytest.mark.parametrize("make", [
    lambda M: M.HmacSha256(SECRET), lambda M: M.BinanceSigner(SECRET),
    lambda M: M.OkxSigner(SECRET),
    lambda M: M.Ed25519Signer(bytes(range(32))),
])
def test_secrets_never_in_repr_or_pickle(M, make):
    s = make(M)
    for text in (repr(s), str(s), f"{s}", f"{s!r}"):
        assert SECRET not in text and "redacted" in text
    with pytest.raises(TypeError) as exc:
        pickle.dumps(s)
    assert SECRET not in str(exc.value)
    assert not any(SECRET in repr(getattr(s, a, "")) for a in dir(s) if not a.startswith("__"))


def test_bad_keys_give_errors_without_the_key(M):
    with pytest.raises(ValueError) as exc:
        M.Ed25519Signer(b"\x01" * 31 + b"secretbytes")
    assert "secretbytes" not in str(exc.value)
    with pytest.raises(TypeError):
        M.HmacSha256(12345)


def test_ws_api_payload_from_request_params(vectors, M):
    """The 17 verified WS-API requests: payload rebuilt from their params, signed by both paths."""
    vs = _load(vectors, "binance_ws_api_hmac_sha256.json")["vectors"]
    assert len(vs) == 17
    for v in vs:
        params = v["request"]["params"]
        payload = sign_py.ws_api_payload(params)
        assert payload == v["message"].encode(), v["id"]
        assert M.HmacSha256(_key(v)).hexdigest(payload) == params["signature"] == v["expected"]
    with pytest.raises(TypeError):
        sign_py.ws_api_payload({"price": 0.1})
