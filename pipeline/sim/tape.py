"""The tape: what the simulated market does. A seeded synthetic market, or a recording replayed.

Both tapes keep a `Book` per symbol (the matching engine walks it) and hand out market-data
messages as `(stream_name: bytes, payload: bytes)` pairs, Binance spot wire format exactly:

    btcusdt@trade       {"e":"trade","E":..,"s":"BTCUSDT","t":..,"p":"..","q":"..","T":..,"m":..,"M":true}
    btcusdt@aggTrade    {"e":"aggTrade","E":..,"s":..,"a":..,"p":..,"q":..,"f":..,"l":..,"T":..,"m":..,"M":true}
    btcusdt@bookTicker  {"u":..,"s":"BTCUSDT","b":"..","B":"..","a":"..","A":".."}
    btcusdt@depth@100ms {"e":"depthUpdate","E":..,"s":..,"U":..,"u":..,"b":[[p,q],..],"a":[..]}

Encoding is the hot path: payloads are %-format templates with the symbol baked in, and only
streams someone is subscribed to (`wanted`) are encoded at all. Tape trades are reported to
`on_trade(book, price, qty, aggressor_is_buy)` so resting orders fill when the tape trades
through them.
"""
from __future__ import annotations

import gzip
import heapq
import logging
import math
import random
from pathlib import Path
from typing import Callable, Iterator

import orjson

from pipeline.sim.book import Book
from pipeline.sim.instruments import InstrumentSpec, fmt8, parse8, spec

log = logging.getLogger(__name__)

OnTrade = Callable[[Book, int, int, bool], None]
Message = tuple[bytes, bytes]   # (stream name, payload)


def _noop_trade(book: Book, price: int, qty: int, is_buy: bool) -> None:
    return None


class _SymbolTemplates:
    __slots__ = ("trade", "agg", "bbo", "s_trade", "s_agg", "s_bbo", "s_depth", "s_depth1s")

    def __init__(self, symbol: str) -> None:
        lo = symbol.lower()
        self.trade = ('{"e":"trade","E":%d,"s":"' + symbol +
                      '","t":%d,"p":"%s","q":"%s","T":%d,"m":%s,"M":true}')
        self.agg = ('{"e":"aggTrade","E":%d,"s":"' + symbol +
                    '","a":%d,"p":"%s","q":"%s","f":%d,"l":%d,"T":%d,"m":%s,"M":true}')
        self.bbo = '{"u":%d,"s":"' + symbol + '","b":"%s","B":"%s","a":"%s","A":"%s"}'
        self.s_trade = f"{lo}@trade".encode()
        self.s_agg = f"{lo}@aggTrade".encode()
        self.s_bbo = f"{lo}@bookTicker".encode()
        self.s_depth = f"{lo}@depth@100ms".encode()
        self.s_depth1s = f"{lo}@depth".encode()


FCACHE_MAX = 8192      # formatted amounts kept (the hot path's fmt8 cache; cleared when full).
# A random-walk tape keeps meeting new prices and sizes: at 200 000 the cache grew for the whole
# of a 10-minute soak (~6 MB, the simulator's RSS growth); at 8192 it is full within a minute
# (~1 MB) and still answers more than half the lookups, at no measurable cost to the tape.


class Tape:
    """Common part: books by symbol, depth flushing, the `wanted` stream filter."""

    def __init__(self, books: dict[str, Book], on_trade: OnTrade | None = None) -> None:
        self.books = books
        self.on_trade = on_trade or _noop_trade
        self.wanted: set[bytes] = set()            # stream names with at least one subscriber
        self.skip_depth: dict[str, int] = {}       # symbol → diffs to drop (fault: sequence gap)
        self._tpl = {s: _SymbolTemplates(s) for s in books}
        self._fcache: dict[int, str] = {}          # int units → "123.45000000" (hot path)

    def f8(self, units: int) -> str:
        """fmt8 through a bounded cache: prices and sizes repeat a lot on a tape."""
        v = self._fcache.get(units)
        if v is None:
            if len(self._fcache) >= FCACHE_MAX:
                self._fcache.clear()
            v = self._fcache[units] = fmt8(units)
        return v

    def update_tracking(self) -> None:
        """Called when subscriptions change: books keep diffs only for wanted depth streams."""
        for sym, book in self.books.items():
            tpl = self._tpl[sym]
            keys = set()
            if tpl.s_depth in self.wanted:
                keys.add("100ms")
            if tpl.s_depth1s in self.wanted:
                keys.add("1000ms")
            book.track(keys)

    def stream_names(self) -> list[str]:
        out = []
        for t in self._tpl.values():
            out += [t.s_trade.decode(), t.s_agg.decode(), t.s_bbo.decode(), t.s_depth.decode(),
                    t.s_depth1s.decode()]
        return out

    def flush_depth(self, key: str, event_ms: int, out: list[Message]) -> None:
        """Emit one depthUpdate per symbol with changes (key "100ms" or "1000ms")."""
        for sym, book in self.books.items():
            tpl = self._tpl[sym]
            name = tpl.s_depth if key == "100ms" else tpl.s_depth1s
            if name not in self.wanted:
                acc = book.accs[key]
                acc.first_id = 0
                acc.bids.clear()
                acc.asks.clear()
                continue
            payload = book.flush_diff(key, event_ms)
            if payload is None:
                continue
            if self.skip_depth.get(sym, 0) > 0:
                self.skip_depth[sym] -= 1
                log.warning("fault skip_depth: dropped a %s depthUpdate of %s", key, sym)
                continue
            out.append((name, payload))

    def inject_trade(self, symbol: str, price: int, qty: int, is_buy: bool, event_ms: int,
                     out: list[Message]) -> None:
        """A trade cued by the control endpoint: published and matched like a tape trade."""
        book = self.books[symbol]
        self._publish_trade(book, self._tpl[symbol], price, qty, is_buy, event_ms, out)

    def _publish_trade(self, book: Book, tpl: _SymbolTemplates, price: int, qty: int,
                       is_buy: bool, ms: int, out: list[Message]) -> None:
        book.trade_id += 1
        book.agg_id += 1
        book.last_price = price
        m = "false" if is_buy else "true"
        wanted = self.wanted
        if tpl.s_trade in wanted or tpl.s_agg in wanted:
            fp, fq = self.f8(price), self.f8(qty)
            if tpl.s_trade in wanted:
                out.append((tpl.s_trade, (tpl.trade % (ms, book.trade_id, fp, fq, ms, m)).encode()))
            if tpl.s_agg in wanted:
                out.append((tpl.s_agg, (tpl.agg % (ms, book.agg_id, fp, fq, book.trade_id,
                                                   book.trade_id, ms, m)).encode()))
        self.on_trade(book, price, qty, is_buy)


class SyntheticTape(Tape):
    """A seeded random market: per symbol a ladder of levels around a random-walk mid.

    Each step picks a symbol and either trades (aggressor takes part or all of the best level;
    a level taken out moves the price: that is the random walk), changes a level's size near the
    top, cancels a level, or improves the spread. Trade sizes are log-normal around the
    instrument's typical size. `bursts` alternates a calm regime (0.7 × rate, ~1 s) and a burst
    (4 × rate, ~0.1 s) so the mean stays the configured rate.

    With `volatility` > 0 (annualized, e.g. 0.6 for a major coin) the book also follows a fair
    value that moves like a market (`FairValue`: a log random walk at that volatility with
    regimes: calm / normal / hot volatility, and trends up, down or none lasting `trend_s` on
    average). Every 100 ms of event time per symbol the quotes are moved to it (makers requote:
    levels inside the new touch are pulled, ten are quoted behind it) and one trade
    prints at the new touch in the direction of the move. Without it (0, the default) the price
    only walks by levels taken out, a tick at a time.
    """

    def __init__(self, symbols: list[str], seed: int, levels: int = 50,
                 on_trade: OnTrade | None = None, bursts: bool = True,
                 volatility: float = 0.0, trend_s: float = 30.0) -> None:
        specs = [spec(s) for s in symbols]
        books = {s.symbol: Book(s, update_id=1_000_000 * (i + 1)) for i, s in enumerate(specs)}
        super().__init__(books, on_trade)
        self.rng = random.Random(seed)
        self.levels = levels
        self.bursts = bursts
        self._symbols = list(books)
        self._burst_left = 0.0
        self._calm = True
        self._qtab = {b.symbol: self._size_table(b.spec) for b in books.values()}
        for i, book in enumerate(books.values()):
            book.trade_id = 10_000_000 * (i + 1)
            book.agg_id = 1_000_000 * (i + 1)
            self._seed_book(book)
        self.fair = ({sym: FairValue(b.spec.start_price, volatility, trend_s,
                                     random.Random(seed * 1000 + i))
                      for i, (sym, b) in enumerate(books.items())} if volatility > 0 else {})
        self._fair_ms = {sym: 0 for sym in books}

    _QTAB = 4096

    def _size_table(self, s: InstrumentSpec) -> list[int]:
        """Log-normal trade sizes around the typical size, drawn once (the hot path indexes)."""
        out = []
        for _ in range(self._QTAB):
            q = int(s.typical_qty * self.rng.lognormvariate(0.0, 1.0))
            q -= q % s.step
            out.append(max(q, s.step))
        return out

    def _size(self, s: InstrumentSpec) -> int:
        return self._qtab[s.symbol][int(self.rng.random() * self._QTAB)]

    def _seed_book(self, book: Book) -> None:
        s = book.spec
        mid = s.start_price - s.start_price % s.tick
        bid = mid - s.tick
        ask = mid + s.tick
        for k in range(self.levels):
            book.set_level(True, bid - k * s.tick, self._size(s) * 4)
            book.set_level(False, ask + k * s.tick, self._size(s) * 4)
        for acc in book.accs.values():   # the seed is the starting snapshot, not a diff
            acc.first_id = 0
            acc.bids.clear()
            acc.asks.clear()

    def rate_multiplier(self, dt: float) -> float:
        """The arrival-rate multiplier for the next `dt` seconds (bursts)."""
        if not self.bursts:
            return 1.0
        self._burst_left -= dt
        if self._burst_left <= 0:
            self._calm = not self._calm
            self._burst_left = self.rng.expovariate(1.0 if self._calm else 10.0)
        return 0.7 if self._calm else 4.0

    def generate(self, n: int, ms: int, out: list[Message]) -> int:
        """Advance the market until at least `n` messages were produced (whether or not anyone
        wants them); encoded messages for wanted streams are appended to `out`. Returns the
        count produced. (The hot loop: locals, no helper calls on the common paths.)"""
        produced = 0
        rnd = self.rng.random
        syms = self._symbols
        nsym = len(syms)
        books = self.books
        tpls = self._tpl
        qtabs = self._qtab
        qn = self._QTAB
        cap = self.levels * 3 // 2
        wanted = self.wanted
        fc = self._fcache
        f8 = self.f8
        fair = self.fair
        fair_ms = self._fair_ms
        while produced < n:
            sym = syms[int(rnd() * nsym)]
            book = books[sym]
            tick = book.spec.tick
            r = rnd()
            top_changed = False
            if fair and ms - fair_ms[sym] >= FAIR_EVERY_MS:
                produced += self._follow(book, tpls[sym], fair[sym], ms, out)
                top_changed = True
            elif r < 0.25:                       # a trade: 3 messages (trade, aggTrade, bookTicker)
                produced += 2 * self._trade(book, tpls[sym], rnd() < 0.5, ms, out)
                top_changed = True
            elif r < 0.45:                     # improve the spread if it is wide
                is_bid = rnd() < 0.5
                gap = (book.best_ask - book.best_bid) // tick
                qty = qtabs[sym][int(rnd() * qn)] * 2
                if gap > 1:
                    k = 1 + int(rnd() * rnd() * (gap - 1))     # mostly one tick, sometimes more
                    book.set_level(is_bid, book.best_bid + k * tick if is_bid
                                   else book.best_ask - k * tick, qty)
                    if len(book.bids if is_bid else book.asks) > cap:
                        self._trim(book, is_bid)
                    top_changed = True
                else:
                    k = 1 + int(rnd() * 3)
                    book.set_level(is_bid, book.best_bid - k * tick if is_bid
                                   else book.best_ask + k * tick, qty)
            else:                              # resize (or cancel) a level near the top
                is_bid = rnd() < 0.5
                k = int(rnd() * rnd() * 10)
                p = book.best_bid - k * tick if is_bid else book.best_ask + k * tick
                side = book.bids if is_bid else book.asks
                if k > 0 and rnd() < 0.15 and len(side) > 5:
                    book.set_level(is_bid, p, 0)
                else:                          # the most common change, inlined set_level
                    q = qtabs[sym][int(rnd() * qn)] * (1 + int(rnd() * 6))
                    book.update_id += 1
                    side[p] = q
                    if book.active:
                        uid = book.update_id
                        for acc in book.active:
                            if not acc.first_id:
                                acc.first_id = uid
                            (acc.bids if is_bid else acc.asks)[p] = q
                    if len(side) > cap:
                        self._trim(book, is_bid)
                top_changed = k == 0
            if top_changed:
                produced += 1
                tpl = tpls[sym]
                if tpl.s_bbo in wanted:
                    bb, ba = book.best_bid, book.best_ask
                    bq, aq = book.bids.get(bb, 0), book.asks.get(ba, 0)
                    out.append((tpl.s_bbo, (tpl.bbo % (
                        book.update_id, fc.get(bb) or f8(bb), fc.get(bq) or f8(bq),
                        fc.get(ba) or f8(ba), fc.get(aq) or f8(aq))).encode()))
        return produced

    def _trade(self, book: Book, tpl: _SymbolTemplates, is_buy: bool, ms: int,
               out: list[Message]) -> int:
        """One aggressor: usually part or all of the best level; now and then a sweep through
        several levels (one trade per level, as Binance prints them) that moves the price."""
        s = book.spec
        rng = self.rng
        side = book.asks if is_buy else book.bids
        sweep = 1 + int(rng.expovariate(0.2)) if rng.random() < 0.03 else 1
        qtab = self._qtab[book.symbol]
        for i in range(sweep):
            price = book.best_ask if is_buy else book.best_bid
            avail = side.get(price, 0)
            qty = qtab[int(rng.random() * self._QTAB)]
            if i < sweep - 1 or qty >= avail or rng.random() < 0.1:
                qty = avail
                book.set_level(not is_buy, price, 0)
                if len(side) < self.levels:      # keep the ladder deep: a level at the far end
                    far = (max(side) + s.tick) if is_buy else (min(side) - s.tick)
                    if far > 0:
                        book.set_level(not is_buy, far, self._size(s) * 4)
                if len(side) < 2:                # never let a side empty out
                    book.set_level(not is_buy, price + (s.tick if is_buy else -s.tick), self._size(s))
            else:
                book.set_level(not is_buy, price, avail - qty)
            self._publish_trade(book, tpl, price, qty, is_buy, ms, out)
        return sweep

    def _follow(self, book: Book, tpl: _SymbolTemplates, fv: "FairValue", ms: int,
                out: list[Message]) -> int:
        """Advance the fair value to `ms` and requote the book around it (see the class
        docstring); returns the messages produced."""
        last = self._fair_ms[book.symbol]
        self._fair_ms[book.symbol] = ms
        if not last:
            return 0
        s = book.spec
        tick = s.tick
        target = fv.advance((ms - last) / 1000.0)
        mid = (book.best_bid + book.best_ask) // 2
        if abs(target - mid) < 2 * tick:
            return 0
        t = max(target - target % tick, 2 * tick)
        bid, ask = t - tick, t + tick
        for p in [p for p in book.asks if p <= bid]:      # makers pull what the move crossed
            book.set_level(False, p, 0)
        for p in [p for p in book.bids if p >= ask]:
            book.set_level(True, p, 0)
        for k in range(REQUOTE_LEVELS):                     # and requote behind the new touch
            if bid - k * tick > 0 and (bid - k * tick) not in book.bids:
                book.set_level(True, bid - k * tick, self._size(s) * 4)
            if (ask + k * tick) not in book.asks:
                book.set_level(False, ask + k * tick, self._size(s) * 4)
        for side_is_bid in (True, False):
            side = book.bids if side_is_bid else book.asks
            while len(side) > self.levels:
                book.set_level(side_is_bid, min(side) if side_is_bid else max(side), 0)
        return 2 * self._trade(book, tpl, target > mid, ms, out)

    def _trim(self, book: Book, is_bid: bool) -> None:
        """Drop the farthest level of a side that grew past 1.5 × levels."""
        side = book.bids if is_bid else book.asks
        if len(side) > self.levels * 3 // 2:
            book.set_level(is_bid, min(side) if is_bid else max(side), 0)


FAIR_EVERY_MS = 100                   # how often (event time) a symbol's quotes follow its fair value
REQUOTE_LEVELS = 10                   # levels requoted behind a new touch (trades refill the rest)
_YEAR_S = 365.0 * 86400.0


class FairValue:
    """A symbol's fair value (int price units): a log random walk whose volatility and drift
    switch between regimes, as markets do (quiet hours, news, trends).

    volatility: annualized (0.6 ≈ a major coin); per step of dt seconds the log price moves by
    drift·dt + vol_mult·σ·√dt·N(0,1) with σ = volatility/√year. Regimes last an exponential
    time of mean `trend_s`: volatility ×0.5 (calm), ×1 or ×2.5 (hot), and a drift of 0 (range)
    or ±(1 to 3)·σ/√trend_s per second (a trend worth 1-3 regime-length σ)."""

    def __init__(self, start: int, volatility: float, trend_s: float, rng: random.Random):
        self.logp = math.log(start)
        self.sigma = volatility / math.sqrt(_YEAR_S)
        self.trend_s = trend_s
        self.rng = rng
        self.left = 0.0
        self.drift = 0.0
        self.vol_mult = 1.0

    def _regime(self) -> None:
        r = self.rng
        self.left = r.expovariate(1.0 / self.trend_s)
        self.vol_mult = r.choice((0.5, 1.0, 1.0, 2.5))
        u = r.random()
        sign = 0.0 if u < 0.3 else (1.0 if u < 0.65 else -1.0)
        self.drift = sign * r.uniform(1.0, 3.0) * self.sigma / math.sqrt(self.trend_s)

    def advance(self, dt: float) -> int:
        if dt > 0:
            if self.left <= 0:
                self._regime()
            self.left -= dt
            self.logp += (self.drift * dt
                          + self.vol_mult * self.sigma * math.sqrt(dt) * self.rng.gauss(0.0, 1.0))
        return int(math.exp(self.logp))


# ----------------------------------------------------------------------------- replay


def read_recording(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """`<local_ts_ns> <raw json>` lines (gzip or plain) → (ts_ns, raw). Bad lines are logged
    and skipped, never fatal."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            ts, _, raw = line.partition(b" ")
            try:
                yield int(ts), raw
            except ValueError:
                log.warning("%s:%d: not a '<local_ts_ns> <raw json>' line, skipped", path, lineno)


def _file_symbol(path: str | Path) -> str | None:
    for i, (_, raw) in enumerate(read_recording(path)):
        if i > 200:
            break
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        data = msg.get("data") if isinstance(msg, dict) else None
        if isinstance(data, dict) and isinstance(data.get("s"), str):
            return data["s"].upper()
    return None


class ReplayTape(Tape):
    """Replays recordings merged by local timestamp. Depth diffs keep the book; snapshot lines
    (REST bodies with lastUpdateId) reset it; trades drive the matching engine. With
    `rebase_time`, E and T are shifted so the first message looks like it happened now."""

    def __init__(self, files: list[str], on_trade: OnTrade | None = None, loop: bool = False,
                 rebase_time: bool = True) -> None:
        self.files = [str(f) for f in files]
        for f in self.files:
            if not Path(f).is_file():
                raise FileNotFoundError(f"replay file not found: {f}")
        self.file_symbols = {f: _file_symbol(f) for f in self.files}
        symbols = sorted({s for s in self.file_symbols.values() if s})
        if not symbols:
            raise ValueError(f"no symbol found in the replay files {self.files}")
        books = {s: Book(spec(s), update_id=0) for s in symbols}
        for b in books.values():
            b.synced = False
        super().__init__(books, on_trade)
        self.loop = loop
        self.rebase_time = rebase_time
        self.offset_ms: int | None = None
        self.first_ts: int | None = None
        self.done = False
        self._it = self._merged()
        self._next: tuple[int, int, str, bytes] | None = None

    def _merged(self) -> Iterator[tuple[int, int, str, bytes]]:
        while True:
            iters = [((ts, i, f, raw) for ts, raw in read_recording(f))
                     for i, f in enumerate(self.files)]
            lines = 0
            for item in heapq.merge(*iters):
                lines += 1
                yield item
            if not self.loop or not lines:
                return
            log.info("replay: end of recording, starting over")

    def flush_depth(self, key: str, event_ms: int, out: list[Message]) -> None:
        """A replay publishes exactly the recorded depth diffs; nothing is synthesised."""
        for book in self.books.values():
            acc = book.accs[key]
            acc.first_id = 0
            acc.bids.clear()
            acc.asks.clear()

    def peek_ts(self) -> int | None:
        """local_ts_ns of the next line, or None at the end."""
        if self._next is None:
            self._next = next(self._it, None)
            if self._next is None:
                self.done = True
                return None
            if self.first_ts is None:
                self.first_ts = self._next[0]
        return self._next[0]

    def step(self, now_ms: int, out: list[Message]) -> int:
        """Replay one line; returns the number of messages it produced."""
        if self.peek_ts() is None:
            return 0
        assert self._next is not None
        _, _, fname, raw = self._next
        self._next = None
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("replay %s: line is not JSON, skipped: %.80r", fname, raw)
            return 0
        if not isinstance(msg, dict):
            return 0
        if "lastUpdateId" in msg:
            sym = self.file_symbols.get(fname)
            if sym:
                self.books[sym].reset(int(msg["lastUpdateId"]),
                                      ((parse8(p), parse8(q)) for p, q in msg.get("bids", [])),
                                      ((parse8(p), parse8(q)) for p, q in msg.get("asks", [])))
            return 0
        stream, data = msg.get("stream"), msg.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            return 0
        sym = str(data.get("s", "")).upper()
        book = self.books.get(sym)
        if book is None:
            return 0
        if self.rebase_time and "E" in data:
            if self.offset_ms is None:
                self.offset_ms = now_ms - int(data["E"])
            data["E"] = int(data["E"]) + self.offset_ms
            if "T" in data:
                data["T"] = int(data["T"]) + self.offset_ms
        ev = data.get("e")
        if ev == "depthUpdate":
            if book.synced and int(data["u"]) > book.update_id:
                book.apply_diff(int(data["U"]), int(data["u"]),
                                [(parse8(p), parse8(q)) for p, q in data["b"]],
                                [(parse8(p), parse8(q)) for p, q in data["a"]])
                book.refresh_best()
            if self.skip_depth.get(sym, 0) > 0:
                self.skip_depth[sym] -= 1
                log.warning("fault skip_depth: dropped a replayed depthUpdate of %s", sym)
                return 1
        elif ev == "trade":
            price, qty = parse8(data["p"]), parse8(data["q"])
            book.last_price = price
            self.on_trade(book, price, qty, not data.get("m", False))
        name = stream.encode()
        if name in self.wanted:
            out.append((name, orjson.dumps(data)))
        return 1
