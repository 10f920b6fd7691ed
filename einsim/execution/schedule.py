"""Execution schedules: the order in which the executor evaluates a cascade's Einsums.

A schedule is a list of steps.  :class:`Whole` evaluates one Einsum over its full iteration
space; :class:`Loop` steps one rank variable and evaluates its member Einsums at each value with
that variable fixed (bodies stay vectorized over every other rank).

* :func:`untiled_schedule` loops only where recurrences force it (strongly connected Einsums
  iterate together).
* :func:`tiled_schedule` loops over a partitioned rank variable, one loop per *pass*, so a
  1-pass cascade streams tile by tile and never holds the M x P matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from einsim.language import ir
from einsim.errors import ScheduleError
from einsim.analysis.graph import dependency_graph, einsum_order, recurrences
from einsim.analysis.passes import pass_assignment


@dataclass(frozen=True)
class Whole:
    einsum: str


@dataclass(frozen=True)
class Loop:
    """Step ``variable`` over its range; evaluate ``members`` (in order) at each value."""

    variable: str
    members: tuple[str, ...]
    pass_number: int = 0


Step = Whole | Loop


def untiled_schedule(cascade: ir.Cascade) -> list[Step]:
    """Topological order of strongly connected components; recurrences become loops."""
    return _component_steps(cascade, dependency_graph(cascade), [e.name for e in cascade.einsums])


def _component_steps(cascade: ir.Cascade, graph: nx.DiGraph, names: list[str]) -> list[Step]:
    """Steps that evaluate ``names`` whole, looping the strongly connected ones together."""
    computed = graph.subgraph(names)
    condensed = nx.condensation(computed)
    position = {e.name: i for i, e in enumerate(cascade.einsums)}
    order = nx.lexicographical_topological_sort(
        condensed, key=lambda n: min(position[m] for m in condensed.nodes[n]["members"]))
    recurrent = recurrences(cascade)
    steps: list[Step] = []
    for node in order:
        members = condensed.nodes[node]["members"]
        only = next(iter(members))
        if len(members) == 1 and not computed.has_edge(only, only) and only not in recurrent:
            steps.append(Whole(only))
            continue
        variables = {recurrent[m].variable for m in members if m in recurrent}
        if len(variables) != 1:
            first = cascade.producers[min(members, key=position.get)]
            raise ScheduleError(
                f"Einsums {', '.join(sorted(members))} depend on each other but "
                f"{'step different variables' if variables else 'no recurrence breaks the cycle'}",
                first.line, first.column)
        variable = variables.pop()
        for member in members:
            if variable not in cascade.producers[member].variables:
                einsum = cascade.producers[member]
                raise ScheduleError(
                    f"{member} is part of the recurrence over {variable} but does not iterate it",
                    einsum.line, einsum.column)
        steps.append(Loop(variable, tuple(einsum_order(cascade, graph, members))))
    return steps


def tiled_schedule(cascade: ir.Cascade, variable: str) -> list[Step]:
    """One loop over ``variable`` per pass; Einsums not iterating it run between the loops."""
    if variable not in cascade.rank_variables:
        raise ScheduleError(f"cannot tile along {variable!r}: no Einsum iterates it; expected one "
                            f"of {', '.join(cascade.rank_variables)}")
    graph = dependency_graph(cascade)
    recurrent = recurrences(cascade)
    for name, recurrence in recurrent.items():
        if recurrence.variable != variable and _iterates(cascade.producers[name], variable):
            einsum = cascade.producers[name]
            raise ScheduleError(
                f"cannot tile along {variable}: recurrence {name} steps {recurrence.variable} "
                "inside the tile loop", einsum.line, einsum.column)
    assignment = pass_assignment(cascade, variable.upper())
    # Loop k holds the traversals of pass k; a non-traversal runs after the pass its inputs need.
    slots: dict[float, list[str]] = {}
    for einsum in cascade.einsums:
        info = assignment[einsum.name]
        slot = float(info.pass_number) if info.traversal else _gap(info.start)
        slots.setdefault(slot, []).append(einsum.name)
    steps: list[Step] = []
    for slot in sorted(slots):
        if slot.is_integer():
            order = einsum_order(cascade, graph, slots[slot])
            steps.append(Loop(variable, tuple(order), int(slot)))
        else:
            steps.extend(_component_steps(cascade, graph, slots[slot]))
    return steps


def _gap(start: float) -> float:
    """Slot of a non-traversal: before loop k+1 when its inputs are complete after pass k."""
    return float(int(start)) + 0.5


def _iterates(einsum: ir.Einsum, variable: str) -> bool:
    return variable in einsum.variables
