"""GPU kernel specs (``mappings/flash-attention-*.yaml``), until the GPU kernels are loop trees.

A :class:`MappingSpec` is data: cascade, hardware, each Einsum's unit, the stages, whether the
softmax overlaps the GEMMs, and the free parameters; its ``strategy`` names the kernel model in
:mod:`einsim.kernels` that costs it.  Loop-tree mappings are :mod:`einsim.cost.tree`.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from einsim.errors import MappingError, SpecError  # noqa: F401 (MappingError re-exported)
from einsim.specfile import file_stamp, describe_validation_error, preset_names, read_spec


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Binding(_Spec):
    """Where one Einsum runs: a unit, and the rank variable spread over each PE dimension."""

    unit: str
    spatial: dict[str, str] = {}


class FreeParameter(_Spec):
    """A parameter the mapper searches; ``choices`` names a rule the strategy implements."""

    description: str
    choices: str


class MappingSpec(_Spec):
    """A mapping as written in YAML (see ``mappings/*.yaml``)."""

    name: str
    description: str
    cascade: str
    hardware: str
    strategy: str
    tile: str = Field(description="the streamed loop variable (mapped execution tiles it)")
    passes: dict[str, int] = Field(description="passes the dataflow makes over each rank")
    loop_order: list[str]
    binding: dict[str, Binding]
    stages: list[list[str]]
    parameters: dict[str, FreeParameter] = {}
    overlap_softmax: bool = Field(default=False, description="the softmax of one KV tile "
                                  "overlaps the GEMMs of the next (FlashAttention-3/4) instead "
                                  "of following them (FlashAttention-2)")


def mapping_names() -> list[str]:
    return preset_names(resources.files("mappings"))


def load_mapping_spec(name_or_path: str) -> MappingSpec:
    """A mapping spec by name (``fusemax``) or from a YAML file."""
    return _load_mapping_spec(name_or_path, file_stamp(name_or_path))


@lru_cache(maxsize=128)
def _load_mapping_spec(name_or_path: str, stamp: tuple):
    document, source = read_spec(name_or_path, resources.files("mappings"), "mapping")
    try:
        return MappingSpec.model_validate(document)
    except ValidationError as error:
        raise SpecError(f"mapping {source}: {describe_validation_error(error)}") from None
