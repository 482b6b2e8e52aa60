"""The simulator: one aiohttp server on one port for REST, market data, the WebSocket API and the
control endpoints, plus the tape publisher.

    /api/v3/...              REST (rest.py)
    /ws, /ws/<streams>       raw market-data streams (marketdata.py)
    /stream?streams=a/b      combined streams
    /ws-api/v3               WebSocket API (ws_api.py)
    /api/v5/..., /ws/v5/...  OKX v5: public market data (okx.py), trading REST (okx_trade.py),
                             private WebSocket with the orders channel (okx_private.py)
    /_sim/state     GET      balances, orders (open and all), fills, books, connections (tests)
    /_sim/fault     POST     {"fault": name, ...params}   (faults.py)
    /_sim/tape      POST     {"action": "pause" | "resume"} or {"rate": N}
    /_sim/trade     POST     {"symbol", "price", "qty", "side"}: a tape trade on cue

Control endpoints answer loopback peers only.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiohttp import web

from pipeline.config import SimConfig
from pipeline.sim import faults as faultmod
from pipeline.sim.accounts import Account, RateLimiter, Retention
from pipeline.sim.faults import FaultError, RequestFaults
from pipeline.sim.instruments import RATE_LIMITS_JSON, DecimalError, fmt8, parse8
from pipeline.sim.marketdata import Hub
from pipeline.sim.okx import OkxVenue
from pipeline.sim.matching import Engine
from pipeline.sim.rest import RestApi
from pipeline.sim.tape import Message, ReplayTape, SyntheticTape, Tape
from pipeline.sim.ws_api import WsApi

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "::1", "localhost")
MAX_BATCH = 4096


class Simulator:
    """Owns the state; `app()` builds the aiohttp application."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.accounts: dict[str, Account] = {
            a.api_key: Account(a, uid=1000 + i, retention=Retention.of(cfg)) for i, a in enumerate(cfg.accounts)}
        self.tape: Tape
        if cfg.tape == "replay":
            self.tape = ReplayTape(cfg.replay_files, loop=cfg.replay_loop,
                                   rebase_time=cfg.replay_rebase_time)
        elif cfg.tape == "relay":              # paper trading on a venue's live streams
            from pipeline.sim.relay import RelayTape, load_specs
            self.tape = RelayTape(cfg, load_specs(cfg))
        else:
            self.tape = SyntheticTape(cfg.symbols, cfg.seed, cfg.depth_levels, bursts=cfg.bursts,
                                      volatility=cfg.volatility, trend_s=cfg.trend_s)
        self.books = self.tape.books
        self.engine = Engine(self.books, self.accounts, cfg.commission_rate)
        self.tape.on_trade = self.engine.on_tape_trade
        self.limiter = RateLimiter(cfg.weight_limit_1m, cfg.order_limit_10s, cfg.order_limit_1d,
                                   cfg.ban_s)
        self.req_faults = RequestFaults()
        self.hub = Hub(self.tape.wanted, incoming_per_s=cfg.ws_incoming_per_s,
                       max_streams=cfg.max_streams)
        self.hub.on_change = self.tape.update_tracking
        self.rest = RestApi(self)
        self.ws_api = WsApi(self)
        self.okx = OkxVenue(self)      # OKX v5 public endpoint, same tape (pipeline/sim/okx.py)
        # OKX v5 trading on the same engine and accounts: private REST and WebSocket
        from pipeline.sim.okx_private import OkxPrivate
        from pipeline.sim.okx_trade import OkxTrade
        self.okx_trade = OkxTrade(self, self.okx)
        self.okx_private = OkxPrivate(self, self.okx, self.okx_trade)
        self.rate = float(cfg.rate)
        self.paused = cfg.paused
        self.started = time.monotonic()
        self.generated = 0
        self._tasks: list[asyncio.Task] = []
        self._pending_shutdown = False

    def rate_limits_json(self) -> list[dict]:
        c = self.cfg
        return RATE_LIMITS_JSON(c.weight_limit_1m, c.order_limit_10s, c.order_limit_1d)

    # ------------------------------------------------------------------ app

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        self.rest.add_routes(app)
        self.okx.add_routes(app)
        self.okx_trade.add_routes(app)
        self.okx_private.add_routes(app)
        r = app.router
        r.add_get("/ws", self._md)
        r.add_get("/ws/{streams:.*}", self._md)
        r.add_get("/stream", self._md)
        r.add_get("/ws-api/v3", self.ws_api.handle)
        r.add_get("/_sim/state", self._state)
        r.add_post("/_sim/fault", self._fault)
        r.add_post("/_sim/tape", self._tape_ctl)
        r.add_post("/_sim/trade", self._trade)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _md(self, request: web.Request) -> web.StreamResponse:
        return await self.hub.handle(request, self.cfg)

    async def _on_startup(self, app: web.Application) -> None:
        self.started = time.monotonic()
        if self.cfg.tape == "relay":
            from pipeline.sim.relay import Upstream
            up = Upstream(self.tape, self.cfg, self._publish)   # type: ignore[arg-type]
            self._tasks.append(asyncio.create_task(up.run(), name="sim-relay"))
        else:
            self._tasks.append(asyncio.create_task(self._publisher(), name="sim-publisher"))
        for f in self.cfg.faults:
            self._tasks.append(asyncio.create_task(self._scheduled(f.fault, f.at_s, dict(f.params))))

    async def _on_shutdown(self, app: web.Application) -> None:
        """serverShutdown to every market-data client, then close every WebSocket."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.hub.broadcast_shutdown()
        conns = list(self.hub.conns.values()) + list(self.ws_api.conns.values())
        await asyncio.gather(*(c.close(1001, b"server shutdown") for c in conns),
                             return_exceptions=True)

    async def _scheduled(self, name: str, at_s: float, params: dict) -> None:
        await asyncio.sleep(at_s)
        try:
            await self.apply_fault(name, params)
        except FaultError as exc:
            log.error("configured fault %r: %s", name, exc)

    # ------------------------------------------------------------------ the tape publisher

    def _publish(self, out: list[Message]) -> None:
        self.generated += len(out)
        self.hub.publish(out)
        self.okx.publish(out)

    async def _publisher(self) -> None:
        loop = asyncio.get_running_loop()
        tape = self.tape
        hub = self.hub
        synthetic = isinstance(tape, SyntheticTape)
        last = loop.time()
        budget = 0.0
        next_100 = last + 0.1
        next_1000 = last + 1.0
        replay_t0: float | None = None
        out: list[Message] = []
        while True:
            try:
                now = loop.time()
                ms = time.time_ns() // 1_000_000
                dt = now - last
                last = now
                if not self.paused:
                    if synthetic:
                        assert isinstance(tape, SyntheticTape)
                        budget += self.rate * dt * tape.rate_multiplier(dt)
                        if budget > self.rate * 0.25 + MAX_BATCH:   # fell behind: do not catch up
                            budget = float(MAX_BATCH)
                        n = int(min(budget, MAX_BATCH))
                        # generate in rounds of >= 2 ms of tape (fewer, larger batches: the
                        # per-batch costs - wake-ups, one socket write per connection - amortise)
                        if n > 0 and n >= min(256.0, self.rate * 0.002):
                            budget -= tape.generate(n, ms, out)
                    else:
                        assert isinstance(tape, ReplayTape)
                        replay_t0 = self._replay(tape, now, ms, replay_t0, out)
                elif replay_t0 is not None:
                    replay_t0 += dt          # a paused replay's clock stops too
                if now >= next_100:
                    next_100 = now + 0.1
                    tape.flush_depth("100ms", ms, out)
                if now >= next_1000:
                    next_1000 = now + 1.0
                    tape.flush_depth("1000ms", ms, out)
                if out:
                    self.generated += len(out)
                    hub.publish(out)
                    self.okx.publish(out)
                    out.clear()
                    await asyncio.sleep(0)
                else:
                    await asyncio.sleep(self._idle_sleep())
            except asyncio.CancelledError:
                return
            except Exception:  # noqa: BLE001 - the tape must keep going; log the bug
                log.exception("tape publisher error")
                out.clear()
                await asyncio.sleep(0.01)

    def _idle_sleep(self) -> float:
        if self.paused or isinstance(self.tape, ReplayTape):
            return 0.002
        return min(0.01, max(0.001, 1.0 / self.rate))

    def _replay(self, tape: ReplayTape, now: float, ms: int, t0: float | None,
                out: list[Message]) -> float | None:
        speed = self.cfg.replay_speed
        n = 0
        while n < MAX_BATCH:
            ts = tape.peek_ts()
            if ts is None:
                return t0
            if t0 is None:
                t0 = now
            assert tape.first_ts is not None
            if speed > 0 and (ts - tape.first_ts) / 1e9 / speed > now - t0:
                break
            n += tape.step(ms, out)
        return t0

    # ------------------------------------------------------------------ faults

    async def apply_fault(self, name: str, params: dict[str, Any]) -> dict:
        if name.startswith("okx_"):
            try:
                return await self.okx.fault(name, params)
            except ValueError as exc:
                raise FaultError(str(exc)) from None
        params = faultmod.validate(name, params)
        log.warning("fault %s %s", name, params)
        target = params.get("target", "all")
        md = list(self.hub.conns.values())
        api = list(self.ws_api.conns.values())
        conns = (md if target in ("all", "md") else []) + (api if target in ("all", "ws_api") else [])
        if name == "drop":
            for c in conns:
                c.abort()
            return {"dropped": len(conns)}
        if name == "silence":
            if "target" not in params:
                conns = md
            until = time.monotonic() + float(params.get("seconds", 5))
            for c in conns:
                c.silent_until = until
            return {"silenced": len(conns)}
        if name in ("malformed", "truncated", "duplicate"):
            n = int(params.get("count", 1))
            for c in md:
                c.spoil(**{name: n})
            return {"connections": len(md)}
        if name == "skip_depth":
            syms = [params["symbol"].upper()] if "symbol" in params else list(self.books)
            for s in syms:
                if s not in self.books:
                    raise FaultError(f"skip_depth: unknown symbol {s!r}")
                self.tape.skip_depth[s] = self.tape.skip_depth.get(s, 0) + int(params.get("count", 1))
            return {"symbols": syms}
        if name == "force_418":
            for ip in set(self.limiter.ips) | {"127.0.0.1", "::1"}:
                self.limiter.force_418(ip, float(params.get("seconds", 120)))
            return {"banned_s": float(params.get("seconds", 120))}
        if name == "clock_skew":
            faultmod.CLOCK.behind_ms = float(params.get("behind_ms", 1500))
            return {"behind_ms": faultmod.CLOCK.behind_ms}
        if name == "flap":
            self.hub.flap_until = time.monotonic() + float(params.get("seconds", 10))
            self.hub.flap_after_s = float(params.get("after_ms", 50)) / 1000.0
            for c in md:
                c.abort()
            return {"until_s": float(params.get("seconds", 10)), "dropped": len(md)}
        if name == "server_shutdown":
            self.hub.broadcast_shutdown()
            grace = float(params.get("grace_s", 0.5))
            self._tasks.append(asyncio.create_task(self._close_md_later(grace)))
            return {"connections": len(md)}
        if name == "clear":
            faultmod.CLOCK.behind_ms = 0.0
            self.hub.flap_until = 0.0
            self.tape.skip_depth.clear()
            for c in md + api:
                c.silent_until = 0.0
                c.malformed = c.truncated = c.duplicate = 0
                c.faulty = False
            for st in self.limiter.ips.values():
                st.banned_until = st.limited_until = 0.0
        self.req_faults.apply(name, params)
        return {}

    async def _close_md_later(self, grace: float) -> None:
        await asyncio.sleep(grace)
        for c in list(self.hub.conns.values()):
            await c.close(1001, b"server shutdown")

    # ------------------------------------------------------------------ control endpoints

    @staticmethod
    def _loopback(request: web.Request) -> None:
        if request.remote not in LOOPBACK:
            raise web.HTTPForbidden(text="control endpoints answer loopback only")

    async def _json_body(self, request: web.Request) -> dict:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return body

    async def _fault(self, request: web.Request) -> web.Response:
        self._loopback(request)
        body = await self._json_body(request)
        name = body.pop("fault", None)
        if not isinstance(name, str):
            return web.json_response({"error": "missing 'fault'"}, status=400)
        try:
            info = await self.apply_fault(name, body)
        except FaultError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True, "fault": name, **info})

    async def _tape_ctl(self, request: web.Request) -> web.Response:
        self._loopback(request)
        body = await self._json_body(request)
        action = body.get("action")
        if action == "pause":
            self.paused = True
        elif action == "resume":
            self.paused = False
        elif action is not None:
            return web.json_response({"error": f"unknown action {action!r}"}, status=400)
        if "rate" in body:
            r = body["rate"]
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not 1 <= r <= 200_000:
                return web.json_response({"error": "rate must be a number in 1..200000"}, status=400)
            self.rate = float(r)
        return web.json_response({"ok": True, "paused": self.paused, "rate": self.rate})

    async def _trade(self, request: web.Request) -> web.Response:
        self._loopback(request)
        body = await self._json_body(request)
        sym = str(body.get("symbol", "")).upper()
        if sym not in self.books:
            return web.json_response({"error": f"unknown symbol {sym!r}"}, status=400)
        side = body.get("side", "SELL")
        if side not in ("BUY", "SELL"):
            return web.json_response({"error": "side must be BUY or SELL"}, status=400)
        try:
            price, qty = parse8(str(body["price"])), parse8(str(body["qty"]))
        except (KeyError, DecimalError) as exc:
            return web.json_response({"error": f"price and qty must be decimals: {exc}"}, status=400)
        if price <= 0 or qty <= 0:
            return web.json_response({"error": "price and qty must be > 0"}, status=400)
        out: list[Message] = []
        fills_before = self.engine.fills
        self.tape.inject_trade(sym, price, qty, side == "BUY", time.time_ns() // 1_000_000, out)
        self.hub.publish(out)
        self.okx.publish(out)
        return web.json_response({"ok": True, "fills": self.engine.fills - fills_before})

    async def _state(self, request: web.Request) -> web.Response:
        self._loopback(request)
        return web.Response(body=orjson.dumps(self.state()), content_type="application/json")

    def state(self) -> dict:
        return {
            "accounts": {
                key: {
                    "balances": {a: {"free": fmt8(acct.free.get(a, 0)),
                                     "locked": fmt8(acct.locked.get(a, 0))} for a in sorted(acct.free)},
                    "open_orders": [o.details() for o in acct.open_orders()],
                    # every one still kept (accounts.Retention: open ones always)
                    "orders": [o.details() for o in acct.orders.values()],
                    "fills": [t.json() for t in acct.trades],
                    "orders_pruned": acct.orders_pruned, "fills_pruned": acct.trades_pruned,
                    "user_stream_listeners": len(acct.listeners),
                } for key, acct in self.accounts.items()},
            "books": {s: {"lastUpdateId": b.update_id, "bestBid": fmt8(b.best_bid),
                          "bestAsk": fmt8(b.best_ask), "lastPrice": fmt8(b.last_price),
                          "synced": b.synced} for s, b in self.books.items()},
            "tape": {"kind": self.cfg.tape, "paused": self.paused, "rate": self.rate,
                     "done": bool(getattr(self.tape, "done", False)),
                     "generated": self.generated, "published": self.hub.published,
                     "streams": self.tape.stream_names()},
            "connections": {"md": len(self.hub.conns), "ws_api": len(self.ws_api.conns)},
            "relay": self.tape.state() if self.cfg.tape == "relay" else None,  # type: ignore[attr-defined]
            "okx": {**self.okx.state(), "trade": self.okx_trade.state(),
                    "private": self.okx_private.state()},
            "md_conns": [{"id": c.id, "queued": len(c.q), "sent": c.sent, "streams": len(c.streams),
                          "combined": c.combined, "pings_sent": c.pings_sent,
                          "pongs_matched": c.pongs_matched,
                          "spoil_pending": c.malformed + c.truncated + c.duplicate}
                         for c in self.hub.conns.values()],
            "faults": self.req_faults.state(),
            "clock": faultmod.CLOCK.state(),
            "md_stats": {"connect_attempts": len(self.hub.connect_times),
                         "connect_times": list(self.hub.connect_times),
                         "max_incoming_1s": self.hub.max_incoming_1s,
                         "rate_disconnects": self.hub.rate_disconnects},
            "rest_requests": self.rest.requests,
            "uptime_s": time.monotonic() - self.started,
        }
