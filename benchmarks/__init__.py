"""Benchmarks: they print figures and never assert on time. Run ``make bench``."""
