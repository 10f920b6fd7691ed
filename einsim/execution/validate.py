"""Validate a cascade numerically against its plain-NumPy reference."""

from __future__ import annotations

import time
from typing import Callable, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict

from einsim.language import ir
from einsim.errors import EinsimError, InputError
from einsim.execution.execute import check_sizes, guard_memory, run
from einsim.library import ENTRIES
from einsim.library.references import REFERENCES
from einsim.execution.precision import number_format
from einsim.language.sizes import (index_size_names, input_axis_ranks, resolve_sizes,
                                   tensor_extents)


class ValidationResult(BaseModel):
    """The outcome of one validation: did the cascade match its reference, and how closely."""

    model_config = ConfigDict(frozen=True)

    cascade: str
    ok: bool
    max_abs_error: float
    max_rel_error: float
    tolerance: float
    dtype: str
    seconds: float
    overflow: dict[str, int] = {}
    output: str = ""
    reference: str = ""


def size_names(cascade: ir.Cascade) -> set[str]:
    """Every size a cascade can be given: ranks, partition parts, tile sizes and parameters."""
    names = {ir.rank_of(v) for v in cascade.rank_variables}
    names |= {r.name for r in cascade.ranks} | {p.name for p in cascade.params}
    for decl in cascade.inputs:
        names |= {r for r in decl.ranks if r}
    for partition in cascade.partitions:
        names |= {partition.rank, *partition.parts}
        names |= {s for s in partition.sizes if isinstance(s, str)}
    for einsum in cascade.einsums:
        for node in ir.walk(einsum.expression):
            if isinstance(node, ir.Symbol) and node.name[0].isupper():
                names.add(node.name)
    return names | index_size_names(cascade)


def random_inputs(cascade: ir.Cascade, sizes: Mapping[str, float], seed: int = 0,
                  scale: float = 1.0) -> dict[str, np.ndarray]:
    """Standard-normal inputs (times ``scale``) with the shapes the cascade implies."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for name in cascade.input_names:
        ranks = input_axis_ranks(cascade, name)
        missing = [r for r in ranks if r is None or r not in sizes]
        if missing:
            raise EinsimError(f"cannot make a random input {name}: the size of axis "
                              f"{ranks.index(missing[0])} is unknown; pass it in sizes")
        inputs[name] = scale * rng.standard_normal([int(sizes[r]) for r in ranks])
    return inputs


def _reference_for(cascade: ir.Cascade, reference) -> tuple[Callable, str]:
    """The reference function and how to name it."""
    if isinstance(reference, ir.Cascade):
        return _cascade_reference(reference), f"cascade {reference.name or 'reference'}"
    if callable(reference):
        return reference, getattr(reference, "__name__", "the given reference")
    if reference is None:
        function = ENTRIES[cascade.name].reference if cascade.name in ENTRIES \
            else REFERENCES["attention"]
        names = [k for k, v in REFERENCES.items() if v is function]
        return function, _describe(names[0] if names else function.__name__)
    if not isinstance(reference, str) or reference not in REFERENCES:
        raise EinsimError(f"unknown reference {reference!r}; expected one of "
                          f"{', '.join(REFERENCES)}, a function or a Cascade")
    return REFERENCES[reference], _describe(reference)


def _describe(name: str) -> str:
    return "plain NumPy attention" if name == "attention" else f"NumPy {name}"


def _cascade_reference(reference: ir.Cascade) -> Callable:
    """Execute another cascade (in float64, untiled) as the reference; compare its outputs."""
    known = size_names(reference)

    def check(inputs: Mapping[str, np.ndarray], sizes: Mapping[str, float]) -> dict:
        missing = [n for n in reference.input_names if n not in inputs]
        if missing:
            raise InputError(f"the reference cascade {reference.name} reads {missing[0]}, which "
                             f"the validated cascade does not ({', '.join(inputs) or 'no inputs'})")
        given = {k: v for k, v in sizes.items() if k in known}
        result = run(reference, {n: inputs[n] for n in reference.input_names}, given)
        return {name: result.tensors[name] for name in reference.outputs}

    return check


def validate(cascade: ir.Cascade, sizes: Mapping[str, float] | None = None, dtype="float64",
             reference=None, inputs: Mapping[str, np.ndarray] | None = None, seed: int = 0,
             tile: str | None = None, scale: float = 1.0) -> ValidationResult:
    """Execute ``cascade`` and compare its output with the reference.

    Parameters
    ----------
    cascade : Cascade
    sizes : dict, optional
        Rank sizes and parameters; library cascades default to their entry's sizes.
    dtype : str
        Number format of the execution (the reference is always float64).
    reference : str or callable, optional
        A name from :data:`einsim.library.references.REFERENCES` (``"attention"``,
        ``"causal-attention"``...) or a function ``(inputs, sizes) -> {tensor: array}``.
        Defaults to the library entry's reference, else plain attention.
    inputs : dict, optional
        Input arrays; standard-normal random ones (times ``scale``) by default.
    tile : str, optional
        Execute tile by tile along this rank variable (see :func:`einsim.execution.execute`).

    Notes
    -----
    The result is ``ok`` when the largest error is within the format's relative tolerance
    (1e-9 for float64) of the reference's largest magnitude and nothing overflowed.
    """
    if not isinstance(cascade, ir.Cascade):
        raise InputError(f"cascade must be a Cascade (from einsim.parse or einsim.library.get), "
                         f"got {type(cascade).__name__}")
    number = number_format(dtype)
    given = dict(ENTRIES[cascade.name].sizes) if cascade.name in ENTRIES and sizes is None \
        else dict(check_sizes(cascade, sizes) or {})
    check, reference_name = _reference_for(cascade, reference)
    if inputs is None:
        resolved = resolve_sizes(cascade, {}, given) if given else {}
        if given:
            check_memory(cascade, {**resolved, **given}, tile)
        inputs = random_inputs(cascade, {**resolved, **given}, seed, scale)
    started = time.perf_counter()
    execution = run(cascade, inputs, given, number, tile)
    seconds = time.perf_counter() - started
    try:
        expected = check({k: np.asarray(v, np.float64) for k, v in inputs.items()},
                         execution.sizes)
    except KeyError as missing:
        raise EinsimError(f"the reference ({reference_name}) needs input {missing}, which "
                          f"{cascade.name or 'the cascade'} does not read (it reads "
                          f"{', '.join(cascade.input_names) or 'nothing'}); give a matching "
                          "reference (a name or a cascade file)") from None
    worst_abs, worst_rel, output = 0.0, 0.0, ""
    for name, want in expected.items():
        if name not in execution.tensors:
            raise EinsimError(f"the reference checks {name}, which the cascade does not return; "
                              f"it computes {', '.join(execution.tensors)}")
        got = execution.tensors[name].astype(np.float64)
        if got.shape != want.shape:
            raise EinsimError(f"{name} has shape {got.shape} but the reference gives {want.shape}")
        error = float(np.max(np.abs(got - want))) if got.size else 0.0
        if not np.isfinite(error):
            error = float("inf")
        relative = error / max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-300)
        if error >= worst_abs:
            worst_abs, worst_rel, output = error, relative, name
    ok = worst_rel <= number.relative_tolerance and not execution.overflow
    return ValidationResult(cascade=cascade.name or "cascade", ok=ok, max_abs_error=worst_abs,
                            max_rel_error=worst_rel, tolerance=number.relative_tolerance,
                            dtype=number.name, seconds=seconds, overflow=execution.overflow,
                            output=output, reference=reference_name)


def check_memory(cascade: ir.Cascade, sizes: Mapping[str, float], tile: str | None) -> None:
    """Refuse sizes whose execution would not fit in memory before making the inputs."""
    from einsim.execution.schedule import tiled_schedule, untiled_schedule
    from einsim.execution.execute import _windows

    shapes = {name: tuple(int(sizes[r]) for r in input_axis_ranks(cascade, name))
              for name in cascade.input_names
              if all(r is not None and r in sizes for r in input_axis_ranks(cascade, name))}
    try:
        extents = tensor_extents(cascade, sizes, shapes)
    except KeyError:  # a size is missing: the execution names it
        return
    schedule = tiled_schedule(cascade, tile) if tile else untiled_schedule(cascade)
    windows = _windows(cascade, schedule, set()) if tile else {}
    guard_memory(cascade, extents, sizes, schedule, windows, 8)


def estimate_operations(cascade: ir.Cascade, sizes: Mapping[str, float]) -> int:
    """Points the execution visits: the iteration space of every Einsum (0 if sizes are open)."""
    import math

    try:
        resolved = {**resolve_sizes(cascade, {}, sizes), **sizes}
        return sum(math.prod(int(resolved[ir.rank_of(v)]) for v in e.variables)
                   for e in cascade.einsums)
    except (EinsimError, KeyError):
        return 0

