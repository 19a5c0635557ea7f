"""Benchmarks of the gateway as a whole (see bench/README.md)."""
