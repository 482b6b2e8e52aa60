"""Ed25519 key handling of the gateway (pipeline/gateway/keys.py) and the simulator's check of
Ed25519 signatures (pipeline/sim/accounts.py), without processes."""
import base64
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline import config
from pipeline.config import SimAccountConfig
from pipeline.gateway import keys
from pipeline.sim.accounts import Account


def _forms(k: Ed25519PrivateKey) -> dict[str, str]:
    der = k.private_bytes(ser.Encoding.DER, ser.PrivateFormat.PKCS8, ser.NoEncryption())
    pem = k.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()).decode()
    seed = k.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    return {"pem": pem, "der_b64": base64.b64encode(der).decode(),
            "seed_b64": base64.b64encode(seed).decode()}


def test_every_private_key_form_signs_what_the_simulator_verifies():
    k = Ed25519PrivateKey.generate()
    pub = base64.b64encode(k.public_key().public_bytes(ser.Encoding.Raw,
                                                       ser.PublicFormat.Raw)).decode()
    acct = Account(SimAccountConfig(api_key="k", secret="unused", ed25519_public_key=pub), 1)
    payload = b"symbol=BTCUSDT&side=BUY&timestamp=1700000000000"
    for form, text in _forms(k).items():
        signer = keys.ed25519_signer(text)
        rest = keys.rest_sign(signer)(payload)
        assert rest.endswith("%3D%3D"), form                 # percent-encoded for a query
        assert acct.signature_ok(payload, rest), form
        assert acct.signature_ok(payload, keys.ws_sign(signer)(payload)), form
    other = keys.ed25519_signer(_forms(Ed25519PrivateKey.generate())["seed_b64"])
    assert not acct.signature_ok(payload, keys.ws_sign(other)(payload))
    assert not acct.signature_ok(payload + b"&x=1", keys.ws_sign(signer)(payload))
    assert not acct.signature_ok(payload, "a" * 64)          # an HMAC-shaped signature
    assert not acct.signature_ok(payload, quote("not base64!"))


def test_bad_keys_are_errors_that_do_not_quote_them():
    for bad in ("not base64 at all!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError) as e:
            keys.ed25519_signer(bad)
        assert bad not in str(e.value)


def test_ed25519_needs_the_ws_api_transport():
    with pytest.raises(config.ConfigError, match="ed25519.*ws_api"):
        config.loads('[gateway]\nkey_type = "ed25519"\ntransport = "rest"\n')
    cfg = config.loads('[gateway]\nkey_type = "ed25519"\ntransport = "ws_api"\n')
    assert cfg.gateway.key_type == "ed25519"
