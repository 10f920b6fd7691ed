"""Evaluate a mapping on a hardware model for a workload: the front door of the cost model."""

from __future__ import annotations

from typing import Mapping as MappingType

from einsim.cost import Report
from einsim.mapper import search
from einsim.mapping import load_mapping_spec
from einsim.workload import load_workload
from hw_models.spatial_array import SHORT_NAMES, load_spatial_array


def split_parameters(spec, parameters: MappingType[str, float]):
    """Separate mapping parameters (``P1``, ``rows``) from hardware overrides (``pe_dim``...)."""
    mapping = {k: v for k, v in parameters.items() if k in spec.parameters}
    hardware = {k: v for k, v in parameters.items() if k not in spec.parameters}
    return mapping, hardware


def evaluate(mapping: str = "fusemax", hardware: str | None = None, workload: str = "bert",
             seq_len: int | str | None = 65536, parameters: MappingType[str, float] | None = None,
             objective: str = "latency") -> Report:
    """Cost report of ``mapping`` (its own hardware unless ``hardware`` is given).

    ``parameters`` mixes mapping parameters (fixed instead of searched) and hardware overrides
    by name (``pe_dim``, ``global_buffer_bytes``, ``dram_bandwidth``, ``clock_hz`` or a dotted
    field path).  Free mapping parameters not given are chosen by the mapper for ``objective``.
    """
    spec = load_mapping_spec(mapping)
    fixed, overrides = split_parameters(spec, dict(parameters or {}))
    for key in overrides:
        if key not in SHORT_NAMES and "." not in key:
            from einsim.errors import SpecError

            raise SpecError(f"unknown parameter {key!r}: not a parameter of mapping {spec.name} "
                            f"({', '.join(spec.parameters) or 'none'}) nor a hardware field "
                            f"({', '.join(SHORT_NAMES)})")
    machine = load_spatial_array(hardware or spec.hardware, overrides)
    problem = load_workload(workload, seq_len)
    return search(spec, machine, problem, objective, fixed).best
