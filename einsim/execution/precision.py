"""Number formats: native float64/float32, and float16/bfloat16 emulation that reports overflow.

Emulated formats compute each Einsum in float64 and round its output to the storage format, so
an overflow (a finite value that becomes infinite when stored, e.g. ``exp`` of unscaled logits
in float16) is detected and attributed to the tensor that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from einsim.errors import EinsimError


def _round_bfloat16(values: np.ndarray) -> np.ndarray:
    """Round to the nearest bfloat16 (ties to even), returned as float64."""
    single = np.asarray(values, np.float64).astype(np.float32)
    bits = single.view(np.uint32)
    nan = np.isnan(single)
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000))
    out = rounded.view(np.float32).astype(np.float64)
    return np.where(nan, np.nan, out)


@dataclass(frozen=True)
class NumberFormat:
    """How values are computed (``compute``), rounded for storage and returned to the caller."""

    name: str
    compute: type
    returned: type
    round: Callable[[np.ndarray], np.ndarray] | None
    relative_tolerance: float


FORMATS: dict[str, NumberFormat] = {
    f.name: f
    for f in [
        NumberFormat("float64", np.float64, np.float64, None, 1e-9),
        NumberFormat("float32", np.float32, np.float32, None, 1e-4),
        NumberFormat("float16", np.float64, np.float16,
                     lambda v: np.asarray(v).astype(np.float16).astype(np.float64), 2e-2),
        NumberFormat("bfloat16", np.float64, np.float32, _round_bfloat16, 1e-1),
    ]
}

_ALIASES = {"fp64": "float64", "double": "float64", "fp32": "float32", "single": "float32",
            "fp16": "float16", "half": "float16", "bf16": "bfloat16"}


def number_format(dtype) -> NumberFormat:
    """Look up a format by name (``float16``, ``fp16``, ``bf16``...) or NumPy dtype."""
    if isinstance(dtype, NumberFormat):
        return dtype
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    name = _ALIASES.get(name.lower(), name.lower())
    if name not in FORMATS:
        raise EinsimError(f"unknown dtype {dtype!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[name]


def round_in_place(region: np.ndarray, present, number: NumberFormat) -> int:
    """Round ``region`` to the storage format; return how many finite values overflowed."""
    if number.round is None:
        return 0
    rounded = number.round(region)
    overflow = np.isinf(rounded) & np.isfinite(region)
    if present is not None:
        overflow &= present
    region[...] = rounded
    return int(np.count_nonzero(overflow))
