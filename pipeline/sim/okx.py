"""OKX v5 public market data served by the simulator, from the same tape as the Binance streams.

    GET /ws/v5/public                          WebSocket: op subscribe / unsubscribe, text ping
    GET /api/v5/market/books?instId=&sz=       REST order-book snapshot (with seqId)
    GET /api/v5/public/instruments?instType=SPOT[&instId=]   the instrument listing (filters)

Instruments are the simulator's symbols spelled the OKX way (BTCUSDT → BTC-USDT). The tape's
Binance messages are translated as they are published:

    <sym>@trade         → trades   {"instId","tradeId","px","sz","side","ts"}
    <sym>@bookTicker    → bbo-tbt  {"asks":[[px,sz,"0","1"]],"bids":[...],"ts","seqId"}
    <sym>@depth@100ms   → books    action "update", seqId/prevSeqId, checksum

Book sequencing: per instrument, seqId = Binance update id + an offset (seqIds start large, as on
OKX); prevSeqId = the previous books message's seqId. A shadow book holds the state as of the last
books message, so WebSocket snapshots (prevSeqId -1) and REST snapshots are exact at their seqId.
The checksum is 0 (OKX's behaviour since 2026) unless turned on with the `okx_set` fault, then
it is the CRC32 of the top 25 levels (computed here with zlib, independently of the collector).

Keep-alive: a text "ping" gets "pong"; the server closes a connection idle (nothing pushed, no
ping received) for `idle_close_s` (30 s, code 4004), as OKX does.

Faults (POST /_sim/fault, names prefixed okx_):
| okx_gap        | count = 1, instId = all | next books updates not sent: prevSeqId jumps      |
| okx_seq_reset  | instId = all            | next books update has seqId < prevSeqId           |
| okx_silence    | seconds = 5             | nothing sent on OKX connections, TCP stays open   |
| okx_drop       |                         | OKX connections cut (TCP abort)                   |
| okx_notice     |                         | {"event":"notice","code":"64008",...} to everyone  |
| okx_set        | checksum, snapshot_push, idle_close_s | behaviour switches              |
| okx_amend_fail | count = 1               | next amend-orders accepted (sCode 0) but failed   |
|                |                         | later: unchanged, orders push amendResult "-1"    |
"""
from __future__ import annotations

import asyncio
import logging
import time
import zlib
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from pipeline.sim.wsconn import WsConn

log = logging.getLogger(__name__)

WS_PATH = "/ws/v5/public"
BOOKS_PATH = "/api/v5/market/books"
INSTRUMENTS_PATH = "/api/v5/public/instruments"
CHANNELS = ("trades", "bbo-tbt", "books")
SEQ_BASE = 1_000_000_000
REST_MAX_SZ = 400
WS_SNAPSHOT_LEVELS = 400


class OkxConn(WsConn):
    kind = "okx"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.subs: set[tuple[str, str]] = set()
        self.last_in = time.monotonic()


def _crc(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    v = zlib.crc32(":".join(parts).encode())
    return v - (1 << 32) if v >= (1 << 31) else v


class Shadow:
    """One instrument's book as of its last books message (price string → size string)."""

    __slots__ = ("bids", "asks", "seq", "off", "ready", "event")

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}
        self.seq = 0
        self.off = SEQ_BASE
        self.ready = False
        self.event = asyncio.Event()

    def top(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        b = sorted(self.bids.items(), key=lambda kv: float(kv[0]), reverse=True)[:n]
        a = sorted(self.asks.items(), key=lambda kv: float(kv[0]))[:n]
        return b, a


class OkxVenue:
    """The OKX endpoints of one Simulator (`sim.books`, `sim.tape`)."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.books = sim.books                      # Binance symbol → pipeline.sim.book.Book
        self.inst: dict[str, str] = {s: f"{b.spec.base}-{b.spec.quote}"
                                     for s, b in self.books.items()}
        self.sym: dict[str, str] = {v: k for k, v in self.inst.items()}
        self.conns: dict[int, OkxConn] = {}
        self.subs: dict[tuple[str, str], list[OkxConn]] = {}
        self.shadows: dict[str, Shadow] = {}
        self.pending: dict[str, list[OkxConn]] = {}  # books subscribers waiting for a snapshot
        self.gap: dict[str, int] = {}
        self.reset: set[str] = set()
        self.checksum = False
        self.amend_fail = 0                         # okx_amend_fail: amends to fail late
        self.snapshot_push = True
        self.idle_close_s = 30.0
        self.sent = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(WS_PATH, self.handle)
        app.router.add_get(BOOKS_PATH, self.rest_books)
        app.router.add_get(INSTRUMENTS_PATH, self.rest_instruments)

    # ---------------------------------------------------------------- tape → OKX
    def _want(self, sym: str, channel: str) -> None:
        lo = sym.lower()
        key = {"trades": f"{lo}@trade", "bbo-tbt": f"{lo}@bookTicker",
               "books": f"{lo}@depth@100ms"}[channel].encode()
        tape = self.sim.tape
        if key not in tape.wanted:
            tape.wanted.add(key)
            tape.update_tracking()          # books keep diffs only for wanted depth streams

    def _shadow(self, sym: str) -> Shadow:
        sh = self.shadows.get(sym)
        if sh is None:
            sh = self.shadows[sym] = Shadow()
            self._want(sym, "books")
            book = self.books[sym]
            if not book.accs["100ms"].first_id:      # no change since the last flush: exact now
                self._init_shadow(sym, sh)
        return sh

    def _init_shadow(self, sym: str, sh: Shadow) -> None:
        from pipeline.sim.instruments import fmt8
        book = self.books[sym]
        sh.bids = {fmt8(p): fmt8(q) for p, q in book.bids.items()}
        sh.asks = {fmt8(p): fmt8(q) for p, q in book.asks.items()}
        sh.seq = book.update_id + sh.off
        sh.ready = True
        sh.event.set()

    def publish(self, msgs: list[tuple[bytes, bytes]]) -> None:
        """Called with every batch the tape publishes."""
        if not self.subs and not self.shadows:
            return
        for (ch, inst) in self.subs:                # keep our streams wanted
            self._want(self.sym[inst], ch)
        for name, payload in msgs:
            sym_lo, _, stream = name.decode().partition("@")
            sym = sym_lo.upper()
            inst = self.inst.get(sym)
            if inst is None:
                continue
            if stream == "depth@100ms" and sym in self.shadows:
                self._book_update(sym, inst, orjson.loads(payload))
            elif stream == "trade" and ("trades", inst) in self.subs:
                d = orjson.loads(payload)
                self._send(("trades", inst), {
                    "arg": {"channel": "trades", "instId": inst},
                    "data": [{"instId": inst, "tradeId": str(d["t"]), "px": d["p"], "sz": d["q"],
                              "side": "sell" if d["m"] else "buy", "ts": str(d["T"])}]})
            elif stream == "bookTicker" and ("bbo-tbt", inst) in self.subs:
                d = orjson.loads(payload)
                sh = self.shadows.get(sym)
                self._send(("bbo-tbt", inst), {
                    "arg": {"channel": "bbo-tbt", "instId": inst}, "data": [
                    {"asks": [[d["a"], d["A"], "0", "1"]], "bids": [[d["b"], d["B"], "0", "1"]],
                     "ts": str(int(time.time() * 1000)),
                     "seqId": d["u"] + (sh.off if sh else SEQ_BASE)}]})

    def _book_update(self, sym: str, inst: str, d: dict) -> None:
        sh = self.shadows[sym]
        if not sh.ready:                          # the book is exactly at u now: start here
            self._init_shadow(sym, sh)
            self._flush_pending(sym, inst, sh, int(d["E"]))
            return
        for p, q in d["b"]:
            if float(q) == 0:
                sh.bids.pop(p, None)
            else:
                sh.bids[p] = q
        for p, q in d["a"]:
            if float(q) == 0:
                sh.asks.pop(p, None)
            else:
                sh.asks[p] = q
        prev = sh.seq
        if sym in self.reset:
            self.reset.discard(sym)
            sh.off = 10 - int(d["U"])               # seqId restarts near 10, below prevSeqId
            log.warning("okx fault: seqId reset for %s", inst)
        sh.seq = int(d["u"]) + sh.off
        cs = _crc(*sh.top(25)) if self.checksum else 0
        msg = {"arg": {"channel": "books", "instId": inst}, "action": "update", "data": [
            {"asks": [[p, q, "0", "1"] for p, q in d["a"]],
             "bids": [[p, q, "0", "1"] for p, q in d["b"]],
             "ts": str(d["E"]), "checksum": cs, "prevSeqId": prev, "seqId": sh.seq}]}
        if self.gap.get(sym, 0) > 0:
            self.gap[sym] -= 1
            log.warning("okx fault: books update %d of %s not sent", sh.seq, inst)
        else:
            self._send(("books", inst), msg)
        self._flush_pending(sym, inst, sh, int(d["E"]))

    def _snapshot_msg(self, inst: str, sh: Shadow, ts_ms: int) -> dict:
        b, a = sh.top(WS_SNAPSHOT_LEVELS)
        return {"arg": {"channel": "books", "instId": inst}, "action": "snapshot", "data": [
            {"asks": [[p, q, "0", "1"] for p, q in a], "bids": [[p, q, "0", "1"] for p, q in b],
             "ts": str(ts_ms), "checksum": _crc(b[:25], a[:25]) if self.checksum else 0,
             "prevSeqId": -1, "seqId": sh.seq}]}

    def _flush_pending(self, sym: str, inst: str, sh: Shadow, ts_ms: int) -> None:
        waiting = self.pending.pop(sym, [])
        if waiting:
            frame = orjson.dumps(self._snapshot_msg(inst, sh, ts_ms))
            for c in waiting:
                if ("books", inst) in c.subs and not c.closed:
                    c.push(frame)
                    self.sent += 1

    def _send(self, key: tuple[str, str], msg: dict) -> None:
        conns = self.subs.get(key)
        if not conns:
            return
        frame = orjson.dumps(msg)
        for c in conns:
            c.push(frame)
        self.sent += len(conns)

    # ---------------------------------------------------------------- WebSocket
    def _ack(self, c: OkxConn, event: str, arg: dict, rid: Any) -> bytes:
        m: dict[str, Any] = {"event": event, "arg": arg, "connId": f"{c.id:08x}"}
        if rid is not None:
            m = {"id": rid, **m}
        return orjson.dumps(m)

    def _error(self, c: OkxConn, code: str, msg: str, rid: Any = None) -> bytes:
        m: dict[str, Any] = {"event": "error", "code": code, "msg": msg, "connId": f"{c.id:08x}"}
        if rid is not None:
            m = {"id": rid, **m}
        return orjson.dumps(m)

    def control(self, c: OkxConn, text: str) -> list[bytes]:
        """One text frame from a client → reply frames."""
        if text == "ping":
            return [b"pong"]
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [self._error(c, "60012", f"Invalid request: {text[:200]}")]
        if not isinstance(req, dict) or not isinstance(req.get("args"), list):
            return [self._error(c, "60012", f"Invalid request: {text[:200]}")]
        rid = req.get("id")
        op = req.get("op")
        if op not in ("subscribe", "unsubscribe"):
            return [self._error(c, "60019", f"Invalid op: {op}", rid)]
        out: list[bytes] = []
        for arg in req["args"]:
            ch = arg.get("channel") if isinstance(arg, dict) else None
            inst = arg.get("instId") if isinstance(arg, dict) else None
            if ch not in CHANNELS or inst not in self.sym:
                out.append(self._error(c, "60018", f"Wrong URL or channel:{ch},instId:{inst} "
                                       "doesn't exist. Please use the correct URL, channel and "
                                       "parameters referring to API document.", rid))
                continue
            key = (ch, inst)
            if op == "subscribe":
                if key not in c.subs:
                    c.subs.add(key)
                    self.subs.setdefault(key, []).append(c)
                    self._want(self.sym[inst], ch)
                out.append(self._ack(c, "subscribe", {"channel": ch, "instId": inst}, rid))
                if ch == "books":
                    sh = self._shadow(self.sym[inst])     # start sequencing this instrument
                    if self.snapshot_push:
                        out += self._on_books_subscribe(c, inst, sh)
            else:
                self._unsub(c, key)
                out.append(self._ack(c, "unsubscribe", {"channel": ch, "instId": inst}, rid))
        return out

    def _on_books_subscribe(self, c: OkxConn, inst: str, sh: Shadow) -> list[bytes]:
        sym = self.sym[inst]
        if sh.ready:
            return [orjson.dumps(self._snapshot_msg(inst, sh, int(time.time() * 1000)))]
        self.pending.setdefault(sym, []).append(c)
        return []

    def _unsub(self, c: OkxConn, key: tuple[str, str]) -> None:
        c.subs.discard(key)
        lst = self.subs.get(key, [])
        if c in lst:
            lst.remove(c)
        if not lst:
            self.subs.pop(key, None)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        cfg = self.sim.cfg
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 16)
        await ws.prepare(request)
        # OKX does not ping clients: the client keeps the connection alive with text pings.
        c = OkxConn(ws, request, ping_interval_s=1e9, pong_timeout_s=1e9,
                    max_lifetime_s=cfg.max_lifetime_s, max_queue=cfg.ws_send_queue)
        self.conns[c.id] = c
        c.start()
        idle = asyncio.create_task(self._idle_watch(c), name=f"okx-{c.id}-idle")
        log.info("okx %d: %s connected", c.id, c.peer)
        try:
            async for msg in ws:
                if c.closed:
                    break
                c.last_in = time.monotonic()
                if msg.type == WSMsgType.TEXT:
                    for f in self.control(c, msg.data):
                        c.push(f)
                elif msg.type == WSMsgType.BINARY:
                    c.push(self._error(c, "60012", "Invalid request: binary frame"))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            idle.cancel()
            for key in list(c.subs):
                self._unsub(c, key)
            self.conns.pop(c.id, None)
            await c.stop()
            log.info("okx %d: closed (sent %d frames)", c.id, c.sent)
        return ws

    async def _idle_watch(self, c: OkxConn) -> None:
        """Close a connection that neither received a push nor sent anything for idle_close_s."""
        last_sent = -1
        last_change = time.monotonic()
        while not c.closed:
            await asyncio.sleep(min(1.0, self.idle_close_s / 4))
            now = time.monotonic()
            if c.sent != last_sent:
                last_sent, last_change = c.sent, now
            if now - max(last_change, c.last_in) > self.idle_close_s:
                log.info("okx %d: no data for %.1f s, closing (4004)", c.id, self.idle_close_s)
                await c.close(4004, b"No data received in 30s")
                return

    # ---------------------------------------------------------------- REST
    async def rest_books(self, request: web.Request) -> web.Response:
        inst = request.query.get("instId", "")
        if inst not in self.sym:
            return web.json_response({"code": "51001", "msg": "Instrument ID does not exist",
                                      "data": []})
        try:
            sz = int(request.query.get("sz", "1"))
        except ValueError:
            sz = 0
        if not 1 <= sz <= REST_MAX_SZ:
            return web.json_response({"code": "51000", "msg": "Parameter sz error", "data": []})
        sh = self._shadow(self.sym[inst])
        if not sh.ready:
            try:
                await asyncio.wait_for(sh.event.wait(), 2.0)
            except asyncio.TimeoutError:
                return web.json_response({"code": "50001", "msg": "Service temporarily unavailable",
                                          "data": []}, status=503)
        b, a = sh.top(sz)
        return web.json_response({"code": "0", "msg": "", "data": [{
            "asks": [[p, q, "0", "1"] for p, q in a], "bids": [[p, q, "0", "1"] for p, q in b],
            "ts": str(int(time.time() * 1000)), "seqId": sh.seq}]})

    async def rest_instruments(self, request: web.Request) -> web.Response:
        """OKX's spot listing of the simulator's symbols (filters from their embedded specs)."""
        from pipeline.sim.instruments import fmt8
        kind = request.query.get("instType", "")
        if not kind:
            return web.json_response({"code": "50014", "data": [],
                                      "msg": "Parameter instType can not be empty."}, status=400)
        inst = request.query.get("instId", "")
        if inst and inst not in self.sym:
            return web.json_response({"code": "51001", "msg": "Instrument ID does not exist",
                                      "data": []})

        def dec(units: int) -> str:
            text = fmt8(units).rstrip("0")
            return text[:-1] if text.endswith(".") else text

        data = []
        for i in ([inst] if inst else sorted(self.sym)) if kind == "SPOT" else []:
            s = self.books[self.sym[i]].spec
            data.append({"instType": "SPOT", "instId": i, "baseCcy": s.base, "quoteCcy": s.quote,
                         "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "",
                         "listTime": "1548133413000", "expTime": "", "lever": "",
                         "tickSz": dec(s.tick), "lotSz": dec(s.step), "minSz": dec(s.min_qty),
                         "maxLmtSz": dec(s.max_qty), "maxMktSz": dec(s.max_qty),
                         "maxLmtAmt": "20000000", "maxMktAmt": "1000000", "ruleType": "normal",
                         "state": "live"})
        return web.json_response({"code": "0", "msg": "", "data": data})

    # ---------------------------------------------------------------- faults
    async def fault(self, name: str, params: dict) -> dict:
        conns = list(self.conns.values())
        insts = [params["instId"]] if "instId" in params else list(self.sym)
        for i in insts:
            if i not in self.sym:
                raise ValueError(f"{name}: unknown instId {i!r}")
        if name == "okx_gap":
            for i in insts:
                s = self.sym[i]
                self.gap[s] = self.gap.get(s, 0) + int(params.get("count", 1))
            return {"instIds": insts}
        if name == "okx_seq_reset":
            self.reset.update(self.sym[i] for i in insts)
            return {"instIds": insts}
        if name == "okx_silence":
            until = time.monotonic() + float(params.get("seconds", 5))
            for c in conns:
                c.silent_until = until
            return {"silenced": len(conns)}
        if name == "okx_drop":
            for c in conns:
                c.abort()
            return {"dropped": len(conns)}
        if name == "okx_notice":
            frame = orjson.dumps({"event": "notice", "code": "64008", "msg": "The connection will "
                                  "soon be closed for a service upgrade. Please reconnect."})
            for c in conns:
                c.push(frame)
            return {"connections": len(conns)}
        if name == "okx_amend_fail":
            self.amend_fail += int(params.get("count", 1))
            return {"amend_fail": self.amend_fail}
        if name == "okx_set":
            unknown = set(params) - {"checksum", "snapshot_push", "idle_close_s"}
            if unknown:
                raise ValueError(f"okx_set: unknown parameter(s) {sorted(unknown)}")
            self.checksum = bool(params.get("checksum", self.checksum))
            self.snapshot_push = bool(params.get("snapshot_push", self.snapshot_push))
            self.idle_close_s = float(params.get("idle_close_s", self.idle_close_s))
            return {"checksum": self.checksum, "snapshot_push": self.snapshot_push,
                    "idle_close_s": self.idle_close_s}
        raise ValueError(f"unknown OKX fault {name!r}")

    def state(self) -> dict:
        return {"connections": len(self.conns), "sent": self.sent,
                "books": {self.inst[s]: {"seqId": sh.seq, "ready": sh.ready,
                                         "levels": [len(sh.bids), len(sh.asks)]}
                          for s, sh in self.shadows.items()}}
