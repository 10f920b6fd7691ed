"""Timing helpers shared by the benchmarks: the best and the median of repeated runs."""

from __future__ import annotations

import statistics
import time


def best_of(function, repeat: int, clock=time.perf_counter) -> float:
    """The shortest of ``repeat`` runs of ``function()`` (seconds of ``clock``)."""
    best = float("inf")
    for _ in range(repeat):
        started = clock()
        function()
        best = min(best, clock() - started)
    return best


def median_of(function, rounds: int = 5) -> float:
    """The median wall time of ``rounds`` runs of ``function()`` (seconds)."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
