"""Sweeps: evaluate the Cartesian product of sequence lengths and named parameters.

Parameters are hardware fields by name (``pe_dim``, ``global_buffer_bytes``, ``dram_bandwidth``,
``clock_hz``) or mapping parameters (``P1``, ``rows``); mapping parameters not swept are chosen
by the mapper at every point.  Each point is a flat dict (one CSV row); infeasible points are
kept with ``feasible = False`` and the reason.

:func:`run_sweep` is the scalable front door: vectorized over whole arrays when the mapping
allows it, else point by point (locally or on Dask), writing every point to an append-only
store (:mod:`einsim.sweep_store`) as it finishes, so an interrupted sweep can be resumed.
"""

from __future__ import annotations

import csv
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from einsim.cost import Report
from einsim.evaluator import evaluate, split_parameters
from einsim.mapping import MappingError, load_mapping_spec
from hw_models.spatial_array import load_spatial_array

METRICS = ("latency_s", "energy_j", "area_mm2")


@dataclass(frozen=True)
class SweepResult:
    points: list[dict]
    pareto: list[dict]
    engine: str = "points"  # how the missing points were computed: points, vectorized, dask


def point_of(report: Report, swept: dict) -> dict:
    """One sweep row: the swept values, ``seq_len`` and the report's figures."""
    row = {**swept, "seq_len": report.seq_len, "mapping": report.mapping,
           "hardware": report.hardware, "workload": report.workload, "feasible": True,
           "error": "", "latency_s": report.latency_s, "energy_j": report.energy_j,
           "area_mm2": report.area_mm2, "compute_latency_s": report.compute_latency_s,
           "memory_latency_s": report.memory_latency_s, "traffic_bytes": report.traffic_bytes,
           "buffer_bytes": report.buffer_bytes, "utilization": dict(report.utilization)}
    for name, value in report.parameters.items():
        row.setdefault(name, value)
    return row


def iterate(mapping: str, workload: str, seq_lens: Iterable[int],
            parameters: dict[str, list] | None = None, hardware: str | None = None,
            objective: str = "latency") -> Iterator[dict]:
    """Yield one row per design point, in Cartesian order (sequence length outermost)."""
    _check_names(mapping, hardware, parameters or {})
    for seq_len, swept in design_points(seq_lens, parameters):
        yield evaluate_point(mapping, workload, seq_len, swept, hardware, objective)


def design_points(seq_lens: Iterable[int], parameters: dict[str, list] | None = None
                  ) -> Iterator[tuple[int, dict]]:
    """``(seq_len, swept values)`` of every point, in Cartesian order (seq_len outermost)."""
    names = list(parameters or {})
    for seq_len in seq_lens:
        for values in itertools.product(*(parameters or {}).values()):
            yield seq_len, dict(zip(names, values))


def evaluate_point(mapping: str, workload: str, seq_len: int, swept: dict,
                   hardware: str | None = None, objective: str = "latency") -> dict:
    """The row of one design point (an infeasible point is kept, with the reason)."""
    try:
        report = evaluate(mapping, hardware, workload, seq_len, swept, objective)
    except MappingError as error:
        return {**swept, "seq_len": seq_len, "mapping": mapping, "feasible": False,
                "error": str(error)}
    return point_of(report, swept)


def _check_names(mapping: str, hardware: str | None, parameters: dict[str, list]) -> None:
    """Fail before the first point on a misspelt parameter (not as N infeasible points)."""
    spec = load_mapping_spec(mapping)
    _, overrides = split_parameters(spec, {k: v[0] for k, v in parameters.items() if v})
    for name, value in overrides.items():  # a dotted path is checked against the hardware
        load_spatial_array(hardware or spec.hardware, {name: value})


def pareto(points: list[dict], metrics: tuple[str, ...] = METRICS) -> list[dict]:
    """Feasible points no other point beats or ties in every metric (lower is better)."""
    feasible = [p for p in points if p.get("feasible")]
    numeric = all(isinstance(p[m], (int, float)) for p in feasible for m in metrics)
    costs = np.array([[p[m] for m in metrics] for p in feasible], dtype=float) if numeric \
        else None
    if costs is None or len(metrics) > 3 or not np.isfinite(costs).all():
        front = [p for p in feasible if not any(  # the definition: O(n^2)
            all(q[m] <= p[m] for m in metrics) and any(q[m] < p[m] for m in metrics)
            for q in feasible)]
        return sorted(front, key=lambda p: tuple(p[m] for m in metrics))
    if not feasible:
        return []
    distinct, which = np.unique(costs, axis=0, return_inverse=True)
    keep = ~_dominated(distinct)[which.reshape(-1)]  # equal points share their fate
    order = np.lexsort((np.arange(len(feasible)),) + tuple(costs.T[::-1]))
    return [feasible[i] for i in order if keep[i]]


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


def sweep(mapping: str, workload: str, seq_lens: Iterable[int],
          parameters: dict[str, list] | None = None, hardware: str | None = None,
          objective: str = "latency") -> SweepResult:
    """Evaluate every point; return all rows and the (latency, energy, area) Pareto set."""
    points = list(iterate(mapping, workload, seq_lens, parameters, hardware, objective))
    return SweepResult(points, pareto(points))


def flat_row(point: dict) -> dict:
    """A CSV-friendly row: the utilization object becomes ``utilization_<unit>`` columns."""
    row = {k: v for k, v in point.items() if k != "utilization"}
    for unit, value in (point.get("utilization") or {}).items():
        row[f"utilization_{unit}"] = value
    return row


def write_csv(points: list[dict], path: str | Path) -> None:
    rows = [flat_row(p) for p in points]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


# --- large sweeps: vectorized, resumable, distributed ------------------------------------------

FIGURES = ("latency_s", "energy_j", "area_mm2", "compute_latency_s", "memory_latency_s",
           "traffic_bytes", "buffer_bytes")


def restore_point(row: dict, seq_len: int, swept: dict) -> dict:
    """A point as :func:`iterate` yields it, from a stored (flat) row of that point."""
    head = {**swept, "seq_len": seq_len, "mapping": row.get("mapping")}
    if not row.get("feasible"):
        return {**head, "feasible": False, "error": row.get("error") or ""}
    point = {**head, "hardware": row.get("hardware"), "workload": row.get("workload"),
             "feasible": True, "error": row.get("error") or "",
             **{name: row.get(name) for name in FIGURES},
             "utilization": {k[len("utilization_"):]: v for k, v in row.items()
                             if k.startswith("utilization_") and v is not None}}
    for name, value in row.items():  # the parameters the mapper chose
        if name != "point_key" and not name.startswith("utilization_") and value is not None:
            point.setdefault(name, value)
    return point


class _Sink:
    """Collects finished points in sweep order and writes them to the store in batches."""

    def __init__(self, points: list, keys: list[str], store, progress, batch_size: int,
                 flush_seconds: float):
        self.points, self.keys, self.store, self.progress = points, keys, store, progress
        self.batch_size, self.flush_seconds = batch_size, flush_seconds
        self.done = sum(p is not None for p in points)
        self.pending: list[dict] = []
        self.flushed = time.monotonic()

    def add(self, index: int, point: dict, single: bool = True) -> None:
        self.points[index] = point
        self.done += 1
        if self.store is not None:
            self.pending.append({"point_key": self.keys[index], **flat_row(point)})
            if single and (len(self.pending) >= self.batch_size
                           or time.monotonic() - self.flushed >= self.flush_seconds):
                self.flush()
        if single and self.progress is not None:
            self.progress(self.done, len(self.points))

    def add_many(self, items: Iterable[tuple[int, dict]]) -> None:
        """A chunk of points (vectorized or from a Dask task): one batch, then reported."""
        for index, point in items:
            self.add(index, point, single=False)
        self.flush()
        if self.progress is not None:
            self.progress(self.done, len(self.points))

    def flush(self) -> None:
        if self.pending:
            self.store.append(self.pending)
            self.pending = []
        self.flushed = time.monotonic()


def _vectorized(mapping, workload, seq_lens, parameters, hardware, objective):
    """Every row from :mod:`einsim.vectorized`, or None when it cannot handle this sweep."""
    try:
        from einsim.vectorized import NotVectorizable, vectorized_points
    except ImportError:
        return None
    try:
        return vectorized_points(mapping, workload, seq_lens, parameters, hardware, objective)
    except NotVectorizable:
        return None


def run_sweep(mapping: str, workload: str, seq_lens: Iterable[int],
              parameters: dict[str, list] | None = None, hardware: str | None = None,
              objective: str = "latency", out: str | Path | None = None, resume: bool = False,
              vectorize: bool = True, scheduler: str | None = None,
              progress: Callable[[int, int], None] | None = None, batch_size: int = 256,
              flush_seconds: float = 1.0) -> SweepResult:
    """Evaluate every point (as :func:`sweep`), writing each to ``out`` as it finishes.

    ``out`` is a ``.csv`` file or a ``.parquet`` dataset directory; an existing one is an error
    unless ``resume``, which skips the points already stored (by ``point_key``).  The sweep is
    vectorized when ``vectorize`` and :mod:`einsim.vectorized` handles it, else evaluated point
    by point: on the Dask ``scheduler`` (``local:N`` or ``tcp://host:port``) if given, else in
    this process.  Point-by-point rows are written every ``batch_size`` points or
    ``flush_seconds``.  ``progress(done, total)`` is called once at the start (with the
    points already stored) and then as points finish.  The result holds every point of the
    sweep in Cartesian order, those stored before included.
    """
    from einsim.sweep_store import open_store, point_keys, read_rows

    seq_lens, parameters = list(seq_lens), dict(parameters or {})
    _check_names(mapping, hardware, parameters)
    machine = hardware or load_mapping_spec(mapping).hardware
    design = list(design_points(seq_lens, parameters))
    keys = list(point_keys(mapping, workload, machine, objective, seq_lens, parameters))
    store = open_store(out, resume) if out is not None else None
    stored = read_rows(out) if store is not None and resume else {}
    points = [restore_point(stored[k], *design[i]) if k in stored else None
              for i, k in enumerate(keys)]
    sink = _Sink(points, keys, store, progress, batch_size, flush_seconds)
    if progress is not None:  # the total, and the points stored before
        progress(sink.done, len(points))
    missing = [i for i, p in enumerate(points) if p is None]
    rows = _vectorized(mapping, workload, seq_lens, parameters, hardware, objective) \
        if missing and vectorize else None
    engine = "vectorized" if rows is not None else "dask" if missing and scheduler else "points"
    try:
        if rows is not None:
            if len(rows) != len(design):
                raise RuntimeError(f"vectorized sweep returned {len(rows)} points, "
                                   f"expected {len(design)}")
            for start in range(0, len(missing), 100_000):
                sink.add_many((i, rows[i]) for i in missing[start:start + 100_000])
        elif missing and scheduler:
            from einsim.sweep_dask import run_on_dask

            run_on_dask(scheduler, mapping, workload, hardware, objective,
                        [(i, *design[i]) for i in missing], sink.add_many)
        else:
            for i in missing:
                sink.add(i, evaluate_point(mapping, workload, *design[i], hardware, objective))
    finally:  # keep every finished point, also on an error or Ctrl-C
        sink.flush()
    return SweepResult(points, pareto(points), engine)
