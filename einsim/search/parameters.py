"""Search a loop tree's free parameters, vectorized: every candidate in one array evaluation.

Domains come from the mapping file (``divisors_of``, ``powers_of_two_up_to``, ``range``,
``values``), evaluated at the problem's sizes; divisors are found in O(√n).  Infeasible
points (capacity) are masked out; the best point for the objective (ties: less energy) is
re-evaluated as a full Report, and the Pareto set over (latency, energy) is returned too.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from einsim.cost.engine import CompiledMapping, Problem, _numeric
from einsim.cost.expressions import parse_size
from einsim.cost.report import Report
from einsim.errors import EinsimError
from einsim.errors import MappingError

OBJECTIVES = ("latency", "energy", "edp")
MAX_CANDIDATES = 2_000_000


@dataclass(frozen=True)
class SearchResult:
    best: Report
    pareto: list[Report]
    evaluated: int
    infeasible: int
    reasons: list[str] = field(default_factory=list)


def divisors(n: int) -> list[int]:
    """Divisors of ``n`` in increasing order, from its prime factorization (Pollard rho:
    milliseconds even near 2^63, where a trial-division scan up to √n would take minutes)."""
    if n < 1:
        return []
    from sympy import divisors as sympy_divisors

    return [int(d) for d in sympy_divisors(int(n))]


def domain_values(compiled: CompiledMapping, name: str, values: Mapping[str, object]
                  ) -> list[int]:
    """The candidate values of free parameter ``name`` at these (scalar) sizes."""
    return candidates(compiled.mapping.parameters[name],
                      domain_number(compiled, name, values), f"parameters.{name}.domain", values)


def domain_number(compiled: CompiledMapping, name: str, values: Mapping[str, object]):
    """The number a domain is built from (``divisors_of: ceil(P / P0)`` → that value),
    scalar or an array over design points; None for ``range``/``values`` domains."""
    domain = compiled.mapping.parameters[name].domain
    where = f"parameters.{name}.domain"
    expression = domain.divisors_of if domain.divisors_of is not None \
        else domain.powers_of_two_up_to
    if expression is None:
        return None
    return _numeric(parse_size(expression, where), values, where)


def candidates(parameter, number, where: str, values: Mapping[str, object] | None = None
               ) -> list[int]:
    """A domain's candidates given its number (see :func:`domain_number`)."""
    domain = parameter.domain
    if number is not None:
        value = float(number)
        if not math.isfinite(value) or value < 1:
            raise MappingError(f"{where}: evaluates to {value}; expected a number >= 1")
        if domain.divisors_of is not None:
            return divisors(int(value))
        top = int(value)
        return [1 << k for k in range(top.bit_length()) if 1 << k <= top]
    if domain.range is not None:
        low, high = domain.range
        return list(range(max(1, low), high + 1))
    found = set()
    for entry in domain.values or ():
        value = float(_numeric(parse_size(entry, where), values or {}, where))
        if not math.isfinite(value) or value < 1 or not value.is_integer():
            raise MappingError(f"{where}: value {entry} is {value}; expected a whole number >= 1")
        found.add(int(value))
    return sorted(found)


@dataclass(frozen=True)
class Screened:
    """The best point of a search by the summary alone (no Report built)."""

    latency_s: float
    energy_j: float
    evaluated: int
    infeasible: int


def search(compiled: CompiledMapping, problem: Problem, objective: str = "latency",
           fixed: Mapping[str, float] | None = None,
           overrides: Mapping[str, float] | None = None, workload_name: str = "",
           screen: bool = False, pareto: bool = True) -> SearchResult | Screened:
    """Best values of the free parameters not in ``fixed`` (all in one array evaluation).

    With ``screen``, only the best point's latency and energy (what the tree mapper compares
    candidate trees by, without building reports); without ``pareto``, the Pareto set is the
    best report alone (what a single evaluation needs)."""
    if objective not in OBJECTIVES:
        raise EinsimError(f"unknown objective {objective!r}; expected one of "
                          f"{', '.join(OBJECTIVES)}")
    fixed = dict(fixed or {})
    unknown = set(fixed) - set(compiled.mapping.parameters)
    if unknown:
        raise MappingError(f"mapping {compiled.mapping.name} has no parameter "
                           f"{sorted(unknown)[0]!r}; its parameters are "
                           f"{', '.join(compiled.mapping.parameters) or 'none'}")
    base = compiled.values(problem, fixed, overrides)
    free = [n for n, p in compiled.mapping.parameters.items()
            if n not in fixed and p.domain is not None]
    space = {n: domain_values(compiled, n, base) for n in free}
    count = math.prod(len(v) for v in space.values()) if space else 1
    if count > MAX_CANDIDATES:
        raise MappingError(f"mapping {compiled.mapping.name}: {count:,} parameter combinations; "
                           f"fix some with --param (at most {MAX_CANDIDATES:,} are searched)")
    if count == 0:
        raise MappingError(f"mapping {compiled.mapping.name}: an empty parameter domain")
    grid = {n: np.asarray(column) for n, column in
            zip(space, zip(*itertools.product(*space.values())))} if space else {}
    values = dict(base)
    for name, column in grid.items():
        values[name] = column.astype(float)
    values = compiled.values(problem, {**fixed, **{n: values[n] for n in grid}}, overrides)
    metrics = compiled.summary(values, problem.copies)
    feasible = np.broadcast_to(np.asarray(metrics["feasible"]), (count,))
    latency = np.broadcast_to(np.asarray(metrics["latency_s"], dtype=float), (count,))
    energy = np.broadcast_to(np.asarray(metrics["energy_j"], dtype=float), (count,))
    if not feasible.any():
        point = {n: int(grid[n][0]) for n in grid}
        compiled.report(problem, {**fixed, **point}, overrides, workload_name)  # raises why
        raise MappingError(f"mapping {compiled.mapping.name}: no feasible parameters")
    score = {"latency": latency, "energy": energy, "edp": latency * energy}[objective]
    order = np.lexsort((latency, energy, np.where(feasible, score, np.inf)))
    best_index = int(order[0])
    if screen:
        return Screened(float(latency[best_index]), float(energy[best_index]), count,
                        int(count - feasible.sum()))

    def report_at(index: int) -> Report:
        point = {n: int(grid[n][index]) for n in grid}
        return compiled.report(problem, {**fixed, **point}, overrides, workload_name)

    best = report_at(best_index)
    front = [report_at(i) for i in _pareto_indices(latency, energy, feasible)] if pareto \
        else [best]
    return SearchResult(best, front, count, int(count - feasible.sum()))


def _pareto_indices(latency, energy, feasible) -> list[int]:
    front, best = [], math.inf
    for index in np.lexsort((energy, latency)):
        if feasible[index] and energy[index] < best:
            front.append(int(index))
            best = energy[index]
    return front[:64]
