"""Spatial-array accelerators (the FuseMax class): a 2D PE array, a 1D PE array, a global
buffer and DRAM, with per-action energy and per-component area.

A preset is YAML under ``presets/`` whose keys are exactly these models' fields.  ``pe_dim``
scales both arrays (the 2D array is ``pe_dim x pe_dim``, the 1D array has ``pe_dim`` PEs);
:func:`load_spatial_array` applies overrides by name (``pe_dim``, ``global_buffer_bytes``,
``dram_bandwidth``, ``clock_hz``, or any dotted field path).
"""

from __future__ import annotations

from importlib import resources
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from einsim.errors import SpecError
from einsim.spec_types import Frequency, NonNegative, NonNegativeCount, Positive, count, spec_name
from einsim.specfile import describe_validation_error, read_spec


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Action(_Spec):
    """A hardware operation a PE can perform: its energy and the area of its unit.

    ``unit`` names the functional unit that executes it; actions on different units of one PE
    overlap (a FLAT 1D PE subtracts on its ALU while its exp unit works), actions on the same
    unit take turns.
    """

    energy_pj: NonNegative
    area_um2: NonNegative = 0.0
    unit: str = ""


class RegisterFile(_Spec):
    words: count(high=2 ** 32)
    read_pj: NonNegative
    write_pj: NonNegative
    area_um2: NonNegative


class PEArray(_Spec):
    """An array of identical PEs.

    ``actions`` are what one PE can do.  ``op_costs`` says what each cascade operation
    (``mac``, ``add``, ``mul``, ``max``, ``div``, ``exp``...) costs in actions, e.g. FuseMax
    PEs compute ``exp`` as ``{mac: 6, add: 1}``; an operation missing from ``op_costs`` costs
    one action of the same name.
    """

    actions: dict[str, Action]
    register_file: RegisterFile
    op_costs: dict[str, dict[str, count(high=2 ** 20)]] = {}

    def actions_for(self, operation: str) -> dict[str, int]:
        if operation in self.op_costs:
            return dict(self.op_costs[operation])
        return {_DEFAULT_ACTION.get(operation, operation): 1}

    def unit_of(self, action: str) -> str:
        return self.actions[action].unit or action

    @property
    def pe_area_um2(self) -> float:
        return sum(a.area_um2 for a in self.actions.values()) + self.register_file.area_um2


_DEFAULT_ACTION = {"mul": "mac", "div": "divide", "min": "max", "neg": "add", "abs": "max",
                   "select": "max", "compare": "max"}


class GlobalBuffer(_Spec):
    """The on-chip buffer; ``banks`` is recorded but bank conflicts are not modelled."""

    bytes: count(high=2 ** 50)
    banks: count(high=2 ** 20)
    row_words: count(high=2 ** 32)
    read_pj_per_row: NonNegative
    write_pj_per_row: NonNegative
    area_um2: NonNegative


class DRAM(_Spec):
    bandwidth_bytes_per_s: Positive
    access_bits: count(high=2 ** 20)
    energy_pj_per_access: NonNegative


class SpatialArray(_Spec):
    """A spatial accelerator: clock, word size, the two PE arrays, buffer and DRAM."""

    name: str
    kind: Literal["spatial_array"] = "spatial_array"
    clock_hz: Frequency
    word_bits: count(high=1024)
    pe_dim: count(high=2 ** 16)
    array2d: PEArray
    array1d: PEArray
    staging_words: NonNegativeCount = Field(default=0, description="register file staging "
                                            "data between the buffer and the 2D array "
                                            "(recorded, not costed)")
    global_buffer: GlobalBuffer
    dram: DRAM
    static_power_w: NonNegative = Field(default=0.0, description="leakage of the whole chip, "
                                        "charged over the latency (0 in the FuseMax presets, "
                                        "as in the published evaluation)")

    @field_validator("word_bits")
    @classmethod
    def _whole_bytes(cls, bits: int) -> int:
        if bits % 8:
            raise PydanticCustomError("word_bits", "expected a multiple of 8 bits, got {bits}",
                                      {"bits": bits})
        return bits

    @property
    def word_bytes(self) -> int:
        return self.word_bits // 8

    def unit(self, name: str) -> PEArray:
        if name not in ("array2d", "array1d"):
            raise SpecError(f"unknown unit {name!r} on {self.name}; expected array2d or array1d")
        return getattr(self, name)

    def unit_shape(self, name: str) -> tuple[int, ...]:
        """PE dimensions of a unit: ``(rows, cols)`` for array2d, ``(pes,)`` for array1d."""
        self.unit(name)
        return (self.pe_dim, self.pe_dim) if name == "array2d" else (self.pe_dim,)

    def pe_count(self, name: str) -> int:
        shape = self.unit_shape(name)
        return shape[0] * (shape[1] if len(shape) > 1 else 1)

    def area_breakdown_mm2(self) -> dict[str, float]:
        return {"array2d": self.pe_count("array2d") * self.array2d.pe_area_um2 / 1e6,
                "array1d": self.pe_count("array1d") * self.array1d.pe_area_um2 / 1e6,
                "global_buffer": self.global_buffer.area_um2 / 1e6}

    @property
    def area_mm2(self) -> float:
        return sum(self.area_breakdown_mm2().values())


# Overridable by short name, as sweeps and ``--param`` name them.
SHORT_NAMES = {"pe_dim": "pe_dim", "clock_hz": "clock_hz",
               "global_buffer_bytes": "global_buffer.bytes",
               "dram_bandwidth": "dram.bandwidth_bytes_per_s"}


def spatial_array_presets() -> list[str]:
    from hw_models.gpu_sm import _presets_of_kind

    return list(_presets_of_kind("spatial_array"))


def load_spatial_array(name_or_path: str, overrides: Mapping[str, float] | None = None
                       ) -> SpatialArray:
    """A preset by name (``fusemax-cloud``) or a YAML path, with overrides applied by name."""
    name_or_path = spec_name("hardware", name_or_path)
    if overrides is not None and not isinstance(overrides, Mapping):
        raise SpecError(f"overrides {overrides!r}: expected a mapping of field name to value, "
                        "e.g. {'pe_dim': 128}")
    document, source = read_spec(name_or_path, resources.files("hw_models").joinpath("presets"),
                                 "hardware", spatial_array_presets())
    for key, value in (overrides or {}).items():
        if not isinstance(key, str):
            raise SpecError(f"hardware {source}: override name {key!r}: expected text, e.g. "
                            f"{', '.join(SHORT_NAMES)} or a dotted field path")
        _set(document, SHORT_NAMES.get(key, key), value, source)
    try:
        return SpatialArray.model_validate(document)
    except ValidationError as error:
        raise SpecError(f"hardware {source}: {describe_validation_error(error)}") from None


def _set(document: dict, path: str, value, source: str) -> None:
    keys = path.split(".")
    node = document
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            raise SpecError(f"hardware {source}: cannot override {path!r}: no field {key!r}; "
                            f"short names: {', '.join(SHORT_NAMES)}")
        node = node[key]
    if keys[-1] not in node:
        raise SpecError(f"hardware {source}: cannot override {path!r}: no such field; short "
                        f"names: {', '.join(SHORT_NAMES)}")
    node[keys[-1]] = value
