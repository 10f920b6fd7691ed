"""The NumPy executor: run a cascade, whole or tile by tile along a partitioned rank.

>>> import numpy as np, einsim
>>> c = einsim.parse("QK[m,p] = Q[e,p] * K[e,m]")
>>> out = einsim.execute(c, {"Q": np.ones((2, 3)), "K": np.ones((2, 4))})
>>> out["QK"].shape
(4, 3)
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from einsim.language import ir
from einsim.errors import EinsimError, InputError, PrecisionOverflowWarning
from einsim.language.functions import MAP_FUNCTIONS, REDUCE_OPERATORS
from einsim.execution.direct import destination, evaluate_einsum_into
from einsim.execution.einsums import (Environment, Fallback, Stored, evaluate_einsum,
                               evaluate_expression, is_contraction, variable_grids, write)
from einsim.execution.precision import NumberFormat, number_format, round_in_place
from einsim.execution.schedule import Loop, Step, Whole, tiled_schedule, untiled_schedule
from einsim.language.sizes import index_size_names, resolve_sizes, tensor_extents


MEMORY_FRACTION = 0.8
"""Share of the available memory an execution may plan to use before it is refused."""


class ResourceLimitError(InputError):
    """An execution would need more memory than is available (estimated before allocating)."""

    def __init__(self, cascade: str, needed: int, limit: int, largest: str, largest_bytes: int,
                 sizes: Mapping[str, float]):
        self.cascade, self.needed, self.limit = cascade, needed, limit
        self.largest, self.largest_bytes, self.sizes = largest, largest_bytes, dict(sizes)
        super().__init__(f"{self.needed_text()}; tile it (tile='m1') or use smaller sizes")

    def needed_text(self) -> str:
        """What would be needed and what is available, in one clause."""
        shown = ", ".join(f"{k}={int(v)}" for k, v in self.sizes.items() if k in ("M", "P", "N"))
        at = f" at {shown}" if shown else ""
        return (f"executing {self.cascade}{at} would need about {format_bytes(self.needed)} of "
                f"memory ({self.largest} alone {format_bytes(self.largest_bytes)}), more than "
                f"the {format_bytes(self.limit)} available")


def format_bytes(count: float) -> str:
    """``8.0 TiB``, ``512.0 MiB``, ``12 B``."""
    if count >= 1024 ** 7:
        return f"about 2^{int(count).bit_length() - 1} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} EiB"  # pragma: no cover


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def estimate_bytes(cascade: ir.Cascade, extents: Mapping[str, tuple[int, ...]],
                   sizes: Mapping[str, float], schedule: list, windows: Mapping[str, tuple],
                   itemsize: int) -> tuple[int, str, int]:
    """(bytes, largest tensor, its bytes) an execution allocates: stored tensors plus the
    largest temporary of one Einsum evaluation (its iteration space, or its output for a sum
    of products, which goes to BLAS without the product)."""
    loop_variable = {m: step.variable for step in schedule if isinstance(step, Loop)
                     for m in step.members}
    stored: dict[str, int] = {}
    for name in (*cascade.input_names, *(e.name for e in cascade.einsums)):
        if name not in extents:
            continue
        shape = list(extents[name])
        if name in windows:
            axis, length = windows[name]
            shape[axis] = length
        stored[name] = math.prod(int(n) for n in shape) * itemsize
    temporary, temporary_name = 0, ""
    for einsum in cascade.einsums:
        bound = loop_variable.get(einsum.name)
        if is_contraction(einsum):
            free = [v for v in einsum.output.variables if v != bound]
        else:
            free = [v for v in einsum.variables if v != bound]
        space = math.prod(int(sizes[ir.rank_of(v)]) for v in free) * itemsize * 2
        if space > temporary:
            temporary, temporary_name = space, einsum.name
    largest = max(stored, key=stored.get, default="")
    total = sum(stored.values()) + temporary
    if temporary > stored.get(largest, 0):
        largest = f"evaluating {temporary_name}"
        return total, largest, temporary
    return total, largest, stored.get(largest, 0)


@dataclass
class Execution:
    """What a run produced: tensors, resolved sizes and overflow counts per tensor."""

    tensors: dict[str, np.ndarray]
    sizes: dict[str, float]
    overflow: dict[str, int] = field(default_factory=dict)
    schedule: list[Step] = field(default_factory=list)


def run(cascade: ir.Cascade, inputs: Mapping[str, np.ndarray],
        sizes: Mapping[str, float] | None = None, dtype="float64", tile: str | None = None,
        keep: Iterable[str] = (), memory_limit: int | None = None) -> Execution:
    """Execute ``cascade`` and return an :class:`Execution` (see :func:`execute`)."""
    _check_cascade(cascade)
    number = _number(dtype)
    arrays = _check_inputs(cascade, inputs)
    sizes = check_sizes(cascade, sizes)
    if tile is not None and not isinstance(tile, str):
        raise InputError(f"tile must be a rank variable name such as 'm1', got "
                         f"{type(tile).__name__} {tile!r}")
    keep = _names(keep, "keep")
    resolved = resolve_sizes(cascade, {k: v.shape for k, v in arrays.items()}, sizes)
    extents = tensor_extents(cascade, resolved, {k: v.shape for k, v in arrays.items()})
    schedule = tiled_schedule(cascade, tile) if tile else untiled_schedule(cascade)
    windows = _windows(cascade, schedule, set(keep)) if tile else {}
    donors = _donors(cascade, schedule, windows)
    guard_memory(cascade, extents, resolved, schedule, windows, np.dtype(number.compute).itemsize,
                 memory_limit)
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
                              overflow, donors)
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
            keep: Iterable[str] = (), memory_limit: int | None = None) -> dict[str, np.ndarray]:
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
    memory_limit : int, optional
        Bytes the execution may allocate; by default 80% of the available memory.  A larger
        estimate (made before allocating) raises :class:`ResourceLimitError`.

    Returns
    -------
    dict of str to ndarray
        Computed tensors by name; empty points hold 0.
    """
    result = run(cascade, inputs, sizes, dtype, tile, keep, memory_limit)
    if result.overflow:
        details = ", ".join(f"{k} ({v} values)" for k, v in result.overflow.items())
        warnings.warn(f"{number_format(dtype).name} overflow in {details}",
                      PrecisionOverflowWarning, stacklevel=2)
    return result.tensors


def guard_memory(cascade: ir.Cascade, extents, sizes, schedule, windows, itemsize: int,
                 memory_limit: int | None = None) -> None:
    """Refuse, before allocating, an execution that would need more than the memory limit
    (default :data:`MEMORY_FRACTION` of the available memory)."""
    if memory_limit is None:
        available = available_memory()
        if available is None:
            return
        memory_limit = int(available * MEMORY_FRACTION)
    needed, largest, largest_bytes = estimate_bytes(cascade, extents, sizes, schedule, windows,
                                                    itemsize)
    if needed > memory_limit:
        raise ResourceLimitError(cascade.name or "the cascade", needed, memory_limit, largest,
                                 largest_bytes, sizes)


def _check_cascade(cascade) -> None:
    if not isinstance(cascade, ir.Cascade):
        raise InputError(f"cascade must be a Cascade (from einsim.parse or einsim.library.get), "
                         f"got {type(cascade).__name__}")


def _number(dtype) -> NumberFormat:
    try:
        return number_format(dtype)
    except EinsimError:
        raise
    except (TypeError, ValueError, AttributeError):
        raise InputError(f"dtype {dtype!r}: expected float64, float32, float16 or bfloat16") \
            from None


def _names(names, argument: str) -> tuple[str, ...]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise InputError(f"{argument} must be a list of tensor names, got {names!r}")
    return tuple(names)


def check_sizes(cascade: ir.Cascade, sizes) -> dict[str, float] | None:
    """``sizes`` as a dict of finite numbers, integral where they size a rank or an index.

    Raises :class:`InputError` naming the size for strings, booleans, inf/nan and fractions.
    """
    if sizes is None:
        return None
    if not isinstance(sizes, Mapping):
        raise InputError(f"sizes must be a dict of size name → number, e.g. {{'M0': 64}}, got "
                         f"{type(sizes).__name__}")
    integral = _integral_sizes(cascade)
    checked: dict[str, float] = {}
    for name, value in sizes.items():
        if not isinstance(name, str):
            raise InputError(f"size name {name!r}: expected a string such as 'M0'")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InputError(f"size {name} = {value!r}: expected a number, got "
                             f"{type(value).__name__}")
        if isinstance(value, numbers.Integral) and abs(int(value)) > 2**63 - 1:
            raise InputError(f"size {name} is too large (about 2**{int(value).bit_length()}); "
                             "expected at most 2**63 - 1")
        if not math.isfinite(value):
            raise InputError(f"size {name} = {value}: expected a finite number")
        if name in integral and value != int(value):
            raise InputError(f"size {name} = {value}: expected an integer (it sizes a rank or "
                             "an index)")
        checked[name] = int(value) if name in integral else value
    return checked


def _integral_sizes(cascade: ir.Cascade) -> set[str]:
    names = {ir.rank_of(v) for v in cascade.rank_variables} | {r.name for r in cascade.ranks}
    for partition in cascade.partitions:
        names |= set(partition.parts) | {s for s in partition.sizes if isinstance(s, str)}
    return names | index_size_names(cascade)


def _check_inputs(cascade: ir.Cascade, inputs: Mapping[str, np.ndarray]) -> dict:
    if not isinstance(inputs, Mapping):
        raise InputError(f"inputs must be a dict of tensor name → array, e.g. {{'Q': q, ...}}, "
                         f"got {type(inputs).__name__}; the cascade reads "
                         f"{', '.join(cascade.input_names)}")
    arrays = {}
    for name in cascade.input_names:
        if name not in inputs:
            raise InputError(f"input {name} is missing; the cascade reads "
                             f"{', '.join(cascade.input_names)}")
        try:
            arrays[name] = np.asarray(inputs[name])
        except (ValueError, TypeError) as error:
            raise InputError(f"input {name}: not an array ({error})") from None
        kind = arrays[name].dtype
        if np.issubdtype(kind, np.complexfloating):
            raise InputError(f"input {name} is complex ({kind}); the executor computes on real "
                             "numbers and would drop the imaginary part")
        if not np.issubdtype(kind, np.number):
            raise InputError(f"input {name} must be numeric, got dtype {kind}")
    return arrays


def _identity(einsum: ir.Einsum) -> float:
    return REDUCE_OPERATORS[einsum.reduce_op].identity


def _initialise(init: ir.Init, env: Environment) -> None:
    free = list(init.target.variables)
    values, _ = evaluate_expression(init.value, env, {}, free, variable_grids(free, env))
    shape = [int(env.sizes[ir.rank_of(v)]) for v in free]
    write(init, init.target, np.broadcast_to(np.asarray(values, env.dtype), shape), None, env, {})


def _evaluate(einsum: ir.Einsum, env: Environment, bindings, number: NumberFormat,
              overflow: dict[str, int], donors: Mapping[str, str] = {}) -> None:
    accumulating = any(v in bindings for v in einsum.reduced)
    if number.round is None and not accumulating:  # compute straight into storage
        donor = donors.get(einsum.name) if bindings else None
        out = destination(einsum, env, bindings, donor)
        if out is not None:
            try:
                evaluate_einsum_into(einsum, env, bindings, out)
            except Fallback:
                pass
            else:
                mine = env.tensors[einsum.name]
                if donor is not None and not np.may_share_memory(out, mine.data):
                    given = env.tensors[donor]  # the values are in the donor's buffer
                    mine.data, given.data = given.data, mine.data
                return
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


def _donors(cascade: ir.Cascade, schedule: list[Step], windows: Mapping[str, tuple]) -> dict:
    """Einsums of a tile loop that can be computed in place in a tensor they read: name → the
    tensor whose buffer they take (as a hand-written loop does ``s -= m; np.exp(s, out=s)``).

    Both must be one-slot windows of the loop, the Einsum element-wise (unary ufuncs around
    ``D``, ``D + X``, ``D * X`` or ``D - X`` with ``X`` not reading ``D``, at the same
    coordinates), and it must be the last reader of ``D``; their buffers are then swapped.
    """
    donors: dict[str, str] = {}
    readers: dict[str, list[str]] = {}
    for einsum in cascade.einsums:
        for access in einsum.inputs:
            readers.setdefault(access.tensor, []).append(einsum.name)
    for step in schedule:
        if not isinstance(step, Loop):
            continue
        for position, name in enumerate(step.members):
            einsum = cascade.producers[name]
            if windows.get(name, (None, 0))[1] != 1 or einsum.reduced or einsum.condition:
                continue
            node = einsum.expression
            while isinstance(node, ir.Call) and len(node.args) == 1 and \
                    isinstance(MAP_FUNCTIONS[node.function].numpy, np.ufunc):
                node = node.args[0]
            if isinstance(node, ir.BinaryOp) and node.op in ("+", "*", "-"):
                other, node = node.right, node.left
                if any(a.tensor == getattr(node, "tensor", None) for a in ir.accesses(other)):
                    continue
            if not isinstance(node, ir.Access) or node.indices != einsum.output.indices:
                continue
            donor = node.tensor
            if donor == name or windows.get(donor, (None, 0))[1] != 1 or \
                    donor not in step.members[:position]:
                continue
            if all(r in step.members[:position + 1] for r in readers.get(donor, [])):
                donors[name] = donor
    return donors

