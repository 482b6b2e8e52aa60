"""TLS errors say TLS: the gateway's REST client and order wire against a local HTTPS server whose
certificate comes from a CA nobody trusts (refused, named as a certificate failure with the
host), and with that CA given as [gateway] ca_bundle (works)."""
from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import logging
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pipeline import config
from pipeline.config import ConfigError
from pipeline.gateway.ratelimit import HostGate
from pipeline.gateway.rest import Outcome
from pipeline.venues.binance.rest import BinanceWire as Wire, RestClient


def _cert(subject: str, key, issuer_name, issuer_key, *, ca: bool):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def https_venue(tmp_path_factory):
    """A loopback HTTPS 'venue' answering GET /api/v3/time, with a certificate from a private CA;
    yields (base_url, ca_pem_path)."""
    d = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pipeline test CA")])
    ca = _cert("pipeline test CA", ca_key, ca_name, ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("127.0.0.1", key, ca_name, ca_key, ca=False)
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"serverTime": 1_700_000_000_000}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "server.pem", d / "server.key")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"https://127.0.0.1:{srv.server_address[1]}", str(d / "ca.pem")
    srv.shutdown()
    srv.server_close()


def client(url: str, ca_bundle: str = "") -> RestClient:
    return RestClient(url, "k", lambda q: "sig", HostGate("127.0.0.1", weight_limit_1m=6000,
                                                          order_limit_10s=50),
                      connect_timeout_s=2.0, read_timeout_s=2.0, recv_window_ms=5000,
                      timestamp_ms=lambda: 0, redact=lambda s: s, ca_bundle=ca_bundle)


def test_untrusted_certificate_is_refused_and_named_as_tls(https_venue):
    url, _ = https_venue
    c = client(url)
    try:
        r = c.public("/api/v3/time")
        host = url.split("//")[1]
        assert r.outcome is Outcome.NOT_SENT             # the handshake failed: nothing sent
        assert r.msg.startswith("TLS: certificate verification failed for " + host)
        assert "ca_bundle" in r.msg and "reachable" not in r.msg
        assert c.server_time() is None and c.last_tls_error == r.msg
    finally:
        c.close()


def test_the_ca_given_in_the_config_is_trusted(https_venue):
    url, ca = https_venue
    c = client(url, ca_bundle=ca)
    try:
        assert c.server_time()[1] == 1_700_000_000_000
        assert c.public("/api/v3/time").outcome is Outcome.OK and c.last_tls_error == ""
    finally:
        c.close()


def wait_for(pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_order_wire_names_the_certificate_failure_and_trusts_the_given_ca(https_venue, caplog):
    url, ca = https_venue
    gate = HostGate("127.0.0.1", weight_limit_1m=6000, order_limit_10s=50)
    with caplog.at_level(logging.ERROR, logger="pipeline.gateway.wire"):
        w = Wire(url, "k", gate, connect_timeout_s=2.0, read_timeout_s=2.0, redact=lambda s: s)
        try:                     # its thread opens the connections it holds ready: refused
            wait_for(lambda: w.connect_errors >= 1, "a refused connection")
            assert w.idle() == 0
            assert "TLS: certificate verification failed for 127.0.0.1:" in w.last_tls_error
        finally:
            w.close()
    assert "certificate verification failed" in caplog.text
    w2 = Wire(url, "k", gate, connect_timeout_s=2.0, read_timeout_s=2.0, redact=lambda s: s,
              ca_bundle=ca)
    try:
        wait_for(lambda: w2.idle() >= 1, "a verified connection held ready")
        assert w2.connect_errors == 0 and w2.last_tls_error == ""
    finally:
        w2.close()


def test_ca_bundle_must_be_a_file(tmp_path):
    with pytest.raises(ConfigError, match="ca_bundle"):
        config.loads(f'[gateway]\nca_bundle = "{tmp_path / "missing.pem"}"\n')
