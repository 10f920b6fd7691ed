"""Evaluate a mapping on a hardware model for a workload: the front door of the cost model."""

from __future__ import annotations

from pathlib import Path

import yaml
from typing import Mapping as MappingType

from einsim.cost import EinsumCost, Report
from einsim.cost.tree import load_mapping_tree
from einsim.errors import SpecError
from einsim.cost.gemm import gemm_cost
from einsim.specfile import load_yaml_text
from einsim.workloads import linear_layers, load_workload
from hw_models.gpu_sm import gpu_presets, load_gpu
from hw_models.spatial_array import SHORT_NAMES, load_spatial_array, spatial_array_presets


def evaluate(mapping: str = "fusemax", hardware: str | None = None, workload: str = "bert",
             seq_len: int | str | None = None, parameters: MappingType[str, float] | None = None,
             objective: str = "latency", scope: str = "attention",
             cascade: str | None = None) -> Report:
    """Cost report of ``mapping`` (its own hardware unless ``hardware`` is given).

    ``parameters`` mixes mapping parameters (fixed instead of searched) and hardware overrides
    by name (``pe_dim``, ``global_buffer_bytes``, ``dram_bandwidth``, ``clock_hz`` or a dotted
    field path).  Free mapping parameters not given are chosen by the mapper for ``objective``.
    ``cascade`` (a library name or a file) replaces a loop-tree mapping's own cascade; the
    tree applies wherever its Einsum names match.
    ``scope="end-to-end"`` adds one transformer layer's linear layers (Q/K/V and output
    projections, both FFN GEMMs), run on the same hardware after attention.
    """
    if scope not in ("attention", "end-to-end"):
        raise SpecError(f"unknown scope {scope!r}; expected attention or end-to-end")
    from einsim.cost.evaluate import evaluate_tree

    report = evaluate_tree(mapping, hardware, workload, seq_len, parameters, objective, cascade,
                           pareto=False).best
    if scope == "end-to-end":
        machine = load_hardware(hardware or load_mapping_tree(mapping).hardware,
                                _hardware_overrides(parameters))
        if machine.kind != "spatial_array":
            raise SpecError(f"scope end-to-end: the linear layers are modelled on spatial "
                            f"arrays only; {machine.name} is a GPU")
        return with_linear_layers(report, machine, load_workload(workload, seq_len))
    return report


def _hardware_overrides(parameters) -> dict:
    return {k: v for k, v in dict(parameters or {}).items() if k in SHORT_NAMES or "." in k}


def load_hardware(name: str, overrides: MappingType[str, float] | None = None):
    """A spatial array or a GPU, by preset name or YAML file (whichever kind it is)."""
    if name in gpu_presets() or _file_kind(name) == "gpu_sm":
        if overrides:
            raise SpecError(f"GPU {name}: parameters {', '.join(overrides)} cannot be "
                            "overridden; write a GPU YAML file instead")
        return load_gpu(name)
    if name not in spatial_array_presets() and not Path(name).is_file():
        raise SpecError(f"hardware {name!r}: unknown preset; expected a YAML file or one of "
                        f"{', '.join(spatial_array_presets() + gpu_presets())}")
    return load_spatial_array(name, overrides)


def _file_kind(name: str):
    """The ``kind`` of a hardware YAML file; None when unreadable (its loader then says why)."""
    path = Path(name)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        return None
    try:
        document = load_yaml_text(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError):
        return None
    return document.get("kind") if isinstance(document, dict) else None


def with_linear_layers(report: Report, hardware, workload) -> Report:
    """The report of attention followed by the layer's GEMMs (serialized on the 2D array)."""
    costs = [gemm_cost(layer, hardware) for layer in linear_layers(workload)]
    gemm_s = sum(c.cycles for c in costs) / hardware.clock_hz
    gemm_memory_s = sum(c.dram_words for c in costs) * hardware.word_bytes \
        / hardware.dram.bandwidth_bytes_per_s
    linear_s = max(gemm_s, gemm_memory_s)
    latency = report.latency_s + linear_s
    busy = {unit: share * report.latency_s for unit, share in report.utilization.items()}
    busy["array2d"] += sum(c.busy_cycles for c in costs) / hardware.clock_hz
    energy = dict(report.energy_breakdown_j)
    for cost in costs:
        for part, joules in cost.energy_j.items():
            energy[part] = energy.get(part, 0.0) + joules
    einsums = list(report.einsums) + [
        EinsumCost(name=c.name, unit="array2d", ops={"mac": c.busy_cycles * hardware.pe_count(
            "array2d")}, cycles=c.cycles, stage=len({e.stage for e in report.einsums}))
        for c in costs]
    return report.model_copy(update={
        "scope": "end-to-end", "latency_s": latency,
        "compute_latency_s": report.compute_latency_s + gemm_s,
        "memory_latency_s": report.memory_latency_s + gemm_memory_s,
        "traffic_bytes": report.traffic_bytes + sum(c.dram_words for c in costs)
        * hardware.word_bytes,
        "utilization": {unit: b / latency for unit, b in busy.items()},
        "energy_j": sum(energy.values()), "energy_breakdown_j": energy, "einsums": einsums})


def execute_tree(mapping: str, cascade: str | None = None, seq_len: int = 200,
                 head_dim: int = 16, tile: int = 32):
    """Run a loop tree's cascade tile by tile along the tree's key loop, against the
    reference; the tree's pass legality was already checked when it was compiled."""
    from einsim import library
    from einsim.cost.tree import Loop, nodes
    from einsim.execution.validate import input_axis_ranks, random_inputs, validate

    tree = load_mapping_tree(mapping)
    chosen = library.load(cascade or tree.cascade)
    # a library cascade has its own NumPy reference and sizes (a 2-D one: MX, MY, ...); any
    # other is checked against itself executed whole, so the tree's tiling must not change
    # its numbers
    own = chosen.name in library.names() and library.get(chosen.name) == chosen
    entry = library.entry(chosen.name) if own else None
    # the innermost loop over a key rank (a multi-dimensional window walks several)
    ranks = {r for r in input_axis_ranks(chosen, "K") if r} if "K" in chosen.input_names \
        else {entry.sequence_rank.upper() if entry else "M"}
    family = {r.lower() for r in ranks} | {part.lower() for p in chosen.partitions
                                          if p.rank in ranks for part in p.parts}
    walked = [n.variable for n in nodes(tree.root) if isinstance(n, Loop)
              and n.variable in family]
    variable = walked[-1] if walked else None
    # (a multi-dimensional one keeps its own small token grid: seq_len sets a 1-D sequence)
    sizes = {**(entry.sizes_for(seq_len if entry.sequence_rank == "m" else None) if entry
                else {"M": seq_len, "P": seq_len}),
             "E": head_dim, "F": head_dim}
    for partition in chosen.partitions:
        for part in partition.sizes:
            if isinstance(part, str):
                sizes[part] = tile
    inputs = random_inputs(chosen, sizes)
    return validate(chosen, sizes=sizes, inputs=inputs, tile=variable,
                    reference=None if own else chosen)


def execute_mapping(mapping: str, seq_len: int = 200, head_dim: int = 16, tile: int = 32,
                    cascade: str | None = None):
    """Run a mapping's tiling numerically on a small problem and check it against the reference
    (the :class:`~einsim.execution.validate.ValidationResult`)."""
    return execute_tree(mapping, cascade, seq_len, head_dim, tile)
