"""A cascade's ``where`` mask as a predicate over (key ``m``, query ``p``), normalized for counting.

The normal form is a tree of and / or / not over *atoms*; an atom is one integer comparison

    sum(c * key feature) + sum(d * query feature) + const   OP   0,     OP in <=, ==, !=

and a *feature* of an index ``x`` (``m`` or ``p``) is ``floor(x / A) mod B`` (``B`` may be
absent).  Partition parts are features: ``partition M -> M1, M0 by 64`` makes ``m1 = floor(m/64)``
and ``m0 = m mod 64``; the reconstruction ``m1*M0 + m0`` merges back into ``m``.  ``within`` is
two atoms and ``neighborhood`` expands into atoms over ``floor(p/(D*S))``, ``floor(m/D)``,
``m mod D`` ... (see :mod:`einsim.sparsity.neighborhood`).

Two restrictions keep counting exact and O(tiles): an atom has at most one *monotone* key feature
(one without a modulus), and the masked Einsum iterates the whole key index and the whole query
index (``m`` or every part of its partition, and the same for ``p``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Union

import numpy as np

from einsim.errors import EinsimError
from einsim.language import ir
from einsim.language.affine import Affine
from einsim.language.functions import PREDICATES, check_predicate_args, condition_mask

KEY, QUERY = "m", "p"

MAX_MAGNITUDE = 2 ** 60
"""Largest value an atom may reach (sum of |coefficient| x feature range): counting stays
exact in 64-bit integers."""


class SparseMaskError(EinsimError):
    """A mask (or its sizes, tiles or workload) the sparse-mask analysis cannot count."""


@dataclass(frozen=True)
class Feature:
    """``floor(x / divisor) mod modulus`` of the key (``side`` "m") or query (``side`` "p") index."""

    side: str
    divisor: int = 1
    modulus: int | None = None

    @property
    def period(self) -> int | None:
        """Length after which the feature repeats (None: it is monotone)."""
        return None if self.modulus is None else self.divisor * self.modulus

    def of(self, x):
        """The feature's value at index ``x`` (an int or an integer array)."""
        value = x if self.divisor == 1 else x // self.divisor
        return value if self.modulus is None else value % self.modulus

    def largest(self, extent: int) -> int:
        """Largest value over indices ``0 .. extent - 1``."""
        top = max(extent - 1, 0) // self.divisor
        return top if self.modulus is None else min(top, self.modulus - 1)

    def __str__(self) -> str:
        text = self.side if self.divisor == 1 else f"floor({self.side}/{self.divisor})"
        return text if self.modulus is None else f"({text} mod {self.modulus})"


Terms = tuple[tuple[int, Feature], ...]


@dataclass(frozen=True)
class Atom:
    """``key + query + const OP 0`` with OP one of ``<=``, ``==``, ``!=``."""

    key: Terms
    query: Terms
    const: int
    op: str

    @property
    def monotone(self) -> tuple[int, Feature] | None:
        """The (coefficient, feature) of the one key feature without a modulus, if any."""
        found = [t for t in self.key if t[1].modulus is None]
        return found[0] if found else None

    def __str__(self) -> str:
        parts = [f"{c}*{f}" for c, f in (*self.key, *self.query)] + [str(self.const)]
        return f"{' + '.join(parts)} {self.op} 0"


@dataclass(frozen=True)
class And:
    parts: tuple["Node", ...]

    def __str__(self) -> str:
        return "(" + " and ".join(str(p) for p in self.parts) + ")"


@dataclass(frozen=True)
class Or:
    parts: tuple["Node", ...]

    def __str__(self) -> str:
        return "(" + " or ".join(str(p) for p in self.parts) + ")"


@dataclass(frozen=True)
class Not:
    operand: "Node"

    def __str__(self) -> str:
        return f"not {self.operand}"


Node = Union[Atom, And, Or, Not]


@dataclass(frozen=True)
class Mask:
    """The normalized mask of one cascade at given sizes: key length ``M``, query length ``P``."""

    tree: Node
    key_len: int
    query_len: int
    text: str
    einsum: str

    @property
    def atoms(self) -> tuple[Atom, ...]:
        found, stack = [], [self.tree]
        while stack:
            node = stack.pop()
            if isinstance(node, Atom):
                found.append(node)
            elif isinstance(node, Not):
                stack.append(node.operand)
            else:
                stack.extend(reversed(node.parts))
        return tuple(found)

    @property
    def period(self) -> int:
        """Least common multiple of the key features' periods (1 without periodic features):
        with ``m = period*q + r`` every periodic key feature depends on ``r`` alone."""
        periods = [f.period for a in self.atoms for _, f in a.key if f.period is not None]
        return math.lcm(*periods) if periods else 1


# ------------------------------------------------------------------------------------ atoms


def merge(terms: list[tuple[int, Feature]], extent: int) -> Terms:
    """Combine like features, drop constant ones, and merge mixed-radix digits back together:
    ``c*M0*floor(m/M0) + c*(m mod M0)`` is ``c*m``."""
    simplified: dict[Feature, int] = {}
    for coefficient, feature in terms:
        feature = _simplify(feature, extent)
        if feature is not None and coefficient:
            simplified[feature] = simplified.get(feature, 0) + coefficient
    changed = True
    while changed:
        changed = False
        for low, c_low in list(simplified.items()):
            if low.modulus is None or not c_low:
                continue
            for high, c_high in list(simplified.items()):
                if high.divisor == low.divisor * low.modulus and c_high == c_low * low.modulus:
                    merged = _simplify(Feature(low.side, low.divisor, None if high.modulus is None
                                               else low.modulus * high.modulus), extent)
                    del simplified[low], simplified[high]
                    if merged is not None:
                        simplified[merged] = simplified.get(merged, 0) + c_low
                    changed = True
                    break
            if changed:
                break
    return tuple((c, f) for f, c in sorted(simplified.items(), key=lambda kv: _order(kv[0]))
                 if c)


def _order(feature: Feature) -> tuple:
    return (feature.side, feature.divisor, feature.modulus or 0)


def _simplify(feature: Feature, extent: int) -> Feature | None:
    """None for a feature that is 0 on every index below ``extent``; the modulus dropped when
    it never wraps there."""
    if feature.divisor >= extent or feature.modulus == 1:
        return None
    if feature.modulus is not None and feature.divisor * feature.modulus >= extent:
        return Feature(feature.side, feature.divisor, None)
    return feature


def atom(terms: list[tuple[int, Feature]], const: int, op: str, key_len: int,
         query_len: int, where: str) -> Atom:
    """Build a checked :class:`Atom` from mixed key and query terms."""
    key = merge([t for t in terms if t[1].side == KEY], key_len)
    query = merge([t for t in terms if t[1].side == QUERY], query_len)
    if sum(1 for _, f in key if f.modulus is None) > 1:
        raise SparseMaskError(
            f"mask '{where}': a comparison combines several key terms "
            f"({', '.join(str(f) for _, f in key)}) that do not rebuild m; a comparison may "
            "use m (or m1*M0 + m0) once, plus key terms that repeat (modulo parts)")
    reach = abs(const) + sum(abs(c) * f.largest(key_len) for c, f in key) \
        + sum(abs(c) * f.largest(query_len) for c, f in query)
    if reach > MAX_MAGNITUDE:
        raise SparseMaskError(f"mask '{where}': its values reach about 2**"
                              f"{reach.bit_length() - 1}; the analysis counts exactly up to "
                              "2**60")
    return Atom(key, query, int(const), op)


# ------------------------------------------------------------------------- the cascade's mask


def resolve_sizes(cascade: ir.Cascade, key_len: int, query_len: int, q_tile: int,
                  kv_tile: int, overrides: Mapping[str, int] | None = None) -> dict[str, float]:
    """Sizes the mask may use: ``M``, ``P``, ``param`` and ``rank`` declarations (the
    ``overrides`` win), and the parts of the partitions of M and P.  A tile size named after its
    own part (``partition M -> M1, M0 by M0``) defaults to the KV tile (Q tile for P).  Values
    are checked to be integers where the mask uses them."""
    sizes: dict[str, float] = {}
    for decl in cascade.ranks:
        if decl.size is not None:
            sizes[decl.name] = decl.size
    for param in cascade.params:
        sizes[param.name] = param.value
    known = set(sizes) | {s for p in cascade.partitions for s in (*p.parts, *p.sizes)
                          if isinstance(s, str)}
    for name, value in (overrides or {}).items():
        if name in ("M", "P"):
            raise SparseMaskError(f"size {name}: the key and query lengths come from the "
                                  "workload (--seq-len, --kv-len), not a size override")
        if name not in known:
            raise SparseMaskError(f"size {name}: {cascade.name or 'the cascade'} has no "
                                  f"parameter or tile size {name}"
                                  + (f"; expected one of {', '.join(sorted(known))}"
                                     if known else ""))
        sizes[name] = value
    sizes["M"], sizes["P"] = key_len, query_len
    for partition in cascade.partitions:
        if partition.rank not in ("M", "P"):
            continue
        tile = kv_tile if partition.rank == "M" else q_tile
        inner = []
        for part, size in zip(partition.parts[1:], partition.sizes):
            value = size if isinstance(size, int) else sizes.get(size)
            if value is None and size == part:
                value = tile
            if value is None:
                raise SparseMaskError(f"partition '{partition}': size {size} has no value; "
                                      f"give it, e.g. --size {size}=64")
            value = integer(part, value)
            if value < 1:
                raise SparseMaskError(f"partition '{partition}': tile size {part} = {value}; "
                                      "expected a positive integer")
            sizes[part] = value
            inner.append(value)
        sizes[partition.parts[0]] = -(-sizes[partition.rank] // math.prod(inner))
    return sizes


def integer(name: str, value) -> int:
    """``value`` of size ``name`` as an int, else :class:`SparseMaskError` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value != int(value):
        raise SparseMaskError(f"size {name} = {value!r:.40}: the mask uses it, so it must be "
                              "an integer")
    return int(value)


def cascade_mask(cascade: ir.Cascade, sizes: Mapping[str, int]) -> Mask | None:
    """The normalized mask of ``cascade`` (None when no Einsum has a ``where``).

    Every masked Einsum must iterate the whole key and query indices; several masked Einsums
    must carry the same mask.  Raises :class:`SparseMaskError` naming the Einsum otherwise.
    """
    found: list[Mask] = []
    for einsum in cascade.einsums:
        if einsum.condition is None:
            continue
        variables = {**_axis(cascade, einsum, "M", sizes), **_axis(cascade, einsum, "P", sizes)}
        text = str(einsum.condition)
        for name in ir.condition_variables(einsum.condition):
            if name not in variables:
                raise SparseMaskError(
                    f"mask of {einsum.name} '{text}' uses {name}: the analysis counts masks "
                    "over the key m and query p (or the parts of their partitions)")
        converter = _Converter(variables, sizes, text)
        tree = converter.node(einsum.condition)
        mask = Mask(tree, sizes["M"], sizes["P"], text, einsum.name)
        if found and mask.tree != found[0].tree:
            raise SparseMaskError(f"Einsums {found[0].einsum} and {einsum.name} have different "
                                  f"masks ('{found[0].text}', '{text}'); the analysis takes one")
        found.append(mask)
    return found[0] if found else None


def materialized_mask(cascade: ir.Cascade, sizes: Mapping[str, int]) -> np.ndarray:
    """The (P, M) boolean mask of ``cascade``'s ``where``, point by point (all True without
    one): the brute-force oracle of the counts above, for small shapes only.  A partition's
    part is the digit of its rank's index (``m1 = m // M0``, ``m0 = m % M0``)."""
    P, M = int(sizes["P"]), int(sizes["M"])
    einsum = next((e for e in cascade.einsums if e.condition is not None), None)
    if einsum is None:
        return np.ones((P, M), dtype=bool)
    grids = {"p": np.arange(P)[:, None], "m": np.arange(M)[None, :]}
    for partition in cascade.partitions:
        whole = grids[partition.rank.lower()]
        for position, part in enumerate(partition.parts):
            inner = math.prod(sizes[p] for p in partition.parts[position + 1:])
            value = whole // inner
            grids[part.lower()] = value if position == 0 else value % sizes[part]
    return np.broadcast_to(condition_mask(einsum.condition, sizes, grids), (P, M)).astype(bool)


def materialized_tile_counts(mask: np.ndarray, q_tile: int, kv_tile: int) -> dict:
    """Tile counts of a materialized (P, M) mask, block by block: visited (an attended pair),
    partial (also a masked pair), the busiest Q tile, attended pairs, dense tiles and the
    tile map (0 skipped, 1 partial, 2 full) — the brute-force oracle of :mod:`tiles`."""
    P, M = mask.shape
    rows, columns = -(-P // q_tile), -(-M // kv_tile)
    true = np.zeros((rows * q_tile, columns * kv_tile), dtype=np.int64)
    true[:P, :M] = mask
    points = np.zeros_like(true)
    points[:P, :M] = 1
    true = true.reshape(rows, q_tile, columns, kv_tile).sum(axis=(1, 3))
    points = points.reshape(rows, q_tile, columns, kv_tile).sum(axis=(1, 3))
    visited, partial = true > 0, (true > 0) & (true < points)
    return {"visited_tiles": int(visited.sum()), "partial_tiles": int(partial.sum()),
            "worst_q_tile_kv_tiles": int(visited.sum(axis=1).max()),
            "attended_pairs": int(mask.sum()), "dense_tiles": rows * columns,
            "grid": np.where(~visited, 0, np.where(partial, 1, 2))}


def _axis(cascade: ir.Cascade, einsum: ir.Einsum, rank: str,
          sizes: Mapping[str, int]) -> dict[str, Feature]:
    """Variables of ``einsum`` that walk ``rank`` (M or P) and the feature each one is."""
    side = rank.lower()
    partition = next((p for p in cascade.partitions if p.rank == rank), None)
    parts = [p.lower() for p in partition.parts] if partition else []
    walked = [v for v in einsum.variables if v == side or v in parts]
    role = "key" if rank == "M" else "query"
    if not walked:
        raise SparseMaskError(f"mask of {einsum.name} '{einsum.condition}': {einsum.name} does "
                              f"not iterate the {role} index {side}; the analysis counts masks "
                              "over (m, p)")
    if side in walked and len(walked) > 1:
        raise SparseMaskError(f"{einsum.name} iterates both {side} and its parts "
                              f"{', '.join(v for v in walked if v != side)}")
    if side in walked:
        return {side: Feature(side)}
    missing = [v for v in parts if v not in walked]
    if missing:
        raise SparseMaskError(f"mask of {einsum.name} '{einsum.condition}': {einsum.name} "
                              f"iterates {', '.join(walked)} but not {', '.join(missing)}, so "
                              f"its {role} index is not all of {side}; the analysis counts "
                              "masks over (m, p)")
    features = {}
    for position, part in enumerate(partition.parts):
        inner = math.prod(sizes[p] for p in partition.parts[position + 1:])
        modulus = None if position == 0 else sizes[part]
        features[part.lower()] = Feature(side, inner, modulus)
    return features


class _Converter:
    """ir.Condition -> :data:`Node` with the sizes bound."""

    def __init__(self, variables: Mapping[str, Feature], sizes: Mapping[str, int], text: str):
        self.variables = variables
        self.sizes = sizes
        self.text = text

    def node(self, condition) -> Node:
        if isinstance(condition, ir.BoolOp):
            kind = And if condition.op == "and" else Or
            return kind((self.node(condition.left), self.node(condition.right)))
        if isinstance(condition, ir.Not):
            return Not(self.node(condition.operand))
        if isinstance(condition, ir.IndexComparison):
            return self.comparison(condition.op, self.terms(condition.left),
                                   self.terms(condition.right))
        if isinstance(condition, ir.Predicate):
            return self.predicate(condition)
        raise SparseMaskError(f"mask '{self.text}': unsupported condition {condition}")

    def terms(self, index: Affine) -> tuple[list[tuple[int, Feature]], int]:
        """(feature terms, constant) of an affine index."""
        terms, const = [], 0
        for term in index.terms:
            scale = term.coefficient
            for size in term.sizes:
                if size not in self.sizes:
                    raise SparseMaskError(f"mask '{self.text}': size {size} has no value; give "
                                          f"it, e.g. --size {size}=64")
                scale *= integer(size, self.sizes[size])
            if term.variable is None:
                const += scale
            else:
                terms.append((scale, self.variables[term.variable]))
        return terms, const

    def comparison(self, op: str, left, right) -> Node:
        (left_terms, left_const), (right_terms, right_const) = left, right
        difference = left_terms + [(-c, f) for c, f in right_terms]
        const = left_const - right_const
        if op in (">", ">="):
            difference = [(-c, f) for c, f in difference]
            const = -const
        if op in ("<", ">"):
            const += 1
        normal = {"<": "<=", ">": "<=", ">=": "<=", "<=": "<="}.get(op, op)
        return atom(difference, const, normal, self.sizes["M"], self.sizes["P"], self.text)

    def constant(self, index: Affine, name: str, predicate: str) -> int:
        terms, const = self.terms(index)
        if terms:
            raise SparseMaskError(f"mask '{self.text}': {predicate}() argument {name} = {index} "
                                  "must not depend on m or p")
        return const

    def predicate(self, call: ir.Predicate) -> Node:
        spec = PREDICATES.get(call.name)
        if spec is None:
            raise SparseMaskError(f"mask '{self.text}': unknown predicate {call.name}()")
        scalars = [self.constant(a, spec.arg_names[i], call.name)
                   for i, a in enumerate(call.args) if i >= spec.variable_args]
        if call.name == "within":
            a, b = self.terms(call.args[0]), self.terms(call.args[1])
            radius = self.constant(call.args[2], "radius", "within")
            shifted = (b[0], b[1] + radius)
            return And((self.comparison("<=", a, shifted),
                        self.comparison("<=", b, (a[0], a[1] + radius))))
        if call.name == "neighborhood":
            from einsim.sparsity.neighborhood import expand

            check_predicate_args("neighborhood", [None, None, *scalars])
            query, key = self.terms(call.args[0]), self.terms(call.args[1])
            return expand(self._exactly(query, QUERY, call), self._exactly(key, KEY, call),
                          *scalars, key_len=self.sizes["M"], query_len=self.sizes["P"],
                          where=self.text)
        raise SparseMaskError(f"mask '{self.text}': the analysis has no rule for "
                              f"{call.name}()")

    def _exactly(self, index, side: str, call: ir.Predicate) -> Feature:
        terms, const = index
        extent = self.sizes["M" if side == KEY else "P"]
        merged = merge(terms, extent)
        if const or merged != merge([(1, Feature(side))], extent):
            role = "query" if side == QUERY else "key"
            raise SparseMaskError(f"mask '{self.text}': {call.name}() needs its {role} argument "
                                  f"to be {side} (or {side}1*{side.upper()}0 + {side}0), got "
                                  f"{index_text(index)}")
        return Feature(side)


def index_text(index) -> str:
    terms, const = index
    parts = [f"{c}*{f}" for c, f in terms] + ([str(const)] if const or not terms else [])
    return " + ".join(parts)
