"""The mapping model: how a cascade is laid onto a hardware model (DESIGN.md §5).

A :class:`MappingSpec` is data (YAML under ``mappings/``): which cascade and hardware, each
Einsum's unit and spatial ranks, the pipeline stages, the tile loop, the passes the dataflow
makes and the free parameters a mapper may search.  A *strategy* (code in ``mappings/``) turns
the spec, a workload and parameter values into a :class:`Mapping`: the spec plus concrete
sizes and the residency of every tensor (where it lives, how often it crosses DRAM).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from einsim.errors import MappingError, SpecError  # noqa: F401 (MappingError re-exported)
from einsim.specfile import describe_validation_error, preset_names, read_spec


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


class Residency(_Spec):
    """Where a tensor lives between its uses and how often it crosses DRAM.

    ``buffer_words`` is what it occupies in the global buffer at once (its live tile);
    ``dram_reads``/``dram_writes`` count whole-tensor transfers per (batch, head).
    """

    level: Literal["dram", "global_buffer", "array"]
    buffer_words: float = 0.0
    dram_reads: float = 0.0
    dram_writes: float = 0.0


class Mapping(_Spec):
    """A spec made concrete for one workload: sizes, parameter values and residency."""

    spec: MappingSpec
    sizes: dict[str, float]
    parameters: dict[str, int | float | str] = {}
    residency: dict[str, Residency]
    spatial_extents: dict[str, float] = Field(
        default={}, description="extent of a rank variable in flight when it is spread over PEs "
        "(e.g. FLAT's row block for p); defaults to the rank's size")


def mapping_names() -> list[str]:
    return preset_names(resources.files("mappings"))


@lru_cache(maxsize=64)
def load_mapping_spec(name_or_path: str) -> MappingSpec:
    """A mapping spec by name (``fusemax``) or from a YAML file."""
    document, source = read_spec(name_or_path, resources.files("mappings"), "mapping")
    try:
        return MappingSpec.model_validate(document)
    except ValidationError as error:
        raise SpecError(f"mapping {source}: {describe_validation_error(error)}") from None
