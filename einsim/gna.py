"""Generalized neighborhood attention (GNA): speedup upper bounds at tile granularity.

Semantics are NATTEN's, per axis (DESIGN.md §8): dilation groups, windows that shift inward at
the edges, strided queries sharing their leader's window, causal windows ending at the query.
Tokens are permuted so every multi-dimensional Q tile and KV tile is contiguous (each axis
padded to a multiple of tile x dilation).  Because the mask is a product of per-axis masks,
every count factorizes over axes: the worst Q tile's KV tiles are the product of per-axis
worsts, sums over all Q tiles are products of per-axis sums, and so on.  Along an axis,
windows are monotone in the query, so only each Q tile's first and last query are looked at,
attended pairs have closed forms, and the (at most two) sizes of dilation groups are counted
once each: the analysis is O(Q tiles per axis), about 0.1 ms for a million tokens in 1-D as
in 3-D.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from einsim.errors import EinsimError
from einsim.language.functions import window_bounds


class GNAError(EinsimError):
    """An invalid GNA problem; the message names the argument."""


class GNAProblem(BaseModel):
    """A GNA problem: token layout, per-axis window/stride/dilation/causality and tile shapes."""

    model_config = ConfigDict(frozen=True)

    shape: tuple[int, ...]
    window: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    causal: tuple[bool, ...]
    q_tile: tuple[int, ...]
    kv_tile: tuple[int, ...]
    kv_tiling: str = "static"

    @property
    def tokens(self) -> int:
        return math.prod(self.shape)


MAX_AXIS_LENGTH = 2 ** 31
"""Longest axis: keeps every per-axis count (tiles x tiles) exact in 64-bit integers."""

MAX_Q_TILES_PER_AXIS = 2 ** 22
"""Q tiles along one axis the analysis holds at once (a few 32 MiB arrays)."""


def problem(shape: Sequence[int], window: Sequence[int] | int, q_tile: Sequence[int] | int,
            kv_tile: Sequence[int] | int, stride: Sequence[int] | int = 1,
            dilation: Sequence[int] | int = 1, causal: Sequence[bool] | bool = False,
            kv_tiling: str = "static") -> GNAProblem:
    """Build and check a :class:`GNAProblem`; scalars (or one value) apply to every axis.

    Raises :class:`GNAError` naming the argument for a window larger than its axis
    (window x dilation > length), a stride larger than the window, non-positive, fractional,
    non-finite or non-numeric values, or a tile or parameter whose number of dimensions
    differs from the shape's.
    """
    shape = tuple(_integer("shape", v) for v in _as_tuple("shape", shape))
    dims = len(shape)
    if not 1 <= dims <= 3 or any(v < 1 for v in shape):
        raise GNAError(f"shape {list(shape)}: expected 1 to 3 positive axis lengths")
    if max(shape) > MAX_AXIS_LENGTH:
        raise GNAError(f"shape {list(shape)}: an axis is longer than {MAX_AXIS_LENGTH:,} tokens")

    def per_axis(name: str, value, broadcast: bool = True) -> tuple:
        values = _as_tuple(name, value)
        if len(values) == 1 and broadcast:
            values = values * dims
        if len(values) != dims:
            raise GNAError(f"{name} {list(values)}: has {len(values)} dimension(s) but the shape "
                           f"{list(shape)} has {dims}")
        return values

    window = tuple(_integer("window", v) for v in per_axis("window", window))
    stride = tuple(_integer("stride", v) for v in per_axis("stride", stride))
    dilation = tuple(_integer("dilation", v) for v in per_axis("dilation", dilation))
    causal = tuple(_as_bool(v) for v in per_axis("causal", causal))
    q_tile = tuple(_integer("q_tile", v) for v in per_axis("q_tile", q_tile, dims == 1))
    kv_tile = tuple(_integer("kv_tile", v) for v in per_axis("kv_tile", kv_tile, dims == 1))
    for name, values in (("window", window), ("stride", stride), ("dilation", dilation),
                         ("q_tile", q_tile), ("kv_tile", kv_tile)):
        if any(v < 1 for v in values):
            raise GNAError(f"{name} {list(values)}: every value must be at least 1")
    for axis in range(dims):
        if window[axis] * dilation[axis] > shape[axis]:
            raise GNAError(f"window {window[axis]} on axis {axis}: window x dilation "
                           f"({window[axis]} x {dilation[axis]}) exceeds the axis length "
                           f"{shape[axis]}")
        if stride[axis] > window[axis]:
            raise GNAError(f"stride {stride[axis]} on axis {axis}: larger than the window "
                           f"{window[axis]}")
        small, extra = divmod(shape[axis], dilation[axis])
        tiles = extra * -(-(small + 1) // q_tile[axis]) \
            + (dilation[axis] - extra) * -(-small // q_tile[axis])
        if tiles > MAX_Q_TILES_PER_AXIS:
            raise GNAError(f"q_tile {q_tile[axis]} on axis {axis}: about {tiles:,} Q tiles along "
                           f"an axis of {shape[axis]:,} tokens (dilation {dilation[axis]}); the "
                           f"analysis holds at most {MAX_Q_TILES_PER_AXIS:,} per axis: use a "
                           f"larger q_tile or a smaller dilation")
    if kv_tiling not in ("static", "dynamic"):
        raise GNAError(f"kv_tiling {kv_tiling!r}: expected static or dynamic")
    return GNAProblem(shape=shape, window=window, stride=stride, dilation=dilation,
                      causal=causal, q_tile=q_tile, kv_tile=kv_tile, kv_tiling=kv_tiling)


def _as_tuple(name: str, value) -> tuple:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(value, np.ndarray):
        return tuple(value.ravel().tolist())
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise GNAError(f"{name} {value!r}: expected an integer or a list of integers, one per "
                       "axis")
    return (value,)


def _integer(name: str, value) -> int:
    """``value`` as an exact int: integral numbers only (no bools, strings, inf, nan, 1.5)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                      np.floating)):
        raise GNAError(f"{name} {value!r}: expected an integer")
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or value != int(value):
            raise GNAError(f"{name} {value!r}: expected an integer, not a fractional or "
                           "non-finite number")
    return int(value)


def _as_bool(value) -> bool:
    if isinstance(value, str):
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise GNAError(f"causal {value!r}: expected true or false")
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer))
                                               and value in (0, 1)):
        return bool(value)
    raise GNAError(f"causal {value!r}: expected true or false")


def windows(length: int, window: int, stride: int = 1, causal: bool = False):
    """Window ``[start, end)`` of every query of one (dilation group of an) axis, vectorized."""
    return window_bounds(np.arange(length), length, window, stride, causal)


def attended_pairs(length: int, window: int, stride: int = 1, causal: bool = False) -> int:
    """Attended (query, key) pairs of one dilation group of ``length`` tokens, in closed form.

    Non-causal windows never shrink: ``length x window``.  A causal query ``i`` attends
    ``i + 1 - start``, with ``start = max(leader - window + 1, 0)`` shared by its stride group
    (leader ``jS + S - 1``, or the last token for a partial last group).
    """
    if not causal:
        return length * window
    full = length // stride  # stride groups of S queries; leader j*S + S - 1
    first = window // stride  # first group whose start is above 0
    starts = 0
    if full > first:
        count = full - first
        starts = stride * ((first + full - 1) * count // 2 * stride + (stride - window) * count)
    if length % stride:
        starts += (length % stride) * max(length - window, 0)
    return length * (length + 1) // 2 - starts


@dataclass(frozen=True)
class GroupCounts:
    """Per-Q-tile counts of one dilation-group size, shared by ``groups`` identical groups."""

    visited: np.ndarray
    unmasked: np.ndarray
    kv_tile_start: np.ndarray
    groups: int


@dataclass(frozen=True)
class AxisCounts:
    """Per-axis counts.  Dilation groups have at most two sizes, so the counts are kept per
    distinct size (``parts``) with multiplicities; ``visited`` etc. expand them to one entry
    per Q tile (all dilation groups concatenated) for plots."""

    parts: tuple[GroupCounts, ...]
    attended_pairs: int
    block_sparse: bool
    groups: int

    def _expand(self, field: str) -> np.ndarray:
        return np.concatenate([np.tile(getattr(p, field), p.groups) for p in self.parts])

    @property
    def visited(self) -> np.ndarray:
        return self._expand("visited")

    @property
    def unmasked(self) -> np.ndarray:
        return self._expand("unmasked")

    @property
    def kv_tile_start(self) -> np.ndarray:
        return self._expand("kv_tile_start")

    @property
    def q_tiles(self) -> int:
        return sum(p.visited.size * p.groups for p in self.parts)

    @property
    def worst(self) -> int:
        return max(int(p.visited.max()) for p in self.parts)

    @property
    def visited_total(self) -> int:
        return sum(int(p.visited.sum()) * p.groups for p in self.parts)

    @property
    def unmasked_total(self) -> int:
        return sum(int(p.unmasked.sum()) * p.groups for p in self.parts)

    def distinct(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distinct ``(visited, unmasked)`` pairs of Q tiles and how many Q tiles have each."""
        pairs = np.concatenate([np.stack([p.visited, p.unmasked], axis=1) for p in self.parts])
        weights = np.concatenate([np.full(p.visited.size, p.groups, dtype=np.int64)
                                  for p in self.parts])
        unique, inverse = np.unique(pairs, axis=0, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=weights, minlength=len(unique))
        return unique[:, 0], unique[:, 1], counts.astype(np.int64)


def axis_counts(length: int, window: int, stride: int, dilation: int, causal: bool,
                q_tile: int, kv_tile: int, dynamic: bool = False) -> AxisCounts:
    """KV tiles each Q tile visits along one axis, and how many of them need no masking.

    Only each Q tile's first and last query are looked at (windows are monotone in the
    query), so the cost is O(Q tiles per distinct dilation-group size), not O(length).
    """
    parts, attended, block_sparse = [], 0, True
    small, extra = divmod(length, dilation)  # `extra` groups of small + 1, the rest of small
    for size, groups in ((small + 1, extra), (small, dilation - extra)):
        if groups == 0 or size == 0:
            continue
        attended += groups * attended_pairs(size, window, stride, causal)
        firsts = np.arange(0, size, q_tile, dtype=np.int64)
        lasts = np.minimum(firsts + q_tile, size) - 1
        start_first, end_first = window_bounds(firsts, size, window, stride, causal)
        start_last, end_last = window_bounds(lasts, size, window, stride, causal)
        limit = np.minimum(end_first, size)  # keys all queries attend, without padding
        if dynamic:
            count = -(-(end_last - start_first) // kv_tile)
            low = -(-(start_last - start_first) // kv_tile)
            high = (limit - kv_tile - start_first) // kv_tile
            clean = np.maximum(high - low + 1, 0)
            tile0 = start_first
            aligned = (end_first - start_first) % kv_tile == 0
        else:
            count = -(-end_last // kv_tile) - start_first // kv_tile
            clean = np.maximum(limit // kv_tile - (-(-start_last // kv_tile)), 0)
            tile0 = (start_first // kv_tile) * kv_tile
            aligned = (start_first % kv_tile == 0) & (end_first % kv_tile == 0)
        shared = (start_first == start_last) & (end_first == end_last)
        block_sparse &= bool(np.all(shared & aligned))
        parts.append(GroupCounts(count, np.minimum(clean, count), tile0, groups))
    return AxisCounts(tuple(parts), attended, block_sparse, dilation)


class GNAResult(BaseModel):
    """Speedup upper bounds of a GNA problem (keys as the CLI's JSON)."""

    model_config = ConfigDict(frozen=True)

    flop_upper_bound: float
    tile_upper_bound: float
    tile_upper_bound_mean: float
    fully_block_sparse: bool
    q_tiles: int
    worst_kv_tiles: int
    masked_tiles: int
    visited_kv_tiles: int
    dense_kv_tiles: int
    tokens: int


def _problem(spec) -> GNAProblem:
    if not isinstance(spec, GNAProblem):
        raise GNAError(f"spec {spec!r:.60}: expected a GNAProblem (see einsim.gna.problem)")
    return spec


def analyze(spec: GNAProblem) -> GNAResult:
    """The bounds of DESIGN.md §8 by per-axis counting."""
    spec = _problem(spec)
    axes = [axis_counts(spec.shape[a], spec.window[a], spec.stride[a], spec.dilation[a],
                        spec.causal[a], spec.q_tile[a], spec.kv_tile[a],
                        spec.kv_tiling == "dynamic") for a in range(len(spec.shape))]
    tokens = spec.tokens
    q_tokens, kv_tokens = math.prod(spec.q_tile), math.prod(spec.kv_tile)
    dense_kv = -(-tokens // kv_tokens)
    worst = math.prod(a.worst for a in axes)
    visited = math.prod(a.visited_total for a in axes)
    clean = math.prod(a.unmasked_total for a in axes)
    attended = math.prod(a.attended_pairs for a in axes)
    return GNAResult(
        flop_upper_bound=tokens * tokens / attended,
        tile_upper_bound=dense_kv / worst,
        tile_upper_bound_mean=(-(-tokens // q_tokens)) * dense_kv / visited,
        fully_block_sparse=all(a.block_sparse for a in axes),
        q_tiles=math.prod(a.q_tiles for a in axes), worst_kv_tiles=worst,
        masked_tiles=visited - clean, visited_kv_tiles=visited, dense_kv_tiles=dense_kv,
        tokens=tokens)


def gna(shape, window, q_tile, kv_tile, stride=1, dilation=1, causal=False,
        kv_tiling="static") -> GNAResult:
    """Speedup upper bounds of generalized neighborhood attention; see :func:`problem`."""
    return analyze(problem(shape, window, q_tile, kv_tile, stride, dilation, causal, kv_tiling))


STRIDE_SEARCH_LIMIT = 2 ** 34
"""Strides x Q tiles :func:`find_stride` may examine on one axis (about a minute)."""


def find_stride(spec: GNAProblem) -> tuple[int, ...]:
    """The smallest per-axis stride (≤ window) that makes the problem fully block-sparse.

    All strides are tried at once on every Q tile's first and last query, in chunks of
    strides x Q tiles that bound memory.
    """
    spec = _problem(spec)
    strides = []
    for axis in range(len(spec.shape)):
        length, window = spec.shape[axis], spec.window[axis]
        dilation, q_tile = spec.dilation[axis], spec.q_tile[axis]
        small, extra = divmod(length, dilation)
        sizes = [n for n, groups in ((small + 1, extra), (small, dilation - extra)) if groups]
        tiles = sum(-(-n // q_tile) for n in sizes)
        if window * tiles > STRIDE_SEARCH_LIMIT:
            raise GNAError(f"window {window} on axis {axis}: a stride search would examine "
                           f"{window:,} strides x {tiles:,} Q tiles, more than "
                           f"{STRIDE_SEARCH_LIMIT:,}; give the stride, or use a larger q_tile")
        def passing(candidates: np.ndarray, sample: bool) -> np.ndarray:
            ok = np.ones(candidates.size, dtype=bool)
            for size in sizes:
                ok &= _block_sparse(size, window, candidates, spec.causal[axis], q_tile,
                                    spec.kv_tile[axis], spec.kv_tiling == "dynamic", sample)
            return candidates[ok]

        found, chunk = None, max(1, 2 ** 22 // tiles)
        for first in range(1, window + 1, 2 ** 14):  # a sample of Q tiles rules most out
            likely = passing(np.arange(first, min(first + 2 ** 14, window + 1)), True)
            for start in range(0, likely.size, chunk):
                survivors = passing(likely[start:start + chunk], False)
                if survivors.size:
                    found = int(survivors[0])
                    break
            if found is not None:
                break
        if found is None:
            raise GNAError(f"no stride up to the window {window} makes axis {axis} "
                           f"fully block-sparse with q_tile {q_tile} and kv_tile "
                           f"{spec.kv_tile[axis]}")
        strides.append(found)
    return tuple(strides)


def _block_sparse(size: int, window: int, strides: np.ndarray, causal: bool, q_tile: int,
                  kv_tile: int, dynamic: bool, sample: bool = False) -> np.ndarray:
    """Per stride: do all Q tiles of a dilation group of ``size`` share one aligned window?
    With ``sample``, only the first, last and 16 evenly spaced Q tiles are looked at."""
    firsts = np.arange(0, size, q_tile, dtype=np.int64)
    if sample and firsts.size > 32:
        spaced = np.linspace(0, firsts.size - 1, 16).astype(np.int64)
        firsts = firsts[np.unique(np.concatenate([np.arange(8), spaced,
                                                  np.arange(firsts.size - 8, firsts.size)]))]
    firsts = firsts[None, :]
    lasts = np.minimum(firsts + q_tile, size) - 1
    column = strides[:, None]
    start_first, end_first = window_bounds(firsts, size, window, column, causal)
    start_last, end_last = window_bounds(lasts, size, window, column, causal)
    shared = (start_first == start_last) & (end_first == end_last)
    if dynamic:
        aligned = (end_first - start_first) % kv_tile == 0
    else:
        aligned = (start_first % kv_tile == 0) & (end_first % kv_tile == 0)
    return np.all(shared & aligned, axis=1)


def end_to_end_speedup(attention_speedup: float, attention_share: float, steps: int = 1,
                       full_attention_steps: int = 0) -> float:
    """Amdahl's law: attention is ``attention_share`` of the time; the first
    ``full_attention_steps`` of ``steps`` keep full attention, the rest run sparse."""
    for name, value in (("attention_speedup", attention_speedup),
                        ("attention_share", attention_share), ("steps", steps),
                        ("full_attention_steps", full_attention_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)) \
                or not math.isfinite(value):
            raise GNAError(f"{name} {value!r}: expected a finite number")
    if attention_speedup <= 0:
        raise GNAError(f"attention_speedup {attention_speedup}: expected a positive speedup")
    if not 0 <= attention_share <= 1:
        raise GNAError(f"attention_share {attention_share}: expected a fraction in [0, 1]")
    if steps < 1 or not 0 <= full_attention_steps <= steps:
        raise GNAError(f"full_attention_steps {full_attention_steps} of steps {steps}: expected "
                       "0 <= full_attention_steps <= steps and steps >= 1")
    sparse_share = (steps - full_attention_steps) / steps
    attention_time = (1 - sparse_share) + sparse_share / attention_speedup
    return 1 / ((1 - attention_share) + attention_share * attention_time)
