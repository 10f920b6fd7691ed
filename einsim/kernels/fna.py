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
from hw_models.gpu_sm import GPU, makespan, size_argument, tile_cycles
from einsim.kernels.flash_attention import BYTES, fmha


def supported_tiles(gpu: GPU, dims: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The GPU's neighborhood-attention ``(q_tile, kv_tile)`` shapes for ``dims`` axes."""
    _gpu(gpu)
    if dims not in (1, 2, 3):
        raise GNAError(f"dims {dims!r}: expected 1, 2 or 3")
    shapes = {1: gpu.tiles.na1d, 2: gpu.tiles.na2d, 3: gpu.tiles.na3d}[dims]
    return [(tuple(q), tuple(kv)) for q, kv in shapes]


def _gpu(gpu) -> None:
    if not isinstance(gpu, GPU):
        raise GNAError(f"gpu {gpu!r:.60}: expected a GPU (see hw_models.gpu_sm.load_gpu)")


def check_tiles(gpu: GPU, spec: GNAProblem) -> None:
    supported = supported_tiles(gpu, len(spec.shape))
    if (spec.q_tile, spec.kv_tile) not in supported:
        listing = "; ".join(f"q {list(q)} kv {list(kv)}" for q, kv in supported) or "none"
        raise GNAError(f"q_tile {list(spec.q_tile)} with kv_tile {list(spec.kv_tile)}: not a "
                       f"supported {len(spec.shape)}-D tile on {gpu.name} (supported: {listing})")


def predict(gpu: GPU, spec: GNAProblem, *, heads: int, head_dim: int, batch: int = 1,
            dtype: str = "fp16") -> dict[str, float]:
    """``dense_s``, ``sparse_s``, ``permute_s`` and ``speedup`` of GNA against dense FMHA.

    CTAs are grouped by shape (visited and unmasked KV tiles) with counts, so time and memory
    are O(distinct CTA shapes), whatever ``batch x heads``.
    """
    _gpu(gpu)
    if not isinstance(spec, GNAProblem):
        raise GNAError(f"spec {spec!r:.60}: expected a GNAProblem (see einsim.gna.problem)")
    if not isinstance(dtype, str) or dtype not in BYTES:
        raise GNAError(f"dtype {dtype!r}: expected one of {', '.join(BYTES)}")
    heads, head_dim, batch = (size_argument(name, value, error=GNAError) for name, value in (
        ("heads", heads), ("head_dim", head_dim), ("batch", batch)))
    gpu.tensor_rate(dtype)
    tokens = spec.tokens
    sequences = batch * heads
    dense_s = _dense_seconds(gpu, sequences, tokens, head_dim, dtype)
    visited, clean, counts = np.ones(1), np.ones(1), np.ones(1, dtype=np.int64)
    for a in range(len(spec.shape)):
        axis_visited, axis_clean, axis_counts_ = axis_counts(
            spec.shape[a], spec.window[a], spec.stride[a], spec.dilation[a], spec.causal[a],
            spec.q_tile[a], spec.kv_tile[a], spec.kv_tiling == "dynamic").distinct()
        visited = np.multiply.outer(visited, axis_visited).ravel()
        clean = np.multiply.outer(clean, axis_clean).ravel()
        counts = np.multiply.outer(counts, axis_counts_).ravel()
    q_rows, kv_cols = math.prod(spec.q_tile), math.prod(spec.kv_tile)
    full = tile_cycles(gpu, dtype, q_rows, kv_cols, head_dim, pipelined=True)
    edge = tile_cycles(gpu, dtype, q_rows, kv_cols, head_dim, pipelined=True, masked=True)
    per_q_tile = clean * full["total"] + (visited - clean) * edge["total"] \
        + gpu.calibration.cta_overhead_cycles
    ctas = int(counts.sum()) * sequences
    if ctas >= 2 ** 62:
        raise GNAError(f"batch {batch} x heads {heads}: {ctas:,} CTAs is more than the model "
                       "counts (2^62); use a smaller batch or fewer heads")
    span, _ = makespan(per_q_tile, gpu.sms, persistent=True, counts=counts * sequences)
    element = BYTES[dtype]
    hbm = 4 * sequences * tokens * head_dim * element
    sparse_s = max(span / gpu.clock_hz, hbm / gpu.hbm_bandwidth_bytes_per_s)
    permuted = len(spec.shape) > 1 or any(d > 1 for d in spec.dilation)
    permute_s = 2 * hbm / gpu.hbm_bandwidth_bytes_per_s if permuted else 0.0
    return {"dense_s": dense_s, "sparse_s": sparse_s, "permute_s": permute_s,
            "speedup": dense_s / (sparse_s + permute_s)}


def _dense_seconds(gpu: GPU, sequences: int, tokens: int, head_dim: int, dtype: str) -> float:
    """The GPU's own FMHA on ``sequences`` (batch x heads) of ``tokens``.  Its CTAs are equal,
    so one sequence's grid gives the CTA time and the whole grid only its wave count."""
    dense_q, dense_kv = gpu.tiles.fmha[0]
    one = fmha(gpu, batch=1, heads=1, q_len=tokens, kv_len=tokens, head_dim=head_dim,
               q_tile=dense_q, kv_tile=dense_kv, pipelined=gpu.fmha_pipelined, dtype=dtype)
    cycles = np.asarray(one.cta_cycles, dtype=float)
    span, _ = makespan(cycles[:1], gpu.sms, counts=np.array([cycles.size * sequences]))
    if not np.all(cycles == cycles[0]):  # not the case for non-causal FMHA; kept exact
        span, _ = makespan(cycles, gpu.sms, counts=np.full(cycles.size, sequences))
    memory = one.hbm_bytes * sequences / gpu.hbm_bandwidth_bytes_per_s
    return max(span / gpu.clock_hz, memory)
