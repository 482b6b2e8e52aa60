"""TLS to the venue: always verified, with an optional CA bundle, and errors that say TLS.

Certificates are verified against the system's CA store, or against `[gateway] ca_bundle` (a PEM
file) when the venue (or a test exchange) uses a private CA; the environment is not consulted
(`trust_env = False`: no REQUESTS_CA_BUNDLE, no proxy picked up by accident). Nothing in the
pipeline may turn verification off: tests/unit/test_tls_policy.py fails on any of the ways to
do it (requests' verify flag, an ssl verify mode of none, host name checks off, an unverified
context) anywhere in pipeline/ or ext/.
"""
from __future__ import annotations

import ssl

HINT = ("if the venue uses a private CA, give its PEM file as [gateway] ca_bundle; "
        "verification is never turned off")


def context(ca_bundle: str = "") -> ssl.SSLContext:
    """A client context: certificate and host name verified (the default context's settings),
    trusting `ca_bundle` instead of the system store when given."""
    return ssl.create_default_context(cafile=ca_bundle or None)


def ws_sslopt(ca_bundle: str = "") -> dict | None:
    """websocket-client's sslopt for the same policy (None = its verified defaults)."""
    return {"ca_certs": ca_bundle} if ca_bundle else None


def tls_cause(exc: BaseException | None) -> ssl.SSLError | None:
    """The ssl error somewhere in `exc`'s chain (requests wraps it two or three levels deep)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLError):
            return exc
        for arg in getattr(exc, "args", ()):
            if isinstance(arg, ssl.SSLError):
                return arg
            inner = getattr(arg, "reason", None)
            if isinstance(inner, ssl.SSLError):
                return inner
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "reason", None)
    return None


def describe(exc: BaseException, host: str) -> str | None:
    """'TLS: ...' naming the host and the certificate problem, or None if `exc` is not TLS."""
    cause = tls_cause(exc)
    if cause is None:
        return None
    if isinstance(cause, ssl.SSLCertVerificationError):
        why = cause.verify_message or cause.reason or str(cause)
        return f"TLS: certificate verification failed for {host}: {why} ({HINT})"
    return f"TLS error with {host}: {cause.reason or cause}"


def is_cert_failure(exc: BaseException) -> bool:
    return isinstance(tls_cause(exc), ssl.SSLCertVerificationError)
