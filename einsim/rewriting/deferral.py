"""Deferred division (3 passes → 2): divide after the sum, not before it.

For a division ``A = E * c / D`` whose denominator ``D`` does not vary over the rank, every
consumer ``Y = sum[R] A * W`` equals ``(sum[R] E * c * W) / D``: the division moves past the
sum, so the normalised weights ``A`` are never formed and the pass that divided them is gone.

    A[m, p]  = SN[m, p] / SD[p]              SNV[f, p] = SN[m, p] * V[f, m]
    AV[f, p] = A[m, p] * V[f, m]      →      AV[f, p]  = SNV[f, p] / SD[p]

The filter of ``A`` (a mask) moves into the numerator's sum; the consumer keeps its name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from einsim.language import ir
from einsim.rewriting.errors import RewriteError
from einsim.rewriting.naming import Names
from einsim.rewriting.pattern import Division, Softmax
from einsim.rewriting.trees import (both, canonical, factors, plain_variables, rename,
                                    rename_condition, renaming_between, replace_accesses,
                                    without_factor)


@dataclass(frozen=True)
class Deferred:
    """The cascade with its divisions deferred, and what was done, one line per division."""

    cascade: ir.Cascade
    steps: tuple[str, ...]


def defer_divisions(cascade: ir.Cascade, softmax: Softmax, names: Names) -> Deferred:
    """Apply the deferred-division rule to every division of ``softmax``."""
    replacements: dict[str, list[ir.Einsum]] = {}
    steps = []
    for division in softmax.divisions:
        if division.inside_sum:
            numerator, result = _defer_inside(division, softmax, names)
            replacements[division.einsum.name] = [numerator, result]
            steps.append(f"deferred division: {division.einsum.name} = "
                         f"{division.einsum.expression} divides after its sum "
                         f"({division.einsum.name} = {result.expression})")
            continue
        replacements[division.einsum.name] = []
        made = []
        for consumer in division.consumers:
            numerator, result = _defer(division, consumer, softmax, names)
            replacements[consumer.name] = [numerator, result]
            made.append(f"{consumer.name} = {result.expression}")
        steps.append(f"deferred division: {division.einsum.name} = "
                     f"{division.einsum.expression} moved past the sum over "
                     f"{softmax.ranks.text} ({'; '.join(made)})")
    einsums = []
    for einsum in cascade.einsums:
        einsums.extend(replacements.get(einsum.name, [einsum]))
    return Deferred(replace(cascade, einsums=tuple(einsums)), tuple(steps))


def _defer(division: Division, consumer: ir.Einsum, softmax: Softmax, names: Names
           ) -> tuple[ir.Einsum, ir.Einsum]:
    """``Y = sum A * W`` → (``NUM = sum E * W``, ``Y = NUM / D``)."""
    weights = division.einsum
    read = next(a for a in consumer.inputs if a.tensor == weights.name)
    renaming = renaming_between(weights.output, read)
    numerator = without_factor(weights.expression, division.denominator, numerator=False)
    if renaming is None or numerator is None:  # recognition guarantees both
        raise RewriteError(f"cannot move the division of {weights.name} past {consumer.name}")
    denominator = rename(division.denominator, renaming)
    kept = set(consumer.output.variables)
    stray = [v for v in denominator.variables if v not in kept]
    if stray or plain_variables(consumer.output) is None:
        raise RewriteError(f"{consumer.name} sums over {', '.join(stray) or 'an index'} of the "
                           f"denominator {division.denominator.tensor}, so the division by it "
                           "cannot be deferred past that sum")
    key = canonical(read)
    moved = rename(numerator, renaming)
    expression = replace_accesses(consumer.expression,
                                  lambda a: moved if canonical(a) == key else None)
    name = names.fresh(_numerator_name(moved, consumer, read), f"{consumer.name}_NUM")
    condition = both(consumer.condition, rename_condition(weights.condition, renaming))
    summed = ir.Einsum(ir.Access(name, consumer.output.indices), expression, consumer.reduction,
                       condition)
    result = ir.Einsum(consumer.output,
                       ir.BinaryOp("/", ir.Access(name, consumer.output.indices), denominator))
    return summed, result


def _defer_inside(division: Division, softmax: Softmax, names: Names
                  ) -> tuple[ir.Einsum, ir.Einsum]:
    """``Y = sum E * W / D`` → (``NUM = sum E * W``, ``Y = NUM / D``)."""
    einsum = division.einsum
    numerator = without_factor(einsum.expression, division.denominator, numerator=False)
    stray = [v for v in division.denominator.variables if v not in einsum.output.variables]
    if numerator is None or stray:
        raise RewriteError(f"{einsum.name} sums over {', '.join(stray) or 'an index'} of the "
                           f"denominator {division.denominator.tensor}, so the division by it "
                           "cannot be deferred past that sum")
    name = names.fresh(_numerator_name(numerator, einsum, division.denominator),
                       f"{einsum.name}_NUM")
    summed = ir.Einsum(ir.Access(name, einsum.output.indices), numerator, einsum.reduction,
                       einsum.condition)
    result = ir.Einsum(einsum.output, ir.BinaryOp("/", ir.Access(name, einsum.output.indices),
                                                  division.denominator))
    return summed, result


def _numerator_name(numerator: ir.Expression, consumer: ir.Einsum, dropped: ir.Access) -> str:
    """The names of the numerator's factors, in order (``SN`` times ``V`` → ``SNV``), or
    ``Y_NUM`` when that would be long."""
    mine = [a.tensor for a in ir.accesses(numerator)]
    others = [f.tensor for f, _ in factors(consumer.expression)
              if isinstance(f, ir.Access) and f != dropped and f.tensor not in mine]
    joined = "".join(dict.fromkeys(mine + others))
    return joined if 0 < len(joined) <= 6 else f"{consumer.name}_NUM"
