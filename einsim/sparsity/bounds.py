"""Speedup bounds of any cascade's mask at tile granularity, and a predicted GPU runtime.

:func:`sparse_bounds` reads the cascade's ``where`` mask over (key m, query p), tiles queries by
``q_tile`` and keys by ``kv_tile``, and counts per (batch, head): dense tiles, visited tiles
(at least one unmasked point), partial tiles (also a masked point, so a kernel masks elements),
the worst Q tile's KV tiles and the exact number of attended pairs — in O(tiles) or better,
never O(tokens²) (:mod:`einsim.sparsity.tiles`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from einsim.language import ir
from einsim.sparsity.kernel import gpu_runtimes
from einsim.sparsity.mask import Mask, SparseMaskError, cascade_mask, resolve_sizes
from einsim.sparsity.rows import count_rows
from einsim.sparsity.tiles import TileCounts, check_work, tile_counts

MAX_TILE = 2 ** 31
"""Largest Q or KV tile (tokens)."""

MAX_Q_TILES = 2 ** 24
"""Most Q tiles one analysis holds (a few arrays of this length)."""

ROWS_AT_ONCE = 1 << 22


@dataclass(frozen=True)
class SparseBounds:
    """Tile and FLOP speedup bounds of one mask, per (batch, head) (keys as the CLI's JSON)."""

    cascade: str
    mask: str | None
    seq_len: int
    kv_len: int
    batch: int
    heads: int
    q_tile: int
    kv_tile: int
    q_tiles: int
    kv_tiles: int
    dense_tiles: int
    visited_tiles: int
    partial_tiles: int
    worst_q_tile_kv_tiles: int
    attended_pairs: int
    tile_speedup_bound: float
    flop_speedup_bound: float
    hw: str | None = None
    predicted_runtime_s: float | None = None
    dense_runtime_s: float | None = None
    predicted_speedup: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; the runtime keys only when a GPU was given."""
        data = asdict(self)
        if self.hw is None:
            for key in ("hw", "predicted_runtime_s", "dense_runtime_s", "predicted_speedup"):
                del data[key]
        return data


@dataclass(frozen=True, eq=False)
class TileMap:
    """The bounds and the map behind them: ``grid[i, j]`` is 0 (skipped), 1 (partial) or 2
    (full) for Q tile ``i`` and KV tile ``j``."""

    bounds: SparseBounds
    grid: np.ndarray


def sparse_bounds(cascade: str | Path | ir.Cascade, *, q_tile: int, kv_tile: int,
                  workload: Any = "bert", seq_len: int | str | None = None,
                  kv_len: int | str | None = None, hw: Any = None,
                  sizes: Mapping[str, int] | None = None) -> SparseBounds:
    """Speedup bounds of ``cascade``'s mask with ``q_tile`` x ``kv_tile`` tiles.

    Parameters
    ----------
    cascade : str, Path or Cascade
        A library name, a cascade file, or a parsed cascade.
    q_tile, kv_tile : int
        Tile extents along the query (P) and key (M) axes.
    workload, seq_len, kv_len
        A workload preset or file (:func:`einsim.workloads.load_workload`) giving batch, heads,
        head dim, P and M; ``seq_len`` / ``kv_len`` override P / M.
    hw : str or GPU, optional
        A GPU preset (a100, h100, h200, b200, h20): adds a predicted runtime.
    sizes : dict, optional
        Values for the cascade's parameters and tile sizes (``{"W": 256}``).

    Raises
    ------
    SparseMaskError
        (an ``EinsimError``) for masks not over (m, p), bad tiles and sizes.

    Examples
    --------
    >>> b = sparse_bounds("causal-attention-3pass", q_tile=128, kv_tile=128, seq_len=4096)
    >>> b.visited_tiles, b.partial_tiles
    (528, 32)
    """
    return _analyze(cascade, q_tile, kv_tile, workload, seq_len, kv_len, hw, sizes, False)[0]


def sparse_tile_map(cascade: str | Path | ir.Cascade, *, q_tile: int, kv_tile: int,
                    workload: Any = "bert", seq_len: int | str | None = None,
                    kv_len: int | str | None = None, hw: Any = None,
                    sizes: Mapping[str, int] | None = None) -> TileMap:
    """:func:`sparse_bounds` and the (Q tile, KV tile) map, for plots (at most
    :data:`einsim.sparsity.tiles.GRID_LIMIT` tiles)."""
    bounds, counts = _analyze(cascade, q_tile, kv_tile, workload, seq_len, kv_len, hw, sizes,
                              True)
    return TileMap(bounds, counts.grid)


def _analyze(cascade, q_tile, kv_tile, workload, seq_len, kv_len, hw, sizes,
             grid: bool) -> tuple[SparseBounds, TileCounts]:
    cascade = _cascade(cascade)
    q_tile, kv_tile = _tile("q_tile", q_tile), _tile("kv_tile", kv_tile)
    work = _workload(workload, seq_len, kv_len)
    P, M = work.P, work.M
    if -(-P // q_tile) > MAX_Q_TILES:
        raise SparseMaskError(f"q_tile {q_tile}: {-(-P // q_tile):,} Q tiles over {P:,} "
                              f"queries; the analysis holds at most {MAX_Q_TILES:,}: use a "
                              "larger q_tile")
    if sizes is not None and not isinstance(sizes, Mapping):
        raise SparseMaskError(f"sizes {sizes!r:.60}: expected a dict of name to integer")
    resolved = resolve_sizes(cascade, M, P, q_tile, kv_tile, sizes)
    mask = cascade_mask(cascade, resolved)
    check_work(mask, P, q_tile, kv_tile)
    gpu = _gpu(hw)
    counts = tile_counts(mask, P, M, q_tile, kv_tile, grid)
    attended = P * M if mask is None else _attended(mask, P, M)
    dense = counts.q_tiles * counts.kv_tiles
    visited = int(counts.visited.sum())
    bounds = dict(
        cascade=cascade.name or "cascade", mask=None if mask is None else mask.text,
        seq_len=P, kv_len=M, batch=work.B, heads=work.H, q_tile=q_tile, kv_tile=kv_tile,
        q_tiles=counts.q_tiles, kv_tiles=counts.kv_tiles, dense_tiles=dense,
        visited_tiles=visited, partial_tiles=int(counts.partial.sum()),
        worst_q_tile_kv_tiles=int(counts.visited.max()), attended_pairs=attended,
        tile_speedup_bound=dense / visited if visited else math.inf,
        flop_speedup_bound=P * M / attended if attended else math.inf)
    if gpu is not None:
        params = {p.name: resolved[p.name] for p in cascade.params}
        sparse_s, dense_s = gpu_runtimes(gpu, cascade, params, q_tile=q_tile, kv_tile=kv_tile,
                                         seq_len=P, kv_len=M, head_dim=work.E,
                                         sequences=work.B * work.H, dtype=_dtype(work),
                                         counts=counts, attended=attended)
        bounds.update(hw=gpu.name, predicted_runtime_s=sparse_s, dense_runtime_s=dense_s,
                      predicted_speedup=dense_s / sparse_s)
    return SparseBounds(**bounds), counts


def _attended(mask: Mask, P: int, M: int) -> int:
    total = 0
    for first in range(0, P, ROWS_AT_ONCE):
        rows = np.arange(first, min(first + ROWS_AT_ONCE, P), dtype=np.int64)
        total += int(count_rows(mask, rows, np.zeros_like(rows), np.full_like(rows, M)).sum())
    return total


def _cascade(cascade) -> ir.Cascade:
    if isinstance(cascade, ir.Cascade):
        return cascade
    if isinstance(cascade, (str, Path)):
        from einsim import library

        return library.load(str(cascade))
    raise SparseMaskError(f"cascade {cascade!r:.60}: expected a library name, a cascade file "
                          "or a parsed Cascade")


def _tile(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                      np.floating)) \
            or not math.isfinite(value) or value != int(value) or not 1 <= value <= MAX_TILE:
        raise SparseMaskError(f"{name} {value!r:.40}: expected a positive integer of at most "
                              f"{MAX_TILE:,}")
    return int(value)


def _workload(workload, seq_len, kv_len):
    from einsim.workloads import Workload, load_workload

    if isinstance(workload, Workload):
        return workload if seq_len is None and kv_len is None else \
            workload.with_seq_len(seq_len or workload.P, kv_len)
    if not isinstance(workload, (str, Path)):
        raise SparseMaskError(f"workload {workload!r:.60}: expected a preset name, a YAML file "
                              "or a Workload")
    return load_workload(str(workload), seq_len=seq_len, kv_len=kv_len)


def _gpu(hw):
    if hw is None:
        return None
    from hw_models.gpu_sm import GPU, load_gpu

    if isinstance(hw, GPU):
        return hw
    if not isinstance(hw, (str, Path)):
        raise SparseMaskError(f"hw {hw!r:.60}: expected a GPU preset name or YAML file")
    return load_gpu(str(hw))


def _dtype(work) -> str:
    names = {2: "fp16", 1: "fp8"}
    if work.dtype_bytes not in names:
        raise SparseMaskError(f"workload {work.name}: {work.dtype_bytes}-byte elements have no "
                              "tensor-core type in the GPU model (2: fp16, 1: fp8)")
    return names[work.dtype_bytes]
