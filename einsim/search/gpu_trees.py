"""The mapper over trees on GPUs: FlashAttention-style trees for any 1-pass cascade.

A kernel is a grid of CTAs over the query rank (``TQ`` queries per CTA); each CTA walks the
key tiles (``m1``) with the key-indexed inputs staged in shared memory (read from L2, where
a head's CTAs share them), its per-tile intermediates in registers and its running state
across tiles in registers; what reads the finished state runs after the walk.  Einsums bind
by what they compute: contractions (MACs only) on the tensor cores, those with an
exponential on the exponential unit (or split with the FP32 lanes), the rest on the FP32
lanes.  Variants: the body in sequence (FlashAttention-2), or from the second tensor-core
Einsum on overlapped with the rest (FlashAttention-3's intra-warpgroup pipeline), each with
or without two warpgroups taking turns.  ``TQ`` and the key tile are free parameters the
search sets so the tiles fit shared memory and registers.
"""

from __future__ import annotations

import time

from einsim.analysis.footprint import op_counts
from einsim.analysis.graph import recurrences
from einsim.cost.cascade_view import CascadeView
from einsim.cost.engine import Problem, compiled
from einsim.cost.evaluate import objective_key
from einsim.cost.hierarchy import Hierarchy
from einsim.cost.tree import mapping_from_document
from einsim.cost.tree_yaml import dump_mapping
from einsim.errors import EinsimError, MappingError
from einsim.language import ir
from einsim.search.parameters import SearchResult, search
from einsim.search.trees import TreeSearch, _ancestors, _indexed_by, roles

Q_TILES = [1, 2, 4, 8, 16, 32, 64, 128, 192, 256]
KV_TILES = [32, 64, 96, 128, 176, 256]


def search_gpu_trees(cascade: ir.Cascade, hierarchy: Hierarchy, hardware_key: str,
                     problem: Problem, objective: str = "latency",
                     cascade_name: str = "") -> TreeSearch:
    """Best FlashAttention-style tree for ``cascade`` on a GPU, its tiles searched."""
    start = time.perf_counter()
    if hierarchy.grid is None:
        raise MappingError(f"{hierarchy.name} is not a GPU")
    who = roles(cascade, dict(problem.sizes))
    if who.outer is None and not recurrences(cascade):
        raise MappingError("the GPU tree mapper streams key tiles in one pass: this cascade "
                           "has no running state over the key rank (rewrite it to 1 pass: "
                           "einsim rewrite --passes 1)")
    results, errors, points = [], [], 0
    for overlap in (True, False):
        for warpgroups in (True, False):
            for split_exp in ((False, True) if _has_fp32_exp(hierarchy) else (False,)):
                try:
                    document = gpu_tree_document(cascade, who, hierarchy, cascade_name,
                                                 overlap, warpgroups, split_exp)
                    tree = mapping_from_document(document, "GPU tree mapper")
                    engine = compiled(cascade, tree, hierarchy, hardware_key)
                    found = search(engine, problem, objective, {}, None, problem.name)
                except EinsimError as error:
                    errors.append(str(error))
                    continue
                points += found.evaluated
                results.append((found, tree))
    if not results:
        raise MappingError("the GPU tree mapper found no feasible tree"
                           + (f"; the first candidate failed: {errors[0]}" if errors else ""))
    found, tree = min(results, key=lambda item: objective_key(item[0].best, objective))
    result = SearchResult(found.best, found.pareto, points,
                          sum(r.infeasible for r, _ in results))
    values = {k: v for k, v in found.best.parameters.items() if k in tree.parameters}
    return TreeSearch(result, dump_mapping(tree, values), len(results), points,
                      time.perf_counter() - start)


def _has_fp32_exp(hierarchy: Hierarchy) -> bool:
    try:
        hierarchy.units["fp32"].actions_for("exp")
        return "exp_unit" in hierarchy.units
    except (KeyError, MappingError):
        return False


def _unit_of(einsum: ir.Einsum, hierarchy: Hierarchy, split_exp: bool) -> str | list[str]:
    """Contractions on the tensor cores; anything whose operations need an exponential
    (exp, sigmoid, tanh...) on the exponential unit; the rest on the FP32 lanes."""
    ops = set(op_counts(einsum))
    if ops == {"mac"} and einsum.reduced:
        return "tensor_core"
    try:
        needs_exp = any("exp" in hierarchy.units["exp_unit"].actions_for(op) for op in ops)
    except MappingError:
        needs_exp = False
    if needs_exp:
        return ["exp_unit", "fp32"] if split_exp else "exp_unit"
    return "fp32"


def gpu_tree_document(cascade: ir.Cascade, who, hierarchy: Hierarchy, cascade_name: str,
                      overlap: bool, warpgroups: bool, split_exp: bool) -> dict:
    """One FlashAttention-style tree document for the cascade (see the module docstring)."""
    view = CascadeView(cascade)
    einsums = [e for e in cascade.einsums if e.name not in view.views]
    keyed = [e for e in einsums if set(e.variables) & who.key_family]
    keyed_names = {e.name for e in keyed}
    needed = _ancestors(cascade, keyed_names)
    prologue = [e for e in einsums if e.name not in keyed_names and e.name in needed]
    epilogue = [e for e in einsums if e.name not in keyed_names and e.name not in needed]
    if prologue:
        raise MappingError("the GPU tree mapper has no prologue for Einsums that feed the key "
                           f"walk without iterating it ({', '.join(e.name for e in prologue)})")
    q = who.query
    outputs = list(cascade.outputs)
    carried = set(recurrences(cascade))
    read_after = {a.tensor for e in epilogue for a in e.inputs}
    key_inputs = [t for t in cascade.input_names
                  if _indexed_by(cascade, view, t, who.key_family)]
    key_views = [v for v in view.views if _indexed_by(cascade, view, v, who.key_family)]
    other_inputs = [t for t in cascade.input_names if t not in key_inputs]
    state = [e.name for e in keyed if e.name in carried or e.name in read_after
             or e.name in outputs]
    per_tile = [e.name for e in keyed if e.name not in state]
    leaves = [[{"run": e.name, "on": _unit_of(e, hierarchy, split_exp)}] for e in keyed]
    body = _overlapped(leaves) if overlap else {"sequence": leaves}
    # the key tiles: the partition's outer rank, or tiles of TK keys of an element-wise walk
    walk = [{"loop": who.outer} if who.outer else {"loop": who.inner, "tile": "TK"},
            {"keep": {"shared_memory": key_views or key_inputs}, "buffers": 2}]
    if warpgroups and hierarchy.grid is not None and \
            "warpgroups" in hierarchy.units["tensor_core"].axes:
        walk.append({"spatial": {"warpgroups": q}})
    if per_tile:
        walk.append({"keep": {"registers": per_tile}})
    walk.append(body)
    tree: list = [{"keep": {"hbm": list(cascade.input_names) + outputs}},
                  {"keep": {"l2": key_inputs}},
                  {"spatial": {"sms": q}, "tile": "TQ"}]
    if other_inputs:
        tree.append({"keep": {"shared_memory": other_inputs}})
    if state:
        tree.append({"keep": {"registers": state}})
    if epilogue:
        tail = [[{"run": e.name, "on": _unit_of(e, hierarchy, split_exp)}] for e in epilogue]
        tree.append({"sequence": [walk, *tail]})
    else:
        tree += walk
    inner = next((p.parts[-1] for p in cascade.partitions), "TK")
    name = f"mapped-{cascade_name or cascade.name or 'cascade'}"
    return {"name": name,
            "description": f"found by the GPU tree mapper ({'overlapped' if overlap else 'sequential'} "
                           f"body, {'two warpgroups' if warpgroups else 'one warpgroup'}"
                           f"{', exponentials split with the FP32 lanes' if split_exp else ''})",
            "cascade": cascade_name or cascade.name, "hardware": hierarchy.name,
            "parameters": {
                "TQ": {"default": 128, "description": "queries per CTA",
                       "domain": {"values": Q_TILES}},
                inner: {"default": 128, "description": "keys per tile",
                        "domain": {"values": KV_TILES}}},
            "tree": tree}


def _overlapped(leaves: list[list]) -> dict:
    """The body with everything after the first tensor-core leaf overlapped: the later
    tensor-core leaves against the rest (FlashAttention-3's intra-warpgroup pipeline)."""
    first = next((k for k, leaf in enumerate(leaves) if leaf[0]["on"] == "tensor_core"), None)
    if first is None:
        return {"sequence": leaves}
    rest = leaves[first + 1:]
    tensor = [leaf for leaf in rest if leaf[0]["on"] == "tensor_core"]
    other = [leaf for leaf in rest if leaf[0]["on"] != "tensor_core"]
    if not tensor or not other:
        return {"sequence": leaves}
    overlap = {"pipeline": [[{"sequence": tensor}] if len(tensor) > 1 else tensor[0],
                            [{"sequence": other}] if len(other) > 1 else other[0]]}
    return {"sequence": leaves[:first + 1] + [[overlap]]}
