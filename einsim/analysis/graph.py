"""The dependency graph of a cascade (networkx): tensors as nodes, reads as edges.

An edge ``A -> B`` means the Einsum writing ``B`` reads ``A``.  Edge attributes say how:
``loop_carried`` (a recurrence reading an earlier iterate, e.g. ``RD[m1, p]`` when ``RD`` is
written at ``m1 + 1``) and ``final`` (a read of a recurrence's last iterate, e.g. ``RD[M1, p]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from einsim.language import ir
from einsim.errors import ScheduleError
from einsim.language.semantics import recurrence_axis


@dataclass(frozen=True)
class Recurrence:
    """A recurrence tensor: the axis and variable it steps, and its write offset."""

    tensor: str
    axis: int
    variable: str
    write_offset: int


def recurrences(cascade: ir.Cascade) -> dict[str, Recurrence]:
    """Every recurrence tensor of the cascade, keyed by name."""
    table = {}
    for einsum in cascade.einsums:
        found = recurrence_axis(einsum)
        if found is not None:
            table[einsum.name] = Recurrence(einsum.name, *found)
    return table


def read_kind(access: ir.Access, consumer: ir.Einsum, recurrence: Recurrence | None) -> str:
    """``'carried'``, ``'final'`` or ``'element'`` for one read of a (possibly recurrent) tensor."""
    if recurrence is None:
        return "element"
    index = access.indices[recurrence.axis]
    if not index.variables:
        return "final"
    coefficient, rest = index.split_variable(recurrence.variable)
    if coefficient == 1 and not rest.variables and not rest.size_symbols \
            and recurrence.variable in consumer.variables:
        return "carried" if rest.offset({}) < recurrence.write_offset else "element"
    return "element"


def dependency_graph(cascade: ir.Cascade) -> nx.DiGraph:
    """The tensor-level dependency graph with ``kind``, ``einsum`` and edge read attributes."""
    graph = nx.DiGraph()
    recurrent = recurrences(cascade)
    for name in cascade.input_names:
        graph.add_node(name, kind="input")
    for einsum in cascade.einsums:
        graph.add_node(einsum.name, kind="einsum", einsum=einsum,
                       recurrence=recurrent.get(einsum.name))
    for einsum in cascade.einsums:
        for access in einsum.inputs:
            kind = read_kind(access, einsum, recurrent.get(access.tensor))
            if graph.has_edge(access.tensor, einsum.name):
                data = graph.edges[access.tensor, einsum.name]
                data["kinds"] = data["kinds"] | {kind}
                data["accesses"] = data["accesses"] + (access,)
            else:
                graph.add_edge(access.tensor, einsum.name, kinds=frozenset({kind}),
                               accesses=(access,))
    for u, v, data in graph.edges(data=True):
        data["loop_carried"] = data["kinds"] == {"carried"}
        data["final"] = "final" in data["kinds"]
    return graph


def einsum_order(cascade: ir.Cascade, graph: nx.DiGraph, members) -> list[str]:
    """Topological order of ``members`` ignoring loop-carried edges (one loop iteration)."""
    sub = nx.DiGraph()
    sub.add_nodes_from(members)
    for u, v, data in graph.subgraph(members).edges(data=True):
        if not data["loop_carried"]:
            sub.add_edge(u, v)
    try:
        order = list(nx.lexicographical_topological_sort(sub, key=_text_position(cascade)))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(sub)
        names = " -> ".join(u for u, _ in cycle)
        first = cascade.producers[cycle[0][0]]
        raise ScheduleError(f"cyclic dependency {names} that no recurrence breaks",
                            first.line, first.column) from None
    return order


def _text_position(cascade: ir.Cascade):
    position = {e.name: i for i, e in enumerate(cascade.einsums)}
    return lambda name: position.get(name, -1)
