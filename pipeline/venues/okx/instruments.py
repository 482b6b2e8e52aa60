"""OKX spot instruments: GET /api/v5/public/instruments?instType=SPOT → the registry's fields.

    fetch(rest_url, ["BTC-USDT", "XRP-USDT"], timeout_s=5)  → ({instId: fields}, [not listed])

One request lists every spot instrument (rate limit 20 requests / 2 s per IP); the ones asked for
are picked out locally, so a missing instId needs no second request. Fields: tickSz, lotSz, minSz,
maxLmtSz (the largest limit order; OKX spot documents no minimum notional), state ("live").
"""
from __future__ import annotations

from typing import Any

import orjson
import requests

from pipeline.venues.listing import ListingError, VenueUnreachable, plain

PATH = "/api/v5/public/instruments"


def fields_of(d: dict[str, Any]) -> dict[str, str]:
    return {"symbol": str(d["instId"]).upper(), "base": str(d.get("baseCcy", "")),
            "quote": str(d.get("quoteCcy", "")), "status": str(d.get("state", "")),
            "tick": plain(d.get("tickSz")), "step": plain(d.get("lotSz")),
            "min_qty": plain(d.get("minSz")), "max_qty": plain(d.get("maxLmtSz")),
            "min_price": "", "max_price": "", "min_notional": "", "max_notional": ""}


def fetch(rest_url: str, symbols: list[str], *, timeout_s: float = 5.0,
          session: requests.Session | None = None) -> tuple[dict[str, dict], list[str]]:
    url = rest_url.rstrip("/") + PATH
    own = session is None
    session = session or requests.Session()
    try:
        try:
            r = session.get(url, params={"instType": "SPOT"}, timeout=timeout_s)
        except requests.RequestException as exc:
            raise VenueUnreachable(f"GET {url}: {type(exc).__name__}: {exc}") from None
    finally:
        if own:
            session.close()
    if r.status_code >= 500 or r.status_code == 429:
        raise VenueUnreachable(f"GET {url}: HTTP {r.status_code}")
    try:
        body = orjson.loads(r.content)
    except orjson.JSONDecodeError:
        raise ListingError(f"GET {url}: HTTP {r.status_code}, not JSON: {r.text[:200]!r}") from None
    if r.status_code != 200 or not isinstance(body, dict) or str(body.get("code")) != "0":
        raise ListingError(f"GET {url}?instType=SPOT: HTTP {r.status_code} {body}")
    listed = {str(d["instId"]).upper(): d for d in body.get("data", ())
              if isinstance(d, dict) and "instId" in d}
    wanted = sorted({s.upper() for s in symbols})
    found = {s: fields_of(listed[s]) for s in wanted if s in listed}
    return found, [s for s in wanted if s not in listed]
