"""Benchmarks: each script times ours against a baseline in the same run and ends with one JSON line."""
