"""Building a gateway from its config (the STARTING phase): state dir and lock, credentials,
journal, intake, the risk kernel, the venue adapter's parts (signer, REST, instruments, streams,
order wire), the order path, execution, the journal rebuild, references and reconciliation.

`assemble(gw)` fills in a `Gateway` (pipeline/gateway/process.py) in that order; every failure is
a `GatewayError` saying why. The signal channel is bound early (a second gateway fails fast), but
HELLOs are answered only once the loop runs, after reconciliation, so no signal is taken before
the state is known.
"""
from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.bus.ring import RingError
from pipeline.gateway.clocksync import ClockSync
from pipeline.gateway.intake import Intake
from pipeline.gateway.binjournal import open_journal, read_any
from pipeline.gateway.ratelimit import HostGate
from pipeline.venueclosure import SharedClosure
from pipeline.gateway.reconcile import rebuild
from pipeline.gateway.secrets import (
    Redactor,
    harden_process,
    install_log_redaction,
    load_credentials,
)
from pipeline.venues import gateway_adapters
from pipeline.venues.base import VenueError
from pipeline.gateway.wire import helper_cores
from pipeline.logs import pin_writer

log = logging.getLogger("pipeline.gateway")

CLOCK_SYNC_BUDGET_S = 1.0      # a clock sync never blocks the loop longer than this
HOP_NAMES = ("signal_to_gateway", "gateway_risk", "gateway_sign", "gateway_write",
             "gateway_response", "tick_to_order", "tick_to_wire", "intake_to_wire")
# [gateway] venue → its adapter class (pipeline/venues/__init__.py GATEWAY_ADAPTERS)
ADAPTERS = gateway_adapters()


class GatewayError(RuntimeError):
    """The gateway cannot start (the message says why)."""


def state_paths(gcfg) -> dict[str, Path]:
    d = Path(gcfg.state_dir)
    journal = d / ("journal.bin" if getattr(gcfg, "journal_format", "binary") == "binary"
                   else "journal.jsonl")
    return {"dir": d, "journal": journal, "status": d / "status.json",
            "lock": d / "gateway.lock", "pid": d / "gateway.pid",
            "kill": Path(gcfg.kill_file) if gcfg.kill_file else d / "KILL"}


def read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def lock_state_dir(gw) -> None:
    """One gateway per state dir: an exclusive flock held for the process's life."""
    fd = os.open(gw.paths["lock"], os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        pid = read_pid(gw.paths["pid"])
        raise GatewayError(f"another gateway (pid {pid}) holds state dir "
                           f"{gw.paths['dir']}") from None
    gw._lock_fd = fd
    gw.paths["pid"].write_text(str(os.getpid()))


def venue_adapter(cfg, risk_cfg):
    try:
        return ADAPTERS[cfg.venue](cfg, risk_cfg)
    except KeyError:
        raise GatewayError(f"no gateway adapter for venue {cfg.venue!r} (have: "
                           f"{', '.join(sorted(ADAPTERS))})") from None


def assemble(gw) -> None:
    """Build every part of Gateway `gw` from its config, up to and including reconciliation."""
    cfg = gw.cfg
    from pipeline.gateway import risk as riskmod
    from pipeline.gateway.orderpath import OrderPath
    from pipeline.records import RoleState
    from pipeline.telemetry.latency import HopRecorder
    from pipeline.telemetry.status import RoleStatus
    gw.role = RoleStatus.from_env()            # the launcher's slot, or private memory
    gw.role.set_state(RoleState.STARTING)
    gw.hops = HopRecorder(HOP_NAMES)
    harden = harden_process()
    gw.paths["dir"].mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_state_dir(gw)
    creds = load_credentials(key_env=cfg.api_key_env, secret_env=cfg.api_secret_env,
                             file=cfg.credentials_file, environ=gw.environ)
    if gw.environ is None and not cfg.credentials_file:
        # children (if any) must not inherit them; the values live on in Secret objects only
        os.environ.pop(cfg.api_key_env, None)
        os.environ.pop(cfg.api_secret_env, None)
    gw.redact = Redactor(creds.api_key, creds.api_secret)
    install_log_redaction(gw.redact)
    log.info("gateway starting: pid %d, venue %s, transport %s, credentials from %s, %s",
             os.getpid(), cfg.venue, cfg.transport, creds.source, harden)
    gw.journal = open_journal(cfg, gw.paths["journal"], redact=gw.redact.fast)
    # binds now: a second gateway fails here. Under the launcher the role's wait wins.
    gw.intake = Intake(cfg.channel, ring_capacity=cfg.signal_ring,
                       ring_wait=os.environ.get("PIPELINE_WAIT") or cfg.wait)
    gw.journal.write("start", pid=os.getpid(), transport=cfg.transport, venue=cfg.venue)
    if cfg.event_ring:                       # the strategies' order events (before any HELLO)
        from pipeline.bus.events import EventWriter
        from pipeline.gateway.reporting import OrderFeedback
        try:
            gw.feedback = OrderFeedback(EventWriter(cfg.channel, cfg.event_ring))
        except (RingError, ValueError) as exc:
            raise GatewayError(f"order-event ring for channel {cfg.channel!r}: {exc}") from None

    # the risk kernel, the venue's signer and REST client, the order path
    gw.risk_cfg = gw.root_cfg.risk           # issue 7's [risk]: limits and recvWindow
    gw.recv_window_ms = gw.risk_cfg.recv_window_ms
    gw.risk = riskmod.engine_from_config(gw.risk_cfg)
    gw.venue = venue_adapter(cfg, gw.risk_cfg)
    if hasattr(gw.venue, "credentials"):      # a venue's extra credential (OKX: passphrase)
        try:
            gw.venue.credentials(gw.environ, gw.redact)
        except VenueError as exc:
            raise GatewayError(str(exc)) from None
    gw.signer = gw.venue.signer(creds.api_secret.reveal(), gw.recv_window_ms)
    # the hot path: risk decides, then the signer signs (one compiled call; per venue)
    gw.path = (gw.venue.order_path(gw.risk, gw.signer) if hasattr(gw.venue, "order_path")
               else OrderPath(gw.risk, gw.signer))
    sign = gw.signer.sign
    gw.gate = HostGate(urlsplit(cfg.rest_url).netloc, weight_limit_1m=cfg.weight_limit_1m,
                       order_limit_10s=cfg.order_limit_10s,
                       slowdown_fraction=cfg.slowdown_fraction, stop_fraction=cfg.stop_fraction,
                       state_file=gw.paths["dir"] / "host-closed.json",
                       shared=SharedClosure(urlsplit(cfg.rest_url).netloc),
                       used_of=getattr(gw.venue, "rate_usage", None))   # its usage headers
    gw.gate.bind(gw.risk)           # the venue's limits are judged in the kernel (one admission)
    closed_s = gw.gate.restore()    # a 429/418 the previous process got outlives it
    if closed_s:
        log.warning("the venue closed %s to us (HTTP %d) until %.1f s from now, before this "
                    "start: sending nothing until then", gw.gate.host, gw.gate.blocked_status,
                    closed_s)
    gw.clock = ClockSync(lambda: gw.rest.server_time(), samples=cfg.clock_samples,
                         resync_s=cfg.clock_resync_s, max_offset_ms=cfg.max_clock_offset_ms,
                         strikes=cfg.skew_strikes,
                         timed_sample=lambda t: gw.rest.server_time(timeout_s=t),
                         deadline_s=CLOCK_SYNC_BUDGET_S)
    api_key = creds.api_key.reveal()
    gw.rest = gw.venue.rest(api_key, sign, gw.gate, recv_window_ms=gw.recv_window_ms,
                            timestamp_ms=gw.clock.timestamp_ms, redact=gw.redact)
    gw.rest.on_io = gw.role.heartbeat       # before and after every REST call
    _first_clock_sync(gw)

    # instruments from the venue's listing, into the risk kernel and the signer alike
    try:
        gw.rules = gw.venue.rules(gw.rest)
    except VenueError as exc:
        raise GatewayError(str(exc)) from None
    gw.symbol_ids = {}
    for sid, rules in gw.rules.items():
        riskmod.add_instrument(gw.risk, gw.risk_cfg, rules)   # + per-symbol kernel limits
        gw.signer.set_instrument(rules)
        gw.path.set_name(sid, rules.name.encode("ascii"))   # the journal record's symbol
        gw.symbol_ids[rules.name] = sid

    gw.ws, gw.stream = gw.venue.streams(api_key, sign, gw.gate, timestamp_ms=gw.clock.timestamp_ms,
                                        recv_window_ms=gw.recv_window_ms, redact=gw.redact)
    # helper threads off the loop's core(s): a spinning loop keeps its core to itself
    gw.helper_cores = helper_cores()
    if gw.helper_cores:
        log.info("gateway helper threads on CPUs %s", sorted(gw.helper_cores))
        pin_writer(gw.helper_cores)         # the log writer too (pipeline/logs.py)
        if hasattr(gw.journal, "set_cores"):
            gw.journal.set_cores(gw.helper_cores)   # the binary journal's msync thread
    wire = gw.venue.wire(api_key, gw.gate, redact=gw.redact, cores=gw.helper_cores)
    del creds, api_key

    gw.ex = gw.venue.execution(cfg=cfg, journal=gw.journal, risk=gw.risk, signer=gw.signer,
                      rules=gw.rules, rest=gw.rest, ws=gw.ws, clock=gw.clock, halt=gw.halt,
                      recv_window_ms=gw.recv_window_ms, heartbeat=gw.role.heartbeat)
    gw.ex.wire = wire
    gw.ex.stream = gw.stream            # a LOST order is confirmed only while it watched
    if gw.feedback is not None:
        gw.ex.feedback = gw.feedback
        gw.feedback.table = gw.ex.table
    if gw.stream is not None:
        gw.stream.cores = gw.helper_cores
    if gw.ws is not None and hasattr(gw.ws, "start"):     # the pipelined WS-API order wire
        gw.ws.cores = gw.helper_cores
        gw.ws.start()
    _rebuild(gw)
    _references(gw)
    if gw.stream is not None:
        gw.stream.start()
        until = time.monotonic() + 3.0
        while not gw.stream.subscribed.wait(0.2) and time.monotonic() < until:
            gw.role.heartbeat()
        if not gw.stream.subscribed.is_set():
            log.warning("user stream not subscribed after 3 s; fills come from responses "
                        "and queries until it is")
    recon = gw.venue.reconcile
    rep = gw.reconcile_report = recon(gw.ex, list(cfg.symbols), cfg.recent_trades)
    log.info("reconciled with the venue: %d checked, %d resolved, %d still unknown, "
             "%d new fills, %d unknown exchange orders", rep["checked"], rep["resolved"],
             rep["still_unknown"], rep["new_fills"], len(rep["unknown_exchange_orders"]))


def _first_clock_sync(gw) -> None:
    cfg = gw.cfg
    # A closure restored from the previous process (gate.restore), one told to another process
    # of the run (the collector: the venue limits per IP) or one that comes while we start (a
    # 418 to our clock request) is waited out first, heartbeating: asking the clock during it is
    # what turns a 429 into a 418 ban. It does not count against start_timeout_s: the venue is
    # reachable, it refuses us for a known time.
    deadline = time.monotonic() + cfg.start_timeout_s
    while True:
        closed_s = gw.gate.poll_shared()
        if closed_s > 0:
            deadline = max(deadline, time.monotonic() + closed_s + cfg.start_timeout_s)
        while time.time() < gw.gate.blocked_until and not gw.stop_requested:
            gw.role.heartbeat()
            time.sleep(min(0.2, max(0.0, gw.gate.blocked_until - time.time())))
        if gw.clock.sync():                 # the venue may still be starting
            break
        if not gw.stop_requested and gw.gate.blocked_until > time.time():
            continue                        # closed by that request: wait, then ask again
        if time.monotonic() >= deadline or gw.stop_requested:
            tls_error = getattr(gw.rest, "last_tls_error", "")
            if tls_error:                  # reachable, but not someone we trust
                raise GatewayError(f"cannot measure the venue clock at {cfg.rest_url}: "
                                   f"{tls_error}")
            raise GatewayError(f"cannot measure the venue clock at {cfg.rest_url} (its time "
                               f"endpoint failed for {cfg.start_timeout_s:g} s); is the venue "
                               f"reachable?")
        gw.role.heartbeat()
        time.sleep(0.2)
    gw.journal.write("clock", why="start", **gw.clock.snapshot())
    if gw.clock.skewed:
        gw.halt_reason = "clock skew at start"


def _rebuild(gw) -> None:
    """The order book, fills and duplicate marks from the journal, then the trading state."""
    gw.journal_read = {}
    rb = rebuild(read_any(gw.paths["journal"], gw.journal_read), gw.ex)
    log.info("journal rebuilt: %s", rb)
    state = rb["trading"] or gw.risk_cfg.start_state
    gw._set_trading(state, "restored from journal" if rb["trading"] else "configured start")
    if gw.paths["kill"].exists():
        gw._set_trading("HALTED", f"kill file {gw.paths['kill']} present at start")
    if gw.halt_reason and gw.trading != "HALTED":
        gw._set_trading("HALTED", gw.halt_reason)


def _references(gw) -> None:
    from pipeline.gateway.references import References, ReferenceSourceError
    cfg = gw.cfg
    try:
        gw.references = References(source=cfg.reference, risk=gw.risk, rules=gw.rules,
                                   rest=gw.rest, ring_name=gw.root_cfg.ring.name,
                                   poll_ms=cfg.reference_poll_ms)
    except ReferenceSourceError as exc:
        raise GatewayError(str(exc)) from None
    gw.refs = gw.references.refs
    gw.references.update(force=True)


__all__ = ["assemble", "GatewayError", "state_paths", "read_pid", "lock_state_dir", "ADAPTERS"]
