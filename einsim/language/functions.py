"""The element-wise functions, reduction operators and mask predicates of the Einsum language.

One table serves the parser (names and arities), the executor (NumPy implementations) and the
op counter (the operation type each function costs as).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from einsim.errors import SizeError


def _safe_subtract(a, b):
    """``a - b`` where the difference of two ``-inf`` logits is ``-inf`` (not NaN).

    A running maximum over a fully masked prefix is ``-inf``; ``exp(-inf - -inf)`` must then
    contribute nothing instead of poisoning the row with NaN (the FlashAttention convention).
    """
    result = np.subtract(a, b)
    smaller = a if np.size(a) < np.size(b) else b
    if not np.isneginf(smaller).any():  # cheap: running maxima are much smaller than tiles
        return result
    both = np.isneginf(a) & np.isneginf(b)
    return np.where(both, -np.inf, result) if np.ndim(result) else \
        (np.float64(-np.inf) if both else result)


def _safe_divide(a, b):
    """``a / b`` where ``0 / 0`` is 0: a query that attends no key outputs 0, not NaN."""
    result = np.divide(a, b)
    nan = np.isnan(result)
    if np.any(nan):
        result = np.where(nan & (np.asarray(a) == 0) & (np.asarray(b) == 0), 0.0, result)
    return result


def _elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class MapFunction:
    """An element-wise function: its arity, NumPy implementation and op type for counting."""

    name: str
    arity: int
    numpy: Callable
    operation: str


MAP_FUNCTIONS: dict[str, MapFunction] = {
    f.name: f
    for f in [
        MapFunction("exp", 1, np.exp, "exp"),
        MapFunction("log", 1, np.log, "log"),
        MapFunction("sqrt", 1, np.sqrt, "sqrt"),
        MapFunction("neg", 1, np.negative, "neg"),
        MapFunction("abs", 1, np.abs, "abs"),
        MapFunction("recip", 1, lambda x: _safe_divide(1.0, x), "div"),
        MapFunction("square", 1, np.square, "mul"),
        MapFunction("tanh", 1, np.tanh, "tanh"),
        MapFunction("sigmoid", 1, _sigmoid, "sigmoid"),
        MapFunction("relu", 1, lambda x: np.maximum(x, 0), "max"),
        MapFunction("elu", 1, _elu, "exp"),
        MapFunction("max", 2, np.maximum, "max"),
        MapFunction("min", 2, np.minimum, "min"),
        MapFunction("where", 3, np.where, "select"),
    ]
}

BINARY_OPERATORS: dict[str, tuple[Callable, str]] = {
    "+": (np.add, "add"),
    "-": (_safe_subtract, "add"),
    "*": (np.multiply, "mul"),
    "/": (_safe_divide, "div"),
}

COMPARISONS: dict[str, Callable] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


@dataclass(frozen=True)
class ReduceOperator:
    """A reduction: its NumPy ufunc, identity (the value of an empty fiber) and op type."""

    name: str
    ufunc: np.ufunc
    identity: float
    operation: str


REDUCE_OPERATORS: dict[str, ReduceOperator] = {
    r.name: r
    for r in [
        ReduceOperator("sum", np.add, 0.0, "add"),
        ReduceOperator("max", np.maximum, -np.inf, "max"),
        ReduceOperator("min", np.minimum, np.inf, "min"),
        ReduceOperator("prod", np.multiply, 1.0, "mul"),
        ReduceOperator("any", np.maximum, 0.0, "max"),
    ]
}


def window_bounds(i, length, window, stride=1, causal=False):
    """NATTEN window ``[start, end)`` of in-group query coordinate ``i`` on an axis (group) of
    ``length``; vectorized over ``i`` and ``length``.

    Strided queries share their group leader's window; non-causal windows shift inward at the
    edges and never shrink; causal windows end at the query.
    """
    first = (i // stride) * stride
    if causal:
        leader = np.minimum(first + stride - 1, length - 1)
        return np.maximum(leader - window + 1, 0), i + 1
    leader = np.minimum(first + stride // 2, length - 1)
    start = np.clip(leader - window // 2, 0, np.maximum(length - window, 0))
    return start, start + window


def neighborhood(query, key, length, window, stride=1, dilation=1, causal=0):
    """True where ``key`` is in the GNA neighbourhood of ``query`` along one axis (NATTEN rules).

    Works element-wise on broadcast integer arrays.  Dilation splits the axis into groups
    ``x mod D`` of length ``ceil((L - g) / D)``; the window rule runs on in-group coordinates.
    """
    query = np.asarray(query)
    key = np.asarray(key)
    check_predicate_args("neighborhood", [query, key, length, window, stride, dilation, causal])
    length, window, stride, dilation = int(length), int(window), int(stride), int(dilation)
    group = query % dilation
    start, end = window_bounds(query // dilation, -(-(length - group) // dilation), window,
                               stride, bool(causal))
    j = key // dilation
    return ((key % dilation) == group) & (j >= start) & (j < end)


def within(a, b, radius):
    """True where ``|a - b| <= radius`` (a symmetric band, e.g. sliding-window attention)."""
    return np.abs(np.asarray(a) - np.asarray(b)) <= radius


@dataclass(frozen=True)
class Predicate:
    """A mask predicate usable in ``where`` filters; ``min_args``/``max_args`` bound its arity.

    The first ``variable_args`` arguments are coordinates; the rest are scalars with the given
    names and the smallest value each accepts (``None``: any).
    """

    name: str
    min_args: int
    max_args: int
    numpy: Callable
    arg_names: tuple[str, ...] = ()
    variable_args: int = 2
    minimums: tuple[int | None, ...] = ()
    maximums: tuple[int | None, ...] = ()


PREDICATES: dict[str, Predicate] = {
    "neighborhood": Predicate("neighborhood", 4, 7, neighborhood,
                              ("query", "key", "length", "window", "stride", "dilation",
                               "causal"), 2, (None, None, 1, 1, 1, 1, 0),
                              (None, None, None, None, None, None, 1)),
    "within": Predicate("within", 3, 3, within, ("a", "b", "radius"), 3),
}


def check_predicate_args(name: str, args) -> None:
    """Raise :class:`~einsim.errors.SizeError` (a ``ValueError``) naming the first scalar
    argument of predicate ``name`` out of its integer range (a neighborhood window of 0, ...)."""
    spec = PREDICATES[name]
    for position in range(spec.variable_args, len(args)):
        value, arg = args[position], spec.arg_names[position]
        if value is None:  # not known yet
            continue
        if np.ndim(value) != 0:
            raise SizeError(f"{name}() argument {arg} must be a scalar, got an array")
        number = float(value)
        low, high = spec.minimums[position], spec.maximums[position]
        if not np.isfinite(number) or not number.is_integer():
            raise SizeError(f"{name}() argument {arg} = {number!r}; expected an integer")
        if low is not None and number < low or high is not None and number > high:
            bound = f"at least {low}" if high is None else f"{low} or {high}" \
                if high - low == 1 else f"{low} to {high}"
            raise SizeError(f"{name}() argument {arg} = {int(number)}; expected {bound}")


def condition_mask(condition, sizes, variables) -> np.ndarray:
    """The boolean mask of a ``where`` condition: ``variables`` maps each rank variable to its
    (broadcastable) values, ``sizes`` gives the sizes and parameters the indices use."""
    from einsim.language import ir

    if isinstance(condition, ir.IndexComparison):
        return COMPARISONS[condition.op](condition.left.evaluate(sizes, variables),
                                         condition.right.evaluate(sizes, variables))
    if isinstance(condition, ir.Predicate):
        return PREDICATES[condition.name].numpy(*(a.evaluate(sizes, variables)
                                                  for a in condition.args))
    if isinstance(condition, ir.Not):
        return ~condition_mask(condition.operand, sizes, variables)
    left = condition_mask(condition.left, sizes, variables)
    right = condition_mask(condition.right, sizes, variables)
    return (left & right) if condition.op == "and" else (left | right)
