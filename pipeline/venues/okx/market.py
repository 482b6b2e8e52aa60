"""OKX v5 public market data: endpoints, channels and limits (data) plus pure parsers (no I/O).

Wire facts (tests/data/okx/*.json; OKX API v5 docs, 2026 crawl):

  trades    {"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",
             "tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy",
             "ts":"1630048897897","count":"3","source":"0","seqId":1234}]}
            → one TRADE per data item: side = taker side, id = tradeId, exch_ts = ts (ms → ns);
              FLAG_LAST_IN_MSG on the message's last record
  bbo-tbt   {"arg":{"channel":"bbo-tbt","instId":"BCH-USDT-SWAP"},"data":[{"asks":[["111.06",
             "55154","0","2"]],"bids":[["111.05","57745","0","2"]],"ts":"1670324386802",
             "seqId":363996337}]}
            → BID then ASK (FLAG_LAST_IN_MSG on the ASK), id = seqId (0 when absent)
  tickers   {"arg":{"channel":"tickers","instId":"BTC-USD-220527"},"data":[{"instType":"FUTURES",
             "instId":"BTC-USD-220527","last":"30218.8","lastSz":"1","askPx":"30220.1","askSz":"3",
             "bidPx":"30210.4","bidSz":"4",...,"ts":"1652459223003"}]}
            → BID then ASK from bidPx/bidSz, askPx/askSz, id = ts in ms (tickers carry no update
              id; at most one push per 100 ms, so ts grows per instrument)
  books     {"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot"|"update","data":[
             {"asks":[["8476.98","415","0","13"],...],"bids":[...],"ts":"1597026383085",
             "checksum":-855196043,"prevSeqId":-1,"seqId":123456}]}
            → a BookMsg for the book sync (pipeline.venues.okx.book), which makes the records:
              levels are [price, size, deprecated "0", order count]; size "0" deletes the level.
              Snapshots carry prevSeqId -1. A heartbeat update has empty sides and
              prevSeqId == seqId. seqId < prevSeqId means the sequence was reset (maintenance).
              checksum is CRC32 of the top 25 levels; OKX fixed it to 0 in 2026 (0 = not given).

Events (not data): {"event":"subscribe"|"unsubscribe","arg":{...},"connId":...} acks,
{"event":"error","code":"60012","msg":...} (code is a string), {"event":"notice","code":"64008",
...} = the connection closes soon for an upgrade → reconnect proactively, and the bare text "pong"
answering our text "ping" (we must ping when idle; the server closes after 30 s without data).

Prices and sizes must be plain decimal strings (``-?[0-9]+(.[0-9]+)?``); integer fields decimal
strings or JSON integers in [0, 10^18). Anything else raises BadMessage(kind), counted by the
caller; a message either yields all its records or none.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Iterable, Sequence

import numpy as np

from pipeline.records import FLAG_LAST_IN_MSG, TICK_DTYPE, Kind, Side, Venue
from pipeline.registry import SymbolRegistry

# ----------------------------------------------------------------------------- endpoints
WS_PUBLIC = "wss://ws.okx.com:8443/ws/v5/public"
WS_BUSINESS = "wss://ws.okx.com:8443/ws/v5/business"   # trades-all, candles
WS_PUBLIC_DEMO = "wss://wspap.okx.com:8443/ws/v5/public"
WS_PUBLIC_PATH = "/ws/v5/public"
REST_BASE = "https://www.okx.com"                      # the 2026 docs also give openapi.okx.com
REST_BOOKS_PATH = "/api/v5/market/books"               # GET ?instId=BTC-USDT&sz=400

# ----------------------------------------------------------------------------- channels
TRADES = "trades"
TRADES_ALL = "trades-all"       # business endpoint: one message per fill (not used by default)
BBO_TBT = "bbo-tbt"
TICKERS = "tickers"
BOOKS = "books"                 # 400 levels, snapshot then incremental, seqId/prevSeqId
BOOKS5 = "books5"
CHANNELS = (TRADES, BBO_TBT, TICKERS, BOOKS)
DEFAULT_CHANNELS = (TRADES, BBO_TBT, BOOKS)

# ----------------------------------------------------------------------------- limits
IDLE_CLOSE_S = 30.0             # the server closes a connection with no data for 30 s (4004)
IDLE_PING_S = 25.0              # send text "ping" after this long without any message (< 30)
PONG_DEADLINE_S = 25.0          # ... and expect "pong" within this, else reconnect
CONNECT_PER_S = 3               # new connections per second per IP
OPS_PER_HOUR = 480              # subscribe/unsubscribe/login requests per connection per hour
MAX_SUBSCRIBE_BYTES = 64 * 1024  # total length of one subscribe request's args
BOOKS_REST_MAX_SZ = 400         # depth of GET /api/v5/market/books
CHECKSUM_LEVELS = 25            # levels per side in the checksum string
NOTICE_RECONNECT = "64008"      # "The connection will soon be closed for a service upgrade"
PING = "ping"
PONG = "pong"

MAX_INT = 10**18
MAX_TS_MS = 9_000_000_000_000   # ts * 1e6 must fit int64 ns
MAX_DEC_LEN = 40
_DEC = re.compile(r"-?[0-9]+(?:\.[0-9]+)?\Z")
_INT = re.compile(r"[0-9]+\Z")


class BadMessage(ValueError):
    """A message of a known type whose fields are missing or malformed; args[0] is the error
    kind."""


class MsgType(Enum):
    """What a decoded OKX message is."""

    DATA = "data"               # {"arg": {...}, "data": [...]} on a known channel
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    ERROR = "error"
    NOTICE = "notice"
    CONN_COUNT = "channel-conn-count"
    CONN_COUNT_ERROR = "channel-conn-count-error"
    PONG = "pong"
    UNKNOWN = "unknown"


EVENTS = {t.value: t for t in (MsgType.SUBSCRIBE, MsgType.UNSUBSCRIBE, MsgType.ERROR,
                               MsgType.NOTICE, MsgType.CONN_COUNT, MsgType.CONN_COUNT_ERROR)}


def classify(obj: Any) -> MsgType:
    """The type of a decoded message (a dict) or of the bare text frame 'pong'."""
    if obj == PONG or obj == PONG.encode():
        return MsgType.PONG
    if not isinstance(obj, dict):
        return MsgType.UNKNOWN
    ev = obj.get("event")
    if ev is not None:
        return EVENTS.get(ev, MsgType.UNKNOWN) if isinstance(ev, str) else MsgType.UNKNOWN
    arg = obj.get("arg")
    if isinstance(arg, dict) and "data" in obj:
        return MsgType.DATA
    return MsgType.UNKNOWN


@dataclass(frozen=True)
class Event:
    """A non-data message, classified. `reconnect` is True when the venue asks us to reconnect."""

    type: MsgType
    code: str = ""
    msg: str = ""
    channel: str = ""
    inst_id: str = ""
    conn_id: str = ""
    id: str = ""

    @property
    def reconnect(self) -> bool:
        return self.type is MsgType.NOTICE and self.code == NOTICE_RECONNECT


def parse_event(obj: Any) -> Event:
    """{"event": ..., ...} → Event. Subscribe/unsubscribe acks name their arg; errors and notices
    their code (a string on the wire) and message.

    Samples: {"id":"1512","event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},
    "connId":"a4d3ae55"}; {"event":"error","code":"60012","msg":"Invalid request: ...",
    "connId":"a4d3ae55"}; {"event":"notice","code":"64008","msg":"The connection will soon be
    closed for a service upgrade. Please reconnect.","connId":"a4d3ae55"}
    """
    t = classify(obj)
    if t is MsgType.PONG:
        return Event(MsgType.PONG)
    if t in (MsgType.DATA, MsgType.UNKNOWN):
        raise BadMessage("unknown_event")
    arg = obj.get("arg")
    if not isinstance(arg, dict):
        arg = {}
    code = obj.get("code", "")
    return Event(t, code=str(code) if isinstance(code, (str, int)) else "",
                 msg=str(obj.get("msg", ""))[:500],
                 channel=str(arg.get("channel", obj.get("channel", ""))),
                 inst_id=str(arg.get("instId", "")), conn_id=str(obj.get("connId", "")),
                 id=str(obj.get("id", "")))


# ----------------------------------------------------------------------------- requests
def subscribe_args(inst_ids: Sequence[str],
                   channels: Sequence[str] = DEFAULT_CHANNELS) -> list[dict]:
    """[{"channel": c, "instId": i}, ...] for every channel × instrument."""
    for c in channels:
        if c not in CHANNELS:
            raise ValueError(f"unknown OKX channel {c!r} (one of {', '.join(CHANNELS)})")
    return [{"channel": c, "instId": i} for c in channels for i in inst_ids]


def op_messages(op: str, args: Sequence[dict], first_id: int = 1) -> list[str]:
    """JSON texts of subscribe/unsubscribe requests, split so that each stays under
    MAX_SUBSCRIBE_BYTES. Each carries an id (alphanumeric, ≤ 32 chars) echoed by the acks."""
    if op not in ("subscribe", "unsubscribe"):
        raise ValueError(f"op must be subscribe or unsubscribe, got {op!r}")
    out: list[str] = []
    batch: list[dict] = []
    size = 0
    for a in args:
        n = len(json.dumps(a, separators=(",", ":"))) + 1
        if batch and size + n > MAX_SUBSCRIBE_BYTES - 100:
            out.append(_op(op, batch, first_id + len(out)))
            batch, size = [], 0
        batch.append(a)
        size += n
    if batch:
        out.append(_op(op, batch, first_id + len(out)))
    return out


def _op(op: str, args: list[dict], id: int) -> str:
    return json.dumps({"id": str(id), "op": op, "args": args}, separators=(",", ":"))


def books_snapshot_url(base_rest: str, inst_id: str, sz: int = BOOKS_REST_MAX_SZ) -> str:
    if not 1 <= sz <= BOOKS_REST_MAX_SZ:
        raise ValueError(f"sz must be in 1..{BOOKS_REST_MAX_SZ}, got {sz}")
    return f"{base_rest.rstrip('/')}{REST_BOOKS_PATH}?instId={inst_id}&sz={sz}"


# ----------------------------------------------------------------------------- field helpers
def symbols_from_registry(registry: SymbolRegistry) -> dict[str, int]:
    """instId → record symbol id, for every OKX instrument of a registry."""
    return {i.symbol: i.id for i in registry.for_venue(Venue.OKX)}


def dec(v: Any, what: str) -> float:
    """A decimal string → float; BadMessage('bad_<what>') for anything else."""
    if type(v) is not str or len(v) > MAX_DEC_LEN or not _DEC.match(v):
        raise BadMessage(f"bad_{what}")
    return float(v)


def uint(v: Any, what: str) -> int:
    """A non-negative integer given as a decimal string or a JSON integer."""
    if type(v) is str:
        if len(v) > 19 or not _INT.match(v):
            raise BadMessage(f"bad_{what}")
        v = int(v)
    elif type(v) is not int:
        raise BadMessage(f"bad_{what}")
    if not 0 <= v < MAX_INT:
        raise BadMessage(f"bad_{what}")
    return v


def sint(v: Any, what: str) -> int:
    """A JSON integer (seqId, prevSeqId may be -1)."""
    if type(v) is not int or not -MAX_INT < v < MAX_INT:
        raise BadMessage(f"bad_{what}")
    return v


def ts_ns(v: Any) -> int:
    ms = uint(v, "ts")
    if ms > MAX_TS_MS:
        raise BadMessage("bad_ts")
    return ms * 1_000_000


def taker_side(v: Any) -> int:
    if v == "buy":
        return int(Side.BUY)
    if v == "sell":
        return int(Side.SELL)
    raise BadMessage("bad_side")


def _data(obj: dict) -> list:
    data = obj.get("data")
    if type(data) is not list or not data:
        raise BadMessage("bad_data")
    for d in data:
        if type(d) is not dict:
            raise BadMessage("bad_data")
    return data


def _inst(obj: dict, symbols: dict[str, int]) -> tuple[str, int]:
    arg = obj.get("arg")
    inst = arg.get("instId") if type(arg) is dict else None
    if type(inst) is not str:
        raise BadMessage("bad_instId")
    sid = symbols.get(inst)
    if sid is None:
        raise BadMessage("unknown_symbol")
    return inst, sid


def _records(n: int) -> np.ndarray:
    r = np.zeros(n, dtype=TICK_DTYPE)
    r["venue"] = int(Venue.OKX)
    return r


# ----------------------------------------------------------------------------- parsers
def parse_trades(obj: dict, symbols: dict[str, int], local_ts: int) -> np.ndarray:
    """trades push → TRADE records.

    {"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",
    "tradeId":"338476307","px":"30236","sz":"0.0002","side":"buy","ts":"1652459224818"}]}
    (recorded 2022-05-13) → TRADE BTC-USDT BUY 30236.0 × 0.0002, id 338476307,
    exch_ts 1652459224818000000.
    """
    _, sid = _inst(obj, symbols)
    data = _data(obj)
    rows = []
    for d in data:
        rows.append((sid, ts_ns(d.get("ts")), dec(d.get("px"), "px"), dec(d.get("sz"), "sz"),
                     taker_side(d.get("side")), uint(d.get("tradeId"), "tradeId")))
    r = _records(len(rows))
    for i, (s, ts, px, sz, side, tid) in enumerate(rows):
        r[i]["symbol"] = s
        r[i]["kind"] = int(Kind.TRADE)
        r[i]["side"] = side
        r[i]["exch_ts"] = ts
        r[i]["price"] = px
        r[i]["qty"] = sz
        r[i]["id"] = tid
    r["local_ts"] = local_ts
    r[-1]["flags"] = FLAG_LAST_IN_MSG
    return r


def _top(levels: Any, what: str) -> tuple[float, float]:
    if type(levels) is not list or not levels:
        raise BadMessage(f"bad_{what}")
    lv = levels[0]
    if type(lv) is not list or len(lv) < 2:
        raise BadMessage(f"bad_{what}")
    return dec(lv[0], "px"), dec(lv[1], "sz")


def _bid_ask(sid: int, ts: int, bid: tuple, ask: tuple, id: int, local_ts: int) -> np.ndarray:
    r = _records(2)
    r["symbol"] = sid
    r["exch_ts"] = ts
    r["local_ts"] = local_ts
    r["id"] = id
    r[0]["kind"], r[0]["side"], r[0]["price"], r[0]["qty"] = int(Kind.BID), int(Side.BUY), *bid
    r[1]["kind"], r[1]["side"], r[1]["price"], r[1]["qty"] = int(Kind.ASK), int(Side.SELL), *ask
    r[1]["flags"] = FLAG_LAST_IN_MSG
    return r


def parse_bbo(obj: dict, symbols: dict[str, int], local_ts: int) -> np.ndarray:
    """bbo-tbt push → BID + ASK per data item.

    {"arg":{"channel":"bbo-tbt","instId":"BCH-USDT-SWAP"},"data":[{"asks":[["111.06","55154","0",
    "2"]],"bids":[["111.05","57745","0","2"]],"ts":"1670324386802","seqId":363996337}]} (doc)
    → BID 111.05 × 57745, ASK 111.06 × 55154, id 363996337.
    """
    _, sid = _inst(obj, symbols)
    out = []
    for d in _data(obj):
        seq = d.get("seqId", 0)
        out.append(_bid_ask(sid, ts_ns(d.get("ts")), _top(d.get("bids"), "bids"),
                            _top(d.get("asks"), "asks"), uint(seq, "seqId"), local_ts))
    return out[0] if len(out) == 1 else np.concatenate(out)


def parse_tickers(obj: dict, symbols: dict[str, int], local_ts: int) -> np.ndarray:
    """tickers push → BID + ASK per data item (id = ts in ms).

    {"arg":{"channel":"tickers","instId":"BTC-USD-220527"},"data":[{"instType":"FUTURES",
    "instId":"BTC-USD-220527","last":"30218.8","lastSz":"1","askPx":"30220.1","askSz":"3",
    "bidPx":"30210.4","bidSz":"4",...,"ts":"1652459223003"}]} (recorded 2022-05-13)
    → BID 30210.4 × 4, ASK 30220.1 × 3.
    """
    _, sid = _inst(obj, symbols)
    out = []
    for d in _data(obj):
        bid = (dec(d.get("bidPx"), "px"), dec(d.get("bidSz"), "sz"))
        ask = (dec(d.get("askPx"), "px"), dec(d.get("askSz"), "sz"))
        ts = ts_ns(d.get("ts"))
        out.append(_bid_ask(sid, ts, bid, ask, ts // 1_000_000, local_ts))
    return out[0] if len(out) == 1 else np.concatenate(out)


@dataclass(frozen=True)
class BookMsg:
    """One books message (or REST snapshot) for the book sync. Levels keep the exact strings:
    the checksum is computed over them. seq_id / prev_seq_id are None when the venue sent none
    (the 2022 recording predates them); checksum 0 means none given."""

    symbol: int
    snapshot: bool
    bids: tuple[tuple[str, str], ...]
    asks: tuple[tuple[str, str], ...]
    exch_ts: int
    local_ts: int
    seq_id: int | None = None
    prev_seq_id: int | None = None
    checksum: int = 0
    rest: bool = False

    @property
    def heartbeat(self) -> bool:
        return (not self.snapshot and not self.bids and not self.asks
                and self.seq_id is not None and self.seq_id == self.prev_seq_id)


def _levels(v: Any, what: str) -> tuple[tuple[str, str], ...]:
    if type(v) is not list:
        raise BadMessage(f"bad_{what}")
    out = []
    for lv in v:
        if type(lv) is not list or len(lv) < 2:
            raise BadMessage(f"bad_{what}")
        p, s = lv[0], lv[1]
        dec(p, "px")
        dec(s, "sz")
        if p[0] == "-" or s[0] == "-":
            raise BadMessage(f"bad_{what}")
        out.append((p, s))
    return tuple(out)


def _book_item(d: dict, sid: int, snapshot: bool, local_ts: int, rest: bool) -> BookMsg:
    seq = d.get("seqId")
    prev = d.get("prevSeqId")
    cs = d.get("checksum", 0)
    if type(cs) is not int or not -(1 << 31) <= cs < (1 << 31):
        raise BadMessage("bad_checksum")
    return BookMsg(sid, snapshot, _levels(d.get("bids"), "bids"), _levels(d.get("asks"), "asks"),
                   ts_ns(d.get("ts")), local_ts,
                   None if seq is None else sint(seq, "seqId"),
                   None if prev is None else sint(prev, "prevSeqId"), cs, rest)


def parse_books(obj: dict, symbols: dict[str, int], local_ts: int) -> list[BookMsg]:
    """books push → BookMsg per data item (one in practice).

    {"arg":{"channel":"books","instId":"UNI-USD-SWAP"},"action":"update","data":[{"asks":[
    ["5.158","129","0","2"],["5.233","240","0","1"]],"bids":[["5.14","427","0","4"],
    ["5.138","26","0","2"],["5.117","0","0","0"]],"ts":"1652459225464","checksum":1361161687}]}
    (recorded 2022-05-13; newer pushes add "prevSeqId" and "seqId").
    """
    _, sid = _inst(obj, symbols)
    action = obj.get("action")
    if action not in ("snapshot", "update"):
        raise BadMessage("bad_action")
    return [_book_item(d, sid, action == "snapshot", local_ts, False) for d in _data(obj)]


def parse_rest_books(obj: Any, symbol_id: int, local_ts: int) -> BookMsg:
    """GET /api/v5/market/books?instId=..&sz=400 → a snapshot BookMsg.

    {"code":"0","msg":"","data":[{"asks":[["41006.8","0.60038921","0","1"]],
    "bids":[["41006.3","0.30178218","0","2"]],"ts":"1629966436396"}]} (doc). A "seqId" in the
    item (the simulator sends one) lets the sync bridge exactly; without it the sync bridges by ts.
    """
    if type(obj) is not dict or obj.get("code") not in ("0", 0):
        raise BadMessage("rest_error")
    data = _data(obj)
    return _book_item(data[0], symbol_id, True, local_ts, True)


# ----------------------------------------------------------------------------- routing
PARSERS = {TRADES: parse_trades, BBO_TBT: parse_bbo, TICKERS: parse_tickers}


def route_data(obj: dict, symbols: dict[str, int], local_ts: int):
    """A DATA message → np.ndarray of records (trades, bbo, tickers) or list[BookMsg] (books)."""
    arg = obj.get("arg")
    ch = arg.get("channel") if type(arg) is dict else None
    if ch == BOOKS:
        return parse_books(obj, symbols, local_ts)
    p = PARSERS.get(ch)
    if p is None:
        raise BadMessage("unknown_channel")
    return p(obj, symbols, local_ts)


def trade_records(objs: Iterable[dict], symbols: dict[str, int], local_ts: int) -> np.ndarray:
    """Many trades messages → one array (tests, replay)."""
    parts = [parse_trades(o, symbols, local_ts) for o in objs]
    return np.concatenate(parts) if parts else _records(0)


# ----------------------------------------------------------------------------- hot path
def trade_decoder(symbols: dict[str, int], backend: str = "cython"):
    """The fast `trades` frame decoder: pipeline._ext.okxdecode (Cython, compiled from
    ext/okxdecode.pyx) or its pure-Python twin pipeline.venues.okx.okxdecode_py. Frames it reports as
    ST_NOT_TRADES (and any it cannot decode) take the cool path: orjson + route_data."""
    if backend == "python":
        from pipeline.venues.okx import okxdecode_py
        return okxdecode_py.TradeDecoder(symbols)
    if backend != "cython":
        raise ValueError(f"backend must be 'cython' or 'python', got {backend!r}")
    from pipeline import _native
    return _native.load("okxdecode").TradeDecoder(symbols)
