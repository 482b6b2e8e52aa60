"""Binance spot instruments: GET /api/v3/exchangeInfo → the registry's instrument fields.

    fetch(rest_url, ["BTCUSDT", "DOGEUSDT"], timeout_s=5)  → ({symbol: fields}, [not listed])

One request for all symbols (`symbols=["A","B"]`, weight 20). Binance answers 400 -1121 "Invalid
symbol." when any of them is not listed; then each symbol is asked alone to name the missing ones.
Filters: PRICE_FILTER (tickSize, minPrice, maxPrice), LOT_SIZE (stepSize, minQty, maxQty),
NOTIONAL (minNotional, maxNotional) or the older MIN_NOTIONAL (minNotional).
"""
from __future__ import annotations

from typing import Any

import orjson
import requests

from pipeline.venues.listing import ListingError, VenueUnreachable, plain

PATH = "/api/v3/exchangeInfo"
INVALID_SYMBOL = -1121


def fields_of(s: dict[str, Any]) -> dict[str, str]:
    """One element of exchangeInfo["symbols"] → Instrument keyword fields (minus id, venue)."""
    f = {x.get("filterType"): x for x in s.get("filters", ()) if isinstance(x, dict)}
    pf, lot = f.get("PRICE_FILTER", {}), f.get("LOT_SIZE", {})
    notional = f.get("NOTIONAL") or f.get("MIN_NOTIONAL") or {}
    return {"symbol": str(s["symbol"]).upper(), "base": str(s.get("baseAsset", "")),
            "quote": str(s.get("quoteAsset", "")), "status": str(s.get("status", "")),
            "tick": plain(pf.get("tickSize")), "step": plain(lot.get("stepSize")),
            "min_qty": plain(lot.get("minQty")), "max_qty": plain(lot.get("maxQty")),
            "min_price": plain(pf.get("minPrice")), "max_price": plain(pf.get("maxPrice")),
            "min_notional": plain(notional.get("minNotional")),
            "max_notional": plain(notional.get("maxNotional"))}


def _get(session: requests.Session, url: str, params: dict, timeout_s: float) -> tuple[int, Any]:
    try:
        r = session.get(url, params=params, timeout=timeout_s)
    except requests.RequestException as exc:
        raise VenueUnreachable(f"GET {url}: {type(exc).__name__}: {exc}") from None
    if r.status_code >= 500 or r.status_code in (418, 429):
        raise VenueUnreachable(f"GET {url}: HTTP {r.status_code}")
    try:
        return r.status_code, orjson.loads(r.content)
    except orjson.JSONDecodeError:
        raise ListingError(f"GET {url}: HTTP {r.status_code}, not JSON: {r.text[:200]!r}") from None


def fetch(rest_url: str, symbols: list[str], *, timeout_s: float = 5.0,
          session: requests.Session | None = None) -> tuple[dict[str, dict], list[str]]:
    url = rest_url.rstrip("/") + PATH
    syms = sorted({s.upper() for s in symbols})
    own = session is None
    session = session or requests.Session()
    try:
        status, body = _get(session, url, {"symbols": orjson.dumps(syms).decode()}, timeout_s)
        if status == 200:
            found = {}
            for s in body.get("symbols", ()) if isinstance(body, dict) else ():
                if isinstance(s, dict) and "symbol" in s:
                    found[str(s["symbol"]).upper()] = fields_of(s)
            return found, [s for s in syms if s not in found]
        if not (isinstance(body, dict) and body.get("code") == INVALID_SYMBOL):
            raise ListingError(f"GET {url}: HTTP {status} {body}")
        found, missing = {}, []
        for sym in syms:                  # name the ones the venue does not list
            status, one = _get(session, url, {"symbol": sym}, timeout_s)
            if status == 200 and isinstance(one, dict) and one.get("symbols"):
                found[sym] = fields_of(one["symbols"][0])
            elif isinstance(one, dict) and one.get("code") == INVALID_SYMBOL:
                missing.append(sym)
            else:
                raise ListingError(f"GET {url}?symbol={sym}: HTTP {status} {one}")
        return found, missing
    finally:
        if own:
            session.close()
