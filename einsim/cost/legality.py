"""Dependency and pass legality of a loop tree (DESIGN.md §6 "Passes").

A reader of a *complete* reduction over ``v`` (directly or through element-wise reads) must
not share a temporal loop over ``v`` with the Einsum that reduces it: within one iteration of
that loop the reduction has not finished.  A recurrence's final iterate (``RD[M1, p]``) is a
complete reduction over the recurrence variable.  In a ``sequence``, a producer's branch must
come before its readers' (reads of an earlier iterate of a recurrence excepted); a
``pipeline`` stages its branches across iterations, so any order is allowed there.
"""

from __future__ import annotations

from einsim.language import ir
from einsim.cost.tree import Branch, LeafPath, Loop
from einsim.analysis.graph import read_kind, recurrences
from einsim.errors import MappingError


def check_legality(cascade: ir.Cascade, paths: list[LeafPath]) -> None:
    by_einsum = {leaf.einsum: leaf for leaf in paths}
    complete = _complete_reductions(cascade)
    recurrent = recurrences(cascade)
    for reader, leaf in by_einsum.items():
        for producer, variables in complete.get(reader, {}).items():
            other = by_einsum.get(producer)
            if other is None:
                continue
            shared = _shared_loops(leaf, other)
            for loop in shared:
                if loop.variable in variables:
                    raise MappingError(
                        f"{loop.path}: {reader} reads the complete reduction of {producer} over "
                        f"{loop.variable}, but both sit under this loop over {loop.variable}: "
                        f"{reader} would read it before it completes (the cascade needs another"
                        f" pass; put them in separate branches of a sequence)")
        einsum = cascade.producers[reader]
        for access in einsum.inputs:
            if access.tensor not in by_einsum or access.tensor == reader:
                continue
            if read_kind(access, einsum, recurrent.get(access.tensor)) == "carried":
                continue
            _check_order(by_einsum[access.tensor], leaf, access.tensor, reader)


def _complete_reductions(cascade: ir.Cascade) -> dict[str, dict[str, set[str]]]:
    """Einsum -> {producer: variables whose complete reduction it (transitively) reads}."""
    recurrent = recurrences(cascade)
    direct: dict[str, dict[str, set[str]]] = {}
    for einsum in cascade.einsums:
        table: dict[str, set[str]] = {}
        for access in einsum.inputs:
            producer = cascade.producers.get(access.tensor)
            if producer is None or producer is einsum:
                continue
            kind = read_kind(access, einsum, recurrent.get(access.tensor))
            if kind == "carried":
                continue
            reduced = set(producer.reduced)
            if kind == "final":
                reduced.add(recurrent[access.tensor].variable)
            if reduced:
                table.setdefault(producer.name, set()).update(reduced)
            table.setdefault(producer.name, set())
        direct[einsum.name] = table
    closed: dict[str, dict[str, set[str]]] = {}

    def close(name: str, seen: frozenset) -> dict[str, set[str]]:
        if name in closed:
            return closed[name]
        result: dict[str, set[str]] = {}
        for producer, variables in direct.get(name, {}).items():
            if variables:
                result.setdefault(producer, set()).update(variables)
            if producer in seen:
                continue
            for upstream, upstream_vars in close(producer, seen | {name}).items():
                result.setdefault(upstream, set()).update(upstream_vars)
        closed[name] = result
        return result

    for einsum in cascade.einsums:
        close(einsum.name, frozenset())
    return {k: {p: v for p, v in table.items() if v} for k, table in closed.items()}


def _shared_loops(a: LeafPath, b: LeafPath) -> list[Loop]:
    shared = []
    for x, y in zip(a.nodes, b.nodes):
        if x is not y:
            break
        if isinstance(x, Loop):
            shared.append(x)
    return shared


def _check_order(producer: LeafPath, reader: LeafPath, tensor: str, name: str) -> None:
    for (path_a, k_a), (path_b, k_b) in zip(producer.branch_positions, reader.branch_positions):
        if path_a != path_b:
            return
        if k_a != k_b:
            node = next(n for n in reader.nodes if isinstance(n, Branch) and n.path == path_a)
            if node.kind == "sequence" and k_a > k_b:
                raise MappingError(f"{node.path}: {name} (branch {k_b}) reads {tensor}, which "
                                   f"branch {k_a} of this sequence produces later")
            return
