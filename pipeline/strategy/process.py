"""The strategy process: tick ring → strategies → signals over ZeroMQ PUSH.

    python -m pipeline.strategy --config configs/demo.toml [--stats-json PATH]

or, from the launcher, `run(cfg)` in a child process (create nothing before the fork: the ring
attachment and the ZeroMQ context are made inside `run`).

States: NEW → RUNNING → STOPPING → STOPPED. Startup order: attach the ring (waiting up to
`attach_timeout`), create the reader at the ring's cursor, start the strategies, then open the
signal sockets; the first HELLO therefore proves the reader exists. The loop:

    service the READY handshake (non-blocking)
    wait for ticks with the configured wait strategy, in slices of 5 ms
    poll a batch into a preallocated buffer, run every strategy on it, send its signals (NOBLOCK)
    keep the rare signal path warm (SignalSender.warm, at most every 1 ms)

Nothing in the loop waits on the gateway: signals before READY are buffered (bounded, TTL-checked),
after READY a full pipe or an absent gateway drops the signal and counts it. A SIGTERM / SIGINT
only requests a stop; the loop notices within one wait slice (≤ 5 ms), stops the strategies and
closes the sockets (LINGER ≤ `linger_ms`), so the process exits well within 2 s with no gateway.
Shutdown order: strategies.stop → sender.close → ring.close.
"""
from __future__ import annotations

import enum
import logging
import os
import signal
import time
from typing import Callable

import numpy as np

from pipeline.bus.ring import TickRing
from pipeline.bus.signals import Signal, SignalSender
from pipeline.config import PipelineConfig
from pipeline.hotloop import LoopGC
from pipeline.records import FLAG_SYNTHETIC, SIGNAL_DTYPE, TICK_DTYPE, Kind, SignalAction, Venue
from pipeline.registry import SymbolRegistry
from pipeline.strategy import loader
from pipeline.strategy.base import Strategy
from pipeline.strategy.feedback import LiveFeedback
from pipeline.strategy.orders import Cancel, Replace
from pipeline.telemetry.role import RoleTelemetry

log = logging.getLogger(__name__)

SIGNAL_SIZE = SIGNAL_DTYPE.itemsize
WAIT_SLICE_S = 0.005         # one wait; the loop then beats, services the handshake and warms
WARM_EVERY_NS = 1_000_000    # run the signal send path dry at most this often (SignalSender.warm)


class State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


def build_strategies(cfg: PipelineConfig, registry: SymbolRegistry | None = None,
                     source: str = "<config>") -> list[Strategy]:
    """One Strategy per [[strategy.instances]] entry: its class from `kind` (a built-in or a
    plug-in, pipeline.strategy.loader; file paths relative to the config file), params checked
    strictly; symbol ids from `registry` (the run's instruments: pipeline.instruments.for_role;
    None = the offline universe, registry.DEFAULT). Every error is a ConfigError (or KeyError for an unknown instrument) before I/O."""
    if registry is None:
        from pipeline.registry import DEFAULT as registry
    out = []
    base = loader.config_dir(source)
    for inst in cfg.strategy.instances:
        cls = loader.resolve(inst.kind, base, where=f"{source}: strategy.instances[id={inst.id}]")
        out.append(cls.from_config(inst, registry=registry, source=source))
    return out


class StrategyProcess:
    """The strategy role as a component. `run()` blocks until stopped; `request_stop()` is safe
    from a signal handler."""

    def __init__(self, cfg: PipelineConfig, *, source: str = "<config>",
                 registry: SymbolRegistry | None = None, attach_timeout: float = 10.0):
        self.cfg = cfg
        self.source = source
        if registry is None:                 # the run's instrument cache
            from pipeline.instruments import for_role
            registry = for_role(cfg, "strategy")
        self.strategies = build_strategies(cfg, registry, source)   # config errors before I/O
        self.attach_timeout = attach_timeout
        self.state = State.NEW
        self._stop = False
        self.ticks = 0
        self.batches = 0
        self.feed_stales = 0         # STALE records made for a quiet feed (writer heartbeat)
        self.signals = 0
        self.sender: SignalSender | None = None
        self.reader = None
        self._reader_stats: dict = {}
        self.exit_reason = ""
        self.gc = LoopGC()
        self.bad_intents = 0    # a hook returned something that is not an intent
        self.cancels = 0
        self.replaces = 0
        self.ticks_unsynced = 0      # records not given to the strategies: waiting for the
        #                              gateway's start-up state (order feedback)
        self.fb: LiveFeedback | None = None
        # several venues (pipeline/strategy/venues.py): a sender and a feedback per channel
        self.senders: dict[str, SignalSender] = {}
        self.fbs: list[tuple[LiveFeedback, SignalSender]] = []
        self.gw_states = None
        self._route: dict[int, SignalSender] = {}    # id(strategy) → its gateway's sender

    def request_stop(self, *_args) -> None:
        self._stop = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def stats(self) -> dict:
        s = {"state": self.state.value, "ticks": self.ticks, "batches": self.batches,
             "signals": self.signals,
             "feed_stales": self.feed_stales + (self.reader.stats() if self.reader is not None
                                                else self._reader_stats).get("stale_records", 0),
             "exit_reason": self.exit_reason, "bad_intents": self.bad_intents,
             "ticks_unsynced": self.ticks_unsynced, "cancels": self.cancels,
             "replaces": self.replaces}
        if self.fb is not None:
            s.update(self.fb.stats())
        if self.sender is not None:
            s.update(self.sender.stats())
        if len(self.senders) > 1:         # several gateways: each channel's own counters
            fb_of = {fb.channel: fb for fb, _ in self.fbs}
            s["channels"] = {ch: {**snd.stats(), **fb_of[ch].stats()}
                             for ch, snd in self.senders.items()}
        if self.gw_states is not None:
            s.update(self.gw_states.stats())
        rs = self.reader.stats() if self.reader is not None else self._reader_stats
        s.update({f"ring_{k}": v for k, v in rs.items()})
        s["strategies"] = [st.describe() for st in self.strategies]
        return s

    def run(self, on_running: Callable[["StrategyProcess"], None] | None = None) -> dict:
        if self.state is not State.NEW:
            raise RuntimeError(f"StrategyProcess.run() called in state {self.state.value}")
        scfg = self.cfg.strategy
        # Under the launcher, the role's placement (roles.<name>.wait) decides the wait strategy.
        wait = os.environ.get("PIPELINE_WAIT") or scfg.wait or self.cfg.reader.wait
        self.tel = RoleTelemetry("strategy", main_hop="ring_to_strategy")
        ring = TickRing.attach(self.cfg.ring.name, timeout=self.attach_timeout)
        try:
            reader = self.reader = ring.reader(wait=wait, max_batch=self.cfg.reader.max_batch)
            if scfg.rings:                 # several venues: a ring per collector, read in turn
                from pipeline.strategy.venues import MultiReader, MultiRing
                from pipeline.launcher.views import ring_venues
                more = [TickRing.attach(n, timeout=self.attach_timeout) for n in scfg.rings]
                ring = MultiRing([ring, *more])
                reader = self.reader = MultiReader(     # staleness per ring: its venue only
                    [reader, *(r.reader(wait=wait, max_batch=self.cfg.reader.max_batch)
                               for r in more)], stale_ns=scfg.feed_stale_ms * 1_000_000,
                    ring_venues=ring_venues(self.cfg),
                    instances=[(int(st.venue), int(st.symbol)) for st in self.strategies])
            buf = np.empty(self.cfg.reader.max_batch, dtype=TICK_DTYPE)
            # the channel token comes from the launcher ($PIPELINE_SIGNAL_TOKEN) or a standalone
            # gateway's token file; the HELLO announces every instance's id (the gateway refuses
            # signals of ids no HELLO announced). One sender per gateway: each instance's
            # signals go to its venue's channel ([strategy].channels)
            by_channel: dict[str, list[Strategy]] = {}
            for st in self.strategies:
                by_channel.setdefault(scfg.channel_of(Venue(st.venue).name), []).append(st)
            by_channel = by_channel or {scfg.channel: []}
            for ch, sts in by_channel.items():
                snd = self.senders[ch] = SignalSender(
                    ch, strategy_id=sts[0].strategy_id if sts else 0,
                    strategy_ids=tuple(st.strategy_id for st in sts), sndhwm=scfg.sndhwm,
                    linger_ms=scfg.linger_ms, hello_every_s=scfg.hello_every_s)
                for st in sts:
                    st.epoch = snd.epoch   # one epoch per sender; each instance its own seq
                    self._route[id(st)] = snd
                self.fbs.append((LiveFeedback(ch, scfg.feedback, sts, snd.epoch), snd))
            sender = self.sender = next(iter(self.senders.values()))
            self.fb = self.fbs[0][0]
            if len(by_channel) > 1 or scfg.channels:
                from pipeline.strategy.venues import GatewayStates
                self.gw_states = GatewayStates(by_channel)
            for st in self.strategies:
                st.start()
            self.state = State.RUNNING
            log.info("strategy process running: ring %r (wait=%s), channel %s, %d strategies",
                     ring.name, wait, sender.data_ep, len(self.strategies))
            self.tel.running()
            if on_running is not None:
                on_running(self)
            self._loop(ring, reader, sender, buf)
        finally:
            self.gc.stop()
            self.state = State.STOPPING
            for st in self.strategies:
                try:
                    st.stop()
                except Exception:  # noqa: BLE001 — one strategy's failure must not block shutdown
                    log.exception("strategy %s: on_stop failed", st.strategy_id)
            for snd in self.senders.values():
                snd.close()
            for fb, _ in self.fbs:
                fb.close()
            if self.gw_states is not None:
                self.gw_states.close()
            if self.reader is not None:      # counters read now: the reader dies with the mapping
                self._reader_stats = self.reader.stats()
                self.reader = None
            ring.close()
            self.state = State.STOPPED
            self.tel.close(ticks=self.ticks, signals=self.signals,
                           dropped=self.sender.stats().get("dropped", 0) if self.sender else 0)
        stats = self.stats()
        log.info("strategy process stopped (%s): %s", self.exit_reason,
                 {k: v for k, v in stats.items() if k != "strategies"})
        run_dir = os.environ.get("PIPELINE_RUN_DIR")
        if run_dir:                   # the launcher folds it into its summary (roles.<name>.report)
            import json
            try:
                with open(os.path.join(run_dir, f"{self.tel.name}.summary.json"), "w") as f:
                    json.dump(stats, f, default=str)
            except OSError as exc:
                log.warning("strategy summary not written: %s", exc)
        return stats

    def _loop(self, ring: TickRing, reader, sender: SignalSender, buf: np.ndarray) -> None:
        scfg = self.cfg.strategy
        poll_into = reader.poll_into
        strategies = self.strategies
        send = sender.send
        stats_every = int(scfg.stats_every_s * 1e9)
        next_stats = time.perf_counter_ns() + stats_every
        exit_on_close = scfg.exit_when_writer_closes
        tel = self.tel
        record_hop = tel.hops.recorder("ring_to_strategy")
        perf = time.perf_counter_ns
        warm = sender.warm
        send_record = sender.send_record
        ring_target = sender.ring_target
        compiled = [(st, st.compiled() if scfg.compiled else None) for st in strategies]
        # several gateways (pipeline/strategy/venues.py): the other senders, each instance's own
        route = self._route
        others = tuple(s for s in self.senders.values() if s is not sender)
        compiled = [(st, fast, route[id(st)] if others else None) for st, fast in compiled]
        gw_states = self.gw_states
        other_fbs = tuple(self.fbs[1:])
        timers = [st for st in strategies if st.timer_ns > 0]
        now = time.perf_counter_ns()
        self._due = {id(st): now + st.timer_ns for st in timers}
        self._next_timer = min(self._due.values()) if timers else 1 << 62
        sigbuf = np.zeros(len(buf), dtype=SIGNAL_DTYPE)
        sigmv = memoryview(sigbuf.view(np.uint8))
        core_wait = reader.core.wait
        slice_ns = int(WAIT_SLICE_S * 1e9)
        warm_ns = WARM_EVERY_NS
        next_warm = 0
        # No collection at a random allocation in the middle of a batch: the loop collects after
        # a batch (run() turns automatic collection back on).
        loop_gc = self.gc
        loop_gc.start()
        stale_ns = scfg.feed_stale_ms * 1_000_000
        stale_marked = False          # a STALE was handed to the strategies; data clears it
        fb = self.fb
        fb_on = fb.mode != "off"
        gate = False                  # True: waiting for the gateway's start-up state
        while not self._stop:
            sender.service()
            for snd in others:
                snd.service()
            if fb_on:
                for st, it in fb.service(perf(), sender.got_ready):
                    self._send_intent(st, it, send)
                gate = fb.gate
                for ofb, snd in other_fbs:
                    for st, it in ofb.service(perf(), snd.got_ready):
                        self._send_intent(st, it, send)
                    gate = gate or ofb.gate
            if gw_states is not None:
                for st, it in gw_states.poll(perf()):
                    self._send_intent(st, it, send)
            tel.beat(ticks=self.ticks, signals=self.signals)
            got = core_wait(slice_ns)     # the kernel's wait (nogil), no Python wrapper
            if got:
                n = poll_into(buf)
                if n == 0:
                    continue
                stale_marked = False
            elif stale_ns and not stale_marked and not ring.writer_closed and (
                    (age := ring.heartbeat_age_ns()) is not None and age > stale_ns):
                # the feed's writer has gone quiet: a STALE for everyone (symbol 0), through
                # the same path as the ring's own records, so every strategy suspends
                stale_marked = True
                self.feed_stales += 1
                log.warning("feed stale: no data and the ring writer's heartbeat is %.1f s old; "
                            "strategies suspended until fresh data", age / 1e9)
                buf[0] = np.zeros(1, TICK_DTYPE)[0]
                buf[0]["kind"] = Kind.STALE
                buf[0]["flags"] = FLAG_SYNTHETIC
                buf[0]["mono_ts"] = perf()
                n, got = 1, True
            if got and gate:          # no decision before the position is known
                record_hop(max(1, perf() - int(buf["mono_ts"][n - 1])))
                self.ticks += n
                self.ticks_unsynced += n
                continue
            if got:
                t_read = perf()
                batch = buf[:n]       # a view of the reused buffer: strategies must not keep it
                for st, fast, own in compiled:
                    if own is not None:       # several gateways: this instance's sender
                        ring_target, send_record = own.ring_target, own.send_record
                    if fast is not None:      # a compiled strategy: signal records, no objects
                        tgt = ring_target()
                        if tgt is not None:   # it publishes each signal into the ring itself,
                            # numbered from the instance's own stream (seq+1..seq+k)
                            k = fast(batch, sigbuf, tgt[0], st.epoch, st.seq)
                            if k:
                                self.signals += k
                                st.seq += k
                                (sender if own is None else own).account_ring(k, st.seq)
                            continue
                        k = fast(batch, sigbuf)
                        for i in range(k):
                            self.signals += 1
                            sigbuf[i]["epoch"] = st.epoch
                            sigbuf[i]["seq"] = st.next_seq()
                            send_record(sigmv[i * SIGNAL_SIZE:(i + 1) * SIGNAL_SIZE])
                        continue
                    for it in st.on_ticks(batch):
                        self._send_intent(st, it, send)
                if timers and t_read >= self._next_timer:
                    self._timers(perf(), send)
                # bookkeeping after the signals are out (an HdrHistogram record is Python code)
                record_hop(max(1, t_read - int(batch["mono_ts"][-1])))
                self.ticks += n
                self.batches += 1
                if t_read >= next_warm:       # signals are rare: keep their path in cache
                    next_warm = t_read + warm_ns
                    warm()
                    for snd in others:
                        snd.warm()
                loop_gc.maybe(t_read)
            elif timers and not gate and perf() >= self._next_timer:
                self._timers(perf(), send)
            elif ring.writer_closed:
                if exit_on_close and reader.lag() == 0:
                    self.exit_reason = "writer closed"
                    return
                time.sleep(0.01)      # nothing will come; do not spin on a closed ring
            else:
                warm()
            if stats_every and time.perf_counter_ns() >= next_stats:
                next_stats += stats_every
                log.info("strategy stats: %s",
                         {k: v for k, v in self.stats().items() if k != "strategies"})
        self.exit_reason = "stop requested"


    def _send_intent(self, st: Strategy, it, send) -> None:
        """One intent of a strategy's hook: a new order goes out numbered from the instance's own
        stream; a Cancel as a CANCEL record naming the order (no number of its own); a Replace as
        its new order marked REPLACE with the distance back to the order it replaces (an order of
        an earlier run, or one too far back, is cancelled and the new order sent on its own)."""
        if len(self.senders) > 1:             # several gateways: its venue's
            send = self._route[id(st)].send
        if isinstance(it, Signal):
            # numbered and tracked by its maker (target, market, limit ...): stamp's frame saved
            sig = it if it.seq and it.seq in st.orders else st.stamp(it)
            if not st.feedback:               # no order events: nothing would retire it
                st.orders.pop(sig.seq, None)
            self.signals += 1
            send(sig)
            return
        if isinstance(it, Cancel):
            self.cancels += 1
            send(cancel_record(st, it.client_id, st.clock.mono_ns()))
            return
        if isinstance(it, Replace):
            new = st.stamp(it.new)
            back = new.seq - it.client_id if isinstance(it.client_id, int) else 0
            self.signals += 1
            self.replaces += 1
            if 0 < back < 1 << 16:
                send(new._replace(action=int(SignalAction.REPLACE), replace_back=back))
            else:
                send(cancel_record(st, it.client_id, st.clock.mono_ns()))
                send(new)
            return
        self.bad_intents += 1
        if self.bad_intents == 1:
            log.warning("strategy %d: %r is not an intent (a Signal, Cancel or Replace); counted "
                        "as bad_intents", st.strategy_id, type(it).__name__)

    def _timers(self, now: int, send) -> None:
        due = self._due
        for st in self.strategies:
            t = due.get(id(st))
            if t is not None and now >= t:
                due[id(st)] = now + st.timer_ns
                for it in st.on_timer(now) or ():
                    self._send_intent(st, it, send)
        self._next_timer = min(due.values())


def cancel_record(st: Strategy, key, now_mono: int) -> Signal:
    """The CANCEL signal record of one of `st`'s orders (`key`: its seq, or (epoch, seq) for an
    order of an earlier run): the record's own (epoch, seq) name the order."""
    epoch, seq = key if isinstance(key, tuple) else (st.epoch, key)
    o = st.orders.get(key)
    return Signal(epoch=epoch, seq=seq, created_mono=now_mono, ttl_ns=st.ttl_ns,
                  qty=o.remaining if o is not None else 0.0, strategy_id=st.strategy_id,
                  symbol=st.symbol, venue=st.venue, side=o.side if o is not None else 0,
                  order_type=o.order_type if o is not None else 2,
                  action=int(SignalAction.CANCEL))


def run(cfg: PipelineConfig, source: str = "<config>", install_signals: bool = True) -> dict:
    """Run the strategy role in this process until SIGTERM/SIGINT; returns the final counters.
    The launcher calls this in its child process."""
    proc = StrategyProcess(cfg, source=source)
    if install_signals:
        proc.install_signal_handlers()
    return proc.run()
