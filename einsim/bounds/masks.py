"""How a ``where`` mask thins the (key, query) pairs, counted per query in O(keys + queries).

The bounds need five numbers: the unmasked pairs, the fewest and most keys one query attends,
and how many keys and queries are attended at all (the input rows a mapping must read).  A
mask that is an ``and`` of atoms on whole ranks has closed forms: each atom ties one key rank
to one query rank — comparisons (``m1*M0 + m0 <= p``, ``p - m < W``), ``within`` bands,
``neighborhood`` windows — and is, per query, an interval of keys (a residue class of one under
dilation); atoms on the same ranks intersect, atoms on different ranks multiply.  Any other
mask (``or``, ``not``, partition parts such as ``md == pd``) is counted by brute force over
(key, query) points in chunks, up to :data:`BRUTE_FORCE_LIMIT` of them; beyond that it is
reported as not analysable (the bound then falls back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from einsim.language import ir
from einsim.language.affine import Affine, Term
from einsim.language.functions import COMPARISONS, condition_mask, window_bounds
from einsim.language.sizes import axis_rank
from einsim.analysis.passes import partition_root

BRUTE_FORCE_LIMIT = 1 << 26
PER_QUERY_LIMIT = 1 << 26
"""Longest rank counted key by key or query by query (arrays of this length)."""
_CHUNK = 1 << 22
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
    """One atom on (key value a, query value b).  ``compare``: ``a OP qsign*b + shift`` (no
    key: ``qsign*b + shift OP 0``); ``within``: ``|a - b - shift| <= r``; ``neighborhood``."""

    kind: str
    key: str
    query: str
    op: str = ""
    shift: int = 0
    qsign: int = 1
    args: tuple[int, ...] = ()


class MaskNotAnalysed(Exception):
    """A mask the profile cannot count at these sizes (the message says why)."""


def dense(keys: float, queries: float) -> MaskProfile:
    return MaskProfile(keys * queries, keys, keys, keys, queries)


# ---------------------------------------------------------------------- closed forms


def _negated(index: Affine) -> Affine:
    return Affine(tuple(Term(-t.coefficient, t.sizes, t.variable) for t in index.terms))


def _walk(cascade: ir.Cascade, terms: list[Term]) -> tuple[str, int] | None:
    """(root rank, sign) when ``terms`` walk a whole rank (plain root variable or its full
    partition reconstruction), possibly negated; None for a partition part or anything else."""
    for sign, part in ((1, Affine(tuple(terms))), (-1, _negated(Affine(tuple(terms))))):
        rank = axis_rank(part, cascade)
        if rank is not None and partition_root(cascade, rank) == rank:
            return rank, sign
    return None


def _linear(cascade, index: Affine, keys: set, queries: set, sizes):
    """``index`` as ``ks*a + qs*b + c``: (key rank, ks, query rank, qs, c)."""
    groups: dict[str, list[Term]] = {"key": [], "query": []}
    for term in index.terms:
        if term.variable is None:
            continue
        root = partition_root(cascade, ir.rank_of(term.variable))
        side = "key" if root in keys else "query" if root in queries else None
        if side is None:
            raise MaskNotAnalysed(f"mask index {index} uses {term.variable}, neither a key "
                                  "nor a query rank")
        groups[side].append(term)
    found = {}
    for side, terms in groups.items():
        if not terms:
            found[side] = ("", 0)
            continue
        walk = _walk(cascade, terms)
        if walk is None:
            raise MaskNotAnalysed(f"mask index {index} is not a whole rank plus a constant")
        found[side] = walk
    (key, ks), (query, qs) = found["key"], found["query"]
    return key, ks, query, qs, int(index.offset(sizes))


def _constant(index: Affine, sizes) -> int:
    if index.variables:
        raise MaskNotAnalysed(f"mask argument {index} is not a constant")
    return int(index.offset(sizes))


def _atom(cascade, part, keys: set, queries: set, sizes) -> _Atom:
    if isinstance(part, ir.IndexComparison):
        difference = Affine.of(list(part.left.terms) + list(_negated(part.right).terms))
        key, ks, query, qs, constant = _linear(cascade, difference, keys, queries, sizes)
        if not key and not query:
            raise MaskNotAnalysed(f"comparison {part} has no rank")
        if not key:  # a query rank against a constant: qs*b + c OP 0
            return _Atom("queries", "", query, part.op, constant, qs)
        # ks*a + qs*b + c OP 0  ->  a OP' (-qs*ks) b - c*ks
        op = part.op if ks > 0 else _FLIP[part.op]
        return _Atom("compare", key, query, op, -constant * ks, -qs * ks)
    if isinstance(part, ir.Predicate) and part.name in ("within", "neighborhood"):
        sides = [_linear(cascade, a, keys, queries, sizes) for a in part.args[:2]]
        if any(s[1] not in (0, 1) or s[3] not in (0, 1) or (s[0] and s[2]) for s in sides):
            raise MaskNotAnalysed(f"{part}: its first two arguments are not rank walks")
        if part.name == "within":
            (k0, _, q0, _, c0), (k1, _, q1, _, c1) = sides
            radius = _constant(part.args[2], sizes)
            if k0 and q1:
                return _Atom("within", k0, q1, shift=c1 - c0, args=(radius,))
            if k1 and q0:
                return _Atom("within", k1, q0, shift=c0 - c1, args=(radius,))
            raise MaskNotAnalysed(f"{part} does not relate a key rank to a query rank")
        (_, _, query, _, qo), (key, _, _, _, ko) = sides
        if not query or not key or qo or ko:
            raise MaskNotAnalysed(f"{part}: expected neighborhood(query, key, ...)")
        rest = [_constant(a, sizes) for a in part.args[2:]]
        length, window, stride, dilation, causal = (rest + [1, 1, 0][len(rest) - 2:])[:5]
        return _Atom("neighborhood", key, query, args=(length, window, stride, dilation,
                                                       causal))
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
        keep = COMPARISONS[atom.op](atom.qsign * b + atom.shift, 0)
        return np.zeros_like(b), np.where(keep, keys, 0)
    if atom.kind == "compare":
        t = atom.qsign * b + atom.shift if atom.query else np.full_like(b, atom.shift)
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


def _group_counts(members, b, keys):
    atoms = [atom for _, atom in members]
    if len(atoms) == 1 and atoms[0].kind == "neighborhood" and atoms[0].args[3] != 1:
        return _dilated_counts(atoms[0], b, keys)
    intervals = [_interval(atom, b, keys) for atom in atoms]
    if any(i is None for i in intervals):
        raise MaskNotAnalysed("a mask atom is not an interval of keys")
    lo = np.max([np.asarray(i[0]) for i in intervals], axis=0)
    hi = np.min([np.asarray(i[1]) for i in intervals], axis=0)
    return _interval_counts(lo.astype(np.int64), hi.astype(np.int64), keys)


def _closed_form(cascade, condition, key_ranks, query_ranks, size, sizes) -> MaskProfile:
    parts = _conjuncts(condition)
    if parts is None:
        raise MaskNotAnalysed(f"mask '{condition}' is not an 'and' of comparisons and windows")
    keys, queries = set(key_ranks), set(query_ranks)
    groups: dict[tuple[str, str], list] = {}
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
        if max(size[key], size[query]) > PER_QUERY_LIMIT:
            raise MaskNotAnalysed(f"ranks {key}, {query} are longer than "
                                  f"{PER_QUERY_LIMIT:,} to count query by query")
        b = np.arange(size[query], dtype=np.int64)
        counts, used = _group_counts(members, b, size[key])
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
    return MaskProfile(pairs, lmin, lmax, keys_used, queries_used)


# ------------------------------------------------------------------------- brute force


def _part_size(cascade: ir.Cascade, part: str, sizes) -> int:
    for partition in cascade.partitions:
        if part in partition.parts[1:]:
            given = partition.sizes[partition.parts.index(part) - 1]
            value = given if isinstance(given, int) else sizes.get(str(given))
            if value is None:
                raise MaskNotAnalysed(f"the mask reads partition part {part.lower()}, whose "
                                      "size is the mapping's choice")
            return int(value)
    raise MaskNotAnalysed(f"{part} is not a partition part")


def _coordinate(cascade: ir.Cascade, rank: str, root_values: dict, sizes):
    """The value of ``rank`` (a root or a partition part) from its root's coordinate."""
    if rank in root_values:
        return root_values[rank]
    for partition in cascade.partitions:
        if rank in partition.parts:
            parent = _coordinate(cascade, partition.rank, root_values, sizes)
            position = partition.parts.index(rank)
            inner = math.prod(_part_size(cascade, p, sizes)
                              for p in partition.parts[position + 1:])
            value = parent // inner
            return value if position == 0 else value % _part_size(cascade, rank, sizes)
    raise MaskNotAnalysed(f"the mask uses rank {rank}, neither a key nor a query rank")


def _brute_force(cascade, condition, key_ranks, query_ranks, size, sizes) -> MaskProfile:
    keys = math.prod(size[r] for r in key_ranks)
    queries = math.prod(size[r] for r in query_ranks)
    if keys * queries > BRUTE_FORCE_LIMIT:
        raise MaskNotAnalysed(f"{keys * queries:.3g} (key, query) points are too many to "
                              "count one by one")
    key_coordinates = np.unravel_index(np.arange(keys), [size[r] for r in key_ranks])
    variables = ir.condition_variables(condition)
    sizes = dict(sizes)
    for partition in cascade.partitions:  # part sizes for index expressions (mg*MR + mr)
        for part, given in zip(partition.parts[1:], partition.sizes):
            if part not in sizes:
                value = given if isinstance(given, int) else sizes.get(str(given))
                if value is not None:
                    sizes[part] = value
    counts = np.zeros(queries, dtype=np.int64)
    used = np.zeros(keys, dtype=bool)
    step = max(1, _CHUNK // max(keys, 1))
    for first in range(0, queries, step):
        b = np.arange(first, min(first + step, queries))
        query_coordinates = np.unravel_index(b, [size[r] for r in query_ranks])
        roots = {r: c[:, None] for r, c in zip(key_ranks, key_coordinates)}
        roots |= {r: c[None, :] for r, c in zip(query_ranks, query_coordinates)}
        env = {v: _coordinate(cascade, ir.rank_of(v), roots, sizes) for v in variables}
        grid = np.broadcast_to(condition_mask(condition, sizes, env), (keys, len(b)))
        counts[first:first + len(b)] = grid.sum(axis=0)
        used |= grid.any(axis=1)
    return MaskProfile(float(counts.sum()), float(counts.min()), float(counts.max()),
                       float(np.count_nonzero(used)), float(np.count_nonzero(counts)))


def profile(cascade: ir.Cascade, condition, key_ranks, query_ranks,
            sizes: Mapping[str, float]) -> MaskProfile:
    """The mask profile of ``condition`` (None: dense) over the given key and query ranks."""
    size = {r: int(sizes[r]) for r in (*key_ranks, *query_ranks)}
    if condition is not None and 0 in size.values():
        return MaskProfile(0.0, 0.0, 0.0, 0.0, 0.0)
    if condition is None:
        return dense(math.prod(size[r] for r in key_ranks),
                     math.prod(size[r] for r in query_ranks))
    try:
        found = _closed_form(cascade, condition, key_ranks, query_ranks, size, sizes)
    except MaskNotAnalysed as why:
        try:
            found = _brute_force(cascade, condition, key_ranks, query_ranks, size, sizes)
        except MaskNotAnalysed as brute:
            raise MaskNotAnalysed(f"mask '{condition}': {why}, and {brute}") from None
    if found.pairs == 0:
        return MaskProfile(0.0, 0.0, 0.0, 0.0, 0.0)
    return found
