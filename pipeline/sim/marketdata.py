"""Market data over WebSocket, Binance spot: raw `/ws/<stream>` and combined `/stream?streams=`.

Live control messages (ws_control.json): SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS /
SET_PROPERTY / GET_PROPERTY with Binance's replies and error texts. Incoming messages (JSON,
PING and PONG frames alike) are limited to `ws_incoming_per_s` per second per connection; going
over disconnects, as Binance does.

Fan-out: the publisher hands `(stream, payload)` batches to `Hub.publish`, which appends the raw
payload (or the combined `{"stream":..,"data":..}` wrapping, built once per message) to each
subscriber's queue; each connection's writer task drains its own queue.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Callable

import orjson
from aiohttp import WSMsgType, web

from pipeline.sim.wsconn import WsConn

log = logging.getLogger(__name__)

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


def normalize_stream(name: str) -> str:
    """Binance stream names carry lowercase symbols: `BTCUSDT@trade` → `btcusdt@trade`."""
    sym, at, rest = name.partition("@")
    return sym.lower() + at + rest


class MdConn(WsConn):
    kind = "md"

    def __init__(self, *args: Any, combined: bool, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.combined = combined
        self.streams: list[str] = []          # in subscription order (LIST_SUBSCRIPTIONS)
        self.incoming: collections.deque[float] = collections.deque()


class Hub:
    """Subscriptions by stream name, and the fan-out of published messages."""

    def __init__(self, wanted: set[bytes], *, incoming_per_s: int, max_streams: int) -> None:
        self.subs: dict[bytes, list[MdConn]] = {}
        self.wanted = wanted            # shared with the tape: it encodes only these streams
        self.conns: dict[int, MdConn] = {}
        self.incoming_per_s = incoming_per_s
        self.max_streams = max_streams
        self._prefix: dict[bytes, bytes] = {}
        self.published = 0
        self.on_change: Callable[[], None] = lambda: None   # subscriptions changed (the tape listens)
        # what clients did, for tests (/_sim/state md_stats): every connection attempt (an
        # upgrade request, accepted or not), the most messages one connection sent within one
        # second, the connections cut for sending more than incoming_per_s
        self.connect_times: collections.deque[float] = collections.deque(maxlen=100_000)
        self.max_incoming_1s = 0
        self.rate_disconnects = 0
        self.flap_until = 0.0           # the flap fault: cut each new connection ...
        self.flap_after_s = 0.05        # ... this long after it opened

    # ---------------------------------------------------------------- subscriptions

    def subscribe(self, c: MdConn, streams: list[str]) -> None:
        for s in streams:
            if s in c.streams:
                continue
            c.streams.append(s)
            key = s.encode()
            self.subs.setdefault(key, []).append(c)
            self.wanted.add(key)
        self.on_change()

    def unsubscribe(self, c: MdConn, streams: list[str]) -> None:
        for s in streams:
            if s not in c.streams:
                continue
            c.streams.remove(s)
            key = s.encode()
            lst = self.subs.get(key, [])
            if c in lst:
                lst.remove(c)
            if not lst:
                self.subs.pop(key, None)
                self.wanted.discard(key)
        self.on_change()

    def remove(self, c: MdConn) -> None:
        self.unsubscribe(c, list(c.streams))
        self.conns.pop(c.id, None)

    # ---------------------------------------------------------------- fan-out

    def publish(self, msgs: list[tuple[bytes, bytes]]) -> None:
        """Append each message to its subscribers' queues (the combined wrapping is built once
        per message), then wake each touched connection once."""
        subs = self.subs
        prefix = self._prefix
        touched: set[MdConn] = set()
        for name, payload in msgs:
            conns = subs.get(name)
            if not conns:
                continue
            wrapped = None
            for c in conns:
                if c.closed:
                    continue
                if c.combined:
                    if wrapped is None:
                        p = prefix.get(name)
                        if p is None:
                            p = prefix[name] = b'{"stream":"' + name + b'","data":'
                        wrapped = p + payload + b"}"
                    c.q.append(wrapped)
                else:
                    c.q.append(payload)
            touched.update(conns)
        for c in touched:
            c.pushed()
        self.published += len(msgs)

    def broadcast_shutdown(self) -> None:
        """The serverShutdown event on every connection (raw and combined forms)."""
        data = orjson.dumps({"e": "serverShutdown", "E": time.time_ns() // 1_000_000})
        for c in list(self.conns.values()):
            c.push(b'{"stream":"!serverShutdown","data":' + data + b"}" if c.combined else data)

    # ---------------------------------------------------------------- control messages

    def _rate_ok(self, c: MdConn) -> bool:
        now = time.monotonic()
        dq = c.incoming
        dq.append(now)
        while dq and now - dq[0] >= 1.0:
            dq.popleft()
        self.max_incoming_1s = max(self.max_incoming_1s, len(dq))
        return len(dq) <= self.incoming_per_s

    def control(self, c: MdConn, text: str) -> bytes:
        """Handle one JSON control message; returns the reply frame."""
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return orjson.dumps({"code": 3, "msg": f"Invalid JSON: {exc.msg} at line {exc.lineno} "
                                                   f"column {exc.colno}"})
        if not isinstance(req, dict):
            return orjson.dumps({"code": 3, "msg": "Invalid JSON: expected an object at line 1 column 1"})
        rid = req.get("id")
        if not (rid is None or (isinstance(rid, int) and not isinstance(rid, bool))
                or (isinstance(rid, str) and len(rid) <= 36)):
            return orjson.dumps({"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"})
        if "method" not in req:
            return orjson.dumps({"code": 2, "msg": f"Invalid request: missing field `method` at line 1 column {len(text)}"})
        method = req["method"]
        if method not in METHODS:
            return orjson.dumps({"code": 2, "msg": f"Invalid request: unknown variant `{method}`, expected one of "
                                 "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, "
                                 f"`GET_PROPERTY` at line 1 column {len(text)}"})
        params = req.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) and p for p in params):
                return orjson.dumps({"code": 2, "msg": "Invalid request: params must be a list of stream names",
                                     "id": rid})
            streams = [normalize_stream(p) for p in params]
            if method == "SUBSCRIBE":
                if len(set(c.streams) | set(streams)) > self.max_streams:
                    return orjson.dumps({"code": 2, "msg": f"Invalid request: too many streams (max "
                                                           f"{self.max_streams} per connection)", "id": rid})
                self.subscribe(c, streams)
            else:
                self.unsubscribe(c, streams)
            return orjson.dumps({"result": None, "id": rid})
        if method == "LIST_SUBSCRIPTIONS":
            if params:
                return orjson.dumps({"code": 2, "msg": "Invalid request: too many parameters"})
            return orjson.dumps({"result": list(c.streams), "id": rid})
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            return orjson.dumps({"code": 2, "msg": "Invalid request: property name must be a string"})
        if params[0] != "combined":
            return orjson.dumps({"code": 0, "msg": "Unknown property", "id": rid})
        if method == "GET_PROPERTY":
            if len(params) != 1:
                return orjson.dumps({"code": 2, "msg": "Invalid request: too many parameters"})
            return orjson.dumps({"result": c.combined, "id": rid})
        if len(params) != 2:
            return orjson.dumps({"code": 2, "msg": "Invalid request: too many parameters"
                                 if len(params) > 2 else "Invalid value type: expected Boolean"})
        if not isinstance(params[1], bool):
            return orjson.dumps({"code": 1, "msg": "Invalid value type: expected Boolean"})
        c.combined = params[1]
        return orjson.dumps({"result": None, "id": rid})

    # ---------------------------------------------------------------- the handler

    async def handle(self, request: web.Request, cfg: Any) -> web.StreamResponse:
        """GET /ws, /ws/<streams>, /stream?streams=a/b."""
        self.connect_times.append(time.monotonic())
        path = request.path
        if path.startswith("/stream"):
            combined = True
            raw = request.query.get("streams", "")
        else:
            combined = False
            raw = request.match_info.get("streams", "")
        streams = [normalize_stream(s) for s in raw.split("/") if s]
        if len(streams) > self.max_streams:
            return web.json_response({"code": -1, "msg": f"too many streams (max {self.max_streams})"},
                                     status=400)
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 16, timeout=2.0)
        await ws.prepare(request)
        c = MdConn(ws, request, combined=combined, ping_interval_s=cfg.ping_interval_s,
                   pong_timeout_s=cfg.pong_timeout_s, max_lifetime_s=cfg.max_lifetime_s,
                   max_queue=cfg.ws_send_queue)
        self.conns[c.id] = c
        self.subscribe(c, streams)
        c.start()
        if time.monotonic() < self.flap_until:
            asyncio.get_running_loop().call_later(self.flap_after_s, c.abort)
        log.info("md %d: %s connected to %s (%d streams)", c.id, c.peer, request.path_qs, len(streams))
        try:
            async for msg in ws:
                if c.closed:
                    break
                if msg.type in (WSMsgType.TEXT, WSMsgType.PING, WSMsgType.PONG, WSMsgType.BINARY):
                    if not self._rate_ok(c):
                        log.warning("md %d: more than %d incoming messages/s, disconnecting", c.id,
                                    self.incoming_per_s)
                        self.rate_disconnects += 1
                        await c.close(1008, b"Too many requests")
                        break
                if msg.type == WSMsgType.TEXT:
                    c.push(self.control(c, msg.data))
                elif msg.type == WSMsgType.PING:
                    await c.answer_ping(msg.data)
                elif msg.type == WSMsgType.PONG:
                    c.on_pong(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    c.push(orjson.dumps({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}))
                elif msg.type == WSMsgType.ERROR:
                    log.info("md %d: read error %s", c.id, ws.exception())
                    break
        finally:
            self.remove(c)
            await c.stop()
            log.info("md %d: closed (sent %d frames)", c.id, c.sent)
        return ws
