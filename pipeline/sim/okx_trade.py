"""OKX v5 private REST served by the simulator: orders matched by the simulator's own engine
(pipeline/sim/matching.py), on the same accounts, books and fills as its Binance side.

    POST /api/v5/trade/order, cancel-order, amend-order, cancel-batch-orders
    GET  /api/v5/trade/order?instId=&clOrdId=|ordId=, orders-pending, fills
    GET  /api/v5/account/balance, /api/v5/public/time

Signed requests (pipeline/venues/okx/orders.py): OK-ACCESS-KEY names the account (50111 unknown),
OK-ACCESS-PASSPHRASE must be its passphrase (50105), OK-ACCESS-TIMESTAMP an ISO time within 30 s
of the server's (50112 malformed, 50102 expired), OK-ACCESS-SIGN the base64 HMAC-SHA256 of
timestamp + METHOD + path (+ ?query) + body exactly as received (50113). `x-simulated-trading`
(OKX demo trading) is accepted ("0" or "1") and counted.

Idempotency: a clOrdId is used once per account: a second order with it is refused 51016 whatever
the first one's state, so a resent request can never make a second order. Per-order failures are
sCode / sMsg inside `data` (code "1" when all failed), as OKX does. Rate limits per account and
endpoint (OKX's, requests per 2 s): past them 429 code 50011.

Faults (the Binance side's request faults, pipeline/sim/faults.py, act here too): delay (answers
late), http_5xx (the order executes, the answer is 5xx 50001, late_ms after), force_429
(429 50011), force_1021 (50102 timestamp expired).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Callable

import orjson
from aiohttp import web

from pipeline.sim.accounts import Account
from pipeline.sim.errors import ApiError
from pipeline.sim.instruments import E8, fmt8
from pipeline.venues.okx import orders as ox

log = logging.getLogger(__name__)

EXPIRY_MS = 30_000
_TYPES = {"limit": ("LIMIT", "GTC"), "ioc": ("LIMIT", "IOC"), "fok": ("LIMIT", "FOK"),
          "market": ("MARKET", ""), "post_only": ("LIMIT_MAKER", "")}
_STATE = {"NEW": "live", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled",
          "CANCELED": "canceled", "EXPIRED": "canceled", "REJECTED": "canceled"}
# Binance-side engine errors → OKX sCodes
_CODES = {-2010: ox.INSUFFICIENT, -1013: ox.PARAM_ERROR, -1121: ox.NO_INSTRUMENT,
          -2011: ox.CANCEL_FAILED, -2013: ox.NO_ORDER}


def dec(units: int) -> str:
    """1e-8 units → OKX's shortest decimal text ("0.002", "52000")."""
    t = fmt8(units).rstrip("0")
    return t[:-1] if t.endswith(".") else t


class OkxError(Exception):
    """A request-level failure: {"code", "msg", "data": []} with an HTTP status."""

    def __init__(self, code: str, msg: str = "", status: int = 200) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status = code, msg or ox.MESSAGES.get(code, ""), status


class OrderFail(Exception):
    """One order's failure: sCode / sMsg."""

    def __init__(self, code: str, msg: str = "") -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg = code, msg or ox.MESSAGES.get(code, "")


class Windows:
    """Requests per (account, endpoint) in OKX's 2 s windows."""

    def __init__(self, enabled: bool = True) -> None:
        self.hits: dict[tuple[str, str], collections.deque] = {}
        self.enabled = enabled              # [sim] okx_rate_limits

    def take(self, who: str, endpoint: str, n: int = 1) -> bool:
        if not self.enabled:
            return True
        limit, secs = ox.RATE_LIMITS.get(endpoint, (1000, 2.0))
        q = self.hits.setdefault((who, endpoint), collections.deque())
        now = time.monotonic()
        while q and q[0] <= now - secs:
            q.popleft()
        if len(q) + n > limit:
            return False
        q.extend([now] * n)
        return True


class OkxTrade:
    """The OKX trading endpoints of one Simulator, and the order logic the private WS shares."""

    def __init__(self, sim: Any, venue: Any) -> None:
        self.sim = sim
        self.venue = venue                          # pipeline.sim.okx.OkxVenue (inst ↔ symbol)
        self.windows = Windows(getattr(sim.cfg, "okx_rate_limits", True))
        self.meta: dict[int, tuple[str, str]] = {}  # sim order id → (ordType, tgtCcy)
        self.used_cids: dict[str, set[str]] = {}    # api key → every clOrdId of a kept order
        self.requests = 0
        sim.engine.on_retire.append(self._retired)  # bounded history (accounts.Retention)
        self.simulated = 0                          # requests with x-simulated-trading: 1

    def _retired(self, acct: Account, orders: list) -> None:
        """Final orders the account's history dropped: their metadata and clOrdIds go too (a
        clOrdId is refused as a duplicate while its order is kept)."""
        used = self.used_cids.get(acct.api_key)
        for o in orders:
            self.meta.pop(o.order_id, None)
            if used is not None:
                used.discard(o.client_id)

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post(ox.ORDER_PATH, self._h(self.place, ox.ORDER_PATH + " POST", order=True))
        r.add_post(ox.CANCEL_PATH, self._h(self.cancel, ox.CANCEL_PATH))
        r.add_post(ox.AMEND_PATH, self._h(self.amend, ox.AMEND_PATH))
        r.add_post(ox.CANCEL_BATCH_PATH, self._h(self.cancel_batch, ox.CANCEL_BATCH_PATH))
        r.add_get(ox.ORDER_PATH, self._h(self.get_order, ox.ORDER_PATH + " GET"))
        r.add_get(ox.PENDING_PATH, self._h(self.pending, ox.PENDING_PATH))
        r.add_get(ox.FILLS_PATH, self._h(self.fills, ox.FILLS_PATH))
        r.add_get(ox.BALANCE_PATH, self._h(self.balance, ox.BALANCE_PATH))
        r.add_get(ox.TIME_PATH, self.time)

    # ------------------------------------------------------------------ the common path
    async def time(self, request: web.Request) -> web.Response:
        return _json({"code": "0", "msg": "", "data": [{"ts": str(time.time_ns() // 1_000_000)}]})

    def _h(self, fn: Callable[[Account, Any], list], endpoint: str, *, order: bool = False):
        async def handler(request: web.Request) -> web.Response:
            return await self._serve(request, fn, endpoint, order)
        return handler

    async def _serve(self, request: web.Request, fn, endpoint: str, order: bool) -> web.Response:
        self.requests += 1
        faults = self.sim.req_faults
        late = 0.0
        status = 200
        # the whole request is in before the venue stalls: a delayed order still executes even
        # when the client has given up waiting (its outcome was unknown, not "not sent")
        body = await request.read() if request.body_exists else b""
        delay = faults.take_delay()
        if delay:
            await asyncio.sleep(delay)
        try:
            acct = self.auth(request, body)
            if faults.take("force_429_left") or not self.windows.take(acct.api_key, endpoint):
                raise OkxError(ox.RATE_LIMITED, status=429)
            if request.method == "POST":
                try:
                    args = orjson.loads(body) if body else {}
                except orjson.JSONDecodeError:
                    raise OkxError("50002", "Invalid JSON") from None
            else:
                args = dict(request.query)
            data = fn(acct, args)
            code = "0"
            if data and all(d.get("sCode", "0") != "0" for d in data) and "sCode" in data[0]:
                code = ox.ALL_FAILED
            elif any(d.get("sCode", "0") != "0" for d in data):
                code = ox.PARTIAL
            result: dict[str, Any] = {"code": code, "msg": "" if code == "0" else
                                      ("All operations failed" if code == "1"
                                       else "Bulk operation partially succeeded"), "data": data}
            if order and faults.take("http_5xx_left"):
                log.warning("fault http_5xx (okx): order executed, answering %d",
                            faults.http_5xx_status)
                status = faults.http_5xx_status
                late = faults.http_5xx_late_ms / 1000.0
                result = {"code": ox.SERVICE_UNAVAILABLE, "data": [],
                          "msg": ox.MESSAGES[ox.SERVICE_UNAVAILABLE]}
        except OkxError as exc:
            status = exc.status
            result = {"code": exc.code, "msg": exc.msg, "data": []}
            log.info("OKX %s %s -> %d %s", request.method, request.path, status, exc)
        except Exception:  # noqa: BLE001 - a bug must not take the venue down
            log.exception("OKX %s %s: internal error", request.method, request.path_qs)
            status = 500
            result = {"code": "50000", "msg": "Internal error", "data": []}
        if late:
            await asyncio.sleep(late)
        return _json(result, status)

    def auth(self, request: web.Request, body: bytes) -> Account:
        h = request.headers
        key, sign = h.get("OK-ACCESS-KEY", ""), h.get("OK-ACCESS-SIGN", "")
        ts, phrase = h.get("OK-ACCESS-TIMESTAMP", ""), h.get("OK-ACCESS-PASSPHRASE", "")
        for code, v in ((ox.KEY_EMPTY, key), (ox.SIGN_EMPTY, sign), (ox.TIMESTAMP_EMPTY, ts),
                        (ox.PASSPHRASE_EMPTY, phrase)):
            if not v:
                raise OkxError(code, status=401)
        acct = self.sim.accounts.get(key)
        if acct is None:
            raise OkxError(ox.INVALID_KEY, status=401)
        if not acct.passphrase_ok(phrase):
            raise OkxError(ox.PASSPHRASE_WRONG, status=401)
        sim_flag = h.get("x-simulated-trading")
        if sim_flag is not None:
            if sim_flag not in ("0", "1"):
                raise OkxError(ox.PARAM_ERROR, "Parameter x-simulated-trading error", 400)
            self.simulated += sim_flag == "1"
        try:
            ts_ms = ox.parse_iso_ms(ts)
        except ValueError:
            raise OkxError(ox.INVALID_TIMESTAMP, status=401) from None
        path = request.raw_path            # path + "?" + query exactly as sent
        if not acct.okx_sign_ok(ox.prehash(ts, request.method, path, body), sign):
            raise OkxError(ox.INVALID_SIGN, status=401)
        if self.sim.req_faults.take("force_1021_left") or \
                abs(time.time_ns() // 1_000_000 - ts_ms) > EXPIRY_MS:
            raise OkxError(ox.TIMESTAMP_EXPIRED, status=401)
        return acct

    # ------------------------------------------------------------------ orders
    def symbol(self, inst: Any) -> str:
        sym = self.venue.sym.get(inst) if isinstance(inst, str) else None
        if sym is None:
            raise OrderFail(ox.NO_INSTRUMENT)
        return sym

    def place(self, acct: Account, args: Any) -> list[dict]:
        items = args if isinstance(args, list) else [args]
        return [self.place_one(acct, a) for a in items]

    def place_one(self, acct: Account, a: Any) -> dict:
        cid = str(a.get("clOrdId", "")) if isinstance(a, dict) else ""
        try:
            if not isinstance(a, dict):
                raise OrderFail(ox.PARAM_ERROR, "Parameter args error")
            return self._place(acct, a, cid)
        except OrderFail as exc:
            return _result("", cid, exc.code, exc.msg)

    def _place(self, acct: Account, a: dict, cid: str) -> dict:
        sym = self.symbol(a.get("instId"))
        if a.get("tdMode") != "cash":
            raise OrderFail(ox.PARAM_ERROR, "Parameter tdMode error")
        side = a.get("side")
        if side not in ("buy", "sell"):
            raise OrderFail(ox.PARAM_ERROR, "Parameter side error")
        kind = _TYPES.get(a.get("ordType"))
        if kind is None:
            raise OrderFail(ox.PARAM_ERROR, "Parameter ordType error")
        if cid and (len(cid) > 32 or not cid.isalnum()):
            raise OrderFail(ox.PARAM_ERROR, "Parameter clOrdId error")
        used = self.used_cids.setdefault(acct.api_key, set())
        if cid and cid in used:
            raise OrderFail(ox.DUPLICATE_CLORDID)
        otype, tif = kind
        p: dict[str, str] = {"symbol": sym, "side": side.upper(), "type": otype,
                             "newOrderRespType": "FULL"}
        if tif:
            p["timeInForce"] = tif
        if cid:
            p["newClientOrderId"] = cid
        tgt = a.get("tgtCcy") or ("quote_ccy" if otype == "MARKET" and side == "buy"
                                  else "base_ccy")
        if tgt not in ("base_ccy", "quote_ccy"):
            raise OrderFail(ox.PARAM_ERROR, "Parameter tgtCcy error")
        sz = str(a.get("sz", ""))
        if otype == "MARKET":
            p["quoteOrderQty" if tgt == "quote_ccy" else "quantity"] = sz
        else:
            p["quantity"], p["price"] = sz, str(a.get("px", ""))
        try:
            order, _fills, _rt = self.sim.engine.place(acct, p)
        except ApiError as exc:
            code = _CODES.get(exc.code, ox.PARAM_ERROR)
            if exc.msg.startswith("Order would immediately"):
                code = ox.WOULD_TAKE
            elif exc.msg.startswith("Duplicate order"):
                code = ox.DUPLICATE_CLORDID
            raise OrderFail(code, exc.msg) from None
        if cid:
            used.add(cid)
        self.meta[order.order_id] = (a["ordType"], tgt if otype == "MARKET" else "")
        return _result(str(order.order_id), cid, "0", "Order placed", order.time_ms)

    def _find(self, acct: Account, a: Any):
        if not isinstance(a, dict):
            raise OrderFail(ox.PARAM_ERROR, "Parameter args error")
        sym = self.symbol(a.get("instId"))
        oid, cid = a.get("ordId"), a.get("clOrdId")
        if not oid and not cid:
            raise OrderFail(ox.PARAM_ERROR, "Either parameter ordId or clOrdId is required")
        order = None
        if oid:
            try:
                order = acct.orders.get(int(oid))
            except (TypeError, ValueError):
                raise OrderFail(ox.PARAM_ERROR, "Parameter ordId error") from None
        else:
            order = acct.by_client_id.get(str(cid))
        if order is None or order.symbol != sym:
            return None
        return order

    def cancel(self, acct: Account, args: Any) -> list[dict]:
        return [self.cancel_one(acct, a) for a in (args if isinstance(args, list) else [args])]

    def cancel_one(self, acct: Account, a: Any) -> dict:
        cid = str(a.get("clOrdId", "")) if isinstance(a, dict) else ""
        try:
            order = self._find(acct, a)
            if order is None or not order.is_open:
                raise OrderFail(ox.CANCEL_FAILED)
            self.sim.engine.cancel(acct, {"symbol": order.symbol, "orderId": str(order.order_id)})
        except OrderFail as exc:
            return _result(str(a.get("ordId", "")) if isinstance(a, dict) else "", cid,
                           exc.code, exc.msg)
        return _result(str(order.order_id), order.client_id, "0", "")

    def cancel_batch(self, acct: Account, args: Any) -> list[dict]:
        if not isinstance(args, list) or not 1 <= len(args) <= ox.MAX_BATCH:
            raise OkxError(ox.PARAM_ERROR, f"Parameter args error (1..{ox.MAX_BATCH} orders)")
        return [self.cancel_one(acct, a) for a in args]

    def amend(self, acct: Account, args: Any) -> list[dict]:
        return [self.amend_one(acct, a) for a in (args if isinstance(args, list) else [args])]

    def amend_one(self, acct: Account, a: Any) -> dict:
        from pipeline.sim.okx_amend import amend
        cid = str(a.get("clOrdId", "")) if isinstance(a, dict) else ""
        try:
            order = self._find(acct, a)
            if order is None or not order.is_open:
                raise OrderFail(ox.AMEND_FAILED)
            if self.venue.amend_fail > 0:       # okx_amend_fail: accepted, failed later
                self.venue.amend_fail -= 1
                self.sim.okx_private.amend_failed(acct, order, str(a.get("reqId", "")))
            else:
                amend(self.sim.engine, acct, order, a)
        except OrderFail as exc:
            return _result("", cid, exc.code, exc.msg)
        r = _result(str(order.order_id), order.client_id, "0", "")
        r["reqId"] = str(a.get("reqId", ""))
        return r

    # ------------------------------------------------------------------ queries
    def get_order(self, acct: Account, q: dict) -> list[dict]:
        try:
            order = self._find(acct, q)
        except OrderFail as exc:
            raise OkxError(exc.code, exc.msg) from None
        if order is None:
            raise OkxError(ox.NO_ORDER)
        return [self.order_json(acct, order)]

    def pending(self, acct: Account, q: dict) -> list[dict]:
        inst = q.get("instId")
        sym = self.symbol(inst) if inst else None
        return [self.order_json(acct, o) for o in acct.open_orders(sym)
                if o.symbol in self.venue.inst]

    def fills(self, acct: Account, q: dict) -> list[dict]:
        inst = q.get("instId")
        sym = self.symbol(inst) if inst else None
        oid = q.get("ordId")
        try:
            limit = max(1, min(100, int(q.get("limit") or 100)))
        except ValueError:
            raise OkxError(ox.PARAM_ERROR, "Parameter limit error") from None
        out = [t for t in acct.trades if (sym is None or t.symbol == sym)
               and t.symbol in self.venue.inst and (not oid or str(t.order_id) == oid)]
        return [self.fill_json(acct, t) for t in reversed(out[-limit:])]    # newest first

    def balance(self, acct: Account, q: dict) -> list[dict]:
        details = [{"ccy": a, "availBal": dec(acct.free.get(a, 0)),
                    "frozenBal": dec(acct.locked.get(a, 0)),
                    "cashBal": dec(acct.free.get(a, 0) + acct.locked.get(a, 0)),
                    "eq": dec(acct.free.get(a, 0) + acct.locked.get(a, 0))} for a in sorted(acct.free)]
        return [{"uTime": str(acct.update_ms or time.time_ns() // 1_000_000), "details": details}]

    # ------------------------------------------------------------------ JSON
    def order_json(self, acct: Account, o, last: dict | None = None) -> dict:
        otype, tgt = self.meta.get(o.order_id) or (_ord_type(o.type, o.tif), "")
        avg = dec(o.cum_quote * E8 // o.executed) if o.executed else ""
        mine = acct.trades_of.get(o.order_id, ())
        fee = sum(t.commission for t in mine)
        fee_ccy = mine[0].commission_asset if mine else ""
        d = {"instType": "SPOT", "instId": self.venue.inst[o.symbol], "ordId": str(o.order_id),
             "clOrdId": o.client_id if not o.client_id.startswith("sim") else "", "tag": "",
             "px": dec(o.price) if o.price else "", "sz": dec(o.qty or o.quote_qty),
             "ordType": otype, "side": o.side.lower(), "tdMode": "cash", "tgtCcy": tgt,
             "accFillSz": dec(o.executed), "avgPx": avg, "state": _STATE.get(o.status, "live"),
             "fee": dec(-fee) if fee else "0", "feeCcy": fee_ccy,
             "fillPx": "", "fillSz": "0", "tradeId": "", "fillTime": "", "fillFee": "0",
             "fillFeeCcy": "", "execType": "", "cancelSource": "",
             "cTime": str(o.time_ms), "uTime": str(o.update_ms or o.time_ms)}
        if mine:                  # as OKX: the order's last fill (a push overrides it below)
            t = mine[-1]
            d.update(tradeId=str(t.id), fillPx=dec(t.price), fillSz=dec(t.qty),
                     fillTime=str(t.time_ms), fillFee=dec(-t.commission) if t.commission else "0",
                     fillFeeCcy=t.commission_asset, execType="M" if t.is_maker else "T")
        if last:
            d.update(last)
        return d

    def fill_json(self, acct: Account, t) -> dict:
        o = acct.orders.get(t.order_id)
        return {"instType": "SPOT", "instId": self.venue.inst[t.symbol], "tradeId": str(t.id),
                "ordId": str(t.order_id), "clOrdId": o.client_id if o else "", "billId": str(t.id),
                "tag": "", "fillPx": dec(t.price), "fillSz": dec(t.qty),
                "side": "buy" if t.is_buyer else "sell", "execType": "M" if t.is_maker else "T",
                "fee": dec(-t.commission) if t.commission else "0",
                "feeCcy": t.commission_asset, "ts": str(t.time_ms), "fillTime": str(t.time_ms)}

    def state(self) -> dict:
        return {"requests": self.requests, "simulated_trading": self.simulated}


def _ord_type(otype: str, tif: str) -> str:
    if otype == "MARKET":
        return "market"
    if otype == "LIMIT_MAKER":
        return "post_only"
    return {"IOC": "ioc", "FOK": "fok"}.get(tif, "limit")


def _result(oid: str, cid: str, code: str, msg: str, ts: int | None = None) -> dict:
    return {"ordId": oid, "clOrdId": cid, "tag": "", "sCode": code, "sMsg": msg,
            "ts": str(ts if ts is not None else time.time_ns() // 1_000_000)}


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


__all__ = ["OkxTrade", "OkxError", "OrderFail", "dec"]
