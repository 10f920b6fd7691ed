"""The mapper over trees: build loop trees for any cascade on a spatial array, search them.

The space (DESIGN.md §6 "The mapper"):

* **binding** — each Einsum that iterates both the query rank and the key rank runs on the
  2D array or the 1D array (if the unit can do its operations at all); the rest run on the
  1D array;
* **spatial ranks** — on the 2D array, key × query (output-stationary) or, for a
  contraction, its reduced rank × query (FLAT-style, the first operand stationary);
* **where intermediates live** — registers when produced and consumed inside the 2D
  array's branch, otherwise the global buffer (per key tile when the cascade partitions the
  key rank, else the whole key extent of a query block: a row buffer, shared in place by
  element-wise chains);
* **composition** — the two arrays pipelined across iterations, or in sequence;
* **tile sizes** — the query block (and key tile) as free parameters, searched vectorized.

Passes prune it: a cascade partitioned over the key rank (one pass over its outer part) gets
one loop over the key tiles shared by every traversal; otherwise each traversal gets its own
key loops, in pass order, so no reader of a complete reduction shares its producer's loop.
Bindings are ranked by their busiest unit's load before any tree is compiled; the best few
are built, compiled and searched.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from einsim.language import ir
from einsim.cost.cascade_view import CascadeView
from einsim.cost.engine import Problem, compiled
from einsim.cost.hierarchy import Hierarchy
from einsim.cost.tree import mapping_from_document
from einsim.cost.tree_yaml import dump_mapping
from einsim.errors import EinsimError
from einsim.analysis.footprint import op_counts
from einsim.analysis.graph import recurrences
from einsim.errors import MappingError
from einsim.analysis.passes import rank_leaves
from einsim.search.parameters import SearchResult, search

MAX_BIG = 10       # Einsums whose binding is searched exhaustively (2^10 cheap estimates)
BUILT = 4          # bindings built into trees and compiled


@dataclass(frozen=True)
class TreeSearch:
    result: SearchResult
    mapping_yaml: str
    trees: int
    points: int
    seconds: float


@dataclass(frozen=True)
class Roles:
    query: str
    outer: str | None      # the key rank's outer part (m1) when the cascade partitions it
    inner: str             # the key variable leaves iterate (m0, or m)
    key_family: frozenset[str]


def roles(cascade: ir.Cascade, sizes) -> Roles:
    """Which variables play query and key (the key rank is the one passes are counted over)."""
    roots = [p for p in cascade.partitions]
    if roots:
        partition = roots[0]
        family = frozenset(p.lower() for p in rank_leaves(cascade, partition.rank)) \
            | {partition.rank.lower()}
        outer, inner = partition.parts[0].lower(), partition.parts[-1].lower()
    else:
        variables = {v for e in cascade.einsums for v in e.variables}
        if "m" not in variables:
            raise MappingError("the tree mapper needs a key rank M (a variable m, or a partition "
                               "of M) to stream; this cascade has none")
        family, outer, inner = frozenset({"m"}), None, "m"
    outputs = [cascade.producers[o] for o in cascade.outputs]
    candidates = [v for o in outputs for v in o.output.variables if v not in family]
    if not candidates:
        raise MappingError("the tree mapper needs a query rank in the cascade's output")
    query = max(candidates, key=lambda v: (sizes.get(ir.rank_of(v), 0), v == "p"))
    return Roles(query, outer, inner, family)


def search_trees(cascade: ir.Cascade, hierarchy: Hierarchy, hardware_key: str,
                 problem: Problem, objective: str = "latency", cascade_name: str = "",
                 overrides=None) -> TreeSearch:
    """Best tree for ``cascade`` on a spatial array, with its free parameters searched."""
    start = time.perf_counter()
    if hierarchy.kind != "spatial_array":
        raise MappingError(f"the tree mapper builds trees for spatial arrays; {hierarchy.name} "
                           f"is a {hierarchy.kind}")
    sizes = dict(problem.sizes)
    who = roles(cascade, sizes)
    view = CascadeView(cascade)
    einsums = [e for e in cascade.einsums if e.name not in view.views]
    streamed = [e for e in einsums if set(e.variables) & who.key_family]
    big = [e.name for e in streamed if who.query in e.variables and _fits_2d(e, who, hierarchy)]
    if len(big) > MAX_BIG:
        big = big[:MAX_BIG]
    ranked = _rank_bindings(einsums, big, hierarchy, who, sizes)
    results, trees, points, errors = [], 0, 0, []
    for binding in ranked[:BUILT]:
        done: set[str] = set()
        for variant in _variants(cascade, who, binding):
            if variant["compose"] == "sequence" and variant["rows"] in done:
                continue  # the pipeline of the same trees was legal, and never slower
            document = _tree_document(cascade, view, who, binding, variant, cascade_name,
                                      hierarchy)
            try:
                tree = mapping_from_document(document, "tree mapper")
                engine = compiled(cascade, tree, hierarchy, hardware_key, cse=False)
                found = search(engine, problem, objective, {}, overrides, problem.name,
                               screen=True)
            except EinsimError as error:
                errors.append(str(error))
                continue
            done.add(variant["rows"])
            trees += 1
            points += found.evaluated
            results.append((found, tree))
    if not results:
        raise MappingError("the tree mapper found no feasible tree"
                           + (f"; the first candidate failed: {errors[0]}" if errors else ""))
    key = {"latency": lambda r: (r.latency_s, r.energy_j),
           "energy": lambda r: (r.energy_j, r.latency_s),
           "edp": lambda r: (r.latency_s * r.energy_j, r.latency_s)}[objective]
    screened, tree = min(results, key=lambda item: key(item[0]))
    # the reported numbers come from the same compilation `evaluate` uses, bit for bit
    found = search(compiled(cascade, tree, hierarchy, hardware_key), problem, objective, {},
                   overrides, problem.name)
    result = SearchResult(found.best, found.pareto, points,
                          sum(r.infeasible for r, _ in results))
    text = dump_mapping(tree, found.best.parameters)
    return TreeSearch(result, text, trees, points, time.perf_counter() - start)


def _fits_2d(einsum: ir.Einsum, who: Roles, hierarchy: Hierarchy) -> bool:
    unit = hierarchy.units.get("array2d")
    if unit is None or who.inner not in einsum.variables:
        return False
    try:
        for op in op_counts(einsum):
            unit.actions_for(op)
    except MappingError:
        return False
    return True


def _cost_per_point(einsum: ir.Einsum, unit) -> float:
    """Actions per point on the unit's busiest functional unit."""
    per_functional: dict[str, float] = {}
    for op, count in op_counts(einsum).items():
        share = float(count / _points(einsum))
        for action, times in unit.actions_for(op).items():
            functional = unit.functional_unit.get(action, action)
            per_functional[functional] = per_functional.get(functional, 0.0) + share * times
    return max(per_functional.values(), default=0.0)


def _points(einsum: ir.Einsum):
    from einsim.analysis.footprint import iteration_points

    return iteration_points(einsum)


def _rank_bindings(einsums, big: list[str], hierarchy: Hierarchy, who: Roles, sizes
                   ) -> list[frozenset[str]]:
    """Bindings (the set of Einsums on the 2D array), best estimated pipeline load first."""
    pe = float(hierarchy.values.get("pe_dim", 1))
    loads = {}
    for einsum in einsums:
        points = float(_points(einsum).subs({s: sizes.get(str(s), pe) for s in
                                              _points(einsum).free_symbols}))
        for unit_name, pes in (("array2d", pe * pe), ("array1d", pe)):
            try:
                cost = _cost_per_point(einsum, hierarchy.units[unit_name])
            except MappingError:
                cost = float("inf")
            loads[(einsum.name, unit_name)] = points * cost / pes
    options = []
    for chosen in itertools.product((True, False), repeat=len(big)):
        on_2d = frozenset(name for name, yes in zip(big, chosen) if yes)
        two = sum(loads[(e.name, "array2d")] for e in einsums if e.name in on_2d)
        one = sum(loads[(e.name, "array1d")] for e in einsums if e.name not in on_2d)
        options.append((max(two, one), two + one, on_2d))
    options.sort(key=lambda o: (o[0], o[1]))
    return [o[2] for o in options]


def _variants(cascade: ir.Cascade, who: Roles, on_2d: frozenset[str]) -> list[dict]:
    """Spatial ranks and composition choices for one binding."""
    choices = [{"rows": "key", "compose": "pipeline"}, {"rows": "key", "compose": "sequence"}]
    if who.outer is None and any(
            cascade.producers[n].reduced and cascade.producers[n].reduce_op == "sum"
            for n in on_2d):
        choices.append({"rows": "reduced", "compose": "pipeline"})
    if not on_2d:
        choices = [{"rows": "key", "compose": "sequence"}]
    return choices


# ------------------------------------------------------------------------------ building trees


def _tree_document(cascade: ir.Cascade, view: CascadeView, who: Roles, on_2d: frozenset[str],
                   variant: dict, cascade_name: str, hierarchy: Hierarchy) -> dict:
    einsums = [e for e in cascade.einsums if e.name not in view.views]
    keyed = {e.name for e in einsums if set(e.variables) & who.key_family}
    needed = _ancestors(cascade, keyed)
    prologue = [e for e in einsums if e.name not in keyed and e.name in needed]
    epilogue = [e for e in einsums if e.name not in keyed and e.name not in needed]
    body = [e for e in einsums if e.name in keyed]
    carried = set(recurrences(cascade))
    inputs_key = [t for t in cascade.input_names if _indexed_by(cascade, view, t, who.key_family)]
    inputs_other = [t for t in cascade.input_names if t not in inputs_key]
    outputs = list(cascade.outputs)
    intermediates = [e.name for e in einsums if e.name not in outputs]
    if prologue and who.outer is not None:
        raise MappingError("the tree mapper's template streams key tiles; Einsums that do not "
                           f"iterate the key rank but feed it ({', '.join(e.name for e in prologue)})"
                           " are not supported there yet: write the tree by hand")
    read_by_epilogue = {a.tensor for e in epilogue for a in e.inputs}
    q = who.query
    parameters: dict = {}
    if who.outer is not None:
        parameters["P0"] = {"default": "pe_dim", "description": "queries per block"}
        parameters["P1"] = {"default": 1, "description": "query blocks per key sweep",
                            "domain": {"divisors_of": f"ceil({ir.rank_of(q)} / P0)"}}
        inner_size = next(p.parts[-1] for p in cascade.partitions)
        parameters[inner_size] = {"default": "pe_dim", "description": "keys per tile"}
        block = "P1 * P0"
    else:
        parameters["rows"] = {"default": "pe_dim", "description": "queries per block",
                              "domain": {"powers_of_two_up_to": ir.rank_of(q)}}
        block = "rows"
    two_d = [e for e in body if e.name in on_2d]
    one_d = [e for e in body if e.name not in on_2d]
    if who.outer is not None:
        outer_state = [t for t in intermediates if t in carried or t in read_by_epilogue] \
            + [t for t in outputs if t in keyed]  # accumulated over the key tiles
        register_2d = [t for t in intermediates if t not in outer_state
                       and _only_within(cascade, t, on_2d)
                       and {who.inner, q} <= set(cascade.producers[t].output.variables)]
        inner = [t for t in intermediates if t not in outer_state and t not in register_2d]
        chains = [_chain_2d(two_d, who, register_2d, variant), _chain_1d(one_d, who)]
        main = [{"loop": who.outer}]
        key_views = [v for v in view.views if _indexed_by(cascade, view, v, who.key_family)]
        if key_views or inputs_key:
            main.append({"keep": {"global_buffer": key_views or inputs_key}})
        main.append({"loop": q, "tile": "P0"})
        if inner:
            main.append({"keep": {"global_buffer": inner}})
        main.append(_compose([c for c in chains if c], variant["compose"]))
        outer_keep = inputs_other + outer_state
        tree = [{"keep": {"dram": list(cascade.input_names) + outputs}},
                {"loop": q, "tile": block}]
        if outer_keep:
            tree.append({"keep": {"global_buffer": outer_keep}})
        if epilogue:
            tail = [{"loop": q, "tile": "P0"}, {"spatial": {"pes": q}},
                    _sequence([[{"run": e.name, "on": "array1d"}] for e in epilogue])]
            tree.append({"sequence": [main, tail]})
        else:
            tree += main
    else:
        row_buffer = _in_place_groups(cascade, intermediates)
        if prologue:
            raise MappingError("the tree mapper's template has no prologue for Einsums that do "
                               "not iterate the key rank but feed it ("
                               f"{', '.join(e.name for e in prologue)}): write the tree by hand")
        tree = [{"keep": {"dram": list(cascade.input_names) + outputs}},
                {"loop": q, "tile": block},
                {"keep": {"global_buffer": inputs_other + row_buffer
                          + [o for o in outputs if o not in inputs_other]}}]
        chains = [_leaves_2d_unpartitioned(two_d, who, cascade, variant),
                  _chain_1d(one_d, who, own_key_loops=True)]
        tree.append(_compose([c for c in chains if c], variant["compose"]))
        if epilogue:
            tree[-1] = {"sequence": [[tree[-1]], [{"spatial": {"pes": q}}, _sequence(
                [[{"run": e.name, "on": "array1d"}] for e in epilogue])]]}
    name = f"mapped-{cascade_name or cascade.name or 'cascade'}"
    return {"name": name, "description": f"found by the tree mapper ({len(on_2d)} Einsums on "
            f"the 2D array, {variant['compose']}, 2D rows over the "
            f"{variant['rows']} rank)", "cascade": cascade_name or cascade.name,
            "hardware": hierarchy.name, "parameters": parameters, "tree": tree}


def _ancestors(cascade: ir.Cascade, names: set[str]) -> set[str]:
    """Every tensor some Einsum in ``names`` depends on."""
    found, stack = set(), list(names)
    while stack:
        einsum = cascade.producers.get(stack.pop())
        for access in einsum.inputs if einsum is not None else ():
            if access.tensor not in found and access.tensor in cascade.producers:
                found.add(access.tensor)
                stack.append(access.tensor)
    return found


def _sequence(branches: list) -> dict:
    return branches[0][0] if len(branches) == 1 and len(branches[0]) == 1 \
        else {"sequence": branches}


def _compose(chains: list[list], kind: str) -> dict:
    if len(chains) == 1:
        return {"sequence": [chains[0]]}
    return {kind: chains}


def _chain_2d(einsums, who: Roles, registers: list[str], variant: dict) -> list:
    if not einsums:
        return []
    chain = [{"spatial": {"rows": who.inner, "cols": who.query}}]
    if registers:
        chain.append({"keep": {"array2d.registers": registers}})
    branches = []
    for einsum in einsums:
        branch = [{"run": einsum.name, "on": "array2d"}]
        temporal = set(einsum.reduced) - {who.inner}
        if temporal and einsum.name not in registers and \
                {who.inner, who.query} <= set(einsum.output.variables):
            branch.insert(0, {"keep": {"array2d.registers": [einsum.name]}})  # accumulator
        branches.append(branch)
    chain.append(_sequence(branches))
    return chain


def _chain_1d(einsums, who: Roles, own_key_loops: bool = False) -> list:
    if not einsums:
        return []
    branches = []
    for einsum in einsums:
        branch = []
        if own_key_loops:
            branch.append({"loop": who.query})
        temporal_reduction = einsum.reduced and who.query in einsum.output.variables
        if temporal_reduction:
            branch.append({"keep": {"array1d.registers": [einsum.name]}})
        if own_key_loops:
            branch += [{"loop": who.inner, "tile": "pe_dim"}, {"spatial": {"pes": who.inner}}]
        branch.append({"run": einsum.name, "on": "array1d"})
        branches.append(branch)
    head = [] if own_key_loops else [{"spatial": {"pes": who.query}}]
    return head + [_sequence(branches)]


def _leaves_2d_unpartitioned(einsums, who: Roles, cascade: ir.Cascade, variant: dict) -> list:
    if not einsums:
        return []
    branches = []
    for einsum in einsums:
        key_inputs = [a.tensor for a in einsum.inputs
                      if who.inner in a.variables and a.tensor in cascade.input_names]
        head = [{"loop": who.inner, "tile": "pe_dim"}]
        if key_inputs:
            head.append({"keep": {"global_buffer": sorted(set(key_inputs))}})
        reduced = [v for v in einsum.reduced if v != who.inner]
        if variant["rows"] == "reduced" and reduced and einsum.reduce_op == "sum":
            rows = reduced[0]
            stationary = [a.tensor for a in einsum.inputs if who.inner not in a.variables]
            branch = head + [{"spatial": {"rows": rows, "cols": who.query}}]
            if stationary:
                branch.append({"keep": {"array2d.registers": sorted(set(stationary))}})
            branch += [{"loop": who.inner}, {"run": einsum.name, "on": "array2d"}]
        else:
            branch = head + [{"spatial": {"rows": who.inner, "cols": who.query}}]
            if einsum.reduced and who.inner in einsum.output.variables:
                branch.append({"keep": {"array2d.registers": [einsum.name]}})
            branch.append({"run": einsum.name, "on": "array2d"})
        branches.append(branch)
    return [_sequence(branches)]


def _indexed_by(cascade, view: CascadeView, tensor: str, family) -> bool:
    for einsum in cascade.einsums:
        for access in einsum.inputs:
            if access.tensor == tensor and set(access.variables) & family:
                return True
        if einsum.name == tensor and set(einsum.output.variables) & family:
            return True
    return False


def _only_within(cascade: ir.Cascade, tensor: str, names: frozenset[str]) -> bool:
    readers = {e.name for e in cascade.einsums for a in e.inputs if a.tensor == tensor}
    return tensor in names and readers <= names


def _in_place_groups(cascade: ir.Cascade, intermediates: list[str]) -> list[str]:
    """Row-buffer entries; ``A/B`` when B's producer is A's last reader, element-wise."""
    order = [e.name for e in cascade.einsums]
    last_reader = {}
    for einsum in cascade.einsums:
        for access in einsum.inputs:
            last_reader[access.tensor] = einsum.name
    groups: list[list[str]] = []
    placed = set()
    for name in intermediates:
        if name in placed:
            continue
        group = [name]
        current = name
        while True:
            reader = last_reader.get(current)
            producer = cascade.producers.get(reader) if reader else None
            if producer is None or reader not in intermediates or reader in placed or \
                    producer.reduced or order.index(reader) < order.index(current) or \
                    [a for a in producer.inputs if a.tensor == current and
                     tuple(i.plain_variable() for i in a.indices) !=
                     tuple(i.plain_variable() for i in producer.output.indices)] or \
                    set(producer.output.variables) != \
                    set(cascade.producers[current].output.variables):
                break
            group.append(reader)
            current = reader
        placed.update(group)
        groups.append(group)
    return ["/".join(g) for g in groups]
