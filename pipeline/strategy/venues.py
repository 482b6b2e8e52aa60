"""Several venues in one strategy process: more than one tick ring in, more than one gateway out.

A run of several venues has a collector per venue, each the one writer of its own tick ring
(docs/architecture.md, "Several venues at once"), and a gateway per venue, each with its own
signal channel. The strategy process then reads every ring ([ring].name and [strategy].rings)
through one `MultiReader`, which the loop uses exactly like a single ring's reader, sends each
instance's signals to its venue's gateway ([strategy].channels) and watches each gateway's
trading state in the launcher's status block (`GatewayStates`): an instance learns that its
venue's gateway went HALTED or REDUCING (`gateway_state`, and the optional hook
`on_gateway_state(state)`) while the other venues keep trading.

With one ring the process uses that ring's reader itself: none of this is on the single-venue
path.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Mapping

from pipeline.records import TradingState

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
        """The oldest writer heartbeat among the rings whose writer is open: a quiet feed on any
        venue makes the process's STALE (every strategy suspends, conservatively)."""
        ages = [a for r in self.rings if not r.writer_closed
                and (a := r.heartbeat_age_ns()) is not None]
        return max(ages) if ages else None

    def close(self) -> None:
        for r in self.rings:
            r.close()


class MultiReader:
    """One reader over several rings: `poll_into` takes the next ring with data (in turn, so a
    busy ring does not starve a quiet one), `core.wait(timeout_ns)` waits on each open ring in
    turn for MULTI_SLICE_NS with the readers' own wait strategy (a blocking reader therefore
    sleeps on a futex and sees another ring's tick within MULTI_SLICE_NS)."""

    def __init__(self, readers: list):
        self.readers = readers
        self._cores = [r.core for r in readers]
        self._polls = [r.poll_into for r in readers]
        self._next = 0
        self.core = self           # the loop calls reader.core.wait(ns)

    def poll_into(self, buf) -> int:
        n = len(self._polls)
        for k in range(n):
            i = (self._next + k) % n
            if self._cores[i].available() > 0:
                self._next = (i + 1) % n
                return self._polls[i](buf)
        return 0

    def wait(self, timeout_ns: int) -> bool:
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

    def lag(self) -> int:
        return sum(r.lag() for r in self.readers)

    def stats(self) -> dict:
        per = [r.stats() for r in self.readers]
        out = {k: sum(s[k] for s in per) for k in ("received", "lost", "gaps", "overwritten")}
        out["lag"] = None if any(s["lag"] is None for s in per) else sum(s["lag"] for s in per)
        out["rings"] = {r.ring.name: s for r, s in zip(self.readers, per)}
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
