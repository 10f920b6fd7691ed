"""Sweeps: evaluate the Cartesian product of sequence lengths and named parameters.

Parameters are hardware fields by name (``pe_dim``, ``global_buffer_bytes``, ``dram_bandwidth``,
``clock_hz``) or mapping parameters (``P1``, ``rows``); mapping parameters not swept are chosen
by the mapper at every point.  Each point is a flat dict (one CSV row); infeasible points are
kept with ``feasible = False`` and the reason.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from einsim.cost import Report
from einsim.evaluator import evaluate, split_parameters
from einsim.mapping import MappingError, load_mapping_spec
from hw_models.spatial_array import load_spatial_array

METRICS = ("latency_s", "energy_j", "area_mm2")


@dataclass(frozen=True)
class SweepResult:
    points: list[dict]
    pareto: list[dict]


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
    names = list(parameters or {})
    _check_names(mapping, hardware, parameters or {})
    for seq_len in seq_lens:
        for values in itertools.product(*(parameters or {}).values()):
            swept = dict(zip(names, values))
            try:
                report = evaluate(mapping, hardware, workload, seq_len, swept, objective)
            except MappingError as error:  # infeasible design point: kept, with the reason
                yield {**swept, "seq_len": seq_len, "mapping": mapping, "feasible": False,
                       "error": str(error)}
                continue
            yield point_of(report, swept)


def _check_names(mapping: str, hardware: str | None, parameters: dict[str, list]) -> None:
    """Fail before the first point on a misspelt parameter (not as N infeasible points)."""
    spec = load_mapping_spec(mapping)
    _, overrides = split_parameters(spec, {k: v[0] for k, v in parameters.items() if v})
    for name, value in overrides.items():  # a dotted path is checked against the hardware
        load_spatial_array(hardware or spec.hardware, {name: value})


def pareto(points: list[dict], metrics: tuple[str, ...] = METRICS) -> list[dict]:
    """Feasible points no other point beats or ties in every metric (lower is better)."""
    feasible = [p for p in points if p.get("feasible")]
    front = []
    for p in feasible:
        dominated = any(all(q[m] <= p[m] for m in metrics) and any(q[m] < p[m] for m in metrics)
                        for q in feasible)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: tuple(p[m] for m in metrics))


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
