"""REST, Binance spot format: /api/v3/{ping,time,exchangeInfo,depth,order,openOrders,account,myTrades}.

Every response carries `X-MBX-USED-WEIGHT-1M` (and the legacy `X-MBX-USED-WEIGHT`); order
responses carry `X-MBX-ORDER-COUNT-10S` / `-1D`. Past the weight limit: 429 + Retry-After; a client
that keeps sending before Retry-After is banned: 418 + Retry-After. Signed endpoints check the
API key, the HMAC over exactly the bytes received, then timestamp / recvWindow.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

import orjson
from aiohttp import web

from pipeline.sim import errors
from pipeline.sim.faults import CLOCK as faultmod_clock
from pipeline.sim.accounts import Account
from pipeline.sim.auth import check_timestamp, parse_params, strip_signature
from pipeline.sim.errors import ApiError, err
from pipeline.sim.instruments import exchange_info

if TYPE_CHECKING:
    from pipeline.sim.server import Simulator

log = logging.getLogger(__name__)

JSON = "application/json"


def now_ms() -> int:
    return faultmod_clock.now_ms()          # the venue's clock (the clock_skew fault)


def depth_weight(limit: int) -> int:
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


class RestApi:
    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim
        self.requests = 0

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v3/ping", self.ping)
        r.add_get("/api/v3/time", self.time)
        r.add_get("/api/v3/exchangeInfo", self.exchange_info)
        r.add_get("/api/v3/depth", self.depth)
        r.add_post("/api/v3/order", self.order_new)
        r.add_get("/api/v3/order", self.order_get)
        r.add_delete("/api/v3/order", self.order_cancel)
        r.add_post("/api/v3/order/cancelReplace", self.order_cancel_replace)
        r.add_get("/api/v3/openOrders", self.open_orders)
        r.add_delete("/api/v3/openOrders", self.open_orders_cancel)
        r.add_get("/api/v3/account", self.account)
        r.add_get("/api/v3/myTrades", self.my_trades)

    # ------------------------------------------------------------------ the common path

    async def _serve(self, request: web.Request, weight: int | Callable[[dict], int],
                     fn: Callable[[dict, Account | None], Any], *, signed: bool = False,
                     order: bool = False) -> web.Response:
        sim = self.sim
        self.requests += 1
        ip = request.remote or "?"
        headers: dict[str, str] = {}
        faults = sim.req_faults
        late = 0.0
        delay = faults.take_delay()
        if delay:
            await asyncio.sleep(delay)
        try:
            raw_query = request.raw_path.partition("?")[2].encode("utf-8", "surrogateescape")
            body = await request.read() if request.body_exists else b""
            params = parse_params(raw_query, body)
            if faults.take("force_429_left"):
                raise sim.limiter.force_429(ip)
            w = weight(params) if callable(weight) else weight
            sim.limiter.check_ip(ip, w)
            acct = self._auth(request, raw_query, body, params) if signed else None
            if order:
                assert acct is not None
                n10, n1d = sim.limiter.check_order(acct.api_key)
                headers["X-MBX-ORDER-COUNT-10S"] = str(n10)
                headers["X-MBX-ORDER-COUNT-1D"] = str(n1d)
            result = fn(params, acct)
            status = 200
            if order and faults.take("http_5xx_left"):
                log.warning("fault http_5xx: order executed, answering %d", faults.http_5xx_status)
                status = faults.http_5xx_status
                late = faults.http_5xx_late_ms / 1000.0
                result = {"code": errors.UNKNOWN_5XX[0], "msg": errors.UNKNOWN_5XX[1]}
        except ApiError as exc:
            status = exc.status
            result = exc.body()
            headers.update(exc.headers)
            if status >= 429 or exc.code in (-1021, -1022):
                log.info("REST %s %s -> %d %s", request.method, request.path, status, exc)
        except Exception:  # noqa: BLE001 - a bug must not take the venue down; 500 like Binance
            log.exception("REST %s %s: internal error", request.method, request.path_qs)
            status = 500
            result = {"code": -1000, "msg": "An unknown error occurred while processing the request."}
        if late:
            # the order is on the book (and on the user stream) before the client hears anything
            await asyncio.sleep(late)
        used = sim.limiter.used_weight(ip)
        headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        headers["X-MBX-USED-WEIGHT"] = str(used)
        return web.Response(body=orjson.dumps(result), status=status, content_type=JSON,
                            headers=headers)

    def _auth(self, request: web.Request, raw_query: bytes, body: bytes, params: dict) -> Account:
        sim = self.sim
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            raise ApiError(errors.API_KEY_FORMAT[0], errors.API_KEY_FORMAT[1], 401)
        acct = sim.accounts.get(key)
        if acct is None:
            raise ApiError(errors.BAD_API_KEY[0], errors.BAD_API_KEY[1], 401)
        q, sig_q = strip_signature(raw_query)
        b, sig_b = strip_signature(body)
        sig = sig_q or sig_b
        if not sig:
            raise errors.mandatory("signature")
        if not acct.signature_ok(q + b, sig):
            raise err(errors.BAD_SIGNATURE)
        if sim.req_faults.take("force_1021_left"):
            raise err(errors.OUTSIDE_RECV_WINDOW)
        check_timestamp(params, now_ms(), request.path)
        return acct

    # ------------------------------------------------------------------ public

    async def ping(self, request: web.Request) -> web.Response:
        return await self._serve(request, 1, lambda p, a: {})

    async def time(self, request: web.Request) -> web.Response:
        return await self._serve(request, 1, lambda p, a: {"serverTime": now_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        def fn(p: dict, a: Any) -> dict:
            specs = [b.spec for b in self.sim.books.values()]
            wanted = None
            if p.get("symbol"):
                wanted = [p["symbol"].upper()]
            elif p.get("symbols"):
                try:
                    wanted = [str(s).upper() for s in orjson.loads(p["symbols"])]
                except (orjson.JSONDecodeError, TypeError):
                    raise errors.bad_value("symbols") from None
            if wanted is not None:
                by = {s.symbol: s for s in specs}
                missing = [w for w in wanted if w not in by]
                if missing:
                    raise err(errors.INVALID_SYMBOL)
                specs = [by[w] for w in wanted]
            return exchange_info(specs, now_ms(), self.sim.rate_limits_json())
        return await self._serve(request, 20, fn)

    async def depth(self, request: web.Request) -> web.Response:
        def limit_of(p: dict) -> int:
            try:
                return max(1, min(5000, int(p.get("limit") or 100)))
            except ValueError:
                raise errors.bad_value("limit") from None

        def fn(p: dict, a: Any) -> dict:
            if not p.get("symbol"):
                raise errors.mandatory("symbol")
            book = self.sim.books.get(p["symbol"].upper())
            if book is None:
                raise err(errors.INVALID_SYMBOL)
            return book.snapshot(limit_of(p))
        return await self._serve(request, lambda p: depth_weight(limit_of(p)), fn)

    # ------------------------------------------------------------------ signed

    async def order_new(self, request: web.Request) -> web.Response:
        def fn(p: dict, a: Account) -> dict:
            order, fills, resp_type = self.sim.engine.place(a, p)
            return order.result(order.time_ms, resp_type, fills)
        return await self._serve(request, 1, fn, signed=True, order=True)

    async def order_get(self, request: web.Request) -> web.Response:
        return await self._serve(request, 4, lambda p, a: self.sim.engine.find(a, p).details(),
                                 signed=True)

    async def order_cancel(self, request: web.Request) -> web.Response:
        def fn(p: dict, a: Account) -> dict:
            return self.sim.engine.cancel(a, p).canceled(now_ms())
        return await self._serve(request, 1, fn, signed=True)

    async def order_cancel_replace(self, request: web.Request) -> web.Response:
        def fn(p: dict, a: Account) -> dict:
            return self.sim.engine.cancel_replace(a, p, now_ms())
        return await self._serve(request, 1, fn, signed=True, order=True)

    async def open_orders(self, request: web.Request) -> web.Response:
        def fn(p: dict, a: Account) -> list:
            sym = p.get("symbol")
            if sym and sym.upper() not in self.sim.books:
                raise err(errors.INVALID_SYMBOL)
            return [o.details() for o in a.open_orders(sym.upper() if sym else None)]
        return await self._serve(request, lambda p: 6 if p.get("symbol") else 80, fn, signed=True)

    async def open_orders_cancel(self, request: web.Request) -> web.Response:
        def fn(p: dict, a: Account) -> list:
            if not p.get("symbol"):
                raise errors.mandatory("symbol")
            t = now_ms()
            return [o.canceled(t) for o in self.sim.engine.cancel_all(a, p["symbol"])]
        return await self._serve(request, 1, fn, signed=True)

    async def account(self, request: web.Request) -> web.Response:
        return await self._serve(request, 20, lambda p, a: a.account_json(
            now_ms(), self.sim.cfg.commission_rate), signed=True)

    async def my_trades(self, request: web.Request) -> web.Response:
        def fn(p: dict, a: Account) -> list:
            if not p.get("symbol"):
                raise errors.mandatory("symbol")
            sym = p["symbol"].upper()
            if sym not in self.sim.books:
                raise err(errors.INVALID_SYMBOL)
            try:
                limit = max(1, min(1000, int(p.get("limit") or 500)))
                oid = int(p["orderId"]) if p.get("orderId") else None
                from_id = int(p["fromId"]) if p.get("fromId") else None
                start = int(p["startTime"]) if p.get("startTime") else None
                end = int(p["endTime"]) if p.get("endTime") else None
            except ValueError:
                raise ApiError(-1100, "Illegal characters found in a parameter.") from None
            src = a.trades_of.get(oid, ()) if oid is not None else a.trades
            out = [t for t in src if t.symbol == sym
                   and (oid is None or t.order_id == oid)
                   and (from_id is None or t.id >= from_id)
                   and (start is None or t.time_ms >= start)
                   and (end is None or t.time_ms <= end)]
            out = out[:limit] if from_id is not None else out[-limit:]
            return [t.json() for t in out]
        return await self._serve(request, 20, fn, signed=True)
