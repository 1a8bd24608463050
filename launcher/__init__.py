"""Starts and supervises the whole cluster on this machine (make run, tests, benchmarks)."""
