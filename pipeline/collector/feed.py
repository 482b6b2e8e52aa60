"""One venue feed without its sockets: decoders, the cool path, book syncs and error accounting.

The live collector, the replayer and the tests all drive the same `Feed`, so a recording replays
through exactly the code that made it. Records go to `sink(array)` in order (the ring writer's
publish_array in the collector; a list in replay). The sink must consume the array before
returning (it is reused).

Hot messages are turned into records by the decoder kernel; everything else comes here as a
complete message (`cool`): orjson, then the adapter's routing table. Bad input is counted by kind
and logged once per kind with a sample; it never raises out of `pump`.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Callable, Iterable

import numpy as np
import orjson

from pipeline import _native
from pipeline.venues.binance import wsdecode_py as K   # event/reason constants (same in both kernels)
from pipeline.logs import event_log
from pipeline.records import TICK_DTYPE, Kind
from pipeline.venues.base import Routed

log = logging.getLogger(__name__)

# Duplicate-filter slot per record kind (the id carried must grow per symbol).
_SLOTS = {int(Kind.TRADE): 0, int(Kind.AGG_TRADE): 1, int(Kind.BID): 2}
SAMPLE = 200
META_PREFIX = b'{"_pl":'


def decoder_module(backend: str):
    if backend == "cython":
        return _native.load("wsdecode")
    if backend == "python":
        from pipeline.venues.binance import wsdecode_py
        return wsdecode_py
    raise ValueError(f"unknown decoder backend {backend!r} (cython or python)")


class Feed:
    def __init__(self, adapter, sink: Callable[[np.ndarray], object], *,
                 depth_symbols: Iterable[int] = (), backend: str = "cython",
                 max_message: int = 1 << 20, out_size: int = 8192,
                 raw_sink: Callable[[bytes], object] | None = None):
        self.adapter = adapter
        self.venue = adapter.venue
        self.sink = sink
        self.raw_sink = raw_sink
        self.mod = decoder_module(backend)
        self.backend = backend
        self.max_message = max_message
        self.state = self.mod.SymbolState(adapter.decoder_symbols(), adapter.venue)
        self.out = np.zeros(out_size, dtype=TICK_DTYPE)
        self.syncs = {int(s): adapter.new_book_sync(int(s)) for s in depth_symbols}
        self.fetch_wanted: set[int] = set()
        self.counters: Counter = Counter()
        self.samples: dict[str, bytes] = {}
        self.decoders: list = []
        # optional adapter hooks: the keep-alive reply frame (counted, not JSON), and a kernel
        # for whole messages tried before the JSON cool path (records written, or -1: not mine)
        self.keepalive_reply = getattr(adapter, "keepalive_reply", None)
        self.fast_decode = getattr(adapter, "fast_decode", None)
        self.fast_out = np.zeros(1024, dtype=TICK_DTYPE)

    # ------------------------------------------------------------------ setup
    def decoder(self, hot: bool = True):
        dec = self.mod.WsDecoder(self.state, self.max_message, hot, self.raw_sink is not None)
        self.decoders.append(dec)
        return dec

    def drop_decoder(self, dec) -> None:
        """A connection ended: count what it left half-received, fold its counters in."""
        if dec.pending():
            self.error("truncated_frame", b"%d bytes pending at connection end" % dec.pending())
        for k, v in dec.counters().items():
            self.counters["dec_" + k] += v
        self.flush_raw(dec)
        if dec in self.decoders:
            self.decoders.remove(dec)

    def _emit(self, arrays) -> None:
        for a in arrays:
            if len(a):
                self.sink(a)

    def start_books(self, local_ts: int) -> None:
        """Begin syncing every depth book (RESYNC_START each; snapshots follow the first diff)."""
        self.meta({"_pl": "start"}, local_ts)
        for sync in self.syncs.values():
            self._sync_out(sync, sync.start(self.state, local_ts))

    def resync_books(self, local_ts: int, why: str = "reader_lapped") -> None:
        """A consumer lost records (lapped on the ring) and asked: every depth book starts over
        (GAP + RESYNC_START now, a fresh snapshot after the next diff)."""
        self.counters["resync_requested"] += 1
        for sync in self.syncs.values():
            self._sync_out(sync, sync.force_resync(self.state, None, local_ts, why))

    def _sync_out(self, sync, out) -> None:
        for ev in out.events:
            self.counters["book_" + ev] += 1
            if ev in ("resync", "synced"):
                try:
                    sym = self.adapter.symbol_name(sync.symbol)
                except (AttributeError, KeyError):
                    sym = ""
                event_log("RESYNC_START" if ev == "resync" else "RESYNC_DONE",
                          venue=getattr(self.adapter, "name", ""), symbol=sym,
                          symbol_id=sync.symbol,
                          why=next((e for e in out.events if e not in ("resync", "synced")), ""))
        if out.fetch:
            self.fetch_wanted.add(sync.symbol)
        self._emit(out.records)

    # ------------------------------------------------------------------ errors
    def error(self, kind: str, sample: bytes | str = b"") -> None:
        self.counters["err_" + kind] += 1
        if kind not in self.samples:
            if isinstance(sample, str):
                sample = sample.encode("utf-8", "replace")
            self.samples[kind] = bytes(sample[:SAMPLE])
            log.warning("%s feed: %s (first of its kind; counted from now on): %r",
                        getattr(self.adapter, "name", "venue"), kind, self.samples[kind])

    def errors(self) -> dict[str, int]:
        return {k[4:]: v for k, v in self.counters.items() if k.startswith("err_")}

    # ------------------------------------------------------------------ the loop body
    def pump(self, dec) -> list[tuple[int, bytes]]:
        """Decode everything buffered in `dec`. Returns the control events the connection layer
        must act on: (EV_PING | EV_PONG | EV_CLOSE | EV_PROTOCOL, payload) and (-1, b"shutdown")
        for a venue's "this connection ends soon" message."""
        m = K
        out = self.out
        events: list[tuple[int, bytes]] = []
        while True:
            n = dec.decode(out)
            if n:
                self.sink(out[:n])
            ev = dec.event
            if ev == m.EV_NONE:
                break
            if ev == m.EV_FULL:
                continue
            if ev == m.EV_MESSAGE:
                if self.cool(dec.message, dec.reason, dec.local_ts):
                    events.append((-1, b"shutdown"))
            elif ev == m.EV_BAD:
                self.error(dec.error, dec.message)
            elif ev == m.EV_PROTOCOL:
                self.error("protocol", dec.error)
                events.append((ev, dec.error.encode()))
                break
            else:
                events.append((ev, dec.message))
                if ev == m.EV_CLOSE:
                    break
        if self.raw_sink is not None:
            self.flush_raw(dec)
        return events

    def flush_raw(self, dec) -> None:
        if self.raw_sink is not None:
            lines = dec.take_recording()
            if lines:
                self.raw_sink(lines)

    def meta(self, obj: dict, local_ts: int) -> None:
        """Write a pipeline line (start, snapshot) into the raw recording, in stream order."""
        if self.raw_sink is not None:
            for d in self.decoders:
                self.flush_raw(d)
            self.raw_sink(b"%d %s\n" % (local_ts, orjson.dumps(obj)))

    def cool(self, payload: bytes, reason: int, local_ts: int) -> bool:
        """A message the hot path did not take. Returns True for a venue shutdown notice."""
        m = K
        self.counters["cool_" + K.REASON_NAMES[reason]] += 1
        if reason == m.R_BINARY:
            self.error("binary_frame", payload)
            return False
        if payload == self.keepalive_reply:
            self.counters["keepalive_replies"] += 1
            return False
        if self.fast_decode is not None:
            n = self.fast_decode(payload, local_ts, self.fast_out)
            if n >= 0:
                self.counters["fast_messages"] += 1
                if n:
                    recs = self.fast_out[:n]
                    slot = _SLOTS.get(int(recs["kind"][0]))
                    if slot is not None and not self.state.accept(slot, int(recs["symbol"][-1]),
                                                                  int(recs["id"][-1])):
                        self.counters["duplicates"] += 1    # e.g. both connections of a switch
                        return False
                    self.sink(recs)
                return False
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                self.error("non_utf8", payload)
                return False
            self.error("malformed_json", payload)
            return False
        try:
            r: Routed = self.adapter.route(obj, local_ts)
        except Exception as exc:  # noqa: BLE001 — a parser bug must not stop the feed
            self.error("parser_exception", b"%s: %s" % (type(exc).__name__.encode(), payload))
            return False
        if r.error is not None:
            self.error(r.error, payload)
            ds = r.extra.get("depth_symbol")
            if ds is not None:
                sid = self.state.lookup(ds.encode("utf-8", "replace"))
                if sid in self.syncs:
                    sync = self.syncs[sid]
                    self._sync_out(sync, sync.force_resync(self.state, None, local_ts,
                                                           "bad_diff"))
            return False
        if r.records is not None:
            recs = r.records
            if len(recs):
                slot = _SLOTS.get(int(recs["kind"][0]))
                if slot is not None and not self.state.accept(slot, int(recs["symbol"][0]),
                                                              int(recs["id"][0])):
                    self.counters["duplicates"] += 1
                    return False
                self.sink(recs)
            return False
        if r.depth is not None:
            d = r.depth
            sync = self.syncs.get(d.symbol)
            if sync is None:
                self.error("depth_not_subscribed", payload)
                return False
            if reason == m.R_CROSSED:
                # the hot path applied it and found the book crossed: nothing was published
                self._sync_out(sync, sync.force_resync(self.state, d, local_ts, "crossed"))
                return False
            self._sync_out(sync, sync.on_diff(self.state, d))
            return False
        if r.control == "shutdown":
            self.counters["venue_shutdown"] += 1
            return True
        if r.control is not None:
            self.counters["control_" + r.control] += 1
        return False

    def on_snapshot(self, symbol: int, raw: bytes, local_ts: int) -> None:
        """A REST depth snapshot arrived (raw response body)."""
        sync = self.syncs.get(symbol)
        if sync is None:
            return
        try:
            obj = orjson.loads(raw)
            snap = self.adapter.parse_snapshot(obj, symbol, local_ts)
        except (orjson.JSONDecodeError, ValueError) as exc:
            self.error("bad_snapshot", raw if raw else str(exc))
            sync.fetching = False
            self.fetch_wanted.add(symbol)
            sync.fetching = True
            return
        self.meta({"_pl": "snapshot", "symbol": symbol, "data": obj}, local_ts)
        self._sync_out(sync, sync.on_snapshot(self.state, snap))

    def snapshot_failed(self, symbol: int, why: str) -> None:
        """A snapshot fetch failed (HTTP error, timeout): ask again."""
        self.error("snapshot_fetch", why)
        self.fetch_wanted.add(symbol)

    def take_fetches(self) -> list[int]:
        out = sorted(self.fetch_wanted)
        self.fetch_wanted.clear()
        return out
