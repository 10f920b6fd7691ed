"""``einsim map``: one front door over the two searches — a tree's free parameters (with a
mapping), or trees themselves (with only a cascade)."""

from __future__ import annotations

import time
from typing import Mapping

from einsim.errors import SpecError
from einsim.search.trees import TreeSearch


def map_cascade(mapping: str | None, cascade: str | None, hardware: str | None,
                workload: str, seq_len: int, objective: str = "latency",
                parameters: Mapping[str, float] | None = None) -> TreeSearch:
    """The best mapping (as a :class:`TreeSearch`: result, YAML, effort and time)."""
    from einsim import library
    from einsim.cost.evaluate import _check_symbolic, best_concrete, concrete_trees, problem_of
    from einsim.cost.tree import load_mapping_tree
    from einsim.cost.tree_yaml import dump_mapping
    from einsim.search.trees import search_trees
    from einsim.workloads import load_workload

    start = time.perf_counter()
    problem = problem_of(load_workload(workload, seq_len))
    if mapping is None and cascade is None:
        mapping = "fusemax"
    if mapping is not None:
        tree = load_mapping_tree(mapping)
        result, concrete = best_concrete(tree, problem, hardware, parameters, objective, cascade)
        values = {k: v for k, v in result.best.parameters.items() if k in concrete.parameters}
        text = dump_mapping(concrete, values, cascade, hardware)
        return TreeSearch(result, text, len(concrete_trees(tree, dict(parameters or {}))[0]),
                          result.evaluated, time.perf_counter() - start)
    from hw_models.spatial_array import load_spatial_array
    from einsim.cost.front_door import load_hardware
    from einsim.cost.hierarchy import spatial_array_hierarchy

    machine = load_hardware(hardware or "fusemax-cloud")
    if machine.kind == "gpu_sm":
        from einsim.cost.gpu_hierarchy import gpu_hierarchy
        from einsim.search.gpu_trees import search_gpu_trees

        if parameters:
            raise SpecError(f"--param {next(iter(parameters))}: a GPU's fields cannot be "
                            "overridden; write a GPU YAML file instead")
        return search_gpu_trees(library.load(cascade), gpu_hierarchy(machine),
                                machine.model_dump_json(), problem, objective, cascade)

    unknown = [k for k in dict(parameters or {}) if k not in ("pe_dim", "clock_hz",
                                                             "dram_bandwidth",
                                                             "global_buffer_bytes")]
    if unknown:
        raise SpecError(f"--param {unknown[0]}: without --mapping only hardware fields can be "
                        "set (pe_dim, clock_hz, dram_bandwidth, global_buffer_bytes)")
    machine = load_spatial_array(hardware or "fusemax-cloud")
    symbolic = _check_symbolic(machine, dict(parameters or {}))
    key = machine.model_copy(update={"pe_dim": 1, "clock_hz": 1.0}).model_dump_json()
    return search_trees(library.load(cascade), spatial_array_hierarchy(machine), key, problem,
                        objective, cascade, symbolic)
