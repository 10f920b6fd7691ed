"""The vectorized sweep engine: a whole grid of design points evaluated as NumPy arrays.

For the FuseMax family (strategy ``fusemax``) the cost model is arithmetic in the rank sizes
and hardware fields: the per-Einsum op counts are the cost model's own sympy expressions
(lambdified once per cascade, evaluated here on arrays) and the residency is
:func:`mappings.fusemax.residency_table`.  The mapper's choice has a closed form: compute
latency does not depend on P1 while traffic and energy fall as P1 grows, so the best P1 for
every objective is the largest divisor of the query-block count that fits in the buffer.
Rows equal :func:`einsim.sweeps.iterate`'s (tested); anything else raises
:class:`NotVectorizable` and callers fall back to the point-by-point path.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

from einsim import ir
from einsim.cost import _compiled, _energy
from einsim.errors import EinsimError
from einsim.mapper import OBJECTIVES
from einsim.mapping import load_mapping_spec
from einsim.workload import load_workload
from hw_models.spatial_array import load_spatial_array
from mappings.fusemax import residency_table

VECTOR_PARAMETERS = ("pe_dim", "global_buffer_bytes", "dram_bandwidth", "clock_hz", "P1")


class NotVectorizable(EinsimError):
    """A sweep the vectorized engine does not cover (use the point-by-point path)."""


@lru_cache(maxsize=4096)
def _largest_divisor(n: int, limit: int) -> int:
    """Largest divisor of ``n`` not above ``limit`` (0 when ``limit < 1``)."""
    best = 0
    for small in range(1, math.isqrt(n) + 1):
        if n % small == 0:
            for d in (small, n // small):
                if best < d <= limit:
                    best = d
    return best


def vectorized_points(mapping: str, workload: str, seq_lens, parameters=None,
                      hardware: str | None = None, objective: str = "latency") -> list[dict]:
    """Every design point of the sweep, computed over arrays; same rows as the point path."""
    parameters = dict(parameters or {})
    spec = load_mapping_spec(mapping)
    if spec.strategy != "fusemax":
        raise NotVectorizable(f"mapping {spec.name}: strategy {spec.strategy} is not vectorized")
    unknown = [k for k in parameters if k not in VECTOR_PARAMETERS]
    if unknown:
        raise NotVectorizable(f"parameter {unknown[0]!r} is not vectorized")
    if objective not in OBJECTIVES:
        raise EinsimError(f"unknown objective {objective!r}; expected one of "
                          f"{', '.join(OBJECTIVES)}")
    base = load_spatial_array(hardware or spec.hardware)
    for name, values in parameters.items():  # same validation (and errors) as the point path
        if name != "P1":
            for value in dict.fromkeys(values):
                load_spatial_array(hardware or spec.hardware, {name: value})
    problem = load_workload(workload)
    names = list(parameters)
    lists = [list(seq_lens)] + [list(v) for v in parameters.values()]
    grid = [g.ravel() for g in np.meshgrid(*(np.asarray(v, dtype=float) for v in lists),
                                           indexing="ij")]
    values = dict(zip(names, grid[1:]))
    n = grid[0]
    tile = values.get("pe_dim", np.full_like(n, base.pe_dim))
    capacity = values.get("global_buffer_bytes", np.full_like(n, base.global_buffer.bytes))
    bandwidth = values.get("dram_bandwidth", np.full_like(n, base.dram.bandwidth_bytes_per_s))
    clock = values.get("clock_hz", np.full_like(n, base.clock_hz))
    E, F = problem.E, problem.F
    word = base.word_bytes
    blocks = np.ceil(n / tile)
    if "P1" in values:
        p1 = values["P1"]
    else:  # the mapper's choice: the largest divisor of the query blocks that fits
        limit = np.floor((capacity / word - tile * (E + F)) / (tile * (E + 2 + F)))
        pairs, inverse = np.unique(np.stack([blocks, limit]), axis=1, return_inverse=True)
        choice = np.array([_largest_divisor(int(b), int(l)) for b, l in pairs.T], dtype=float)
        p1 = choice[inverse.ravel()]
    p1_safe = np.maximum(p1, 1)
    p2 = np.ceil(blocks / p1_safe)
    table = residency_table(E, F, tile, p1_safe, p2)
    buffer_words = sum(words for level, words, _, _ in table.values() if level == "global_buffer")
    feasible = (p1 >= 1) & (buffer_words * word <= capacity)
    try:
        result = _cost(spec, base, problem, n, tile, p1_safe, p2, clock, bandwidth, table)
    except KeyError as error:  # an action the hardware lacks: the point path says so per point
        raise NotVectorizable(f"hardware {base.name} has no action {error}") from None
    columns = {key: np.broadcast_to(result[key], n.shape).tolist()
               for key in ("latency", "energy", "area", "compute", "memory", "traffic")}
    buffer_bytes = np.broadcast_to(buffer_words * word, n.shape).tolist()
    usage = {u: np.broadcast_to(a, n.shape).tolist() for u, a in result["utilization"].items()}
    chosen = [(k, v.astype(int).tolist()) for k, v in (("P1", p1), ("P2", p2)) if k not in names]
    ok = feasible.tolist()
    rows = []
    for i, combo in enumerate(itertools.product(*lists)):
        swept = dict(zip(names, combo[1:]))
        if not ok[i]:
            rows.append({**swept, "seq_len": combo[0], "mapping": mapping, "feasible": False,
                         "error": _capacity_error(spec, base, table, i, word, capacity[i])})
            continue
        row = {**swept, "seq_len": combo[0], "mapping": spec.name, "hardware": base.name,
               "workload": problem.name, "feasible": True, "error": "",
               "latency_s": columns["latency"][i], "energy_j": columns["energy"][i],
               "area_mm2": columns["area"][i], "compute_latency_s": columns["compute"][i],
               "memory_latency_s": columns["memory"][i], "traffic_bytes": columns["traffic"][i],
               "buffer_bytes": buffer_bytes[i],
               "utilization": {u: values[i] for u, values in usage.items()}}
        for key, values in chosen:
            row[key] = values[i]
        rows.append(row)
    return rows


def _cost(spec, base, problem, n, tile, p1, p2, clock, bandwidth, table) -> dict:
    """:func:`einsim.cost.evaluate_mapping`'s arithmetic, over arrays."""
    cascade, symbols, einsums, tensors = _compiled(spec.cascade)
    sizes = {**{k: float(v) for k, v in problem.sizes().items()}, "M": n, "P": n,
             "M0": tile, "M1": np.ceil(n / tile)}
    args = [sizes[s] for s in symbols]
    copies = problem.B * problem.H
    stage_of = {e: k for k, stage in enumerate(spec.stages) for e in stage}
    pes = {"array2d": tile * tile, "array1d": tile}
    busy = {"array2d": 0.0, "array1d": 0.0}
    per_stage: dict[int, dict[str, object]] = {}
    actions: dict[tuple[str, str], object] = {}
    for einsum in cascade.einsums:
        points_fn, op_fns = einsums[einsum.name]
        if not op_fns:
            continue
        unit_name = spec.binding[einsum.name].unit
        unit = base.unit(unit_name)
        points = points_fn(*args)
        per_unit: dict[str, float] = {}
        for op, fn in op_fns.items():
            count = fn(*args)
            for action, times in unit.actions_for(op).items():
                key = (unit_name, action)
                actions[key] = actions.get(key, 0.0) + count * times * copies
                functional = unit.unit_of(action)
                per_unit[functional] = per_unit.get(functional, 0.0) + count * times / points
        factor = 1.0
        for variable in spec.binding[einsum.name].spatial.values():
            extent = sizes[ir.rank_of(variable)]
            factor = factor * extent / (np.ceil(extent / tile) * tile)
        cycles = points * np.maximum.reduce(list(per_unit.values())) / (pes[unit_name] * factor) \
            * copies
        busy[unit_name] = busy[unit_name] + cycles * factor
        stage = per_stage.setdefault(stage_of[einsum.name], {})
        stage[unit_name] = stage.get(unit_name, 0.0) + cycles
    compute = sum(np.maximum.reduce(list(units.values())) for units in per_stage.values()) / clock
    consumers: dict[str, int] = {}
    for einsum in cascade.einsums:
        for name in {a.tensor for a in einsum.inputs}:
            consumers[name] = consumers.get(name, 0) + 1
    dram = reads = writes = 0.0
    for name, (level, _, dram_reads, dram_writes) in table.items():
        words = tensors[name](*args)
        moved = words * (dram_reads + dram_writes)
        dram, reads, writes = dram + moved, reads + moved, writes + moved
        if level == "global_buffer":
            writes = writes + words
            reads = reads + words * consumers.get(name, 0)
    traffic = dram * base.word_bytes * copies
    memory = traffic / bandwidth
    latency = np.maximum(compute, memory)
    energy = sum(_energy(base, actions, dram * copies, reads * copies, writes * copies).values())
    area = tile * tile * base.array2d.pe_area_um2 / 1e6 + tile * base.array1d.pe_area_um2 / 1e6 \
        + base.global_buffer.area_um2 / 1e6  # summed as SpatialArray.area_mm2 does
    return {"latency": latency, "compute": compute, "memory": memory, "traffic": traffic,
            "energy": energy, "area": area,
            "utilization": {u: b / (latency * clock) for u, b in busy.items()}}


def _capacity_error(spec, base, table, i, word, capacity) -> str:
    """The point path's message for P1 = 1 (the mapper's first candidate) not fitting."""
    largest, total = ("", 0.0), 0.0
    for name, (level, words, _, _) in table.items():
        if level != "global_buffer":
            continue
        value = float(np.asarray(words, dtype=float).ravel()[i]) if np.ndim(words) \
            else float(words)
        total += value
        if value > largest[1]:
            largest = (name, value)
    return (f"mapping {spec.name} does not fit: tensor {largest[0]} needs "
            f"{largest[1] * word:,.0f} bytes in the global buffer, {total * word:,.0f} bytes "
            f"in all, but {base.name} has {int(capacity):,} bytes available")
