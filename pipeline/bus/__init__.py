"""The tick bus (shared-memory ring: ring.py, twin ring_py.py) and the signal codec and ZeroMQ
sockets (signals.py)."""
