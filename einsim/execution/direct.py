"""Evaluating an Einsum straight into its storage: no temporaries per tile.

When an Einsum has no filter and nothing it reads or writes has empty points, its values are
computed into the region of its output tensor (``np.matmul(..., out=)``, ufuncs with
``out=``, reductions with ``out=``), the way a hand-written NumPy loop reuses its buffers.
:func:`destination` says whether that is possible and gives the region;
:func:`evaluate_einsum_into` fills it or raises :class:`~einsim.execution.einsums.Fallback` (before
anything but the region has changed) when empty points appear, and the caller then evaluates
the ordinary way.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from einsim.language import ir
from einsim.execution.einsums import (CONSTANT, Environment, Fallback, _contract, _extent_of, _form,
                               _product_factors, _start, evaluate_expression, variable_grids)
from einsim.language.functions import (BINARY_OPERATORS, MAP_FUNCTIONS, REDUCE_OPERATORS, _safe_divide,
                              _safe_subtract)

def destination(einsum: ir.Einsum, env: Environment, bindings: Mapping[str, int],
                donor: str | None = None):
    """A view of the Einsum's output region in free-output-variable order, when its values can
    be computed straight into storage (no filter, no presence masks, a plain slice, no read
    overlapping the write); None otherwise.  Slides a window forward as writing would."""
    target = einsum.output
    stored = env.tensors[target.tensor]
    if stored.present is not None or not _static(einsum, bindings)[0]:
        return None
    for access in einsum.inputs:
        if env.tensors[access.tensor].present is not None:
            return None
    basic: list = []
    axis_vars: list[str] = []
    for axis, original in enumerate(target.indices):
        form = _form(original, bindings)
        extent = stored.extent[axis]
        variable = form[3]
        if not form[4]:
            return None
        if variable is None:
            value = _start(form, env.sizes, bindings)
            if not 0 <= value < extent:
                return None
            if stored.window_axis == axis:
                stored.shift_to(axis, value)
            if not 0 <= value - stored.origin[axis] < stored.data.shape[axis]:
                return None
            basic.append(stored.slot(axis, value))
            continue
        if variable in axis_vars or axis == stored.window_axis:
            return None
        low = _start(form, env.sizes, bindings) - stored.origin[axis]
        high = low + _extent_of(variable, env)
        if low < 0 or high > stored.data.shape[axis] or low + stored.origin[axis] < 0 \
                or high + stored.origin[axis] > extent:
            return None
        basic.append(slice(low, high))
        axis_vars.append(variable)
    out_free = [v for v in target.variables if v not in bindings]
    if sorted(out_free) != sorted(axis_vars):
        return None
    base = stored.data
    if donor is not None:  # compute in place in a tensor this is its last read of
        given = env.tensors[donor]
        if given.present is None and given.data.shape == base.shape and \
                given.data.dtype == base.dtype:
            base = given.data
    region = base[(*basic, Ellipsis)]
    return region.transpose([axis_vars.index(v) for v in out_free])


_STATIC: dict[tuple, tuple] = {}


def _static(einsum: ir.Einsum, bindings: Mapping[str, int]) -> tuple:
    """What does not change between loop steps: (can write straight into storage, product
    factors of a sum of products or None, whether the expression reads index variables)."""
    key = (id(einsum), tuple(bindings))
    found = _STATIC.get(key)
    if found is None or found[3] is not einsum:
        if len(_STATIC) > 20_000:
            _STATIC.clear()
        direct = einsum.condition is None and all(
            _disjoint(a, einsum.output, bindings) for a in einsum.inputs
            if a.tensor == einsum.output.tensor)
        factors = _product_factors(einsum.expression) if einsum.reduce_op == "sum" else None
        if factors is not None and not any(isinstance(f, ir.Access) for f in factors):
            factors = None
        found = _STATIC[key] = (direct, factors, _uses_grids(einsum), einsum)
    return found


def _disjoint(read: ir.Access, written: ir.Access, bindings) -> bool:
    """Whether a read of the output tensor is at a constant offset from the write on some axis."""
    for r, w in zip(read.indices, written.indices):
        r, w = r.substitute(bindings), w.substitute(bindings)
        if not r.variables and not w.variables and not r.size_symbols and not w.size_symbols:
            if r.offset({}) != w.offset({}):
                return True
            continue
        if len(r.variables) == 1 and r.variables == w.variables:
            (cr, rr), (cw, rw) = r.split_variable(r.variables[0]), w.split_variable(w.variables[0])
            if cr == cw and not rr.variables and not rw.variables and not rr.size_symbols \
                    and not rw.size_symbols and rr.offset({}) != rw.offset({}):
                return True
    return False


def evaluate_einsum_into(einsum: ir.Einsum, env: Environment, bindings, out) -> None:
    """Evaluate ``einsum`` straight into ``out`` (from :func:`destination`).

    Raises :class:`Fallback` before changing anything but ``out`` when empty points appear.
    """
    free = [v for v in einsum.variables if v not in bindings]
    out_free = [v for v in einsum.output.variables if v not in bindings]
    reduced = [v for v in einsum.reduced if v not in bindings]
    operator = REDUCE_OPERATORS[einsum.reduce_op]
    _, factors, uses_grids, _ = _static(einsum, bindings)
    if reduced and factors is not None:
        values, present = _contract(factors, env, bindings, free, out_free, None, out)
        if present is not None:
            raise Fallback
        return
    grids = variable_grids(free, env) if uses_grids else {}
    if not reduced:
        _into(einsum.expression, env, bindings, free, grids, out)
        return
    if operator.name == "any":
        raise Fallback
    values, present = evaluate_expression(einsum.expression, env, bindings, free, grids)
    if present is not CONSTANT and present is not None:
        raise Fallback
    shape = [_extent_of(v, env) for v in free]
    values = np.broadcast_to(np.asarray(values, env.dtype), shape)
    axes = tuple(range(len(out_free), len(free)))
    if values.size:
        operator.ufunc.reduce(values, axis=axes, out=out)
    else:
        operator.ufunc.reduce(values, axis=axes, out=out, initial=operator.identity)


def _uses_grids(einsum: ir.Einsum) -> bool:
    return any(isinstance(n, ir.Symbol) and not n.name[0].isupper()
               for n in ir.walk(einsum.expression))


_INTO_BINARY = {np.add: np.add, np.multiply: np.multiply, _safe_subtract: np.subtract,
                _safe_divide: np.divide}


def _into(node, env: Environment, bindings, free, grids, out) -> None:
    """Write the values of ``node`` (broadcast) into ``out``, reusing it for temporaries."""
    if isinstance(node, ir.Call) and len(node.args) == 1 and \
            isinstance(MAP_FUNCTIONS[node.function].numpy, np.ufunc):
        _into(node.args[0], env, bindings, free, grids, out)
        MAP_FUNCTIONS[node.function].numpy(out, out=out)
        return
    if isinstance(node, ir.BinaryOp) and BINARY_OPERATORS[node.op][0] in _INTO_BINARY:
        function = BINARY_OPERATORS[node.op][0]
        right, right_present = _value(node.right, env, bindings, free, grids)
        if function in (np.add, np.multiply) and isinstance(node.left, (ir.BinaryOp, ir.Call)):
            _into(node.left, env, bindings, free, grids, out)
            left = out
        else:
            left, _ = _value(node.left, env, bindings, free, grids)
        if function is _safe_subtract:  # the -inf mask first: ``out`` may hold ``left``
            smaller = left if np.size(left) < np.size(right) else right
            both = np.isneginf(left) & np.isneginf(right) if np.isneginf(smaller).any() \
                else None
            np.subtract(left, right, out=out)
            if both is not None:
                np.copyto(out, -np.inf, where=both)
        elif function is _safe_divide:
            np.divide(left, right, out=out)
            nan = np.isnan(out)
            if nan.any():
                np.copyto(out, 0.0, where=nan & (np.asarray(left) == 0) & (np.asarray(right) == 0))
        else:
            function(left, right, out=out)
        return
    values, _ = _value(node, env, bindings, free, grids)
    np.copyto(out, values)


def _value(node, env, bindings, free, grids):
    values, present = evaluate_expression(node, env, bindings, free, grids)
    if present is not CONSTANT and present is not None:
        raise Fallback
    return values, present
