"""OKX behind the generic collector (pipeline.venues.base.VenueAdapter).

Streams are "<channel>:<instId>" (e.g. "books:BTC-USDT"); the connect URL carries none: every
stream is subscribed with {"op":"subscribe","args":[...]} after the handshake. Keep-alive is the
client's: the collector sends the text `ping` when the connection is idle and expects `pong`.
A `notice` 64008 asks for a proactive reconnect (the collector's make-before-break switch).
`trades` frames take the Cython fast path (pipeline._ext.okxdecode) before any JSON decode;
everything else goes through orjson and `route`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from pipeline.records import FLAG_SYNTHETIC, TICK_DTYPE, Kind, Venue
from pipeline.venues.okx import market as okx
from pipeline.venues.base import ConnectionRules, Routed
from pipeline.venues.okx.book import OkxBookSync

RULES = ConnectionRules(
    max_streams_per_conn=480,            # 64 KB of subscribe args; 480 subscribe ops per hour
    max_outgoing_per_s=3.0,              # OKX documents no per-second cap; stay gentle
    max_lifetime_s=float("inf"),         # no documented lifetime; notices 64008 announce closes
    keepalive="client_text_ping",
    pong_deadline_s=okx.PONG_DEADLINE_S,
    client_ping_s=okx.IDLE_PING_S,
    max_connects=3, connect_window_s=1.0,  # "3 connection requests per second per IP"
)


@dataclass
class SyncOut:
    records: list = field(default_factory=list)
    fetch: bool = False
    events: list = field(default_factory=list)


class BookMsgs(list):
    """The BookMsg items of one books push (one in practice), with the symbol the feed routes by."""

    def __init__(self, items: list[okx.BookMsg]):
        super().__init__(items)
        self.symbol = items[0].symbol


CONTROLS = {okx.MsgType.SUBSCRIBE: "ack", okx.MsgType.UNSUBSCRIBE: "unsubscribed",
            okx.MsgType.NOTICE: "notice", okx.MsgType.PONG: "pong",
            okx.MsgType.CONN_COUNT: "conn_count"}
_STAT_EVENTS = ("gaps", "seq_resets", "checksum_failures", "crossed", "duplicates", "heartbeats",
                "snapshots_unused", "buffered_dropped")


class OkxFeedSync:
    """OkxBookSync behind the collector's book-sync calls (the decoder state `st` is unused: the
    OKX book lives here, not in the Binance hot path's SymbolState)."""

    def __init__(self, symbol: int, venue: int = int(Venue.OKX)):
        self.symbol = symbol
        self.venue = venue
        self.sync = OkxBookSync(symbol, venue)
        self.fetching = False

    def _out(self, recs: np.ndarray, before: dict, events: list | None = None) -> SyncOut:
        ev = list(events or [])
        st = self.sync.stats
        ev += [k for k in _STAT_EVENTS if getattr(st, k) != before.get(k)]
        out = SyncOut(records=[recs] if len(recs) else [], events=ev)
        if self.sync.need_snapshot and not self.fetching:
            self.fetching = out.fetch = True
        return out

    def _stats(self) -> dict:
        return {k: getattr(self.sync.stats, k) for k in _STAT_EVENTS}

    def start(self, st, local_ts: int) -> SyncOut:
        """The book is invalid until its first snapshot (which then publishes RESYNC_DONE)."""
        self.sync.resyncing = True
        r = np.zeros(1, dtype=TICK_DTYPE)
        r["kind"], r["venue"], r["symbol"] = int(Kind.RESYNC_START), self.venue, self.symbol
        r["flags"], r["local_ts"] = FLAG_SYNTHETIC, local_ts
        return SyncOut(records=[r], events=["resync"])

    def on_diff(self, st, msgs) -> SyncOut:
        before = self._stats()
        parts = [self.sync.on_message(m) for m in msgs]
        recs = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return self._out(recs, before)

    def on_snapshot(self, st, snap: okx.BookMsg) -> SyncOut:
        self.fetching = False
        before = self._stats()
        return self._out(self.sync.on_snapshot(snap), before, ["synced"] if self.sync.live else [])

    def force_resync(self, st, msgs, local_ts: int, why: str) -> SyncOut:
        before = self._stats()
        return self._out(self.sync.start_resync(why, 0, 0, local_ts), before, [why, "resync"])


class OkxAdapter:
    """OKX v5 public market data for the generic collector."""

    venue = int(Venue.OKX)
    name = "okx"
    rules = RULES
    url_streams = False              # streams are subscribed after connecting, never in the URL
    keepalive_ping = okx.PING        # text frame the collector sends when idle ...
    keepalive_reply = okx.PONG.encode()   # ... and the text frame that answers it

    def __init__(self, symbols: dict[str, int], venue: int = int(Venue.OKX)):
        """symbols: instId (BTC-USDT) → registry id."""
        self.venue = venue
        self._symbols = {s.upper(): i for s, i in symbols.items()}
        self._names = {i: s for s, i in self._symbols.items()}
        self._fast = None

    # ------------------------------------------------------------------ streams
    def symbol_name(self, symbol_id: int) -> str:
        return self._names[symbol_id]

    def streams(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        if okx.BBO_TBT in channels and okx.TICKERS in channels:
            raise ValueError("bbo-tbt and tickers both publish BID/ASK (with different ids); "
                             "subscribe one of them")
        return [f"{a['channel']}:{a['instId']}"
                for a in okx.subscribe_args([s.upper() for s in symbols], channels)]

    @staticmethod
    def stream_symbol(stream: str) -> str:
        return stream.partition(":")[2]

    @staticmethod
    def is_depth_channel(channel: str) -> bool:
        return channel == okx.BOOKS

    def connect_url(self, base_ws: str, streams: Sequence[str]) -> str:
        base = base_ws.rstrip("/")
        return base if base.endswith(okx.WS_PUBLIC_PATH) else base + okx.WS_PUBLIC_PATH

    def subscribe_messages(self, streams: Sequence[str], first_id: int = 1) -> list[str]:
        args = []
        for s in streams:
            ch, _, inst = s.partition(":")
            args.append({"channel": ch, "instId": inst})
        return okx.op_messages("subscribe", args, first_id)

    def decoder_symbols(self) -> dict[bytes, int]:
        return {s.encode(): i for s, i in self._symbols.items()}

    # ------------------------------------------------------------------ messages
    def fast_decode(self, payload: bytes, local_ts: int, out: np.ndarray) -> int:
        """A compact `trades` push → records in `out`; -1 for anything else (cool path)."""
        if self._fast is None:
            self._fast = okx.trade_decoder(self._symbols)
        st, n = self._fast.decode_one(payload, local_ts, out)
        return n if st == 0 else -1

    def route(self, obj: Any, local_ts: int) -> Routed:
        t = okx.classify(obj)
        if t is okx.MsgType.DATA:
            try:
                r = okx.route_data(obj, self._symbols, local_ts)
            except okx.BadMessage as exc:
                out = Routed(error=str(exc.args[0]))
                arg = obj.get("arg")
                if isinstance(arg, dict) and arg.get("channel") == okx.BOOKS \
                        and isinstance(arg.get("instId"), str):
                    out.extra["depth_symbol"] = arg["instId"]   # its book can't be trusted now
                return out
            if isinstance(r, list):
                return Routed(depth=BookMsgs(r))
            if self.venue != int(Venue.OKX):
                r["venue"] = self.venue
            return Routed(records=r)
        if t is okx.MsgType.UNKNOWN:
            return Routed(error="unknown_message")
        ev = okx.parse_event(obj)
        if t is okx.MsgType.ERROR:
            return Routed(error="venue_error", detail=f"{ev.code} {ev.msg}"[:200])
        if t is okx.MsgType.CONN_COUNT_ERROR:
            return Routed(error="conn_count_error", detail=str(obj)[:200])
        if ev.reconnect:
            return Routed(control="shutdown", detail=ev.msg)
        return Routed(control=CONTROLS[t],
                      extra={"channel": ev.channel, "instId": ev.inst_id, "id": ev.id})

    # ------------------------------------------------------------------ books
    def snapshot_url(self, base_rest: str, symbol: str, limit: int = okx.BOOKS_REST_MAX_SZ) -> str:
        return okx.books_snapshot_url(base_rest, symbol.upper(),
                                      max(1, min(limit, okx.BOOKS_REST_MAX_SZ)))

    def parse_snapshot(self, obj: Any, symbol_id: int, local_ts: int) -> okx.BookMsg:
        return okx.parse_rest_books(obj, symbol_id, local_ts)

    def new_book_sync(self, symbol_id: int) -> OkxFeedSync:
        return OkxFeedSync(symbol_id, self.venue)
