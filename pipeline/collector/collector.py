"""The collector: one venue feed over one or more WebSocket connection groups, into a sink (the
tick ring's writer). Generic: the venue is an adapter (pipeline.venues.base.VenueAdapter).

States per connection group: DOWN (waiting out the back-off) → UP (active connection) ⇄ SWITCHING
(a standby connection opened, make-before-break). Rules applied here:

  * reconnect with capped exponential back-off plus jitter; the back-off resets once a new
    connection has delivered data; every attempt (reconnect or make-before-break) also fits the
    venue's connection cap (`rules.max_connects` per `connect_window_s`, or [collector]
    connect_limit / connect_window_s): over it, the attempt waits for the window, so a server that
    drops every connection right after its first frames never earns a ban;
  * a stale-feed watchdog: no byte for `stale_after_s` → STALE records for the group's symbols,
    drop the connection, reconnect; a lost connection also publishes STALE at once;
  * server pings are answered with pongs (websocket-client frames them), paced with every other
    outgoing message by a token bucket at the venue's limit; SUBSCRIBE messages for streams beyond
    the connect URL are paced the same way;
  * connection lifetime and the venue's shutdown notice → make-before-break: the new connection is
    opened and subscribed while the old one keeps delivering; the new one's bytes are held back;
    after `overlap_s` the old one is closed (its frames are read up to its close frame) and then
    the held bytes are decoded. The per-symbol id filters and the depth sequence check drop what
    both connections delivered, so nothing is lost and nothing is published twice;
  * depth snapshots are fetched on a worker thread when a book sync asks for one.

Stopping: `stop()` only sets a flag (signal-handler safe); `close()` closes connections, the
snapshot pool and flushes recordings. Both idempotent.
"""
from __future__ import annotations

import importlib
import logging
import select
import ssl
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable
from urllib.parse import urlsplit

import numpy as np
import requests

from pipeline.collector.connection import (AttemptWindow, Backoff, ConnectionClosed, RateLimiter,
                                            WsConnection)
from pipeline.venues.binance import wsdecode_py as K
from pipeline.collector.feed import Feed
from pipeline.config import CollectorConfig
from pipeline.logs import event_log
from pipeline.records import FLAG_SYNTHETIC, TICK_DTYPE, Kind, Venue
from pipeline.registry import SymbolRegistry
from pipeline.venueclosure import SharedClosure

log = logging.getLogger(__name__)
SNAPSHOT_MIN_INTERVAL_S = 0.25


# [collector].venue → the adapter class (module, name): the one place venues are listed.
ADAPTERS = {
    "binance": ("pipeline.venues.binance.market", "BinanceAdapter"),
    "okx": ("pipeline.venues.okx.adapter", "OkxAdapter"),
}


def make_adapter(cfg: CollectorConfig, registry: SymbolRegistry):
    venue = Venue[cfg.venue_id]
    syms = {s.upper(): registry.id(venue, s) for s in cfg.symbols}
    if cfg.venue not in ADAPTERS:
        raise ValueError(f"no adapter for venue {cfg.venue!r}")
    module, name = ADAPTERS[cfg.venue]
    return getattr(importlib.import_module(module), name)(syms, int(venue))


class RateLimited(Exception):
    """The venue's REST API said 429/418: no request before `wait_s` seconds."""

    def __init__(self, wait_s: float, msg: str, status: int = 429):
        super().__init__(msg)
        self.wait_s = wait_s
        self.status = status


class _Group:
    def __init__(self, streams: list[str], symbols: list[int], backoff: Backoff):
        self.streams = streams
        self.symbols = symbols
        self.backoff = backoff
        self.active: WsConnection | None = None
        self.standby: WsConnection | None = None
        self.standby_since = 0.0
        self.next_connect_at = 0.0
        self.next_switch_at = 0.0
        self.stale = False
        self.got_data = False


class Collector:
    def __init__(self, cfg: CollectorConfig, sink: Callable[[np.ndarray], object], *,
                 registry: SymbolRegistry | None = None, adapter=None,
                 raw_sink: Callable[[bytes], object] | None = None,
                 heartbeat: Callable[[], object] | None = None,
                 wall_ns=time.time_ns, mono=time.monotonic):
        self.cfg = cfg
        self.sink = sink
        if adapter is None and registry is None:   # the run's instrument cache (or the venue)
            from pipeline.config import PipelineConfig
            from pipeline.instruments import collector_source, registry_for, run_dir_of
            registry = registry_for({collector_source(cfg): {s.upper() for s in cfg.symbols}},
                                    run_dir_of(PipelineConfig()))
        self.adapter = adapter or make_adapter(cfg, registry)
        self.rules = self.adapter.rules
        self.wall_ns = wall_ns
        self.mono = mono
        self.heartbeat = heartbeat
        names = [s.upper() for s in cfg.symbols]
        ids = {s: self.adapter.decoder_symbols()[s.encode()] for s in names}
        depth = ([ids[s] for s in names]
                 if any(self.adapter.is_depth_channel(c) for c in cfg.channels) else [])
        self.feed = Feed(self.adapter, sink, depth_symbols=depth, backend=cfg.backend,
                         max_message=cfg.max_message, raw_sink=raw_sink)
        self.names = {i: s for s, i in ids.items()}
        streams = self.adapter.streams(names, cfg.channels)
        per = self.rules.max_streams_per_conn
        self.groups: list[_Group] = []
        for i in range(0, len(streams), per):
            chunk = streams[i:i + per]
            in_chunk = {self.adapter.stream_symbol(st).upper() for st in chunk}
            gsyms = sorted({ids[s] for s in names if s in in_chunk})
            self.groups.append(_Group(chunk, gsyms, Backoff(cfg.backoff_initial_s,
                                                            cfg.backoff_max_s,
                                                            cfg.backoff_jitter)))
        self.lifetime = cfg.lifetime_s or self.rules.max_lifetime_s
        self.counters: Counter = Counter()
        self.outq: dict[int, deque] = {}          # id(conn) → queued (kind, payload)
        self.limiters: dict[int, RateLimiter] = {}
        limit = cfg.connect_limit or self.rules.max_connects
        window = cfg.connect_window_s or self.rules.connect_window_s
        self.connect_window = (AttemptWindow(limit, window, clock=mono)
                               if limit and window else None)
        self._pacing = False
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapshot")
        self._tls = threading.local()          # one requests.Session per snapshot thread
        self._sessions: list[requests.Session] = []
        self.fetches: dict[Future, int] = {}
        # the venue limits REST weight per IP: a 429/418 told to another process of the run (the
        # gateway) closes the host to our snapshots too, and ours to it (pipeline/venueclosure.py)
        self.closure = SharedClosure(urlsplit(cfg.rest_url).netloc)
        self._closure_seen = 0.0
        self.fetch_not_before: dict[int, float] = {}
        self._stop = False
        self._closed = False
        self._started = False
        self._last_hb = 0.0
        self._pinged: dict[int, float] = {}
        # client keep-alive: ping after this long without a byte in or a ping out; at most half
        # the stale window, so the reply lands before the watchdog fires (no reply → it fires)
        self.ping_idle_s = min(self.rules.client_ping_s or cfg.stale_after_s,
                               cfg.stale_after_s / 2)

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask run() to return (safe from a signal handler)."""
        self._stop = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for g in self.groups:
            for c in (g.active, g.standby):
                if c is not None:
                    c.send_close()
                    c.close()
                    self.feed.drop_decoder(c.decoder)
            g.active = g.standby = None
        self.pool.shutdown(wait=False, cancel_futures=True)
        for sess in self._sessions:
            sess.close()

    def __enter__(self) -> "Collector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def run(self, duration: float | None = None) -> None:
        end = None if duration is None else self.mono() + duration
        while not self._stop and (end is None or self.mono() < end):
            self.step(0.05)

    # ------------------------------------------------------------------ one iteration
    def step(self, timeout: float = 0.05) -> None:
        now = self.mono()
        if not self._started:
            self._started = True
            self.feed.start_books(self.wall_ns())
        for g in self.groups:
            if g.active is None and now >= g.next_connect_at:
                self._connect(g)
        conns = [(g, c) for g in self.groups for c in (g.active, g.standby) if c is not None]
        if conns:
            if any(isinstance(c.sock, ssl.SSLSocket) and c.sock.pending() for _, c in conns):
                timeout = 0.0                   # TLS already holds decrypted bytes
            try:
                ready, _, _ = select.select([c.sock for _, c in conns], [], [], timeout)
            except (OSError, ValueError):
                ready = [c.sock for _, c in conns]
            rs = set(map(id, ready))
            for g, c in conns:
                if c.sock is not None and (id(c.sock) in rs or (isinstance(c.sock, ssl.SSLSocket)
                                                                and c.sock.pending())):
                    self._service(g, c)
        else:
            time.sleep(timeout)
        self._timers()
        self._snapshots()

    # ------------------------------------------------------------------ connections
    def _url(self, g: _Group) -> str:
        return self.adapter.connect_url(self.cfg.ws_url, g.streams[:self._url_streams()])

    def _url_streams(self) -> int:
        """Streams that ride in the connect URL (the venue may take none: all subscribed)."""
        return self.cfg.url_streams_max if self.adapter.url_streams else 0

    def _beat(self) -> None:
        """Heartbeat now (before and during the steps that block: handshake, drain)."""
        if self.heartbeat is not None:
            self._last_hb = self.mono()
            self.heartbeat()

    def _open(self, g: _Group) -> WsConnection | None:
        self._beat()
        dec = self.feed.decoder()
        c = WsConnection(self._url(g), dec, connect_timeout=self.cfg.connect_timeout_s,
                         read_size=self.cfg.read_size, clock_wall=self.wall_ns,
                         clock_mono=self.mono)
        try:
            c.open()
        except Exception as exc:      # noqa: BLE001 — any handshake failure means "retry later"
            self._beat()
            self.counters["connect_failures"] += 1
            self.feed.drop_decoder(dec)
            event_log("CONNECT_FAILED", logging.WARNING, url=c.url[:120], error=exc,
                      failures=self.counters["connect_failures"])
            return None
        self._beat()
        self.counters["connects"] += 1
        self.limiters[id(c)] = RateLimiter(self.rules.max_outgoing_per_s,
                                         guard_s=self.cfg.send_guard_s)
        q = self.outq[id(c)] = deque()
        rest = g.streams[self._url_streams():]
        for msg in self.adapter.subscribe_messages(rest) if rest else ():
            q.append(("text", msg))
        return c

    def _pace(self) -> float:
        """0 if one more connection attempt fits the venue's cap (it is counted), else how long
        until one does."""
        w = self.connect_window
        if w is None:
            return 0.0
        wait = w.wait_s()
        if wait > 0:
            self.counters["connects_paced"] += 1
            if not self._pacing:
                self._pacing = True
                event_log("CONNECT_PACED", logging.WARNING, limit=w.limit, window_s=w.window_s,
                          wait_s=round(wait, 3))
            return wait
        self._pacing = False
        w.take()
        self.counters["connect_attempts"] += 1
        return 0.0

    def _connect(self, g: _Group) -> None:
        wait = self._pace()
        if wait > 0:
            g.next_connect_at = self.mono() + wait
            return
        c = self._open(g)
        if c is None:
            g.next_connect_at = self.mono() + g.backoff.next_delay()
            return
        g.active = c
        g.got_data = False
        again = self.counters["connects"] > len(self.groups)
        if again:
            self.counters["reconnects"] += 1
        event_log("RECONNECTED" if again else "CONNECTED", url=c.url[:120],
                  reconnects=self.counters["reconnects"])

    def _stale(self, g: _Group, why: str) -> None:
        if g.stale:
            return
        g.stale = True
        self.counters["stale"] += 1
        ts = self.wall_ns()
        r = np.zeros(max(1, len(g.symbols)), dtype=TICK_DTYPE)
        r["kind"] = Kind.STALE
        r["venue"] = self.adapter.venue
        r["flags"] = FLAG_SYNTHETIC
        r["local_ts"] = ts
        if g.symbols:
            r["symbol"] = g.symbols
        self.sink(r)
        event_log("STALE", logging.WARNING, why=why, symbols=len(g.symbols))

    def _forget(self, c: WsConnection) -> None:
        self._pinged.pop(id(c), None)
        c.close()
        self.feed.drop_decoder(c.decoder)
        self.outq.pop(id(c), None)
        self.limiters.pop(id(c), None)

    def _lost(self, g: _Group, c: WsConnection, why: str) -> None:
        self._forget(c)
        if c is g.standby:
            g.standby = None
            g.next_switch_at = self.mono() + g.backoff.next_delay()
            return
        if c is not g.active:
            return
        self.counters["disconnects"] += 1
        event_log("DISCONNECTED", logging.WARNING, why=why, standby=g.standby is not None,
                  disconnects=self.counters["disconnects"])
        if g.standby is not None:
            g.active, g.standby = g.standby, None
            self._release(g, g.active)
            self.counters["switches"] += 1
            return
        g.active = None
        self._stale(g, why)
        g.next_connect_at = self.mono() + g.backoff.next_delay()

    def _service(self, g: _Group, c: WsConnection) -> None:
        try:
            n = c.read()
        except ConnectionClosed as exc:
            if c.held is None:
                self._handle(g, c, self.feed.pump(c.decoder))
            self._lost(g, c, str(exc))
            return
        if c.held is not None or not n:
            return
        if c is g.active:
            if g.stale:
                g.stale = False
            if not g.got_data:
                g.got_data = True
                g.backoff.reset()
        self._handle(g, c, self.feed.pump(c.decoder))

    def _handle(self, g: _Group, c: WsConnection, events) -> None:
        m = K
        for ev, payload in events:
            if ev == m.EV_PING:
                self.counters["pings"] += 1
                self._send(c, "pong", payload)
            elif ev == m.EV_CLOSE:
                self.counters["server_close"] += 1
                if not c.closing:
                    c.send_close()
                self._lost(g, c, "close frame")
                return
            elif ev == m.EV_PROTOCOL:
                self._lost(g, c, f"protocol error: {payload!r}")
                return
            elif ev == -1:
                log.info("venue shutdown notice: switching connection")
                self._start_switch(g, "shutdown")

    def _send(self, c: WsConnection, kind: str, payload) -> None:
        q = self.outq.get(id(c))
        if q is None:
            return
        q.append((kind, payload))
        self._flush_out(c)

    def _flush_out(self, c: WsConnection) -> None:
        q = self.outq.get(id(c))
        lim = self.limiters.get(id(c))
        while q and lim is not None and lim.try_take():
            kind, payload = q.popleft()
            try:
                if kind == "pong":
                    c.pong(payload)
                    self.counters["pongs"] += 1
                else:
                    c.send_text(payload)
                    self.counters["sent_text"] += 1
            except ConnectionClosed:
                return

    # ------------------------------------------------------------------ make-before-break
    def _start_switch(self, g: _Group, why: str) -> None:
        if g.standby is not None or g.active is None:
            return
        wait = self._pace()
        if wait > 0:
            g.next_switch_at = self.mono() + wait
            return
        c = self._open(g)
        if c is None:
            g.next_switch_at = self.mono() + g.backoff.next_delay()
            return
        c.hold()
        g.standby = c
        g.standby_since = self.mono()
        self.counters["switch_" + why] += 1

    def _release(self, g: _Group, c: WsConnection) -> None:
        for _ in c.release():
            self._handle(g, c, self.feed.pump(c.decoder))
        self._handle(g, c, self.feed.pump(c.decoder))

    def _switch(self, g: _Group) -> None:
        old, new = g.active, g.standby
        deadline = self.mono() + self.cfg.drain_timeout_s
        old.send_close()
        m = K
        while not old.closed and self.mono() < deadline:
            if self.mono() - self._last_hb >= self.cfg.heartbeat_s:
                self._beat()
            if new.readable(0):
                try:
                    new.read()
                except ConnectionClosed:
                    pass
            if not old.readable(0.01):
                continue
            try:
                old.read()
            except ConnectionClosed:
                self.feed.pump(old.decoder)
                break
            evs = self.feed.pump(old.decoder)
            if any(ev in (m.EV_CLOSE, m.EV_PROTOCOL) for ev, _ in evs):
                break
        self._forget(old)
        g.active, g.standby = new, None
        self._release(g, new)
        g.got_data = True
        self.counters["switches"] += 1
        log.info("switched to the new connection")

    # ------------------------------------------------------------------ timers
    def _timers(self) -> None:
        now = self.mono()
        for g in self.groups:
            a = g.active
            if a is not None and now - a.last_rx > self.cfg.stale_after_s:
                self.counters["watchdog"] += 1
                self._stale(g, f"no data for {self.cfg.stale_after_s} s")
                self._lost(g, a, "stale feed")
                continue
            if (a is not None and g.standby is None and now >= g.next_switch_at
                    and now - a.opened_at > self.lifetime - self.cfg.lifetime_margin_s):
                self._start_switch(g, "lifetime")
            if g.standby is not None and now - g.standby_since >= self.cfg.overlap_s:
                self._switch(g)
            for c in (g.active, g.standby):
                if c is None:
                    continue
                if (self.rules.keepalive == "client_text_ping"
                        and now - max(self._pinged.get(id(c), 0.0), c.last_rx) >= self.ping_idle_s):
                    self._pinged[id(c)] = now
                    self.counters["keepalive_pings"] += 1
                    self._send(c, "text", self.adapter.keepalive_ping)   # e.g. OKX "ping"→"pong"
                self._flush_out(c)
        if now - self._last_hb >= self.cfg.heartbeat_s:
            self._beat()

    # ------------------------------------------------------------------ snapshots
    def _fetch(self, sid: int) -> tuple[bytes, int]:
        sess = getattr(self._tls, "session", None)
        if sess is None:
            sess = self._tls.session = requests.Session()
            self._sessions.append(sess)
        url = self.adapter.snapshot_url(self.cfg.rest_url, self.names[sid], self.cfg.snapshot_limit)
        r = sess.get(url, timeout=self.cfg.snapshot_timeout_s)
        if r.status_code in (418, 429):
            try:
                wait = float(r.headers.get("Retry-After", "5"))
            except ValueError:
                wait = 5.0
            raise RateLimited(wait, f"HTTP {r.status_code}: {r.text[:120]}", r.status_code)
        r.raise_for_status()
        return r.content, self.wall_ns()

    def _snapshots(self) -> None:
        now = self.mono()
        wanted = self.feed.take_fetches()
        closed_s = self.closure.wait_s() if wanted else 0.0
        if closed_s > 0:                         # closed to the run: no request until it opens
            until = now + closed_s
            for k in self.names:
                self.fetch_not_before[k] = max(self.fetch_not_before.get(k, 0.0), until)
            wall_until, status = self.closure.until()
            if wall_until != self._closure_seen:
                self._closure_seen = wall_until
                self.counters["snapshot_host_closed"] += 1
                event_log("SNAPSHOTS_PAUSED", logging.WARNING, host=self.closure.host,
                          status=status, wait_s=round(closed_s, 1),
                          why="the venue closed the host to this run (another process was told)")
        for sid in wanted:
            if now < self.fetch_not_before.get(sid, 0.0):
                self.feed.fetch_wanted.add(sid)
                continue
            self.counters["snapshot_requests"] += 1
            # REST weight: at most one depth request per symbol per SNAPSHOT_MIN_INTERVAL_S
            self.fetch_not_before[sid] = now + SNAPSHOT_MIN_INTERVAL_S
            self.fetches[self.pool.submit(self._fetch, sid)] = sid
        for fut in [f for f in self.fetches if f.done()]:
            sid = self.fetches.pop(fut)
            try:
                raw, ts = fut.result()
            except RateLimited as exc:           # 429/418: wait as the venue says
                self.counters["snapshot_rate_limited"] += 1
                self.closure.record(exc.status, time.time() + exc.wait_s)   # for the whole run
                until = self.mono() + exc.wait_s
                for k in self.names:
                    self.fetch_not_before[k] = max(self.fetch_not_before.get(k, 0.0), until)
                self.feed.snapshot_failed(sid, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 — HTTP/network: retry after a pause
                self.fetch_not_before[sid] = self.mono() + 1.0
                self.feed.snapshot_failed(sid, str(exc)[:200])
                continue
            # every byte received before the snapshot is decoded first (stream order)
            for g in self.groups:
                if g.active is not None and g.active.held is None:
                    self._handle(g, g.active, self.feed.pump(g.active.decoder))
            self.feed.on_snapshot(sid, raw, ts)

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict:
        out = dict(self.counters)
        out.update({f"feed_{k}": v for k, v in self.feed.counters.items()})
        for d in self.feed.decoders:
            for k, v in d.counters().items():
                out["dec_" + k] = out.get("dec_" + k, 0) + v
        return out
