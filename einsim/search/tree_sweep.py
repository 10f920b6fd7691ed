"""Vectorized sweeps of any loop-tree mapping: the engine's own expressions over arrays.

A block of design points (sequence lengths × swept parameters) is evaluated in one call of
the compiled summary, together with every candidate of the free parameters the sweep does not
fix: per point, the mapper's choice is the best feasible candidate for the objective, ties to
less energy, then less latency (as :func:`einsim.search.parameters.search`).  Candidate sets
depend on a few values only (a domain such as ``divisors_of: ceil(P / P0)``), so points are
grouped by them, and all groups go through one evaluation.

The compiled tree comes from :mod:`einsim.cost.compiled_cache` when it is cached on disk: then
neither sympy nor the cascade parser is imported.  Otherwise the tree is compiled (and the
plan stored); a tree whose cascade has masks is evaluated through the engine itself.
:func:`vectorized_columns` returns NumPy columns; rows equal the point-by-point path's
(tested).  Sweeps of fields baked into the compiled expressions (a dotted hardware path) raise
:class:`NotVectorizable`.
"""

from __future__ import annotations

import itertools
from typing import Iterable

import numpy as np

from einsim.errors import EinsimError, MappingError

SPECIALIZE = 200_000  # block size from which folding the scalars into the expressions pays
METRICS = ("latency_s", "energy_j", "area_mm2", "compute_latency_s", "memory_latency_s",
           "traffic_bytes", "buffer_bytes")
OBJECTIVES = ("latency", "energy", "edp")


class NotVectorizable(EinsimError):
    """A sweep this engine does not cover (the caller falls back to the point path)."""


class _Prepared:
    """A sweep's compiled tree (a plan, or the engine itself) and how it was asked for."""

    def __init__(self, plan, mapping, hardware, cascade):
        self.plan, self.mapping, self.hardware, self.cascade = plan, mapping, hardware, cascade
        self.checked: set = set()  # swept hardware values already validated


def prepare(mapping, parameters=None, hardware: str | None = None, objective: str = "latency",
            cascade: str | None = None, workload: str | None = None,
            seq_len: int | None = None) -> _Prepared:
    """The compiled tree of a sweep (cached, else compiled), after the checks that the sweep
    is vectorizable; ``workload`` and ``seq_len`` let a new plan be checked on that problem."""
    from einsim.cost import compiled_cache

    names = list(dict(parameters or {}))
    plan, found = compiled_cache.cached_plan(mapping, cascade, hardware)
    if plan is not None:
        _check_sweep(objective, names, plan.parameters, plan.structural, plan.symbolic_fields)
        return _Prepared(plan, mapping, hardware, cascade)
    from einsim.cost.evaluate import SYMBOLIC_FIELDS
    from einsim.cost.tree import is_tree_file, load_mapping_tree

    if isinstance(mapping, str) and not is_tree_file(mapping):
        raise NotVectorizable(f"mapping {mapping} is not a loop tree")
    tree = load_mapping_tree(mapping) if isinstance(mapping, str) else mapping
    _check_sweep(objective, names, list(tree.parameters), list(tree.structural),
                 SYMBOLIC_FIELDS)
    problem = None
    if workload is not None:
        from einsim.workloads import load_workload

        problem = compiled_cache.problem_of(load_workload(workload, seq_len))
    try:
        plan = compiled_cache.build_plan(tree, cascade, hardware, found, problem)
    except compiled_cache.NotPlannable:
        plan = _EnginePlan(tree, cascade, hardware)
    return _Prepared(plan, mapping, hardware, cascade)


def _check_sweep(objective, names, parameters, structural, symbolic) -> None:
    if objective not in OBJECTIVES:
        raise EinsimError(f"unknown objective {objective!r}; expected one of "
                          f"{', '.join(OBJECTIVES)}")
    if any(name in structural for name in names):
        raise NotVectorizable("sweeping a level parameter is done point by point")
    for name in names:
        if name not in parameters and name not in symbolic:
            raise NotVectorizable(f"parameter {name!r} is not vectorized")


class _EnginePlan:
    """A tree the plan format cannot hold (masks), served by the compiled engine itself."""

    def __init__(self, tree, cascade, hardware):
        from einsim.cost.evaluate import SYMBOLIC_FIELDS, compile_for, concrete_trees

        self.name, self.parameters = tree.name, list(tree.parameters)
        self.structural, self.symbolic_fields = list(tree.structural), dict(SYMBOLIC_FIELDS)
        self.variants = []
        for choice, concrete in concrete_trees(tree, {})[0]:
            engine, self.machine = compile_for(concrete, cascade, hardware)
            self.variants.append(_EngineVariant(engine, concrete, choice))


class _EngineVariant:
    """A :class:`~einsim.cost.engine.CompiledMapping` with a plan variant's interface."""

    def __init__(self, engine, tree, choice):
        self.engine, self.tree, self.choice = engine, tree, {k: str(v) for k, v in
                                                             choice.items()}
        self.name, self.parameters = tree.name, list(tree.parameters)
        self.domains = {n: p.domain for n, p in tree.parameters.items() if p.domain is not None}

    def values(self, problem, parameters=None, overrides=None):
        return self.engine.values(problem, parameters, overrides)

    def summary(self, values, copies, specialize: bool = False):
        return self.engine.summary(values, copies, specialize=specialize)

    def reasons(self, values, copies):
        return self.engine.reasons(self.engine.raw(values, copies))

    def has_number(self, name: str) -> bool:
        domain = self.domains[name]
        return domain.divisors_of is not None or domain.powers_of_two_up_to is not None

    def domain_number(self, name: str, values):
        from einsim.search.parameters import domain_number

        return domain_number(self.engine, name, values)

    def candidates(self, name: str, number, values=None):
        from einsim.search.parameters import candidates

        return candidates(self.tree.parameters[name], number, f"parameters.{name}.domain",
                          values)


def vectorized_columns(mapping, workload: str, seq_len: int, parameters=None,
                       hardware: str | None = None, objective: str = "latency",
                       cascade: str | None = None) -> dict[str, np.ndarray]:
    """One sequence length's design points (the Cartesian product of ``parameters``) as
    columns: swept values, metrics, ``utilization:<unit>``, the chosen free parameters and
    ``feasible``."""
    prepared = prepare(mapping, parameters, hardware, objective, cascade, workload, seq_len)
    return columns_of(prepared, workload, seq_len, parameters, objective)


def columns_of(prepared: _Prepared, workload: str, seq_len: int, parameters=None,
               objective: str = "latency") -> dict[str, np.ndarray]:
    """:func:`vectorized_columns` of an already prepared sweep."""
    return columns_of_lengths(prepared, workload, [seq_len], parameters, objective)[0]


def columns_of_lengths(prepared: _Prepared, workload: str, seq_lens: list[int],
                       parameters=None, objective: str = "latency") -> list[dict]:
    """:func:`columns_of` of each length; a cached plan evaluates them all at once (the
    length is one more axis of the arrays)."""
    from einsim.cost.compiled_cache import problem_of
    from einsim.specfile import with_fields
    from einsim.workloads import load_workload

    plan = prepared.plan
    parameters = {k: list(v) for k, v in dict(parameters or {}).items()}
    for name in plan.symbolic_fields:
        for value in sorted(set(parameters.get(name, ()))):
            if (name, value) not in prepared.checked:
                with_fields(plan.machine, {name: value}, plan.symbolic_fields)
                prepared.checked.add((name, value))
    problems = [problem_of(load_workload(workload, n)) for n in seq_lens]
    if isinstance(plan, _EnginePlan) or len({p.copies for p in problems}) > 1 or \
            len({tuple(p.sizes) for p in problems}) > 1:  # one length at a time
        return [_columns(prepared, [problem], parameters, objective)[0]
                for problem in problems]
    return _columns(prepared, problems, parameters, objective)


def _columns(prepared: _Prepared, problems: list, parameters: dict, objective: str
             ) -> list[dict]:
    plan = prepared.plan
    best, best_score = None, None
    for variant in plan.variants:
        columns = _variant_columns(variant, plan, problems, parameters, objective)
        if not plan.structural:
            best = columns
            break
        score = _score(columns, objective)
        if best is None:
            best, best_score = columns, score
            for name, value in variant.choice.items():
                best[f"parameter:{name}"] = np.full(len(score), value, dtype=object)
            continue
        better = score < best_score
        for key, column in columns.items():
            if key in best:
                best[key] = np.where(better, column, best[key])
        for name, value in variant.choice.items():
            best[f"parameter:{name}"] = np.where(better, value, best[f"parameter:{name}"])
        best_score = np.where(better, score, best_score)
    per = len(best["feasible"]) // len(problems)
    out = []
    for k, problem in enumerate(problems):
        piece = {key: column[k * per:(k + 1) * per] for key, column in best.items()}
        piece["_meta"] = {"mapping": plan.name, "hardware": plan.machine.name,
                          "workload": problem.name, "seq_len": problem.seq_len,
                          "parameters": plan.parameters, "problem": problem,
                          "prepared": prepared}
        out.append(piece)
    return out


LENGTH = "length:"  # the axis of the sequence lengths evaluated together (outermost)


def _variant_columns(variant, plan, problems: list, parameters: dict, objective: str) -> dict:
    """The columns of one concrete tree: every candidate of every point in one evaluation.

    The swept axes the candidate sets do not depend on (``dram_bandwidth``, ``clock_hz``...)
    stay a separate array axis, so NumPy broadcasting evaluates each subexpression only over
    the axes it depends on; the results equal a flat evaluation bit for bit.  Several
    ``problems`` (sequence lengths with the same size names) are one more, outermost, axis."""
    swept = {LENGTH: list(range(len(problems)))} if len(problems) > 1 else {}
    swept.update(parameters)
    names = list(swept)
    shape = tuple(len(v) for v in swept.values())
    count = int(np.prod(shape)) if names else 1
    axes = [np.asarray(v, dtype=float) for v in swept.values()]
    grid = np.meshgrid(*axes, indexing="ij") if names else []
    columns = {n: a.reshape(-1) for n, a in zip(names, grid)}
    sizes = {k: [p.sizes[k] for p in problems] for k in problems[0].sizes}
    varying = {k: np.asarray(v) for k, v in sizes.items() if any(x != v[0] for x in v)}

    def problem_at(index):  # the problems' sizes at these length indices (an array)
        if index is None or not varying:
            return problems[0]
        picked = {k: (varying[k][index.astype(int)] if k in varying else v[0])
                  for k, v in sizes.items()}
        return type(problems[0])(problems[0].name, picked, problems[0].copies,
                                 problems[0].seq_len)
    fixed = [n for n in names if n in variant.parameters]
    hardware = [n for n in names if n in plan.symbolic_fields]
    free = [n for n in variant.parameters if n not in fixed and n in variant.domains]
    result = {n: c for n, c in columns.items() if n != LENGTH}
    metrics_out = {m: np.full(count, np.nan) for m in METRICS}
    chosen = {n: np.full(count, np.nan) for n in variant.parameters}
    feasible = np.zeros(count, dtype=bool)
    errors = np.full(count, "", dtype=object)
    utilization: dict[str, np.ndarray] = {}
    if count:
        everything = variant.values(problem_at(columns.get(LENGTH)),
                                    {n: columns[n] for n in fixed},
                                    {n: columns[n] for n in hardware})
        numbers = []
        for name in free:
            number = variant.domain_number(name, everything)
            numbers.append(np.broadcast_to(np.asarray(number if number is not None else 0.0,
                                                      dtype=float), (count,)))
        keys = np.stack(numbers, axis=-1).reshape(shape + (len(free),)) if free \
            else np.zeros(shape + (0,))
        key_axes = [a for a in range(len(shape)) if not np.array_equal(
            keys, np.broadcast_to(keys.take([0], axis=a), keys.shape))]
        other = [a for a in range(len(shape)) if a not in key_axes]
        k_shape, f_shape = [shape[a] for a in key_axes], [shape[a] for a in other]
        n_k, n_f = int(np.prod(k_shape)), int(np.prod(f_shape))
        k_coords = np.unravel_index(np.arange(n_k), k_shape) if key_axes else ()
        f_coords = np.unravel_index(np.arange(n_f), f_shape) if other else ()
        coords = [None] * len(shape)
        for a, c in zip(key_axes, k_coords):
            coords[a] = c[:, None]
        for a, c in zip(other, f_coords):
            coords[a] = c[None, :]
        point = np.ravel_multi_index(coords, shape) if names else np.zeros((1, 1), int)
        point = np.broadcast_to(point, (n_k, n_f))
        k_keys = keys.reshape(count, len(free))[point[:, 0]]
        unique, inverse = np.unique(k_keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(unique) + 1))
        groups, rows, combos, offset = [], [], [], 0
        for group, key in enumerate(unique):
            members = order[bounds[group]:bounds[group + 1]]  # K combinations, in order
            choices = [variant.candidates(n, None if key[k] == 0 and not variant.has_number(n)
                                          else key[k], everything) for k, n in enumerate(free)]
            options = np.array(list(itertools.product(*choices)), dtype=float) if free \
                else np.zeros((1, 0))
            groups.append((members, len(options), offset))
            rows.append(np.repeat(members, len(options)))
            combos.append(np.tile(options, (len(members), 1)))
            offset += len(members) * len(options)
        rows, combos = np.concatenate(rows), np.concatenate(combos)

        def axis_column(name):  # a swept value per row (K axis) or per column (other axis)
            a = names.index(name)
            if a in key_axes:
                return axes[a][coords[a][rows, 0]][:, None]
            return axes[a][coords[a][0, :]][None, :]

        given = {n: axis_column(n) for n in fixed}
        for k, name in enumerate(free):
            given[name] = combos[:, k][:, None]
        problem = problem_at(axis_column(LENGTH) if LENGTH in swept else None)
        values = variant.values(problem, given, {n: axis_column(n) for n in hardware})
        metrics = variant.summary(values, problem.copies, specialize=len(rows) * n_f
                                  >= SPECIALIZE)
        size = (len(rows), n_f)

        def full(value):
            return np.broadcast_to(np.asarray(value, dtype=float), size)

        table = {k: full(metrics[k]) for k in ("latency_s", "energy_j")}
        table["feasible"] = np.broadcast_to(np.asarray(metrics["feasible"]), size)
        best_row = np.zeros((n_k, n_f), dtype=np.int64)
        ok_all = np.zeros((n_k, n_f), dtype=bool)
        for members, width, start in groups:
            block = {k: np.moveaxis(v[start:start + len(members) * width].reshape(
                (len(members), width, n_f)), 1, 2).reshape(-1) for k, v in table.items()}
            take = _best(block, objective, (len(members) * n_f, width)).reshape(
                len(members), n_f)
            ok = take >= 0
            ok_all[members] = ok
            best_row[members] = start + np.arange(len(members))[:, None] * width \
                + np.where(ok, take, 0)
        flat_point, columns_index = point.reshape(-1), np.tile(np.arange(n_f), n_k)
        picked = best_row.reshape(-1)
        feasible[flat_point] = ok_all.reshape(-1)
        failing = ~ok_all.reshape(-1)
        if failing.any():  # why, at the first candidate (as the point path's search says)
            first = np.empty_like(best_row)
            for members, width, start in groups:
                first[members] = (start + np.arange(len(members)) * width)[:, None]
            r, c = first.reshape(-1)[failing], columns_index[failing]
            sliced = {k: (np.broadcast_to(v, size)[r, c] if np.ndim(v) else v)
                      for k, v in values.items()}
            errors[flat_point[failing]] = variant.reasons(sliced, problem.copies)

        def pick(value):
            return full(value)[picked, columns_index]

        for m in METRICS:
            if metrics.get(m) is not None:
                metrics_out[m][flat_point] = pick(metrics[m])
        for unit, share in metrics["utilization"].items():
            utilization.setdefault(unit, np.full(count, np.nan))[flat_point] = pick(share)
        for name in variant.parameters:
            chosen[name][flat_point] = pick(values[name])
    for m in METRICS:
        metrics_out[m][~feasible] = np.nan
    result.update(metrics_out)
    result.update({f"utilization:{u}": v for u, v in utilization.items()})
    result.update({f"parameter:{n}": v for n, v in chosen.items()})
    result["feasible"] = feasible
    result["error"] = errors
    return result


def _score(columns, objective: str) -> np.ndarray:
    latency, energy = columns["latency_s"], columns["energy_j"]
    score = {"latency": latency, "energy": energy, "edp": latency * energy}[objective]
    return np.where(columns["feasible"], score, np.inf)


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


def vectorized_points(mapping, workload: str, seq_lens: Iterable[int], parameters=None,
                      hardware: str | None = None, objective: str = "latency",
                      cascade: str | None = None) -> list[dict]:
    """Every design point's row (as the point path writes it), from the columns."""
    from einsim.search.sweeps import paused_gc

    parameters = {k: list(v) for k, v in dict(parameters or {}).items()}
    names = list(parameters)
    seq_lens = list(seq_lens)
    if not seq_lens:
        return []
    prepared = prepare(mapping, parameters, hardware, objective, cascade, workload,
                       seq_lens[0])
    grid = list(itertools.product(*parameters.values())) if names else [()]
    swept = list(zip(*grid)) if names else []
    rows: list[dict] = []
    with paused_gc():
        for columns in columns_of_lengths(prepared, workload, seq_lens, parameters, objective):
            rows += _rows(columns, names, swept, grid)
    return rows



def _rows(columns: dict, names: list[str], swept: list, grid: list) -> list[dict]:
    """The rows of one length's columns (built column-wise: one ``dict(zip())`` a row)."""
    meta = columns["_meta"]
    base = {"mapping": meta["mapping"], "hardware": meta["hardware"],
            "workload": meta["workload"], "seq_len": meta["seq_len"]}
    count = len(grid)
    feasible = columns["feasible"]
    keys = names + list(base) + ["feasible", "error"] + list(METRICS) + ["utilization"]
    values = [list(column) for column in swept]
    values += [itertools.repeat(value, count) for value in base.values()]
    values += [itertools.repeat(True, count), itertools.repeat("", count)]
    values += [columns[m].tolist() for m in METRICS]
    units = [k for k in columns if k.startswith("utilization:")]
    values.append(_dicts([u.split(":", 1)[1] for u in units],
                         [columns[u].tolist() for u in units], count))
    for name in meta["parameters"]:  # the mapper's choices (a swept one stays as given)
        if name not in keys:
            keys.append(name)
            values.append(_plain_column(columns[f"parameter:{name}"], feasible))
    rows = [dict(zip(keys, row)) for row in zip(*values)]
    errors = columns["error"]
    for index in np.nonzero(~feasible)[0].tolist():
        row = dict(zip(names, grid[index]))
        row.update(base)
        row["feasible"] = False
        row["error"] = errors[index] or _reason(meta, row, names)
        rows[index] = row
    return rows


def _dicts(keys: list[str], columns: list[list], count: int) -> list[dict]:
    """One ``{key: value}`` per row (a dict display for the usual one or two keys: faster)."""
    if len(keys) == 1:
        (a,), (first,) = keys, columns
        return [{a: x} for x in first]
    if len(keys) == 2:
        (a, b), (first, second) = keys, columns
        return [{a: x, b: y} for x, y in zip(first, second)]
    return [dict(zip(keys, row)) for row in zip(*columns)] if keys else [{} for _ in
                                                                         range(count)]


def _plain_column(column: np.ndarray, feasible: np.ndarray) -> list:
    """A chosen parameter's values: whole numbers as int, others as float or text."""
    if column.dtype != object:
        finite = np.where(feasible & np.isfinite(column), column, 0.0)
        if np.all(finite == np.floor(finite)) and np.all(np.abs(finite) < 2 ** 53):
            return finite.astype(np.int64).tolist()
    return [v if isinstance(v, str) else int(v) if float(v).is_integer() else v
            for v in column.tolist()]


def _reason(meta, row: dict, names: list[str]) -> str:
    """Why an infeasible point without a capacity reason fails: the point path's search."""
    from einsim.cost.evaluate import compile_for, concrete_trees
    from einsim.cost.tree import load_mapping_tree
    from einsim.search.parameters import search

    prepared, plan = meta["prepared"], meta["prepared"].plan
    swept = {k: row[k] for k in names}
    tree = load_mapping_tree(prepared.mapping) if isinstance(prepared.mapping, str) \
        else prepared.mapping
    concrete = concrete_trees(tree, {})[0][0][1]
    engine, _ = compile_for(concrete, prepared.cascade, prepared.hardware)
    fixed = {k: v for k, v in swept.items() if k in plan.parameters}
    overrides = {k: v for k, v in swept.items() if k in plan.symbolic_fields}
    try:
        search(engine, meta["problem"], "latency", fixed, overrides)
    except MappingError as error:
        return str(error)
    return "infeasible"
