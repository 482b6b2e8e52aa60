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


# --- collector (issue 4) -------------------------------------------------------------------
@dataclass(frozen=True)
class CollectorConfig:
    """The market-data collector: one venue feed, its connections, book sync and recording."""

    venue: Literal["binance"] = "binance"           # the venue adapter (pipeline/venues/)
    venue_id: Literal["BINANCE", "SIM"] = "BINANCE"  # registry venue of the instruments
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
    drain_timeout_s: float = 2.0      # wait this long for the old connection's close frame
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
RoleKind = Literal["sim", "collector", "strategy", "gateway", "recorder", "command"]


@dataclass(frozen=True)
class RoleSpec:
    """One process the launcher starts: [roles.<name>]."""

    kind: RoleKind                 # which role; "command" runs `command` (tools, tests)
    cores: list[int] = field(default_factory=list)   # CPUs to pin to; [] = not pinned
    wait: WaitName = "blocking"    # ring wait strategy for roles that read the ring
    nice: int = 0                  # added niceness (negative needs CAP_SYS_NICE)
    fifo_priority: int = 0         # SCHED_FIFO priority 1..99; 0 = normal scheduling
    restart: Literal["never", "on-failure"] = "never"   # on-failure only where safe
    max_restarts: int = 3
    heartbeat_timeout: float = 5.0  # seconds without a heartbeat = stuck
    ready: Literal["auto", "heartbeat", "started"] = "auto"  # auto: heartbeat, except commands
    ready_timeout: float = 20.0     # seconds to wait for its first heartbeat before the next role
    stop_timeout: float = 5.0       # SIGTERM → SIGKILL after this many seconds
    command: list[str] = field(default_factory=list)  # kind = "command": argv to exec
    args: list[str] = field(default_factory=list)     # extra CLI args for the role's main

    def __post_init__(self) -> None:
        if self.kind == "command" and not self.command:
            raise ValueError("a role of kind 'command' needs a command")
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
    prometheus_port: int = -1       # -1 = off, 0 = any free port, on 127.0.0.1 only
    duration: float = 0.0           # seconds to run (0 = until SIGINT/SIGTERM)
    run_dir: str = "run"            # role logs, summaries and latency histograms go here


@dataclass(frozen=True)
class PipelineConfig:
    """The whole file. Sections are optional; each has documented defaults."""

    ring: RingConfig = field(default_factory=RingConfig)
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    bus_demo: BusDemoConfig = field(default_factory=BusDemoConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    roles: dict[str, RoleSpec] = field(default_factory=dict)


# ----------------------------------------------------------------------------- loading


def load(path: str | Path, cls: type = PipelineConfig) -> Any:
    """Read a TOML file into `cls` (PipelineConfig by default)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return from_dict(cls, data, source=str(path))


def loads(text: str, cls: type = PipelineConfig, source: str = "<string>") -> Any:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    return from_dict(cls, data, source=source)


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
