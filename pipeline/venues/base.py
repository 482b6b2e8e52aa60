"""The venue adapter interface: what generic collector code asks of a venue.

Generic code (pipeline/collector/) never names a venue; everything venue-specific sits behind this
protocol: stream names and URLs, subscribe messages and pacing, keep-alive style, lifetime rules,
how a decoded message is routed (cool path), and how an order book is synced.

A later venue (OKX, issue 5) implements the same protocol. The Cython hot path
(pipeline._ext.wsdecode) has Binance's four hot message shapes compiled in; a venue without hot
extraction builds its decoder with `hot=False`, so every message takes the cool path
(orjson + the adapter's `route`), which is correct, only slower.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence

import numpy as np

KeepAlive = Literal["server_ping", "client_text_ping"]


@dataclass(frozen=True)
class ConnectionRules:
    """Venue limits that shape connections (Binance values in pipeline.venues.binance.market)."""

    max_streams_per_conn: int
    max_outgoing_per_s: float        # client → server messages (incl. pong frames)
    max_lifetime_s: float            # the server ends a connection after this long
    keepalive: KeepAlive             # server pings us (answer pongs) or we ping it
    pong_deadline_s: float = 60.0    # server_ping: answer within this
    client_ping_s: float = 0.0       # client_text_ping: send a ping this often
    max_connects: int = 0            # connection attempts per IP in any connect_window_s (0: none)
    connect_window_s: float = 0.0


@dataclass
class Routed:
    """What the cool path made of one message."""

    records: np.ndarray | None = None           # TICK_DTYPE records to publish
    depth: Any = None                            # a DepthDiff for the book sync
    control: str | None = None                   # "shutdown", "ack", ...
    error: str | None = None                     # error kind (counted + logged once)
    detail: str = ""
    extra: dict = field(default_factory=dict)


class VenueError(RuntimeError):
    """A venue cannot be set up (the message says why); the role does not start."""


class VenueAdapter(Protocol):
    venue: int
    name: str
    rules: ConnectionRules
    url_streams: bool                 # streams may ride in the connect URL (else all subscribed)
    # Optional: keepalive_ping (str) and keepalive_reply (bytes) for rules.keepalive ==
    # "client_text_ping"; fast_decode(payload, local_ts, out) -> records written or -1, a venue
    # kernel for whole messages tried before the JSON cool path.

    def streams(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]: ...
    def stream_symbol(self, stream: str) -> str: ...
    def is_depth_channel(self, channel: str) -> bool: ...
    def connect_url(self, base_ws: str, streams: Sequence[str]) -> str: ...
    def subscribe_messages(self, streams: Sequence[str], first_id: int = 1) -> list[str]: ...
    def decoder_symbols(self) -> dict[bytes, int]: ...
    def route(self, obj: Any, local_ts: int) -> Routed: ...
    def snapshot_url(self, base_rest: str, symbol: str, limit: int) -> str: ...
    def parse_snapshot(self, obj: Any, symbol_id: int, local_ts: int) -> Any: ...
    def new_book_sync(self, symbol_id: int) -> Any: ...
