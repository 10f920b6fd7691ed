"""The cost model for spatial arrays (DESIGN.md §6): a Mapping on a hardware model → a Report.

Generic over cascades: op counts come from the IR (sympy, lambdified once per cascade); an
Einsum's cycles on its unit are its points times the busiest functional unit's actions per
point, divided by the PEs its spatial ranks keep busy; a pipeline stage lasts as long as its
busiest unit; memory traffic and the live buffer come from the mapping's residency.
"""

from __future__ import annotations

import math
from functools import lru_cache

import sympy
from pydantic import BaseModel, ConfigDict

from einsim import ir, library
from einsim.footprint import iteration_points, op_counts, size_symbol, tensor_elements
from einsim.mapping import Mapping, MappingError
from einsim.passes import passes as count_passes
from einsim.cost.report import EinsumCost, Report
from einsim.sizes import input_axis_ranks
from hw_models.spatial_array import SpatialArray

_AXES = {"array2d": ("rows", "cols"), "array1d": ("pes",)}


@lru_cache(maxsize=None)
def _compiled(cascade_name: str):
    """Per Einsum: (points, {op: count}) as fast functions of the sizes; tensor sizes too."""
    cascade = library.get(cascade_name)
    symbols = sorted({s for e in cascade.einsums for s in iteration_points(e).free_symbols}
                     | {size_symbol(r) for t in cascade.input_names
                        for r in input_axis_ranks(cascade, t) if r}, key=str)
    names = [str(s) for s in symbols]

    def compile_(expression):
        return sympy.lambdify(symbols, sympy.sympify(expression), "math")

    einsums = {e.name: (compile_(iteration_points(e)),
                        {op: compile_(count) for op, count in op_counts(e).items()})
               for e in cascade.einsums}
    tensors = {e.name: compile_(tensor_elements(cascade, e.name)) for e in cascade.einsums}
    for name in cascade.input_names:
        tensors[name] = compile_(sympy.Mul(*(size_symbol(r) for r in
                                             input_axis_ranks(cascade, name))))
    return cascade, names, einsums, tensors


@lru_cache(maxsize=None)
def _passes(cascade_name: str, rank: str) -> int:
    return count_passes(library.get(cascade_name), rank)


def _spatial_factor(mapping: Mapping, hardware: SpatialArray, name: str) -> float:
    binding = mapping.spec.binding[name]
    shape = dict(zip(_AXES[binding.unit], hardware.unit_shape(binding.unit)))
    factor = 1.0
    for axis, variable in binding.spatial.items():
        if axis not in shape:
            raise MappingError(f"{mapping.spec.name}: {name} spreads {variable} over {axis!r}, "
                               f"but {binding.unit} has {', '.join(shape)}")
        extent = mapping.spatial_extents.get(variable, mapping.sizes[ir.rank_of(variable)])
        dim = shape[axis]
        factor *= extent / (math.ceil(extent / dim) * dim)
    return factor


def evaluate_mapping(mapping: Mapping, hardware: SpatialArray, workload) -> Report:
    """Cost of ``mapping`` on ``hardware`` for ``workload`` (all batches and heads)."""
    spec = mapping.spec
    cascade, names, einsums, tensors = _compiled(spec.cascade)
    for rank, declared in spec.passes.items():
        needed = _passes(spec.cascade, rank)
        if declared < needed:
            raise MappingError(
                f"mapping {spec.name} makes {declared} pass(es) over {rank}, but cascade "
                f"{spec.cascade} needs {needed}: a value would be read before its reduction over "
                f"{rank} completes")
    args = [mapping.sizes[n] for n in names]
    copies = workload.batch * workload.heads
    stage_of = {n: k for k, stage in enumerate(spec.stages) for n in stage}
    costs: list[EinsumCost] = []
    busy = {"array2d": 0.0, "array1d": 0.0}
    actions_total: dict[tuple[str, str], float] = {}
    for einsum in cascade.einsums:
        points_fn, op_fns = einsums[einsum.name]
        if not op_fns:
            continue  # a pure copy (BK, BV): data movement, costed by residency
        if einsum.name not in spec.binding or einsum.name not in stage_of:
            raise MappingError(f"mapping {spec.name} does not bind or stage Einsum "
                               f"{einsum.name} of cascade {spec.cascade}")
        unit_name = spec.binding[einsum.name].unit
        unit = hardware.unit(unit_name)
        points = points_fn(*args)
        ops = {op: fn(*args) for op, fn in op_fns.items()}
        per_unit: dict[str, float] = {}
        for op, count in ops.items():
            for action, times in unit.actions_for(op).items():
                if action not in unit.actions:
                    raise MappingError(
                        f"{einsum.name} needs {action!r} (for {op}) but {unit_name} of "
                        f"{hardware.name} offers {', '.join(unit.actions)}")
                key = (unit_name, action)
                actions_total[key] = actions_total.get(key, 0.0) + count * times * copies
                functional = unit.unit_of(action)
                per_unit[functional] = per_unit.get(functional, 0.0) + count * times / points
        factor = _spatial_factor(mapping, hardware, einsum.name)
        cycles = points * max(per_unit.values()) / (hardware.pe_count(unit_name) * factor) \
            * copies
        busy[unit_name] += cycles * factor  # PE-cycles doing work, in whole-array cycles
        costs.append(EinsumCost(name=einsum.name, unit=unit_name,
                                ops={k: v * copies for k, v in ops.items()}, cycles=cycles,
                                stage=stage_of[einsum.name]))
    stage_cycles = [0.0] * len(spec.stages)
    for k in range(len(spec.stages)):
        per_unit_stage: dict[str, float] = {}
        for cost in costs:
            if cost.stage == k:
                per_unit_stage[cost.unit] = per_unit_stage.get(cost.unit, 0.0) + cost.cycles
        stage_cycles[k] = max(per_unit_stage.values(), default=0.0)
    compute_s = sum(stage_cycles) / hardware.clock_hz
    dram_words, gb_reads, gb_writes, buffer_words, largest = _traffic(
        mapping, cascade, tensors, args)
    word_bytes = hardware.word_bytes
    buffer_bytes = buffer_words * word_bytes
    capacity = hardware.global_buffer.bytes
    if buffer_bytes > capacity:
        raise MappingError(
            f"mapping {spec.name} does not fit: tensor {largest[0]} needs {largest[1] * word_bytes:,.0f}"
            f" bytes in the global buffer, {buffer_bytes:,.0f} bytes in all, but {hardware.name} "
            f"has {capacity:,} bytes available")
    traffic_bytes = dram_words * word_bytes * copies
    memory_s = traffic_bytes / hardware.dram.bandwidth_bytes_per_s
    latency_s = max(compute_s, memory_s)
    total_cycles = latency_s * hardware.clock_hz
    utilization = {u: (b / total_cycles if total_cycles else 0.0) for u, b in busy.items()}
    energy = _energy(hardware, actions_total, dram_words * copies, gb_reads * copies,
                     gb_writes * copies)
    return Report(cascade=spec.cascade, mapping=spec.name, hardware=hardware.name,
                  workload=workload.name, seq_len=workload.seq_len,
                  parameters=dict(mapping.parameters),
                  passes=_passes(spec.cascade, "m"), buffer_bytes=buffer_bytes,
                  buffer_capacity_bytes=capacity, traffic_bytes=traffic_bytes,
                  compute_latency_s=compute_s, memory_latency_s=memory_s, latency_s=latency_s,
                  utilization=utilization, energy_j=sum(energy.values()),
                  energy_breakdown_j=energy, area_mm2=hardware.area_mm2, einsums=costs)


def _traffic(mapping: Mapping, cascade: ir.Cascade, tensors, args):
    """Per (batch, head): DRAM words, global-buffer reads and writes, live buffer words."""
    consumers: dict[str, int] = {}
    for einsum in cascade.einsums:
        for name in {a.tensor for a in einsum.inputs}:
            consumers[name] = consumers.get(name, 0) + 1
    dram = gb_reads = gb_writes = buffer_words = 0.0
    largest = ("", 0.0)
    for name, residency in mapping.residency.items():
        if name not in tensors:
            raise MappingError(f"mapping {mapping.spec.name} places tensor {name}, which cascade "
                               f"{mapping.spec.cascade} does not have")
        words = tensors[name](*args)
        moved = words * (residency.dram_reads + residency.dram_writes)
        dram += moved
        gb_writes += moved  # everything crossing DRAM is staged in the global buffer
        gb_reads += moved
        if residency.level == "global_buffer":
            gb_writes += words
            gb_reads += words * consumers.get(name, 0)
            buffer_words += residency.buffer_words
            if residency.buffer_words > largest[1]:
                largest = (name, residency.buffer_words)
    return dram, gb_reads, gb_writes, buffer_words, largest


def _energy(hardware: SpatialArray, actions: dict, dram_words: float, gb_reads: float,
            gb_writes: float) -> dict[str, float]:
    """Joules by component: each action's energy plus its register-file traffic
    (two operand reads and one result write), buffer rows and DRAM accesses."""
    breakdown = {"array2d": 0.0, "array1d": 0.0, "register_files": 0.0}
    for (unit_name, action), count in actions.items():
        unit = hardware.unit(unit_name)
        breakdown[unit_name] += count * unit.actions[action].energy_pj * 1e-12
        breakdown["register_files"] += count * (2 * unit.register_file.read_pj
                                                + unit.register_file.write_pj) * 1e-12
    buffer = hardware.global_buffer
    breakdown["global_buffer"] = (gb_reads * buffer.read_pj_per_row
                                  + gb_writes * buffer.write_pj_per_row) / buffer.row_words * 1e-12
    words_per_access = hardware.dram.access_bits / hardware.word_bits
    breakdown["dram"] = dram_words / words_per_access * hardware.dram.energy_pj_per_access * 1e-12
    return breakdown
