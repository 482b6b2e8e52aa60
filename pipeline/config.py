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


# ----------------------------------------------------------------------------- strategy / backtest
# (issue 6: pipeline/strategy, pipeline/backtest). Kept in one block.

StrategyKind = Literal["sma"]


@dataclass(frozen=True)
class StrategyInstanceConfig:
    """One strategy run by the strategy process ([[strategy.instances]])."""

    kind: StrategyKind = "sma"      # which Strategy class (pipeline.strategy.STRATEGIES)
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
        if not self.qty > 0:
            raise ValueError(f"qty must be > 0, got {self.qty}")
        if self.ttl_ms <= 0:
            raise ValueError(f"ttl_ms must be > 0, got {self.ttl_ms}")


@dataclass(frozen=True)
class StrategyConfig:
    """The strategy process ([strategy])."""

    channel: str = "pipeline-signals"  # signal channel: ipc://@<channel> (+ .ctl for READY)
    wait: WaitName | None = None       # ring wait strategy; None = use [reader].wait
    sndhwm: int = 1000                 # PUSH high-water mark (signals queued towards the gateway)
    linger_ms: int = 200               # PUSH LINGER: bounds shutdown with the gateway absent
    hello_every_s: float = 0.5         # READY handshake: HELLO resent this often until answered
    stats_every_s: float = 10.0        # log counters this often (0 = never)
    exit_when_writer_closes: bool = False  # replays/tests: stop once the ring's writer closed
    instances: list[StrategyInstanceConfig] = field(
        default_factory=lambda: [StrategyInstanceConfig()])

    def __post_init__(self) -> None:
        if not self.channel or "/" in self.channel or "@" in self.channel or ":" in self.channel:
            raise ValueError(f"channel must be a plain name (it becomes ipc://@<channel>), "
                             f"got {self.channel!r}")
        if not 0 <= self.linger_ms <= 2000:
            raise ValueError(f"linger_ms must be within 0..2000, got {self.linger_ms}")
        if self.sndhwm < 1:
            raise ValueError(f"sndhwm must be >= 1, got {self.sndhwm}")
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

    def __post_init__(self) -> None:
        for k in ("fee_maker_bps", "fee_taker_bps", "slippage_bps", "half_spread_bps",
                  "latency_ms"):
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
    strategy: StrategyConfig = field(default_factory=StrategyConfig)     # issue 6
    backtest: BacktestConfig = field(default_factory=BacktestConfig)     # issue 6


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
