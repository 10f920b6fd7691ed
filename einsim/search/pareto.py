"""Pareto fronts of sweep points: lower is better in every metric.

Metrics a feasible point lacks, or no point has (``area_mm2`` of a GPU), are left out; points with a NaN
metric cannot be compared and are not on the front.
"""

from __future__ import annotations

import numpy as np

METRICS = ("latency_s", "energy_j", "area_mm2")


def _columns(feasible: list[dict], metrics: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Each metric every feasible point has as a number, as a float column."""
    columns = {}
    for metric in metrics:
        values = [p.get(metric) for p in feasible]
        if None in values:
            continue
        try:
            column = np.array(values, dtype=float)
        except (TypeError, ValueError):  # text where a number belongs: not a metric
            continue
        if column.size and np.isnan(column).all():  # no point has it (a GPU's area)
            continue
        columns[metric] = column
    return columns


def pareto(points: list[dict], metrics: tuple[str, ...] = METRICS) -> list[dict]:
    """Feasible points no other point beats or ties in every metric (lower is better)."""
    feasible = [p for p in points if p.get("feasible")]
    columns = _columns(feasible, metrics)
    if not columns or not feasible:
        return []
    costs = np.stack(list(columns.values()), axis=1)
    comparable = ~np.isnan(costs).any(axis=1)
    if not comparable.all():
        feasible = [p for p, ok in zip(feasible, comparable.tolist()) if ok]
        costs = costs[comparable]
        if not feasible:
            return []
    if len(columns) > 3:
        names = list(columns)
        front = [p for p in feasible if not any(  # the definition: O(n^2)
            all(q[m] <= p[m] for m in names) and any(q[m] < p[m] for m in names)
            for q in feasible)]
        return sorted(front, key=lambda p: tuple(p[m] for m in names))
    distinct, which = np.unique(costs, axis=0, return_inverse=True)
    keep = ~_dominated(distinct)[which.reshape(-1)]  # equal points share their fate
    order = np.lexsort((np.arange(len(feasible)),) + tuple(costs.T[::-1]))
    return [feasible[i] for i in order.tolist() if keep[i]]


def _dominated(costs: np.ndarray) -> np.ndarray:
    """Which rows another row dominates, for distinct rows in lexicographic order (<= 3 metrics).

    An earlier row is never larger in the first metric, so a row is dominated iff an earlier
    row is not larger in the other two.  Every (earlier, later) pair is checked once by
    divide and conquer on the row index, one level at a time on arrays: O(n log^2 n).
    """
    n = len(costs)
    rank = [np.unique(c, return_inverse=True)[1].reshape(-1) for c in costs.T[1:]]
    y = rank[0] if rank else np.zeros(n, dtype=np.int64)
    z = rank[1] if len(rank) > 1 else np.zeros(n, dtype=np.int64)
    index, dominated, size = np.arange(n), np.zeros(n, dtype=bool), 1
    if len(costs.T) == 1:
        return index > 0
    while size < n:
        segment, left = index // (2 * size), (index // size) % 2 == 0
        # within each segment in y order (a left row first on ties), the least z of the left
        # rows so far; segments are offset so that the running minimum never crosses them
        order = np.argsort((segment * n + y) * 2 + ~left, kind="stable")
        offset = segment[order] * (n + 1)
        least = np.minimum.accumulate(np.where(left[order], z[order], n) - offset)
        dominated[order[~left[order] & (least <= z[order] - offset)]] = True
        size *= 2
    return dominated
