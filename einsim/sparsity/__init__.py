"""Speedup bounds of any sparse mask: a cascade's ``where`` over (key m, query p), counted per
(Q tile, KV tile) without materializing it.

* :mod:`einsim.sparsity.mask` — the mask in normal form (atoms over features of m and p), and
  its materialized form for small shapes (the brute-force oracle);
* :mod:`einsim.sparsity.neighborhood` — ``neighborhood()`` written as atoms;
* :mod:`einsim.sparsity.pieces` — three-valued evaluation over blocks of queries, exact row counts;
* :mod:`einsim.sparsity.tiles` — visited and partial tiles per Q tile;
* :mod:`einsim.sparsity.bounds` — :func:`sparse_bounds`, the API and the GPU runtime.
"""

from einsim.sparsity.bounds import SparseBounds, TileMap, sparse_bounds, sparse_tile_map
from einsim.sparsity.mask import Mask, SparseMaskError, cascade_mask

__all__ = ["SparseBounds", "TileMap", "sparse_bounds", "sparse_tile_map", "Mask",
           "SparseMaskError", "cascade_mask"]
