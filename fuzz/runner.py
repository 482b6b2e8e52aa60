"""The atheris entry point the harnesses share: `python -m fuzz.<harness> WORK_DIR CORPUS_DIR
[libFuzzer flags]` (e.g. -max_total_time=300, -runs=2000). Only our code (pipeline.*) is
instrumented for coverage, as the harness imports it (`instrumented()`); instrumenting everything
loaded (numpy, requests, ...) costs minutes at start for nothing. The compiled kernels run
uninstrumented but are driven and checked against their twins on every input."""
from __future__ import annotations

import contextlib
import sys
from typing import Callable


def instrumented():
    """Around a harness's imports: atheris instruments the pipeline modules imported inside, when
    the harness runs as `python -m fuzz.<harness>` with atheris installed; otherwise nothing."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is None or not spec.name.startswith("fuzz."):
        return contextlib.nullcontext()
    try:
        import atheris
    except ImportError:
        return contextlib.nullcontext()
    return atheris.instrument_imports(include=["pipeline"])


def fuzz_main(one_input: Callable[[bytes], None], argv: list[str]) -> None:
    import atheris

    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def replay(one_input: Callable[[bytes], None], paths) -> int:
    """Run every stored input once (no atheris needed); returns how many ran."""
    n = 0
    for p in paths:
        one_input(p.read_bytes())
        n += 1
    return n


if __name__ == "__main__":
    sys.exit("run a harness: python -m fuzz.ws_binance WORK_DIR fuzz/corpus/ws_binance -runs=1000")
