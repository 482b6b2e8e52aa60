"""A Binance-compatible spot exchange on loopback: the pipeline's embedded default venue.

`python -m pipeline.sim --config FILE` runs it; `pipeline.sim.testing.start_sim` starts it as a
subprocess for tests and launchers. See server.py for the URL map and faults.py for faults.
"""
