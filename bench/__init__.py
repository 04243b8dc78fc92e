"""Benchmarks of notifier: `python -m bench --recipients N` (see bench/RESULTS.md)."""
