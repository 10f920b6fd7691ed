"""Fused neighborhood attention (FNA) on GPUs: predicted runtime of a GNA problem.

Each CTA owns one multi-dimensional Q tile of one (batch, head) and visits the KV tiles its
window needs (static or dynamic tiling); tiles that need element masking pay a
compare-and-select per score.  CTAs are unequal, so they are placed by a persistent scheduler
(longest first).  Multi-dimensional or dilated layouts first permute Q, K, V into tile order
and O back.  The dense baseline is the GPU's own FMHA on the same tokens.
"""

from __future__ import annotations

import math

import numpy as np

from einsim.gna import GNAError, GNAProblem, axis_counts
from hw_models.gpu_sm import GPU, tile_cycles
from mappings.flash_attention import BYTES, fmha, kernel_time


def supported_tiles(gpu: GPU, dims: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    shapes = {1: gpu.tiles.na1d, 2: gpu.tiles.na2d, 3: gpu.tiles.na3d}[dims]
    return [(tuple(q), tuple(kv)) for q, kv in shapes]


def check_tiles(gpu: GPU, spec: GNAProblem) -> None:
    supported = supported_tiles(gpu, len(spec.shape))
    if (spec.q_tile, spec.kv_tile) not in supported:
        listing = "; ".join(f"q {list(q)} kv {list(kv)}" for q, kv in supported) or "none"
        raise GNAError(f"q_tile {list(spec.q_tile)} with kv_tile {list(spec.kv_tile)}: not a "
                       f"supported {len(spec.shape)}-D tile on {gpu.name} (supported: {listing})")


def predict(gpu: GPU, spec: GNAProblem, *, heads: int, head_dim: int, batch: int = 1,
            dtype: str = "fp16") -> dict[str, float]:
    """``dense_s``, ``sparse_s``, ``permute_s`` and ``speedup`` of GNA against dense FMHA."""
    if dtype not in BYTES:
        raise GNAError(f"dtype {dtype!r}: expected one of {', '.join(BYTES)}")
    for name, value in (("heads", heads), ("head_dim", head_dim), ("batch", batch)):
        if value < 1:
            raise GNAError(f"{name} {value}: must be at least 1")
    gpu.tensor_rate(dtype)
    tokens = spec.tokens
    dense_q, dense_kv = gpu.tiles.fmha[0]
    dense = fmha(gpu, batch=batch, heads=heads, q_len=tokens, kv_len=tokens, head_dim=head_dim,
                 q_tile=dense_q, kv_tile=dense_kv, pipelined=gpu.fmha_pipelined, dtype=dtype)
    axes = [axis_counts(spec.shape[a], spec.window[a], spec.stride[a], spec.dilation[a],
                        spec.causal[a], spec.q_tile[a], spec.kv_tile[a],
                        spec.kv_tiling == "dynamic") for a in range(len(spec.shape))]
    visited = np.ones(1)
    clean = np.ones(1)
    for axis in axes:
        visited = np.multiply.outer(visited, axis.visited).ravel()
        clean = np.multiply.outer(clean, axis.unmasked).ravel()
    q_rows, kv_cols = math.prod(spec.q_tile), math.prod(spec.kv_tile)
    full = tile_cycles(gpu, dtype, q_rows, kv_cols, head_dim, pipelined=True)
    edge = tile_cycles(gpu, dtype, q_rows, kv_cols, head_dim, pipelined=True, masked=True)
    per_q_tile = clean * full["total"] + (visited - clean) * edge["total"] \
        + gpu.calibration.cta_overhead_cycles
    cta_cycles = np.tile(per_q_tile, batch * heads)
    element = BYTES[dtype]
    hbm = 4 * batch * heads * tokens * head_dim * element
    busy = {"tensor_core": float(visited.sum()) * full["tensor_core"] * batch * heads}
    sparse = kernel_time(gpu, cta_cycles, hbm, busy, 0.0, persistent=True)
    permuted = len(spec.shape) > 1 or any(d > 1 for d in spec.dilation)
    permute_s = 2 * hbm / gpu.hbm_bandwidth_bytes_per_s if permuted else 0.0
    return {"dense_s": dense.seconds, "sparse_s": sparse.seconds, "permute_s": permute_s,
            "speedup": dense.seconds / (sparse.seconds + permute_s)}
