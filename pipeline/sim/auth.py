"""Signed-request checks shared by REST and the WebSocket API.

REST (rest-api.md): the HMAC-SHA256 payload is the query string concatenated (no separator) with
the request body, exactly as received, with the `signature` parameter removed. WebSocket API:
all params except `signature`, sorted by name, joined `k=v` with `&`, values as sent (no
percent-encoding). Timing security: accept when `timestamp < serverTime + 1000` and
`serverTime - timestamp <= recvWindow` (default 5000 ms, at most 60000; microsecond timestamps and
fractional recvWindow are accepted).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from urllib.parse import unquote_plus

from pipeline.sim import errors
from pipeline.sim.faults import CLOCK
from pipeline.sim.errors import ApiError, err


def strip_signature(raw: bytes) -> tuple[bytes, str | None]:
    """Remove `signature=...` from a urlencoded string; returns (the rest, the signature)."""
    if not raw:
        return b"", None
    sig = None
    keep = []
    for part in raw.split(b"&"):
        if part.startswith(b"signature="):
            sig = part[10:].decode("ascii", "replace")
        else:
            keep.append(part)
    return b"&".join(keep), sig


def parse_params(query: bytes, body: bytes) -> dict[str, str]:
    """Query and body parameters; the query wins over the body. A name repeated within one of
    them is -1101 (Binance rejects duplicate parameters)."""
    out: dict[str, str] = {}
    for raw, wins in ((body, False), (query, True)):
        if not raw:
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(-1100, "Illegal characters found in a parameter.") from None
        seen: set[str] = set()
        plain = "%" not in text and "+" not in text        # the common case: nothing to unquote
        for part in text.split("&"):
            if not part:
                continue
            k, _, v = part.partition("=")
            if not plain:
                k, v = unquote_plus(k), unquote_plus(v)
            if k in seen:
                raise ApiError(errors.DUPLICATE_PARAM[0], errors.DUPLICATE_PARAM[1] % k)
            seen.add(k)
            if wins or k not in out:
                out[k] = v
    return out


def ws_payload(params: dict) -> bytes:
    """The WebSocket API signature payload of `params` (a JSON object)."""
    def s(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)
    return "&".join(f"{k}={s(params[k])}" for k in sorted(params) if k != "signature").encode()


def check_timestamp(params: dict, now_ms: int, what: str = "") -> None:
    """-1021 outside the recvWindow or 1 s ahead of the server; -1102 / -1131 for bad params.
    Every verdict on a timestamp is noted in faults.CLOCK (`what`: the endpoint or method)."""
    ts_raw = params.get("timestamp")
    if ts_raw is None or ts_raw == "":
        raise errors.mandatory("timestamp")
    try:
        ts = int(ts_raw)
    except (TypeError, ValueError):
        raise errors.bad_value("timestamp") from None
    now = now_ms
    if ts > 10**14:           # microseconds
        ts_ms = ts / 1000.0
    else:
        ts_ms = float(ts)
    rw_raw = params.get("recvWindow")
    rw = 5000.0
    if rw_raw not in (None, ""):
        try:
            rw = float(Decimal(str(rw_raw)))
        except (InvalidOperation, ValueError):
            raise errors.bad_value("recvWindow") from None
        if rw > 60000 or rw <= 0:
            raise err(errors.RECV_WINDOW_TOO_BIG)
    if ts_ms >= now + 1000:
        CLOCK.note(what, ts_ms - now, "ahead")
        raise err(errors.AHEAD_OF_SERVER)
    if now - ts_ms > rw:
        CLOCK.note(what, ts_ms - now, "behind")
        raise err(errors.OUTSIDE_RECV_WINDOW)
    CLOCK.note(what, ts_ms - now, "ok")
