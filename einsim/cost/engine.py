"""Compile a (cascade, loop tree, hierarchy) once; evaluate it at any sizes, scalar or arrays.

:class:`CompiledMapping` turns the expressions of the :class:`~.derivation.Derivation` into
NumPy functions — the summary into an op-list program (:mod:`~.expression_program`, which the
on-disk cache of sweeps stores as data), the breakdowns by ``sympy.lambdify`` — so a single
evaluation and a million-point sweep run the same expressions (arrays broadcast through them).  :meth:`CompiledMapping.summary` gives a
sweep's columns with a feasibility mask; :meth:`CompiledMapping.report` one point's full
Report with its breakdowns by component and level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np
import sympy

from einsim.language import ir
from einsim.cost.counts import tile_mask_symbols
from einsim.cost.derivation import COPIES, Derivation, density_symbol
from einsim.cost.expressions import parse_size
from einsim.cost.hierarchy import Hierarchy
from einsim.cost.masks import density, tile_fractions
from einsim.cost.report import EinsumCost, Report
from einsim.cost.summary import (capacity_reasons, cascade_copies, check_complete,
                                 summary_table)
from einsim.cost.tree import Loop, MappingTree, nodes
from einsim.errors import MappingError
from einsim.analysis.passes import passes as count_passes


@dataclass(frozen=True)
class Problem:
    """What one evaluation needs besides the tree: rank sizes and the batch×heads copies."""

    name: str
    sizes: Mapping[str, float]   # M, P, E, F, ... (cascade params and partitions filled in)
    copies: float                # batch × heads
    seq_len: int


class CompiledMapping:
    """One (cascade, tree, hierarchy), compiled: its derivation's expressions as functions."""

    def __init__(self, cascade: ir.Cascade, mapping: MappingTree, hierarchy: Hierarchy,
                 cse: bool = True):
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
        for number, kernel in enumerate(counts.kernels):
            for name, expr in kernel.items():
                if name != "path":
                    entries.append((("kernel", number, name), expr))
        entries.append((("compute_cycles",), counts.compute_cycles))
        entries.append((("latency_s",), counts.latency_s))
        for path, expr in counts.branches.items():
            entries.append((("branch_s", path), expr))
        for level in hierarchy.levels.values():
            if level.capacity_words is not None:
                entries.append((("capacity", level.name), level.capacity_words))
        if hierarchy.area_mm2 is not None:
            entries.append((("area_mm2",), hierarchy.area_mm2))
        for level in hierarchy.levels.values():  # one message carries every copy's tiles
            if level.message_latency_s:
                entries.append((("messages", level.name), _messages(counts, level.name)))
        self.summary_keys, summary = self._summary_expressions(counts, hierarchy)
        self.keys = [key for key, _ in entries]
        expressions = [sympy.sympify(expr) for _, expr in entries]
        free = set().union(*(e.free_symbols for e in expressions + summary)) \
            | {hierarchy.clock_hz}
        free.discard(COPIES)
        self.symbols = sorted(free, key=str)
        self.symbol_names = [str(s) for s in self.symbols]
        # common-subexpression elimination makes evaluation ~4x faster and compilation slower
        self._expressions, self._cse, self._compiled_raw = expressions, cse, None
        self._summary_expressions_list = summary
        self._summary, self._summary_program = None, None  # compiled on first use
        self._specialized: dict[tuple, object] = {}
        self.passes = count_passes(cascade, _streamed_rank(cascade))

    @staticmethod
    def _summary_expressions(counts, hierarchy: Hierarchy):
        """What a sweep needs, as few expressions (so arrays pass through few operations)."""
        clock, word = hierarchy.clock_hz, hierarchy.word_bytes
        copies = 1 if hierarchy.grid is not None else COPIES  # a GPU grid holds every copy
        compute = counts.compute_cycles * copies / clock
        memory, traffic, energy = [sympy.Integer(0)], sympy.Integer(0), sympy.Integer(0)
        for level in hierarchy.levels.values():
            reads = sympy.Add(*(v for (name, _), v in counts.reads.items() if name == level.name))
            writes = sympy.Add(*(v for (name, _), v in counts.writes.items()
                                 if name == level.name))
            energy += (reads * level.read_pj + writes * level.write_pj) / level.width_words
            if level.bandwidth_bytes_per_s is not None:
                memory.append((reads + writes) * word * COPIES / level.bandwidth_bytes_per_s
                              + _messages(counts, level.name) * level.message_latency_s)
                traffic += (reads + writes) * word * COPIES
        for (unit, action), count in counts.actions.items():
            energy += count * hierarchy.units[unit].action_energy_pj[action]
        memory_s = sympy.Max(*memory, evaluate=False) if len(memory) > 1 else memory[0]
        latency = sympy.Max(counts.latency_s * copies, compute, memory_s, evaluate=False)
        energy = energy * COPIES * sympy.Float(1e-12) + hierarchy.static_power_w * latency
        keys = ["latency_s", "compute_latency_s", "memory_latency_s", "energy_j",
                "traffic_bytes", "buffer_bytes"]
        expressions = [latency, compute, memory_s, energy, traffic,
                       counts.occupancy.get(hierarchy.buffer_level, sympy.Integer(0)) * word]
        busy: dict[str, sympy.Expr] = {}
        for name, unit in counts.units.items():
            for member, share in counts.shares.get(name, {unit: 1}).items():
                busy[member] = busy.get(member, 0) + counts.busy[name] * share
        for unit, expression in busy.items():
            keys.append(f"utilization:{unit}")
            expressions.append(expression * COPIES / (latency * clock))
        for level in hierarchy.levels.values():
            if level.capacity_words is not None:
                keys.append(f"slack:{level.name}")
                expressions.append(level.capacity_words * (1 + sympy.Float(1e-12))
                                   - counts.occupancy.get(level.name, sympy.Integer(0)))
        if hierarchy.area_mm2 is not None:
            keys.append("area_mm2")
            expressions.append(hierarchy.area_mm2)
        return keys, expressions

    def copies(self, values: Mapping[str, object], copies):
        """Independent copies of the cascade (:func:`~einsim.cost.summary.cascade_copies`)."""
        return cascade_copies(copies, values, self.symbol_names)

    def summary(self, values: Mapping[str, object], copies, specialize: bool = False
                ) -> dict[str, object]:
        """Latency, energy, traffic, buffer, utilization per unit and feasibility.

        The expressions run as an op-list program (:attr:`summary_program`), whose scalar
        inputs stay scalars.  Only when they had to be lambdified instead, ``specialize``
        folds every scalar value into them first and compiles them for the arrays alone:
        worth it for large blocks (equal to the general path to ~1e-12 relative)."""
        copies = self.copies(values, copies)
        function = self._summary or self._summary_function()
        if specialize and self._summary_program is None:
            results = self._specialized_function(values, copies)
        else:
            results = function(*(values[n] for n in self.symbol_names), copies)
        return summary_table(self.summary_keys, results)

    @property
    def summary_program(self):
        """The summary as an op-list :class:`~einsim.cost.expression_program.Program` (inputs:
        :attr:`symbol_names`, then ``copies``), or None if it uses a function the op list
        lacks (then it is lambdified).  What the on-disk cache of sweeps stores."""
        if self._summary is None:
            self._summary_function()
        return self._summary_program

    def _summary_function(self):
        from einsim.cost.expression_program import (InvalidProgram, NotCompilable,
                                                    compile_expressions)

        try:
            self._summary_program = compile_expressions(self._summary_expressions_list,
                                                        self.symbol_names + [str(COPIES)])
            self._summary = self._summary_program
        except (NotCompilable, InvalidProgram):
            self._summary = sympy.lambdify(self.symbols + [COPIES],
                                           self._summary_expressions_list, modules="numpy",
                                           cse=self._cse)
        return self._summary

    def _specialized_function(self, values, copies):
        varying = [n for n in self.symbol_names if np.ndim(values[n]) > 0]
        fixed = tuple((n, float(values[n])) for n in self.symbol_names if n not in varying)
        key = (tuple(varying), fixed, float(copies))
        function = self._specialized.get(key)
        if function is None:
            numbers = {s: sympy.Float(v) for s in self.symbols for n, v in fixed if str(s) == n}
            numbers[COPIES] = sympy.Float(float(copies))
            folded = [sympy.sympify(e).xreplace(numbers) for e in self._summary_expressions_list]
            arguments = [s for s in self.symbols if str(s) in varying]
            function = sympy.lambdify(arguments, folded, modules="numpy", cse=True)
            if len(self._specialized) > 16:
                self._specialized.clear()
            self._specialized[key] = function
        size = max((np.size(values[n]) for n in varying), default=1)
        return [np.broadcast_to(np.asarray(r, dtype=float), (size,)) if np.ndim(r) == 0
                and varying else r for r in function(*(values[n] for n in varying))]

    # ---------------------------------------------------------------------------- inputs

    def values(self, problem: Problem, parameters: Mapping[str, float] | None = None,
               overrides: Mapping[str, float] | None = None) -> dict[str, object]:
        """Numbers (or arrays) for every symbol: hardware, sizes, parameters, densities.
        ``overrides`` sets hardware fields or the cascade's own params (a GNA window) by name:
        a workload's sizes never set a cascade param (its model width ``D`` is not a
        dilation).  It may also give a mask's counts (``density_E``, ``visited_S``, ...: see
        :meth:`mask_symbols`) that another analysis made."""
        values: dict[str, object] = dict(self.hardware.values)
        values.update(overrides or {})
        own = {param.name for param in self.cascade.params}  # a workload's D (model width)
        values.update({k: v for k, v in problem.sizes.items() if k not in own})  # is not GNA's
        given = dict(parameters or {})
        for name, default in self.mapping.parameter_defaults().items():
            values[name] = given.pop(name) if name in given else \
                _numeric(default, values, f"parameters.{name}.default")
        if given:
            raise MappingError(f"mapping {self.mapping.name} has no parameter "
                               f"{sorted(given)[0]!r}; its parameters are "
                               f"{', '.join(self.mapping.parameters) or 'none'}")
        for name in self.mapping.parameter_defaults():
            _check_size(f"parameter {name}", values[name])
        fill_partitions(self.cascade, values)
        for node in nodes(self.mapping.root):
            if isinstance(node, Loop) and node.tile.free_symbols:
                _check_size(f"{node.path}.tile", _numeric(node.tile, values, f"{node.path}.tile"))
        masked = set(self.counts.densities) | {key[0] for key in self.counts.tile_masks.values()}
        lacking = sorted({ir.rank_of(v) for source in masked for v in
                          ir.condition_variables(self.cascade.producers[source].condition)}
                         - set(values))
        if lacking:
            raise MappingError(f"mapping {self.mapping.name}: no value for {', '.join(lacking)} "
                               "(a rank size the workload lacks)")
        for source in self.counts.densities:  # unless counted by the caller (overrides)
            if str(density_symbol(source)) not in values:
                values[str(density_symbol(source))] = _density(self.cascade, source, values)
        for stem, key in self.counts.tile_masks.items():
            names = [str(symbol) for symbol in tile_mask_symbols(stem)]
            if names[0] not in values:
                values.update(zip(names, _tile_fractions(self.cascade, key, values)))
        check_complete(self.mapping.name, self.symbol_names, values)
        return values

    def mask_symbols(self, source: str) -> list[str]:
        """The names of the counts of Einsum ``source``'s mask the engine takes as values: its
        density, and per (Q tile, KV tile) shape its visited, partial and worst fractions."""
        names = [str(density_symbol(source))] if source in self.counts.densities else []
        for stem, key in self.counts.tile_masks.items():
            if key[0] == source:
                names += [str(symbol) for symbol in tile_mask_symbols(stem)]
        return names

    def raw(self, values: Mapping[str, object], copies=1) -> dict[tuple, object]:
        """Every derived quantity (per batch-head, except a GPU grid's, which schedules all
        ``copies`` together) by key (compiled on first use: a search needs only the summary)."""
        if self._compiled_raw is None:
            self._compiled_raw = sympy.lambdify(self.symbols + [COPIES], self._expressions,
                                                modules="numpy", cse=self._cse)
        results = self._compiled_raw(*(values[n] for n in self.symbol_names),
                                     self.copies(values, copies))
        return dict(zip(self.keys, results))

    # ---------------------------------------------------------------------------- outputs

    def metrics(self, values: Mapping[str, object], copies) -> dict[str, object]:
        """The summary plus, for a report, the breakdowns by component and level."""
        table = self.summary(values, copies)
        raw = self.raw(values, copies)
        copies = self.copies(values, copies)
        hardware = self.hardware
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
        for (kind, *key), value in raw.items():
            if kind == "actions":
                unit, action = key
                joules = value * copies * hardware.units[unit].action_energy_pj[action] * 1e-12
                energy[unit] = energy.get(unit, 0.0) + joules
        if hardware.static_power_w:
            energy["static"] = hardware.static_power_w * table["latency_s"]
        _, reason = self._capacity(raw, values)
        return {**table, "energy_breakdown_j": energy, "reason": reason,
                "accesses_by_level": accesses, "raw": raw}

    def _capacity(self, raw, values):
        """Feasibility and the reason a (scalar) point fails."""
        reason = self.reasons(raw)[0]
        return not reason, reason

    def reasons(self, raw) -> list[str]:
        """Per point (of scalar or array ``raw``), why it does not fit, or ``""``."""
        levels, word = self.hardware.levels, self.hardware.word_bytes
        return capacity_reasons(raw, self.mapping.name, self.hardware.name,
                                lambda level: levels[level].word_bytes or word)

    def report(self, problem: Problem, parameters: Mapping[str, float] | None = None,
               overrides: Mapping[str, float] | None = None, workload_name: str = "") -> Report:
        """One point's Report; an infeasible point raises :class:`MappingError`."""
        values = self.values(problem, parameters, overrides)
        result = self.metrics(values, problem.copies)
        if not bool(result["feasible"]):
            raise MappingError(result["reason"])
        raw, copies = result["raw"], self.copies(values, problem.copies)
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
        named.update(self._facts(raw, copies, float(result["latency_s"])))
        capacity = raw.get(("capacity", self.hardware.buffer_level))
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
            area_mm2=None if result["area_mm2"] is None else float(result["area_mm2"]),
            einsums=einsums, traffic_by_level=traffic,
            accesses_by_level={level: {k: float(v) for k, v in a.items()}
                               for level, a in result["accesses_by_level"].items()})

    def _facts(self, raw, copies, latency_s: float) -> dict[str, float]:
        """A GPU's CTAs and waves over its kernels, the first kernel's resident CTAs per SM,
        and the tensor-core rate."""
        kernels: dict[int, dict[str, float]] = {}
        for (kind, *key), value in raw.items():
            if kind == "kernel":
                kernels.setdefault(key[0], {})[key[1]] = float(value)
        facts = {}
        if kernels:
            facts = {"ctas": sum(k["ctas"] for k in kernels.values()),
                     "waves": sum(k["waves"] for k in kernels.values()),
                     "ctas_per_sm": kernels[min(kernels)]["slots"]}
        macs = sum(float(v) for k, v in raw.items()
                   if k[0] == "actions" and k[1] == "tensor_core" and k[2] == "mac")
        if macs:
            facts["tflops"] = 2 * macs * copies / latency_s / 1e12
        return facts

    @staticmethod
    def _ops_of(raw, name: str, copies) -> dict[str, float]:
        return {k[2]: float(v) * copies for k, v in raw.items() if k[0] == "ops" and k[1] == name}


def _messages(counts, level: str) -> sympy.Expr:
    """Moves of tiles from or to ``level`` per instance, over every keep node."""
    return sympy.Add(*(n for (_, name, _), n in counts.messages.items() if name == level))


def _check_size(where: str, value) -> None:
    """A parameter or tile value must be a whole number of at least 1 (also over arrays)."""
    array = np.asarray(value, dtype=float)
    if not (np.all(np.isfinite(array)) and np.all(array >= 1) and np.all(array == np.floor(array))):
        bad = array.reshape(-1)[~(np.isfinite(array.reshape(-1)) & (array.reshape(-1) >= 1)
                                  & (array.reshape(-1) == np.floor(array.reshape(-1))))][0]
        raise MappingError(f"{where} is {bad:g}; expected a whole number of at least 1")


def _plain(value: float):
    return int(value) if float(value).is_integer() else value


def _numeric(expression, values: Mapping[str, object], where: str):
    """A parameter default evaluated with the numbers known so far."""
    expr = parse_size(expression, where) if not isinstance(expression, sympy.Basic) else expression
    names = sorted(str(s) for s in expr.free_symbols)
    missing = [n for n in names if n not in values]
    if missing:
        raise MappingError(f"{where}: {', '.join(missing)} is not known when it is evaluated")
    with np.errstate(all="ignore"):
        try:
            return _small_function(expr, tuple(names))(*(values[n] for n in names))
        except (ArithmeticError, ValueError) as error:
            raise MappingError(f"{where}: cannot evaluate {expr} ({error})") from None


@lru_cache(maxsize=1024)
def _small_function(expr: sympy.Expr, names: tuple[str, ...]):
    return sympy.lambdify([sympy.Symbol(n, positive=True, integer=True) for n in names], expr,
                          "numpy")


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


def _tile_fractions(cascade: ir.Cascade, key: tuple, values: Mapping[str, object]):
    """A GPU kernel's visited, partial and worst-Q-tile fractions, once per distinct
    combination of sizes and tile shapes when they are arrays."""
    source, q_tiles, kv_tiles, dynamic = key
    einsum = cascade.producers[source]
    names = sorted({ir.rank_of(v) for v in ir.condition_variables(einsum.condition)}
                   | {p.name for p in cascade.params}
                   | {s for s in ("M", "P") if s in values})
    tiles = [_numeric(tile, values, f"tile of {variable}")
             for variable, tile in q_tiles + kv_tiles]
    present = [n for n in names if n in values]
    grid = np.broadcast_arrays(*([np.asarray(values[n]) for n in present]
                                 + [np.asarray(t) for t in tiles]))
    visited, partial, worst = (np.empty(grid[0].shape) for _ in range(3))
    cache: dict[tuple, tuple[float, float, float]] = {}
    variables = [variable for variable, _ in q_tiles + kv_tiles]
    for index in np.ndindex(grid[0].shape):
        combination = tuple(float(g[index]) for g in grid)
        if combination not in cache:
            sizes = {**values, **dict(zip(present, combination[:len(present)]))}
            extent = dict(zip(variables, (int(x) for x in combination[len(present):])))
            cache[combination] = tile_fractions(
                cascade, source, sizes, {v: extent[v] for v, _ in q_tiles},
                {v: extent[v] for v, _ in kv_tiles}, dynamic)
        visited[index], partial[index], worst[index] = cache[combination]
    if not grid[0].shape:
        return float(visited), float(partial), float(worst)
    return visited, partial, worst


def _streamed_rank(cascade: ir.Cascade) -> str:
    """The rank whose passes a report states: the key rank M (or its partition root)."""
    ranks = {ir.rank_of(v) for e in cascade.einsums for v in e.variables}
    roots = [p.rank for p in cascade.partitions]
    return (roots[0] if roots else ("M" if "M" in ranks else sorted(ranks)[0])).lower()


_COMPILED: dict[tuple, CompiledMapping] = {}



def compiled(cascade: ir.Cascade, mapping: MappingTree, hierarchy: Hierarchy,
             hardware_key: str, cse: bool = True) -> CompiledMapping:
    """Cached compilation per (cascade, mapping, hardware preset); ``hardware_key`` identifies
    the preset's baked-in numbers (its sweepable fields are symbols)."""
    key = (cascade, str(cascade), mapping.model_dump_json(exclude={"tree"}), repr(mapping.tree),
           hardware_key, cse)
    if key not in _COMPILED:
        if len(_COMPILED) > 64:
            _COMPILED.clear()
        _COMPILED[key] = CompiledMapping(cascade, mapping, hierarchy, cse)
    return _COMPILED[key]
