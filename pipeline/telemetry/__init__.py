"""Telemetry: the role status block (heartbeats and counters in shared memory), hop latency
histograms (HdrHistogram) and the Prometheus exporter."""
