"""Launch, pin, supervise and shut down the pipeline's roles.

Start method: fork+exec of `python -m <role module> --config FILE` for every role (multiprocessing's
"spawn" semantics: a fresh interpreter that inherits no sockets, ZMQ contexts or mappings), through
pipeline.launcher.child, which pins the process to its cores, applies nice / SCHED_FIFO and asks
the kernel for SIGTERM if the launcher dies (no orphans) before exec'ing the role. Each role gets
its own process group, so Ctrl-C reaches the launcher only, which then stops roles in order.

Shutdown order (stop_order): collectors first (no new market data), then strategies (no new
signals), then the gateway (drains, cancels or keeps orders per its config, flushes its journal),
the recorder, and the simulator last. Each gets SIGTERM, then SIGKILL after its stop_timeout. The
launcher then unlinks every segment it created.

Any role that dies or stops heartbeating → the gateways that depend on it are told to HALT
(SIGUSR1 and a halt word) at once → orderly shutdown, unless the role's restart policy says
otherwise: a role with restart = "on-failure" (a collector, a recorder; never a strategy or a
gateway) is restarted with backoff, at most restart_policy.max_per_hour times an hour. Meanwhile
those gateways are HALTED through the halt word only (no SIGUSR1, which is the manual kill
switch), and that HALT clears itself (the word goes back to 0) once every such role is back and
fresh, if [launcher] clear_halt_on_recovery; a strategy or gateway death, a role over its cap, or
any kill switch still HALTs for good. In a run of several venues a collector's death concerns its
own ring's gateways only: the other venues trade on (supervision.py, halt_scope).

Layout: this module starts, checks and stops roles (Launcher, run); the restart / halt
bookkeeping is the Supervision mixin (supervision.py), the status line, summary, tap, alerts and
metrics the Reporting mixin (reporting.py).
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.bus.ring import TickRing
from pipeline import logs
from pipeline.config import PipelineConfig, RoleSpec
from pipeline import instruments as instr
from pipeline.launcher import preflight, venues, views
from pipeline.launcher.reporting import Reporting
from pipeline.launcher.restart import RestartTracker
from pipeline.launcher.supervision import Supervision, _signal_group
from pipeline.records import RoleState
from pipeline.telemetry import status as st

log = logging.getLogger("pipeline.launcher")

ROLE_MODULES = {
    "sim": "pipeline.sim",
    "collector": "pipeline.collector",
    "strategy": "pipeline.strategy",
    "gateway": "pipeline.gateway",
    "recorder": "pipeline.collector.recorder",
}
SIGNAL_ROLES = ("gateway", "strategy", "command")   # get the run's signal-channel token
DEFAULT_START = ("sim", "gateway", "strategy", "recorder", "collector", "command")
DEFAULT_STOP = ("collector", "strategy", "gateway", "recorder", "command", "sim")


def _no_dumps() -> None:
    """PR_SET_DUMPABLE=0: other processes of this user (the roles included) cannot read this
    process's memory or /proc/<pid>/environ, where the gateway's secrets may sit if the trader
    exported them before starting the launcher."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)   # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        log.warning("cannot set PR_SET_DUMPABLE=0 on the launcher")


class LaunchError(RuntimeError):
    """The pipeline cannot start as configured."""


def _ordered(roles: dict[str, RoleSpec], explicit: list[str], ranks: tuple[str, ...]) -> list[str]:
    if explicit:
        missing = set(roles) - set(explicit)
        unknown = set(explicit) - set(roles)
        if unknown:
            raise LaunchError(f"order names unknown roles: {sorted(unknown)}")
        return list(explicit) + sorted(missing)
    return sorted(roles, key=lambda n: (ranks.index(roles[n].kind), n))


@dataclass
class Role:
    name: str
    spec: RoleSpec
    slot: int
    proc: subprocess.Popen | None = None
    restarts: int = 0
    exit_reason: str = ""
    log_path: Path | None = None       # the role's own log (pipeline/logs.py)
    out_path: Path | None = None       # its stdout/stderr (a crash's traceback, a command's output)
    started_at: float = 0.0
    tracker: RestartTracker | None = None
    restart_at: float | None = None     # a restart is due at this monotonic time
    recovering: bool = False            # restarted, not yet back and fresh
    ticks_at_start: int = 0             # its tick counter when (re)started
    given_up: bool = False              # failed for good (halt_on_role_death off: left alone)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Launcher(Supervision, Reporting):
    cfg: PipelineConfig
    config_path: str
    roles: dict[str, Role] = field(default_factory=dict)
    rings: list[TickRing] = field(default_factory=list)
    status: st.StatusBlock | None = None
    stop_reason: str = ""
    halted_at: float | None = None      # since when some HALT is in force (None: none)
    # the HALTs in force: "*" (every gateway) or a gateway role's name → final (a HALT that never
    # clears itself, not a restartable role's)
    halts: dict[str, bool] = field(default_factory=dict)
    halts_cleared: int = 0
    events: list[dict] = field(default_factory=list)
    alerts: object | None = None        # pipeline.alerts: (sender, watcher) while running
    tap: object | None = None           # telemetry.market.PriceTap: the first ring's trade prices
    taps: dict = field(default_factory=dict)   # ring name → PriceTap (each gateway's ring)
    started_ns: int = 0                 # CLOCK_REALTIME at start (this run's journal records)
    instruments_path: Path | None = None      # the run's instrument cache, once loaded
    # the run's signal-channel token (pipeline.bus.channel): only in the env of the roles that
    # speak on the channel, never logged, never in repr
    _signal_token: str = field(default="", repr=False)

    # ------------------------------------------------------------------ setup
    def __post_init__(self) -> None:
        self.run_dir = Path(self.cfg.launcher.run_dir)
        self._signal_token = self._make_signal_token()
        self.log_dir = logs.launcher_log_dir(self.cfg)
        if not self.cfg.roles:
            raise LaunchError(f"{self.config_path}: no [roles.*] to launch")
        self.placement_warnings = preflight.validate_placement(self.cfg.roles, self.config_path)
        for name, spec in self.cfg.roles.items():
            if spec.kind == "command" and spec.command and not shutil.which(spec.command[0]):
                raise LaunchError(f"{self.config_path}: roles.{name}.command: "
                                  f"{spec.command[0]!r} not found")
        self.start_order = _ordered(self.cfg.roles, self.cfg.launcher.start_order, DEFAULT_START)
        self.stop_order = _ordered(self.cfg.roles, self.cfg.launcher.stop_order, DEFAULT_STOP)
        for i, name in enumerate(self.start_order):
            spec = self.cfg.roles[name]
            self.roles[name] = Role(name, spec, i, tracker=RestartTracker(spec.restart_policy)
                                    if spec.restart == "on-failure" else None)
        self.segment_prefix = f"{self.cfg.launcher.run_id}-{os.getpid()}"
        try:
            views.check(self.cfg, self.config_path)     # several venues: one of each per gateway
        except ValueError as exc:
            raise LaunchError(str(exc)) from None
        self.check_credentials()
        try:
            venues.wanted(self.cfg)                      # every strategy venue has a source
            venues.check_sim_symbols(self.cfg, self.config_path)
        except instr.InstrumentError as exc:
            raise LaunchError(str(exc)) from None
        self.alert_token = self.check_alerts()
        self.check_strategies()

    def check_tradable(self) -> None:
        """Before anything starts (run() and --preflight): a gateway symbol without its
        [risk.symbols] limits is a LaunchError; a strategy instrument the gateway does not trade
        becomes a placement warning."""
        try:
            self.placement_warnings += venues.check_tradable(self.cfg, self.config_path)
        except instr.InstrumentError as exc:
            raise LaunchError(str(exc)) from None

    def load_instruments(self, *, offline: bool = False, say=log.info) -> None:
        """Ask the venues for the run's instruments (pipeline/instruments.py) and cache them in the
        run directory; every role started after this reads that cache (PIPELINE_INSTRUMENTS)."""
        want = venues.wanted(self.cfg)
        if not want:
            return
        try:
            # a simulator of this run may still be binding its port
            wait_s = max((r.spec.ready_timeout for r in self.roles.values()
                          if r.spec.kind == "sim"), default=0.0)
            reg = instr.load(want, self.run_dir, refresh=True, offline=offline, wait_s=wait_s,
                             say=say)
        except instr.InstrumentError as exc:
            raise LaunchError(f"{self.config_path}: {exc}") from None
        self.instruments_path = instr.cache_path(self.run_dir).resolve()
        self._event("instruments", path=self.instruments_path,
                    ids=",".join(f"{i.key}={i.id}" for i in reg))

    def check_strategies(self) -> None:
        """A strategy role's plug-ins load and their params check out before anything starts
        (the child would fail the same way, after the simulator and gateway were up)."""
        if not any(spec.kind == "strategy" for spec in self.cfg.roles.values()):
            return
        from pipeline.config import ConfigError
        from pipeline.strategy.process import build_strategies
        try:
            # ids do not matter for this check: what a fresh cache would number
            for _, view in views.of_kind(self.cfg, "strategy"):
                build_strategies(view, instr.fresh(venues.wanted(self.cfg)),
                                 source=self.config_path)
        except (ConfigError, KeyError, ValueError) as exc:
            raise LaunchError(str(exc).strip("'\"")) from None

    def _event(self, kind: str, **kw) -> None:
        e = {"t": time.monotonic(), "event": kind, **kw}
        self.events.append(e)
        level = logging.WARNING if kind in ("halt", "role-failed", "killed", "run-continues") \
            else logging.INFO
        logs.event_log(kind.upper().replace("-", "_"), level, **kw)
        if kind == "role-failed" and self.alerts is not None:
            self.alerts[1].role_died(kw.get("role", "?"), kw.get("problem", ""))

    def check_alerts(self):
        """The Telegram bot token, if [alerts] sends to Telegram (read now: a missing token or a
        group-readable token file stops the launch before anything starts)."""
        if not self.cfg.alerts.enabled:
            return None
        from pipeline.alerts import load_token
        from pipeline.gateway.secrets import CredentialError
        try:
            return load_token(self.cfg.alerts)
        except CredentialError as exc:
            raise LaunchError(f"{self.config_path}: {exc}") from None

    def create_segments(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.reclaim_stale_segments()
        self.status = st.StatusBlock.create(f"{self.segment_prefix}-status", len(self.roles))
        for name, capacity in views.rings(self.cfg).items():   # one per collector (venue)
            self.rings.append(TickRing.create(name, capacity))
        self.write_runfile()

    def write_runfile(self, stopped: bool = False) -> None:
        """<run_dir>/launcher.json: how `pipeline status` finds this run (pid, status block,
        roles → slots, logs); rewritten when a role starts and, marked stopped, at the end."""
        from pipeline.launcher.runfile import write
        write(self.run_dir, pid=os.getpid(), config=str(Path(self.config_path).resolve()),
              status_segment=self.status.name if self.status is not None else "",
              log_dir=str(self.log_dir.resolve()), stopped=stopped, stop_reason=self.stop_reason,
              roles={r.name: {"kind": r.spec.kind, "slot": r.slot,
                              "pid": r.proc.pid if r.proc else None,
                              "exit_code": r.proc.returncode if r.proc else None}
                     for r in self.roles.values()})

    def reclaim_stale_segments(self) -> list:
        """Remove what dead runs of this config left in /dev/shm: status blocks
        `<run_id>-<pid>-status`, the tick ring, the gateway's signal ring — each only if its
        owner process is dead (a live run's segments are never touched)."""
        from pipeline.bus import segments
        from pipeline.bus.events import event_ring_name
        from pipeline.bus.signals import ring_name
        names = set(views.rings(self.cfg))
        for ch in views.gateway_channels(self.cfg):
            names |= {ring_name(ch), event_ring_name(ch)}
        status = re.compile(re.escape(self.cfg.launcher.run_id) + r"-\d+-status")
        removed = segments.reclaim(
            lambda i: i.name in names or (i.kind == "status" and status.fullmatch(i.name)),
            why=f"left by a dead run of {self.config_path}")
        for i in removed:
            self._event("stale_segment_removed", segment=i.name, owner=i.owner_pid)
        from pipeline.bus import channel
        for ch in views.gateway_channels(self.cfg):
            if channel.remove_stale(ch):                 # a killed gateway's sockets
                self._event("stale_channel_removed", channel=ch)
        return removed

    def secret_env_names(self) -> set[str]:
        names = {self.cfg.alerts.telegram_token_env} if (
            self.cfg.alerts.enabled and self.cfg.alerts.telegram_chat_id) else set()
        names |= views.secret_envs(self.cfg)     # the launcher's own (alerts), and every gateway's
        for _, view in views.of_kind(self.cfg, "gateway"):
            names |= views.secret_envs(view)
        return names - {""}

    def check_credentials(self) -> None:
        """Each gateway role needs its credentials: fail before anything starts, without reading
        the secret itself (the launcher never holds it)."""
        for name, view in views.of_kind(self.cfg, "gateway"):
            g = view.gateway
            who = "gateway" if view is self.cfg else f"gateway {name}"
            if g.credentials_file:
                path = Path(g.credentials_file)
                if not path.is_file():
                    raise LaunchError(f"{self.config_path}: {who}: credentials_file {path} does "
                                      "not exist (a 0600 file of api_key=... / api_secret=... "
                                      "lines)")
                if path.stat().st_mode & 0o077:
                    raise LaunchError(f"{self.config_path}: {who}: credentials_file {path} is "
                                      "group- or world-accessible (mode "
                                      f"{path.stat().st_mode & 0o777:o}); chmod 600 it")
                continue
            from pipeline.gateway.assembly import ADAPTERS   # a venue's extra credentials (OKX)
            extra = getattr(ADAPTERS.get(g.venue.upper()), "extra_credential_envs", ())
            missing = [n for n in (g.api_key_env, g.api_secret_env,
                                   *(getattr(g, a) for a in extra)) if not os.environ.get(n)]
            if missing:
                raise LaunchError(f"{self.config_path}: the {who}'s credentials are missing: set "
                                  f"{' and '.join(missing)} or gateway.credentials_file")

    @staticmethod
    def _make_signal_token() -> str:
        """A new random token per run, or the one in the launcher's own environment (so a tool
        outside the run, e.g. a test, can be given the same one)."""
        from pipeline.bus import channel
        try:
            inherited = channel.env_token()
        except channel.ChannelSecurityError as exc:
            raise LaunchError(f"${channel.ENV_TOKEN}: {exc}") from None
        return inherited.decode() if inherited else channel.new_token()

    def _env(self, role: Role) -> dict[str, str]:
        from pipeline.bus import channel
        env = dict(os.environ)
        env.pop(channel.ENV_TOKEN, None)
        if role.spec.kind in SIGNAL_ROLES:          # the ends of the signal channel only
            env[channel.ENV_TOKEN] = self._signal_token
        own = views.secret_envs(self.cfg.for_role(role.name)) if role.spec.kind == "gateway" \
            else set()
        for name in self.secret_env_names() - own:   # secrets live only in their gateway
            env.pop(name, None)
        if role.spec.kind == "strategy":    # which slot is which channel's gateway (its HALT)
            env[views.ENV_GATEWAY_SLOTS] = views.gateway_slots(
                self.cfg, {r.name: r.slot for r in self.roles.values()})
        if self.status is not None:
            env[st.ENV_SEGMENT] = self.status.name
            env[st.ENV_SLOT] = str(role.slot)
        env[st.ENV_ROLE] = role.name
        env["PIPELINE_RUN_DIR"] = str(self.run_dir.resolve())
        if self.instruments_path is not None:
            env[instr.ENV_CACHE] = str(self.instruments_path)
        else:
            env.pop(instr.ENV_CACHE, None)
        env[logs.ENV_LOG_DIR] = str(self.log_dir.resolve())
        env["PIPELINE_WAIT"] = role.spec.wait
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _argv(self, role: Role) -> list[str]:
        if role.spec.kind == "command":
            return list(role.spec.command)
        return [sys.executable, "-m", ROLE_MODULES[role.spec.kind], "--config",
                str(Path(self.config_path).resolve()), *role.spec.args]

    def start_role(self, role: Role) -> None:
        slot = self.status.slots[role.slot]
        slot["state"] = int(RoleState.STARTING)
        slot["heartbeat_mono"] = 0
        role.ticks_at_start = int(slot["ticks"])
        self.log_dir.mkdir(parents=True, exist_ok=True)
        role.log_path = self.log_dir / f"{role.name}.log"
        role.out_path = self.log_dir / f"{role.name}.out"
        logf = open(role.out_path, "ab")
        try:
            placement = json.dumps({"launcher_pid": os.getpid(), "cores": role.spec.cores,
                                    "nice": role.spec.nice,
                                    "fifo_priority": role.spec.fifo_priority})
            role.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.launcher.child", placement, "--",
                 *self._argv(role)],
                env=self._env(role), stdin=subprocess.DEVNULL, stdout=logf,
                stderr=subprocess.STDOUT, process_group=0)
        except OSError as exc:
            raise LaunchError(f"role {role.name}: cannot start {self._argv(role)[0]}: {exc}") from None
        finally:
            logf.close()
        role.started_at = time.monotonic()
        self.write_runfile()
        self._event("started", role=role.name, pid=role.proc.pid,
                    cores=",".join(map(str, role.spec.cores)) or "any")

    def wait_ready(self, role: Role) -> None:
        """Wait until the role says RUNNING (kind 'command' roles need not). One owner per
        deadline: a role that keeps heartbeating while STARTING is waited for (the gateway
        heartbeats while it retries the venue, and gives up itself after its own
        [gateway].start_timeout_s with a clear error); ready_timeout bounds only the time
        without any heartbeat (the first one included)."""
        ready = role.spec.ready
        if ready == "started" or (ready == "auto" and role.spec.kind == "command"):
            return
        window_ns = int(role.spec.ready_timeout * 1e9)
        slot = self.status.slots[role.slot]
        started = time.perf_counter_ns()
        while time.perf_counter_ns() - max(started, int(slot["heartbeat_mono"])) < window_ns:
            if int(slot["heartbeat_mono"]) > 0 and int(slot["state"]) == RoleState.RUNNING:
                return
            if not role.alive:
                raise LaunchError(f"role {role.name} exited during start (code "
                                  f"{role.proc.returncode}); see {self._logs_of(role)}")
            if self.stop_reason:
                return
            time.sleep(0.02)
        raise LaunchError(f"role {role.name} did not become ready: no heartbeat for "
                          f"{role.spec.ready_timeout:g} s while starting; see "
                          f"{self._logs_of(role)}")

    @staticmethod
    def _logs_of(role: Role) -> str:
        return " and ".join(str(p) for p in (role.log_path, role.out_path)
                            if p is not None and p.exists() and p.stat().st_size) \
            or str(role.out_path)

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        if self.status is not None:
            self.status.request_shutdown()
        budget_end = time.monotonic() + self.cfg.launcher.shutdown_timeout
        for name in self.stop_order:
            r = self.roles[name]
            if not r.alive:
                continue
            self.status.slots[r.slot]["state"] = int(RoleState.STOPPING)
            _signal_group(r.proc, signal.SIGTERM)
            timeout = max(0.1, min(r.spec.stop_timeout, budget_end - time.monotonic()))
            try:
                r.proc.wait(timeout)
                self._event("stopped", role=name, code=r.proc.returncode)
            except subprocess.TimeoutExpired:
                _signal_group(r.proc, signal.SIGKILL)
                r.proc.wait(5)
                self._event("killed", role=name, after_s=timeout)
        for r in self.roles.values():
            if r.proc is not None:              # anything restarted meanwhile, and whatever a
                _signal_group(r.proc, signal.SIGKILL)   # role started in its process group
                if r.proc.poll() is None:
                    r.proc.wait(5)
            try:                                # a role that printed nothing leaves no file
                if r.out_path is not None and r.out_path.stat().st_size == 0:
                    r.out_path.unlink()
            except OSError:
                pass

    def close_segments(self) -> None:
        for ring in self.rings:
            ring.close()
        self.rings.clear()
        self._unlink_orphan_signal_ring()

    def _unlink_orphan_signal_ring(self) -> None:
        """The gateway owns its signal ring and unlinks it at exit; a gateway that was killed
        leaves it behind. Remove it once its owner is gone (never a live gateway's)."""
        from pipeline.bus import ring as ringmod
        from pipeline.bus.events import event_ring_name
        from pipeline.bus.signals import ring_name
        for name in (n for ch in views.gateway_channels(self.cfg)   # and its order-event ring
                     for n in (ring_name(ch), event_ring_name(ch))):
            info = ringmod.inspect(name)
            if info is not None and not info.get("owner_alive"):
                ringmod.unlink(name)
                self._event("orphan_segment_removed", segment=name, owner=info.get("owner_pid"))


def _say(out, line: str) -> None:
    """The launcher's console output (status lines, preflight): the run's user interface."""
    out.write(line + "\n")
    out.flush()


def run(cfg: PipelineConfig, config_path: str, *, duration: float | None = None,
        summary_json: str | None = None, out=sys.stdout,
        console_level: str | None = "WARNING", offline: bool = False) -> dict:
    """Start everything, supervise until SIGINT/SIGTERM, the duration, or a failure; stop in
    order; return (and optionally write) the summary. The launcher's own log goes to
    <log dir>/launcher.log (and console_level and above to stderr); None leaves logging as the
    caller set it up."""
    launcher = Launcher(cfg, config_path)
    launcher.check_tradable()
    _no_dumps()
    own_log = logs.setup("launcher", cfg, directory=launcher.log_dir,
                         console_level=console_level) if console_level else None
    duration = cfg.launcher.duration if duration is None else duration
    pre = preflight.report()
    _say(out, "preflight:")
    for line in pre.lines():
        _say(out, line)
    for w in launcher.placement_warnings:
        _say(out, f"  WARNING: {w}")
    old = {s: signal.signal(s, lambda signum, _f: launcher.request_stop(
        signal.Signals(signum).name)) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    launcher.started_ns = time.time_ns()
    try:
        launcher.create_segments()
        if cfg.launcher.prometheus_port >= 0:
            port = launcher.serve_metrics()
            _say(out, f"  prometheus metrics on http://127.0.0.1:{port}/metrics")
        launcher.start_alerts()
        for name in launcher.start_order:
            if launcher.stop_reason:
                break
            role = launcher.roles[name]
            if role.spec.kind != "sim" and launcher.instruments_path is None:
                launcher.load_instruments(offline=offline, say=lambda m: _say(out, f"  {m}"))
                if launcher.instruments_path is not None:
                    _say(out, f"  instruments: {len(instr.read_cache(launcher.instruments_path)[0])}"
                              f" in {launcher.instruments_path}")
                launcher.start_tap()        # the run's ids, before any collector writes
            launcher.start_role(role)
            launcher.wait_ready(role)
            if role.spec.kind != "command":
                _say(out, f"  {name} ready (pid {role.proc.pid})")
        launcher.roles_started = time.monotonic()
        prev: dict = {}
        next_status = time.monotonic() + cfg.launcher.status_interval
        while not launcher.stop_reason:
            launcher.check_roles()
            now = time.monotonic()
            if duration and now - launcher.roles_started >= duration:
                launcher.request_stop("duration")
            launcher.poll_tap()
            if cfg.launcher.status_interval and now >= next_status:
                _say(out, launcher.status_line(prev))
                next_status = now + cfg.launcher.status_interval
            time.sleep(0.02)
    except LaunchError as exc:
        launcher.request_stop(f"launch error: {exc}")
        _say(sys.stderr, f"error: {exc}")
    finally:
        _say(out, f"stopping ({launcher.stop_reason})")
        try:
            alerts = launcher.stop_alerts()
            launcher.shutdown()
            summary = launcher.summary(started)
            launcher.trading(summary)
            if alerts:
                summary["alerts"] = alerts
        finally:
            server = getattr(launcher, "metrics_server", None)
            if server is not None:
                server.shutdown()
                server.server_close()
            launcher.close_segments()
            if launcher.status is not None:
                launcher.status.close()
            try:
                launcher.write_runfile(stopped=True)
            except OSError as exc:
                log.warning("cannot mark %s/launcher.json stopped: %s", launcher.run_dir, exc)
            for s, h in old.items():
                signal.signal(s, h)
            if own_log is not None:
                logs.teardown()
    summary["logs"] = str(launcher.log_dir)
    if summary_json:
        Path(summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(summary_json).write_text(json.dumps(summary, indent=2, default=str))
    return summary
