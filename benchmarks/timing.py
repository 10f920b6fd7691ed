"""Helpers shared by the benchmarks: the best and the median of repeated runs, and printing a
list of result rows."""

from __future__ import annotations

import json
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


def report_rows(rows: list[dict], as_json: bool) -> None:
    """Rows of ``{"what": label, measure: value, ...}`` as JSON or one aligned line each."""
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    for row in rows:
        print(row["what"].ljust(44), "  ".join(f"{k} {v:.3g}" for k, v in row.items()
                                               if k != "what"))
