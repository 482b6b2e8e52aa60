"""The [sim] section of the config: the exchange simulator's accounts, faults and tape
(SimConfig, SimAccountConfig, SimFaultConfig) and its documented test credentials. Split out of
pipeline/config.py, which re-exports every name here and loads the section like any other."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# The embedded Binance-compatible exchange (pipeline/sim/). One contiguous block: SimAccountConfig,
# SimFaultConfig, SimConfig; `PipelineConfig.sim` holds it.

# Binance's documented HMAC test key pair (rest-api.md "SIGNED Endpoint Examples"): a public test
# vector, accepted by the simulator only. Real keys never go in a config file.
SIM_TEST_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SIM_TEST_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SIM_TEST_PASSPHRASE = "sim-okx-passphrase"   # the OKX side's OK-ACCESS-PASSPHRASE (test accounts)


@dataclass(frozen=True)
class SimAccountConfig:
    """One simulated account: an API key, its HMAC secret and starting balances (decimal strings)."""

    api_key: str = SIM_TEST_API_KEY
    secret: str = SIM_TEST_SECRET
    # An Ed25519 API key instead of HMAC: the public key (SPKI PEM, or base64 of its 32 raw bytes
    # or of the SPKI DER); signatures are then base64 Ed25519, as Binance's Ed25519 keys
    ed25519_public_key: str = ""
    passphrase: str = SIM_TEST_PASSPHRASE  # OKX API keys have one (OK-ACCESS-PASSPHRASE, login)
    balances: dict[str, str] = field(
        default_factory=lambda: {"USDT": "100000", "BTC": "1", "ETH": "10", "SOL": "100"})

    def __post_init__(self) -> None:
        if not self.api_key or not self.secret:
            raise ValueError("api_key and secret must be non-empty")

    def __repr__(self) -> str:  # never print a secret, even a test one
        kind = ", ed25519" if self.ed25519_public_key else ""
        return (f"SimAccountConfig(api_key={self.api_key[:6]}..., secret=<redacted>{kind}, "
                f"balances={self.balances})")


@dataclass(frozen=True)
class SimFaultConfig:
    """A fault injected `at_s` seconds after the simulator starts (same names as POST /_sim/fault)."""

    fault: str = ""
    at_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)


def _check_relay(c: "SimConfig") -> None:
    from urllib.parse import urlsplit
    ws, rest = urlsplit(c.upstream_ws_url), urlsplit(c.upstream_rest_url)
    if ws.scheme not in ("ws", "wss") or not ws.hostname:
        raise ValueError(f"tape = 'relay' needs upstream_ws_url = ws[s]://host[:port], got "
                         f"{c.upstream_ws_url!r}")
    if rest.scheme not in ("http", "https") or not rest.hostname:
        raise ValueError(f"tape = 'relay' needs upstream_rest_url = http[s]://host[:port], got "
                         f"{c.upstream_rest_url!r}")
    known = ("trade", "aggTrade", "bookTicker", "depth@100ms", "depth")
    bad = [ch for ch in c.upstream_channels if ch not in known]
    if bad or not any(ch.startswith("depth") for ch in c.upstream_channels):
        raise ValueError(f"upstream_channels must be of {', '.join(known)} and name a depth "
                         f"channel (the relay keeps its books from it), got {c.upstream_channels}")
    if not any(ch in ("trade", "aggTrade") for ch in c.upstream_channels):
        raise ValueError("upstream_channels must name trade or aggTrade (resting orders fill on "
                         "the venue's trades)")
    if not 5 <= c.upstream_snapshot_limit <= 5000:
        raise ValueError(f"upstream_snapshot_limit must be 5..5000, got {c.upstream_snapshot_limit}")
    if c.upstream_silence_s < 0 or c.upstream_backoff_max_s < 0.5:
        raise ValueError("upstream_silence_s must be >= 0 and upstream_backoff_max_s >= 0.5")


@dataclass(frozen=True)
class SimConfig:
    """The exchange simulator. Binds loopback only unless allow_remote is set."""

    host: str = "127.0.0.1"            # interface to bind; non-loopback needs allow_remote = true
    port: int = 0                      # 0 = an ephemeral port (reported in the ready file)
    allow_remote: bool = False
    seed: int = 1                      # synthetic tape and ids are reproducible for one seed
    tape: Literal["synthetic", "replay", "relay"] = "synthetic"   # relay: paper trading on a
                                       # venue's live public streams (docs/going-live.md)
    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    rate: float = 1000.0               # synthetic market-data messages/s over all streams (1..200000)
    bursts: bool = True                # synthetic arrival bursts (the mean rate stays `rate`)
    volatility: float = 0.0            # synthetic: annualized volatility of a fair value the book
                                       # follows (0.6 ≈ a major coin; 0 = walk by levels only)
    trend_s: float = 30.0              # synthetic: mean length of a volatility/trend regime, s
    paused: bool = False               # start with the tape paused (tests resume it or cue trades)
    depth_levels: int = 50             # synthetic book levels per side
    replay_files: list[str] = field(default_factory=list)  # `<local_ts_ns> <raw json>` lines, .gz ok
    replay_speed: float = 1.0          # 1 = original pace, 10 = ten times faster, 0 = unthrottled
    replay_loop: bool = False          # start over at the end of the recording
    replay_rebase_time: bool = True    # shift E/T so the recording looks live
    # relay (paper trading): the books and trades are the upstream venue's, from its public streams
    # (Binance wire format); the run's orders are matched here against them (pipeline/sim/relay.py)
    upstream_ws_url: str = ""          # e.g. wss://stream.binance.com:9443 (combined streams)
    upstream_rest_url: str = ""        # e.g. https://api.binance.com (exchangeInfo, depth snapshots)
    upstream_channels: list[str] = field(
        default_factory=lambda: ["trade", "bookTicker", "depth@100ms"])   # relayed per symbol
    upstream_snapshot_limit: int = 1000   # depth levels per upstream snapshot (weight 50 at 1000)
    upstream_silence_s: float = 30.0   # no upstream frame this long: reconnect (0 = never)
    upstream_backoff_max_s: float = 30.0   # reconnect back-off cap (from 0.5 s, doubling, jittered)
    upstream_ca_bundle: str = ""       # PEM to trust for the upstream's TLS ("" = the system store)
    ping_interval_s: float = 20.0      # server ping period on every WebSocket
    pong_timeout_s: float = 60.0       # close a client that has not answered a ping in this time
    max_lifetime_s: float = 86400.0    # close any WebSocket after this long (Binance: 24 h)
    ws_incoming_per_s: int = 5         # incoming messages/s per market-data connection (Binance: 5)
    max_streams: int = 1024            # streams per market-data connection
    ws_send_queue: int = 100_000       # frames queued per slow consumer before it is dropped
    weight_limit_1m: int = 6000        # REQUEST_WEIGHT per minute per IP
    order_limit_10s: int = 50          # ORDERS per 10 s per account
    order_limit_1d: int = 160_000      # ORDERS per day per account
    ban_s: float = 120.0               # 418 ban length for a client that keeps going after a 429
    okx_rate_limits: bool = True       # OKX side: OKX's per-endpoint limits (false: benchmarks)
    commission_rate: float = 0.0       # taker and maker, charged in the asset received
    # bounded history per account (pipeline/sim/accounts.py Retention; 0 = no limit of the kind):
    # final orders past the newest order_history, or final for longer than order_history_s, are
    # dropped (a query answers -2013 "Order does not exist."); own trades keep the newest
    # trade_history. Open orders are always kept.
    order_history: int = 10_000
    order_history_s: float = 0.0
    trade_history: int = 20_000
    accounts: list[SimAccountConfig] = field(default_factory=lambda: [SimAccountConfig()])
    faults: list[SimFaultConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.host not in ("127.0.0.1", "localhost", "::1") and not self.allow_remote:
            raise ValueError(f"host {self.host!r} is not loopback; set allow_remote = true to bind it")
        if not 1 <= self.rate <= 200_000:
            raise ValueError(f"rate must be 1..200000 messages/s, got {self.rate}")
        if not 0 <= self.volatility <= 10 or self.trend_s <= 0:
            raise ValueError(f"volatility must be 0..10 (annualized) and trend_s > 0, got "
                             f"{self.volatility}, {self.trend_s}")
        if self.replay_speed < 0:
            raise ValueError(f"replay_speed must be >= 0, got {self.replay_speed}")
        if self.tape == "replay" and not self.replay_files:
            raise ValueError("tape = 'replay' needs replay_files")
        if self.tape == "relay":
            _check_relay(self)
        if not self.symbols:
            raise ValueError("symbols must not be empty")
        for name in ("ping_interval_s", "pong_timeout_s", "max_lifetime_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.ws_incoming_per_s < 1 or self.max_streams < 1 or self.depth_levels < 5:
            raise ValueError("ws_incoming_per_s and max_streams must be >= 1, depth_levels >= 5")
        if not 0 <= self.commission_rate < 0.1:
            raise ValueError(f"commission_rate must be in [0, 0.1), got {self.commission_rate}")
        if self.order_history < 0 or self.order_history_s < 0 or self.trade_history < 0:
            raise ValueError("order_history, order_history_s and trade_history must be >= 0 "
                             "(0: no limit)")
        keys = [a.api_key for a in self.accounts]
        if len(set(keys)) != len(keys):
            raise ValueError("two accounts share an api_key")
