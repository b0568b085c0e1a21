"""Benchmarks for RestEngine: run from the repository root, e.g. ``python -m bench.cache_ratio``."""
