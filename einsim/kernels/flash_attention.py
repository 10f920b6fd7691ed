"""Dense fused attention as a closed-form kernel estimate: the baseline of the neighborhood
kernels (``fna``) and their plots.  FlashAttention-2/3 themselves are loop trees on the engine
(``mappings/flash-attention-*.yaml``).

One CTA per (batch, head, Q tile) walks the KV tiles (causal: only up to the diagonal, the
diagonal tiles masked); ``pipelined`` overlaps softmax with the GEMMs, otherwise they add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hw_models.gpu_sm import GPU, makespan, tile_cycles

BYTES = {"fp16": 2, "bf16": 2, "fp8": 1}


@dataclass(frozen=True)
class KernelEstimate:
    """A kernel's predicted time and where it goes."""

    seconds: float
    compute_s: float
    memory_s: float
    ctas: int
    waves: int
    busy_sm_cycles: dict[str, float]
    hbm_bytes: float
    flops: float
    cta_cycles: np.ndarray


def kernel_time(gpu: GPU, cta_cycles: np.ndarray, hbm_bytes: float, busy: dict[str, float],
                flops: float, slots: int | None = None, persistent: bool = False
                ) -> KernelEstimate:
    span, waves = makespan(cta_cycles, slots or gpu.sms, persistent)
    compute = span / gpu.clock_hz
    memory = hbm_bytes / gpu.hbm_bandwidth_bytes_per_s
    return KernelEstimate(max(compute, memory), compute, memory, len(cta_cycles), waves, busy,
                          hbm_bytes, flops, cta_cycles)


def fmha(gpu: GPU, *, batch: int, heads: int, q_len: int, kv_len: int, head_dim: int,
         q_tile: int, kv_tile: int, pipelined: bool, dtype: str = "fp16",
         causal: bool = False) -> KernelEstimate:
    """Dense (or causal) fused attention forward: FlashAttention-2 or -3 style."""
    q_tiles = math.ceil(q_len / q_tile)
    full = tile_cycles(gpu, dtype, q_tile, kv_tile, head_dim, pipelined)
    edge = tile_cycles(gpu, dtype, q_tile, kv_tile, head_dim, pipelined, masked=True)
    if causal:
        ends = np.minimum((np.arange(q_tiles) + 1) * q_tile, kv_len)
        visited = -(-ends // kv_tile)
        masked = visited - (np.arange(q_tiles) * q_tile) // kv_tile
    else:
        visited = np.full(q_tiles, math.ceil(kv_len / kv_tile))
        masked = np.full(q_tiles, 1 if kv_len % kv_tile else 0)
    per_q_tile = (visited - masked) * full["total"] + masked * edge["total"] \
        + gpu.calibration.cta_overhead_cycles
    cta_cycles = np.tile(per_q_tile, batch * heads)
    tiles = float(visited.sum()) * batch * heads
    busy = {r: tiles * full[r] for r in ("tensor_core", "sfu", "fp32")}
    busy["tensor_core"] *= gpu.calibration.tensor_efficiency  # useful work, as on the arrays
    element = BYTES[dtype]
    hbm = batch * heads * (2 * q_len + 2 * kv_len) * head_dim * element
    pairs = float(np.sum(np.minimum((np.arange(q_len) + 1), kv_len))) if causal \
        else q_len * kv_len
    flops = 4.0 * pairs * head_dim * batch * heads
    return kernel_time(gpu, cta_cycles, hbm, busy, flops)
