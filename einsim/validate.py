"""Validate a cascade numerically against its plain-NumPy reference."""

from __future__ import annotations

import time
from typing import Callable, Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict

from einsim import ir
from einsim.errors import EinsimError
from einsim.execute import run
from einsim.library import ENTRIES
from einsim.library.references import REFERENCES
from einsim.precision import number_format
from einsim.sizes import input_axis_ranks, resolve_sizes


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


def _reference_for(cascade: ir.Cascade, reference) -> Callable:
    if callable(reference):
        return reference
    if reference is None:
        if cascade.name in ENTRIES:
            return ENTRIES[cascade.name].reference
        reference = "attention"
    if reference not in REFERENCES:
        raise EinsimError(f"unknown reference {reference!r}; expected one of "
                          f"{', '.join(REFERENCES)}")
    return REFERENCES[reference]


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
        Execute tile by tile along this rank variable (see :func:`einsim.execute`).

    Notes
    -----
    The result is ``ok`` when the largest error is within the format's relative tolerance
    (1e-9 for float64) of the reference's largest magnitude and nothing overflowed.
    """
    number = number_format(dtype)
    given = dict(ENTRIES[cascade.name].sizes) if cascade.name in ENTRIES and sizes is None \
        else dict(sizes or {})
    if inputs is None:
        resolved = resolve_sizes(cascade, {}, given) if given else {}
        inputs = random_inputs(cascade, {**resolved, **given}, seed, scale)
    check = _reference_for(cascade, reference)
    started = time.perf_counter()
    execution = run(cascade, inputs, given, number, tile)
    seconds = time.perf_counter() - started
    expected = check({k: np.asarray(v, np.float64) for k, v in inputs.items()}, execution.sizes)
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
                            output=output)
