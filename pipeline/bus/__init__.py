"""The tick bus (shared-memory ring) and, later, the signal codec and ZeroMQ sockets."""
