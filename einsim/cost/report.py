"""The Report: everything one evaluation states, with stable JSON keys."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class EinsumCost(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    unit: str
    ops: dict[str, float]
    cycles: float
    stage: int


class Report(BaseModel):
    """Everything an evaluation reports; ``to_json`` keeps the published key names."""

    model_config = ConfigDict(frozen=True)

    cascade: str
    mapping: str
    hardware: str
    workload: str
    seq_len: int
    scope: str = "attention"
    parameters: dict[str, int | float | str]
    passes: int
    buffer_bytes: float
    buffer_capacity_bytes: float
    traffic_bytes: float
    compute_latency_s: float
    memory_latency_s: float
    latency_s: float
    utilization: dict[str, float]
    energy_j: float
    energy_breakdown_j: dict[str, float]
    area_mm2: float | None
    einsums: list[EinsumCost]
    traffic_by_level: dict[str, dict[str, dict[str, float]]] = {}
    accesses_by_level: dict[str, dict[str, float]] = {}
