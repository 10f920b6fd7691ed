"""Symbolic analyses: op counts per Einsum and the on-chip footprint a pass structure forces.

Everything is a sympy expression of rank sizes (``M``, ``P``, ``E``, tile sizes such as ``M0``),
so "the buffer grows with M" is a symbolic fact: :func:`buffer_growth` reads the degree in M.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from einsim.language import ir
from einsim.language.functions import BINARY_OPERATORS, MAP_FUNCTIONS, REDUCE_OPERATORS
from einsim.analysis.graph import recurrences
from einsim.analysis.passes import normalize_rank, pass_assignment, partition_root, rank_leaves
from einsim.language.sizes import axis_rank


def size_symbol(rank: str) -> sympy.Symbol:
    return sympy.Symbol(rank, positive=True, integer=True)


def iteration_points(einsum: ir.Einsum) -> sympy.Expr:
    """Points of the Einsum's (unmasked) iteration space."""
    return sympy.Mul(*(size_symbol(ir.rank_of(v)) for v in einsum.variables))


def op_counts(einsum: ir.Einsum) -> dict[str, sympy.Expr]:
    """Operations by type over the dense iteration space (filters are not subtracted).

    A product reduced by ``sum`` counts as ``mac``; each map operator or function counts once
    per point; a reduction combines once per point.
    """
    points = iteration_points(einsum)
    counts: dict[str, sympy.Expr] = {}

    def add(kind: str, amount=1) -> None:
        counts[kind] = counts.get(kind, 0) + amount * points

    expression = einsum.expression
    fused = bool(einsum.reduced) and einsum.reduce_op == "sum" and \
        isinstance(expression, ir.BinaryOp) and expression.op == "*"
    for node in ir.walk(expression):
        if isinstance(node, ir.BinaryOp):
            if fused and node is expression:
                add("mac")
            else:
                add(BINARY_OPERATORS[node.op][1])
        elif isinstance(node, ir.Call):
            add(MAP_FUNCTIONS[node.function].operation)
        elif isinstance(node, ir.Compare):
            add("compare")
    if einsum.reduced and not fused:
        add(REDUCE_OPERATORS[einsum.reduce_op].operation)
    return counts


def tensor_elements(cascade: ir.Cascade, tensor: str, drop: frozenset[str] = frozenset()
                    ) -> sympy.Expr:
    """Elements of a computed tensor (axes whose rank is in ``drop`` are left out)."""
    einsum = cascade.producers[tensor]
    recurrence = recurrences(cascade).get(tensor)
    total = sympy.Integer(1)
    for axis, index in enumerate(einsum.output.indices):
        rank = axis_rank(index, cascade)
        if rank is None and index.variables:
            rank = ir.rank_of(index.variables[0])
        if rank is None or rank in drop:
            continue
        extent = size_symbol(rank)
        if recurrence is not None and axis == recurrence.axis:
            if rank in drop:
                continue
            extent = extent + 1
        total *= extent
    return total


@dataclass(frozen=True)
class Footprint:
    """What must stay on chip for a rank's pass structure."""

    rank: str
    passes: int
    buffered: dict[str, sympy.Expr]
    recurrence_state: dict[str, sympy.Expr]
    words: sympy.Expr

    def bytes(self, word_bytes: int = 2) -> sympy.Expr:
        return sympy.expand(self.words * word_bytes)


def footprint(cascade: ir.Cascade, rank: str) -> Footprint:
    """Live on-chip words between passes over ``rank``, as a sympy expression.

    Tensors produced before pass k and read by a traversal in pass k must be buffered (or
    spilled and re-read); recurrences over the rank carry one iterate.  Axes of outer
    partitions of the same rank (``M1`` when analysing ``m0``) are iterated outside the
    passes and do not count.
    """
    rank = normalize_rank(cascade, rank)
    assignment = pass_assignment(cascade, rank)
    root = partition_root(cascade, rank)
    outside = frozenset(rank_leaves(cascade, root) - rank_leaves(cascade, rank))
    family = rank_leaves(cascade, root)
    carried = {name for name, r in recurrences(cascade).items()
               if ir.rank_of(r.variable) in family}
    count = max((p.pass_number for p in assignment.values() if p.traversal), default=0)
    # A tensor is live from when it is ready until the last Einsum that reads it later runs
    # (times: k = during pass k, k + 0.5 = after it).
    last_use: dict[str, float] = {}
    for consumer in cascade.einsums:
        info = assignment[consumer.name]
        when = float(info.pass_number) if info.traversal else info.start
        for access in consumer.inputs:
            producer = assignment.get(access.tensor)
            if producer is not None and access.tensor not in carried and when > producer.ready:
                last_use[access.tensor] = max(last_use.get(access.tensor, 0.0), when)
    moments = sorted({assignment[name].ready for name in last_use})
    worst: dict[str, sympy.Expr] = {}
    for moment in moments:
        live = {name: tensor_elements(cascade, name, outside) for name, end in last_use.items()
                if assignment[name].ready <= moment < end}
        if _size_key(sum(live.values())) > _size_key(sum(worst.values())):
            worst = live
    state = {}
    for name in carried:
        recurrence = recurrences(cascade)[name]
        drop = outside | {ir.rank_of(recurrence.variable)}
        state[name] = tensor_elements(cascade, name, frozenset(drop))
    words = sympy.Add(*worst.values(), *state.values())
    return Footprint(rank.lower(), count, worst, state, words)


def _size_key(expression) -> float:
    values = {s: 1024 for s in sympy.sympify(expression).free_symbols}
    return float(sympy.sympify(expression).subs(values))


def buffer_growth(cascade: ir.Cascade, rank: str, words: sympy.Expr | None = None) -> str:
    """Big-O growth of the footprint in the rank's full size, e.g. ``O(M)`` or ``O(1)``."""
    rank = normalize_rank(cascade, rank)
    root = partition_root(cascade, rank)
    expression = footprint(cascade, rank).words if words is None else words
    substitutions = {}
    for partition in cascade.partitions:
        if partition_root(cascade, partition.rank) == root:
            inner = sympy.Mul(*(size_symbol(p) for p in partition.parts[1:]))
            substitutions[size_symbol(partition.parts[0])] = size_symbol(partition.rank) / inner
    expression = sympy.sympify(expression).subs(substitutions)
    symbol = size_symbol(root)
    if expression == 0:
        return "O(1)"
    degree = sympy.Poly(sympy.expand(expression), symbol).degree() \
        if expression.has(symbol) else 0
    if degree == 0:
        return "O(1)"
    return f"O({root})" if degree == 1 else f"O({root}^{degree})"
