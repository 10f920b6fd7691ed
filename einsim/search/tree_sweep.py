"""Vectorized sweeps of any loop-tree mapping: the engine's own expressions over arrays.

A block of design points (sequence lengths × swept parameters) is evaluated in one call of
the compiled function, together with every candidate of the free parameters the sweep does
not fix: per point, the mapper's choice is the best feasible candidate for the objective,
ties to less energy, then less latency (as :func:`einsim.search.parameters.search`).  Points
are grouped by their candidate sets (a domain such as ``divisors_of: ceil(P / P0)`` depends
on a few values only).  :func:`vectorized_columns` returns NumPy columns; rows equal the
point-by-point path's (tested).  Sweeps of fields baked into the compiled expressions (a
dotted hardware path) raise :class:`NotVectorizable`.
"""

from __future__ import annotations

import itertools
from typing import Iterable

import numpy as np

from einsim.errors import EinsimError
from einsim.errors import MappingError

SPECIALIZE = 200_000  # block size from which folding the scalars into the expressions pays
METRICS = ("latency_s", "energy_j", "area_mm2", "compute_latency_s", "memory_latency_s",
           "traffic_bytes", "buffer_bytes")


class NotVectorizable(EinsimError):
    """A sweep this engine does not cover (the caller falls back to the point path)."""


def vectorized_columns(mapping: str, workload: str, seq_len: int, parameters=None,
                       hardware: str | None = None, objective: str = "latency",
                       cascade: str | None = None) -> dict[str, np.ndarray]:
    """One sequence length's design points (the Cartesian product of ``parameters``) as
    columns: swept values, metrics, ``utilization:<unit>``, the chosen free parameters and
    ``feasible``."""
    from einsim.cost.evaluate import SYMBOLIC_FIELDS, _check_symbolic, compile_for, problem_of
    from einsim.cost.tree import is_tree_file, load_mapping_tree
    from einsim.search.parameters import OBJECTIVES, candidates, domain_number
    from einsim.workloads import load_workload

    if isinstance(mapping, str) and not is_tree_file(mapping):
        raise NotVectorizable(f"mapping {mapping} is not a loop tree")
    if objective not in OBJECTIVES:
        raise EinsimError(f"unknown objective {objective!r}; expected one of "
                          f"{', '.join(OBJECTIVES)}")
    tree = load_mapping_tree(mapping) if isinstance(mapping, str) else mapping
    parameters = {k: list(v) for k, v in dict(parameters or {}).items()}
    if tree.structural:
        return _over_level_choices(tree, workload, seq_len, parameters, hardware, objective,
                                   cascade)
    for name in parameters:
        if name not in tree.parameters and name not in SYMBOLIC_FIELDS:
            raise NotVectorizable(f"parameter {name!r} is not vectorized")
    engine, machine = compile_for(tree, cascade, hardware)
    for name in SYMBOLIC_FIELDS:
        for value in sorted(set(parameters.get(name, ()))):
            _check_symbolic(machine, {name: value})
    problem = problem_of(load_workload(workload, seq_len))
    names = list(parameters)
    axes = np.meshgrid(*(np.asarray(v, dtype=float) for v in parameters.values()),
                       indexing="ij") if names else []
    count = int(np.prod([len(v) for v in parameters.values()])) if names else 1
    columns = {n: a.reshape(-1) for n, a in zip(names, axes)}
    mapping_fixed = {n: c for n, c in columns.items() if n in tree.parameters}
    hardware_values = {n: c for n, c in columns.items() if n in SYMBOLIC_FIELDS}
    free = [n for n, p in tree.parameters.items()
            if n not in mapping_fixed and p.domain is not None]
    everything = engine.values(problem, dict(mapping_fixed), dict(hardware_values))
    numbers = [np.broadcast_to(np.asarray(domain_number(engine, n, everything), dtype=float)
                               if domain_number(engine, n, everything) is not None
                               else np.zeros(1), (count,)) for n in free]
    keys = np.stack(numbers, axis=1) if free else np.zeros((count, 0))
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    result = {n: c for n, c in columns.items()}
    metrics_out = {m: np.full(count, np.nan) for m in METRICS}
    chosen = {n: np.full(count, np.nan) for n in tree.parameters}
    utilization: dict[str, np.ndarray] = {}
    feasible = np.zeros(count, dtype=bool)
    errors = np.full(count, "", dtype=object)
    for group, key in enumerate(unique):
        members = np.nonzero(inverse.reshape(-1) == group)[0]
        choices = [candidates(tree.parameters[n], None if key[k] == 0 and
                              tree.parameters[n].domain.divisors_of is None and
                              tree.parameters[n].domain.powers_of_two_up_to is None
                              else key[k], f"parameters.{n}.domain", everything)
                   for k, n in enumerate(free)]
        combos = np.array(list(itertools.product(*choices)), dtype=float) if free \
            else np.zeros((1, 0))
        width = len(combos)
        rows = np.repeat(members, width)
        given = {n: c[rows] for n, c in mapping_fixed.items()}
        for k, name in enumerate(free):
            given[name] = np.tile(combos[:, k], len(members))
        values = engine.values(problem, given, {n: c[rows] for n, c in hardware_values.items()})
        metrics = engine.summary(values, problem.copies, specialize=len(rows) >= SPECIALIZE)
        take = _best(metrics, objective, (len(members), width))
        ok = take >= 0
        flat = np.arange(len(members)) * width + np.where(ok, take, 0)
        feasible[members] = ok
        if not ok.all():  # why, at the first candidate (as the point path's search says)
            first = np.arange(len(members))[~ok] * width
            sliced = {k: (v[first] if np.ndim(v) else v) for k, v in values.items()}
            for member, reason in zip(members[~ok], engine.reasons(engine.raw(sliced))):
                errors[member] = reason
        for m in METRICS:
            if metrics.get(m) is not None:
                metrics_out[m][members] = _pick(metrics[m], flat, len(rows))
        for unit, share in metrics["utilization"].items():
            utilization.setdefault(unit, np.full(count, np.nan))[members] = \
                _pick(share, flat, len(rows))
        for name in tree.parameters:
            chosen[name][members] = _pick(values[name], flat, len(rows))
    for m in METRICS:
        metrics_out[m][~feasible] = np.nan
    result.update(metrics_out)
    result.update({f"utilization:{u}": v for u, v in utilization.items()})
    result.update({f"parameter:{n}": v for n, v in chosen.items()})
    result["feasible"] = feasible
    result["error"] = errors
    result["_meta"] = {"mapping": tree.name, "hardware": machine.name, "workload": problem.name,
                       "seq_len": problem.seq_len, "engine": engine, "problem": problem,
                       "tree": tree}
    return result


def _over_level_choices(tree, workload, seq_len, parameters, hardware, objective, cascade):
    """Columns of each concrete tree (one per level choice), the best per point."""
    from einsim.cost.evaluate import concrete_trees

    if any(name in tree.structural for name in parameters):
        raise NotVectorizable("sweeping a level parameter is done point by point")
    best = None
    for choice, concrete in concrete_trees(tree, {})[0]:
        columns = vectorized_columns(concrete, workload, seq_len, parameters, hardware,
                                     objective, cascade)
        score = _score(columns, objective)
        if best is None:
            best, best_score = columns, score
            for name, value in choice.items():
                best[f"parameter:{name}"] = np.full(len(score), value, dtype=object)
            continue
        better = score < best_score
        for key, column in columns.items():
            if key != "_meta" and key in best:
                best[key] = np.where(better, column, best[key])
        for name, value in choice.items():
            best[f"parameter:{name}"] = np.where(better, value, best[f"parameter:{name}"])
        best_score = np.where(better, score, best_score)
    best["_meta"] = {**best["_meta"], "tree": tree}
    return best


def _score(columns, objective: str) -> np.ndarray:
    latency, energy = columns["latency_s"], columns["energy_j"]
    score = {"latency": latency, "energy": energy, "edp": latency * energy}[objective]
    return np.where(columns["feasible"], score, np.inf)


def _pick(value, flat: np.ndarray, size: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=float), (size,))[flat]


def _best(metrics, objective: str, shape) -> np.ndarray:
    """Per design point, the index of the best feasible candidate (or -1)."""
    size = shape[0] * shape[1]
    feasible = np.broadcast_to(np.asarray(metrics["feasible"]), (size,))
    latency = np.broadcast_to(np.asarray(metrics["latency_s"], float), (size,))
    energy = np.broadcast_to(np.asarray(metrics["energy_j"], float), (size,))
    score = {"latency": latency, "energy": energy, "edp": latency * energy}[objective]
    score = np.where(feasible, score, np.inf).reshape(shape)
    if shape[1] == 1:
        return np.where(np.isfinite(score[:, 0]), 0, -1)
    order = np.lexsort((latency.reshape(shape), energy.reshape(shape), score), axis=-1)
    best = order[:, 0]
    ok = np.isfinite(score[np.arange(shape[0]), best])
    return np.where(ok, best, -1)


def vectorized_points(mapping: str, workload: str, seq_lens: Iterable[int], parameters=None,
                      hardware: str | None = None, objective: str = "latency",
                      cascade: str | None = None) -> list[dict]:
    """Every design point's row (as the point path writes it), from the columns."""
    from einsim.cost.evaluate import SYMBOLIC_FIELDS

    parameters = {k: list(v) for k, v in dict(parameters or {}).items()}
    names = list(parameters)
    rows: list[dict] = []
    for seq_len in seq_lens:
        columns = vectorized_columns(mapping, workload, seq_len, parameters, hardware,
                                     objective, cascade)
        meta = columns["_meta"]
        units = [k.split(":", 1)[1] for k in columns if k.startswith("utilization:")]
        grid = itertools.product(*parameters.values()) if names else [()]
        lists = {k: v.tolist() for k, v in columns.items() if k != "_meta"}
        for index, swept_values in enumerate(grid):
            swept = dict(zip(names, swept_values))
            base = {"mapping": meta["mapping"], "hardware": meta["hardware"],
                    "workload": meta["workload"], "seq_len": meta["seq_len"]}
            if not lists["feasible"][index]:
                rows.append({**swept, **base, "feasible": False,
                             "error": lists["error"][index]
                             or _reason(meta, swept, SYMBOLIC_FIELDS)})
                continue
            row = {**swept, **base, "feasible": True, "error": ""}
            for m in METRICS:
                row[m] = lists[m][index]
            row["utilization"] = {u: lists[f"utilization:{u}"][index] for u in units}
            for name in meta["tree"].parameters:
                value = lists[f"parameter:{name}"][index]
                if not isinstance(value, str):
                    value = int(value) if float(value).is_integer() else value
                row.setdefault(name, value)
            rows.append(row)
    return rows


def _reason(meta, swept, symbolic_fields) -> str:
    from einsim.search.parameters import search

    tree = meta["tree"]
    fixed = {k: v for k, v in swept.items() if k in tree.parameters}
    overrides = {k: v for k, v in swept.items() if k in symbolic_fields}
    try:
        search(meta["engine"], meta["problem"], "latency", fixed, overrides)
    except MappingError as error:
        return str(error)
    return "infeasible"
