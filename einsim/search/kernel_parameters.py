"""The GPU kernel models' parameter search (loop trees use :mod:`einsim.search`).

The spaces of the built-in strategies are small (tens to a few hundred points), so the search
is exhaustive; infeasible points (capacity) are skipped and counted.  The Pareto set is over
(latency, energy).
"""

from __future__ import annotations

import itertools

from einsim.cost import Report
from einsim.search.parameters import SearchResult
from einsim.errors import EinsimError
from einsim.cost.kernel_spec import MappingError, MappingSpec
from einsim.kernels import STRATEGY_NAMES, strategy

OBJECTIVES = {
    "latency": lambda r: r.latency_s,
    "energy": lambda r: r.energy_j,
    "edp": lambda r: r.energy_j * r.latency_s,
}


def strategy_of(spec: MappingSpec):
    if spec.strategy not in STRATEGY_NAMES:
        raise EinsimError(f"mapping {spec.name}: unknown strategy {spec.strategy!r}; expected "
                          f"one of {', '.join(STRATEGY_NAMES)}")
    return strategy(spec.strategy)


def search(spec: MappingSpec, hardware, workload, objective: str = "latency",
           fixed: dict | None = None) -> SearchResult:
    """Best mapping (and Pareto set) over the free parameters not given in ``fixed``."""
    if objective not in OBJECTIVES:
        raise EinsimError(f"unknown objective {objective!r}; expected one of "
                          f"{', '.join(OBJECTIVES)}")
    chosen = strategy_of(spec)
    fixed = dict(fixed or {})
    unknown = set(fixed) - set(spec.parameters)
    if unknown:
        raise EinsimError(f"mapping {spec.name} has no parameter {sorted(unknown)[0]!r}; its "
                          f"parameters are {', '.join(spec.parameters) or 'none'}")
    space = {k: v for k, v in chosen.parameter_space(spec, hardware, workload).items()
             if k not in fixed}
    reports, reasons = [], []
    for values in itertools.product(*space.values()):
        parameters = {**fixed, **dict(zip(space, values))}
        try:
            reports.append(chosen.evaluate(spec, hardware, workload, parameters))
        except MappingError as error:
            reasons.append(str(error))
    if not reports:
        raise MappingError(reasons[0] if reasons else f"mapping {spec.name}: no candidates")
    key = OBJECTIVES[objective]
    best = min(reports, key=lambda r: (key(r), r.energy_j, r.latency_s))  # ties: less energy
    return SearchResult(best, pareto_front(reports), len(reports) + len(reasons), len(reasons),
                        reasons)


def pareto_front(reports: list[Report], x=lambda r: r.latency_s, y=lambda r: r.energy_j
                 ) -> list[Report]:
    """Reports not dominated in both ``x`` and ``y`` (lower is better), sorted by ``x``."""
    front, best_y = [], float("inf")
    for report in sorted(reports, key=lambda r: (x(r), y(r))):
        if y(report) < best_y:
            front.append(report)
            best_y = y(report)
    return front
