"""Paper trading on live data: the relay tape ([sim] tape = "relay").

The simulator connects to a venue's public market-data streams (Binance wire format: combined
streams at `upstream_ws_url`, depth snapshots and the instrument listing at `upstream_rest_url`)
for its [sim].symbols and `upstream_channels`, and

- keeps one book per symbol from the upstream depth stream, synced exactly as the collector syncs
  its own (pipeline.venues.binance.book.BinanceBookSync over the simulator's books: snapshot from
  the upstream's /api/v3/depth, buffered diffs, gaps and crossed books resync);
- matches the run's orders against those books and trades (pipeline/sim/matching.py: market and
  crossing limit orders walk the upstream book, resting orders fill when an upstream trade trades
  through them), so a strategy trades on the venue's prices with fake money and no keys;
- republishes every upstream frame to its own market-data clients byte for byte (the stream name
  and payload are the upstream's; event times and ids too), so the run's collector sees exactly the
  prices the orders are matched against. A depth diff is republished only once the relay's book
  has applied it, so a client that syncs against the relay's /api/v3/depth gets a snapshot that
  lines up with the diffs it reads;
- lists the upstream's instruments (exchangeInfo filters: tick, step, min/max, notional), so the
  gateway's filters are the venue's.

The upstream connection reconnects with capped, jittered back-off; `upstream_silence_s` without a
frame counts as a dead connection. While the upstream is down the books are marked unsynced and
nothing is published: the run's collector turns that silence into STALE, and the gateway's
reference goes stale, as on a live feed. What the relay does not model: own orders take no
liquidity from the venue's book (no market impact) and queue position is not tracked (a resting
order fills when the venue trades through its price, not at it).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from decimal import Decimal
from typing import Callable

import orjson

from pipeline.records import Kind, Side
from pipeline.sim.book import Book
from pipeline.sim.instruments import E8, DecimalError, InstrumentSpec, parse8
from pipeline.sim.tape import Message, OnTrade, Tape
from pipeline.venues.binance.market import BinanceAdapter, BadMessage

log = logging.getLogger(__name__)

BIG = 10**18            # "no limit" for a filter the venue leaves at 0
SNAPSHOT_PACE_S = 0.5   # at most one depth snapshot per symbol this often (weight 50 each)
HEARTBEAT_S = 10.0      # our pings to the upstream; no pong within half of it ends the connection


class RelayError(ValueError):
    """The relay cannot start as configured (upstream unreachable, symbol not listed)."""


def units(x: float) -> int:
    """A venue decimal, as the collector's parsers give it (a correctly rounded float), → int units
    of 1e-8. Exact below 2e15 units (2e7 in price or size); above, through its shortest repr."""
    v = x * E8
    if v < 2e15:
        return int(round(v))
    return int((Decimal(repr(x)) * E8).to_integral_value())


def spec_of(fields: dict[str, str]) -> InstrumentSpec:
    """An instrument of the upstream's listing (pipeline.venues.binance.instruments.fields_of) →
    the simulator's instrument spec (filters the venue leaves at 0 or empty are unlimited)."""
    def dec(name: str, default: int) -> int:
        v = fields.get(name) or ""
        n = parse8(v) if v else 0
        return n if n > 0 else default
    tick = dec("tick", 1)
    step = dec("step", 1)
    return InstrumentSpec(fields["symbol"], fields.get("base", ""), fields.get("quote", ""),
                          tick, dec("min_price", tick), dec("max_price", BIG), step,
                          dec("min_qty", step), dec("max_qty", BIG), dec("min_notional", 0),
                          dec("max_notional", BIG),
                          0, step)


def load_specs(cfg, attempts: int = 3, fetch=None) -> list[InstrumentSpec]:
    """The instruments of [sim].symbols from the upstream's listing (GET /api/v3/exchangeInfo).
    Raises RelayError naming what is missing or why the upstream cannot be asked."""
    from pipeline.venues.binance import instruments as binance_instruments
    from pipeline.venues.listing import ListingError, VenueUnreachable
    import requests
    fetch = fetch or binance_instruments.fetch
    session = requests.Session()
    session.verify = cfg.upstream_ca_bundle or True           # TLS verified
    try:
        for attempt in range(attempts):
            try:
                found, missing = fetch(cfg.upstream_rest_url, list(cfg.symbols), timeout_s=10.0,
                                       session=session)
                break
            except VenueUnreachable as exc:
                if attempt == attempts - 1:
                    raise RelayError(f"relay: cannot load the instruments from the upstream "
                                     f"{cfg.upstream_rest_url}: {exc}") from None
                log.warning("relay: upstream listing: %s (retrying)", exc)
                time.sleep(1.0)
            except ListingError as exc:
                raise RelayError(f"relay: upstream {cfg.upstream_rest_url}: {exc}") from None
    finally:
        session.close()
    if missing:
        raise RelayError(f"relay: {', '.join(missing)}: not listed by the upstream "
                         f"{cfg.upstream_rest_url}")
    specs = []
    for sym in cfg.symbols:
        f = found[sym.upper()]
        if f.get("status") not in ("TRADING", ""):
            log.warning("relay: %s is %s on the upstream (not trading)", sym, f.get("status"))
        specs.append(spec_of(f))
    return specs


class _Books:
    """The book sync's view (its `st`) of the simulator's books: levels in int units, the book's
    update id is the last applied diff's `u`, `Book.synced` says whether it may be trusted."""

    def __init__(self, books: dict[int, Book]) -> None:
        self.books = books

    def depth_synced(self, sym: int) -> bool:
        return self.books[sym].synced

    def depth_last(self, sym: int) -> int:
        return self.books[sym].update_id

    def unsync(self, sym: int) -> None:
        self.books[sym].synced = False

    def load_book(self, sym: int, last_u: int, bids, asks) -> bool:
        b = self.books[sym]
        b.reset(last_u, ((units(p), units(q)) for p, q in bids),
                ((units(p), units(q)) for p, q in asks))
        b.synced = not (b.best_bid and b.best_ask and b.best_bid >= b.best_ask)
        return not b.synced

    def apply_diff(self, sym: int, bids, asks, last_u: int) -> bool:
        b = self.books[sym]
        b.apply_diff(last_u, last_u, [(units(p), units(q)) for p, q in bids],
                     [(units(p), units(q)) for p, q in asks])
        b.refresh_best()
        if b.best_bid and b.best_ask and b.best_bid >= b.best_ask:
            b.synced = False
            return True
        return False


class RelayTape(Tape):
    """Upstream frames in (`on_frame`), messages for the hub out; snapshots asked via `fetches`.
    No I/O here: `Upstream` drives it."""

    def __init__(self, cfg, specs: list[InstrumentSpec], on_trade: OnTrade | None = None) -> None:
        books = {s.symbol: Book(s, update_id=0) for s in specs}
        for b in books.values():
            b.synced = False
        super().__init__(books, on_trade)
        self.cfg = cfg
        self.ids = {sym: i + 1 for i, sym in enumerate(books)}
        self.by_id = {i: books[sym] for sym, i in self.ids.items()}
        self.adapter = BinanceAdapter(self.ids)
        self.st = _Books(self.by_id)
        self.syncs = {i: self.adapter.new_book_sync(i) for i in self.by_id}
        channels = list(cfg.upstream_channels)
        self.match_kind = int(Kind.TRADE if "trade" in channels else Kind.AGG_TRADE)
        self.upstream_streams = self.adapter.streams(list(books), channels)
        self.url = self.adapter.connect_url(cfg.upstream_ws_url, self.upstream_streams)
        self.fetches: set[int] = set()
        self.counters: Counter = Counter()
        self.samples: dict[str, str] = {}
        self.connected = False
        self.generation = 0              # connection number: a snapshot of an older one is dropped
        self._prefix: dict[str, bytes] = {}

    # ------------------------------------------------------------------ the Tape hooks
    def update_tracking(self) -> None:
        """Depth streams are the upstream's own: the books keep no diffs of their own."""
        for book in self.books.values():
            book.track(set())

    def flush_depth(self, key: str, event_ms: int, out: list[Message]) -> None:
        return None

    # ------------------------------------------------------------------ errors
    def error(self, kind: str, sample: bytes | str = b"") -> None:
        self.counters["err_" + kind] += 1
        if kind not in self.samples:
            s = sample.decode("utf-8", "replace") if isinstance(sample, bytes) else sample
            self.samples[kind] = s[:200]
            log.warning("relay: upstream %s (first of its kind; counted from now on): %r", kind,
                        self.samples[kind])

    # ------------------------------------------------------------------ connection life
    def connection_opened(self) -> None:
        self.generation += 1
        self.connected = True
        self.counters["connections"] += 1

    def connection_lost(self) -> None:
        """The books stop: unsynced until the next connection's snapshot; pending snapshots of
        this connection are dropped when they arrive."""
        self.connected = False
        now = time.time_ns()
        for sync in self.syncs.values():
            sync.start(self.st, now)
            sync.fetching = False
        self.fetches.clear()

    # ------------------------------------------------------------------ frames
    def on_frame(self, raw: bytes, local_ts: int, out: list[Message]) -> bool:
        """One upstream text frame (combined-stream form). Appends what to republish to `out`.
        Returns True for a venue shutdown notice (the connection ends soon: reconnect)."""
        self.counters["frames"] += 1
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.error("malformed_json", raw)
            return False
        if not isinstance(obj, dict):
            self.error("not_an_object", raw)
            return False
        stream, data = obj.get("stream"), obj.get("data")
        if not isinstance(stream, str):
            r = self.adapter.route(obj, local_ts)          # a control answer, an error
            if r.error:
                self.error(r.error, raw)
            elif r.control == "shutdown":
                return True
            return False
        try:
            r = self.adapter.route(data, local_ts)
        except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the relay
            self.error("parser_exception", f"{type(exc).__name__}: {raw[:150]!r}")
            return False
        if r.error:
            self.error(r.error, raw)
            ds = r.extra.get("depth_symbol")
            sid = self.ids.get(ds) if isinstance(ds, str) else None
            if sid is not None:                 # a diff we cannot read: that book is unknown now
                self._sync_out(self.syncs[sid].force_resync(self.st, None, local_ts, "bad_diff"),
                               sid)
            return False
        if r.control == "shutdown":
            self.counters["venue_shutdown"] += 1
            return True
        if r.depth is not None:
            d = r.depth
            book = self.by_id[d.symbol]
            was = book.synced
            res = self.syncs[d.symbol].on_diff(self.st, d)
            self._sync_out(res, d.symbol)
            if was and book.synced and "duplicate" not in res.events:
                sym = book.symbol
                if self.skip_depth.get(sym, 0) > 0:
                    self.skip_depth[sym] -= 1
                    log.warning("fault skip_depth: dropped a relayed depthUpdate of %s", sym)
                else:
                    self._publish(stream, data, raw, out)
            return False
        if r.records is not None and len(r.records):
            rec = r.records[0]
            if int(rec["kind"]) == self.match_kind:
                try:
                    price, qty = parse8(data["p"]), parse8(data["q"])
                except (DecimalError, KeyError, TypeError):
                    self.error("bad_decimal", raw)
                    return False
                book = self.by_id[int(rec["symbol"])]
                book.last_price = price
                self.counters["trades"] += 1
                self.on_trade(book, price, qty, int(rec["side"]) == int(Side.BUY))
            self._publish(stream, data, raw, out)
        return False

    def _publish(self, stream: str, data, raw: bytes, out: list[Message]) -> None:
        name = stream.encode()
        if name not in self.wanted:
            return
        p = self._prefix.get(stream)
        if p is None:
            p = self._prefix[stream] = b'{"stream":"' + name + b'","data":'
        if raw.startswith(p) and raw.endswith(b"}"):     # the upstream's own payload bytes
            out.append((name, raw[len(p):-1]))
        else:
            out.append((name, orjson.dumps(data)))

    def _sync_out(self, res, sym: int) -> None:
        for ev in res.events:
            self.counters["book_" + ev] += 1
            if ev in ("synced", "gap", "crossed", "snapshot_crossed", "bad_diff"):
                log.info("relay: %s book %s", self.by_id[sym].symbol, ev)
        if res.fetch:
            self.fetches.add(sym)

    # ------------------------------------------------------------------ snapshots
    def on_snapshot(self, sym: int, body: bytes, local_ts: int, generation: int) -> None:
        sync = self.syncs[sym]
        if generation != self.generation:
            self.counters["snapshot_dropped"] += 1      # asked on a connection that ended
            return
        try:
            snap = self.adapter.parse_snapshot(orjson.loads(body), sym, local_ts)
        except (orjson.JSONDecodeError, BadMessage, ValueError) as exc:
            self.error("bad_snapshot", body[:200] if body else str(exc))
            self.fetches.add(sym)
            return
        self.counters["snapshots"] += 1
        self._sync_out(sync.on_snapshot(self.st, snap), sym)

    def snapshot_failed(self, sym: int, why: str) -> None:
        self.error("snapshot_fetch", why)
        self.fetches.add(sym)

    def state(self) -> dict:
        return {"upstream_ws_url": self.cfg.upstream_ws_url,
                "upstream_rest_url": self.cfg.upstream_rest_url,
                "connected": self.connected, "connections": self.counters["connections"],
                "synced": {b.symbol: b.synced for b in self.books.values()},
                "counters": dict(self.counters)}


class Upstream:
    """The relay's I/O: one combined-stream WebSocket to the upstream (reconnecting) and its depth
    snapshots over REST; frames go through `tape.on_frame`, what it republishes to `publish`."""

    def __init__(self, tape: RelayTape, cfg, publish: Callable[[list[Message]], None]) -> None:
        self.tape = tape
        self.cfg = cfg
        self.publish = publish
        self._ssl = None
        if cfg.upstream_ws_url.startswith("wss") or cfg.upstream_rest_url.startswith("https"):
            from pipeline.gateway.tls import context
            self._ssl = context(cfg.upstream_ca_bundle)       # verified
        self._last_fetch: dict[int, float] = {}
        self._tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        import aiohttp
        from pipeline.collector.connection import Backoff
        backoff = Backoff(0.5, self.cfg.upstream_backoff_max_s)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0, connect=15.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                while True:
                    frames = self.tape.counters["frames"]
                    try:
                        why = await self._connection(session)
                    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                        why = f"{type(exc).__name__}: {exc}"
                        self.tape.counters["connect_failures"] += 1
                    was = self.tape.connected
                    self.tape.connection_lost()
                    if self.tape.counters["frames"] > frames:
                        backoff.reset()                 # that connection worked
                    delay = backoff.next_delay()
                    log.warning("relay: upstream %s %s; reconnecting in %.1f s",
                                "connection lost:" if was else "connect failed:", why, delay)
                    await asyncio.sleep(delay)
            finally:
                for t in list(self._tasks):
                    t.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, session) -> str:
        import aiohttp
        tape = self.tape
        silence = self.cfg.upstream_silence_s or None
        kw = {"ssl": self._ssl} if tape.url.startswith("wss") else {}
        async with session.ws_connect(tape.url, heartbeat=HEARTBEAT_S, autoping=True,
                                      max_msg_size=1 << 24, compress=0, **kw) as ws:
            tape.connection_opened()
            log.info("relay: connected to the upstream (%d streams): %s",
                     len(tape.upstream_streams), tape.url[:200])
            out: list[Message] = []
            while True:
                try:
                    msg = await ws.receive(timeout=silence)
                except asyncio.TimeoutError:
                    tape.counters["silences"] += 1
                    return f"no frame for {silence:g} s"
                if msg.type == aiohttp.WSMsgType.TEXT:
                    shutdown = tape.on_frame(msg.data.encode(), time.time_ns(), out)
                    if out:
                        self.publish(out)
                        out.clear()
                    if tape.fetches:
                        self._spawn_fetches(session)
                    if shutdown:
                        return "the venue announced its shutdown"
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    tape.error("binary_frame", msg.data[:200])
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                  aiohttp.WSMsgType.CLOSED):
                    return f"closed by the upstream ({ws.close_code})"
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    return f"read error: {ws.exception()}"

    def _spawn_fetches(self, session) -> None:
        for sym in sorted(self.tape.fetches):
            t = asyncio.create_task(self._snapshot(session, sym, self.tape.generation))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        self.tape.fetches.clear()

    async def _snapshot(self, session, sym: int, generation: int) -> None:
        import aiohttp
        tape = self.tape
        wait = self._last_fetch.get(sym, 0.0) + SNAPSHOT_PACE_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_fetch[sym] = time.monotonic()
        name = tape.by_id[sym].symbol
        url = tape.adapter.snapshot_url(self.cfg.upstream_rest_url, name,
                                        self.cfg.upstream_snapshot_limit)
        kw = {"ssl": self._ssl} if url.startswith("https") else {}
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=10.0), **kw) as r:
                body = await r.read()
                status = r.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            status, body = 0, f"{type(exc).__name__}: {exc}".encode()
        if generation != tape.generation:
            tape.counters["snapshot_dropped"] += 1
            return
        if status != 200:
            tape.snapshot_failed(sym, f"GET {url}: HTTP {status} {body[:200]!r}")
            await asyncio.sleep(1.0 if status not in (418, 429) else 10.0)
        else:
            tape.on_snapshot(sym, body, time.time_ns(), generation)
        if tape.fetches and generation == tape.generation:
            self._spawn_fetches(session)
