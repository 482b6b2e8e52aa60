"""The WebSocket API at /ws-api/v3 (web-socket-api.md): `{id, method, params}` requests,
`{id, status, result | error, rateLimits}` responses.

Methods: ping, time, session.logon / status / logout, userDataStream.subscribe (needs a logged-on
session), userDataStream.subscribe.signature, userDataStream.unsubscribe, order.place,
order.cancel, order.cancelReplace, order.status, openOrders.status, openOrders.cancelAll, account.status.
Signed params carry apiKey, timestamp and signature (HMAC-SHA256 over the sorted params); after
session.logon they may be omitted. User-data events arrive as `{"subscriptionId", "event"}`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from pipeline.sim import errors
from pipeline.sim.accounts import Account
from pipeline.sim.auth import check_timestamp, ws_payload
from pipeline.sim.errors import ApiError, err
from pipeline.sim.wsconn import WsConn

if TYPE_CHECKING:
    from pipeline.sim.server import Simulator

log = logging.getLogger(__name__)

NOT_AUTHORIZED = (-1002, "You are not authorized to execute this request.")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class WsApiConn(WsConn):
    kind = "ws_api"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.session: Account | None = None
        self.authorized_since: int | None = None
        self.connected_since = now_ms()
        self.subs: dict[int, Account] = {}
        self.next_sub = 0

    def subscribe(self, acct: Account) -> int:
        sid = self.next_sub
        self.next_sub += 1
        self.subs[sid] = acct
        key = (self.id << 20) | sid
        prefix = b'{"subscriptionId":' + str(sid).encode() + b',"event":'
        acct.listeners[key] = lambda ev: self.push(prefix + orjson.dumps(ev) + b"}")
        return sid

    def unsubscribe(self, sid: int | None = None) -> None:
        for s in list(self.subs) if sid is None else [sid]:
            acct = self.subs.pop(s, None)
            if acct is not None:
                acct.listeners.pop((self.id << 20) | s, None)


class WsApi:
    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim
        self.conns: dict[int, WsApiConn] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        cfg = self.sim.cfg
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 16, timeout=2.0)
        await ws.prepare(request)
        c = WsApiConn(ws, request, ping_interval_s=cfg.ping_interval_s,
                      pong_timeout_s=cfg.pong_timeout_s, max_lifetime_s=cfg.max_lifetime_s,
                      max_queue=cfg.ws_send_queue)
        self.conns[c.id] = c
        c.start()
        log.info("ws_api %d: %s connected", c.id, c.peer)
        try:
            async for msg in ws:
                if c.closed:
                    break
                if msg.type == WSMsgType.TEXT:
                    delay = self.sim.req_faults.take_delay()
                    if delay:
                        await asyncio.sleep(delay)
                    c.push(self.request(c, msg.data))
                elif msg.type == WSMsgType.PING:
                    await c.answer_ping(msg.data)
                elif msg.type == WSMsgType.PONG:
                    c.on_pong(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            c.unsubscribe()
            self.conns.pop(c.id, None)
            await c.stop()
            log.info("ws_api %d: closed", c.id)
        return ws

    # ------------------------------------------------------------------ requests

    def _limits(self, c: WsApiConn, acct: Account | None, orders: bool) -> list[dict]:
        sim = self.sim
        out = []
        if orders and acct is not None:
            n10, n1d = sim.limiter.order_counts(acct.api_key)
            out += [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                     "limit": sim.cfg.order_limit_10s, "count": n10},
                    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                     "limit": sim.cfg.order_limit_1d, "count": n1d}]
        out.append({"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                    "limit": sim.cfg.weight_limit_1m, "count": sim.limiter.used_weight(c.peer)})
        return out

    def request(self, c: WsApiConn, text: str) -> bytes:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            return orjson.dumps({"id": None, "status": 400,
                                 "error": {"code": -1013, "msg": "Malformed request: invalid JSON."}})
        if not isinstance(req, dict):
            return orjson.dumps({"id": None, "status": 400,
                                 "error": {"code": -1013, "msg": "Malformed request: not a JSON object."}})
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params") or {}
        acct: Account | None = None
        is_order = False
        try:
            if not isinstance(method, str):
                raise errors.mandatory("method")
            if not isinstance(params, dict):
                raise errors.mandatory("params")
            method = method.split("/", 1)[1] if method.startswith("v3/") else method
            handler = self._methods().get(method)
            if handler is None:
                raise ApiError(-1020, "This operation is not supported.")
            fn, weight, signed, is_order = handler
            if self.sim.req_faults.take("force_429_left"):
                raise self.sim.limiter.force_429(c.peer)
            self.sim.limiter.check_ip(c.peer, weight)
            if signed:
                acct = self._auth(c, params)
            if is_order:
                assert acct is not None
                self.sim.limiter.check_order(acct.api_key)
            result = fn(c, params, acct)
            if is_order and self.sim.req_faults.take("http_5xx_left"):
                st = self.sim.req_faults.http_5xx_status
                log.warning("fault http_5xx: WS-API order executed, answering %d", st)
                return orjson.dumps({"id": rid, "status": st, "error": {
                    "code": errors.UNKNOWN_5XX[0], "msg": errors.UNKNOWN_5XX[1]},
                    "rateLimits": self._limits(c, acct, is_order)})
            return orjson.dumps({"id": rid, "status": 200, "result": result,
                                 "rateLimits": self._limits(c, acct, is_order)})
        except ApiError as exc:
            error: dict[str, Any] = exc.body()
            if exc.status in (418, 429):
                retry = int(exc.headers.get("Retry-After", "1"))
                error["data"] = {"serverTime": now_ms(), "retryAfter": now_ms() + retry * 1000}
            return orjson.dumps({"id": rid, "status": exc.status, "error": error,
                                 "rateLimits": self._limits(c, acct, is_order)})
        except Exception:  # noqa: BLE001 - never crash the session on a bug
            log.exception("ws_api %d: internal error on %.200s", c.id, text)
            return orjson.dumps({"id": rid, "status": 500, "error": {
                "code": -1000, "msg": "An unknown error occurred while processing the request."}})

    def _auth(self, c: WsApiConn, params: dict) -> Account:
        sim = self.sim
        if "signature" not in params and c.session is not None:
            acct = c.session
        else:
            key = params.get("apiKey")
            if not key:
                raise errors.mandatory("apiKey")
            acct = sim.accounts.get(key)
            if acct is None:
                raise ApiError(errors.BAD_API_KEY[0], errors.BAD_API_KEY[1], 401)
            sig = params.get("signature")
            if not isinstance(sig, str) or not sig:
                raise errors.mandatory("signature")
            if not acct.signature_ok(ws_payload(params), sig):
                raise err(errors.BAD_SIGNATURE)
        if sim.req_faults.take("force_1021_left"):
            raise err(errors.OUTSIDE_RECV_WINDOW)
        if "timestamp" in params or c.session is not acct:
            check_timestamp(params, now_ms())
        return acct

    def _methods(self) -> dict:
        return {
            "ping": (lambda c, p, a: {}, 1, False, False),
            "time": (lambda c, p, a: {"serverTime": now_ms()}, 1, False, False),
            "session.logon": (self._logon, 2, True, False),
            "session.status": (self._status, 2, False, False),
            "session.logout": (self._logout, 2, False, False),
            "userDataStream.subscribe": (self._uds_subscribe, 2, False, False),
            "userDataStream.subscribe.signature": (self._uds_subscribe_sig, 2, True, False),
            "userDataStream.unsubscribe": (self._uds_unsubscribe, 2, False, False),
            "order.place": (self._order_place, 1, True, True),
            "order.cancel": (lambda c, p, a: self.sim.engine.cancel(a, self._strs(p)).canceled(now_ms()),
                             1, True, False),
            "order.cancelReplace": (lambda c, p, a: self.sim.engine.cancel_replace(
                a, self._strs(p), now_ms()), 1, True, True),
            "order.status": (lambda c, p, a: self.sim.engine.find(a, self._strs(p)).details(), 4, True, False),
            "openOrders.status": (self._open_orders, 6, True, False),
            "openOrders.cancelAll": (self._cancel_all, 1, True, False),
            "account.status": (lambda c, p, a: a.account_json(now_ms(), self.sim.cfg.commission_rate),
                               20, True, False),
        }

    @staticmethod
    def _strs(p: dict) -> dict:
        return {k: ("true" if v is True else "false" if v is False else str(v)) for k, v in p.items()
                if v is not None}

    def _session_json(self, c: WsApiConn) -> dict:
        return {"apiKey": c.session.api_key if c.session else None,
                "authorizedSince": c.authorized_since, "connectedSince": c.connected_since,
                "returnRateLimits": True, "serverTime": now_ms(), "userDataStream": bool(c.subs)}

    def _logon(self, c: WsApiConn, p: dict, a: Account) -> dict:
        c.session = a
        c.authorized_since = now_ms()
        return self._session_json(c)

    def _status(self, c: WsApiConn, p: dict, a: Any) -> dict:
        return self._session_json(c)

    def _logout(self, c: WsApiConn, p: dict, a: Any) -> dict:
        c.session = None
        c.authorized_since = None
        return self._session_json(c)

    def _uds_subscribe(self, c: WsApiConn, p: dict, a: Any) -> dict:
        if c.session is None:
            raise ApiError(NOT_AUTHORIZED[0], NOT_AUTHORIZED[1], 401)
        return {"subscriptionId": c.subscribe(c.session)}

    def _uds_subscribe_sig(self, c: WsApiConn, p: dict, a: Account) -> dict:
        return {"subscriptionId": c.subscribe(a)}

    def _uds_unsubscribe(self, c: WsApiConn, p: dict, a: Any) -> dict:
        sid = p.get("subscriptionId")
        if sid is not None and sid not in c.subs:
            raise ApiError(-1102, f"Invalid subscriptionId {sid!r}.")
        c.unsubscribe(sid)
        return {}

    def _order_place(self, c: WsApiConn, p: dict, a: Account) -> dict:
        order, fills, resp_type = self.sim.engine.place(a, self._strs(p))
        return order.result(order.time_ms, resp_type, fills)

    def _open_orders(self, c: WsApiConn, p: dict, a: Account) -> list:
        sym = p.get("symbol")
        if sym and str(sym).upper() not in self.sim.books:
            raise err(errors.INVALID_SYMBOL)
        return [o.details() for o in a.open_orders(str(sym).upper() if sym else None)]

    def _cancel_all(self, c: WsApiConn, p: dict, a: Account) -> list:
        if not p.get("symbol"):
            raise errors.mandatory("symbol")
        t = now_ms()
        return [o.canceled(t) for o in self.sim.engine.cancel_all(a, str(p["symbol"]))]
