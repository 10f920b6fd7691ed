"""GPUs as streaming multiprocessors: the hardware schema and the execution model (DESIGN §7).

A kernel is a grid of CTAs.  A CTA's time is its tile loop: per KV tile two GEMMs on the tensor
cores, exponentials on the special-function units and the rest of the softmax on the FP32
lanes.  FlashAttention-2 runs softmax after the GEMMs; FlashAttention-3/4-style pipelining
overlaps them.  CTAs run in waves on the SMs (or under a persistent scheduler), so wave
quantization and tails are explicit, and the kernel cannot beat its HBM traffic.

Each preset's ``calibration`` says where its efficiency numbers come from; only the published
kernel facts in ``reference/gpus.md`` are used.
"""

from __future__ import annotations

import heapq
import math
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from einsim.errors import EinsimError, SpecError
from einsim.spec_types import Frequency, Count, Fraction, NonNegative, Positive, count, spec_name
from einsim.specfile import describe_validation_error, load_yaml_text, preset_names, read_spec

SOFTMAX_FP32_OPS = 3.5
"""FP32-pipe instructions per attention score besides the exponential: row max, the scaled
subtraction (one FMA), the row-sum add and half a conversion (two scores per packed fp16)."""

MASK_FP32_OPS = 1.0
"""Extra FP32 work per score of a tile that needs element masking (a compare-and-select)."""

L2_OVER_HBM = 2.5
"""L2 bandwidth as a multiple of HBM's, an assumption (the reference gives no L2 figure): what
every preset states, and the value of a GPU file that gives none."""


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Calibration(_Spec):
    """Fitted constants and the published facts they come from."""

    tensor_efficiency: Fraction = Field(description="achieved fraction of the tensor peak in "
                                        "an attention tile loop")
    cta_overhead_cycles: NonNegative = Field(description="per-CTA prologue/epilogue")
    source: str


TILE = count(high=2 ** 16)
"""One tile extent (tokens along an axis)."""


class TileShapes(_Spec):
    """Attention tile shapes the GPU's kernels support: ``[q_tile, kv_tile]`` pairs, per axis
    for the neighborhood kernels (``na2d: [[[16, 8], [16, 8]]]``)."""

    fmha: list[tuple[TILE, TILE]] = Field(min_length=1)
    na1d: list[tuple[tuple[TILE], tuple[TILE]]] = []
    na2d: list[tuple[tuple[TILE, TILE], tuple[TILE, TILE]]] = []
    na3d: list[tuple[tuple[TILE, TILE, TILE], tuple[TILE, TILE, TILE]]] = []


class GPU(_Spec):
    """One GPU: SMs and their per-clock rates, memories, links, power and price."""

    name: str
    kind: Literal["gpu_sm"] = "gpu_sm"
    sms: count(high=2 ** 16)
    clock_hz: Frequency
    tensor_flops_per_clock_per_sm: dict[str, Count] = Field(min_length=1)
    exp_per_clock_per_sm: Count
    fp32_per_clock_per_sm: Count
    shared_memory_bytes_per_sm: Count
    register_bytes_per_sm: Count
    tensor_memory_bytes_per_sm: Count = Field(default=0, description="tensor-core accumulator "
                                              "memory per SM (Blackwell: 256 KB; 0: none)")
    l2_bytes: Count
    l2_bandwidth_bytes_per_s: Positive | None = Field(
        default=None, description="L2 read bandwidth; no published figure in the reference, so "
        "each preset states its assumption (None: the presets' L2_OVER_HBM times HBM)")
    hbm_bytes: Positive
    hbm_bandwidth_bytes_per_s: Positive
    nvlink_bytes_per_s: Positive
    power_w: Positive
    price_per_hour: Positive | None = None
    fmha_pipelined: bool = Field(default=True, description="the GPU's own FMHA kernel overlaps "
                                 "softmax with the GEMMs (FlashAttention-3/4); A100: no")
    max_ctas_per_sm: count(high=64) = Field(default=32, description="resident CTA limit per "
                                            "SM (32 on Ampere, Hopper and Blackwell)")
    warpgroups: count(high=8) = Field(default=1, description="consumer warpgroups per CTA that "
                                      "can ping-pong on the tensor cores (Hopper, Blackwell: 2)")
    calibration: Calibration
    tiles: TileShapes

    @property
    def l2_bandwidth(self) -> float:
        return self.l2_bandwidth_bytes_per_s or L2_OVER_HBM * self.hbm_bandwidth_bytes_per_s

    def tensor_rate(self, dtype: str) -> int:
        if dtype not in self.tensor_flops_per_clock_per_sm:
            raise SpecError(f"dtype {dtype!r}: {self.name} has tensor-core rates for "
                            f"{', '.join(self.tensor_flops_per_clock_per_sm)}")
        return self.tensor_flops_per_clock_per_sm[dtype]

    def peak_flops(self, dtype: str) -> float:
        return self.tensor_rate(dtype) * self.sms * self.clock_hz


def gpu_presets() -> list[str]:
    return list(_presets_of_kind("gpu_sm"))


@lru_cache(maxsize=None)
def _presets_of_kind(kind: str) -> tuple[str, ...]:
    """Preset names of one hardware kind (the folder is package data: read it once)."""
    folder = resources.files("hw_models").joinpath("presets")
    return tuple(n for n in preset_names(folder)
                 if load_yaml_text(folder.joinpath(f"{n}.yaml").read_text()).get("kind") == kind)


def load_gpu(name_or_path: str) -> GPU:
    """A GPU preset (``a100``, ``h100``, ``h200``, ``b200``, ``h20``) or a YAML file."""
    name_or_path = spec_name("GPU", name_or_path)
    document, source = read_spec(name_or_path, resources.files("hw_models").joinpath("presets"),
                                 "GPU", gpu_presets())
    try:
        return GPU.model_validate(document)
    except ValidationError as error:
        raise SpecError(f"GPU {source}: {describe_validation_error(error)}") from None


MAX_SIZE = 2 ** 40
"""Largest batch, head count, head dimension or context the GPU models accept."""


def size_argument(name: str, value, limit: int = MAX_SIZE,
                  error: type[EinsimError] = EinsimError) -> int:
    """A positive integer argument (integral floats such as ``1e6`` accepted), else a typed
    error naming it: no bools, strings, None, fractions, inf or nan."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                      np.floating)):
        raise error(f"{name} {value!r}: expected a positive integer")
    if isinstance(value, (float, np.floating)) and (not math.isfinite(value)
                                                    or value != int(value)):
        raise error(f"{name} {value!r}: expected a positive integer, not a fractional or "
                    "non-finite number")
    if not 1 <= value <= limit:
        text = str(int(value))
        shown = text if len(text) <= 24 else f"{text[:8]}...({len(text)} digits)"
        raise error(f"{name} {shown}: expected a positive integer of at most {limit:,}")
    return int(value)


def tile_cycles(gpu: GPU, dtype: str, q_rows: int, kv_cols: int, head_dim: int,
                pipelined: bool, masked: bool = False) -> dict[str, float]:
    """Cycles of one KV tile on one SM, per resource and in total.

    ``pipelined`` overlaps softmax with the GEMMs (FlashAttention-3/4); otherwise they add up
    (FlashAttention-2).  A masked tile pays a compare-and-select per score.
    """
    scores = q_rows * kv_cols
    tensor = 4 * scores * head_dim / (gpu.tensor_rate(dtype) * gpu.calibration.tensor_efficiency)
    sfu = scores / gpu.exp_per_clock_per_sm
    fp32 = scores * (SOFTMAX_FP32_OPS + (MASK_FP32_OPS if masked else 0.0)) \
        / gpu.fp32_per_clock_per_sm
    softmax = sfu + fp32
    total = max(tensor, softmax) if pipelined else tensor + softmax
    return {"tensor_core": tensor, "sfu": sfu, "fp32": fp32, "total": total}


def makespan(cta_cycles: np.ndarray, slots: int, persistent: bool = False,
             counts: np.ndarray | None = None) -> tuple[float, int]:
    """Time for CTAs on ``slots`` concurrent CTA slots, and the number of waves.

    Non-persistent: CTAs launch in grid order onto the first free slot (a hardware block
    scheduler); equal CTAs finish in ``ceil(n / slots)`` waves.  Persistent: the longest CTAs
    are placed first (largest-processing-time), as a persistent tile scheduler would.

    ``counts`` (optional) run-length encodes the grid: ``counts[k]`` consecutive CTAs of
    ``cta_cycles[k]`` cycles, so a billion equal CTAs cost O(distinct CTA shapes), not memory.
    """
    cycles = np.asarray(cta_cycles, dtype=float).ravel()
    repeats = np.ones(cycles.size, dtype=np.int64) if counts is None \
        else np.asarray(counts, dtype=np.int64).ravel()
    if repeats.size != cycles.size or np.any(repeats < 0):
        raise ValueError("counts: expected one non-negative count per CTA shape")
    cycles, repeats = cycles[repeats > 0], repeats[repeats > 0]
    total = int(repeats.sum())
    if total == 0:
        return 0.0, 0
    waves = -(-total // slots)
    if np.all(cycles == cycles[0]):
        return float(cycles[0]) * waves, waves
    if persistent:
        cycles, inverse = np.unique(cycles, return_inverse=True)
        repeats = np.bincount(inverse, weights=repeats).astype(np.int64)
        cycles, repeats = cycles[::-1], repeats[::-1]
    return _greedy_runs(cycles, repeats, min(slots, total)), waves


def _greedy_runs(cycles: np.ndarray, repeats: np.ndarray, slots: int) -> float:
    """Each CTA, in order, to the least-loaded slot; a run of equal CTAs advances in whole
    rounds (one per slot) once the loads are within one CTA of each other, which is exactly
    what one-at-a-time placement would do."""
    free = [0.0] * slots
    highest = 0.0
    for work, count in zip(cycles.tolist(), repeats.tolist()):
        while count:
            if count >= slots and highest - free[0] <= work:
                rounds = count // slots
                free = [load + rounds * work for load in free]  # still a heap
                highest += rounds * work
                count -= rounds * slots
                continue
            load = free[0] + work
            heapq.heapreplace(free, load)
            highest = max(highest, load)
            count -= 1
    return highest
