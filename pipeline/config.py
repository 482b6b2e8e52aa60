"""TOML configuration → frozen dataclasses, strictly.

One TOML file configures the whole pipeline; each role reads its own section. Loading is strict:
an unknown key, a missing required key or a value of the wrong type is a `ConfigError` naming the
key and the file (cryptofeed's AttrDict, which returns {} for a misspelt key, is what we avoid).
Defaults are documented beside each field; configs/*.toml comment every key.

Adding a section: write a frozen dataclass here (or in the role's package) and add it as a field
of `PipelineConfig`. Field types understood: bool, int, float (ints accepted), str, Literal[...],
X | None, list[T], tuple[T, ...], dict[str, T] and nested dataclasses. A dataclass may validate
itself in __post_init__ by raising ValueError; the message is reported with the file and section.
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

WaitName = Literal["busy_spin", "yielding", "sleeping", "blocking"]


class ConfigError(ValueError):
    """A configuration file is invalid. The message names the file and the key."""


# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class RingConfig:
    """A tick ring in shared memory."""

    name: str = "pipeline-ticks"   # shm segment name (/dev/shm/<name>)
    capacity: int = 1 << 16        # records; a power of two (64 B each: 65,536 → 4 MiB)

    def __post_init__(self) -> None:
        if self.capacity < 2 or self.capacity & (self.capacity - 1):
            raise ValueError(f"capacity must be a power of two >= 2, got {self.capacity}")
        if not self.name or "/" in self.name:
            raise ValueError(f"name must be non-empty without '/', got {self.name!r}")


@dataclass(frozen=True)
class ReaderConfig:
    """How a reader of a ring waits for data."""

    wait: WaitName = "sleeping"  # busy_spin: a whole core; yielding; sleeping; blocking: no CPU idle
    max_batch: int = 4096        # most records one poll returns

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")


@dataclass(frozen=True)
class BusDemoConfig:
    """The bus demo: one writer, N readers on pinned cores."""

    rate: int = 50_000             # records/s the writer publishes (0 = as fast as it can)
    seconds: float = 10.0
    writer_core: int = 0
    reader_cores: list[int] = field(default_factory=lambda: [1, 1])
    reader_waits: list[WaitName] = field(default_factory=lambda: ["yielding", "blocking"])


# ----------------------------------------------------------------------------- gateway
# The execution gateway (issue 8, pipeline/gateway/). One contiguous block: GatewayRiskConfig,
# GatewayConfig; `PipelineConfig.gateway` holds it. Pre-trade limits and recvWindow are [risk]'s.
# Secrets are never config keys: the gateway reads them from the environment or a 0600 file
# (pipeline/gateway/secrets.py).


@dataclass(frozen=True)
class GatewayRiskConfig:
    """[gateway.risk]: the gateway's own automatic-HALT limits. The pre-trade limits of the risk
    engine (and recvWindow) are the [risk] section's (RiskConfig, issue 7)."""

    max_loss: float = 10_000.0             # realized + unrealized PnL below -max_loss → HALTED
    max_consecutive_rejects: int = 10      # exchange rejects in a row → HALTED
    reduce_at_loss: float = 0.0            # PnL below -reduce_at_loss → REDUCING (0 = off)

    def __post_init__(self) -> None:
        if not self.max_loss > 0:
            raise ValueError(f"max_loss must be > 0, got {self.max_loss}")
        if self.max_consecutive_rejects < 1:
            raise ValueError(f"max_consecutive_rejects must be >= 1, got "
                             f"{self.max_consecutive_rejects}")
        if not 0 <= self.reduce_at_loss <= self.max_loss:
            raise ValueError(f"reduce_at_loss must be in 0..max_loss, got {self.reduce_at_loss}")


@dataclass(frozen=True)
class GatewayConfig:
    """The execution gateway process ([gateway])."""

    venue: str = "SIM"                     # Venue name of the registry (SIM / BINANCE)
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT"])   # venue spelling
    channel: str = "pipeline-signals"      # signal channel: PULL on /tmp/pipeline-<uid>/<channel>/sig
                                           # (+ ctl), private; pipeline/bus/channel.py
    rest_url: str = "https://api.binance.com"
    ws_api_url: str = "wss://ws-api.binance.com:443/ws-api/v3"
    ca_bundle: str = ""                    # PEM file of CAs to trust for the venue's TLS ("" =
                                           # the system store); verification is never off
    transport: Literal["rest", "ws_api"] = "rest"   # how orders go out
    key_type: Literal["hmac", "ed25519"] = "hmac"   # the API key's type; ed25519: the secret is
    # the private key, every WS-API connection logs on (session.logon) and needs no per-request
    # signature; needs transport = "ws_api" (the compiled REST order signer is HMAC)
    user_stream: bool = True               # userDataStream.subscribe over the WS-API for fills
    api_key_env: str = "PIPELINE_API_KEY"  # environment variable holding the API key
    api_secret_env: str = "PIPELINE_API_SECRET"
    api_passphrase_env: str = "PIPELINE_API_PASSPHRASE"   # OKX: the API key's passphrase
    credentials_file: str = ""             # or a 0600 file with api_key=... / api_secret=... lines
                                           # (OKX: and api_passphrase=...)
    okx_demo: bool = False                 # OKX: x-simulated-trading: 1 (OKX demo trading)
    okx_rate_limits: bool = True           # OKX: keep OKX's per-endpoint limits (requests per 2 s)
                                           # on our side; false only against the simulator with its
                                           # limits off (benchmarks)
    state_dir: str = "gateway-state"       # journal, status.json, pid/lock, default kill file
    kill_file: str = ""                    # its existence → HALTED ("" = <state_dir>/KILL)
    journal_fsync: Literal["always", "interval", "never"] = "interval"
    journal_fsync_ms: int = 200            # interval policy: fsync at most this often
    journal_format: Literal["jsonl", "binary"] = "binary"  # journal.bin (fixed binary records,
                                           # mmap'ed; export: `... gateway journal`) or journal.jsonl
    connect_timeout_s: float = 1.0         # every HTTP request and WebSocket connect
    request_timeout_s: float = 2.0         # reading a response; past it the outcome is UNKNOWN
    clock_samples: int = 5                 # /api/v3/time samples per sync (median, >= 3)
    clock_resync_s: float = 60.0           # periodic resync
    max_clock_offset_ms: float = 1000.0    # |offset| beyond this on `skew_strikes` syncs → HALTED
    skew_strikes: int = 3
    unknown_poll_ms: int = 100             # first poll of an UNKNOWN order, doubling ...
    unknown_poll_max_ms: int = 2000        # ... up to this
    unknown_max_polls: int = 6             # "does not exist" this many times → LOST
    weight_limit_1m: int = 6000            # the venue's limits (slow down before them)
    order_limit_10s: int = 50
    slowdown_fraction: float = 0.8         # above this share of a limit: pace requests
    stop_fraction: float = 0.95            # above this share: no new orders until the window ends
    reference: Literal["rest", "ring", "none"] = "rest"   # where collar reference prices come from
    reference_poll_ms: int = 1000          # rest: GET /api/v3/depth per symbol this often
    on_shutdown: Literal["cancel", "keep"] = "cancel"   # open orders at SIGTERM
    drain_s: float = 2.0                   # SIGTERM: wait this long for UNKNOWN orders to resolve
    status_every_ms: int = 200             # status.json refresh
    poll_ms: int = 5                       # idle wait of the main loop
    event_ring: int = 4096                 # order-event ring slots, gateway → strategies (a
                                           # power of two; 0 = no order events)
    signal_ring: int = 1024                # shared-memory signal ring slots (a power of two; the
                                           # strategy's hot path, ZeroMQ stays for the handshake
                                           # and extra senders); 0 = signals over ZeroMQ only
    wait: WaitName = "blocking"            # how the loop waits on the ring (roles.<name>.wait
                                           # overrides); busy_spin only on a core of its own
    async_orders: bool = True              # rest: the loop writes new orders on keep-alive
                                           # connections held ready and a helper thread reads
                                           # the answers; the loop keeps taking signals meanwhile
                                           # (ws_api: frames sent without waiting, answers
                                           # matched by request id)
    order_connections: int = 2             # async_orders: connections held ready (orders on
                                           # the wire at once before the next one queues)
    warm_ms: float = 1.0                   # idle: run the signal path dry (decode, risk probe,
                                           # sign; nothing sent or changed) this often, so a rare
                                           # signal finds it in cache; 0 = off
    spin_warm_ms: float = 0.0              # wait = busy_spin (a core of its own): wait in slices
                                           # of this, the dry run after each (the last thing
                                           # before the spin), housekeeping every poll_ms (at
                                           # most warm_ms); 0 = off, as a blocking wait (its
                                           # gain is not established: docs/gateway_hot_path.md)
    recent_trades: int = 100               # reconcile: myTrades per symbol to look at
    # bounded memory (pipeline/gateway/orders.py OrderTable.retire): a final order with every
    # fill in leaves the order table once it is final for final_order_grace_s and beyond the
    # newest keep_final_orders (0 = keep every order); its trade ids leave the fill dedup set
    # after fills_window more retired trades
    keep_final_orders: int = 1000
    final_order_grace_s: float = 60.0
    fills_window: int = 50_000
    open_order_audit_s: float = 5.0        # no user stream (off/down): query open orders this often
    start_timeout_s: float = 30.0          # start: keep trying to reach the venue this long
    risk: GatewayRiskConfig = field(default_factory=GatewayRiskConfig)

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("symbols must not be empty")
        if self.clock_samples < 3:
            raise ValueError(f"clock_samples must be >= 3, got {self.clock_samples}")
        for k in ("connect_timeout_s", "request_timeout_s", "clock_resync_s",
                  "open_order_audit_s", "start_timeout_s"):
            if not getattr(self, k) > 0:
                raise ValueError(f"{k} must be > 0 (timeouts everywhere), got {getattr(self, k)}")
        if not 0 < self.slowdown_fraction <= self.stop_fraction <= 1:
            raise ValueError("need 0 < slowdown_fraction <= stop_fraction <= 1")
        if self.unknown_max_polls < 1 or self.unknown_poll_ms < 1 or self.skew_strikes < 1:
            raise ValueError("unknown_max_polls, unknown_poll_ms and skew_strikes must be >= 1")
        if self.warm_ms < 0:
            raise ValueError(f"warm_ms must be >= 0, got {self.warm_ms}")
        if self.spin_warm_ms < 0:
            raise ValueError(f"spin_warm_ms must be >= 0, got {self.spin_warm_ms}")
        if self.keep_final_orders < 0 or self.final_order_grace_s < 0 or self.fills_window < 1000:
            raise ValueError("keep_final_orders and final_order_grace_s must be >= 0, "
                             "fills_window >= 1000")
        if not 1 <= self.order_connections <= 16:
            raise ValueError(f"order_connections must be 1..16, got {self.order_connections}")
        if self.signal_ring and (self.signal_ring < 2 or self.signal_ring & (self.signal_ring - 1)):
            raise ValueError(f"signal_ring must be 0 or a power of two >= 2, got {self.signal_ring}")
        if self.event_ring and (self.event_ring < 2 or self.event_ring & (self.event_ring - 1)):
            raise ValueError(f"event_ring must be 0 or a power of two >= 2, got {self.event_ring}")
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise ValueError(f"ca_bundle {self.ca_bundle!r} is not a file (a PEM file of CA "
                             "certificates)")
        if self.key_type == "ed25519" and self.transport != "ws_api":
            raise ValueError('key_type = "ed25519" needs transport = "ws_api" (orders over the '
                             "WebSocket API's logged-on session; REST orders are HMAC-signed)")

# ----------------------------------------------------------------------------- end gateway


# --- collector (issue 4) -------------------------------------------------------------------
@dataclass(frozen=True)
class CollectorConfig:
    """The market-data collector: one venue feed, its connections, book sync and recording."""

    venue: Literal["binance", "okx"] = "binance"    # the venue adapter (pipeline/venues/)
    venue_id: Literal["BINANCE", "OKX", "SIM"] = "BINANCE"  # registry venue of the instruments
    ws_url: str = "wss://stream.binance.com:9443"    # WebSocket base (the simulator: ws://127.0.0.1:N)
    rest_url: str = "https://api.binance.com"        # REST base for depth snapshots
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    channels: list[str] = field(default_factory=lambda: ["trade", "bookTicker", "depth@100ms"])
    backend: Literal["cython", "python"] = "cython"  # frame decoder kernel or its Python twin
    max_message: int = 1 << 20        # bytes; a bigger frame is dropped and counted (oversized)
    read_size: int = 1 << 16          # bytes per recv_into
    stale_after_s: float = 10.0       # no data for this long → STALE record + reconnect
    connect_timeout_s: float = 5.0
    backoff_initial_s: float = 0.1    # reconnect back-off: initial * 2^n, capped, with jitter
    backoff_max_s: float = 10.0
    backoff_jitter: float = 0.5       # delay scaled by a random factor in [1 - jitter, 1]
    lifetime_s: float = 0.0           # 0 = the venue's limit (Binance 24 h)
    lifetime_margin_s: float = 600.0  # replace a connection this long before its lifetime ends
    overlap_s: float = 1.0            # make-before-break: both connections open this long
    connect_limit: int = 0            # connection attempts in any connect_window_s; 0 = the
    connect_window_s: float = 0.0     # venue's cap (Binance: 300 per 300 s per IP)
    drain_timeout_s: float = 2.0      # wait this long for the old connection's close frame
    send_guard_s: float = 0.25        # messages to the venue: its per-second cap kept over 1 s + this
                                      # (its arrival stamps jitter against our send times)
    url_streams_max: int = 200        # streams in the connect URL; the rest via paced SUBSCRIBE
    snapshot_limit: int = 1000        # REST depth levels
    snapshot_timeout_s: float = 5.0
    heartbeat_s: float = 1.0          # ring writer heartbeat period
    record_dir: str = ""              # raw + record recording directory ("" = off)
    record_rotate_mb: float = 256.0   # start a new raw file after this many MB ...
    record_rotate_s: float = 3600.0   # ... or this many seconds
    record_segment_records: int = 1 << 20  # records per .npy segment

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("symbols must not be empty")
        if self.stale_after_s <= 0 or self.backoff_initial_s <= 0:
            raise ValueError("stale_after_s and backoff_initial_s must be > 0")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")
        if not 0 <= self.backoff_jitter < 1:
            raise ValueError("backoff_jitter must be in [0, 1)")
        if self.max_message < 1024:
            raise ValueError("max_message must be >= 1024")
        if self.connect_limit < 0 or self.connect_window_s < 0:
            raise ValueError("connect_limit and connect_window_s must be >= 0")
        if not 0 <= self.send_guard_s < 1:
            raise ValueError("send_guard_s must be in [0, 1)")
RoleKind = Literal["sim", "collector", "strategy", "gateway", "recorder", "command"]
# Roles whose death must stop trading for good: a strategy's state and a gateway's orders are not
# rebuilt by a blind restart (the trader restarts them, after a look).
NEVER_RESTART: tuple[str, ...] = ("strategy", "gateway")


@dataclass(frozen=True)
class RestartPolicy:
    """How the launcher restarts a role that died or stalled (restart = "on-failure"):
    [roles.<name>.restart_policy]. Meanwhile the gateway is HALTED (halt_on_role_death) and its
    references go stale; the HALT clears once the role is back and fresh
    ([launcher] clear_halt_on_recovery)."""

    backoff_s: float = 0.5          # first restart after this; doubled per consecutive failure
    backoff_max_s: float = 30.0     # ... up to this
    max_per_hour: int = 10          # restarts in any hour; one more failure → HALT and stop
    fresh_within_s: float = 30.0    # restarted, it must be ready and fresh (a collector: new
                                    # ticks) within this, else it counts as failed again

    def __post_init__(self) -> None:
        if self.backoff_s <= 0 or self.backoff_max_s < self.backoff_s:
            raise ValueError("restart_policy: need 0 < backoff_s <= backoff_max_s")
        if self.max_per_hour < 1:
            raise ValueError("restart_policy: max_per_hour must be >= 1")
        if self.fresh_within_s <= 0:
            raise ValueError("restart_policy: fresh_within_s must be > 0")


ROLE_SECTIONS = ("ring", "reader", "collector", "gateway", "strategy", "risk")


@dataclass(frozen=True)
class RoleSpec:
    """One process the launcher starts: [roles.<name>]."""

    kind: RoleKind                 # which role; "command" runs `command` (tools, tests)
    cores: list[int] = field(default_factory=list)   # CPUs to pin to; [] = not pinned
    wait: WaitName = "blocking"    # ring wait strategy for roles that read the ring
    nice: int = 0                  # added niceness (negative needs CAP_SYS_NICE)
    fifo_priority: int = 0         # SCHED_FIFO priority 1..99; 0 = normal scheduling
    restart: Literal["never", "on-failure"] = "never"   # on-failure: not for strategy, gateway
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    heartbeat_timeout: float = 5.0  # seconds without a heartbeat = stuck
    ready: Literal["auto", "heartbeat", "started"] = "auto"  # auto: heartbeat, except commands
    ready_timeout: float = 20.0     # starting: seconds without a heartbeat before it counts as
                                    # failed (a role heartbeating while it starts is waited for:
                                    # its own start deadline rules, e.g. gateway.start_timeout_s)
    stop_timeout: float = 5.0       # SIGTERM → SIGKILL after this many seconds
    command: list[str] = field(default_factory=list)  # kind = "command": argv to exec
    args: list[str] = field(default_factory=list)     # extra CLI args for the role's main
    # this role's own sections over the file's ([roles.<name>.config.gateway] ...): several
    # collectors / gateways in one run, one per venue (PipelineConfig.for_role; tables merge
    # key by key, anything else replaces). Sections: ROLE_SECTIONS
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = sorted(set(self.config) - set(ROLE_SECTIONS))
        if bad:
            raise ValueError(f"config: {bad[0]!r} cannot be set per role (only "
                             f"{', '.join(ROLE_SECTIONS)})")
        if self.kind == "command" and not self.command:
            raise ValueError("a role of kind 'command' needs a command")
        if self.restart == "on-failure" and self.kind in NEVER_RESTART:
            raise ValueError(f"restart = \"on-failure\" is refused for a {self.kind}: its death "
                             "HALTs trading until the trader restarts it")
        if not 0 <= self.fifo_priority <= 99:
            raise ValueError(f"fifo_priority must be 0..99, got {self.fifo_priority}")
        if any(c < 0 for c in self.cores):
            raise ValueError(f"cores must be CPU numbers >= 0, got {self.cores}")


@dataclass(frozen=True)
class LauncherConfig:
    """The launcher: [launcher]."""

    run_id: str = "pipeline"        # prefix of this run's shm segments
    start_order: list[str] = field(default_factory=list)  # [] = sim, gateway, strategy, recorder, collector
    stop_order: list[str] = field(default_factory=list)   # [] = collector, strategy, gateway, recorder, sim
    status_interval: float = 1.0    # seconds between status lines (0 = none)
    shutdown_timeout: float = 20.0  # whole ordered shutdown budget, seconds
    halt_on_role_death: bool = True  # a dead or stuck role → gateway HALTED → orderly shutdown
    # (a role with restart = "on-failure" is restarted instead; the gateway stays HALTED meanwhile;
    # several venues: a collector's death HALTs only its ring's gateways, and the run goes on
    # while another gateway trades: pipeline/launcher/supervision.py halt_scope)
    clear_halt_on_recovery: bool = True  # that HALT clears once the role is back and fresh
                                         # (a kill switch or a strategy/gateway death never clears)
    prometheus_port: int = -1       # -1 = off, 0 = any free port, on 127.0.0.1 only
    duration: float = 0.0           # seconds to run (0 = until SIGINT/SIGTERM)
    run_dir: str = "run"            # role logs, summaries and latency histograms go here


@dataclass(frozen=True)
class LoggingConfig:
    """Every role's log (pipeline/logs.py): [logging]."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"   # a role's --log-level overrides
    format: Literal["text", "json"] = "text"   # json: one JSON object per line (fields at top level)
    dir: str = ""                   # "" = <launcher.run_dir>/logs; each role writes <role>.log
    max_bytes: int = 10 << 20       # rotate a role's log at this size ...
    backup_count: int = 5           # ... keeping this many old files (<role>.log.1 ...)

    def __post_init__(self) -> None:
        if self.max_bytes < 4096:
            raise ValueError(f"max_bytes must be >= 4096, got {self.max_bytes}")
        if not 1 <= self.backup_count <= 1000:
            raise ValueError(f"backup_count must be 1..1000, got {self.backup_count}")


# ----------------------------------------------------------------------------- alerts
# Messages to the operator (pipeline/alerts.py), sent by a launcher thread, never by a role.
AlertEvent = Literal["halted", "reducing", "role_death", "stale_feed", "fill"]
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def _check_alert_url(name: str, url: str) -> None:
    from urllib.parse import urlsplit
    u = urlsplit(url)
    if u.scheme == "https" and u.hostname:
        return
    if u.scheme == "http" and u.netloc.rsplit(":", 1)[0] in _LOOPBACK:
        return                                   # plain HTTP only to this machine (tests)
    raise ValueError(f"{name} must be an https:// URL (http:// only to 127.0.0.1), got {url!r}")


@dataclass(frozen=True)
class AlertsConfig:
    """[alerts]: a webhook (JSON POST) and/or a Telegram bot message on trading events. The bot
    token is a secret: never a config key, read from `telegram_token_file` (mode 0600) or the
    environment variable `telegram_token_env`, redacted in every log line and error."""

    on: list[AlertEvent] = field(
        default_factory=lambda: ["halted", "reducing", "role_death", "stale_feed"])  # + "fill"
    webhook_url: str = ""           # JSON POST {"event", "text", "run_id", "time", "details"}; "" = off
    telegram_chat_id: str = ""      # the chat the bot writes to; "" = no Telegram
    telegram_token_env: str = "PIPELINE_TELEGRAM_TOKEN"   # used when telegram_token_file is ""
    telegram_token_file: str = ""   # a 0600 file holding the bot token (preferred to the env)
    telegram_api_url: str = "https://api.telegram.org"    # Bot API base ({base}/bot<token>/sendMessage)
    stale_feed_s: float = 5.0       # a collector with no new tick this long is a stale feed
    timeout_s: float = 5.0          # per HTTP request; one retry after a failure
    queue_size: int = 256           # alerts waiting to be sent; beyond this they are dropped (counted)

    def __post_init__(self) -> None:
        if self.webhook_url:
            _check_alert_url("webhook_url", self.webhook_url)
        if self.telegram_chat_id:
            _check_alert_url("telegram_api_url", self.telegram_api_url)
        if self.stale_feed_s <= 0 or self.timeout_s <= 0 or self.queue_size < 1:
            raise ValueError("stale_feed_s and timeout_s must be > 0, queue_size >= 1")

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or self.telegram_chat_id) and bool(self.on)


# ----------------------------------------------------------------------------- simulator
# pipeline/config_sim.py (re-exported here)
from pipeline.config_sim import (SIM_TEST_API_KEY, SIM_TEST_PASSPHRASE,  # noqa: E402,F401
                                 SIM_TEST_SECRET, SimAccountConfig, SimConfig, SimFaultConfig,
                                 _check_relay)


# --- gateway risk (issue 7): pipeline/config_risk.py (re-exported here) ------------------------
from pipeline.config_risk import (_VENUE_NAMES, RiskConfig, RiskSymbolLimits,  # noqa: E402,F401
                                  TradingStateName)


# ----------------------------------------------------------------------------- strategy / backtest
# (issue 6: pipeline/strategy, pipeline/backtest). Kept in one block.

StrategyKind = str   # "sma", "package.module:Class" or "path/file.py:Class" (pipeline.strategy.loader)


@dataclass(frozen=True)
class StrategyInstanceConfig:
    """One strategy run by the strategy process ([[strategy.instances]])."""

    kind: StrategyKind = "sma"      # a built-in (pipeline.strategy.STRATEGIES), "pkg.mod:Class" or
                                    # "file.py:Class" relative to the config file
    id: int = 1                     # strategy_id carried in every signal (uint32)
    venue: str = "SIM"              # Venue name (registry)
    symbol: str = "BTCUSDT"         # the venue's own symbol spelling (registry)
    qty: float = 0.001              # order quantity per unit of position (base asset)
    allow_short: bool = False       # False: long/flat; True: long/short (reversals trade 2x qty)
    ttl_ms: int = 1000              # signal time-to-live; the gateway rejects it afterwards
    params: dict[str, Any] = field(default_factory=lambda: {"fast": 20, "slow": 100})
    # params are the strategy's own typed parameters, checked strictly by its Params dataclass

    def __post_init__(self) -> None:
        if not 0 <= self.id < 2**32:
            raise ValueError(f"id must fit in uint32, got {self.id}")
        if not self.kind.strip():
            raise ValueError("kind must be a strategy name, 'package.module:Class' or "
                             "'path/file.py:Class'")
        if not self.qty > 0:
            raise ValueError(f"qty must be > 0, got {self.qty}")
        if self.ttl_ms <= 0:
            raise ValueError(f"ttl_ms must be > 0, got {self.ttl_ms}")


@dataclass(frozen=True)
class StrategyConfig:
    """The strategy process ([strategy])."""

    channel: str = "pipeline-signals"  # signal channel: /tmp/pipeline-<uid>/<channel>/{sig,ctl}
    wait: WaitName | None = None       # ring wait strategy; None = use [reader].wait
    sndhwm: int = 1000                 # PUSH high-water mark (signals queued towards the gateway)
    linger_ms: int = 200               # PUSH LINGER: bounds shutdown with the gateway absent
    hello_every_s: float = 0.5         # READY handshake: HELLO resent this often until answered
    stats_every_s: float = 10.0        # log counters this often (0 = never)
    exit_when_writer_closes: bool = False  # replays/tests: stop once the ring's writer closed
    compiled: bool = True              # strategies with a compiled hot path use it (the SMA:
                                       # ext/smalive.pyx); false = the Python path everywhere
    feed_stale_ms: int = 3000          # no data and the ring writer's heartbeat older than this:
                                       # every strategy gets a STALE record (suspends; no
                                       # signals until fresh data). 0 = off. > the collector's
                                       # heartbeat_s (1 s by default)
    feedback: Literal["auto", "on", "off"] = "auto"   # order events from the gateway (its
    # event ring): position from fills, the start-up state from the gateway's; auto = when the
    # gateway offers them (pipeline/strategy/feedback.py)
    instances: list[StrategyInstanceConfig] = field(
        default_factory=lambda: [StrategyInstanceConfig()])
    # several venues in one run (docs/architecture.md, "Several venues at once"): the tick rings
    # read besides [ring].name (one per collector), and each venue's gateway channel
    rings: list[str] = field(default_factory=list)       # more tick rings (names) to read
    channels: dict[str, str] = field(default_factory=dict)   # venue → the signal channel of
    #                                  its gateway; a venue not named here uses `channel`

    def channel_of(self, venue: str) -> str:
        """The signal channel of the gateway that trades `venue` (a registry venue name)."""
        return self.channels.get(venue.upper(), self.channel)

    def __post_init__(self) -> None:
        for ch in (self.channel, *self.channels.values()):
            if not ch or "/" in ch or "@" in ch or ":" in ch:
                raise ValueError(f"channel must be a plain name (it names the channel's socket "
                                 f"directory), got {ch!r}")
        bad = [v for v in self.channels if v != v.upper() or v not in _VENUE_NAMES]
        if bad:
            raise ValueError(f"channels: {bad[0]!r} is not a venue (one of "
                             f"{', '.join(_VENUE_NAMES)}, upper case)")
        if len(set(self.rings)) != len(self.rings):
            raise ValueError(f"rings must not repeat a ring, got {self.rings}")
        if not 0 <= self.linger_ms <= 2000:
            raise ValueError(f"linger_ms must be within 0..2000, got {self.linger_ms}")
        if self.sndhwm < 1:
            raise ValueError(f"sndhwm must be >= 1, got {self.sndhwm}")
        if self.feed_stale_ms < 0:
            raise ValueError(f"feed_stale_ms must be >= 0 (0 = off), got {self.feed_stale_ms}")
        ids = [i.id for i in self.instances]
        if len(set(ids)) != len(ids):
            raise ValueError(f"strategy instance ids must be unique, got {ids}")


@dataclass(frozen=True)
class BacktestConfig:
    """The execution model of the backtester ([backtest])."""

    fee_maker_bps: float = 2.0         # fee on maker fills, bps of notional
    fee_taker_bps: float = 10.0        # fee on taker fills, bps of notional
    liquidity: Literal["taker", "maker"] = "taker"   # which fee the strategy's orders pay
    slippage_bps: float = 1.0          # adverse price move per fill, bps
    spread: Literal["constant", "quotes"] = "constant"
    # constant: fills also cross half_spread_bps; quotes: they cross the half-spread of the latest
    # BID/ASK records before the trade (record inputs only; 0 before the first quote)
    half_spread_bps: float = 0.0       # spread = constant: added to slippage_bps
    latency_ms: float = 0.0            # a signal fills on the first tick >= its tick's ts + latency
    mode: Literal["long_flat", "long_short"] = "long_flat"
    sizing: Literal["fraction", "fixed"] = "fraction"
    fraction: float = 1.0              # sizing=fraction: position notional / equity at entry
    fixed_qty: float = 1.0             # sizing=fixed: position size in base units
    initial_capital: float = 10_000.0  # quote currency
    period_s: float = 60.0             # returns for Sharpe/Sortino are taken on this grid
    price_increment: float = 1e-8      # prices are exact multiples of this (SMA sums are exact)
    # event engine only (scripts/backtest.py --engine event; pipeline/backtest/exchange.py):
    latency_histogram: str = ""        # .hdr.json from the profiler: order latency drawn from it
    risk_checks: bool = False          # run the gateway's risk kernel with this file's [risk]
    tick_size: float = 0.0             # venue filters for the risk kernel (0 = price_increment)
    step_size: float = 1e-8
    min_notional: float = 0.0
    max_batch: int = 65536             # records per strategy batch while nothing is working

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        for k in ("fee_maker_bps", "fee_taker_bps", "slippage_bps", "half_spread_bps",
                  "latency_ms", "tick_size", "step_size", "min_notional"):
            if getattr(self, k) < 0:
                raise ValueError(f"{k} must be >= 0, got {getattr(self, k)}")
        if not self.fraction > 0:
            raise ValueError(f"fraction must be > 0, got {self.fraction}")
        if not self.fixed_qty > 0:
            raise ValueError(f"fixed_qty must be > 0, got {self.fixed_qty}")
        if not self.initial_capital > 0:
            raise ValueError(f"initial_capital must be > 0, got {self.initial_capital}")
        if not self.period_s > 0:
            raise ValueError(f"period_s must be > 0, got {self.period_s}")
        if not self.price_increment > 0:
            raise ValueError(f"price_increment must be > 0, got {self.price_increment}")

# ----------------------------------------------------------------------------- end (issue 6)


@dataclass(frozen=True)
class PipelineConfig:
    """The whole file. Sections are optional; each has documented defaults."""

    ring: RingConfig = field(default_factory=RingConfig)
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    bus_demo: BusDemoConfig = field(default_factory=BusDemoConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)        # issue 8
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)        # issue 14
    roles: dict[str, RoleSpec] = field(default_factory=dict)
    sim: SimConfig = field(default_factory=SimConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)     # issue 6
    backtest: BacktestConfig = field(default_factory=BacktestConfig)     # issue 6
    alerts: AlertsConfig = field(default_factory=AlertsConfig)           # issue 14

    def for_role(self, name: str) -> "PipelineConfig":
        """What role `name` reads: the file's sections with the role's own [roles.<name>.config]
        over them (itself when the role has none). Built and checked at load."""
        view = getattr(self, "_views", {}).get(name)
        return view if view is not None else getattr(self, "_base", self)

    @property
    def role_name(self) -> str:
        """The role this view is of ("" = the file as the launcher reads it)."""
        return getattr(self, "_role", "")


# ----------------------------------------------------------------------------- loading


ENV_ROLE = "PIPELINE_ROLE"     # set by the launcher for each role it starts


def load(path: str | Path, cls: type = PipelineConfig, role: str | None = None) -> Any:
    """Read a TOML file into `cls` (PipelineConfig by default). A PipelineConfig is the view of
    `role` (default: $PIPELINE_ROLE, which the launcher sets for each role it starts; a role
    without [roles.<name>.config], or no role, reads the file as it is)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return _root(cls, data, str(path), role)


def loads(text: str, cls: type = PipelineConfig, source: str = "<string>",
          role: str | None = None) -> Any:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    return _root(cls, data, source, role)


def _overlay(base: dict, over: dict) -> dict:
    """`over` on `base`: tables merge key by key, any other value (arrays included) replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _overlay(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) \
            else v
    return out


def _root(cls: type, data: Any, source: str, role: str | None) -> Any:
    """The file's config with every role's view (for_role) built and checked now: an error in
    one role's own sections names the role, before anything starts."""
    cfg = from_dict(cls, data, source=source)
    if cls is not PipelineConfig:
        return cfg
    views: dict[str, PipelineConfig] = {}
    for name, spec in cfg.roles.items():
        if spec.config:
            try:
                view = from_dict(cls, _overlay(data, spec.config), source=source)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (in the view of role {name}: [roles.{name}.config] "
                                  "over the file's sections)") from None
            object.__setattr__(view, "_role", name)
            object.__setattr__(view, "_base", cfg)
            views[name] = view
    for c in (cfg, *views.values()):
        object.__setattr__(c, "_views", views)
    if role is None:
        import os
        role = os.environ.get(ENV_ROLE, "")
    elif role and role not in cfg.roles:
        raise ConfigError(f"{source}: no role {role!r} (roles: {', '.join(cfg.roles) or 'none'})")
    return cfg.for_role(role) if role else cfg


def from_dict(cls: type, data: Any, source: str = "<dict>", where: str = "") -> Any:
    """Build dataclass `cls` from a mapping, strictly."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: [{where or 'root'}] must be a table, got {_tname(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {_key(where, unknown[0])!r} (known keys of "
            f"[{where or 'root'}]: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, f in fields.items():
        key = _key(where, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key {key!r}")
            continue
        kwargs[name] = _convert(hints[name], data[name], source, key)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: [{where or 'root'}] {exc}") from None


def _key(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _tname(v: Any) -> str:
    return type(v).__name__


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source, key)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, source, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{source}: {key!r}: unsupported value")
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"{source}: {key!r} must be one of {', '.join(map(repr, args))}, got {value!r}"
            )
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key!r} must be an array, got {_tname(value)}")
        item_t = args[0] if args else Any
        items = [_convert(item_t, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key!r} must be a table, got {_tname(value)}")
        val_t = args[1] if len(args) == 2 else Any
        return {k: _convert(val_t, v, source, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key!r} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key!r} must be an integer, got {_tname(value)} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key!r} must be a number, got {_tname(value)} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key!r} must be a string, got {_tname(value)} {value!r}")
        return value
    raise ConfigError(f"{source}: {key!r}: unsupported field type {tp!r}")
