"""Benchmarks: figures, never assertions on time.

``promo bench`` (``make bench``, ``benchmarks.bench``) measures every speed figure on the
local servers and prints them as one JSON object; ``python -m benchmarks.interval_coverage``
and ``python -m benchmarks.other_shop`` print the statistical figures of the README.
"""
