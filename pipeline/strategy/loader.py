"""Strategy plug-ins: a config `kind` string → the Strategy class it names.

    kind = "sma"                                   a built-in (pipeline.strategy.STRATEGIES)
    kind = "mypkg.signals:Breakout"                a class in an importable module
    kind = "strategies/breakout.py:Breakout"       a class in a file, relative to the config file
                                                   (or to the current directory without one)

Every failure is a ConfigError naming the kind and what is wrong (no such file, the module's own
import error, no such class, not a Strategy subclass), raised before any ring, socket or process
exists. The same string works for `scripts/backtest.py --strategy`.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from pipeline.config import ConfigError


def builtins() -> dict:
    from pipeline.strategy import STRATEGIES
    return STRATEGIES


def _load_file(path: Path, kind: str, where: str):
    if not path.is_file():
        raise ConfigError(f"{where}: strategy kind {kind!r}: no such file {str(path)!r}")
    # a stable, unique module name per file, so two plug-ins called strategy.py never collide and
    # the spawn start method (sweeps) can import the class again by the same route
    name = "pl_plugin_" + path.stem + "_" + hashlib.sha1(str(path).encode()).hexdigest()[:10]
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{where}: strategy kind {kind!r}: {str(path)!r} is not a Python file")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:  # noqa: BLE001 — the user's module: report it, whatever it raised
        del sys.modules[name]
        raise ConfigError(f"{where}: strategy kind {kind!r}: importing {str(path)!r} failed: "
                          f"{type(exc).__name__}: {exc}") from None
    return mod


def resolve(kind: str, base_dir: str | Path | None = None, where: str = "<config>"):
    """The Strategy subclass named by `kind` (see the module doc); ConfigError otherwise."""
    from pipeline.strategy.base import Strategy
    if not isinstance(kind, str) or not kind.strip():
        raise ConfigError(f"{where}: strategy kind must be a non-empty string, got {kind!r}")
    kind = kind.strip()
    table = builtins()
    if kind in table:
        return table[kind]
    target, sep, clsname = kind.rpartition(":")
    if not sep or not target or not clsname:
        raise ConfigError(
            f"{where}: unknown strategy kind {kind!r}: use a built-in ({', '.join(sorted(table))}), "
            f"'package.module:ClassName' or 'path/to/file.py:ClassName'")
    if target.endswith(".py") or "/" in target or "\\" in target:
        p = Path(target).expanduser()
        if not p.is_absolute():
            p = Path(base_dir or ".") / p
        mod = _load_file(p.resolve(), kind, where)
    else:
        try:
            mod = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"{where}: strategy kind {kind!r}: no module {exc.name!r} "
                              f"(is it installed or on PYTHONPATH?)") from None
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"{where}: strategy kind {kind!r}: importing {target!r} failed: "
                              f"{type(exc).__name__}: {exc}") from None
    cls = getattr(mod, clsname, None)
    if cls is None:
        raise ConfigError(f"{where}: strategy kind {kind!r}: {target!r} has no class "
                          f"{clsname!r}")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"{where}: strategy kind {kind!r}: {clsname!r} is not a subclass of "
                          f"pipeline.strategy.Strategy (got {type(cls).__name__})")
    return cls


def config_dir(source: str) -> Path | None:
    """The directory relative plug-in paths are resolved against: the config file's, if `source`
    names one."""
    p = Path(source)
    return p.resolve().parent if source and not source.startswith("<") and p.exists() else None
