"""The front door of the loop-tree engine: mapping file + cascade + hardware + workload →
the best Report over the tree's free parameters (and the Pareto set)."""

from __future__ import annotations

from typing import Mapping

from einsim import library
from einsim.cost.engine import Problem, compiled
from einsim.cost.hierarchy import spatial_array_hierarchy
from einsim.cost.tree import MappingTree, load_mapping_tree
from einsim.errors import SpecError
from einsim.errors import MappingError
from einsim.search.parameters import SearchResult, search

# Hardware fields that stay symbols in the compiled expressions (swept without recompiling).
SYMBOLIC_FIELDS = {"pe_dim": "pe_dim", "clock_hz": "clock_hz",
                   "dram_bandwidth": "dram.bandwidth_bytes_per_s",
                   "global_buffer_bytes": "global_buffer.bytes"}


def concrete_trees(mapping: MappingTree, parameters: Mapping[str, object]):
    """Each concrete tree to try — one per combination of level choices (``$row_buffer``)
    not fixed in ``parameters`` — with its choices; and the parameters left."""
    import itertools

    rest = {k: v for k, v in parameters.items() if k not in mapping.structural}
    options = [[parameters[n]] if n in parameters else mapping.choices(n)
               for n in mapping.structural]
    trees = []
    for combination in itertools.product(*options):
        choice = dict(zip(mapping.structural, (str(c) for c in combination)))
        trees.append((choice, mapping.concrete(choice) if choice else mapping))
    return trees, rest


def split_tree_parameters(mapping: MappingTree, parameters: Mapping[str, float]):
    """(mapping parameters, symbolic hardware overrides, baked hardware overrides)."""
    fixed, symbolic, baked = {}, {}, {}
    for key, value in parameters.items():
        if key in mapping.parameters:
            fixed[key] = _positive_integer(key, value)
        elif key in SYMBOLIC_FIELDS:
            symbolic[key] = value
        elif "." in key:
            baked[key] = value
        else:
            raise SpecError(f"unknown parameter {key!r}: not a parameter of mapping "
                            f"{mapping.name} ({', '.join(mapping.parameters) or 'none'}) nor a "
                            f"hardware field ({', '.join(SYMBOLIC_FIELDS)}, or a dotted path)")
    return fixed, symbolic, baked


def _positive_integer(name: str, value) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"parameter {name}: expected a positive whole number, got {value!r}") \
            from None
    if not number.is_integer() or number < 1:
        raise SpecError(f"parameter {name}: expected a positive whole number, got {value!r}")
    return int(number)


def compile_for(mapping: MappingTree, cascade_name: str | None = None,
                hardware: str | None = None, baked: Mapping[str, float] | None = None):
    """(compiled mapping, hardware model) for a tree, a cascade override and a hardware."""
    from einsim.cost.front_door import load_hardware

    from hw_models.offload import is_device_group, load_device_group

    def load(text: str, overrides=None):  # a device group (GPU:COUNT[@LINK]) or one machine
        if not is_device_group(text):
            return load_hardware(text, overrides)
        if overrides:
            raise SpecError(f"device group {text}: parameters {', '.join(overrides)} cannot "
                            "be overridden")
        return load_device_group(text)

    cascade = library.load(cascade_name or mapping.cascade)
    name = hardware or mapping.hardware
    machine = load(name, dict(baked or {}))
    native = machine.kind if name == mapping.hardware else load(mapping.hardware).kind
    if machine.kind != native:
        kinds = {"spatial_array": "a spatial array", "gpu_sm": "a GPU",
                 "device_group": "a device group (GPU:COUNT[@LINK])"}
        raise MappingError(f"mapping {mapping.name} runs on {kinds[native]} (like "
                           f"{mapping.hardware}); {machine.name} is {kinds[machine.kind]}")
    if machine.kind == "device_group":
        from einsim.cost.device_hierarchy import device_hierarchy

        return compiled(cascade, mapping, device_hierarchy(machine),
                        machine.model_dump_json()), machine
    if machine.kind == "gpu_sm":
        from einsim.cost.gpu_hierarchy import gpu_hierarchy

        return compiled(cascade, mapping, gpu_hierarchy(machine),
                        machine.model_dump_json()), machine
    key = machine.model_copy(update={"pe_dim": 1, "clock_hz": 1.0}).model_dump_json()
    hierarchy = spatial_array_hierarchy(machine)
    return compiled(cascade, mapping, hierarchy, key), machine


def problem_of(workload) -> Problem:
    return Problem(workload.name, workload.sizes(), workload.batch * workload.heads,
                   workload.seq_len)


def evaluate_tree(mapping: str | MappingTree, hardware: str | None = None,
                  workload: str = "bert", seq_len: int | str | None = None,
                  parameters: Mapping[str, float] | None = None, objective: str = "latency",
                  cascade: str | None = None, pareto: bool = True) -> SearchResult:
    """Search the tree's free parameters not fixed in ``parameters``; the best and the Pareto
    set.  ``parameters`` also takes hardware overrides by name (``pe_dim``...)."""
    from einsim.workloads import load_workload

    tree = load_mapping_tree(mapping) if isinstance(mapping, str) else mapping
    problem = problem_of(load_workload(workload, seq_len))
    return best_concrete(tree, problem, hardware, parameters, objective, cascade, pareto)[0]


def best_concrete(tree: MappingTree, problem: Problem, hardware: str | None = None,
                  parameters: Mapping[str, object] | None = None, objective: str = "latency",
                  cascade: str | None = None, pareto: bool = True
                  ) -> tuple[SearchResult, MappingTree]:
    """The best search result over the tree's level choices, and that concrete tree."""
    trees, rest = concrete_trees(tree, dict(parameters or {}))
    best, best_tree, errors, results = None, None, [], []
    for choice, concrete in trees:
        fixed, symbolic, baked = split_tree_parameters(concrete, rest)
        engine, machine = compile_for(concrete, cascade, hardware, baked)
        try:
            found = search(engine, problem, objective, fixed,
                           _check_symbolic(machine, symbolic), problem.name, pareto=pareto)
        except MappingError as error:
            errors.append(error)
            continue
        if choice:
            found = _with_choice(found, choice)
        results.append(found)
        if best is None or objective_key(found.best, objective) < objective_key(best.best,
                                                                                objective):
            best, best_tree = found, concrete
    if best is None:
        raise errors[0]
    if len(results) > 1:  # one Pareto set and one count over every level choice
        front, lowest = [], float("inf")
        for report in sorted((r for found in results for r in found.pareto),
                             key=lambda r: (r.latency_s, r.energy_j)):
            if report.energy_j < lowest:
                front.append(report)
                lowest = report.energy_j
        best = SearchResult(best.best, front, sum(r.evaluated for r in results),
                            sum(r.infeasible for r in results), best.reasons)
    return best, best_tree


def objective_key(report, objective: str) -> tuple:
    """Sort key of a report for an objective (ties broken by the other metric)."""
    return {"latency": (report.latency_s, report.energy_j),
            "energy": (report.energy_j, report.latency_s),
            "edp": (report.latency_s * report.energy_j, report.latency_s)}[objective]


def _with_choice(found: SearchResult, choice: dict) -> SearchResult:
    def add(report):
        return report.model_copy(update={"parameters": {**report.parameters, **choice}})

    return SearchResult(add(found.best), [add(r) for r in found.pareto], found.evaluated,
                        found.infeasible, found.reasons)


def _check_symbolic(machine, symbolic: Mapping[str, float]) -> dict[str, float]:
    """Validate symbolic overrides through the hardware schema (finite, positive...)."""
    if not symbolic:
        return {}
    from einsim.specfile import with_fields

    checked = with_fields(machine, symbolic, SYMBOLIC_FIELDS)
    return {key: value for key, value in {
        "pe_dim": checked.pe_dim, "clock_hz": checked.clock_hz,
        "dram_bandwidth": checked.dram.bandwidth_bytes_per_s,
        "global_buffer_bytes": checked.global_buffer.bytes}.items() if key in symbolic}
