"""GPUs as streaming multiprocessors: the hardware schema (DESIGN §7).  The engine sees a GPU
through :func:`einsim.cost.gpu_hierarchy.gpu_hierarchy`; kernels are loop trees
(``mappings/``).

Each preset's ``calibration`` says where its efficiency numbers come from; only the published
kernel facts in ``reference/gpus.md`` are used.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from einsim.errors import EinsimError, SpecError
from einsim.spec_types import Frequency, Count, Fraction, NonNegative, Positive, count, spec_name
from einsim.specfile import describe_validation_error, load_yaml_text, preset_names, read_spec

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
