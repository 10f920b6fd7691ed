"""Proving a rewrite equal to its original by executing both on random inputs.

Sizes are small and ragged: a partitioned rank is not a multiple of its tile.  The inputs are
standard normal, then scaled up (large logits, where an unstable rewrite would overflow), then
with constant rows (0, -1 and +1 along the normaliser's row ranks) so that a mask read from an
input hides every key of some rows.  A 1-pass rewrite also runs tile by tile along its
recurrence variable, as a streaming kernel would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from einsim.execution.execute import run
from einsim.execution.validate import random_inputs, size_names
from einsim.language import ir
from einsim.language.sizes import input_axis_ranks, resolve_sizes

TOLERANCE = 1e-9
"""Largest error accepted, relative to the largest magnitude of the original's output (or 1)."""

_SIZES = {"E": 6, "F": 5, "D": 6, "P": 11, "N": 11}
_SEQUENCE, _TILE, _OTHER = 13, 4, 3


@dataclass(frozen=True)
class Validation:
    """How a rewrite compared with its original."""

    ok: bool
    max_abs_error: float
    cases: int
    """Input sets executed (each by both cascades)."""
    sizes: tuple[tuple[str, int], ...]
    tile: Optional[str]
    """The rank variable the rewrite was also executed tile by tile along, if any."""
    worst: str = ""
    """The output and input set with the largest error."""
    undefined: int = 0
    """Output values the original leaves NaN (e.g. ``inf - inf`` on a row a ``+inf`` mask
    hides entirely): nothing to compare them with, so they are counted, not compared."""


def validation_sizes(cascade: ir.Cascade, rank: str) -> dict[str, int]:
    """Small sizes for every free size of ``cascade``: ``rank`` longer than the others, and
    every partitioned rank ragged against its tiles (13 = 3 * 4 + 1)."""
    fixed = {r.name for r in cascade.ranks if r.size is not None} | \
        {p.name for p in cascade.params}
    derived = {p.parts[0] for p in cascade.partitions}  # and parts sized by a number or name:
    derived |= {part for p in cascade.partitions for part, size in zip(p.parts[1:], p.sizes)
                if part != size}
    tiles = {s for p in cascade.partitions for s in p.sizes if isinstance(s, str)}
    sizes: dict[str, int] = {}
    for name in sorted(size_names(cascade) - fixed - derived):
        sizes[name] = _TILE if name in tiles else _SEQUENCE if name == rank else \
            _SIZES.get(name, _OTHER)
    for partition in cascade.partitions:
        if partition.rank in fixed:
            continue
        tile = math.prod(sizes.get(s, _TILE) if isinstance(s, str) else s
                         for s in partition.sizes)
        sizes[partition.rank] = 3 * tile + 1 if tile <= _TILE else 2 * tile + 1
    return sizes


def input_sets(cascade: ir.Cascade, sizes: Mapping[str, float], rows: set[str], seed: int
               ) -> list[tuple[str, dict[str, np.ndarray]]]:
    """(description, inputs): normal, scaled by 6, and with constant rows 0, -1, +1."""
    plain = random_inputs(cascade, sizes, seed)
    large = random_inputs(cascade, sizes, seed + 1, scale=6.0)
    constant = {name: array.copy() for name, array in random_inputs(cascade, sizes,
                                                                      seed + 2).items()}
    for name, array in constant.items():
        for axis, rank in enumerate(input_axis_ranks(cascade, name)):
            if rank not in rows:
                continue
            for position, value in zip(range(array.shape[axis]), (0.0, -1.0, 1.0)):
                index = [slice(None)] * array.ndim
                index[axis] = position
                array[tuple(index)] = value
    return [("normal inputs", plain), ("inputs scaled by 6", large),
            ("constant rows (masked or tied)", constant)]


def _error(want: np.ndarray, got: np.ndarray) -> float:
    """Largest difference where the original is defined (not NaN); inf where one side is
    infinite or NaN and the other is not the same."""
    if want.shape != got.shape:
        return math.inf
    defined = ~np.isnan(want)
    finite = np.isfinite(want) & np.isfinite(got)
    if not (finite | (want == got) | ~defined).all():
        return math.inf
    return float(np.max(np.abs(want[finite] - got[finite]))) if finite.any() else 0.0


def compare(original: ir.Cascade, rewritten: ir.Cascade, rank: str, rows: set[str],
            tile: Optional[str] = None, seed: int = 0) -> Validation:
    """Execute both cascades on the same inputs and compare every output of ``original``.

    ``rank`` is the rewritten rank (made the longest), ``rows`` the ranks the normaliser keeps
    (given constant rows), ``tile`` a variable to also run the rewrite tile by tile along."""
    given = validation_sizes(original, rank)
    resolved = {**resolve_sizes(original, {}, given), **given}
    worst, worst_case, ok, cases, undefined = 0.0, "", True, 0, 0
    for number, (description, inputs) in enumerate(input_sets(original, resolved, rows, seed)):
        expected = run(original, inputs, given).tensors
        runs = [("", run(rewritten, inputs, given).tensors)]
        if tile is not None and number == 0:
            runs.append((f", tiled along {tile}", run(rewritten, inputs, given, tile=tile,
                                                       keep=original.outputs).tensors))
        cases += 1
        for name in original.outputs:
            want = expected[name]
            undefined += int(np.isnan(want).sum())
            scale = max(1.0, float(np.max(np.abs(want[np.isfinite(want)]), initial=0.0)))
            for how, tensors in runs:
                error = _error(want, tensors[name]) if name in tensors else math.inf
                ok = ok and error <= TOLERANCE * scale
                if error >= worst:
                    worst, worst_case = error, f"{name} on {description}{how}"
    return Validation(ok, worst, cases, tuple(sorted((k, int(v)) for k, v in given.items())),
                      tile, worst_case, undefined)
