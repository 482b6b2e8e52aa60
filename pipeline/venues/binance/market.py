"""Binance Spot market data: endpoints, stream names and limits (data) plus pure parsers (no I/O).

Records made here are exactly the ones the Cython hot path (pipeline._ext.wsdecode) makes for the
same message; tests/parity checks it on every recorded message. Field mapping:

  trade        TRADE      side = aggressor (m true: buyer is maker → SELL), id = t
  aggTrade     AGG_TRADE  side as trade, id = a (aggregate trade id)
  bookTicker   BID + ASK  id = u (book update id), exch_ts 0 (spot bookTicker carries no time);
                          FLAG_LAST_IN_MSG on the ASK
  depthUpdate  BOOK_BID * then BOOK_ASK * (message order), qty 0 = remove, id = u (final update
               id), FLAG_LAST_IN_MSG on the last record; sequencing is the book sync's job
               (pipeline.venues.binance.book)

exch_ts is the event time E (ms → ns); local_ts is CLOCK_REALTIME at socket read. Prices and
quantities must be plain decimal strings (``[0-9]+(.[0-9]+)?``); integers must be JSON integers in
[0, 10^18), E at most MAX_EVENT_MS. Anything else is an error kind, counted by the caller.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from pipeline.records import (FLAG_LAST_IN_MSG, TICK_DTYPE, Kind, Side, Venue)
from pipeline.venues.base import ConnectionRules, Routed

# ----------------------------------------------------------------------------- endpoints
WS_BASE = "wss://stream.binance.com:9443"
WS_BASE_ALT = "wss://stream.binance.com:443"
WS_BASE_MARKET_ONLY = "wss://data-stream.binance.vision"
REST_BASE = "https://api.binance.com"
RAW_PATH = "/ws/"                  # /ws/<stream>: payload only
COMBINED_PATH = "/stream?streams="  # /stream?streams=a/b: {"stream": ..., "data": payload}
DEPTH_PATH = "/api/v3/depth"       # GET ?symbol=BTCUSDT&limit=1000 → {"lastUpdateId", bids, asks}

# ----------------------------------------------------------------------------- stream names
TRADE = "trade"
AGG_TRADE = "aggTrade"
BOOK_TICKER = "bookTicker"
DEPTH_100MS = "depth@100ms"
DEPTH_1S = "depth"
CHANNELS = (TRADE, AGG_TRADE, BOOK_TICKER, DEPTH_100MS, DEPTH_1S)

# ----------------------------------------------------------------------------- limits (ws_control.json)
MAX_STREAMS_PER_CONN = 1024
MAX_OUTGOING_PER_S = 5             # PING, PONG and JSON control frames all count
SERVER_PING_INTERVAL_S = 20.0      # the server pings every 20 s ...
PONG_DEADLINE_S = 60.0             # ... and disconnects if no pong within a minute
MAX_LIFETIME_S = 24 * 3600.0       # a connection is ended after 24 h
MAX_CONNECTS = 300                 # connection attempts per IP ...
CONNECT_WINDOW_S = 300.0           # ... per 5 minutes
SNAPSHOT_LIMIT = 1000              # depth levels per REST snapshot (weight 50 at 1000)
DEPTH_WEIGHTS = {100: 5, 500: 25, 1000: 50, 5000: 250}

RULES = ConnectionRules(max_streams_per_conn=MAX_STREAMS_PER_CONN,
                        max_outgoing_per_s=MAX_OUTGOING_PER_S, max_lifetime_s=MAX_LIFETIME_S,
                        keepalive="server_ping", pong_deadline_s=PONG_DEADLINE_S,
                        max_connects=MAX_CONNECTS, connect_window_s=CONNECT_WINDOW_S)

MAX_EVENT_MS = 9_000_000_000_000   # E * 1e6 must fit int64 ns
MAX_INT = 10**18
_DEC = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z")
MAX_DEC_LEN = 40


class BadMessage(ValueError):
    """A message of a known type whose fields are missing or malformed. args[0] is the error kind."""


def stream_name(symbol: str, channel: str) -> str:
    """'BTCUSDT', 'trade' → 'btcusdt@trade' (stream names are lowercase)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown Binance channel {channel!r} (one of {', '.join(CHANNELS)})")
    return f"{symbol.lower()}@{channel}"


def combined_url(base: str, streams: Sequence[str]) -> str:
    return base.rstrip("/") + COMBINED_PATH + "/".join(streams)


# ----------------------------------------------------------------------------- field helpers
def dec(v: Any, what: str) -> float:
    """A decimal string → float (correctly rounded, identical to the Cython kernel)."""
    if not isinstance(v, str) or len(v) > MAX_DEC_LEN or not _DEC.match(v):
        raise BadMessage(f"bad_{what}")
    return float(v)


def uint(v: Any, what: str) -> int:
    if type(v) is not int or not 0 <= v < MAX_INT:
        raise BadMessage(f"bad_{what}")
    return v


def event_ns(v: Any) -> int:
    if type(v) is not int or not 0 <= v <= MAX_EVENT_MS:
        raise BadMessage("bad_event_time")
    return v * 1_000_000


def aggressor(m: Any) -> int:
    if m is True:
        return int(Side.SELL)   # buyer is the maker: the seller crossed the spread
    if m is False:
        return int(Side.BUY)
    raise BadMessage("bad_maker_flag")


def symbol_id(symbols: dict[bytes, int], s: Any) -> int:
    if not isinstance(s, str):
        raise BadMessage("bad_symbol")
    sid = symbols.get(s.encode("utf-8", "replace"))
    if sid is None:
        raise BadMessage("unknown_symbol")
    return sid


def _records(n: int) -> np.ndarray:
    return np.zeros(n, dtype=TICK_DTYPE)


# ----------------------------------------------------------------------------- parsers
def _trade_record(d: dict, symbols: dict[bytes, int], local_ts: int, kind: Kind, id_key: str,
                  id_name: str) -> np.ndarray:
    """The one record of a trade or aggTrade message (they differ in kind and id field)."""
    r = _records(1)
    r0 = r[0]
    r0["symbol"] = symbol_id(symbols, d.get("s"))
    r0["venue"] = Venue.BINANCE
    r0["kind"] = kind
    r0["flags"] = FLAG_LAST_IN_MSG
    r0["exch_ts"] = event_ns(d.get("E"))
    r0["side"] = aggressor(d.get("m"))
    r0["id"] = uint(d.get(id_key), id_name)
    r0["price"] = dec(d.get("p"), "price")
    r0["qty"] = dec(d.get("q"), "qty")
    r0["local_ts"] = local_ts
    return r


def parse_trade(d: dict, symbols: dict[bytes, int], local_ts: int) -> np.ndarray:
    """<symbol>@trade → one TRADE record.

    {"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000",
     "q":"0.02000000","T":1723161255342,"m":true,"M":true}
    (recorded 2024-08-08, hftbacktest examples/spot/btcusdt_20240808.gz)
    """
    return _trade_record(d, symbols, local_ts, Kind.TRADE, "t", "trade_id")


def parse_agg_trade(d: dict, symbols: dict[bytes, int], local_ts: int) -> np.ndarray:
    """<symbol>@aggTrade → one AGG_TRADE record.

    {"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000",
     "q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}
    (recorded 2021-10-12, cryptofeed sample_data/BINANCE.ws.1.0)
    """
    return _trade_record(d, symbols, local_ts, Kind.AGG_TRADE, "a", "agg_id")


def parse_book_ticker(d: dict, symbols: dict[bytes, int], local_ts: int) -> np.ndarray:
    """<symbol>@bookTicker → BID and ASK records (spot bookTicker has no e/E).

    {"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000",
     "a":"61837.64000000","A":"1.54698000"}
    (recorded 2024-08-08, hftbacktest examples/spot/btcusdt_20240808.gz)
    """
    sid = symbol_id(symbols, d.get("s"))
    u = uint(d.get("u"), "update_id")
    bp, bq = dec(d.get("b"), "price"), dec(d.get("B"), "qty")
    ap, aq = dec(d.get("a"), "price"), dec(d.get("A"), "qty")
    r = _records(2)
    r["symbol"] = sid
    r["venue"] = Venue.BINANCE
    r["id"] = u
    r["local_ts"] = local_ts
    r["kind"] = (Kind.BID, Kind.ASK)
    r["side"] = (Side.BUY, Side.SELL)
    r["flags"] = (0, FLAG_LAST_IN_MSG)
    r["price"] = (bp, ap)
    r["qty"] = (bq, aq)
    return r


@dataclass
class DepthDiff:
    """One depthUpdate, parsed: the book sync decides whether and how it applies."""

    symbol: int
    first_id: int      # U
    last_id: int       # u
    exch_ts: int
    local_ts: int
    bids: list          # [(price, qty)], message order
    asks: list
    venue: int = int(Venue.BINANCE)

    def records(self, flags: int = 0) -> np.ndarray:
        """BOOK_BID records then BOOK_ASK records; FLAG_LAST_IN_MSG on the last one."""
        nb, na = len(self.bids), len(self.asks)
        r = _records(nb + na)
        if nb + na == 0:
            return r
        r["symbol"] = self.symbol
        r["venue"] = self.venue
        r["exch_ts"] = self.exch_ts
        r["local_ts"] = self.local_ts
        r["id"] = self.last_id
        r["flags"] = flags
        r["kind"][:nb] = Kind.BOOK_BID
        r["side"][:nb] = Side.BUY
        r["kind"][nb:] = Kind.BOOK_ASK
        r["side"][nb:] = Side.SELL
        lv = self.bids + self.asks
        r["price"] = [p for p, _ in lv]
        r["qty"] = [q for _, q in lv]
        r["flags"][-1] |= FLAG_LAST_IN_MSG
        return r


def _levels(v: Any) -> list:
    if not isinstance(v, list):
        raise BadMessage("bad_levels")
    out = []
    for lv in v:
        if not isinstance(lv, list) or len(lv) != 2:
            raise BadMessage("bad_levels")
        out.append((dec(lv[0], "price"), dec(lv[1], "qty")))
    return out


def parse_depth(d: dict, symbols: dict[bytes, int], local_ts: int) -> DepthDiff:
    """<symbol>@depth[@100ms] → a DepthDiff (records come from the book sync).

    {"e":"depthUpdate","E":1633998512068,"s":"NKNUSDT","U":499869750,"u":499869752,
     "b":[["0.35130000","6195.00000000"],["0.34750000","5548.00000000"],
          ["0.34640000","6222.00000000"]],"a":[]}
    (recorded 2021-10-12, cryptofeed sample_data/BINANCE.ws.1.0)
    """
    sid = symbol_id(symbols, d.get("s"))
    exch = event_ns(d.get("E"))
    first, last = uint(d.get("U"), "update_id"), uint(d.get("u"), "update_id")
    if first > last:
        raise BadMessage("bad_update_range")
    return DepthDiff(sid, first, last, exch, local_ts, _levels(d.get("b")), _levels(d.get("a")))


@dataclass
class DepthSnapshot:
    """GET /api/v3/depth response, parsed.

    {"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"],...],
     "asks":[["61837.64000000","1.60520000"],...]}
    (recorded 2024-08-08, hftbacktest examples/spot/btcusdt_20240808.gz line 8)
    """

    symbol: int
    last_id: int
    local_ts: int
    bids: list
    asks: list


def parse_snapshot(obj: Any, symbol: int, local_ts: int) -> DepthSnapshot:
    if not isinstance(obj, dict):
        raise BadMessage("bad_snapshot")
    return DepthSnapshot(symbol, uint(obj.get("lastUpdateId"), "update_id"), local_ts,
                         _levels(obj.get("bids")), _levels(obj.get("asks")))


def is_book_ticker(d: dict) -> bool:
    return "e" not in d and "u" in d and "B" in d and "A" in d


# Routing table: event type → parser. bookTicker has no "e" and is recognised by its keys.
ROUTES: dict[str, Callable[[dict, dict, int], Any]] = {
    "trade": parse_trade,
    "aggTrade": parse_agg_trade,
    "depthUpdate": parse_depth,
}
CONTROL_EVENTS = {"serverShutdown": "shutdown"}
# Known but unused market events: dropped without counting as errors.
IGNORED_EVENTS = frozenset({"kline", "24hrTicker", "24hrMiniTicker", "avgPrice", "1hTicker",
                            "4hTicker", "1dTicker", "referencePrice", "blockTrade"})


def route(obj: Any, symbols: dict[bytes, int], local_ts: int) -> Routed:
    """Any decoded Binance market-data message (raw or combined form) → what to do with it."""
    if isinstance(obj, dict) and "data" in obj and "stream" in obj:
        obj = obj["data"]
    if not isinstance(obj, dict):
        return Routed(error="not_an_object")
    e = obj.get("e")
    try:
        if e is None:
            if is_book_ticker(obj):
                return Routed(records=parse_book_ticker(obj, symbols, local_ts))
            if "result" in obj and "id" in obj:
                return Routed(control="ack", extra={"id": obj.get("id"), "result": obj["result"]})
            if "code" in obj and "msg" in obj:
                return Routed(error="venue_error", detail=str(obj.get("msg"))[:200])
            return Routed(error="unknown_message")
        if not isinstance(e, str):
            return Routed(error="bad_event_type")
        parser = ROUTES.get(e)
        if parser is parse_depth:
            return Routed(depth=parse_depth(obj, symbols, local_ts))
        if parser is not None:
            return Routed(records=parser(obj, symbols, local_ts))
        if e in CONTROL_EVENTS:
            return Routed(control=CONTROL_EVENTS[e], extra={"E": obj.get("E")})
        if e in IGNORED_EVENTS:
            return Routed(control="ignored")
        return Routed(error="unknown_event", detail=str(e)[:64])
    except BadMessage as exc:
        r = Routed(error=str(exc.args[0]))
        if e == "depthUpdate" and isinstance(obj.get("s"), str):
            r.extra["depth_symbol"] = obj["s"]      # its book can no longer be trusted
        return r


# ----------------------------------------------------------------------------- the adapter
class BinanceAdapter:
    """Binance Spot behind the generic collector (pipeline.venues.base.VenueAdapter)."""

    venue = int(Venue.BINANCE)
    name = "binance"
    rules = RULES

    def __init__(self, symbols: dict[str, int], venue: int = int(Venue.BINANCE)):
        """symbols: venue symbol (BTCUSDT) → registry id."""
        self.venue = venue
        self._symbols = {s.upper(): i for s, i in symbols.items()}
        self._bsymbols = {s.encode(): i for s, i in self._symbols.items()}
        self._names = {i: s for s, i in self._symbols.items()}

    def symbol_name(self, symbol_id: int) -> str:
        return self._names[symbol_id]

    url_streams = True

    def streams(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        return [stream_name(s, c) for c in channels for s in symbols]

    @staticmethod
    def stream_symbol(stream: str) -> str:
        return stream.partition("@")[0].upper()

    @staticmethod
    def is_depth_channel(channel: str) -> bool:
        return channel.startswith("depth")

    def connect_url(self, base_ws: str, streams: Sequence[str]) -> str:
        if len(streams) > self.rules.max_streams_per_conn:
            raise ValueError(f"{len(streams)} streams on one connection; Binance allows "
                             f"{self.rules.max_streams_per_conn}")
        return combined_url(base_ws, streams)

    def subscribe_messages(self, streams: Sequence[str], first_id: int = 1,
                           per_message: int = 200) -> list[str]:
        """SUBSCRIBE requests for live (re)subscription; the caller paces them at
        rules.max_outgoing_per_s."""
        import orjson
        out = []
        for i in range(0, len(streams), per_message):
            out.append(orjson.dumps({"method": "SUBSCRIBE", "params": list(streams[i:i + per_message]),
                                     "id": first_id + i // per_message}).decode())
        return out

    def decoder_symbols(self) -> dict[bytes, int]:
        return dict(self._bsymbols)

    def route(self, obj: Any, local_ts: int) -> Routed:
        r = route(obj, self._bsymbols, local_ts)
        if self.venue != int(Venue.BINANCE):
            if r.records is not None:
                r.records["venue"] = self.venue
            if r.depth is not None:
                r.depth.venue = self.venue
        return r

    def snapshot_url(self, base_rest: str, symbol: str, limit: int = SNAPSHOT_LIMIT) -> str:
        return f"{base_rest.rstrip('/')}{DEPTH_PATH}?symbol={symbol.upper()}&limit={limit}"

    def parse_snapshot(self, obj: Any, symbol_id: int, local_ts: int) -> DepthSnapshot:
        return parse_snapshot(obj, symbol_id, local_ts)

    def new_book_sync(self, symbol_id: int):
        from pipeline.venues.binance.book import BinanceBookSync
        return BinanceBookSync(symbol_id, self.venue)
