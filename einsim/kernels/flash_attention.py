"""FlashAttention-2/3 prefill on GPU streaming multiprocessors.

One CTA per (batch, head, Q tile) walks the KV tiles (causal: only up to the diagonal, the
diagonal tiles masked).  K and V of a head are re-read from L2, so HBM sees Q, K, V and O once.
The spec's ``pipelined`` flag (FA3) overlaps softmax with the GEMMs; FA2 adds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from einsim.cost import EinsumCost, Report
from einsim.cost.kernel_spec import MappingError, MappingSpec
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


def parameter_space(spec: MappingSpec, gpu: GPU, workload) -> dict[str, list]:
    return {"tile": [f"{q}x{kv}" for q, kv in gpu.tiles.fmha]}


def evaluate(spec: MappingSpec, gpu: GPU, workload, parameters: dict) -> Report:
    """The cost report of FlashAttention prefill, with the spatial arrays' keys."""
    if getattr(gpu, "kind", "") != "gpu_sm":
        raise MappingError(f"mapping {spec.name} runs on GPUs; {gpu.name} is not one")
    tile = str(parameters.get("tile") or parameter_space(spec, gpu, workload)["tile"][0])
    q_tile, kv_tile = (int(v) for v in tile.split("x"))
    pipelined = spec.overlap_softmax
    dtype = "fp16" if workload.dtype_bytes == 2 else "fp8"
    estimate = fmha(gpu, batch=workload.B, heads=workload.H, q_len=workload.P,
                    kv_len=workload.M, head_dim=workload.E, q_tile=q_tile, kv_tile=kv_tile,
                    pipelined=pipelined, dtype=dtype)
    cycles = estimate.seconds * gpu.clock_hz * gpu.sms
    utilization = {r: b / cycles for r, b in estimate.busy_sm_cycles.items()}
    stage = 0
    rows = [EinsumCost(name=name, unit=unit, ops={}, cycles=estimate.busy_sm_cycles[unit] / 2
                       if unit == "tensor_core" else estimate.busy_sm_cycles[unit],
                       stage=stage) for name, unit in (("S", "tensor_core"), ("PS", "sfu"),
                                                       ("softmax", "fp32"), ("PV", "tensor_core"))]
    element = BYTES[dtype]
    smem = (q_tile + 2 * 2 * kv_tile) * workload.E * element  # Q + double-buffered K and V
    return Report(
        cascade=spec.cascade, mapping=spec.name, hardware=gpu.name, workload=workload.name,
        seq_len=workload.seq_len,
        parameters={"tile": tile, "ctas": estimate.ctas, "waves": estimate.waves,
                    "tflops": estimate.flops / estimate.seconds / 1e12},
        passes=1, buffer_bytes=smem, buffer_capacity_bytes=gpu.shared_memory_bytes_per_sm,
        traffic_bytes=estimate.hbm_bytes, compute_latency_s=estimate.compute_s,
        memory_latency_s=estimate.memory_s, latency_s=estimate.seconds,
        utilization=utilization, energy_j=gpu.power_w * estimate.seconds,
        energy_breakdown_j={"board_at_tdp": gpu.power_w * estimate.seconds}, area_mm2=None,
        einsums=rows)
