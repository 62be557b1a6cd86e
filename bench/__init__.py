"""Benchmarks: each script measures a figure in RESULTS.md and prints medians and ratios; none is a
pass/fail test. Run them from the repository root as modules, ``python -m bench.<name> [options]``;
their shared set-up is :mod:`bench.common`."""
