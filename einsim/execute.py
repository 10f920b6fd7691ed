"""The NumPy executor: run a cascade, whole or tile by tile along a partitioned rank.

>>> import numpy as np, einsim
>>> c = einsim.parse("QK[m,p] = Q[e,p] * K[e,m]")
>>> out = einsim.execute(c, {"Q": np.ones((2, 3)), "K": np.ones((2, 4))})
>>> out["QK"].shape
(4, 3)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from einsim import ir
from einsim.errors import InputError, PrecisionOverflowWarning
from einsim.functions import REDUCE_OPERATORS
from einsim.evaluation import (Environment, Stored, evaluate_einsum, evaluate_expression,
                               variable_grids, write)
from einsim.precision import NumberFormat, number_format, round_in_place
from einsim.schedule import Loop, Step, Whole, tiled_schedule, untiled_schedule
from einsim.sizes import resolve_sizes, tensor_extents


@dataclass
class Execution:
    """What a run produced: tensors, resolved sizes and overflow counts per tensor."""

    tensors: dict[str, np.ndarray]
    sizes: dict[str, float]
    overflow: dict[str, int] = field(default_factory=dict)
    schedule: list[Step] = field(default_factory=list)


def run(cascade: ir.Cascade, inputs: Mapping[str, np.ndarray],
        sizes: Mapping[str, float] | None = None, dtype="float64", tile: str | None = None,
        keep: Iterable[str] = ()) -> Execution:
    """Execute ``cascade`` and return an :class:`Execution` (see :func:`execute`)."""
    number = number_format(dtype)
    arrays = _check_inputs(cascade, inputs)
    resolved = resolve_sizes(cascade, {k: v.shape for k, v in arrays.items()}, sizes)
    extents = tensor_extents(cascade, resolved, {k: v.shape for k, v in arrays.items()})
    schedule = tiled_schedule(cascade, tile) if tile else untiled_schedule(cascade)
    windows = _windows(cascade, schedule, set(keep)) if tile else {}
    env = Environment(cascade, resolved, {}, number.compute)
    overflow: dict[str, int] = {}
    for name, array in arrays.items():
        data = array.astype(number.compute, copy=True)
        with np.errstate(over="ignore"):  # overflow is counted and reported below
            count = round_in_place(data, None, number)
        if count:
            overflow[name] = count
        env.tensors[name] = Stored(data, extents[name])
    for einsum in cascade.einsums:
        shape = list(extents[einsum.name])
        if einsum.name in windows:
            axis, length = windows[einsum.name]
            shape[axis] = length
        env.tensors[einsum.name] = Stored(np.zeros(shape, number.compute), extents[einsum.name],
                                          window_axis=windows.get(einsum.name, (None,))[0])
    with np.errstate(all="ignore"):
        for init in cascade.inits:
            _initialise(init, env)
        for step in schedule:
            if isinstance(step, Whole):
                _evaluate(cascade.producers[step.einsum], env, {}, number, overflow)
                continue
            accumulating = [cascade.producers[m] for m in step.members
                            if step.variable in cascade.producers[m].reduced]
            for einsum in accumulating:  # start empty, holding the reduction's identity
                stored = env.tensors[einsum.name]
                stored.data[...] = _identity(einsum)
                stored.present = np.zeros(stored.data.shape, bool)
            for value in range(int(resolved[ir.rank_of(step.variable)])):
                for member in step.members:
                    _evaluate(cascade.producers[member], env, {step.variable: value}, number,
                              overflow)
            for einsum in accumulating:
                stored = env.tensors[einsum.name]
                stored.data[~stored.present] = 0
                if stored.present.all():
                    stored.present = None
    tensors = {}
    for einsum in cascade.einsums:
        if einsum.name not in windows:
            tensors[einsum.name] = env.tensors[einsum.name].data.astype(number.returned,
                                                                        copy=False)
    return Execution(tensors, dict(resolved), overflow, schedule)


def execute(cascade: ir.Cascade, inputs: Mapping[str, np.ndarray],
            sizes: Mapping[str, float] | None = None, dtype="float64", tile: str | None = None,
            keep: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Run a cascade on NumPy arrays and return every tensor it computes.

    Parameters
    ----------
    cascade : Cascade
        From :func:`einsim.parse` or :func:`einsim.library.get`.
    inputs : dict of str to ndarray
        One array per input tensor; axes in the index order of the tensor's accesses
        (``Q[e, p]`` → shape ``(E, P)``, ``K[e, m1*M0 + m0]`` → ``(E, M)``).
    sizes : dict, optional
        Sizes not implied by the inputs (tile sizes such as ``M0``, parameters such as ``W``).
    dtype : str or dtype
        ``float64`` (default), ``float32``, or the emulated ``float16``/``bfloat16``, which warn
        with :class:`~einsim.errors.PrecisionOverflowWarning` when finite values overflow.
    tile : str, optional
        A rank variable (e.g. ``"m1"``) to execute tile by tile: one loop over it per pass.
        Tensors that only live inside a tile are then not returned (that is the point: the
        1-pass cascades never hold the M x P matrix) unless named in ``keep``.

    Returns
    -------
    dict of str to ndarray
        Computed tensors by name; empty points hold 0.
    """
    result = run(cascade, inputs, sizes, dtype, tile, keep)
    if result.overflow:
        details = ", ".join(f"{k} ({v} values)" for k, v in result.overflow.items())
        warnings.warn(f"{number_format(dtype).name} overflow in {details}",
                      PrecisionOverflowWarning, stacklevel=2)
    return result.tensors


def _check_inputs(cascade: ir.Cascade, inputs: Mapping[str, np.ndarray]) -> dict:
    arrays = {}
    for name in cascade.input_names:
        if name not in inputs:
            raise InputError(f"input {name} is missing; the cascade reads "
                             f"{', '.join(cascade.input_names)}")
        arrays[name] = np.asarray(inputs[name])
        if not np.issubdtype(arrays[name].dtype, np.number):
            raise InputError(f"input {name} must be numeric, got dtype {arrays[name].dtype}")
    return arrays


def _identity(einsum: ir.Einsum) -> float:
    return REDUCE_OPERATORS[einsum.reduce_op].identity


def _initialise(init: ir.Init, env: Environment) -> None:
    free = list(init.target.variables)
    values, _ = evaluate_expression(init.value, env, {}, free, variable_grids(free, env))
    shape = [int(env.sizes[ir.rank_of(v)]) for v in free]
    write(init, init.target, np.broadcast_to(np.asarray(values, env.dtype), shape), None, env, {})


def _evaluate(einsum: ir.Einsum, env: Environment, bindings, number: NumberFormat,
              overflow: dict[str, int]) -> None:
    values, present = evaluate_einsum(einsum, env, bindings)
    accumulate = einsum.reduce_op if any(v in bindings for v in einsum.reduced) else None
    if number.round is not None and accumulate is None:
        values = np.array(values, dtype=env.dtype)
        count = round_in_place(values, present, number)
        if count:
            overflow[einsum.name] = overflow.get(einsum.name, 0) + count
    region = write(einsum, einsum.output, values, present, env, bindings, accumulate)
    if accumulate is not None and number.round is not None and region is not None:
        count = round_in_place(region, None, number)
        if count:
            overflow[einsum.name] = overflow.get(einsum.name, 0) + count


def _windows(cascade: ir.Cascade, schedule: list[Step], keep: set[str]) -> dict[str, tuple]:
    """Tensors a tiled run can hold as a sliding window along the tile axis: name → (axis, len).

    A tensor written in a tile loop at ``v + c`` and read only in that loop at ``v + d``
    (d <= c), or after it at its final coordinate, needs only ``c - min(d) + 1`` slices.
    """
    windows = {}
    loop_of = {m: step for step in schedule if isinstance(step, Loop) for m in step.members}
    for einsum in cascade.einsums:
        step = loop_of.get(einsum.name)
        if step is None or einsum.name in keep or einsum.name in cascade.outputs:
            continue
        axes = [k for k, index in enumerate(einsum.output.indices)
                if step.variable in index.variables]
        if len(axes) != 1:
            continue
        axis = axes[0]
        coefficient, rest = einsum.output.indices[axis].split_variable(step.variable)
        if coefficient != 1 or rest.variables or rest.size_symbols:
            continue
        written = rest.offset({})
        lowest = written
        allowed = True
        for reader in cascade.einsums:
            for access in reader.inputs:
                if access.tensor != einsum.name:
                    continue
                index = access.indices[axis]
                if loop_of.get(reader.name) is step:
                    c, r = index.split_variable(step.variable)
                    if c != 1 or r.variables or r.size_symbols:
                        allowed = False
                        continue
                    lowest = min(lowest, r.offset({}))
                elif index.variables or reader.name in loop_of:
                    allowed = False  # read elsewhere along the tile axis: keep it whole
        if allowed:
            windows[einsum.name] = (axis, written - lowest + 1)
    return windows
