"""What every venue's instrument listing (pipeline/venues/<venue>_instruments.py) shares.

A listing module has `fetch(rest_url, symbols, *, timeout_s, session=None)` returning
`({symbol: Instrument fields without id and venue}, [symbols the venue does not list])`, raises
VenueUnreachable when the venue cannot be asked (connection refused, timeout, 5xx, 429) and
ListingError when it answers something that is not a listing.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


class ListingError(RuntimeError):
    """The venue answered, but not with an instrument listing."""


class VenueUnreachable(ListingError):
    """The venue could not be asked (network, timeout, 5xx, rate limited)."""


def plain(value: Any) -> str:
    """A venue decimal → its shortest exact plain string ("0.01000000" → "0.01"); "" for none."""
    if value is None or value == "":
        return ""
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ListingError(f"not a decimal in the listing: {value!r}") from None
    if not d.is_finite():
        raise ListingError(f"not a finite decimal in the listing: {value!r}")
    return "0" if d == 0 else format(d.normalize(), "f")
