"""The SMA crossover as a plug-in: what a user's file looks like when it builds on a built-in.

    kind = "examples/strategies/sma_plugin.py:SmaPlugin"
    params = { fast = 20, slow = 100, price_increment = 0.01 }

It is exactly pipeline.strategy.sma.SmaCrossover (same Params, same rule) run through its Python
path: a subclass never gets the built-in's compiled kernel, whose hooks would not be its own.
"""
from pipeline.strategy.sma import SmaCrossover, SmaParams


class SmaPlugin(SmaCrossover):
    Params = SmaParams
    kind = "sma-plugin"
