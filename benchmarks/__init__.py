"""Benchmarks of the harness (run with `tox -e bench`; see docs/performance.md)."""
