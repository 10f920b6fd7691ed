"""Running maximum with correction (2 passes → 1): the FuseMax / online-softmax form.

The exponent is ``x = rest + b * N`` with ``N`` the max (or min) over the rank, so computing it
with any other value ``N'`` only scales it: ``exp(rest + b * N') = exp(x) * exp(b * (N' - N))``.
Every accumulator ``S = sum[R] E * W`` is linear in ``E``, so partial sums made with an older
maximum are brought up to date by the same factor.  Over the outermost rank variable ``r``
(``m1`` of a partition, else ``m`` itself, one element at a time):

    init RUN[0, p] = -inf                    init S_RUN[.., 0, p] = 0
    LOCAL[r, p]   = max[m0] y                (the tile's maximum; omitted when untiled)
    RUN[r + 1, p] = max(RUN[r, p], LOCAL[r, p])
    CORR[r, p]    = exp(b * (RUN[r + 1, p] - RUN[r, p]))
    E[...]        = exp(x with N replaced by RUN[r + 1, p])
    S_RUN[.., r + 1, p] = S_RUN[.., r, p] * CORR[r, p] + (sum over the tile of E * W)

and readers of ``S`` read its final iterate ``S_RUN[.., M1, p]``.  A min normaliser runs as the
maximum of the negated values (``RUN = max(RUN, neg(y))``, ``N = neg(RUN)``), so an empty prefix
is ``-inf`` and its correction ``exp(-inf) = 0``, never ``inf - inf``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

from einsim.language import ir
from einsim.language.affine import Affine
from einsim.rewriting.algebra import Coefficient, LinearForm, linear_form, scale
from einsim.rewriting.errors import RewriteError
from einsim.rewriting.naming import Names
from einsim.rewriting.pattern import Softmax, readers_of
from einsim.rewriting.trees import (canonical, final, insert, plain_variables,
                                    replace_accesses, step)


@dataclass(frozen=True)
class Online:
    """The 1-pass cascade and what was done."""

    cascade: ir.Cascade
    steps: tuple[str, ...]


@dataclass(frozen=True)
class _Running:
    """The new tensors standing for the normaliser: running value and correction factor (the
    running value is the maximum of the negated values when ``negated``)."""

    running: str
    correction: str
    variable: str
    negated: bool

    def factor(self, rows: tuple[Affine, ...]) -> ir.Access:
        return ir.Access(self.correction, insert(rows, 0, Affine.variable(self.variable)))


def running_normaliser(cascade: ir.Cascade, softmax: Softmax, names: Names) -> Online:
    """Apply the running-maximum rule (the divisions must already be deferred)."""
    if softmax.divisions:
        raise RewriteError("defer the divisions before making the normaliser a running one")
    _check_readers(cascade, softmax)
    normaliser = softmax.normaliser
    variable = softmax.recurrence
    run = _Running(names.fresh(f"{normaliser.name}_RUN"),
                   names.fresh(f"{normaliser.name}_CORR"), variable,
                   negated=softmax.sign < 0)
    inits = [ir.Init(ir.Access(run.running, insert(normaliser.output.indices, 0,
                                                   Affine.constant(0))), ir.Number(-math.inf))]
    replacements = {normaliser.name: _normaliser_steps(softmax, run, names),
                    softmax.exponential.name: [_exponential(softmax, run)]}
    finals: dict[str, tuple[str, int]] = {}
    summed = []
    for accumulator in softmax.accumulators:
        made, init, running, axis = _accumulator_steps(accumulator, softmax, run, names)
        replacements[accumulator.name] = made
        inits.append(init)
        finals[accumulator.name] = (running, axis)
        summed.append(f"{accumulator.name} as {running}")
    einsums = []
    for einsum in cascade.einsums:
        if einsum.name in replacements:
            einsums.extend(replacements[einsum.name])
        else:
            einsums.append(_read_finals(einsum, finals, variable))
    kind = "minimum (as the maximum of the negated values)" if run.negated else "maximum"
    steps = (f"running {kind}: {normaliser.name} becomes {run.running} over {variable}, "
             f"with correction factor {run.correction}; accumulators rescaled by it: "
             f"{', '.join(summed)}",)
    return Online(replace(cascade, inits=(*cascade.inits, *inits), einsums=tuple(einsums)),
                  steps)


def _check_readers(cascade: ir.Cascade, softmax: Softmax) -> None:
    readers = readers_of(cascade)
    normaliser, exponential = softmax.normaliser, softmax.exponential
    others = [r.name for r in readers.get(normaliser.name, ()) if r.name != exponential.name]
    if others:
        raise RewriteError(f"the normaliser {normaliser.name} is also read by "
                           f"{', '.join(others)}; the 1-pass form replaces it by a running "
                           "value that is complete only at the end")
    shown = [name for name in softmax.family if name in cascade.outputs]
    if shown:
        raise RewriteError(f"{', '.join(shown)} is an output; the 1-pass form computes it "
                           "against a running maximum, not the final one")
    if plain_variables(normaliser.output) is None:
        raise RewriteError(f"{normaliser.output} is not indexed by plain variables")
    sums = {a.name for a in softmax.accumulators}
    for accumulator in softmax.accumulators:
        for reader in readers.get(accumulator.name, ()):
            if reader.name not in sums and softmax.ranks.variables(reader.variables):
                raise RewriteError(f"{reader.name} reads the complete sum {accumulator.name} "
                                   f"while iterating {softmax.ranks.text}, so it needs a "
                                   "second pass")


def _normaliser_steps(softmax: Softmax, run: _Running, names: Names) -> list[ir.Einsum]:
    """The tile's max/min (if any), the running update and the correction factor."""
    normaliser = softmax.normaliser
    rows = normaliser.output.indices
    variable = Affine.variable(run.variable)
    local = [v for v in normaliser.reduced if v != run.variable]
    made = []
    if local or normaliser.condition is not None:
        name = names.fresh(f"{normaliser.name}_LOCAL")
        reduction = ir.Reduction(normaliser.reduce_op, tuple(local)) if local else None
        tile = ir.Access(name, insert(rows, 0, variable))
        made.append(ir.Einsum(tile, normaliser.expression, reduction, normaliser.condition))
        latest: ir.Expression = tile
    else:
        latest = normaliser.expression
    if run.negated:
        latest = ir.Call("neg", (latest,))
    before = ir.Access(run.running, insert(rows, 0, variable))
    after = ir.Access(run.running, insert(rows, 0, step(run.variable)))
    made.append(ir.Einsum(after, ir.Call("max", (before, latest))))
    made.append(ir.Einsum(run.factor(rows), ir.Call("exp", (_correction(softmax, before,
                                                                         after),))))
    return made


def _correction(softmax: Softmax, before: ir.Access, after: ir.Access) -> ir.Expression:
    """``b * (new - old)`` in the running value's terms, written with a positive multiplier
    (``RUN[m1, p] - RUN[m1 + 1, p]`` for softmax) so an empty prefix gives -inf, not NaN."""
    coefficient = softmax.coefficient * Coefficient.number(float(softmax.sign))
    if coefficient.is_negative:
        coefficient, difference = -coefficient, ir.BinaryOp("-", before, after)
    else:
        difference = ir.BinaryOp("-", after, before)
    return scale(coefficient, difference)


def _exponential(softmax: Softmax, run: _Running) -> ir.Einsum:
    """The exponential recomputed against the running value after this step.

    The exponent ``b * (N - y) + rest`` becomes ``-g * (u - RUN[r + 1]) + rest`` with ``u = y``
    (max) or ``neg(y)`` (min) and ``g = b`` or ``-b``: a difference of two maxima, so a masked
    ``-inf`` against an empty prefix's ``-inf`` is ``-inf`` (the executor's convention), never
    NaN, whatever sign or scale the exponent had."""
    exponential = softmax.exponential
    values = softmax.values
    form = linear_form(exponential.expression.args[0])
    rest = form + (linear_form(values) - linear_form(softmax.read)).scaled(softmax.coefficient)
    value = values if not run.negated else ir.Call("neg", (values,))
    latest = ir.Access(run.running, insert(softmax.read.indices, 0, step(run.variable)))
    difference = ir.BinaryOp("-", value, latest)
    key = canonical(difference)
    weight = -(softmax.coefficient * Coefficient.number(float(softmax.sign)))
    exponent = LinearForm({key: weight}, {key: difference}) + rest
    return replace(exponential, expression=ir.Call("exp", (exponent.expression(),)))


def _accumulator_steps(accumulator: ir.Einsum, softmax: Softmax, run: _Running, names: Names
                       ) -> tuple[list[ir.Einsum], ir.Init, str, int]:
    """``S = sum E * W`` → the tile's partial sum (if needed) and ``S_RUN`` rescaled each step.

    Returns the Einsums, the init, the running tensor and the axis holding the step."""
    variable = run.variable
    rows = softmax.rows_in(accumulator)
    row_variables = {v for index in rows for v in index.variables}
    output = accumulator.output.indices
    stray = row_variables - set(accumulator.output.variables)
    if stray:
        raise RewriteError(f"{accumulator.name} sums over {', '.join(sorted(stray))}, which the "
                           f"normaliser {softmax.normaliser.name} keeps, so no running "
                           "correction applies to it")
    axis = next((k for k, index in enumerate(output) if set(index.variables) & row_variables),
                len(output))
    local = [v for v in accumulator.reduced if v != variable]
    made = []
    if local or accumulator.condition is not None:
        name = names.fresh(f"{accumulator.name}_LOCAL")
        reduction = None if accumulator.reduction is None or not local else \
            ir.Reduction("sum", tuple(v for v in accumulator.reduction.variables if v != variable))
        tile = ir.Access(name, insert(output, axis, Affine.variable(variable)))
        made.append(ir.Einsum(tile, accumulator.expression, reduction, accumulator.condition))
        latest: ir.Expression = tile
    else:
        latest = accumulator.expression
    running = names.fresh(f"{accumulator.name}_RUN")
    before = ir.Access(running, insert(output, axis, Affine.variable(variable)))
    after = ir.Access(running, insert(output, axis, step(variable)))
    update = ir.BinaryOp("+", ir.BinaryOp("*", before, run.factor(rows)), latest)
    made.append(ir.Einsum(after, update))
    init = ir.Init(ir.Access(running, insert(output, axis, Affine.constant(0))), ir.Number(0))
    return made, init, running, axis


def _read_finals(einsum: ir.Einsum, finals: dict[str, tuple[str, int]], variable: str
                 ) -> ir.Einsum:
    """An Einsum reading accumulators, made to read their running tensors' last iterates."""
    if not any(a.tensor in finals for a in einsum.inputs):
        return einsum
    end = final(ir.rank_of(variable))

    def last(access: ir.Access) -> Optional[ir.Expression]:
        if access.tensor not in finals:
            return None
        running, axis = finals[access.tensor]
        return ir.Access(running, insert(access.indices, axis, end))

    return replace(einsum, expression=replace_accesses(einsum.expression, last))
