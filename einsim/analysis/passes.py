"""Passes: how many times a cascade must traverse every element of a rank's fibers.

An Einsum whose iteration space covers rank R (all of R's partition leaves) is a *traversal*
of R.  A value that depends on a complete reduction over R is available only after the
traversal producing it ends; a traversal consuming it runs in a later pass.  Reads of a
recurrence's previous iterate are loop-carried, not pass boundaries; reads of its *final*
iterate (``RD[M1, p]``) wait for the recurrence to finish.

Availability is tracked as a number: ``k`` means "streamed during pass k", ``k + 0.5`` means
"complete after pass k".  Inputs are ``0.5``; a traversal starting at ``s`` runs in pass
``ceil(s)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from einsim.language import ir
from einsim.errors import UnknownRankError
from einsim.analysis.graph import dependency_graph, recurrences


@dataclass(frozen=True)
class PassInfo:
    """Where one Einsum sits in the pass structure of a rank."""

    traversal: bool
    pass_number: int
    start: float
    ready: float


def rank_leaves(cascade: ir.Cascade, rank: str) -> frozenset[str]:
    """The unpartitioned ranks under ``rank`` (``M`` → {M1, M0} when M is partitioned)."""
    for partition in cascade.partitions:
        if partition.rank == rank:
            return frozenset().union(*(rank_leaves(cascade, p) for p in partition.parts))
    return frozenset({rank})


def partition_root(cascade: ir.Cascade, rank: str) -> str:
    for partition in cascade.partitions:
        if rank in partition.parts:
            return partition_root(cascade, partition.rank)
    return rank


def _leaves_of(cascade: ir.Cascade, variables) -> frozenset[str]:
    return frozenset().union(*(rank_leaves(cascade, ir.rank_of(v)) for v in variables)) \
        if variables else frozenset()


def normalize_rank(cascade: ir.Cascade, rank: str) -> str:
    """Accept ``m``/``M``; raise :class:`UnknownRankError` for a rank the cascade never uses."""
    name = rank.upper()
    used = _leaves_of(cascade, cascade.rank_variables)
    if not rank_leaves(cascade, name) & used:
        known = sorted({ir.rank_of(v).lower() for v in cascade.rank_variables}
                       | {p.rank.lower() for p in cascade.partitions})
        raise UnknownRankError(f"rank {rank!r} does not occur in the cascade; expected one of "
                               f"{', '.join(known)}")
    return name


def pass_assignment(cascade: ir.Cascade, rank: str) -> dict[str, PassInfo]:
    """For every Einsum: is it a traversal of ``rank``, in which pass, when its output is ready."""
    rank = normalize_rank(cascade, rank)
    target = rank_leaves(cascade, rank)
    graph = dependency_graph(cascade)
    recurrent = recurrences(cascade)
    ready: dict[str, float] = {name: 0.5 for name in cascade.input_names}
    info: dict[str, PassInfo] = {}
    for einsum in cascade.einsums:
        ready[einsum.name] = 0.5
    changed = True
    while changed:  # a fixpoint: recurrences make the graph cyclic; values only grow
        changed = False
        for einsum in cascade.einsums:
            start = 0.5
            for access in einsum.inputs:
                value = ready[access.tensor]
                edge = graph.edges[access.tensor, einsum.name]
                recurrence = recurrent.get(access.tensor)
                if edge["final"] and recurrence is not None and \
                        rank_leaves(cascade, ir.rank_of(recurrence.variable)) <= target:
                    value = math.floor(value) + 0.5
                start = max(start, value)
            new = _place(cascade, einsum, start, target)
            if info.get(einsum.name) != new:
                info[einsum.name] = new
                if new.ready != ready[einsum.name]:
                    ready[einsum.name] = new.ready
                    changed = True
    return info


def _place(cascade: ir.Cascade, einsum: ir.Einsum, start: float, target) -> PassInfo:
    iterated = _leaves_of(cascade, einsum.variables)
    reduces = bool(_leaves_of(cascade, einsum.reduced) & target)
    keeps = bool(_leaves_of(cascade, einsum.output.variables) & target)
    if target <= iterated:
        number = math.ceil(start)
        ready = number + 0.5 if reduces and not keeps else float(number)
        return PassInfo(True, number, start, ready)
    ready = math.floor(start) + 0.5 if reduces else start
    return PassInfo(False, 0, start, ready)


def passes(cascade: ir.Cascade, rank: str) -> int:
    """Number of passes ``cascade`` needs over ``rank``.

    ``"m"`` means the whole rank M including its partitions (m1, m0); ``"m0"`` only that part.
    For FuseMax: ``passes(c, "m") == 1`` and ``passes(c, "m0") == 2``.
    """
    assignment = pass_assignment(cascade, rank)
    return max((p.pass_number for p in assignment.values() if p.traversal), default=0)
