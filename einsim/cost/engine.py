"""Compile a (cascade, loop tree, hierarchy) once; evaluate it at any sizes, scalar or arrays.

:class:`CompiledMapping` lambdifies every expression of the :class:`~.derivation.Derivation`
into one NumPy function, so a single evaluation and a million-point sweep run the same
expressions (arrays broadcast through it).  :meth:`CompiledMapping.metrics` gives the sweep
columns with a feasibility mask; :meth:`CompiledMapping.report` one point's full Report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import sympy

from einsim import ir
from einsim.cost.derivation import Derivation, density_symbol
from einsim.cost.expressions import parse_size
from einsim.cost.hierarchy import Hierarchy
from einsim.cost.masks import density
from einsim.cost.report import EinsumCost, Report
from einsim.cost.tree import MappingTree
from einsim.mapping import MappingError
from einsim.passes import passes as count_passes


@dataclass(frozen=True)
class Problem:
    """What one evaluation needs besides the tree: rank sizes and the batch×heads copies."""

    name: str
    sizes: Mapping[str, float]   # M, P, E, F, ... (cascade params and partitions filled in)
    copies: float                # batch × heads
    seq_len: int


class CompiledMapping:
    def __init__(self, cascade: ir.Cascade, mapping: MappingTree, hierarchy: Hierarchy):
        self.cascade, self.mapping, self.hardware = cascade, mapping, hierarchy
        derivation = Derivation(cascade, mapping, hierarchy)
        counts = self.counts = derivation.counts
        self.derivation = derivation
        entries: list[tuple[tuple, sympy.Expr]] = []
        for (level, tensor), expr in counts.reads.items():
            entries.append((("reads", level, tensor), expr))
        for (level, tensor), expr in counts.writes.items():
            entries.append((("writes", level, tensor), expr))
        for level, expr in counts.occupancy.items():
            entries.append((("occupancy", level), expr))
        for key, expr in counts.tiles.items():
            entries.append((("tile",) + key, expr))
        for name, expr in counts.cycles.items():
            entries.append((("cycles", name), expr))
            entries.append((("busy", name), counts.busy[name]))
            for op, count in counts.ops[name].items():
                entries.append((("ops", name, op), count))
        for key, expr in counts.actions.items():
            entries.append((("actions",) + key, expr))
        entries.append((("compute_cycles",), counts.compute_cycles))
        entries.append((("latency_s",), counts.latency_s))
        for level in hierarchy.levels.values():
            if level.capacity_words is not None:
                entries.append((("capacity", level.name), level.capacity_words))
        self.keys = [key for key, _ in entries]
        expressions = [sympy.sympify(expr) for _, expr in entries]
        free = set().union(*(e.free_symbols for e in expressions)) | {hierarchy.clock_hz}
        self.symbols = sorted(free, key=str)
        self.symbol_names = [str(s) for s in self.symbols]
        self._function = sympy.lambdify(self.symbols, expressions, modules="numpy", cse=True)
        self.passes = count_passes(cascade, _streamed_rank(cascade))

    # ---------------------------------------------------------------------------- inputs

    def values(self, problem: Problem, parameters: Mapping[str, float] | None = None,
               overrides: Mapping[str, float] | None = None) -> dict[str, object]:
        """Numbers (or arrays) for every symbol: hardware, sizes, parameters, densities."""
        values: dict[str, object] = dict(self.hardware.values)
        values.update(overrides or {})
        values.update(problem.sizes)
        given = dict(parameters or {})
        for name, default in self.mapping.parameter_defaults().items():
            values[name] = given.pop(name) if name in given else \
                _numeric(default, values, f"parameters.{name}.default")
        if given:
            raise MappingError(f"mapping {self.mapping.name} has no parameter "
                               f"{sorted(given)[0]!r}; its parameters are "
                               f"{', '.join(self.mapping.parameters) or 'none'}")
        fill_partitions(self.cascade, values)
        for source in self.counts.densities:
            values[str(density_symbol(source))] = _density(self.cascade, source, values)
        missing = [n for n in self.symbol_names if n not in values]
        if missing:
            raise MappingError(f"mapping {self.mapping.name}: no value for {', '.join(missing)} "
                               "(a rank size the workload lacks, or a tile parameter the "
                               "mapping does not declare)")
        return values

    def raw(self, values: Mapping[str, object]) -> dict[tuple, object]:
        """Every derived quantity (per batch-head) by key."""
        results = self._function(*(values[n] for n in self.symbol_names))
        return dict(zip(self.keys, results))

    # ---------------------------------------------------------------------------- outputs

    def metrics(self, values: Mapping[str, object], copies) -> dict[str, object]:
        """Latency, energy, traffic, buffer, utilization and feasibility (scalar or arrays)."""
        raw = self.raw(values)
        hardware = self.hardware
        clock = values["clock_hz"]
        word_bytes = hardware.word_bytes
        compute_s = raw[("compute_cycles",)] * copies / clock
        memory_s = 0.0
        traffic_words = 0.0
        energy: dict[str, object] = {}
        accesses: dict[str, dict[str, object]] = {}
        for level in hardware.levels.values():
            reads = sum((v for k, v in raw.items() if k[:2] == ("reads", level.name)), 0.0)
            writes = sum((v for k, v in raw.items() if k[:2] == ("writes", level.name)), 0.0)
            reads, writes = reads * copies, writes * copies
            accesses[level.name] = {"reads": reads / level.width_words,
                                    "writes": writes / level.width_words}
            joules = (reads * level.read_pj + writes * level.write_pj) / level.width_words * 1e-12
            part = "register_files" if level.per_unit else level.name
            energy[part] = energy.get(part, 0.0) + joules
            if level.bandwidth_bytes_per_s is not None:
                bandwidth = values[str(level.bandwidth_bytes_per_s)]
                memory_s = np.maximum(memory_s, (reads + writes) * word_bytes / bandwidth)
                traffic_words = traffic_words + reads + writes
        for (kind, *key), value in raw.items():
            if kind == "actions":
                unit, action = key
                joules = value * copies * hardware.units[unit].action_energy_pj[action] * 1e-12
                energy[unit] = energy.get(unit, 0.0) + joules
        latency = np.maximum(raw[("latency_s",)] * copies, np.maximum(compute_s, memory_s))
        if hardware.static_power_w:
            energy["static"] = hardware.static_power_w * latency
        busy = {}
        for name, unit in self.counts.units.items():
            busy[unit] = busy.get(unit, 0.0) + raw[("busy", name)] * copies
        utilization = {unit: _ratio(b, latency * clock) for unit, b in busy.items()}
        feasible, reason = self._capacity(raw, values)
        buffer_words = raw.get(("occupancy", "global_buffer"), 0.0)
        return {"latency_s": latency, "compute_latency_s": compute_s, "memory_latency_s": memory_s,
                "energy_j": sum(energy.values()), "energy_breakdown_j": energy,
                "traffic_bytes": traffic_words * word_bytes,
                "buffer_bytes": buffer_words * word_bytes, "utilization": utilization,
                "feasible": feasible, "reason": reason, "accesses_by_level": accesses,
                "raw": raw}

    def _capacity(self, raw, values):
        """Feasibility per point and, for a scalar point, the reason it fails."""
        feasible, reason = True, ""
        for (kind, *key), capacity in raw.items():
            if kind != "capacity":
                continue
            level = key[0]
            used = raw.get(("occupancy", level), 0.0)
            fits = np.asarray(used) <= np.asarray(capacity) * (1 + 1e-12)
            feasible = feasible & fits
            if np.ndim(fits) == 0 and not fits and not reason:
                tiles = {k[3]: v for k, v in raw.items() if k[0] == "tile" and k[2] == level}
                largest = max(tiles, key=lambda t: float(tiles[t]))
                word = self.hardware.word_bytes
                reason = (f"mapping {self.mapping.name} does not fit: tensor {largest} needs "
                          f"{float(tiles[largest]) * word:,.0f} bytes in the {level}, "
                          f"{float(used) * word:,.0f} bytes in all, but {self.hardware.name} "
                          f"has {float(capacity) * word:,.0f} bytes available")
        return feasible, reason

    def report(self, problem: Problem, parameters: Mapping[str, float] | None = None,
               overrides: Mapping[str, float] | None = None, workload_name: str = "") -> Report:
        """One point's Report; an infeasible point raises :class:`MappingError`."""
        values = self.values(problem, parameters, overrides)
        result = self.metrics(values, problem.copies)
        if not bool(result["feasible"]):
            raise MappingError(result["reason"])
        raw, copies = result["raw"], problem.copies
        einsums = [EinsumCost(name=name, unit=unit, ops=self._ops_of(raw, name, copies),
                              cycles=float(raw[("cycles", name)]) * copies, stage=stage)
                   for stage, (name, unit) in enumerate(self.counts.units.items())]
        traffic = {}
        for (kind, *key), value in raw.items():
            if kind in ("reads", "writes"):
                level, tensor = key
                entry = traffic.setdefault(level, {}).setdefault(tensor, {"reads": 0.0,
                                                                          "writes": 0.0})
                entry[kind] += float(value) * copies
        named = {k: float(v) for k, v in values.items() if k in self.mapping.parameters}
        capacity = raw.get(("capacity", "global_buffer"))
        return Report(
            cascade=self.cascade.name or self.mapping.cascade, mapping=self.mapping.name,
            hardware=self.hardware.name, workload=workload_name or problem.name,
            seq_len=problem.seq_len, parameters={k: _plain(v) for k, v in named.items()},
            passes=self.passes, buffer_bytes=float(result["buffer_bytes"]),
            buffer_capacity_bytes=float(capacity * self.hardware.word_bytes)
            if capacity is not None else 0.0,
            traffic_bytes=float(result["traffic_bytes"]),
            compute_latency_s=float(result["compute_latency_s"]),
            memory_latency_s=float(result["memory_latency_s"]),
            latency_s=float(result["latency_s"]),
            utilization={u: float(x) for u, x in result["utilization"].items()},
            energy_j=float(result["energy_j"]),
            energy_breakdown_j={k: float(v) for k, v in result["energy_breakdown_j"].items()},
            area_mm2=self.hardware.area_mm2, einsums=einsums, traffic_by_level=traffic,
            accesses_by_level={level: {k: float(v) for k, v in a.items()}
                               for level, a in result["accesses_by_level"].items()})

    @staticmethod
    def _ops_of(raw, name: str, copies) -> dict[str, float]:
        return {k[2]: float(v) * copies for k, v in raw.items() if k[0] == "ops" and k[1] == name}


def _ratio(numerator, denominator):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.asarray(denominator) > 0, numerator / np.maximum(denominator, 1e-300),
                        0.0) if np.ndim(denominator) else (numerator / denominator
                                                           if denominator else 0.0)


def _plain(value: float):
    return int(value) if float(value).is_integer() else value


def _numeric(expression, values: Mapping[str, object], where: str):
    """A parameter default evaluated with the numbers known so far."""
    expr = parse_size(expression, where) if not isinstance(expression, sympy.Basic) else expression
    missing = [str(s) for s in expr.free_symbols if str(s) not in values]
    if missing:
        raise MappingError(f"{where}: {', '.join(missing)} is not known when it is evaluated")
    function = sympy.lambdify([sympy.Symbol(str(s), positive=True, integer=True)
                               for s in sorted(expr.free_symbols, key=str)], expr, "numpy")
    return function(*(values[str(s)] for s in sorted(expr.free_symbols, key=str)))


def fill_partitions(cascade: ir.Cascade, values: dict) -> None:
    """Cascade params (defaults) and partition sizes: ``M1 = ceil(M / M0)``."""
    for param in cascade.params:
        values.setdefault(param.name, param.value)
    for rank in cascade.ranks:
        if rank.size is not None:
            values.setdefault(rank.name, rank.size)
    for partition in cascade.partitions:
        inner = 1
        for part, given in zip(reversed(partition.parts[1:]), reversed(partition.sizes)):
            if isinstance(given, int):
                values.setdefault(part, given)
            if part not in values:
                raise MappingError(f"partition {partition}: size {part} is not set; declare it "
                                   f"as a mapping parameter (e.g. {part}: {{default: pe_dim}})")
            inner = inner * values[part]
        if partition.rank in values:
            values[partition.parts[0]] = np.ceil(np.asarray(values[partition.rank]) / inner) \
                if np.ndim(values[partition.rank]) or np.ndim(inner) else \
                math.ceil(values[partition.rank] / inner)


def _density(cascade: ir.Cascade, source: str, values: Mapping[str, object]):
    """Mask density; over arrays, counted once per distinct size combination."""
    einsum = cascade.producers[source]
    names = sorted({ir.rank_of(v) for v in ir.condition_variables(einsum.condition)}
                   | {s for part in ir.condition_parts(einsum.condition)
                      for index in ((part.left, part.right) if isinstance(part, ir.IndexComparison)
                                    else part.args) for s in index.size_symbols}
                   | {p.name for p in cascade.params})
    arrays = [np.asarray(values[n]) for n in names if n in values]
    if not any(np.ndim(a) for a in arrays):
        return density(cascade, source, values)
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    present = [n for n in names if n in values]
    grid = np.broadcast_arrays(*(np.asarray(values[n]) for n in present))
    result = np.empty(shape)
    cache: dict[tuple, float] = {}
    for index in np.ndindex(shape):
        key = tuple(float(g[index]) for g in grid)
        if key not in cache:
            cache[key] = density(cascade, source, {**values, **dict(zip(present, key))})
        result[index] = cache[key]
    return result


def _streamed_rank(cascade: ir.Cascade) -> str:
    """The rank whose passes a report states: the key rank M (or its partition root)."""
    ranks = {ir.rank_of(v) for e in cascade.einsums for v in e.variables}
    roots = [p.rank for p in cascade.partitions]
    return (roots[0] if roots else ("M" if "M" in ranks else sorted(ranks)[0])).lower()


_COMPILED: dict[tuple, CompiledMapping] = {}


def compiled(cascade: ir.Cascade, mapping: MappingTree, hierarchy: Hierarchy,
             hardware_key: str) -> CompiledMapping:
    """Cached compilation per (cascade, mapping, hardware preset); ``hardware_key`` identifies
    the preset's baked-in numbers (its sweepable fields are symbols)."""
    key = (cascade, str(cascade), mapping.model_dump_json(exclude={"tree"}), repr(mapping.tree),
           hardware_key)
    if key not in _COMPILED:
        if len(_COMPILED) > 64:
            _COMPILED.clear()
        _COMPILED[key] = CompiledMapping(cascade, mapping, hierarchy)
    return _COMPILED[key]
