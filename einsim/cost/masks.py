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
from einsim.language.functions import condition_mask, window_bounds
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
    """Unmasked points / all points of the Einsum's ``where`` condition at these sizes (a
    conjunction over disjoint variables, such as a window per axis: the product of its
    factors' densities)."""
    condition = cascade.producers[einsum_name].condition
    factors = _independent_factors(condition)
    result = 1.0
    for factor in factors:
        result *= _factor_density(factor, cascade if len(factors) == 1 else None, sizes,
                                  einsum_name)
    return result


def _factor_density(condition, cascade, sizes, einsum_name: str) -> float:
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
    if cascade is not None and (pairs := _pairs_by_intervals(cascade, sizes)) is not None:
        return pairs / total
    if total > BRUTE_FORCE_LIMIT:
        raise MappingError(f"Einsum {einsum_name}: cannot count its mask '{condition}' at "
                           f"these sizes ({total:.3g} points; closed forms cover one "
                           "comparison, within() and neighborhood(), brute force up to "
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
    query, keys = a, b  # neighborhood(query, key, ...): the first argument is the query
    if len(query) > length or keys[0] != 0:
        return None
    group = query % dilation
    group_length = -(-(length - group) // dilation)
    start, end = window_bounds(query // dilation, group_length, window, stride, bool(causal))
    keys_in_range = min(len(keys), length)  # keys past the axis (a ragged tile) never attend
    # keys of the query's group with in-group coordinate in [start, end), below keys_in_range
    last = np.minimum(end, -(-(keys_in_range - group) // dilation))
    return float(np.clip(last - start, 0, None).sum())


def _brute_force(condition, variables, extents, sizes) -> float:
    grids = np.meshgrid(*(np.arange(extents[v]) for v in variables), indexing="ij",
                        sparse=True)
    return float(np.count_nonzero(condition_mask(condition, sizes, dict(zip(variables, grids)))))


def tile_fractions(cascade: ir.Cascade, einsum_name: str, sizes: Mapping[str, float],
                   q_tiles: Mapping[str, int], kv_tiles: Mapping[str, int],
                   dynamic: bool = False) -> tuple[float, float, float]:
    """(visited, partial, worst): the fractions of (Q tile, KV tile) pairs a block-sparse kernel
    visits (at least one unmasked point) and must mask element by element (also a masked
    point, or a padding key of a ragged last KV tile), and the fraction of the KV tiles the
    busiest Q tile visits (the longest CTA).  ``q_tiles`` gives each query variable of the mask its extent per Q tile (a CTA's
    share of the grid), ``kv_tiles`` each key variable its extent per KV tile.

    A mask that is a conjunction of conditions over disjoint variables (a multi-dimensional
    neighborhood: one window per axis) is counted per factor: a tile pair is visited when every
    factor's is, unmasked when every factor's is, so the fractions multiply.  Each factor is
    counted by :func:`einsim.gna.axis_counts` (a neighborhood over a whole axis), by closed
    forms per query where the attended keys form one interval, O(queries); else by interval
    arithmetic per tile on any mask over (m, p) (:mod:`einsim.sparsity`), O(tiles); else by
    brute force up to :data:`BRUTE_FORCE_LIMIT` points.  ``dynamic`` (dynamic KV tiling: each
    Q tile's KV tiles start at its first attended key) is counted for neighborhoods.
    """
    condition = cascade.producers[einsum_name].condition
    factors = _independent_factors(condition)
    visited = unmasked = worst = 1.0
    for factor in factors:
        variables = ir.condition_variables(factor)
        query = {v for v in variables if v in q_tiles}
        q_tile = int(np.prod([q_tiles[v] for v in variables if v in q_tiles]))
        kv_tile = int(np.prod([kv_tiles.get(v, 1) for v in variables if v not in q_tiles]))
        whole = cascade if len(factors) == 1 else None
        seen, partial, busiest = _factor_fractions(factor, whole, sizes, query, q_tile,
                                                   kv_tile, einsum_name, dynamic)
        visited *= seen
        unmasked *= seen - partial
        worst *= busiest  # a Q tile's tile pairs are the product of its per-axis ones
    return visited, visited - unmasked, worst


def _independent_factors(condition) -> list:
    """The conjuncts of ``a and b and ...`` grouped so no two groups share a variable."""
    stack, conjuncts = [condition], []
    while stack:
        current = stack.pop()
        if isinstance(current, ir.BoolOp) and current.op == "and":
            stack.extend((current.right, current.left))
        else:
            conjuncts.append(current)
    groups: list[tuple[set, object]] = []
    for conjunct in conjuncts:
        variables = set(ir.condition_variables(conjunct))
        for k, (other, combined) in enumerate(groups):
            if variables & other:
                groups[k] = (other | variables, ir.BoolOp("and", combined, conjunct))
                break
        else:
            groups.append((variables, conjunct))
    return [combined for _, combined in groups]


def _factor_fractions(condition, cascade, sizes, query_variables: set, q_tile: int,
                      kv_tile: int, name: str, dynamic: bool = False
                      ) -> tuple[float, float, float]:
    variables = ir.condition_variables(condition)
    extents = {v: int(sizes[ir.rank_of(v)]) for v in variables}
    pair = _index_pair(condition, cascade)
    keys = queries = None
    if pair is not None:
        kind, left, right, how = pair
        if set(left.variables) & query_variables and not set(right.variables) & query_variables:
            left, right = right, left
            how = _FLIPPED.get(how, how) if kind == "compare" else how
        keys, queries = _values(left, extents, sizes), _values(right, extents, sizes)
    if keys is not None and queries is not None and len(keys) and len(queries):
        counted = _neighborhood_tiles(kind, how, keys, queries, sizes, q_tile, kv_tile, dynamic)
        if counted is not None:
            return counted
        bounds = None if dynamic else _key_interval(kind, how, keys, queries, sizes)
        if bounds is not None:
            return _tiles_of_intervals(*bounds, len(keys), q_tile, kv_tile)
    if dynamic:
        raise MappingError(f"Einsum {name}: start: mask (dynamic KV tiling) is counted for a "
                           f"neighborhood over a whole axis; '{condition}' is not one")
    if cascade is not None:
        counted = _tiles_by_intervals(cascade, sizes, q_tile, kv_tile)
        if counted is not None:
            return counted
    total = float(np.prod([float(e) for e in extents.values()]))
    if total > BRUTE_FORCE_LIMIT:
        raise MappingError(f"Einsum {name}: cannot count the tiles of its mask "
                           f"'{condition}' at these sizes ({total:.3g} points)")
    return _tiles_by_brute_force(condition, variables, extents, sizes, query_variables,
                                 q_tile, kv_tile)


def _neighborhood_tiles(kind, how, keys, queries, sizes, q_tile, kv_tile, dynamic=False):
    """An undilated neighborhood over a whole axis (queries and keys both 0..L-1), by
    :func:`einsim.gna.axis_counts`: O(Q tiles)."""
    if kind != "predicate" or how.name != "neighborhood":
        return None
    args = [arg.offset(sizes) if not arg.variables else None for arg in how.args[2:]]
    if any(a is None for a in args):
        return None
    length, window, *rest = [int(x) for x in args]
    stride, dilation, causal = (rest + [1, 1, 0][len(rest):])[:3]
    if dilation != 1 or not (len(keys) == len(queries) == length and keys[0] == 0
                             and queries[0] == 0) or not 1 <= window <= length:
        return None
    from einsim.gna import axis_counts

    counts = axis_counts(length, window, stride, 1, bool(causal), q_tile, kv_tile, dynamic)
    dense = counts.q_tiles * -(-length // kv_tile)
    return (counts.visited_total / dense,
            (counts.visited_total - counts.unmasked_total) / dense,
            counts.worst / -(-length // kv_tile))


_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _key_interval(kind, how, keys: np.ndarray, queries: np.ndarray, sizes):
    """Per query, the attended key positions [lo, hi] (0-based in ``keys``), or None when
    they are not one interval."""
    first, last = int(keys[0]), int(keys[-1])
    if kind == "compare":
        spans = {"<": (first, queries - 1), "<=": (first, queries), ">": (queries + 1, last),
                 ">=": (queries, last), "==": (queries, queries)}
        if how not in spans:
            return None
        lo, hi = spans[how]
    else:
        args = [arg.offset(sizes) if not arg.variables else None for arg in how.args[2:]]
        if any(a is None for a in args):
            return None
        if how.name == "within":
            lo, hi = queries - args[0], queries + args[0]
        else:
            length, window, *rest = [int(x) for x in args]
            stride, dilation, causal = (rest + [1, 1, 0][len(rest):])[:3]
            if dilation != 1:
                return None
            lo, end = window_bounds(queries, length, window, stride, bool(causal))
            hi = end - 1
    lo = np.broadcast_to(np.asarray(lo, dtype=np.int64), queries.shape)
    hi = np.broadcast_to(np.asarray(hi, dtype=np.int64), queries.shape)
    return np.maximum(lo, first) - first, np.minimum(hi, last) - first


def _tiles_of_intervals(lo: np.ndarray, hi: np.ndarray, keys: int, q_tile: int,
                        kv_tile: int) -> tuple[float, float, float]:
    starts = np.arange(0, len(lo), q_tile)
    empty = lo > hi
    big = np.iinfo(np.int64).max
    union_lo = np.minimum.reduceat(np.where(empty, big, lo), starts)
    union_hi = np.maximum.reduceat(np.where(empty, -1, hi), starts)
    common_lo = np.maximum.reduceat(lo, starts)
    common_hi = np.minimum.reduceat(hi, starts)
    any_empty = np.logical_or.reduceat(empty, starts)
    visited = np.where(union_hi >= 0, union_hi // kv_tile - union_lo // kv_tile + 1, 0)
    last = -(-keys // kv_tile) - 1
    first_full = -(-common_lo // kv_tile)
    inner_full = np.minimum((common_hi + 1) // kv_tile - 1, last - 1) - first_full + 1
    # a ragged last KV tile always needs masking: its padding keys must not count
    full = np.clip(inner_full, 0, None) + ((common_hi >= keys - 1) & (keys % kv_tile == 0)
                                           & (last * kv_tile >= common_lo))
    full = np.where(any_empty | (common_lo > common_hi), 0, full)
    dense = len(starts) * (last + 1)
    return (float(visited.sum()) / dense, float((visited - full).sum()) / dense,
            float(visited.max()) / (last + 1))


def _interval_mask(cascade: ir.Cascade, sizes: Mapping[str, float], q_tile: int = 1,
                   kv_tile: int = 1):
    """(mask, keys, queries) of the cascade's ``where`` over (m, p) in :mod:`einsim.sparsity`'s
    normal form, or None when there is no such mask (or no M and P)."""
    from einsim.sparsity.mask import SparseMaskError, cascade_mask, resolve_sizes

    if "M" not in sizes or "P" not in sizes:
        return None
    keys, queries = int(sizes["M"]), int(sizes["P"])
    given = {p.name: int(sizes[p.name]) for p in cascade.params if p.name in sizes
             and float(sizes[p.name]).is_integer()}
    try:
        mask = cascade_mask(cascade, resolve_sizes(cascade, keys, queries, q_tile, kv_tile,
                                                   given))
    except SparseMaskError:
        return None
    return None if mask is None else (mask, keys, queries)


def _pairs_by_intervals(cascade: ir.Cascade, sizes: Mapping[str, float]) -> float | None:
    """Attended (key, query) pairs of any mask over (m, p), counted exactly per row by interval
    arithmetic (:mod:`einsim.sparsity`); None when the mask is not over the two ranks."""
    from einsim.sparsity.bounds import _attended
    from einsim.sparsity.mask import SparseMaskError

    found = _interval_mask(cascade, sizes)
    if found is None:
        return None
    mask, keys, queries = found
    try:
        return float(_attended(mask, queries, keys))
    except SparseMaskError:
        return None


def _tiles_by_intervals(cascade: ir.Cascade, sizes: Mapping[str, float], q_tile: int,
                        kv_tile: int) -> tuple[float, float, float] | None:
    """Any mask over (m, p), by three-valued interval arithmetic per tile
    (:mod:`einsim.sparsity`); None when the mask is not one over the key and query ranks."""
    from einsim.sparsity.mask import SparseMaskError
    from einsim.sparsity.tiles import tile_counts

    found = _interval_mask(cascade, sizes, q_tile, kv_tile)
    if found is None:
        return None
    mask, keys, queries = found
    try:
        counts = tile_counts(mask, queries, keys, q_tile, kv_tile)
    except SparseMaskError:
        return None
    dense = counts.q_tiles * counts.kv_tiles
    partial = counts.partial.sum() + (counts.last_full.sum() if keys % kv_tile else 0)
    return (float(counts.visited.sum()) / dense, float(partial) / dense,
            float(counts.visited.max()) / counts.kv_tiles)


def _tiles_by_brute_force(condition, variables, extents, sizes, query_variables, q_tile,
                          kv_tile) -> tuple[float, float, float]:
    grids = np.meshgrid(*(np.arange(extents[v]) for v in variables), indexing="ij")
    mask = condition_mask(condition, sizes, dict(zip(variables, grids)))
    # flatten to (query, key) positions: mixed-radix over each side's variables, outer first
    query_axes = [k for k, v in enumerate(variables) if v in query_variables]
    key_axes = [k for k, v in enumerate(variables) if v not in query_variables]
    mask = np.transpose(mask, query_axes + key_axes)
    queries = int(np.prod([mask.shape[k] for k in range(len(query_axes))]))
    mask = mask.reshape(queries, -1)
    q_tiles, kv_tiles = -(-mask.shape[0] // q_tile), -(-mask.shape[1] // kv_tile)
    padded = np.zeros((q_tiles * q_tile, kv_tiles * kv_tile), dtype=np.int64)
    padded[:mask.shape[0], :mask.shape[1]] = mask
    counts = padded.reshape(q_tiles, q_tile, kv_tiles, kv_tile).sum(axis=(1, 3))
    rows = np.minimum(q_tile, mask.shape[0] - np.arange(q_tiles) * q_tile)
    area = rows[:, None] * kv_tile  # padding keys of a ragged KV tile are masked too
    dense = q_tiles * kv_tiles
    return (float((counts > 0).sum()) / dense,
            float(((counts > 0) & (counts < area)).sum()) / dense,
            float((counts > 0).sum(axis=1).max()) / kv_tiles)


def mask_operations(condition: ir.Condition) -> int:
    """Operations per score that mask a partial tile element by element: one per comparison,
    two per ``within`` or ``neighborhood`` window (its two ends), one per ``and``/``or``, and
    the select that writes -inf (a window's ends are per query, so not counted per score)."""
    parts = list(ir.condition_parts(condition))
    compares = sum(1 if isinstance(p, ir.IndexComparison) else 2 for p in parts)
    return compares + (len(parts) - 1) + 1
