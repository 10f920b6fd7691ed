"""Recognising a softmax-like cascade in the IR, whatever its tensors are called.

The pattern, over a rank R (``m``, or its partition ``m1, m0``):

* an *exponential* ``E[...] = exp(x)`` that iterates R and keeps it;
* a *normaliser* ``N = max[R] y`` (or ``min``) that reduces all of R, read by the exponent
  linearly and with the opposite coefficient of ``y``: ``x = c * (y - N) + rest`` (softmax
  ``exp(y - N)``, softmin ``exp(N - y)``, scaled ``exp((y - N) * s)``, biased, masked...);
* the *family* of ``E``: ``E`` and the Einsums multiplying a member element-wise by values not
  computed from ``N`` (``SPD = SLD * PRM``);
* *accumulators*: sums over all of R of a product with one member (the denominator ``sum E``,
  the numerator ``sum E * V``);
* optionally *divisions* ``A = E / D`` by an accumulator ``D``, each consumed only by sums over
  R of a product with ``A`` (the 3-pass form), or sums dividing inside (``sum E * V / D``).

Only the structure is matched: which Einsum reduces with max/min over R, which applies exp to
what, which sums, which divides.  Anything else reading these tensors is refused with the
reason.  When no single max or min covers a partitioned R, the outer part (``m1``) is tried:
a two-level normaliser ``max[m1]`` of tile maxima is then a normaliser of the tiles' values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from einsim.analysis.passes import normalize_rank, rank_leaves
from einsim.language import ir
from einsim.language.affine import Affine
from einsim.rewriting.algebra import Coefficient, linear_form
from einsim.rewriting.errors import NotSoftmaxLikeError, RewriteError
from einsim.rewriting.trees import (canonical, factors, plain_variables, rename, rename_index,
                                    renaming_between)


@dataclass(frozen=True)
class RankView:
    """Which rank variables belong to the rewritten rank (``m``, or ``m1`` and ``m0``)."""

    cascade: ir.Cascade
    rank: str
    leaves: tuple[str, ...]

    @staticmethod
    def of(cascade: ir.Cascade, rank: str) -> "RankView":
        name = normalize_rank(cascade, rank)
        return RankView(cascade, name, _leaf_order(cascade, name))

    def leaves_of(self, variable: str) -> frozenset[str]:
        return rank_leaves(self.cascade, ir.rank_of(variable)) & frozenset(self.leaves)

    def variables(self, variables) -> tuple[str, ...]:
        """The variables among ``variables`` that iterate (part of) the rank."""
        return tuple(v for v in variables if self.leaves_of(v))

    def covers(self, variables) -> bool:
        """Whether ``variables`` iterate every part of the rank."""
        return frozenset().union(*(self.leaves_of(v) for v in variables)) == \
            frozenset(self.leaves)

    def outermost(self, variables) -> str:
        """The variable over the outermost part (``m1`` of ``m1, m0``): the one a recurrence
        steps."""
        return min(self.variables(variables),
                   key=lambda v: min(self.leaves.index(leaf) for leaf in self.leaves_of(v)))

    @property
    def text(self) -> str:
        """``m`` or ``m (m1, m0)``."""
        parts = [leaf.lower() for leaf in self.leaves]
        own = self.rank.lower()
        return own if parts == [own] else f"{own} ({', '.join(parts)})"


def _leaf_order(cascade: ir.Cascade, rank: str) -> tuple[str, ...]:
    for partition in cascade.partitions:
        if partition.rank == rank:
            return tuple(leaf for part in partition.parts for leaf in _leaf_order(cascade, part))
    return (rank,)


@dataclass(frozen=True)
class Division:
    """``A = E / D``: the exponential divided by one of its sums, and the sums consuming it; or
    a sum that divides inside (``Y = sum E * W / D``), which has no consumers."""

    einsum: ir.Einsum
    denominator: ir.Access
    consumers: tuple[ir.Einsum, ...]

    @property
    def inside_sum(self) -> bool:
        return not self.consumers


@dataclass(frozen=True)
class Member:
    """A tensor proportional to the exponential (``E`` itself, or ``E * W`` element-wise) and
    the normaliser's indices in its Einsum's variables (``(p,)``)."""

    einsum: ir.Einsum
    rows: tuple[Affine, ...]


@dataclass(frozen=True)
class Softmax:
    """A recognised softmax-like cascade (see the module docstring)."""

    ranks: RankView
    normaliser: ir.Einsum
    exponential: ir.Einsum
    read: ir.Access
    """The normaliser as the exponent reads it (``GM[p]``)."""
    values: ir.Expression
    """What the normaliser reduces, as the exponent's Einsum indexes it (``QK[m, p]``)."""
    coefficient: Coefficient
    """The normaliser's coefficient in the exponent: -1 for softmax, +1 for softmin."""
    family: Mapping[str, Member]
    """The exponential and the tensors proportional to it, by name."""
    accumulators: tuple[ir.Einsum, ...]
    divisions: tuple[Division, ...]

    def rows_in(self, einsum: ir.Einsum) -> tuple[Affine, ...]:
        """The normaliser's indices in the variables of an Einsum reading the family."""
        read = next(a for a in einsum.inputs if a.tensor in self.family)
        member = self.family[read.tensor]
        renaming = renaming_between(member.einsum.output, read)
        return tuple(rename_index(i, renaming) for i in member.rows)

    @property
    def sign(self) -> int:
        """+1 for a max normaliser, -1 for a min one."""
        return 1 if self.normaliser.reduce_op == "max" else -1

    @property
    def recurrence(self) -> str:
        """The rank variable a running normaliser steps."""
        return self.ranks.outermost(self.normaliser.reduced)


# ---------------------------------------------------------------------------------- discovery

def exponentials(cascade: ir.Cascade, ranks: RankView) -> tuple[ir.Einsum, ...]:
    """Einsums ``E[...] = exp(...)`` iterating the rank and keeping it; refuse if there are
    none (the cascade is not softmax-like)."""
    found = tuple(e for e in cascade.einsums
                  if isinstance(e.expression, ir.Call) and e.expression.function == "exp"
                  and ranks.covers(e.variables) and not ranks.variables(e.reduced))
    if not found:
        raise NotSoftmaxLikeError(
            f"{_name(cascade)} is not softmax-like over {ranks.text}: no Einsum T[...] = exp(...) "
            "iterates it; rewriting needs a max- or min-normalised exponential, its sum and a "
            "division")
    return found


def recognise(cascade: ir.Cascade, rank: str) -> Softmax:
    """Find the softmax-like pattern over ``rank`` or raise a one-line reason.

    When no single max or min covers the whole rank, an outer part of its partition is tried
    (``GM = max[m1] LM`` over tile maxima ``LM = max[m0] ...``: the tiles' values are then
    what the normaliser reduces)."""
    whole = RankView.of(cascade, rank)
    try:
        return _recognise(cascade, whole)
    except NotSoftmaxLikeError as error:
        for part in whole.leaves[:-1]:
            try:
                return _recognise(cascade, RankView(cascade, part, (part,)))
            except RewriteError:
                continue
        raise error


def _recognise(cascade: ir.Cascade, ranks: RankView) -> Softmax:
    issues: list[str] = []
    found = []
    for einsum in exponentials(cascade, ranks):
        match = _normalised(einsum, cascade, ranks, issues)
        if match is not None:
            found.append(match)
    if not found:
        raise NotSoftmaxLikeError(issues[0])
    if len(found) > 1:
        names = ", ".join(m[0].name for m in found)
        raise RewriteError(f"{_name(cascade)} has several normalised exponentials over "
                           f"{ranks.text} ({names}); the rules rewrite one softmax at a time")
    exponential, normaliser, read, values, coefficient = found[0]
    depends = downstream(cascade, normaliser.name)
    readers = readers_of(cascade)
    family = _family(exponential, read, ranks, depends, readers)
    sources = {name: member.einsum for name, member in family.items()}
    pending = list({r.name: r for name in family for r in readers.get(name, ())
                    if r.name not in family}.values())
    accumulators = tuple(r for r in pending
                         if _accumulation_issue(r, sources, ranks, depends) is None)
    divisions = tuple(_division(r, sources, accumulators, ranks, depends, readers)
                      for r in pending if r not in accumulators)
    if not accumulators:
        raise NotSoftmaxLikeError(f"{exponential.name} is never summed over {ranks.text}: there "
                                  "is no denominator, so it is not a softmax")
    return Softmax(ranks, normaliser, exponential, read, values, coefficient, family,
                   accumulators, divisions)


def _normalised(exponential: ir.Einsum, cascade: ir.Cascade, ranks: RankView,
                issues: list[str]):
    """(exponential, normaliser, its read, y, coefficient) if the exponent is c * (y - N) + rest
    for a max/min N over the rank; otherwise note why not and return None."""
    argument = exponential.expression.args[0]
    form = linear_form(argument)
    reads: dict[str, list[ir.Access]] = {}
    for node in form.nodes.values():
        if isinstance(node, ir.Access):
            producer = cascade.producers.get(node.tensor)
            if producer is not None and ranks.variables(producer.reduced):
                reads.setdefault(node.tensor, []).append(node)
            continue
        for access in ir.accesses(node):
            producer = cascade.producers.get(access.tensor)
            if producer is not None and ranks.variables(producer.reduced):
                issues.append(f"no exponential of (x - max): the exponent of {exponential.name} "
                              f"uses {access.tensor} non-linearly, in {node}")
                return None
    if not reads:
        issues.append(f"no exponential of (x - max): the exponent of {exponential.name}, "
                      f"{argument}, subtracts no max or min over {ranks.text}")
        return None
    for tensor, accesses in reads.items():
        producer = cascade.producers[tensor]
        op = producer.reduce_op
        reduced = ", ".join(ranks.variables(producer.reduced))
        if ranks.variables(producer.output.variables) or not ranks.covers(producer.reduced):
            issues.append(f"{tensor} is a {op} over {reduced} only, not over all of {ranks.text}; "
                          "the rules need one max or min over the whole rank")
            continue
        if op not in ("max", "min"):
            issues.append(f"the normaliser {tensor} is a {op}, not a monotone reduction (max or "
                          "min)")
            continue
        if len({canonical(a) for a in accesses}) > 1:
            issues.append(f"the exponent of {exponential.name} reads {tensor} at two different "
                          "indices")
            continue
        read = accesses[0]
        renaming = renaming_between(producer.output, read)
        if renaming is None:
            issues.append(f"{tensor} is written at {producer.output}; the rules need plain "
                          "variables as its indices")
            continue
        values = rename(producer.expression, renaming)
        target = linear_form(values)
        coefficient = form.coefficient(read)
        if target.is_constant or not all(
                form.atoms.get(key, Coefficient()).same(-(coefficient * value))
                for key, value in target.atoms.items()):
            issues.append(f"no exponential of (x - {op}): the exponent of {exponential.name}, "
                          f"{argument}, is not a multiple of ({values}) - {read}")
            continue
        return exponential, producer, read, values, coefficient
    return None


# ---------------------------------------------------------------------------------- consumers

def downstream(cascade: ir.Cascade, name: str) -> set[str]:
    """``name`` and every tensor computed from it."""
    readers = readers_of(cascade)
    seen, stack = {name}, [name]
    while stack:
        for reader in readers.get(stack.pop(), ()):
            if reader.name not in seen:
                seen.add(reader.name)
                stack.append(reader.name)
    return seen


def readers_of(cascade: ir.Cascade) -> dict[str, list[ir.Einsum]]:
    """Tensor → the Einsums reading it (a recurrence's reads of itself left out)."""
    table: dict[str, list[ir.Einsum]] = {}
    for einsum in cascade.einsums:
        for tensor in dict.fromkeys(a.tensor for a in einsum.inputs):
            if tensor != einsum.name:
                table.setdefault(tensor, []).append(einsum)
    return table


def _single_read(einsum: ir.Einsum, tensor: str, numerator: bool) -> Optional[ir.Access]:
    """The one read of ``tensor``, a factor of the product on the given side, else None."""
    reads = [a for a in einsum.inputs if a.tensor == tensor]
    matching = [f for f, side in factors(einsum.expression)
                if isinstance(f, ir.Access) and f.tensor == tensor and side == numerator]
    return matching[0] if len(reads) == 1 and len(matching) == 1 else None


def _keeps_rank(written: ir.Einsum, read: ir.Access, ranks: RankView) -> bool:
    """The read takes the rank's variables unshifted (``SN[m1, m0, p]``, not ``SN[m1 + 1,...]``)."""
    renaming = renaming_between(written.output, read)
    return renaming is not None and all(
        renaming[v] == Affine.variable(v) for v in ranks.variables(renaming))


def _family(exponential: ir.Einsum, read: ir.Access, ranks: RankView, depends: set[str],
            readers) -> dict[str, Member]:
    """The exponential and every Einsum that multiplies a member element-wise by values not
    computed from the normaliser (``SPD[m1, p] = SLD[m1, p] * PRM[m1, p]``)."""
    family = {exponential.name: Member(exponential, read.indices)}
    stack = [exponential.name]
    while stack:
        for reader in readers.get(stack.pop(), ()):
            if reader.name in family or reader.reduced or not ranks.covers(reader.variables) \
                    or plain_variables(reader.output) is None:
                continue
            found = _family_read(reader, {n: m.einsum for n, m in family.items()}, ranks)
            if found is None or ({a.tensor for a in reader.inputs} - {found.tensor}) & depends:
                continue
            source = family[found.tensor]
            renaming = renaming_between(source.einsum.output, found)
            family[reader.name] = Member(reader, tuple(rename_index(i, renaming)
                                                       for i in source.rows))
            stack.append(reader.name)
    return family


def _family_read(einsum: ir.Einsum, sources: Mapping[str, ir.Einsum], ranks: RankView
                 ) -> Optional[ir.Access]:
    """The one read of a source, as a factor of the product, taking the rank unshifted."""
    reads = [a for a in einsum.inputs if a.tensor in sources]
    if len(reads) != 1:
        return None
    read = _single_read(einsum, reads[0].tensor, numerator=True)
    if read is None or not _keeps_rank(sources[read.tensor], read, ranks):
        return None
    return read


def _accumulation_issue(einsum: ir.Einsum, sources: Mapping[str, ir.Einsum], ranks: RankView,
                        depends: set[str]) -> Optional[str]:
    """None if ``einsum`` sums a product with one source over all of the rank, else why not."""
    if einsum.reduce_op != "sum" or not ranks.covers(einsum.reduced) or \
            ranks.variables(einsum.output.variables):
        return f"it is not a sum over all of {ranks.text}"
    if plain_variables(einsum.output) is None:
        return f"its output {einsum.output} is not indexed by plain variables"
    read = _family_read(einsum, sources, ranks)
    if read is None:
        return f"{' or '.join(sources)} is not one factor of its product"
    others = {a.tensor for a in einsum.inputs} - {read.tensor}
    if others & depends:
        return f"it also reads {', '.join(sorted(others & depends))}"
    return None


def _division(einsum: ir.Einsum, sources: Mapping[str, ir.Einsum], accumulators,
              ranks: RankView, depends: set[str], readers) -> Division:
    """``A = E / D`` with D an accumulator, consumed only by sums over the rank, or a sum over
    the rank of ``E * W / D``; else refuse."""
    name = next(a.tensor for a in einsum.inputs if a.tensor in sources)
    refusal = RewriteError(
        f"{name} is read by {einsum.name} ({einsum}), which is neither a sum over "
        f"{ranks.text} of a product with {name} nor a division of {name} by such a sum")
    summing = bool(ranks.variables(einsum.reduced))
    if summing and (einsum.reduce_op != "sum" or not ranks.covers(einsum.reduced)
                    or ranks.variables(einsum.output.variables)):
        raise refusal
    if not ranks.covers(einsum.variables) or plain_variables(einsum.output) is None:
        raise refusal
    numerator = _family_read(einsum, sources, ranks)
    sums = {a.name for a in accumulators}
    below = [f for f, side in factors(einsum.expression)
             if not side and isinstance(f, ir.Access) and f.tensor in sums]
    if numerator is None or len(below) != 1 or ranks.variables(below[0].variables):
        raise refusal
    denominator = below[0]
    others = {a.tensor for a in einsum.inputs} - {numerator.tensor, denominator.tensor}
    if others & depends or sum(a.tensor == denominator.tensor for a in einsum.inputs) != 1:
        raise refusal
    if summing:
        return Division(einsum, denominator, ())
    consumers = tuple(readers.get(einsum.name, ()))
    if not consumers:
        raise RewriteError(f"{einsum.name} = {einsum.expression} is an output that keeps "
                           f"{ranks.text}: the division by {denominator.tensor} cannot be "
                           "deferred past a sum")
    for consumer in consumers:
        issue = _accumulation_issue(consumer, {einsum.name: einsum}, ranks, depends)
        if issue is not None:
            raise RewriteError(f"{einsum.name} is read by {consumer.name} ({consumer}): {issue}, "
                               f"so the division by {denominator.tensor} cannot be deferred")
    return Division(einsum, denominator, consumers)


def _name(cascade: ir.Cascade) -> str:
    return cascade.name or "the cascade"
