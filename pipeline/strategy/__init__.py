"""Strategies: the base class, the SMA crossover demo, and the strategy process.

`STRATEGIES` maps a config `kind` to its class. The process lives in pipeline.strategy.process
(`python -m pipeline.strategy --config FILE`).
"""
from pipeline.strategy.base import Strategy
from pipeline.strategy.sma import SmaCrossover, SmaParams, sma_cross_signals

STRATEGIES: dict[str, type[Strategy]] = {"sma": SmaCrossover}

__all__ = ["Strategy", "SmaCrossover", "SmaParams", "sma_cross_signals", "STRATEGIES"]
