"""Peer apps the benchmarks compare RestEngine against."""
