"""The launcher's supervision: restart and halt bookkeeping (a mixin of supervisor.Launcher).

Any role that dies or stops heartbeating → the gateways that depend on it are told to HALT
(SIGUSR1 and a halt word) at once, unless the role's restart policy says otherwise
(pipeline/launcher/restart.py): a restartable role is restarted with backoff while those gateways
are HALTED through the halt word only, and that HALT clears itself once every role they depend on
is back and fresh ([launcher] clear_halt_on_recovery). The module docstring of supervisor.py has
the whole story.

Which gateways depend on a role (`halt_scope`): a collector's (or recorder's) death concerns the
gateways of its tick ring only ([ring].name of their views: in a run of several venues, a dead
OKX collector HALTs the OKX gateway and Binance trades on); any other role's (sim, strategy,
gateway, command) concerns every gateway. A HALT of every gateway is the status block's run-wide
halt word; a HALT of some is each one's own word (its slot's extra record). A role that fails for
good stops the run when its HALT covers every gateway (or there is none); otherwise the run goes
on with the other venues (event "run-continues").
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

from pipeline.records import RoleState

if TYPE_CHECKING:
    from pipeline.launcher.supervisor import Role


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Signal a role's whole process group (the role leads its own group), so anything the role
    started goes too. A group that is already gone is fine."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Supervision:
    """Restart / halt bookkeeping of the launcher's roles (uses Launcher's fields)."""

    def request_stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason

    @property
    def gateways(self) -> list[Role]:
        return [r for r in self.roles.values() if r.spec.kind == "gateway"]

    def halt_scope(self, r: Role) -> list[Role] | None:
        """The gateways that depend on role `r`: a collector's or recorder's are the gateways of
        its tick ring, when that is not all of them; None: every gateway (run-wide)."""
        gws = self.gateways
        if r.spec.kind in ("collector", "recorder") and len(gws) > 1:
            ring = self.cfg.for_role(r.name).ring.name
            mine = [g for g in gws if self.cfg.for_role(g.name).ring.name == ring]
            if mine and len(mine) < len(gws):
                return mine
        return None

    @property
    def halt_final(self) -> bool:
        """Some HALT that never clears itself (not a restartable role's) is in force."""
        return any(self.halts.values())

    def _covered(self, key: str, final: bool) -> bool:
        """A HALT of `key` ("*" = run-wide, else a gateway) at least as final is in force."""
        for k in (key, "*"):
            if k in self.halts and (self.halts[k] or not final):
                return True
        return False

    def halt_gateway(self, why: str, final: bool = True,
                     gateways: list[Role] | None = None) -> None:
        """HALT the gateways (`gateways`, None = every one): a halt word (run-wide, or each one's
        own), and for a final HALT also SIGUSR1 (the kill switch, which never clears itself). A
        HALT for a restartable role's death (final False) is the word alone; clear_halt() lifts
        it."""
        keys = ["*"] if gateways is None else [g.name for g in gateways
                                                 if not self._covered(g.name, final)]
        keys = [k for k in keys if not self._covered(k, final)]
        if not keys:
            return
        self.halted_at = self.halted_at or time.monotonic()
        targets = self.gateways if keys == ["*"] else [self.roles[k] for k in keys]
        for k in keys:
            self.halts[k] = self.halts.get(k, False) or final
            if k == "*":
                self.status.request_halt()
            else:
                self.status.request_halt(self.roles[k].slot)
        if final:
            for g in targets:
                if g.alive:
                    os.kill(g.proc.pid, signal.SIGUSR1)
        self._event("halt", why=why, final=final,
                    gateways="all" if keys == ["*"] else keys)

    def clear_halt(self, key: str = "*") -> None:
        """Lift a HALT (run-wide "*", or one gateway's) that was only for restartable roles."""
        if key not in self.halts or self.halts[key]:
            return
        del self.halts[key]
        self.status.clear_halt(None if key == "*" else self.roles[key].slot)
        if not self.halts:
            self.halted_at = None
        self.halts_cleared += 1
        self._event("halt-cleared", why="every restarted role it waited for is back and fresh",
                    gateways="all" if key == "*" else [key])

    def _clear_recovered_halts(self) -> None:
        """Lift each liftable HALT none of whose roles is still recovering."""
        recovering = [r for r in self.roles.values() if r.recovering]
        scopes = [self.halt_scope(r) for r in recovering]
        for key in [k for k, final in self.halts.items() if not final]:
            if key == "*":
                waits = any(sc is None for sc in scopes)
            else:
                waits = any(sc is None or any(g.name == key for g in sc) for sc in scopes)
            if not waits:
                self.clear_halt(key)

    def fresh(self, r: Role, now_ns: int) -> bool:
        """Back and fresh: running, heartbeating, and for a collector, publishing new ticks."""
        s = self.status.slots[r.slot]
        hb = int(s["heartbeat_mono"])
        if not r.alive or int(s["state"]) != RoleState.RUNNING or not hb:
            return False
        if now_ns - hb > r.spec.heartbeat_timeout * 1e9:
            return False
        return r.spec.kind != "collector" or int(s["ticks"]) > r.ticks_at_start

    def _problem(self, r: Role, now_ns: int) -> str:
        code = r.proc.poll()
        if code is not None and not self.stop_reason:
            if r.spec.kind == "command" and code == 0:
                r.exit_reason = "finished"
                return ""
            return f"exited with code {code}" if code >= 0 else f"killed by signal {-code}"
        if code is None:
            hb = int(self.status.slots[r.slot]["heartbeat_mono"])
            if hb and (now_ns - hb) > r.spec.heartbeat_timeout * 1e9:
                return f"stuck: no heartbeat for {(now_ns - hb) / 1e9:.1f} s"
            if r.recovering and time.monotonic() - r.started_at > \
                    r.spec.restart_policy.fresh_within_s:
                return (f"not fresh within {r.spec.restart_policy.fresh_within_s:g} s "
                        "of its restart")
        return ""

    def check_roles(self) -> None:
        now_ns = time.perf_counter_ns()
        now = time.monotonic()
        for r in self.roles.values():
            if r.restart_at is not None:
                if now >= r.restart_at and not self.stop_reason:
                    r.restart_at = None
                    r.restarts += 1
                    self.start_role(r)
                    r.recovering = True
                continue
            if r.proc is None or r.given_up:
                continue
            problem = self._problem(r, now_ns)
            if not problem:
                if r.recovering and self.fresh(r, now_ns):
                    r.recovering = False
                    r.tracker.on_recovered()
                    self._event("role-recovered", role=r.name, restarts=r.restarts,
                                after_s=round(now - r.started_at, 3))
                continue
            r.exit_reason = problem
            self._event("role-failed", role=r.name, problem=problem)
            delay = r.tracker.on_failure(now) if r.tracker is not None else None
            if delay is not None and not self.stop_reason:
                _signal_group(r.proc, signal.SIGKILL)
                if r.proc.poll() is None:
                    r.proc.wait(5)
                r.restart_at = now + delay
                r.recovering = True
                self._event("restart-scheduled", role=r.name, in_s=delay,
                            this_hour=r.tracker.in_last_hour(now))
                if self.cfg.launcher.halt_on_role_death:
                    self.halt_gateway(f"{r.name} {problem} (restarting)", final=False,
                                      gateways=self.halt_scope(r))
                continue
            if r.tracker is not None and not self.stop_reason:
                problem += (f" (restart cap reached: {r.spec.restart_policy.max_per_hour} "
                            "an hour)")
            if self.cfg.launcher.halt_on_role_death:
                scope = self.halt_scope(r)
                self.halt_gateway(f"{r.name} {problem}", gateways=scope)
                if scope is None or self._covered("*", True) or all(
                        self._covered(g.name, True) for g in self.gateways):
                    self.request_stop(f"role {r.name} {problem}")
                else:                      # the other venues' gateways trade on
                    self._event("run-continues", role=r.name,
                                trading=[g.name for g in self.gateways
                                         if not self._covered(g.name, True)])
            r.given_up = True              # reported once; not looked at again
        if self.halts and self.cfg.launcher.clear_halt_on_recovery:
            self._clear_recovered_halts()
