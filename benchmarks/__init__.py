"""Benchmarks that print the figures quoted in the README; run as `python -m benchmarks.NAME`."""
