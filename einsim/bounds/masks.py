"""How a ``where`` mask thins the (key, query) pairs, counted per query in O(keys + queries).

The bounds need five numbers: the unmasked pairs, the fewest and most keys one query attends,
and how many keys and queries are attended at all (the input rows a mapping must read).  A
mask is an ``and`` of atoms, each tying one key rank to one query rank: comparisons
(``m1*M0 + m0 <= p``), ``within`` bands and ``neighborhood`` windows.  Per query an atom is an
interval of keys (a residue class of one under dilation); atoms on the same ranks intersect;
atoms on different ranks multiply.  Anything else is counted by brute force on small sizes,
or reported as not analysable (the bound then falls back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from einsim.language import ir
from einsim.language.affine import Affine
from einsim.language.functions import COMPARISONS, PREDICATES, window_bounds
from einsim.language.sizes import axis_rank
from einsim.analysis.passes import partition_root

BRUTE_FORCE_LIMIT = 1 << 24
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


@dataclass(frozen=True)
class MaskProfile:
    """Unmasked pairs and their spread over queries (per batch-head)."""

    pairs: float
    lmin: float          # fewest keys one query attends
    lmax: float          # most keys one query attends
    keys_used: float     # keys some query attends
    queries_used: float  # queries that attend some key


@dataclass(frozen=True)
class _Atom:
    """One mask atom on (key value a, query value b): ``kind`` compare/within/neighborhood."""

    kind: str
    key: str
    query: str
    op: str = ""
    shift: int = 0                  # compare: a OP b + shift; within: |a - b - shift| <= r
    args: tuple[int, ...] = ()      # within: (r,); neighborhood: (L, W, S, D, C)


class MaskNotAnalysed(Exception):
    """A mask the profile cannot count at these sizes (the message says why)."""


def dense(keys: float, queries: float) -> MaskProfile:
    return MaskProfile(keys * queries, keys, keys, keys, queries)


def _side(cascade: ir.Cascade, index: Affine, sizes) -> tuple[str | None, int]:
    """(root rank, constant offset) of ``index`` = a rank walk plus a constant (no rank: a
    constant)."""
    variable_part = Affine(tuple(t for t in index.terms if t.variable is not None))
    if not variable_part.terms:
        return None, int(index.offset(sizes))
    rank = axis_rank(variable_part, cascade)
    if rank is None:
        raise MaskNotAnalysed(f"mask index {index} is not a rank plus a constant")
    return partition_root(cascade, rank), int(index.offset(sizes))


def _constant(index: Affine, sizes) -> int:
    if index.variables:
        raise MaskNotAnalysed(f"mask argument {index} is not a constant")
    return int(index.offset(sizes))


def _atom(cascade, part, keys: set, queries: set, sizes) -> _Atom:
    if isinstance(part, ir.IndexComparison):
        (left, lo), (right, ro) = _side(cascade, part.left, sizes), \
            _side(cascade, part.right, sizes)
        if left in keys and right in queries:
            return _Atom("compare", left, right, part.op, ro - lo)
        if right in keys and left in queries:
            return _Atom("compare", right, left, _FLIP[part.op], lo - ro)
        if left is None or right is None:  # one rank against a constant
            rank, op, value = (right, _FLIP[part.op], lo - ro) if left is None \
                else (left, part.op, ro - lo)
            if rank in keys:
                return _Atom("compare", rank, "", op, value)
            if rank in queries:
                return _Atom("queries", "", rank, op, value)
        raise MaskNotAnalysed(f"comparison {part} does not relate a key rank to a query rank")
    if isinstance(part, ir.Predicate) and part.name == "within":
        (a, ao), (b, bo) = _side(cascade, part.args[0], sizes), _side(cascade, part.args[1],
                                                                       sizes)
        radius = _constant(part.args[2], sizes)
        if a in keys and b in queries:
            return _Atom("within", a, b, shift=bo - ao, args=(radius,))
        if b in keys and a in queries:
            return _Atom("within", b, a, shift=ao - bo, args=(radius,))
        raise MaskNotAnalysed(f"{part} does not relate a key rank to a query rank")
    if isinstance(part, ir.Predicate) and part.name == "neighborhood":
        (q, qo), (k, ko) = _side(cascade, part.args[0], sizes), _side(cascade, part.args[1],
                                                                       sizes)
        if q not in queries or k not in keys or qo or ko:
            raise MaskNotAnalysed(f"{part}: expected neighborhood(query, key, ...)")
        rest = [_constant(a, sizes) for a in part.args[2:]]
        length, window, stride, dilation, causal = (rest + [1, 1, 0][len(rest) - 2:])[:5]
        return _Atom("neighborhood", k, q, args=(length, window, stride, dilation, causal))
    raise MaskNotAnalysed(f"mask part {part} is not a comparison, within() or neighborhood()")


def _conjuncts(condition) -> list | None:
    if isinstance(condition, ir.BoolOp) and condition.op == "and":
        left, right = _conjuncts(condition.left), _conjuncts(condition.right)
        return None if left is None or right is None else left + right
    if isinstance(condition, (ir.IndexComparison, ir.Predicate)):
        return [condition]
    return None


def _interval(atom: _Atom, b: np.ndarray, keys: int):
    """Keys [lo, hi) of each query ``b`` (dilation 1), or None for a non-interval atom."""
    if atom.kind == "queries":
        keep = COMPARISONS[atom.op](b, atom.shift)
        return np.zeros_like(b), np.where(keep, keys, 0)
    if atom.kind == "compare":
        t = b + atom.shift if atom.query else np.full_like(b, atom.shift)
        table = {"<=": (0, t + 1), "<": (0, t), ">=": (t, keys), ">": (t + 1, keys),
                 "==": (t, t + 1)}
        if atom.op not in table:
            return None
        lo, hi = table[atom.op]
        return np.broadcast_to(lo, b.shape), np.broadcast_to(hi, b.shape)
    if atom.kind == "within":
        centre = b + atom.shift
        return centre - atom.args[0], centre + atom.args[0] + 1
    length, window, stride, dilation, causal = atom.args
    if dilation != 1 or len(b) > length or keys > length:
        return None
    return window_bounds(b, length, window, stride, bool(causal))


def _interval_counts(lo, hi, keys: int) -> tuple[np.ndarray, int]:
    lo, hi = np.clip(lo, 0, keys), np.clip(hi, 0, keys)
    counts = np.maximum(hi - lo, 0)
    live = counts > 0
    marks = np.bincount(lo[live], minlength=keys + 1)[:keys + 1] \
        - np.bincount(hi[live], minlength=keys + 1)[:keys + 1]
    return counts, int(np.count_nonzero(np.cumsum(marks)[:keys]))


def _dilated_counts(atom: _Atom, b: np.ndarray, keys: int) -> tuple[np.ndarray, int]:
    length, window, stride, dilation, causal = atom.args
    if len(b) > length or keys > length:
        raise MaskNotAnalysed("neighborhood axis longer than its length argument")
    group = b % dilation
    start, end = window_bounds(b // dilation, -(-(length - group) // dilation), window,
                               stride, bool(causal))
    limit = -(-(keys - group) // dilation)
    counts = np.clip(np.minimum(end, limit) - start, 0, None)
    used = 0
    for g in range(min(dilation, keys)):
        mine = (group == g) & (counts > 0)
        span = int(-(-(keys - g) // dilation))
        lo, hi = np.clip(start[mine], 0, span), np.clip(np.minimum(end, limit)[mine], 0, span)
        used += _interval_counts(lo, hi, span)[1]
    return counts, used


def _grid(atom: _Atom, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if atom.kind == "queries":
        return COMPARISONS[atom.op](b, atom.shift)
    if atom.kind == "compare":
        return COMPARISONS[atom.op](a, (b if atom.query else 0) + atom.shift)
    if atom.kind == "within":
        return np.abs(a - b - atom.shift) <= atom.args[0]
    return PREDICATES["neighborhood"].numpy(b, a, *atom.args)


def _brute(cascade, condition, key: str, query: str, keys: int, queries: int, sizes):
    if keys * queries > BRUTE_FORCE_LIMIT:
        raise MaskNotAnalysed(f"mask '{condition}' has no closed form here and "
                              f"{keys * queries:.3g} (key, query) points are too many to count")
    a = np.arange(keys)[:, None]
    b = np.arange(queries)[None, :]

    def value(node):
        if isinstance(node, ir.BoolOp):
            left, right = value(node.left), value(node.right)
            return (left & right) if node.op == "and" else (left | right)
        if isinstance(node, ir.Not):
            return ~value(node.operand)
        atom = _atom(cascade, node, {key}, {query}, sizes)
        return np.broadcast_to(_grid(atom, a, b), (keys, queries))

    grid = value(condition)
    return grid.sum(axis=0), int(np.count_nonzero(grid.any(axis=1)))


def profile(cascade: ir.Cascade, condition, key_ranks, query_ranks,
            sizes: Mapping[str, float]) -> MaskProfile:
    """The mask profile of ``condition`` (None: dense) over the given key and query ranks."""
    size = {r: int(sizes[r]) for r in (*key_ranks, *query_ranks)}
    total_keys = math.prod(size[r] for r in key_ranks)
    total_queries = math.prod(size[r] for r in query_ranks)
    if condition is None:
        return dense(total_keys, total_queries)
    keys, queries = set(key_ranks), set(query_ranks)
    groups: dict[tuple[str, str], list] = {}
    parts = _conjuncts(condition)
    if parts is None:
        found = {(_side(cascade, i, sizes)[0]) for part in ir.condition_parts(condition)
                 for i in ((part.left, part.right) if isinstance(part, ir.IndexComparison)
                           else part.args[:2])}
        pair = [r for r in found if r in keys], [r for r in found if r in queries]
        if len(pair[0]) > 1 or len(pair[1]) > 1 or not pair[0] and len(key_ranks) > 1 \
                or not pair[1] and len(query_ranks) > 1:
            raise MaskNotAnalysed(f"mask '{condition}' mixes several rank pairs under or/not")
        groups[((pair[0] or list(key_ranks))[0], (pair[1] or list(query_ranks))[0])] = \
            [condition]
        whole = True
    else:
        whole = False
        lone = []
        for part in parts:
            atom = _atom(cascade, part, keys, queries, sizes)
            if atom.key and atom.query:
                groups.setdefault((atom.key, atom.query), []).append((part, atom))
            else:
                lone.append((part, atom))
        for part, atom in lone:  # one rank against a constant joins its rank's group
            home = [g for g in groups if atom.key in g or atom.query in g]
            if not home and len(key_ranks) == 1 and len(query_ranks) == 1:
                home = [(key_ranks[0], query_ranks[0])]
            if not home:
                raise MaskNotAnalysed(f"mask part {part} limits one rank alone")
            groups.setdefault(home[0], []).append((part, atom))
    if len({k for k, _ in groups}) < len(groups) or len({q for _, q in groups}) < len(groups):
        raise MaskNotAnalysed(f"mask '{condition}' ties one rank to several others")
    pairs, lmin, lmax, keys_used, queries_used = 1.0, 1.0, 1.0, 1.0, 1.0
    for (key, query), members in groups.items():
        b = np.arange(size[query], dtype=np.int64)
        if whole:
            counts, used = _brute(cascade, members[0], key, query, size[key], size[query],
                                  sizes)
        else:
            counts, used = _group_counts(cascade, members, b, key, query, size, sizes)
        pairs *= float(counts.sum())
        lmin *= float(counts.min())
        lmax *= float(counts.max())
        keys_used *= used
        queries_used *= float(np.count_nonzero(counts))
    for rank in keys - {k for k, _ in groups}:
        pairs, lmin, lmax, keys_used = (pairs * size[rank], lmin * size[rank],
                                        lmax * size[rank], keys_used * size[rank])
    for rank in queries - {q for _, q in groups}:
        pairs, queries_used = pairs * size[rank], queries_used * size[rank]
    if pairs == 0:
        keys_used = queries_used = 0.0
    return MaskProfile(pairs, lmin, lmax, keys_used, queries_used)


def _group_counts(cascade, members, b, key, query, size, sizes):
    keys = size[key]
    atoms = [atom for _, atom in members]
    if len(atoms) == 1 and atoms[0].kind == "neighborhood" and atoms[0].args[3] != 1:
        return _dilated_counts(atoms[0], b, keys)
    intervals = [_interval(atom, b, keys) for atom in atoms]
    if any(i is None for i in intervals):
        condition = members[0][0]
        for part, _ in members[1:]:
            condition = ir.BoolOp("and", condition, part)
        return _brute(cascade, condition, key, query, keys, size[query], sizes)
    lo = np.max([np.asarray(i[0]) for i in intervals], axis=0)
    hi = np.min([np.asarray(i[1]) for i in intervals], axis=0)
    return _interval_counts(lo.astype(np.int64), hi.astype(np.int64), keys)
