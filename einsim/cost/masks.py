"""Exact mask densities: the unmasked fraction of an Einsum's iteration space.

Counting is by closed forms per query where the mask is one comparison between two indices
(``m1*M0 + m0 <= p``), a ``within`` band or a ``neighborhood`` window — O(queries) in NumPy,
so a million-token mask counts in milliseconds — and by brute force over the condition's own
variables (in chunks) for anything else up to :data:`BRUTE_FORCE_LIMIT` points.  Nothing is a
dense upper bound.

An Einsum without a ``where`` inherits the mask of an input it reads element-wise over all of
the mask's variables (masked points are empty and stay empty through intersection-merged
maps and reductions), so causal FuseMax's SLN, SLD and SLNV count about half of dense too.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from einsim.language import ir
from einsim.language.affine import Affine
from einsim.language.functions import COMPARISONS, PREDICATES, window_bounds
from einsim.errors import MappingError

BRUTE_FORCE_LIMIT = 1 << 26
_UNION = {"+", "-"}  # operators that keep a point present when either side is


def mask_sources(cascade: ir.Cascade) -> dict[str, str]:
    """Einsum -> the Einsum whose ``where`` condition masks its iteration space."""
    sources: dict[str, str] = {}
    for einsum in cascade.einsums:
        if einsum.condition is not None:
            sources[einsum.name] = einsum.name
            continue
        inherited = []
        for access in einsum.inputs:
            source = sources.get(access.tensor)
            producer = cascade.producers.get(access.tensor)
            if source is None or producer is None:
                inherited.append(None)
                continue
            same = tuple(i.plain_variable() for i in access.indices) == \
                tuple(i.plain_variable() for i in producer.output.indices)
            condition_vars = set(ir.condition_variables(cascade.producers[source].condition))
            covers = condition_vars <= set(einsum.variables) and same and \
                condition_vars <= set(producer.variables)
            inherited.append(source if covers else None)
        union = isinstance(einsum.expression, ir.BinaryOp) and einsum.expression.op in _UNION \
            or isinstance(einsum.expression, ir.Call) and einsum.expression.function in (
                "max", "min", "where")
        found = [s for s in inherited if s is not None]
        if found and (not union or len(found) == len(inherited)):
            sources[einsum.name] = found[0]
    return sources


def density(cascade: ir.Cascade, einsum_name: str, sizes: Mapping[str, float]) -> float:
    """Unmasked points / all points of the Einsum's ``where`` condition at these sizes."""
    einsum = cascade.producers[einsum_name]
    condition = einsum.condition
    variables = ir.condition_variables(condition)
    extents = {v: int(sizes[ir.rank_of(v)]) for v in variables}
    total = float(np.prod([float(extents[v]) for v in variables]))
    if total == 0:
        return 0.0
    pair = _index_pair(condition, cascade)
    if pair is not None:
        counted = _count_pair(*pair, extents, sizes)
        if counted is not None:
            return counted / total
    if total > BRUTE_FORCE_LIMIT:
        raise MappingError(f"Einsum {einsum_name}: cannot count its mask '{condition}' at these "
                           f"sizes ({total:.3g} points; closed forms cover one comparison, "
                           "within() and neighborhood(), brute force up to "
                           f"{BRUTE_FORCE_LIMIT:.3g})")
    return _brute_force(condition, variables, extents, sizes) / total


def _index_pair(condition, cascade):
    """(kind, query index, key index, predicate) for masks over two indices, else None."""
    if isinstance(condition, ir.IndexComparison):
        return ("compare", condition.left, condition.right, condition.op)
    if isinstance(condition, ir.Predicate) and condition.name in ("within", "neighborhood"):
        return ("predicate", condition.args[0], condition.args[1], condition)
    return None


def _values(index: Affine, extents, sizes) -> np.ndarray | None:
    """The values an index takes over its variables, when they are 0..N-1 once each."""
    variables = index.variables
    if len(variables) == 0:
        return None
    scale = {t.variable: t.coefficient * float(np.prod([sizes[s] for s in t.sizes]))
             for t in index.terms if t.variable is not None}
    ordered = sorted(variables, key=lambda v: scale[v])
    expected = 1.0
    for v in ordered:  # a mixed-radix number: m1*M0 + m0 covers 0..M1*M0-1 once
        if scale[v] != expected:
            return None
        expected *= extents[v]
    if expected > 1 << 31:
        return None
    return np.arange(int(expected), dtype=np.int64) + int(index.offset(sizes))


def _count_pair(kind, left: Affine, right: Affine, how, extents, sizes) -> float | None:
    if set(left.variables) & set(right.variables):
        return None
    a, b = _values(left, extents, sizes), _values(right, extents, sizes)
    if a is None or b is None:
        return None
    if kind == "compare":
        # count pairs with a OP b: for each b, how many a (a is a contiguous range)
        lo, n = a[0], len(a)
        below = np.clip(b - lo, 0, n)           # a < b
        upto = np.clip(b - lo + 1, 0, n)        # a <= b
        counts = {"<": below, "<=": upto, ">": n - upto, ">=": n - below,
                  "==": upto - below, "!=": n - (upto - below)}[how]
        return float(counts.sum())
    predicate = how
    args = [arg.offset(sizes) if not arg.variables else None for arg in predicate.args[2:]]
    if any(a_ is None for a_ in args):
        return None
    if predicate.name == "within":
        radius = args[0]
        lo, hi = a[0], a[-1]
        return float((np.minimum(b + radius, hi) - np.maximum(b - radius, lo) + 1)
                     .clip(0).sum())
    length, window, *rest = [int(x) for x in args]
    stride, dilation, causal = (rest + [1, 1, 0][len(rest):])[:3]
    if len(b) > length or len(a) > length:
        return None
    query = b  # neighborhood(query, key, ...): the first argument is the query
    group = query % dilation
    group_length = -(-(length - group) // dilation)
    start, end = window_bounds(query // dilation, group_length, window, stride, bool(causal))
    keys_in_range = len(a)
    # keys of the query's group with in-group coordinate in [start, end), below len(a)
    last = np.minimum(end, -(-(keys_in_range - group) // dilation))
    return float(np.clip(last - start, 0, None).sum())


def _brute_force(condition, variables, extents, sizes) -> float:
    grids = np.meshgrid(*(np.arange(extents[v]) for v in variables), indexing="ij",
                        sparse=True)
    return float(np.count_nonzero(_mask(condition, dict(zip(variables, grids)), sizes)))


def _mask(condition, grids, sizes) -> np.ndarray:
    if isinstance(condition, ir.IndexComparison):
        return COMPARISONS[condition.op](condition.left.evaluate(sizes, grids),
                                         condition.right.evaluate(sizes, grids))
    if isinstance(condition, ir.Predicate):
        return PREDICATES[condition.name].numpy(*(a.evaluate(sizes, grids)
                                                  for a in condition.args))
    if isinstance(condition, ir.Not):
        return ~_mask(condition.operand, grids, sizes)
    left, right = _mask(condition.left, grids, sizes), _mask(condition.right, grids, sizes)
    return (left & right) if condition.op == "and" else (left | right)
