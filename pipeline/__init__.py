"""Low-latency crypto trading pipeline: collector → tick bus → strategy → gateway.

See README.md for the picture. Shared bottom-of-the-house modules: records (the one schema),
config (TOML → frozen dataclasses), clock (live and test clocks in ns).
"""
__version__ = "0.1.0"
