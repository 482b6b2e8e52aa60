"""Loads the compiled Cython kernels with an error that says how to build them."""
from __future__ import annotations

import importlib
from types import ModuleType

BUILD_HINT = "run `make build` (or `pip install -e .`) in the checkout to compile ext/*.pyx"


class ExtensionNotBuilt(ImportError):
    """A Cython extension of pipeline is not compiled."""


def load(name: str) -> ModuleType:
    """Import pipeline._ext.<name>, or raise ExtensionNotBuilt naming the build command."""
    try:
        return importlib.import_module(f"pipeline._ext.{name}")
    except ImportError as exc:
        raise ExtensionNotBuilt(
            f"pipeline's Cython extension {name!r} is not built ({exc}); {BUILD_HINT}"
        ) from exc
