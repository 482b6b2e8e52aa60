"""Several venues in one strategy process: more than one tick ring in, more than one gateway out.

A run of several venues has a collector per venue, each the one writer of its own tick ring
(docs/architecture.md, "Several venues at once"), and a gateway per venue, each with its own
signal channel. The strategy process then reads every ring ([ring].name and [strategy].rings)
through one `MultiReader`, which the loop uses exactly like a single ring's reader, sends each
instance's signals to its venue's gateway ([strategy].channels) and watches each gateway's
trading state in the launcher's status block (`GatewayStates`): an instance learns that its
venue's gateway went HALTED or REDUCING (`gateway_state`, and the optional hook
`on_gateway_state(state)`) while the other venues keep trading.

A quiet feed is judged per ring: when one ring's writer heartbeat is older than
[strategy].feed_stale_ms, the reader hands the loop STALE records for that ring's venue only (one
per instance (venue, symbol) it feeds), so those instances suspend while the other venues'
instances trade on; when its heartbeat is fresh again it says so in the log. Which venues a ring
carries comes from the run's collectors ([collector].venue_id of the role writing it:
pipeline/launcher/views.py ring_venues), else from the first records read from it; a ring whose
venue is not known yet makes a STALE for everyone (symbol 0), as one ring would.

With one ring the process uses that ring's reader itself: none of this is on the single-venue
path.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Iterable, Mapping

import numpy as np

from pipeline.records import FLAG_SYNTHETIC, TICK_DTYPE, Kind, TradingState

log = logging.getLogger(__name__)

MULTI_SLICE_NS = 100_000     # waiting on several rings: this long on each in turn
STATE_EVERY_NS = 20_000_000  # look at the gateways' trading states this often


class MultiRing:
    """The rings' shared facts, as the loop asks them of one ring."""

    def __init__(self, rings: list):
        self.rings = rings
        self.name = "+".join(r.name for r in rings)

    @property
    def writer_closed(self) -> bool:
        """Every writer closed: nothing more will come."""
        return all(r.writer_closed for r in self.rings)

    def heartbeat_age_ns(self) -> int | None:
        """None: staleness is judged per ring, by MultiReader (the loop's one-ring check, which
        would suspend every instance for one quiet venue, does not apply)."""
        return None

    def close(self) -> None:
        for r in self.rings:
            r.close()


class MultiReader:
    """One reader over several rings: `poll_into` takes the next ring with data (in turn, so a
    busy ring does not starve a quiet one), `core.wait(timeout_ns)` waits on each open ring in
    turn for MULTI_SLICE_NS with the readers' own wait strategy (a blocking reader therefore
    sleeps on a futex and sees another ring's tick within MULTI_SLICE_NS)."""

    def __init__(self, readers: list, *, stale_ns: int = 0,
                 ring_venues: Mapping[str, Iterable[int]] | None = None,
                 instances: Iterable[tuple[int, int]] = ()):
        self.readers = readers
        self._cores = [r.core for r in readers]
        self._polls = [r.poll_into for r in readers]
        self._next = 0
        self.core = self           # the loop calls reader.core.wait(ns)
        # per-ring staleness: stale_ns (0 = off), each ring's venues, the instances' (venue,
        # symbol); STALE records waiting to be read (`_pending`)
        self.stale_ns = int(stale_ns)
        self._check_every = max(1_000_000, self.stale_ns // 4)
        self._next_check = 0
        self._rings = [r.ring for r in readers]
        known = ring_venues or {}
        self._venues: list[set[int]] = [set(known.get(r.name, ())) for r in self._rings]
        self._learn = any(not v for v in self._venues)
        self._instances = sorted(set(instances))
        self.stale = [False] * len(readers)      # each ring: STALE handed out, not fresh since
        self.stales = 0                          # STALE records made for quiet rings
        self.stale_events: list[dict] = []       # ring, state (STALE / FRESH), at (monotonic s)
        self._pending: np.ndarray | None = None

    def poll_into(self, buf) -> int:
        if self._pending is not None:
            return self._take_pending(buf)
        n = len(self._polls)
        for k in range(n):
            i = (self._next + k) % n
            if self._cores[i].available() > 0:
                self._next = (i + 1) % n
                got = self._polls[i](buf)
                if self._learn and got:
                    self._learn_venues(i, buf[:got])
                return got
        return 0

    def wait(self, timeout_ns: int) -> bool:
        if self._pending is not None:
            return True
        if self.stale_ns:
            now = time.perf_counter_ns()
            if now >= self._next_check:
                self._next_check = now + self._check_every
                if self.check_stale():
                    return True
        cores = self._cores
        if any(c.available() > 0 for c in cores):
            return True
        rings = [r.ring for r in self.readers]
        deadline = time.perf_counter_ns() + timeout_ns
        i = self._next
        while True:
            open_ = [k for k in range(len(cores)) if not rings[k].writer_closed]
            left = deadline - time.perf_counter_ns()
            if not open_ or left <= 0:
                return any(c.available() > 0 for c in cores)
            i = next((k for k in open_ if k >= i), open_[0])
            if cores[i].wait(min(MULTI_SLICE_NS, left)):
                return True
            if any(c.available() > 0 for c in cores):
                return True
            i += 1

    # ------------------------------------------------------------------ per-ring staleness
    def check_stale(self) -> int:
        """Look at each open ring's writer heartbeat: a ring older than stale_ns that was not
        stale yet queues STALE records for its venue's instances; a stale ring whose heartbeat
        is fresh again is marked fresh. Returns the records queued."""
        queued = []
        for i, ring in enumerate(self._rings):
            if ring.writer_closed:
                continue
            age = ring.heartbeat_age_ns()
            if age is not None and age > self.stale_ns:
                if not self.stale[i]:
                    self.stale[i] = True
                    recs = self._stale_records(i)
                    if len(recs):
                        queued.append(recs)
                        self.stales += len(recs)
                    self.stale_events.append({"ring": ring.name, "state": "STALE",
                                              "at": round(time.monotonic(), 3)})
                    log.warning("feed stale: ring %s's writer heartbeat is %.1f s old; the "
                                "instances of venue(s) %s suspended until fresh data", ring.name,
                                age / 1e9, sorted(self._venues[i]) or "unknown: all")
            elif self.stale[i] and age is not None:
                self.stale[i] = False
                self.stale_events.append({"ring": ring.name, "state": "FRESH",
                                          "at": round(time.monotonic(), 3)})
                log.warning("feed fresh again: ring %s's writer heartbeats", ring.name)
        if not queued:
            return 0
        recs = np.concatenate(queued if self._pending is None else [self._pending, *queued])
        if not len(recs):
            return 0
        self._pending = recs
        return len(recs)

    def _stale_records(self, i: int) -> np.ndarray:
        """STALE records for ring i: one per (venue, symbol) of the instances its venues feed,
        or one for everyone (symbol 0) while its venues are not known."""
        venues = self._venues[i]
        # an instance of every symbol (symbol 0) can only be reached by a STALE for everyone
        keys = sorted({(v, s) for v, s in self._instances if v in venues}) if venues \
            else [(0, 0)]
        recs = np.zeros(len(keys), TICK_DTYPE)       # none: no instance trades its venue
        recs["venue"] = [v for v, _ in keys]
        recs["symbol"] = [s for _, s in keys]
        recs["kind"] = int(Kind.STALE)
        recs["flags"] = FLAG_SYNTHETIC
        recs["mono_ts"] = time.perf_counter_ns()
        return recs

    def _take_pending(self, buf) -> int:
        p = self._pending
        k = min(len(p), len(buf))
        buf[:k] = p[:k]
        self._pending = p[k:] if k < len(p) else None
        return k

    def _learn_venues(self, i: int, recs) -> None:
        if not self._venues[i]:
            v = {int(x) for x in np.unique(recs["venue"]) if x}
            if v:
                self._venues[i] = v
                self._learn = any(not s for s in self._venues)

    def lag(self) -> int:
        return sum(r.lag() for r in self.readers)

    def stats(self) -> dict:
        per = [r.stats() for r in self.readers]
        out = {k: sum(s[k] for s in per) for k in ("received", "lost", "gaps", "overwritten")}
        out["lag"] = None if any(s["lag"] is None for s in per) else sum(s["lag"] for s in per)
        out["rings"] = {r.ring.name: s for r, s in zip(self.readers, per)}
        out["stale_records"] = self.stales
        out["stale_rings"] = [r.name for r, st in zip(self._rings, self.stale) if st]
        out["stale_events"] = list(self.stale_events)
        return out


class GatewayStates:
    """Each gateway's trading state, read from its slot of the launcher's status block
    ($PIPELINE_GATEWAY_SLOTS names the slot of each channel's gateway). Outside the launcher
    (no status block) it watches nothing."""

    def __init__(self, strategies_of: Mapping[str, list], environ: Mapping[str, str] = os.environ):
        from pipeline.launcher.views import ENV_GATEWAY_SLOTS, parse_gateway_slots
        from pipeline.telemetry.status import ENV_SEGMENT, StatusBlock
        self.block = None
        self.watch: list[tuple[str, int, list]] = []
        self.states: dict[str, str] = {}
        self.changes: list[dict] = []       # every change seen: channel, state, at (monotonic s)
        self._next = 0
        try:
            slots = parse_gateway_slots(environ.get(ENV_GATEWAY_SLOTS, ""))
        except ValueError as exc:
            log.error("gateway states not watched: %s", exc)
            return
        segment = environ.get(ENV_SEGMENT)
        watch = [(ch, slots[ch], sts) for ch, sts in strategies_of.items() if ch in slots]
        if not watch or not segment:
            return
        try:
            self.block = StatusBlock.attach(segment)
        except (OSError, RuntimeError) as exc:
            log.error("gateway states not watched: status block %r: %s", segment, exc)
            return
        n = len(self.block.slots)
        self.watch = [w for w in watch if w[1] < n]
        for ch, slot, _ in watch:
            if slot >= n:
                log.error("gateway states: channel %s's slot %d is not in the status block "
                          "(%d slots)", ch, slot, n)

    def poll(self, now_ns: int) -> list:
        """(strategy, intent) pairs of the instances' on_gateway_state hooks, for every change
        of a gateway's trading state since the last look (at most every STATE_EVERY_NS)."""
        if not self.watch or now_ns < self._next:
            return []
        self._next = now_ns + STATE_EVERY_NS
        out = []
        slots = self.block.slots
        for ch, slot, sts in self.watch:
            try:
                state = TradingState(int(slots[slot]["trading_state"])).name
            except ValueError:
                continue
            if self.states.get(ch) == state:
                continue
            first = ch not in self.states
            self.states[ch] = state
            self.changes.append({"channel": ch, "state": state, "at": round(time.monotonic(), 3)})
            if not (first and state == "ACTIVE"):
                log.warning("gateway of channel %s is %s (strategies %s)", ch, state,
                            [st.strategy_id for st in sts])
            for st in sts:
                st.gateway_state = state
                hook = getattr(st, "on_gateway_state", None)
                if hook is not None and not (first and state == "ACTIVE"):
                    out += [(st, it) for it in hook(state) or ()]
        return out

    def stats(self) -> dict:
        return {"gateway_states": dict(self.states), "gateway_state_changes": list(self.changes)}

    def close(self) -> None:
        if self.block is not None:
            self.block.close()
            self.block = None
