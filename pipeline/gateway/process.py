"""The gateway process: one component with explicit phases, one main loop, one helper thread.

Phases: INIT → STARTING (lock, credentials, journal, bind, venue, rebuild, reconcile) → RUNNING →
STOPPING → STOPPED. The signal channel is bound early (a second gateway fails fast) but HELLOs are
answered with READY only once reconciliation is done, so no signal is taken before the state is
known.

Main loop (single thread; the user-data stream has its own reader thread feeding a queue):
    kill switch (SIGUSR1 flag, kill file) → HALTED + cancel every open order
    intake: wait up to poll_ms for signals/HELLOs, then handle each signal synchronously:
        decode → client-id reuse → TTL/duplicate/gap → trading state → rate budget →
        risk check (stamp) → encode + sign (stamp) → write (stamp) → answer (stamp) → act
    user-stream events → fills, order states
    UNKNOWN orders due for a status query
    periodic clock resync, reference prices, loss limit, status file, journal fsync

Nothing on the loop sleeps or blocks for long: rate pacing refuses a signal that comes too soon
(RATE_BUDGET) instead of sleeping, every REST call stamps the launcher's heartbeat before and
after, clock syncs are bounded in time, and the kill switch is also checked between the signals
of a batch. A journal that cannot write (full disk) is counted and retried; it never stops the
loop, and never stops the kill switch (the cancel goes out before the journal is written).

Trading state: ACTIVE / REDUCING / HALTED, journalled; the last journalled state is restored at
start (HALTED persists until `python -m pipeline.gateway reset`). REDUCING (only risk-reducing
orders) on `python -m pipeline.gateway reduce` (SIGUSR2) or PnL below -reduce_at_loss.
Automatic HALTED on: repeated rejects, runaway signal rate (the risk engine trips it), loss limit,
clock skew, HTTP 418, the launcher's halt word.

Shutdown (SIGTERM/SIGINT): stop intake, drain (resolve UNKNOWN orders for up to drain_s), cancel
our open orders or keep them per config, stop the stream, flush and close the journal. Signal
handlers only set flags.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from pipeline.gateway.clocksync import ClockSync
from pipeline.gateway.execution import Execution
from pipeline.gateway.intake import Intake
from pipeline.gateway.journal import Journal, JournalWriteError
from pipeline.gateway.journal import read as read_journal
from pipeline.gateway.orders import ClientIdReused, OrderState
from pipeline.gateway.ratelimit import HostGate
from pipeline.gateway.reasons import Reason
from pipeline.gateway.reconcile import rebuild, reconcile
from pipeline.gateway.rest import Outcome, RestClient
from pipeline.gateway.secrets import (
    Redactor,
    harden_process,
    install_log_redaction,
    load_credentials,
)
from pipeline.gateway.statusfile import StatusFile, gateway_status
from pipeline.gateway.warm import run_dry
from pipeline.gateway.wire import Wire, helper_cores
from pipeline.hotloop import LoopGC
from pipeline.logs import event_log, order_log, pin_writer

log = logging.getLogger("pipeline.gateway")

STATES = ("ACTIVE", "REDUCING", "HALTED")
CLOCK_SYNC_BUDGET_S = 1.0      # a clock sync never blocks the loop longer than this


class GatewayError(RuntimeError):
    """The gateway cannot start (the message says why)."""


GIL_SWITCH_S = 50e-6            # sys.setswitchinterval: how long the loop may wait for the GIL


def state_paths(gcfg) -> dict[str, Path]:
    d = Path(gcfg.state_dir)
    return {"dir": d, "journal": d / "journal.jsonl", "status": d / "status.json",
            "lock": d / "gateway.lock", "pid": d / "gateway.pid",
            "kill": Path(gcfg.kill_file) if gcfg.kill_file else d / "KILL"}


class Gateway:
    def __init__(self, cfg, *, ready_file: str | None = None, environ: dict | None = None):
        self.root_cfg = cfg
        self.cfg = cfg.gateway
        self.paths = state_paths(self.cfg)
        self.ready_file = ready_file
        self.environ = environ
        self.phase = "INIT"
        self.trading = "ACTIVE"
        self.halt_reason = ""
        self.stop_requested = False
        self.kill_requested = False
        self.reduce_requested = False
        self.cancel_pending = False
        self._last_cancel_try = 0
        self._next_order_mono = 0      # rate pacing: no order before this (CLOCK_MONOTONIC ns)
        self.rejects: dict[str, int] = {}
        self.accepted = 0
        self.refs: dict[str, float] = {}
        self.reconcile_report: dict[str, Any] = {}
        self.internal_errors = 0
        self._lock_fd = -1
        self.intake = None
        self.warm_runs = 0               # dry runs of the signal path (_warm)
        self.gc = LoopGC()               # the loop's own garbage collection (automatic is off)
        self.status_writer: StatusFile | None = None
        self.journal: Journal | None = None
        self.stream = None
        self.ws = None
        self.rest = None
        self.ex: Execution | None = None

    # ================================================================== start
    def start(self) -> None:
        self.phase = "STARTING"
        cfg = self.cfg
        from pipeline.records import RoleState
        from pipeline.telemetry.latency import HopRecorder
        from pipeline.telemetry.status import RoleStatus
        self.role = RoleStatus.from_env()            # the launcher's slot, or private memory
        self.role.set_state(RoleState.STARTING)
        self.hops = HopRecorder(("signal_to_gateway", "gateway_risk", "gateway_sign",
                                 "gateway_write", "gateway_response", "tick_to_order", "tick_to_wire",
                                 "intake_to_wire"))
        harden = harden_process()
        self.paths["dir"].mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock()
        creds = load_credentials(key_env=cfg.api_key_env, secret_env=cfg.api_secret_env,
                                 file=cfg.credentials_file, environ=self.environ)
        if self.environ is None and not cfg.credentials_file:
            # children (if any) must not inherit them; the values live on in Secret objects only
            os.environ.pop(cfg.api_key_env, None)
            os.environ.pop(cfg.api_secret_env, None)
        self.redact = Redactor(creds.api_key, creds.api_secret)
        install_log_redaction(self.redact)
        log.info("gateway starting: pid %d, venue %s, transport %s, credentials from %s, %s",
                 os.getpid(), cfg.venue, cfg.transport, creds.source, harden)
        self.journal = Journal(self.paths["journal"], fsync=cfg.journal_fsync,
                               fsync_ms=cfg.journal_fsync_ms, redact=self.redact.fast)
        # binds now: a second gateway fails here. Under the launcher the role's wait wins.
        self.intake = Intake(cfg.channel, ring_capacity=cfg.signal_ring,
                             ring_wait=os.environ.get("PIPELINE_WAIT") or cfg.wait)
        self.journal.write("start", pid=os.getpid(), transport=cfg.transport, venue=cfg.venue)

        from pipeline.gateway import risk as riskmod
        from pipeline.gateway.signing import BinanceSigner
        from pipeline.records import Venue
        from pipeline.instruments import InstrumentError, for_role

        venue = Venue[cfg.venue]
        self.risk_cfg = self.root_cfg.risk           # issue 7's [risk]: limits and recvWindow
        self.recv_window_ms = self.risk_cfg.recv_window_ms
        self.risk = riskmod.engine_from_config(self.risk_cfg)
        self.signer = BinanceSigner(creds.api_secret.reveal(), recv_window_ms=self.recv_window_ms,
                                    resp_type="FULL")
        sign = self.signer.sign
        from urllib.parse import urlsplit
        self.gate = HostGate(urlsplit(cfg.rest_url).netloc, weight_limit_1m=cfg.weight_limit_1m,
                             order_limit_10s=cfg.order_limit_10s,
                             slowdown_fraction=cfg.slowdown_fraction,
                             stop_fraction=cfg.stop_fraction)
        self.clock = ClockSync(lambda: self.rest.server_time(), samples=cfg.clock_samples,
                               resync_s=cfg.clock_resync_s,
                               max_offset_ms=cfg.max_clock_offset_ms, strikes=cfg.skew_strikes,
                               timed_sample=lambda t: self.rest.server_time(timeout_s=t),
                               deadline_s=CLOCK_SYNC_BUDGET_S)
        rest_sign = ws_sign = sign
        if cfg.key_type == "ed25519":       # the secret is the private key (pipeline/gateway/keys.py)
            from pipeline.gateway import keys
            try:
                ed = keys.ed25519_signer(creds.api_secret.reveal())
            except ValueError as exc:
                raise GatewayError(f"credentials: {exc}") from None
            rest_sign, ws_sign = keys.rest_sign(ed), keys.ws_sign(ed)
        self.rest = RestClient(cfg.rest_url, creds.api_key.reveal(),
                               lambda q: rest_sign(q), self.gate,
                               connect_timeout_s=cfg.connect_timeout_s,
                               read_timeout_s=cfg.request_timeout_s,
                               recv_window_ms=self.recv_window_ms,
                               timestamp_ms=self.clock.timestamp_ms, redact=self.redact)
        self.rest.on_io = self.role.heartbeat       # before and after every REST call
        deadline = time.monotonic() + cfg.start_timeout_s
        while not self.clock.sync():              # the venue may still be starting
            if time.monotonic() >= deadline or self.stop_requested:
                raise GatewayError(f"cannot measure the venue clock at {cfg.rest_url} (GET "
                                   f"/api/v3/time failed for {cfg.start_timeout_s:g} s); is the "
                                   f"venue reachable?")
            self.role.heartbeat()
            time.sleep(0.2)
        self.journal.write("clock", why="start", **self.clock.snapshot())
        if self.clock.skewed:
            self.halt_reason = "clock skew at start"

        # instruments: ids from the run's cache (pipeline/instruments.py), filters from exchangeInfo
        try:
            registry = for_role(self.root_cfg, "gateway")
        except InstrumentError as exc:
            raise GatewayError(str(exc)) from None
        r = self.rest.public("/api/v3/exchangeInfo",
                             {"symbols": orjson.dumps(list(cfg.symbols)).decode()})
        if r.outcome is not Outcome.OK or not isinstance(r.data, dict):
            raise GatewayError(f"exchangeInfo failed: {r.outcome.value} {r.status} {r.msg}")
        infos = {s["symbol"]: s for s in r.data.get("symbols", ()) if isinstance(s, dict)}
        self.rules: dict[int, Any] = {}
        self.symbol_ids: dict[str, int] = {}
        for sym in cfg.symbols:
            if sym not in infos:
                raise GatewayError(f"symbol {sym} is not listed by the venue")
            sid = registry.id(venue, sym)
            try:
                rules = riskmod.rules_for(self.risk_cfg, venue=venue, symbol_id=sid,
                                          exchange_symbol=infos[sym])
            except KeyError as exc:
                raise GatewayError(f"{sym}: {exc.args[0]}") from None
            except ValueError as exc:
                raise GatewayError(f"{sym}: cannot build its trading rules: {exc}") from None
            self.risk.set_instrument(rules)
            self.signer.set_instrument(rules)
            self.rules[sid] = rules
            self.symbol_ids[sym] = sid

        if cfg.transport == "ws_api" or cfg.user_stream:
            from pipeline.gateway.ws_api import UserStream, WsApiClient, WsSigner
            wss = WsSigner(creds.api_key.reveal(), ws_sign, self.clock.timestamp_ms,
                           self.recv_window_ms)
            session = cfg.key_type == "ed25519"      # session.logon on every connection
            if cfg.transport == "ws_api":
                self.ws = WsApiClient(cfg.ws_api_url, wss, self.gate,
                                      connect_timeout_s=cfg.connect_timeout_s,
                                      read_timeout_s=cfg.request_timeout_s, redact=self.redact,
                                      session=session)
            if cfg.user_stream:
                self.stream = UserStream(cfg.ws_api_url, wss,
                                         connect_timeout_s=cfg.connect_timeout_s,
                                         redact=self.redact, session=session)
        # helper threads off the loop's core(s): a spinning loop keeps its core to itself
        self.helper_cores = helper_cores()
        if self.helper_cores:
            log.info("gateway helper threads on CPUs %s", sorted(self.helper_cores))
            pin_writer(self.helper_cores)         # the log writer too (pipeline/logs.py)
        wire = None
        if cfg.transport == "rest" and cfg.async_orders:      # the order wire's own connections
            wire = Wire(cfg.rest_url, creds.api_key.reveal(), self.gate,
                        connect_timeout_s=cfg.connect_timeout_s,
                        read_timeout_s=cfg.request_timeout_s, redact=self.redact,
                        connections=cfg.order_connections, cores=self.helper_cores)
        del creds

        self.ex = Execution(cfg=cfg, journal=self.journal, risk=self.risk, signer=self.signer,
                            rules=self.rules, rest=self.rest, ws=self.ws, clock=self.clock,
                            halt=self.halt, recv_window_ms=self.recv_window_ms,
                            heartbeat=self.role.heartbeat)
        self.ex.wire = wire
        if self.stream is not None:
            self.stream.cores = self.helper_cores
        # rebuild from the journal, then the trading state
        self.journal_read: dict[str, int] = {}
        rb = rebuild(read_journal(self.paths["journal"], self.journal_read), self.ex, self.intake)
        log.info("journal rebuilt: %s", rb)
        state = rb["trading"] or self.risk_cfg.start_state
        self._set_trading(state, "restored from journal" if rb["trading"] else "configured start")
        if self.paths["kill"].exists():
            self._set_trading("HALTED", f"kill file {self.paths['kill']} present at start")
        if self.halt_reason and self.trading != "HALTED":
            self._set_trading("HALTED", self.halt_reason)
        from pipeline.gateway.references import References, ReferenceSourceError
        try:
            self.references = References(source=cfg.reference, risk=self.risk, rules=self.rules,
                                         rest=self.rest, ring_name=self.root_cfg.ring.name,
                                         poll_ms=cfg.reference_poll_ms)
        except ReferenceSourceError as exc:
            raise GatewayError(str(exc)) from None
        self.refs = self.references.refs
        self.references.update(force=True)
        if self.stream is not None:
            self.stream.start()
            until = time.monotonic() + 3.0
            while not self.stream.subscribed.wait(0.2) and time.monotonic() < until:
                self.role.heartbeat()
            if not self.stream.subscribed.is_set():
                log.warning("user stream not subscribed after 3 s; fills come from responses "
                            "and queries until it is")
        self.reconcile_report = reconcile(self.ex, list(cfg.symbols), cfg.recent_trades)
        log.info("reconciled with the venue: %d checked, %d resolved, %d still unknown, "
                 "%d new fills, %d unknown exchange orders", self.reconcile_report["checked"],
                 self.reconcile_report["resolved"], self.reconcile_report["still_unknown"],
                 self.reconcile_report["new_fills"],
                 len(self.reconcile_report["unknown_exchange_orders"]))
        if self.trading == "HALTED":
            self.cancel_pending = True
        self.phase = "RUNNING"
        self._next = {"status": 0, "kill": 0,
                      "audit": time.perf_counter_ns() + int(cfg.open_order_audit_s * 1e9)}
        self._stream_seen = self.stream.connects if self.stream is not None else 0
        self.role.set_state(RoleState.RUNNING)
        self.journal.commit()
        # a helper thread holding the GIL when a signal comes gives it up within this (default 5 ms)
        sys.setswitchinterval(GIL_SWITCH_S)
        # no collection at a random allocation inside a signal: the loop collects in housekeeping
        self.gc.start()
        self.write_status(sync=True)
        self.status_writer = StatusFile(self.paths["status"], background=True,
                                        cores=self.helper_cores)
        if self.ready_file:
            tmp = Path(self.ready_file + ".tmp")
            tmp.write_bytes(orjson.dumps({"pid": os.getpid(), "trading": self.trading}))
            os.replace(tmp, self.ready_file)

    def _lock(self) -> None:
        fd = os.open(self.paths["lock"], os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = _read_pid(self.paths["pid"])
            raise GatewayError(f"another gateway (pid {pid}) holds state dir "
                               f"{self.paths['dir']}") from None
        self._lock_fd = fd
        self.paths["pid"].write_text(str(os.getpid()))

    # ================================================================== trading state
    def _set_trading(self, state: str, why: str, commit: bool = True) -> None:
        if state not in STATES:
            raise ValueError(f"trading state must be one of {STATES}, got {state!r}")
        if state == self.trading and self.journal is not None and self.phase == "RUNNING":
            return
        old = self.trading
        self.trading = state
        self.risk.set_state(STATES.index(state))
        if state == "HALTED":
            self.halt_reason = why
        self.journal.write("trading", state=state, frm=old, why=why)
        event_log(state, logging.ERROR if state == "HALTED" else logging.INFO, frm=old, why=why,
                  open_orders=len(self.ex.table.open_orders()) if self.ex else 0)
        if commit:
            self._commit()

    def _commit(self) -> bool:
        """Commit the journal, best effort: a full or failing disk is counted and logged by the
        journal (the records stay buffered for the next try) and must not stop the loop."""
        try:
            self.journal.commit()
            return True
        except JournalWriteError:
            return False

    def halt(self, why: str) -> None:
        """HALTED now, and every open order cancelled (idempotent). The cancel goes out first;
        the journal follows, best effort (the kill switch must work on a full disk). The
        trading record is buffered before the cancel, so its "m" is the moment of the halt."""
        if self.trading != "HALTED":
            self._set_trading("HALTED", why, commit=False)
        self.cancel_pending = True
        try:
            self._cancel_open(why)
        finally:
            self._commit()

    def _cancel_open(self, why: str) -> None:
        self._last_cancel_try = time.perf_counter_ns()
        syms = sorted(set(self.cfg.symbols) | set(self.ex.open_symbols()))
        self.ex.cancel_all(syms, why)
        # an order still on the wire may land after the cancel: keep retrying until its reply
        if not self.ex.inflight and not any(o.state is not OrderState.UNKNOWN
                                            for o in self.ex.table.open_orders()):
            self.cancel_pending = False

    # ================================================================== the loop
    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT → stop (drain), SIGUSR1 → kill switch, SIGUSR2 → REDUCING; handlers
        only set flags."""
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGUSR1, self._on_kill)
        signal.signal(signal.SIGUSR2, self._on_reduce)

    def run(self) -> int:
        warm_ms = self.cfg.warm_ms
        poll_ms = min(self.cfg.poll_ms, warm_ms) if warm_ms else self.cfg.poll_ms
        while not self.stop_requested:
            self._guarded(self._check_kill)
            if not self.intake.wait(poll_ms):
                if warm_ms:
                    self._guarded(self._warm)
            else:
                # every waiting signal is signed before any is finished (journalled and handed
                # to the wire): a signal never waits for the bookkeeping of the one before it
                signed = []
                for _ in range(256):
                    raw = self.intake.recv_raw()
                    if raw is None:
                        break
                    try:
                        signed.append(self.sign_signal(raw))
                    except Exception:  # noqa: BLE001 - counted and logged; the loop goes on
                        self.internal_errors += 1
                        log.exception("gateway: internal error signing a signal (continuing)")
                for one in signed:
                    self._guarded(self.finish_signal, one)
                    self._commit()
                    if self.kill_requested or time.perf_counter_ns() >= self._next["kill"]:
                        # between two signals of a batch: the kill switch does not wait for
                        # the batch (signals after it are rejected HALTED)
                        self._guarded(self._check_kill)
            self._guarded(self._housekeeping)
        return self.shutdown()

    def _on_term(self, signum, frame) -> None:
        self.stop_requested = True

    def _on_reduce(self, signum, frame) -> None:
        self.reduce_requested = True

    def _on_kill(self, signum, frame) -> None:
        self.kill_requested = True

    def _check_kill(self) -> None:
        now = time.perf_counter_ns()
        if not self.kill_requested and now >= self._next["kill"]:
            self._next["kill"] = now + 20_000_000
            if self.paths["kill"].exists() and (self.trading != "HALTED" or self.cancel_pending):
                self.kill_requested = True
        if self.reduce_requested:
            self.reduce_requested = False
            if self.trading == "ACTIVE":
                self._set_trading("REDUCING", "operator: reduce only")
                self._guarded(self.write_status, True)
        if self.kill_requested:
            self.kill_requested = False
            log.error("KILL SWITCH: halting and cancelling every open order")
            self.halt("kill switch")
            self._guarded(self.write_status, True)

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - one bad signal or event must not stop the gateway
            self.internal_errors += 1
            log.exception("gateway: internal error in %s (counted; continuing)", fn.__name__)

    def _housekeeping(self) -> None:
        ex = self.ex
        role = self.role
        role.heartbeat()
        if ex.wire is not None:
            self._guarded(ex.pump)              # the replies of orders sent by the wire thread
        if role.halt_requested and self.trading != "HALTED":
            self.halt("launcher requested HALT (a role died or stalled)")
        # The launcher's shutdown flag is not a stop request: the launcher stops the roles in
        # order (collectors, strategies, then this gateway with SIGTERM), so intake drains last.
        if self.stream is not None:
            q = self.stream.events
            while True:
                try:
                    ev = q.get_nowait()
                except Exception:  # noqa: BLE001 - queue.Empty
                    break
                self._guarded(ex.on_event, ev)
        self._guarded(ex.resolve_due)
        now = time.perf_counter_ns()
        self._guarded(self._audit, now)
        if self.cancel_pending and now - self._last_cancel_try > 200_000_000:
            self._guarded(self._cancel_open, "retry cancel")
        if self.clock.due():
            self._guarded(self._periodic_sync)
        self._guarded(self.references.update, now)
        if now >= self._next["status"]:
            self._next["status"] = now + self.cfg.status_every_ms * 1_000_000
            pnl = ex.book.pnl(self.refs)
            self._record_hops()
            self._publish_role(pnl)
            rk = self.cfg.risk
            if pnl < -rk.max_loss and self.trading != "HALTED":
                self.halt(f"loss limit: PnL {pnl:.2f} below -{rk.max_loss}")
            elif rk.reduce_at_loss and pnl < -rk.reduce_at_loss and self.trading == "ACTIVE":
                self._set_trading("REDUCING", f"soft loss limit: PnL {pnl:.2f} below "
                                              f"-{rk.reduce_at_loss}")
            self._guarded(self.write_status)
        try:
            self.journal.maybe_sync()
        except JournalWriteError:
            pass                    # counted and logged by the journal; retried next turn
        self.gc.maybe(now)

    def _periodic_sync(self) -> None:
        self.clock.sync()           # bounded by CLOCK_SYNC_BUDGET_S
        self.role.heartbeat()
        self.journal.write("clock", why="periodic", **self.clock.snapshot())
        if self.clock.skewed:
            self.halt(f"clock skew: offset {self.clock.offset_ns / 1e6:.1f} ms")

    # ================================================================== keeping warm
    def _warm(self) -> None:
        run_dry(self)       # the signal path dry, between signals (pipeline/gateway/warm.py)

    # ================================================================== one signal
    def reject(self, sig, reason: str, **extra: Any) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        rec = {"decision": "reject", "reason": reason, **extra}
        if sig is not None:
            rec.update(strategy=sig.strategy_id, epoch=sig.epoch, seq=sig.seq, symbol=sig.symbol,
                       side=sig.side, qty=sig.qty)
        self.journal.write("signal", **rec)
        if sig is None:
            order_log("REJECTED", by="gateway", reason=reason, **extra)
        else:
            rules = self.rules.get(sig.symbol) if hasattr(self, "rules") else None
            order_log("REJECTED", f"pl{sig.strategy_id:x}.{sig.epoch:x}.{sig.seq:x}",
                      by="gateway", reason=reason,
                      symbol=rules.name if rules is not None else sig.symbol,
                      side={1: "BUY", -1: "SELL"}.get(sig.side, sig.side), qty=sig.qty, **extra)

    def handle_signal(self, raw: bytes) -> None:
        """One signal, start to finish (the loop signs every waiting signal first, then
        finishes them in order: see run)."""
        self.finish_signal(self.sign_signal(raw))

    def sign_signal(self, raw: bytes) -> tuple:
        """The hot path, one compiled call: every risk check, then encode + sign (nothing is
        signed on a risk reject). Returns what finish_signal needs."""
        t_recv = time.perf_counter_ns()
        body = encode_error = None
        try:
            body = self.signer.process(self.risk, raw, t_recv, self.clock.timestamp_ms())
        except Exception as exc:  # noqa: BLE001 - nothing signed or sent
            encode_error = exc
        t_signed = time.perf_counter_ns()
        return (raw, t_recv, self.signer.risk_done_ns or t_signed, t_signed, body, encode_error,
                self.signer.last_reason if encode_error is None else 0)

    def finish_signal(self, signed: tuple) -> None:
        """The bookkeeping after the "signed" stamp; all of the write-ahead records still come
        before the request goes out (submit). Whatever refuses the order after signing releases
        its open quantity; the signed bytes are dropped, never sent."""
        raw, t_recv, t_risk, t_signed, body, encode_error, reason = signed
        sig = self.intake.decode(raw)
        if sig is None:                       # the kernel refused it too (BAD_MESSAGE/VERSION)
            self.reject(None, "MALFORMED", size=len(raw))
            return
        cid = f"pl{sig.strategy_id:x}.{sig.epoch:x}.{sig.seq:x}"
        refusal, extra = "", {}
        if cid in self.ex.table:
            refusal, extra = "CLIENT_ID_REUSED", {"cid": cid}
        else:
            v = self.intake.judge(sig, t_recv)
            if v.gap:
                self.journal.write("gap", strategy=sig.strategy_id, epoch=sig.epoch,
                                   seq=sig.seq, missing=v.gap)
            if not v.ok:
                refusal = v.reason
            elif self.trading == "HALTED":
                refusal = "HALTED"
            elif reason == Reason.RUNAWAY:    # the kernel just went HALTED on this one
                refusal = "RUNAWAY"
            elif self.gate.blocked_until > time.time():
                refusal = "HOST_CLOSED"
        pace_ns = 0
        if not refusal:
            wait_s, closed = self.gate.order_wait_s()
            if closed:
                refusal = "RATE_BUDGET"
            elif wait_s > 0 and t_signed < self._next_order_mono:
                # pacing without blocking the loop (heartbeat, kill switch, fills): at most one
                # order every wait_s; a signal that comes sooner is refused, never slept on
                self.ex.count("paced")
                refusal = "RATE_BUDGET"
                extra = {"paced_ms": round((self._next_order_mono - t_signed) / 1e6, 3)}
            pace_ns = int(wait_s * 1e9)
        if not refusal and encode_error is None and body is None:
            refusal = Reason(reason).name     # the kernel's reject
        if refusal:
            if body is not None:              # signed but refused: undo the kernel's commit
                self.risk.release_open(sig.symbol, sig.side, sig.qty)
            self.reject(sig, refusal, **extra)
            if reason == Reason.RUNAWAY:
                self.halt("runaway signal rate")
            return
        stamps = {"recv": t_recv, "risk": t_risk, "created": sig.created_mono,
                  "trigger": sig.trigger_mono}
        self.journal.write("signal", decision="accept", cid=cid, strategy=sig.strategy_id,
                           epoch=sig.epoch, seq=sig.seq, symbol=sig.symbol, side=sig.side,
                           qty=sig.qty, trigger_mono=sig.trigger_mono,
                           created_mono=sig.created_mono, recv_mono=t_recv)
        try:
            order = self.ex.new_order(sig, stamps)
        except ClientIdReused:
            if body is not None:
                self.risk.release_open(sig.symbol, sig.side, sig.qty)
            self.reject(sig, "CLIENT_ID_REUSED", cid=cid)
            return
        if encode_error is not None:
            exc = encode_error
            self.ex.set_state(order, OrderState.REJECTED, f"encode: {type(exc).__name__}: {exc}")
            self.reject(sig, "ENCODE", cid=cid)
            return
        stamps["signed"] = t_signed
        order.not_after_mono = sig.created_mono + sig.ttl_ns
        if pace_ns:
            self._next_order_mono = stamps["signed"] + pace_ns
        self.accepted += 1
        self.ex.submit(order, body)

    def _audit(self, now: int) -> None:
        """No fill may hide in a user-stream gap: after the stream (re)subscribes, and every
        open_order_audit_s while it is down or disabled, query our open orders."""
        st = self.stream
        if st is not None and st.subscribed.is_set():
            if st.connects != self._stream_seen:
                first = self._stream_seen == 0
                self._stream_seen = st.connects
                if not first and self.ex.table.open_orders():
                    log.warning("user stream reconnected: auditing open orders")
                    self.ex.audit(self.ex.table.open_orders(), "stream gap")
            return
        if now >= self._next["audit"]:
            self._next["audit"] = now + int(self.cfg.open_order_audit_s * 1e9)
            if self.ex.table.open_orders():
                self.ex.audit(self.ex.table.open_orders(), "no user stream")

    # ================================================================== telemetry
    def _record_hops(self) -> None:
        """Move per-order stamps into the hop histograms (off the order path)."""
        ex = self.ex
        total = ex.latency_trimmed + len(ex.latency)
        done = max(0, getattr(self, "_hops_done", 0) - ex.latency_trimmed)
        lat = ex.latency
        rec = self.hops.record
        for (recv, risk, signed, written, resp, created, trigger) in lat[done:]:
            if created and recv >= created:
                rec("signal_to_gateway", recv - created)
            rec("gateway_risk", risk - recv)
            rec("gateway_sign", signed - risk)
            rec("gateway_write", written - signed)
            rec("gateway_response", resp - written)
            rec("intake_to_wire", written - recv)
            if trigger and signed > trigger:
                rec("tick_to_order", signed - trigger)      # the "tick → signed order"
            if trigger and written > trigger:
                rec("tick_to_wire", written - trigger)
        self._hops_done = total

    def _hop(self, name: str) -> dict:
        """Live quantiles of a hop (the last RECENT orders): the main loop calls this several
        times a second, so never an HdrHistogram percentile walk (milliseconds)."""
        hops = getattr(self, "hops", None)
        return hops.live(name) if hops is not None else {}

    def _publish_role(self, pnl: float) -> None:
        from pipeline.records import TradingState
        ex = self.ex
        w = self._hop("intake_to_wire")
        self.role.set(signals=self.intake.received, orders=self.accepted, fills=len(ex.book.seen),
                      rejects=sum(self.rejects.values()) + ex.counts.get("rejects", 0),
                      errors=self.internal_errors + self.intake.malformed,
                      pnl=pnl, open_orders=len(ex.table.open_orders()),
                      hop_p50_ns=w.get("p50", 0), hop_p99_ns=w.get("p99", 0))
        self.role.set_trading_state(TradingState[self.trading])

    # ================================================================== references
    # ================================================================== status
    def status(self) -> dict[str, Any]:
        return gateway_status(self)

    def write_status(self, sync: bool = False) -> None:
        """status.json, redacted. The file I/O (~0.5 ms: write, rename) goes to a helper thread
        while running, so the main loop is not blind that long every status_every_ms; start-up,
        the kill switch and shutdown write synchronously."""
        data = orjson.dumps(self.status(), option=orjson.OPT_NON_STR_KEYS, default=str)
        data = self.redact.bytes(data).encode() if hasattr(self, "redact") else data
        writer = getattr(self, "status_writer", None)
        if writer is None or sync:
            (writer or StatusFile(self.paths["status"])).write(data)
        else:
            writer.submit(data)

    # ================================================================== shutdown
    def shutdown(self) -> int:
        self.phase = "STOPPING"
        log.info("gateway stopping: intake closed, draining")
        if self.intake is not None:
            self.intake.close()
        ex = self.ex
        if ex is not None:
            # orders on the wire get their answer first (bounded by the request timeout)
            ex.drain_inflight(self.cfg.request_timeout_s + self.cfg.connect_timeout_s)
            deadline = time.monotonic() + self.cfg.drain_s
            while ex.table.unknown() and time.monotonic() < deadline:
                self._guarded(self._housekeeping)
                time.sleep(0.02)
            if self.cfg.on_shutdown == "cancel" and ex.table.open_orders():
                n = ex.cancel_ours("shutdown")      # UNKNOWN ones too (-2011 is harmless)
                log.info("shutdown: %d open order(s) cancelled", n)
            time.sleep(0.05)
            if self.stream is not None:
                while True:
                    try:
                        ev = self.stream.events.get_nowait()
                    except Exception:  # noqa: BLE001 - queue.Empty
                        break
                    self._guarded(ex.on_event, ev)
        self.close()
        return 0

    def close(self) -> None:
        role = getattr(self, "role", None)
        if role is not None and self.ex is not None:
            from pipeline.records import RoleState
            from pipeline.telemetry.latency import run_dir_recorder_path
            try:
                self._record_hops()
                self._publish_role(self.ex.book.pnl(self.refs))
                path = run_dir_recorder_path(role.role)
                if path is not None:
                    self.hops.dump(path)
            except (OSError, ValueError) as exc:
                log.warning("telemetry at exit: %s", exc)
            role.set_state(RoleState.FAILED if self.phase == "FAILED" else RoleState.STOPPED)
        if self.stream is not None:
            self.stream.stop()
        if self.ex is not None and self.ex.wire is not None:
            self.ex.wire.close()
        if self.ws is not None:
            self.ws.close()
        if self.rest is not None:
            self.rest.close()
        if getattr(self, "references", None) is not None:
            self.references.close()
        if self.intake is not None:
            self.intake.close()
        if self.journal is not None and not self.journal.closed:
            if self.phase == "STOPPING":
                self.journal.write("stop", open_orders=[o.cid for o in self.ex.table.open_orders()]
                                   if self.ex else [])
            self.phase = "STOPPED"
            try:
                self.write_status(sync=True)
                run_dir = os.environ.get("PIPELINE_RUN_DIR")
                if run_dir and role is not None:     # the launcher folds it into its summary
                    shutil.copyfile(self.paths["status"],
                                    os.path.join(run_dir, f"{role.role}.summary.json"))
            except (OSError, AttributeError):
                pass
            self.journal.close()
        if self._lock_fd >= 0:
            try:
                self.paths["pid"].unlink(missing_ok=True)
            finally:
                os.close(self._lock_fd)
                self._lock_fd = -1


def _read_pid(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0


def gateway_running(gcfg) -> int:
    """The pid of the gateway holding this state dir, or 0."""
    paths = state_paths(gcfg)
    if not paths["lock"].exists():
        return 0
    fd = os.open(paths["lock"], os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(paths["pid"]) or -1
    finally:
        os.close(fd)
    return 0


def run_gateway(cfg, *, ready_file: str | None = None, environ: dict | None = None) -> int:
    """Start and run a gateway until SIGTERM; the launcher's entry point. Returns an exit code."""
    gw = Gateway(cfg, ready_file=ready_file, environ=environ)
    gw.install_signal_handlers()
    try:
        gw.start()
    except Exception:
        gw.phase = "FAILED"
        gw.close()
        raise
    return gw.run()


__all__ = ["Gateway", "GatewayError", "run_gateway", "gateway_running", "state_paths"]
