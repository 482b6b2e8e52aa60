"""The event-driven backtester: any Strategy, fed like live, against the simulated venue.

    recs = feed.load_feed(["session.npy"])
    run = EventEngine(recs, [strategy], model).run()
    run.metrics, run.fills_table(), run.equity

The strategy gets the records in batches through the same `on_ticks` it gets live (market
records of its instrument, GAP/STALE/RESYNC as control records), `on_timer` on the data clock and
`on_order_event` for what the venue did (pipeline/backtest/exchange.py states the model). Its
clock is the data's: `created_mono` of an order is its trigger record's time.

Batches. With nothing working at the venue, a batch is up to `max_batch` records (32 for a
strategy marked `reactive`, whose decisions depend on its order events): vectorised
strategies process a whole batch in a few numpy calls (the momentum example runs at millions of
records per second). While orders are in flight or resting, a batch ends where the venue could
next do something to them (the next arrival, or the next record that could touch a resting
order) plus the latency back, so the strategy learns of a fill before it sees the data that
followed it by more than the latency, as live. An order a strategy makes in the middle of a
batch whose answer would be due before the batch ends gets it at the end of that batch (a live
strategy would have known a little earlier); `max_batch` bounds that.
"""
from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass

import numpy as np

from pipeline.backtest import metrics as M
from pipeline.backtest.exchange import Exchange, timeline_class
from pipeline.bus.signals import Signal, from_array
from pipeline.records import SIGNAL_DTYPE
from pipeline.strategy.orders import Cancel, Replace

log = logging.getLogger(__name__)



class DataClock:
    """The strategy's clock in a backtest: the time of the data being processed."""

    def __init__(self):
        self.now = 0

    def mono_ns(self) -> int:
        return self.now

    def wall_ns(self) -> int:
        return self.now

    def sleep_ns(self, ns: int) -> None:
        self.now += ns


class Latency:
    """Order path latency: fixed, or drawn (seeded) from samples / an HdrHistogram."""

    def __init__(self, fixed_ns: int = 0, samples: np.ndarray | None = None, seed: int = 0):
        self.fixed = int(fixed_ns)
        self.samples = None if samples is None else np.asarray(samples, dtype=np.int64)
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_histogram(cls, path: str, hop: str | None = None, seed: int = 0) -> "Latency":
        """Samples from a profiler's .hdr.json ({hop: base64 HdrHistogram}); `hop` defaults to
        tick_to_order, else the first."""
        from pipeline.telemetry import latency as L
        hists = L.load([path])
        if not hists:
            raise ValueError(f"{path}: no latency histogram in it")
        h = hists.get(hop or "tick_to_order") or next(iter(hists.values()))
        vals = []
        for item in h.get_recorded_iterator():
            vals += [item.value_iterated_to] * int(min(item.count_at_value_iterated_to, 10_000))
        if not vals:
            raise ValueError(f"{path}: the histogram is empty")
        return cls(samples=np.asarray(vals), seed=seed)

    def draw(self) -> int:
        if self.samples is None:
            return self.fixed
        return int(self.samples[self.rng.integers(len(self.samples))])


@dataclass
class EventRun:
    metrics: dict
    stats: dict
    fills: np.ndarray          # structured: index, ts, symbol, qty (signed), price, fee, maker, ...
    equity: np.ndarray         # at every trade record of a traded instrument (or empty)
    equity_ts: np.ndarray
    position: np.ndarray
    rejects: dict
    events: int

    def fills_table(self) -> np.ndarray:
        return self.fills


FILL_DTYPE = np.dtype([("index", "<i8"), ("ts", "<i8"), ("symbol", "<u4"), ("qty", "<f8"),
                       ("price", "<f8"), ("fee", "<f8"), ("maker", "?"), ("strategy", "<u4"),
                       ("client_id", "<i8")])


class EventEngine:
    def __init__(self, recs: np.ndarray, strategies: list, model, *, risk=None,
                 latency: Latency | None = None, max_batch: int | None = None, epoch: int = 1,
                 period_s: float | None = None, compiled: bool = True,
                 reactive_batch: int = 32, matching: str = "compiled"):
        if len(recs) == 0:
            raise ValueError("no records")
        self.recs = recs
        self.t = np.ascontiguousarray(recs["mono_ts"], dtype=np.int64)
        # the times, checked in order; and where batches end (compiled, or the twin's)
        self.tl = timeline_class(matching)(self.t)
        self._tv = memoryview(self.t)  # time of record i as a plain int: self._tv[i]
        self.model = model
        self.strategies = list(strategies)
        if latency is None:
            latency = Latency.from_histogram(model.latency_histogram) \
                if model.latency_histogram else Latency(int(round(model.latency_ms * 1e6)))
        self.latency = latency
        self._lat_fixed = latency.fixed if latency.samples is None else None
        self.max_batch = int(model.max_batch if max_batch is None else max_batch)
        if any(st.reactive for st in strategies):
            # a strategy whose decisions follow its order events gets batches this short, so
            # it never runs far past an order it made before it hears of it
            self.max_batch = min(self.max_batch, max(1, int(reactive_batch)))
        self.clock = DataClock()
        # the venue's books and resting orders: ext/matching.pyx, or its twin ("python")
        self.ex = Exchange(recs, model, risk=risk, matching=matching, times=self.t)
        self.risk = risk
        self.period_s = model.period_s if period_s is None else period_s
        self.inflight: list = []       # heap (arrival index, n, kind, strategy, payload)
        self.feedback: list = []       # heap (deliver time, n, strategy, event)
        self._n = 0
        self.events = 0
        self.signals = 0
        self.risk_rejects: dict[str, int] = {}
        # a strategy's compiled batch path (the SMA's ext/smalive.pyx) is the same rule in C;
        # created_mono is not used here (an order is made at its trigger record's time)
        self.compiled = {}
        for st in self.strategies:
            fast = st.compiled() if compiled else None
            if fast is not None:
                self.compiled[id(st)] = fast
            st.clock = self.clock
            st.epoch = epoch
            st.feedback = True
            st.account = self.ex
            if model.sizing == "fraction":
                st.size_fraction = float(model.fraction)
        self._sigbuf = np.zeros(self.max_batch, dtype=SIGNAL_DTYPE)
        self.timers = {id(st): None for st in self.strategies if st.timer_ns > 0}
        self._lo = 0                   # first record of the batch being processed

    # ------------------------------------------------------------------ intents
    def _arrival(self, trigger: int, t0: int) -> int:
        """The first record after `trigger` at or after t0 + latency."""
        lat = self._lat_fixed if self._lat_fixed is not None else self.latency.draw()
        return self.tl.first_ge(t0 + lat, trigger + 1)

    def _intents(self, st, items, at: int, now: int | None = None) -> None:
        """Intents a hook returned while the data stood at record `at` (its last delivered);
        `now`: the event time of a feedback or timer hook (else the trigger record's time)."""
        if not items:
            return
        tv = self._tv
        for it in items:
            self._n += 1
            if isinstance(it, Signal):
                sig = st.stamp(it)
                self.signals += 1
                if self._lo <= sig.trigger_seq <= at:
                    trig = int(sig.trigger_seq)
                    t0 = tv[trig]
                else:
                    trig = max(at, 0)
                    t0 = tv[trig] if now is None else max(int(now), tv[trig])
                if self.risk is not None and not self._risk_ok(st, sig, t0, trig):
                    continue
                heapq.heappush(self.inflight, (self._arrival(trig, t0), self._n, 0, st, sig))
            elif isinstance(it, (Cancel, Replace)):
                trig = it.trigger_seq if isinstance(it, Cancel) else it.new.trigger_seq
                if self._lo <= trig <= at:
                    t0 = tv[trig]
                else:
                    trig = max(at, 0)
                    t0 = tv[trig] if now is None else max(int(now), tv[trig])
                if isinstance(it, Replace):
                    new = st.stamp(it.new)
                    if new is not it.new:
                        it = it._replace(new=new)
                    self.signals += 1
                    # the gateway checks the new order before it sends the cancel-replace;
                    # a rejected one sends nothing (the old order keeps working)
                    if self.risk is not None and not self._risk_ok(st, it.new, t0, trig):
                        continue
                heapq.heappush(self.inflight, (self._arrival(trig, t0), self._n, 1, st, it))
            else:
                raise TypeError(f"strategy {st.strategy_id}: a hook returned {it!r}; expected "
                                f"a Signal, Cancel or Replace")

    def _risk_ok(self, st, sig, t0: int, trig: int) -> bool:
        """The gateway's pre-trade check when the order is made (the gateway sits next to the
        strategy): reference = the last trade / mid before it, on the data clock."""
        from pipeline.bus.signals import encode
        from pipeline.gateway.reasons import REASON_NAMES
        ex = self.ex
        ex.m.advance(sig.symbol, trig + 1)
        bb, ba = ex.m.bid_ask(sig.symbol)
        ref = (bb + ba) / 2 if not (math.isnan(bb) or math.isnan(ba)) else math.nan
        if math.isnan(ref):
            ti = ex.trades_of(sig.symbol)
            j = int(np.searchsorted(ti, trig, "right")) - 1
            ref = float(ex.price[ti[j]]) if j >= 0 else math.nan
        if ref == ref:
            self.risk.set_reference(int(sig.symbol), ref, t0)
        sig = sig._replace(created_mono=t0)
        code = self.risk.check(encode(sig), t0)
        if code == 0:
            return True
        name = REASON_NAMES.get(int(code), str(code))
        self.risk_rejects[name] = self.risk_rejects.get(name, 0) + 1
        from pipeline.strategy.orders import EventKind, OrderEvent
        self._n += 1
        heapq.heappush(self.feedback, (t0, self._n, st, OrderEvent(
            int(EventKind.REJECTED), int(sig.seq), t0, side=int(sig.side), reason=name)))
        return False

    # ------------------------------------------------------------------ venue
    def _venue(self, a: int, b: int) -> None:
        """Let the venue act on records [a, b): arrivals and resting orders, in record order."""
        ex = self.ex
        m = ex.m
        out: list = []
        j = a
        inflight = self.inflight
        while True:
            arr = inflight[0][0] if inflight else b
            stop = arr if arr < b else b
            # resting orders meet records [j, stop) up to the first that fills one
            if ex.working:
                k, fills = m.scan(j, stop)
                if fills:
                    ex.filled(k, fills, out)
                    j = k + 1
                    continue
            else:
                k = stop
            if arr >= b:
                break
            # an arrival at record `arr` comes before that record's touches
            _, _, typ, st, item = heapq.heappop(inflight)
            if typ == 0:
                ex.arrive(st, item, k, out)
            elif isinstance(item, Cancel):
                ex.cancel(st, item.client_id, k, out)
            elif ex.cancel(st, item.client_id, k, out):
                ex.arrive(st, item.new, k, out)
            else:
                from pipeline.strategy.orders import EventKind, OrderEvent
                out.append((st, OrderEvent(int(EventKind.REJECTED), int(item.new.seq),
                                           self._tv[k], side=int(item.new.side),
                                           reason="REPLACE_CANCEL_FAILED")))
            j = k
        if not out:
            return
        fb = self.feedback
        push = heapq.heappush
        lat = self._lat_fixed
        n = self._n
        for st, ev in out:
            n += 1
            push(fb, (ev.ts + (lat if lat is not None else self.latency.draw()), n, st, ev))
        self._n = n

    def _deliver(self, upto_t: int, at: int) -> None:
        fb = self.feedback
        clock = self.clock
        pop = heapq.heappop
        while fb and fb[0][0] <= upto_t:
            t, _, st, ev = pop(fb)
            if t > clock.now:
                clock.now = t
            self.events += 1
            items = st.order_event(ev)
            if items:
                self._intents(st, items, at, t)

    def _timers(self, upto_t: int, at: int) -> None:
        for st in self.strategies:
            if st.timer_ns <= 0:
                continue
            due = self.timers[id(st)]
            if due is None:
                due = self.timers[id(st)] = (int(self.t[0]) // st.timer_ns + 1) * st.timer_ns
            while due <= upto_t:
                self.clock.now = due
                self.events += 1
                self._intents(st, st.on_timer(due), at, due)
                due += st.timer_ns
            self.timers[id(st)] = due

    def _next_due(self) -> int:
        t = 1 << 62
        if self.feedback:
            t = self.feedback[0][0]
        for d in self.timers.values():
            if d is not None:
                t = min(t, d)
        return t

    # ------------------------------------------------------------------ the run
    def run(self) -> EventRun:
        n = len(self.recs)
        t = self.t
        recs = self.recs
        for st in self.strategies:
            st.start()
            if st.timer_ns > 0:
                self.timers[id(st)] = (int(t[0]) // st.timer_ns + 1) * st.timer_ns
        runners = [(st, self.compiled.get(id(st))) for st in self.strategies]
        timers = any(st.timer_ns > 0 for st in self.strategies)
        fb = self.feedback              # the heap of answers on their way (one list, in place)
        inflight = self.inflight
        BIG = 1 << 62
        tv = self._tv
        batch_end = self.tl.batch_end
        m = self.ex.m
        back = self.latency.fixed
        max_batch = self.max_batch
        clock = self.clock
        pos = 0
        while pos < n:
            # a batch stops where the venue could next act on an order, plus the way back,
            # and before an event due (events at time T come before records at T)
            due = self._next_due() if timers else (fb[0][0] if fb else BIG)
            end = batch_end(pos, min(n, pos + max_batch), inflight[0][0] if inflight else -1,
                            m, back, due)
            batch = recs[pos:end]
            clock.now = tv[end - 1]
            self._lo = pos
            for st, fast in runners:
                if fast is None:
                    items = st.on_ticks(batch)
                    if items:
                        self._intents(st, items, end - 1)
                else:
                    k = fast(np.ascontiguousarray(batch), self._sigbuf)
                    if k:
                        self._intents(st, from_array(self._sigbuf[:k]), end - 1)
            self._venue(pos, end)
            pos = end
            nt = tv[pos] if pos < n else tv[n - 1]
            if timers:
                self._timers(nt, pos - 1)
            if fb and fb[0][0] <= nt:
                self._deliver(nt, pos - 1)
        # answers still on their way reach the strategy after the data; what is still in flight
        # then never reaches the venue
        self._deliver(1 << 62, n - 1)
        pending = len(self.inflight)
        for st in self.strategies:
            st.stop()
        return self._result(pending)

    # ------------------------------------------------------------------ results
    def _result(self, pending: int) -> EventRun:
        ex, recs, model = self.ex, self.recs, self.model
        tv = self._tv
        f = np.array([(k, tv[k], s, q, p, fee, mk, sid, cid)
                      for k, s, q, p, fee, mk, sid, cid in ex.fills], dtype=FILL_DTYPE) \
            if ex.fills else np.zeros(0, FILL_DTYPE)
        syms = sorted({int(s) for s in f["symbol"]}) or sorted(
            {st.symbol for st in self.strategies if st.symbol})
        kind = recs["kind"]
        trade = (kind == 1) | (kind == 2)
        if len(syms) == 1:
            mask = trade & (recs["symbol"] == syms[0])
        else:
            mask = trade & np.isin(recs["symbol"], syms) if syms else trade
        idx = np.flatnonzero(mask)
        capital = float(model.initial_capital)
        if len(idx) == 0:
            idx = np.arange(len(recs))
        ts = self.t[idx]
        # account state after each fill, marked at every trade record of the traded symbols
        cash = capital - np.cumsum(f["qty"] * f["price"] + f["fee"]) if len(f) else np.zeros(0)
        after = np.searchsorted(f["index"], idx, side="right") if len(f) else np.zeros(len(idx),
                                                                                       int)
        cash_at = np.concatenate(([capital], cash))[after]
        eq = cash_at.copy()
        pos_total = np.zeros(len(idx))
        for s in syms:
            sel = f["symbol"] == s
            pq = np.concatenate(([0.0], np.cumsum(f["qty"][sel])))
            a = np.searchsorted(f["index"][sel], idx, side="right")
            qty_at = pq[a]
            own = np.flatnonzero(recs["symbol"][idx] == s)
            last = np.full(len(idx), np.nan)
            last[own] = recs["price"][idx[own]]
            # forward-fill the instrument's last trade price
            fill_i = np.maximum.accumulate(np.where(np.isnan(last), -1, np.arange(len(idx))))
            px = np.where(fill_i >= 0, last[np.maximum(fill_i, 0)], 0.0)
            eq += qty_at * px
            pos_total += np.abs(qty_at)
        dd, dd_ns = M.max_drawdown(eq, ts, capital)
        exposure_ns = int(((ts[1:] - ts[:-1]) * (pos_total[:-1] > 1e-12)).sum()) if len(ts) else 0
        period_ns = max(1, int(round(self.period_s * 1e9)))
        need = max(1, (int(ts[-1]) - int(ts[0]) + period_ns - 1) // period_ns)
        bounds = ts[0] + period_ns * np.arange(1, need + 1, dtype=np.int64)
        samples = np.empty(need + 1)
        samples[0] = capital
        samples[1:] = eq[np.searchsorted(ts, bounds, side="right") - 1]
        trips, wins = _round_trips(f, capital)
        stats = {"final_equity": float(eq[-1]), "cash": float(ex.cash), "trades": trips,
                 "wins": wins, "turnover_notional": float(np.abs(f["qty"] * f["price"]).sum()),
                 "fees": float(f["fee"].sum()), "n_fills": int(len(f)),
                 "n_signals": self.signals, "max_drawdown": dd,
                 "max_drawdown_duration_ns": dd_ns, "exposure_ns": exposure_ns,
                 "n_samples": need + 1, "pending_at_end": pending,
                 "working_at_end": len(ex.working), "positions": dict(ex.pos)}
        met = M.summarize(stats, samples, int(ts[0]), int(ts[-1]), capital, self.period_s,
                          len(recs))
        met["maker_fills"] = int(f["maker"].sum())
        met["events"] = self.events
        rej = dict(ex.rejects)
        for k, v in self.risk_rejects.items():
            rej[k] = rej.get(k, 0) + v
        met["rejects"] = int(sum(rej.values()))
        return EventRun(met, stats, f, eq, ts, pos_total, rej, self.events)


def _round_trips(f: np.ndarray, capital: float) -> tuple[int, int]:
    """Round trips (a position back to flat, or through zero: that counts as closed there) and
    how many ended with more cash than at their opening (the account is flat at both ends)."""
    trips = wins = 0
    cash = capital
    pos: dict[int, float] = {}
    open_cash: dict[int, float] = {}
    for s, q, p, fee in zip(f["symbol"].tolist(), f["qty"].tolist(), f["price"].tolist(),
                            f["fee"].tolist()):
        p0 = pos.get(s, 0.0)
        p1 = p0 + q
        eps = 1e-12 * max(1.0, abs(q))
        if abs(p0) <= eps:
            open_cash[s] = cash
        closes = abs(p0) > eps and (abs(p1) <= eps or (p0 > 0) != (p1 > 0))
        if closes:
            part = min(1.0, abs(p0) / abs(q))
            at_flat = cash - (-p0) * p - fee * part
            trips += 1
            wins += at_flat - open_cash.get(s, capital) > 0
            open_cash[s] = at_flat
        cash -= q * p + fee
        pos[s] = 0.0 if abs(p1) <= eps else p1
    return trips, wins


def short_sample_warning(span_s: float) -> str | None:
    """The warning metrics.summarize attaches to a short sample (None if long enough)."""
    if span_s < M.SHORT_SAMPLE_DAYS * 86400:
        return M.summarize({"final_equity": 1, "trades": 0, "max_drawdown": 0,
                            "max_drawdown_duration_ns": 0, "wins": 0, "exposure_ns": 0,
                            "turnover_notional": 0, "fees": 0, "n_fills": 0, "n_signals": 0},
                           np.ones(2), 0, int(span_s * 1e9), 1.0, 60.0, 0).get("warning")
    return None
