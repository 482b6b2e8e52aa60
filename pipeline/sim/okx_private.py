"""OKX v5 private WebSocket served by the simulator: /ws/v5/private.

    {"op":"login","args":[{"apiKey","passphrase","timestamp","sign"}]}
        sign = base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify")), timestamp in
        Unix seconds within 30 s of the server's → {"event":"login","code":"0","msg":"","connId"}
        (60024 wrong passphrase / unknown key, 60004 bad timestamp, 60007 bad sign, 60009 failed)
    {"op":"subscribe","args":[{"channel":"orders","instType":"SPOT"|"ANY"[,"instId"]}]}
        needs a login (60011); then every change of one of the account's orders is pushed:
        {"arg":{"channel":"orders","instType":"SPOT","uid"},"data":[order JSON]} with the fill's
        tradeId / fillSz / fillPx / fillFee / fillFeeCcy / fillTime when it is one
    {"id","op":"order"|"cancel-order"|"amend-order"|"batch-cancel-orders","args":[...]}
        orders over the socket, answered {"id","op","code","msg","data":[{...,"sCode","sMsg"}]}
        ("code" "1" when every order failed, "2" when some did; batch-cancel-orders takes 1..20
        orders, else 51000 for the whole request); the REST rules: pipeline/sim/okx_trade.py;
        http_5xx faults become code 50001 answers after the order executed
    "ping" → "pong"

Connections are OKX connections of the simulator (pipeline/sim/okx.py): the okx_drop, okx_silence
and okx_notice faults act on them too, as do the request faults (delay, http_5xx, force_429) on
their order operations.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from pipeline.sim.okx import OkxConn
from pipeline.sim.okx_trade import OkxTrade
from pipeline.venues.okx import orders as ox

log = logging.getLogger(__name__)

OPS = {"order": "place", "cancel-order": "cancel", "amend-order": "amend",
       "batch-cancel-orders": "cancel_batch"}
OP_ENDPOINTS = {"order": ox.ORDER_PATH + " POST", "cancel-order": ox.CANCEL_PATH,
                "amend-order": ox.AMEND_PATH, "batch-cancel-orders": ox.CANCEL_BATCH_PATH}
_STATE = {"NEW": "live", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled",
          "CANCELED": "canceled", "EXPIRED": "canceled", "REJECTED": "canceled"}


class PrivateConn(OkxConn):
    kind = "okx-private"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.acct = None
        self.listening = False


class OkxPrivate:
    def __init__(self, sim: Any, venue: Any, trade: OkxTrade) -> None:
        self.sim = sim
        self.venue = venue
        self.trade = trade
        self.logins = 0
        self.pushed = 0
        self.ops: dict[str, int] = {}          # order / cancel-order / amend-order requests

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(ox.PRIVATE_WS_PATH, self.handle)

    # ---------------------------------------------------------------- frames
    def _event(self, c: PrivateConn, event: str, code: str = "0", msg: str = "", **kw) -> bytes:
        return orjson.dumps({"event": event, "code": code, "msg": msg, **kw,
                             "connId": f"{c.id:08x}"})

    def login(self, c: PrivateConn, args: Any) -> bytes:
        a = args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else {}
        acct = self.sim.accounts.get(str(a.get("apiKey", "")))
        if acct is None or not acct.passphrase_ok(str(a.get("passphrase", ""))):
            return self._event(c, "error", "60024", "Wrong passphrase")
        ts = str(a.get("timestamp", ""))
        try:
            t = float(ts)
        except ValueError:
            return self._event(c, "error", "60004", "Invalid timestamp")
        if abs(time.time() - t) > 30:
            return self._event(c, "error", "60004", "Invalid timestamp")
        if not acct.okx_sign_ok(ox.prehash(ts, "GET", ox.LOGIN_PATH), str(a.get("sign", ""))):
            return self._event(c, "error", "60007", "Invalid sign")
        c.acct = acct
        self.logins += 1
        return self._event(c, "login")

    def subscribe(self, c: PrivateConn, req: dict) -> list[bytes]:
        if c.acct is None:
            return [self._event(c, "error", "60011", "Please log in")]
        out = []
        for arg in req.get("args") or ():
            if not isinstance(arg, dict) or arg.get("channel") != "orders" \
                    or arg.get("instType") not in ("SPOT", "ANY"):
                out.append(self._event(c, "error", "60018", f"Wrong URL or channel:{arg}"))
                continue
            if req.get("op") == "subscribe" and not c.listening:
                c.listening = True
                acct = c.acct
                acct.listeners[("okx", c.id)] = lambda ev, c=c: self._on_report(c, ev)
            elif req.get("op") == "unsubscribe" and c.listening:
                c.listening = False
                c.acct.listeners.pop(("okx", c.id), None)
            out.append(self._event(c, req["op"], arg={"channel": "orders",
                                                      "instType": arg["instType"]}))
        return out

    async def order_op(self, c: PrivateConn, req: dict) -> bytes:
        rid, op = req.get("id", ""), req.get("op")
        self.ops[op] = self.ops.get(op, 0) + 1
        if c.acct is None:
            return orjson.dumps({"id": rid, "op": op, "code": "60011", "msg": "Please log in",
                                 "data": []})
        faults = self.sim.req_faults
        delay = faults.take_delay()
        if delay:
            await asyncio.sleep(delay)
        if faults.take("force_429_left") or not self.trade.windows.take(c.acct.api_key,
                                                                         OP_ENDPOINTS[op]):
            return orjson.dumps({"id": rid, "op": op, "code": ox.RATE_LIMITED,
                                 "msg": ox.MESSAGES[ox.RATE_LIMITED], "data": []})
        from pipeline.sim.okx_trade import OkxError
        try:
            data = getattr(self.trade, OPS[op])(c.acct, req.get("args") or [])
        except OkxError as exc:             # the request as a whole (e.g. a batch of 21)
            return orjson.dumps({"id": rid, "op": op, "code": exc.code, "msg": exc.msg,
                                 "data": []})
        if op == "order" and faults.take("http_5xx_left"):
            await asyncio.sleep(faults.http_5xx_late_ms / 1000.0)
            return orjson.dumps({"id": rid, "op": op, "code": ox.SERVICE_UNAVAILABLE,
                                 "msg": ox.MESSAGES[ox.SERVICE_UNAVAILABLE], "data": []})
        bad = [d for d in data if d.get("sCode") != "0"]
        code = "0" if not bad else ("1" if len(bad) == len(data) else "2")
        return orjson.dumps({"id": rid, "op": op, "code": code, "msg": "", "data": data,
                             "inTime": str(time.time_ns() // 1000),
                             "outTime": str(time.time_ns() // 1000)})

    def amend_failed(self, acct, order, req_id: str = "") -> None:
        """An amend OKX accepted and then failed (the okx_amend_fail fault): the order unchanged,
        an orders push with amendResult "-1" to the account's subscribed connections (after the
        request's answer: the push is queued behind it)."""
        data = self.trade.order_json(acct, order, {
            "amendResult": "-1", "reqId": req_id, "code": ox.AMEND_FAILED,
            "msg": ox.MESSAGES[ox.AMEND_FAILED], "tradeId": "", "fillSz": "0", "fillPx": "",
            "fillTime": "", "fillFee": "0", "fillFeeCcy": "", "execType": ""})
        frame = orjson.dumps({"arg": {"channel": "orders", "instType": "SPOT",
                                      "uid": str(acct.uid)}, "data": [data]})
        loop = asyncio.get_event_loop()
        for c in list(self.venue.conns.values()):
            if isinstance(c, PrivateConn) and c.acct is acct and c.listening and not c.closed:
                loop.call_soon(c.push, frame)
                self.pushed += 1

    def _on_report(self, c: PrivateConn, ev: dict) -> None:
        """The engine's executionReport for the account → an OKX orders push."""
        if ev.get("e") != "executionReport" or c.closed or c.acct is None:
            return
        acct = c.acct
        order = acct.orders.get(int(ev.get("i", -1)))
        if order is None or order.symbol not in self.venue.inst:
            return
        last: dict[str, Any] = {"state": _STATE.get(str(ev.get("X")), "live")}
        from pipeline.sim.okx_trade import dec
        from pipeline.sim.instruments import parse8
        if ev.get("x") == "TRADE":
            fee = parse8(str(ev.get("n") or "0"))
            last.update(tradeId=str(ev.get("t")), fillSz=dec(parse8(str(ev["l"]))),
                        fillPx=dec(parse8(str(ev["L"]))), fillTime=str(ev.get("T")),
                        fillFee=dec(-fee) if fee else "0", fillFeeCcy=str(ev.get("N") or ""),
                        execType="M" if ev.get("m") else "T")
        else:                     # not a fill: no fill fields (order_json fills in the last one)
            last.update(tradeId="", fillSz="0", fillPx="", fillTime="", fillFee="0",
                        fillFeeCcy="", execType="")
            if ev.get("x") == "REPLACED":
                last["amendResult"] = "0"
        data = self.trade.order_json(acct, order, last)
        frame = orjson.dumps({"arg": {"channel": "orders", "instType": "SPOT",
                                      "uid": str(acct.uid)}, "data": [data]})
        c.push(frame)
        self.pushed += 1

    # ---------------------------------------------------------------- the socket
    async def handle(self, request: web.Request) -> web.StreamResponse:
        cfg = self.sim.cfg
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 16)
        await ws.prepare(request)
        c = PrivateConn(ws, request, ping_interval_s=1e9, pong_timeout_s=1e9,
                        max_lifetime_s=cfg.max_lifetime_s, max_queue=cfg.ws_send_queue)
        self.venue.conns[c.id] = c            # the okx_* connection faults reach it
        c.start()
        idle = asyncio.create_task(self.venue._idle_watch(c), name=f"okxp-{c.id}-idle")
        log.info("okx private %d: %s connected", c.id, c.peer)
        try:
            async for msg in ws:
                if c.closed:
                    break
                c.last_in = time.monotonic()
                if msg.type == WSMsgType.TEXT:
                    for f in await self._frame(c, msg.data):
                        c.push(f)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            idle.cancel()
            if c.acct is not None:
                c.acct.listeners.pop(("okx", c.id), None)
            self.venue.conns.pop(c.id, None)
            await c.stop()
            log.info("okx private %d: closed (sent %d frames)", c.id, c.sent)
        return ws

    async def _frame(self, c: PrivateConn, text: str) -> list[bytes]:
        if text == "ping":
            return [b"pong"]
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [self._event(c, "error", "60012", f"Invalid request: {text[:200]}")]
        if not isinstance(req, dict):
            return [self._event(c, "error", "60012", f"Invalid request: {text[:200]}")]
        op = req.get("op")
        if op == "login":
            return [self.login(c, req.get("args"))]
        if op in ("subscribe", "unsubscribe"):
            return self.subscribe(c, req)
        if op in OPS:
            return [await self.order_op(c, req)]
        return [self._event(c, "error", "60019", f"Invalid op: {op}")]

    def state(self) -> dict:
        return {"logins": self.logins, "pushed": self.pushed, "ops": dict(self.ops)}


def login_args(api_key: str, secret: str, passphrase: str, ts: str | None = None) -> dict:
    """The login op's args (for tests and tools): sign over ts + GET + /users/self/verify."""
    import hashlib
    import hmac
    ts = ts or str(int(time.time()))
    sign = base64.b64encode(hmac.new(secret.encode(), ox.prehash(ts, "GET", ox.LOGIN_PATH),
                                     hashlib.sha256).digest()).decode()
    return {"apiKey": api_key, "passphrase": passphrase, "timestamp": ts, "sign": sign}


__all__ = ["OkxPrivate", "login_args"]
