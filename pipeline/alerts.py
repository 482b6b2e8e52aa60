"""Alerts to the operator: a webhook (JSON POST) and a Telegram bot message on HALTED, REDUCING,
a role's death, a stale feed and (optionally) fills.

Everything here runs in the launcher, on two daemon threads, never in a role: the watcher reads
the status block (and the gateway's status.json for the reason and the position) every
`POLL_S`, the sender posts what the watcher (or the launcher, for a role's death) queued. A full
queue drops the alert and counts it; a failed POST is retried once, then logged and counted. No
role ever waits for an alert.

    [alerts]
    on = ["halted", "reducing", "role_death", "stale_feed", "fill"]
    webhook_url = "https://hooks.example.com/pipeline"
    telegram_chat_id = "123456789"
    telegram_token_file = "/home/trader/.config/pipeline/telegram-token"   # mode 0600

The Telegram bot token is a secret like the exchange keys: read from a 0600 file or an
environment variable (which the launcher strips from every role's environment), held in a
`Secret`, and scrubbed out of every log line and error message (it sits in the Bot API URL).
"""
from __future__ import annotations

import json
import logging
import os
import queue
import ssl
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from pipeline.config import AlertsConfig
from pipeline.gateway.secrets import REDACTED, CredentialError, Redactor, Secret
from pipeline.records import TradingState

log = logging.getLogger("pipeline.alerts")
POLL_S = 0.25
REASON_WAIT_S = 2.0       # how long a HALTED/REDUCING alert waits for status.json's reason


def load_token(cfg: AlertsConfig, environ: dict | None = None) -> Secret | None:
    """The Telegram bot token (None when Telegram is off). CredentialError if it is missing or
    its file is readable by others; the message never contains the token."""
    if not cfg.telegram_chat_id:
        return None
    if cfg.telegram_token_file:
        path = Path(cfg.telegram_token_file)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise CredentialError(f"alerts.telegram_token_file {path} does not exist") from None
        if st.st_mode & 0o077:
            raise CredentialError(f"alerts.telegram_token_file {path} has mode "
                                  f"{st.st_mode & 0o777:04o}; chmod 600 it")
        value = path.read_text().strip()
        if not value:
            raise CredentialError(f"alerts.telegram_token_file {path} is empty")
        return Secret(value)
    value = (os.environ if environ is None else environ).get(cfg.telegram_token_env, "")
    if not value:
        raise CredentialError(f"alerts: Telegram needs a bot token: set {cfg.telegram_token_env} "
                              "or alerts.telegram_token_file")
    return Secret(value)


@dataclass
class Alert:
    event: str                       # one of AlertEvent
    text: str                        # one line a trader reads
    details: dict = field(default_factory=dict)
    time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(
        timespec="seconds"))


class AlertSender:
    """The sender thread: posts each queued alert to the webhook and to Telegram."""

    def __init__(self, cfg: AlertsConfig, run_id: str, token: Secret | None = None):
        self.cfg = cfg
        self.run_id = run_id
        self._token = token
        self.redact = Redactor(*([token] if token is not None else []))
        self._q: queue.Queue[Alert | None] = queue.Queue(maxsize=cfg.queue_size)
        self.counts = {"queued": 0, "sent": 0, "failed": 0, "dropped": 0}
        self.sent: list[dict] = []          # what went out (event, channel), for the summary
        self._ssl = ssl.create_default_context()      # verified TLS
        self._thread = threading.Thread(target=self._run, name="alert-sender", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return (f"AlertSender(webhook={bool(self.cfg.webhook_url)}, "
                f"telegram={bool(self.cfg.telegram_chat_id)}, token={REDACTED})")

    def notify(self, alert: Alert) -> bool:
        """Queue an alert (never blocks); False if it was not wanted or the queue is full."""
        if alert.event not in self.cfg.on:
            return False
        try:
            self._q.put_nowait(alert)
        except queue.Full:
            self.counts["dropped"] += 1
            log.warning("alert dropped (queue full): %s", alert.text)
            return False
        self.counts["queued"] += 1
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (up to `timeout`), then stop the thread."""
        try:
            self._q.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        while True:
            alert = self._q.get()
            if alert is None:
                return
            for channel, url, body in self._requests(alert):
                ok = self._post(url, body, channel) or self._post(url, body, channel, retry=True)
                self.counts["sent" if ok else "failed"] += 1
                if ok:
                    self.sent.append({"event": alert.event, "channel": channel})

    def _requests(self, alert: Alert):
        if self.cfg.webhook_url:
            yield "webhook", self.cfg.webhook_url, {
                "event": alert.event, "text": alert.text, "run_id": self.run_id,
                "time": alert.time, "details": alert.details}
        if self.cfg.telegram_chat_id and self._token is not None:
            url = (f"{self.cfg.telegram_api_url.rstrip('/')}/bot{self._token.reveal()}"
                   "/sendMessage")
            yield "telegram", url, {"chat_id": self.cfg.telegram_chat_id,
                                    "text": f"[{self.run_id}] {alert.text}",
                                    "disable_notification": alert.event == "fill"}

    def _post(self, url: str, body: dict, channel: str, retry: bool = False) -> bool:
        if retry:
            time.sleep(1.0)
        req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s,
                                        context=self._ssl if url.startswith("https") else None
                                        ) as resp:
                resp.read()
                return 200 <= resp.status < 300
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # the Bot API URL carries the token: scrub it out of whatever the error says
            log.warning("alert to %s failed%s: %s", channel, " again" if retry else "",
                        self.redact(f"{type(exc).__name__}: {exc}"))
            return False


class AlertWatcher:
    """The watcher thread: turns what the status block shows into alerts.

    gateways: slot → (role name, its status.json (reason of a halt, positions for fills), PnL's
    currency or a callable giving it) of every gateway; or, for one gateway, gateway (its slot),
    status_json and currency. collectors: their slots → names. With several gateways each alert
    names its gateway ("gateway gateway_okx HALTED: ...", data "role")."""

    def __init__(self, sender: AlertSender, block, *, gateway: int | None = None,
                 collectors: dict[int, str], status_json: Path | None = None,
                 currency: str | Callable[[], str] = "",
                 gateways: dict[int, tuple[str, Path | None, str | Callable[[], str]]]
                 | None = None):
        self.sender = sender
        self.block = block
        if gateways is None:
            gateways = {} if gateway is None else {gateway: ("gateway", status_json, currency)}
        self.gateways = gateways
        self.collectors = collectors
        self._stop = threading.Event()
        self._trading = {slot: int(TradingState.ACTIVE) for slot in gateways}
        # a state change waiting for its reason, per gateway
        self._pending: dict[int, tuple[str, float] | None] = {slot: None for slot in gateways}
        self._fills = {slot: 0 for slot in gateways}
        self._ticks: dict[int, tuple[int, float]] = {}
        self._stale: set[int] = set()
        self._stale_counts: dict[int, int] = {}
        self._thread = threading.Thread(target=self._run, name="alert-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)

    def _gateway_status(self, slot: int) -> dict:
        path = self.gateways[slot][1]
        if path is None:
            return {}
        try:
            return json.loads(path.read_bytes())
        except (OSError, ValueError):
            return {}

    def _currency(self, slot: int) -> str:
        cur = self.gateways[slot][2]
        return cur() if callable(cur) else cur

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - a watcher bug must not kill the launcher
                log.warning("alert watcher: %s: %s", type(exc).__name__, exc)

    def check(self, now: float | None = None) -> None:
        """One look at the status block (the thread calls this every POLL_S)."""
        if self.block.slots is None:
            return
        now = time.monotonic() if now is None else now
        snap = self.block.snapshot()
        extras = self.block.extras_snapshot()
        for slot in self.gateways:
            self._check_gateway(slot, snap[slot], now)
        for slot, name in self.collectors.items():
            self._check_feed(slot, name, snap[slot], extras[slot], now)

    def _check_gateway(self, slot: int, s, now: float) -> None:
        name = self.gateways[slot][0]
        who = f"gateway {name}" if len(self.gateways) > 1 else "gateway"
        cur = self._currency(slot)
        trading = int(s["trading_state"])
        if trading != self._trading[slot]:
            self._trading[slot] = trading
            state = TradingState(trading).name
            self._pending[slot] = (state, now) if state in ("HALTED", "REDUCING") else None
        if self._pending[slot] is not None:
            # the slot changes first; status.json (with the reason) follows within a moment
            state, since = self._pending[slot]
            g = self._gateway_status(slot)
            if g.get("trading") == state or now - since >= REASON_WAIT_S:
                self._pending[slot] = None
                why = (g.get("halt_reason") or "") if g.get("trading") == state else ""
                self.sender.notify(Alert(state.lower(), f"{who} {state}" + (f": {why}" if why else "")
                                         + f" (PnL {_money(float(s['pnl']), cur)})",
                                         {"trading": state, "reason": why, "role": name,
                                          "pnl": float(s["pnl"]), "currency": cur,
                                          "open_orders": int(s["open_orders"])}))
        fills = int(s["fills"])
        if fills > self._fills[slot]:
            n, self._fills[slot] = fills - self._fills[slot], fills
            if "fill" in self.sender.cfg.on:
                g = self._gateway_status(slot)
                pos = {k: v.get("qty", 0.0) for k, v in (g.get("positions") or {}).items()}
                where = ", ".join(f"{k} {v:+g}" for k, v in pos.items()) or "flat"
                pre = f"{who}: " if len(self.gateways) > 1 else ""
                self.sender.notify(Alert("fill", f"{pre}{n} new fill{'s' if n > 1 else ''} "
                                         f"({fills} in all); position {where}; PnL "
                                         f"{_money(float(s['pnl']), cur)}",
                                         {"new_fills": n, "fills": fills, "positions": pos,
                                          "role": name, "pnl": float(s["pnl"]),
                                          "currency": cur}))

    def _check_feed(self, slot: int, name: str, s, e, now: float) -> None:
        ticks = int(s["ticks"])
        last, since = self._ticks.get(slot, (-1, now))
        if ticks != last:
            self._ticks[slot] = (ticks, now)
            self._stale.discard(slot)
        elif slot not in self._stale and now - since >= self.sender.cfg.stale_feed_s and ticks > 0:
            self._stale.add(slot)
            self.sender.notify(Alert("stale_feed", f"{name}: no new market data for "
                                     f"{now - since:.0f} s", {"role": name, "ticks": ticks}))
        stale = int(e["stale"])
        if stale > self._stale_counts.get(slot, 0):
            self._stale_counts[slot] = stale
            self.sender.notify(Alert("stale_feed", f"{name}: a feed went stale ({stale} in all)",
                                     {"role": name, "stale": stale}))

    def role_died(self, role: str, problem: str) -> None:
        """Called by the launcher when it finds a role dead or stuck."""
        self.sender.notify(Alert("role_death", f"role {role} {problem}",
                                 {"role": role, "problem": problem}))


def _money(v: float, currency: str) -> str:
    v = round(v, 2) + 0.0          # never "-0.00"
    return f"{v:,.2f} {currency}".rstrip()
