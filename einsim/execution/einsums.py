"""Evaluate one Einsum on NumPy arrays, optionally with some rank variables fixed (one loop step).

Semantics (DESIGN.md §4): the expression is broadcast over the iteration space; points where
the filter is false, or where an operand is empty, are empty; reductions skip empty points and
give the operator's identity on an all-empty fiber.  Stored tensors keep 0 at empty points plus
an optional presence mask (None = all present), so sums of products can go straight to BLAS
through ``np.einsum``.  Reads past the end of a partitioned rank (``K[e, m1*M0 + m0]`` when M0
does not divide M) are empty padding; any other out-of-range read is an error.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from einsim.language import ir
from einsim.language.affine import Affine, Term
from einsim.execution.contraction import contract_plan
from einsim.errors import IndexRangeError, ScheduleError
from einsim.language.functions import (BINARY_OPERATORS, COMPARISONS, MAP_FUNCTIONS,
                                      REDUCE_OPERATORS, condition_mask)


@dataclass
class Stored:
    """A tensor's values over a window of its logical extent (the whole extent unless tiled)."""

    data: np.ndarray
    extent: tuple[int, ...]
    present: np.ndarray | None = None
    origin: list[int] = field(default_factory=list)
    window_axis: int | None = None

    def __post_init__(self):
        if not self.origin:
            self.origin = [0] * self.data.ndim

    def shift_to(self, axis: int, coordinate: int) -> None:
        """Slide a windowed axis forward so that ``coordinate`` is its newest slot.

        The window is a ring: coordinate ``c`` lives in slot ``c mod length``, so sliding
        moves no data; the slot that falls out is overwritten by the next write.
        """
        length = self.data.shape[axis]
        if coordinate >= self.origin[axis] + length:
            self.origin[axis] = coordinate - length + 1

    def slot(self, axis: int, coordinate: int) -> int:
        """Position of ``coordinate`` (held) along ``axis`` of :attr:`data`."""
        if axis == self.window_axis:
            return coordinate % self.data.shape[axis]
        return coordinate - self.origin[axis]


@dataclass
class Environment:
    """Everything one execution shares: sizes, stored tensors and the compute dtype."""

    cascade: ir.Cascade
    sizes: Mapping[str, float]
    tensors: dict[str, Stored]
    dtype: type = np.float64


# --------------------------------------------------------------------------------------- reading

def _extent_of(variable: str, env: Environment) -> int:
    return int(env.sizes[ir.rank_of(variable)])


def variable_grids(free: list[str], env: Environment) -> dict[str, np.ndarray]:
    count = len(free)
    return {v: np.arange(_extent_of(v, env)).reshape([-1 if i == k else 1 for i in range(count)])
            for k, v in enumerate(free)}


def _is_padding_index(index: Affine, cascade: ir.Cascade) -> bool:
    return len(index.variables) > 1 and any(index == p.reconstruction()
                                            for p in cascade.partitions)


def _range_error(access: ir.Access, axis: int, index: Affine, low: int, high: int, extent: int):
    return IndexRangeError(
        f"{access} reads index {index} = {low}..{high} on axis {axis} of {access.tensor}, whose "
        f"extent is {extent} (expected 0..{extent - 1})", access.line, access.column)


def _not_available(access: ir.Access, axis: int, low: int, high: int, stored: Stored):
    start = stored.origin[axis]
    return ScheduleError(
        f"{access} needs coordinates {low}..{high} of axis {axis}, but only {start}.."
        f"{start + stored.data.shape[axis] - 1} are held at this point of the schedule (a value "
        "read before it is complete or after it was discarded)", access.line, access.column)


_FORMS: dict[tuple, tuple] = {}


def _form(index: Affine, bindings: Mapping[str, int]) -> tuple:
    """``(index, constant part, ((scale, bound variable), ...), free variable, simple)``: the
    index split once per index and set of bound variables (the loops re-read it every step).

    ``simple`` means no free variable, or one with coefficient 1 (a slice); the free variable
    is None when there is none.
    """
    key = (id(index), tuple(bindings))
    form = _FORMS.get(key)
    if form is None or form[0] is not index:
        if len(_FORMS) > 50_000:
            _FORMS.clear()
        const = Affine(tuple(t for t in index.terms if t.variable is None))
        bound = tuple((Affine((Term(t.coefficient, t.sizes, None),)), t.variable)
                      for t in index.terms if t.variable is not None and t.variable in bindings)
        free = [t for t in index.terms if t.variable is not None and t.variable not in bindings]
        variable = free[0].variable if len(free) == 1 and free[0].coefficient == 1 \
            and not free[0].sizes else None
        form = _FORMS[key] = (index, const, bound, variable, not free or variable is not None)
    return form


def _start(form: tuple, sizes: Mapping[str, float], bindings: Mapping[str, int]) -> int:
    """The index's value with its free variable (if any) at 0."""
    total = form[1].offset(sizes)
    for scale, variable in form[2]:
        total += scale.offset(sizes) * bindings[variable]
    return total


def gather(access: ir.Access, env: Environment, bindings: Mapping[str, int], free: list[str]):
    """The values of ``access`` broadcast over the free variables: (array, presence or None)."""
    stored = env.tensors[access.tensor]
    position = {v: i for i, v in enumerate(free)}
    basic: list = []
    axis_vars: list[str] = []
    pads: list[tuple[int, int]] = []
    for axis, original in enumerate(access.indices):
        form = _form(original, bindings)
        extent, start = stored.extent[axis], stored.origin[axis]
        held = stored.data.shape[axis]
        variable = form[3]
        if not form[4] or variable in axis_vars or (variable is not None
                                                     and axis == stored.window_axis):
            return _gather_general(access, stored, env, bindings, free)
        if variable is None:
            value = _start(form, env.sizes, bindings)
            if not 0 <= value < extent:
                if _is_padding_index(original, env.cascade):
                    return _empty(free, env)
                raise _range_error(access, axis, original, value, value, extent)
            if not start <= value < start + held:
                raise _not_available(access, axis, value, value, stored)
            basic.append(stored.slot(axis, value))
            continue
        low = _start(form, env.sizes, bindings)
        high = low + _extent_of(variable, env)
        clipped_low, clipped_high = max(low, 0), min(high, extent)
        if (clipped_low, clipped_high) != (low, high) and not _is_padding_index(original,
                                                                                env.cascade):
            raise _range_error(access, axis, original, low, high - 1, extent)
        if clipped_low < start or clipped_high > start + held:
            raise _not_available(access, axis, clipped_low, clipped_high - 1, stored)
        basic.append(slice(clipped_low - start, clipped_high - start))
        axis_vars.append(variable)
        pads.append((clipped_low - low, high - clipped_high))
    values = stored.data[tuple(basic)]
    present = stored.present[tuple(basic)] if stored.present is not None else None
    if any(p != (0, 0) for p in pads):  # the ragged last tile of a partitioned rank
        if present is None:
            present = np.ones(values.shape, bool)
        values, present = np.pad(values, pads), np.pad(present, pads)
    order = sorted(range(len(axis_vars)), key=lambda k: position[axis_vars[k]])
    shape = [_extent_of(v, env) if v in axis_vars else 1 for v in free]
    values = values.transpose(order).reshape(shape)
    if present is not None:
        present = present.transpose(order).reshape(shape)
    return values, present


def _empty(free: list[str], env: Environment):
    shape = [1] * len(free)
    return np.zeros(shape, env.dtype), np.zeros(shape, bool)


def _gather_general(access, stored: Stored, env: Environment, bindings, free):
    grids = variable_grids(free, env)
    variables = {**grids, **bindings}
    indices, valid = [], None
    for axis, original in enumerate(access.indices):
        index = np.asarray(original.evaluate(env.sizes, variables))
        extent, start = stored.extent[axis], stored.origin[axis]
        inside = (index >= 0) & (index < extent)
        if not inside.all():
            if not _is_padding_index(original, env.cascade):
                raise _range_error(access, axis, original, int(index.min()), int(index.max()),
                                   extent)
            valid = inside if valid is None else valid & inside
        held = (index >= start) & (index < start + stored.data.shape[axis])
        if not (held | ~inside).all():
            bad = index[inside & ~held]
            raise _not_available(access, axis, int(bad.min()), int(bad.max()), stored)
        if axis == stored.window_axis:
            indices.append(np.where(held, index, start) % stored.data.shape[axis])
        else:
            indices.append(np.clip(index - start, 0, stored.data.shape[axis] - 1))
    values = stored.data[tuple(indices)]
    present = stored.present[tuple(indices)] if stored.present is not None else None
    if valid is not None:
        values = np.where(valid, values, 0)
        present = valid if present is None else present & valid
    values = np.reshape(values, np.broadcast_shapes(values.shape, (1,) * len(free)))
    return values, present


# ------------------------------------------------------------------------------------ expressions

CONSTANT = "constant"
"""Presence of a literal or size: it never creates points (``x + 1`` is empty where x is)."""

_UNION_FILL = {"+": 0.0, "max": -np.inf, "min": np.inf}
"""Operators that merge by union; a missing operand counts as their identity."""


def _both(a, b):
    """Intersection of presences (None = every point present)."""
    if a is CONSTANT:
        return b
    if b is CONSTANT or a is None:
        return a if b is CONSTANT else b
    if b is None:
        return a
    return a & b


def _either(a, b):
    """Union of presences; a constant side adds no points."""
    if a is CONSTANT:
        return b
    if b is CONSTANT:
        return a
    if a is None or b is None:
        return None
    return a | b


def _merge(function, operator: str, left, left_present, right, right_present):
    if operator in _UNION_FILL and left_present is not CONSTANT and \
            right_present is not CONSTANT and (left_present is not None
                                               or right_present is not None):
        fill = _UNION_FILL[operator]
        if left_present is not None:
            left = np.where(left_present, left, fill)
        if right_present is not None:
            right = np.where(right_present, right, fill)
        return function(left, right), _either(left_present, right_present)
    return function(left, right), _both(left_present, right_present)


def evaluate_expression(node, env: Environment, bindings, free, grids):
    """(values, presence) of an expression over the free variables (broadcastable arrays).

    ``+`` and ``max``/``min`` merge by union (the missing side is the identity), everything
    else by intersection; presence None means every point is present.
    """
    if isinstance(node, ir.Number):
        return env.dtype(node.value), CONSTANT
    if isinstance(node, ir.Symbol):
        if node.name[0].isupper():
            return env.dtype(env.sizes[node.name]), CONSTANT
        if node.name in bindings:
            return env.dtype(bindings[node.name]), CONSTANT
        return grids[node.name].astype(env.dtype), CONSTANT
    if isinstance(node, ir.Access):
        return gather(node, env, bindings, free)
    if isinstance(node, (ir.BinaryOp, ir.Compare)):
        left, left_present = evaluate_expression(node.left, env, bindings, free, grids)
        right, right_present = evaluate_expression(node.right, env, bindings, free, grids)
        function = BINARY_OPERATORS[node.op][0] if isinstance(node, ir.BinaryOp) \
            else COMPARISONS[node.op]
        return _merge(function, node.op, left, left_present, right, right_present)
    if isinstance(node, ir.Call):
        evaluated = [evaluate_expression(a, env, bindings, free, grids) for a in node.args]
        function = MAP_FUNCTIONS[node.function].numpy
        if len(evaluated) == 2:
            (left, left_present), (right, right_present) = evaluated
            return _merge(function, node.function, left, left_present, right, right_present)
        present = CONSTANT
        for _, arg_present in evaluated:
            present = _both(present, arg_present)
        return function(*(value for value, _ in evaluated)), present
    raise TypeError(f"not an expression node: {node!r}")


def _product_factors(node) -> list | None:
    """The factors of a pure product of accesses and constants, else None."""
    if isinstance(node, ir.BinaryOp) and node.op == "*":
        left, right = _product_factors(node.left), _product_factors(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, (ir.Access, ir.Number)) or (isinstance(node, ir.Symbol)
                                                   and node.name[0].isupper()):
        return [node]
    return None


# ------------------------------------------------------------------------------------ the Einsum

def is_contraction(einsum: ir.Einsum) -> bool:
    """A sum of products of accesses (evaluated by ``np.einsum`` without the product)."""
    if einsum.reduce_op != "sum" or not einsum.reduced:
        return False
    factors = _product_factors(einsum.expression)
    return factors is not None and any(isinstance(f, ir.Access) for f in factors)


def evaluate_einsum(einsum: ir.Einsum, env: Environment, bindings: Mapping[str, int]):
    """Values of ``einsum`` over its unbound output variables: (values, presence or None).

    A reduction skips empty points; an output point whose whole fiber is empty is empty.
    """
    free = [v for v in einsum.variables if v not in bindings]
    out_free = [v for v in einsum.output.variables if v not in bindings]
    reduced = [v for v in einsum.reduced if v not in bindings]
    shape = [_extent_of(v, env) for v in free]
    grids = variable_grids(free, env)
    mask = None
    if einsum.condition is not None:
        mask = np.asarray(condition_mask(einsum.condition, env.sizes, {**grids, **bindings}), bool)
        mask = mask.reshape(np.broadcast_shapes(mask.shape, (1,) * len(free)))
    operator = REDUCE_OPERATORS[einsum.reduce_op]
    factors = _product_factors(einsum.expression) if operator.name == "sum" else None
    if factors is not None and any(isinstance(f, ir.Access) for f in factors):
        return _contract(factors, env, bindings, free, out_free, mask)
    values, present = evaluate_expression(einsum.expression, env, bindings, free, grids)
    present = _both(None if present is CONSTANT else present, mask)
    if operator.name == "any":
        values = (np.asarray(values) != 0).astype(env.dtype)  # a 0/1 flag, also per tile
    values = np.broadcast_to(np.asarray(values, env.dtype), shape)
    if present is not None:
        present = np.broadcast_to(present, shape)
    if not reduced:
        return values, present
    axes = tuple(range(len(out_free), len(free)))
    if operator.name == "sum":
        result = (np.where(present, values, 0) if present is not None else values).sum(axis=axes)
    else:
        result = operator.ufunc.reduce(values, axis=axes, initial=operator.identity,
                                       where=True if present is None else present)
    out_present = None if present is None else np.logical_or.reduce(present, axis=axes)
    return _finish(np.asarray(result, env.dtype), out_present)


def _finish(values, present):
    """Zero the empty points (the storage invariant) and drop an all-true mask."""
    if present is None or present.all():
        return values, None
    return np.where(present, values, 0), present


class Fallback(Exception):
    """The direct path does not apply (empty points appeared): evaluate the ordinary way."""


def _contract(factors, env, bindings, free, out_free, mask, out=None):
    """Sum of products through ``np.einsum`` (BLAS for two operands).

    Stored tensors hold 0 at empty points, so the sum is right as is; the output's presence
    (some point of its fiber present in every operand) is a second, 0/1 contraction that only
    runs when an operand or the filter has empty points.
    """
    letters = {v: string.ascii_letters[i] for i, v in enumerate(free)}
    operands, subscripts, scale, presences = [], [], 1.0, []
    for factor in factors:
        if not isinstance(factor, ir.Access):
            value, _ = evaluate_expression(factor, env, bindings, free, {})
            scale *= float(value)
            continue
        values, present = gather(factor, env, bindings, free)
        keep = [k for k, v in enumerate(free) if v in factor.variables]
        drop = tuple(k for k in range(len(free)) if k not in keep)
        term = "".join(letters[free[k]] for k in keep)
        operands.append(np.squeeze(values, axis=drop).astype(env.dtype, copy=False))
        subscripts.append(term)
        if present is not None:
            presences.append((np.squeeze(np.broadcast_to(present, values.shape), axis=drop),
                              term))
    if mask is not None:
        keep = [k for k in range(len(free)) if mask.shape[k] != 1]
        term = "".join(letters[free[k]] for k in keep)
        squeezed = np.squeeze(mask, axis=tuple(k for k in range(len(free)) if k not in keep))
        operands.append(squeezed.astype(env.dtype))
        subscripts.append(term)
        presences.append((squeezed, term))
    out_shape = [_extent_of(v, env) for v in out_free]
    if out is not None and presences:
        raise Fallback
    result = _einsum(operands, subscripts, out_free, letters, out_shape, env.dtype, out)
    if scale != 1.0:
        result = np.multiply(result, scale, out=out) if out is not None else result * scale
    if out is not None:
        return out, None
    present = None
    if presences:
        counts = _einsum([p.astype(np.float32) for p, _ in presences],
                         [t for _, t in presences], out_free, letters, out_shape, np.float32)
        present = counts > 0
    return _finish(np.asarray(result, env.dtype), present)


def _einsum(operands, subscripts, out_free, letters, out_shape, dtype, out=None):
    mentioned = set("".join(subscripts))
    have = [v for v in out_free if letters[v] in mentioned]
    output = "".join(letters[v] for v in have)
    if out is not None:
        if len(have) != len(out_free):
            raise Fallback
        contract_plan(tuple(subscripts), output)(operands, out)
        return out
    result = contract_plan(tuple(subscripts), output)(operands, None)
    result = np.reshape(result, [s if v in have else 1 for v, s in zip(out_free, out_shape)])
    return np.broadcast_to(result, out_shape).astype(dtype, copy=False)


# --------------------------------------------------------------------------------------- writing

def write(einsum_or_init, target: ir.Access, values, present, env: Environment,
          bindings: Mapping[str, int], accumulate: str | None = None) -> np.ndarray | None:
    """Store values at ``target``; with ``accumulate`` combine into what is there.

    Returns the region written (a view) so the caller can round it to a storage format.
    """
    stored = env.tensors[target.tensor]
    out_free = [v for v in target.variables if v not in bindings]
    basic = []
    for axis, original in enumerate(target.indices):
        form = _form(original, bindings)
        extent = stored.extent[axis]
        variable = form[3]
        if form[4] and variable is None:
            value = _start(form, env.sizes, bindings)
            if not 0 <= value < extent:
                raise IndexRangeError(f"{target} writes coordinate {value} on axis {axis}, outside "
                                      f"0..{extent - 1}", einsum_or_init.line,
                                      einsum_or_init.column)
            if stored.window_axis == axis:
                stored.shift_to(axis, value)
            basic.append(stored.slot(axis, value))
            continue
        if not form[4] or axis == stored.window_axis:
            _scatter(target, stored, values, present, env, bindings, out_free)
            return None
        low = _start(form, env.sizes, bindings)
        high = low + _extent_of(variable, env)
        if low < 0 or high > extent:
            if not _is_padding_index(original, env.cascade):
                raise IndexRangeError(f"{target} writes {low}..{high - 1} on axis {axis}, "
                                      f"outside 0..{extent - 1}", einsum_or_init.line,
                                      einsum_or_init.column)
            kept = [slice(None)] * values.ndim  # drop the padding of a ragged last tile
            kept[len([b for b in basic if isinstance(b, slice)])] = \
                slice(max(0, -low), (high - low) - max(0, high - extent))
            values = values[tuple(kept)]
            present = present[tuple(kept)] if present is not None else None
            low, high = max(low, 0), min(high, extent)
        basic.append(slice(low - stored.origin[axis], high - stored.origin[axis]))
    region = stored.data[(*basic, Ellipsis)]  # the Ellipsis keeps a single point a view
    if accumulate is not None:  # a partial reduction over the tile variable
        operator = REDUCE_OPERATORS[accumulate]
        if present is not None:
            values = np.where(present, values, operator.identity)
        region[...] = operator.ufunc(region, values)
        if stored.present is not None:
            stored.present[tuple(basic)] |= True if present is None else present
        return region
    if present is None and stored.present is None and region.size == stored.data.size and \
            isinstance(values, np.ndarray) and values.base is None and values.flags.writeable \
            and values.dtype == stored.data.dtype and values.size == region.size:
        stored.data = values.reshape(stored.data.shape)  # a fresh array fills the window: adopt
        return stored.data
    region[...] = values if present is None else np.where(present, values, 0)
    if present is not None or stored.present is not None:
        if stored.present is None:
            stored.present = np.ones(stored.data.shape, bool)
        stored.present[tuple(basic)] = True if present is None else present
    return region


def _scatter(target, stored, values, present, env, bindings, out_free):
    grids = variable_grids(out_free, env)
    variables = {**grids, **bindings}
    shape = values.shape
    coordinates, valid = [], np.ones(shape, bool)
    for axis, original in enumerate(target.indices):
        index = np.broadcast_to(np.asarray(original.evaluate(env.sizes, variables)), shape)
        valid &= (index >= 0) & (index < stored.extent[axis])
        coordinates.append(index % stored.data.shape[axis] if axis == stored.window_axis
                           else index - stored.origin[axis])
    selected = tuple(c[valid] for c in coordinates)
    stored.data[selected] = (values if present is None else np.where(present, values, 0))[valid]
    if present is not None:
        if stored.present is None:
            stored.present = np.ones(stored.data.shape, bool)
        stored.present[selected] = present[valid]
