"""The cascade as the cost engine sees it: per Einsum, resolved accesses and iteration sizes.

Pure copies such as ``BK[e, m1, m0] = K[e, m1*M0 + m0]`` are *views*: they move no data of
their own, so a read of ``BK`` is a read of ``K`` through the composed index, and a keep of
``BK`` is a keep of ``K``.  A recurrence tensor's stepped axis is *carried*: its tile does not
grow with the recurrence rank, and every step reads and writes one iterate.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy

from einsim.language import ir
from einsim.language.affine import Affine
from einsim.cost.expressions import symbol
from einsim.analysis.graph import read_kind, recurrences


@dataclass(frozen=True)
class Axis:
    """One index of an access: ``sum(coefficient * variable) + constant``."""

    terms: tuple[tuple[sympy.Expr, str], ...]

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(v for _, v in self.terms)


@dataclass(frozen=True)
class TensorAccess:
    tensor: str
    axes: tuple[Axis, ...]
    kind: str  # "element", "carried" (earlier iterate) or "final" (last iterate)

    @property
    def variables(self) -> frozenset[str]:
        return frozenset().union(*(a.variables for a in self.axes)) if self.axes else frozenset()


@dataclass(frozen=True)
class EinsumView:
    name: str
    einsum: ir.Einsum
    reads: tuple[TensorAccess, ...]
    write: TensorAccess
    variables: tuple[str, ...]
    reduced: tuple[str, ...]


def _axis(index: Affine) -> Axis:
    terms = []
    for term in index.terms:
        if term.variable is None:
            continue
        coefficient = sympy.Integer(term.coefficient) * sympy.Mul(*(symbol(s) for s in term.sizes))
        terms.append((coefficient, term.variable))
    return Axis(tuple(terms))


def _compose(source: Axis, outer: dict[str, Axis]) -> Axis:
    """``source`` with each of its variables replaced by ``outer[variable]``."""
    terms = []
    for coefficient, variable in source.terms:
        replacement = outer.get(variable)
        if replacement is None:
            terms.append((coefficient, variable))
        else:
            terms += [(coefficient * c, v) for c, v in replacement.terms]
    return Axis(tuple(terms))


class CascadeView:
    """Resolved accesses of every non-view Einsum, and the views themselves."""

    def __init__(self, cascade: ir.Cascade, copies: frozenset[str] = frozenset()):
        """``copies``: access-only Einsums a tree runs as leaves.  They move data (a token
        permute), so they are not views; an access-only Einsum only kept is a view."""
        self.cascade = cascade
        self.recurrences = recurrences(cascade)
        self.views: dict[str, tuple[str, tuple[Axis, ...], tuple[str, ...]]] = {}
        for einsum in cascade.einsums:
            outputs = [i.plain_variable() for i in einsum.output.indices]
            if einsum.name not in copies and isinstance(einsum.expression, ir.Access) \
                    and einsum.condition is None \
                    and not einsum.reduced and None not in outputs \
                    and len(set(outputs)) == len(outputs) \
                    and einsum.expression.tensor != einsum.name:
                source = einsum.expression
                self.views[einsum.name] = (source.tensor, tuple(_axis(i) for i in source.indices),
                                           tuple(outputs))

    def source(self, tensor: str) -> str:
        """The tensor whose data a (possibly view) tensor name holds."""
        while tensor in self.views:
            tensor = self.views[tensor][0]
        return tensor

    def resolve(self, access: ir.Access, consumer: ir.Einsum) -> TensorAccess:
        kind = read_kind(access, consumer, self.recurrences.get(access.tensor))
        axes = tuple(_axis(i) for i in access.indices)
        tensor = access.tensor
        while tensor in self.views:
            tensor, source_axes, outputs = self.views[tensor]
            axes = tuple(_compose(a, dict(zip(outputs, axes))) for a in source_axes)
        return TensorAccess(tensor, axes, kind)

    @cached_property
    def einsums(self) -> dict[str, EinsumView]:
        table = {}
        for einsum in self.cascade.einsums:
            if einsum.name in self.views:
                continue
            reads = tuple(self.resolve(a, einsum) for a in einsum.inputs)
            write = TensorAccess(einsum.name, tuple(_axis(i) for i in einsum.output.indices),
                                 "element")
            table[einsum.name] = EinsumView(einsum.name, einsum, reads, write,
                                            einsum.variables, einsum.reduced)
        return table

    def carried_axis(self, tensor: str) -> int | None:
        recurrence = self.recurrences.get(tensor)
        return None if recurrence is None else recurrence.axis

    def carried_variable(self, tensor: str) -> str | None:
        recurrence = self.recurrences.get(tensor)
        return None if recurrence is None else recurrence.variable

    def is_input(self, tensor: str) -> bool:
        return tensor in self.cascade.input_names

    def known_tensor(self, tensor: str) -> bool:
        return tensor in self.cascade.input_names or tensor in self.cascade.producers
