"""An independent loop-nest simulator for loop-tree mappings (test oracle).

It walks a loop tree on tiny sizes with explicit resident sets and counts, per (level, tensor),
the words read and written — written from the semantics in ``docs/concepts/loop_trees.md``,
never from the engine's closed forms (``einsim/cost/derivation.py``).  Only the tree schema
(``einsim.cost.tree``), the cascade IR, the hierarchy's names and axis sizes, the recurrence
axes (``einsim.analysis.graph.recurrences``) and the mask inheritance rule
(``einsim.cost.masks.mask_sources``) are taken from the package.

Semantics, literally:

* **Iteration.** A temporal loop with tile ``T`` over a variable whose current range is
  ``[lo, hi)`` hands the chunks ``[lo + k*T, min(lo + (k+1)*T, hi))`` to its subtree, one per
  temporal step.  A spatial node splits the range over the axis positions (position ``j`` gets
  ``[lo + j*c, min(lo + (j+1)*c, hi))`` with ``c = ceil((hi - lo) / axis)``); positions are
  *instances* that run at the same temporal step.  A leaf iterates every remaining value of
  every variable of its Einsum, one point per step per instance.
* **Keeps.** A keep ``K`` of tensor ``T`` holds, per instance (spatial positions above it), the
  elements of ``T`` the Einsums below ``K`` touch in the current iteration of the loops above
  it (views composed, a recurrence's stepped axis dropped: carried).  One-step memory: at each
  step of the loops above ``K`` and per instance, ``new = tile_now - tile_prev``; ``K``'s level
  is written ``|new|``; the parent keep (the next keep of ``T`` above ``K``) is read the
  distinct new elements per parent instance (multicast).  A backing store (no parent) is never
  filled.
* **Outputs** kept at ``K`` whose producer runs below ``K`` (with a parent): each time the tile
  changes, and at the end, the old tile is drained (read at ``K``, written at the parent); for a
  reduction, new elements that were drained before are refilled (read at the parent, written
  at ``K``).
* **Leaf accesses.** Every point (masked or not: tiles move whole) reads one element per
  read access from the
  innermost keep of that tensor on its path; points at the same temporal step in instances
  that share that keep's instance and touch the same element read once (multicast).  Updates
  of the output likewise (spatial reduction); a reduction also reads the element at every
  update except the first-ever update of that element.
* **Masks.** Points whose ``where`` condition is false (and the points of Einsums that
  inherit that mask, ``mask_sources``) perform no operation, but their data still moves:
  tiles are dense boxes, and every point reads and updates as if unmasked.
* **Occupancy.** Per keep, the peak over its steps of the resident words summed over its
  instances (for a register file: one PE's words, a tile kept above the unit's spatial nodes
  spread evenly over its PEs); along a chain they add, a ``sequence`` takes its largest branch, a ``pipeline``
  adds its branches.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
import sympy

from einsim.language import ir
from einsim.cost.masks import mask_sources
from einsim.cost.tree import Branch, Keep, Loop, Spatial, leaves
from einsim.language.functions import PREDICATES
from einsim.analysis.graph import recurrences

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}


@dataclass
class SimResult:
    reads: Counter = field(default_factory=Counter)      # (level, tensor) -> words
    writes: Counter = field(default_factory=Counter)
    occupancy: dict = field(default_factory=dict)        # level -> peak words
    points: dict = field(default_factory=dict)           # Einsum -> unmasked points (ops)
    peaks: dict = field(default_factory=dict)            # (keep path, tensor) -> peak words


def _number(expr, values) -> int:
    """An integer from a number or a sympy expression of the bound symbols."""
    if isinstance(expr, (int, np.integer)):
        return int(expr)
    if isinstance(expr, (float, np.floating)):
        assert float(expr).is_integer(), expr
        return int(expr)
    expr = sympy.sympify(expr)
    bound = {s: values[str(s)] for s in expr.free_symbols}
    result = expr.subs(bound)
    assert result.is_number, (expr, result)
    value = float(result)
    assert value.is_integer(), (expr, value)
    return int(value)


class LoopNestSimulator:
    """Simulate one (cascade, mapping tree, hierarchy) at concrete ``values``."""

    def __init__(self, cascade: ir.Cascade, mapping, hierarchy, values):
        self.cascade = cascade
        self.mapping = mapping
        self.hierarchy = hierarchy
        self.values = {k: v for k, v in values.items()}
        self.sizes = {k: (int(v) if np.ndim(v) == 0 and float(v).is_integer() else v)
                      for k, v in self.values.items()
                      if np.ndim(v) == 0 and isinstance(v, (int, float, np.number))}
        self.recurrence = {name: r.axis for name, r in recurrences(cascade).items()}
        self.views = self._views()
        self.masks = mask_sources(cascade)
        self.leaves = [leaf for leaf in leaves(mapping.root) if leaf.einsum not in self.views]
        self.result = SimResult()
        self._tile_cache: dict = {}

    # ------------------------------------------------------------------------ the cascade

    def _views(self) -> dict:
        """Pure copies ``V[i, j] = S[f(i, j)]`` (no reduction, no mask, plain distinct output
        variables): the name of a view addresses its source's data."""
        views = {}
        for einsum in self.cascade.einsums:
            outputs = [index.plain_variable() for index in einsum.output.indices]
            if isinstance(einsum.expression, ir.Access) and einsum.condition is None \
                    and not self._reduced(einsum) and None not in outputs \
                    and len(set(outputs)) == len(outputs) \
                    and einsum.expression.tensor != einsum.name:
                views[einsum.name] = (einsum.expression, tuple(outputs))
        return views

    @staticmethod
    def _reduced(einsum: ir.Einsum) -> bool:
        written = {v for index in einsum.output.indices for v in index.variables}
        return any(v not in written for v in einsum.variables)

    def source(self, tensor: str) -> str:
        while tensor in self.views:
            tensor = self.views[tensor][0].tensor
        return tensor

    def element(self, access: ir.Access, env: dict) -> tuple[str, tuple]:
        """The (source tensor, element) an access touches at a point; the stepped axis of a
        recurrence is dropped (its state is carried)."""
        tensor = access.tensor
        coords = tuple(int(index.evaluate(self.sizes, env)) for index in access.indices)
        while tensor in self.views:
            source, outputs = self.views[tensor]
            inner = dict(zip(outputs, coords))
            coords = tuple(int(index.evaluate(self.sizes, inner)) for index in source.indices)
            tensor = source.tensor
        axis = self.recurrence.get(tensor)
        if axis is not None:
            coords = coords[:axis] + coords[axis + 1:]
        return tensor, coords

    def size(self, variable: str) -> int:
        return _number(self.values[ir.rank_of(variable)], self.values)

    def unmasked(self, einsum: ir.Einsum, env: dict) -> bool:
        source = self.masks.get(einsum.name)
        if source is None:
            return True
        return bool(self._condition(self.cascade.producers[source].condition, env))

    def _condition(self, condition, env) -> bool:
        if isinstance(condition, ir.IndexComparison):
            return _COMPARE[condition.op](condition.left.evaluate(self.sizes, env),
                                          condition.right.evaluate(self.sizes, env))
        if isinstance(condition, ir.Predicate):
            args = [np.asarray(a.evaluate(self.sizes, env)) for a in condition.args]
            return bool(PREDICATES[condition.name].numpy(*args))
        if isinstance(condition, ir.Not):
            return not self._condition(condition.operand, env)
        left = self._condition(condition.left, env)
        right = self._condition(condition.right, env)
        return (left and right) if condition.op == "and" else (left or right)

    # ------------------------------------------------------------------------ the tree

    def _unit_axis(self, units: set[str], axis: str) -> int:
        sizes = {_number(self.hierarchy.units[u].axes[axis], self.values) for u in units}
        assert len(sizes) == 1, (units, axis)
        return sizes.pop()

    def _units_below(self, node) -> set[str]:
        return {leaf.unit for leaf in self.leaves if any(n is node for n in leaf.nodes)}

    def level_of(self, keep: Keep) -> str:
        if keep.level == "registers":
            units = self._units_below(keep)
            assert len(units) == 1
            return f"{next(iter(units))}.registers"
        return keep.level

    def iterate(self, nodes) -> list[tuple[tuple, tuple, dict]]:
        """Every (temporal index, spatial position, ranges) the Loop/Spatial ``nodes`` give,
        outer to inner."""
        out: list = []
        work = [n for n in nodes if isinstance(n, (Loop, Spatial))]
        units_of = {id(n): self._units_below(n) for n in work if isinstance(n, Spatial)}

        def walk(position: int, tidx: tuple, sidx: tuple, ranges: dict) -> None:
            if position == len(work):
                out.append((tidx, sidx, dict(ranges)))
                return
            node = work[position]
            if isinstance(node, Loop):
                lo, hi = ranges.get(node.variable, (0, self.size(node.variable)))
                tile = _number(node.tile, self.values)
                for k in range(math.ceil((hi - lo) / tile)):
                    ranges[node.variable] = (lo + k * tile, min(lo + (k + 1) * tile, hi))
                    walk(position + 1, tidx + (k,), sidx, ranges)
                ranges[node.variable] = (lo, hi)
                return
            choices = []
            saved = dict(ranges)
            for axis, variable in node.axes:
                lo, hi = ranges.get(variable, (0, self.size(variable)))
                width = self._unit_axis(units_of[id(node)], axis)
                chunk = math.ceil((hi - lo) / width)
                parts = [(j, (lo + j * chunk, min(lo + (j + 1) * chunk, hi)))
                         for j in range(width)]
                choices.append([(j, variable, r) for j, r in parts if r[0] < r[1]])
            for combination in itertools.product(*choices):
                for _, variable, r in combination:
                    ranges[variable] = r
                walk(position + 1, tidx, sidx + tuple(j for j, _, _ in combination), ranges)
                ranges.clear()
                ranges.update(saved)

        walk(0, (), (), {})
        return out

    def points(self, einsum: ir.Einsum, ranges: dict):
        variables = einsum.variables
        spans = [range(*ranges.get(v, (0, self.size(v)))) for v in variables]
        for values in itertools.product(*spans):
            yield dict(zip(variables, values))

    @staticmethod
    def spatial_count(nodes) -> int:
        return sum(len(n.axes) for n in nodes if isinstance(n, Spatial))

    # ------------------------------------------------------------------------ simulation

    def run(self) -> SimResult:
        for leaf in self.leaves:
            self._leaf(leaf)
        keeps = self._keeps()
        for key, (keep, tensor, prefix, below) in keeps.items():
            self._keep(keep, tensor, prefix, below)
        self.result.occupancy = {level: words for level, words in
                                 self._occupancy(self.mapping.root, keeps).items()}
        return self.result

    def _keeps(self) -> dict:
        """(keep path, tensor) -> (Keep node, source tensor, nodes above it, leaves below)."""
        table: dict = {}
        for leaf in self.leaves:
            for position, node in enumerate(leaf.nodes):
                if not isinstance(node, Keep):
                    continue
                for label in node.tensors:
                    tensor = self.source(label)
                    key = (node.path, tensor)
                    if key not in table:
                        table[key] = (node, tensor, leaf.nodes[:position], [])
                    table[key][3].append(leaf)
        return table

    def _innermost(self, nodes, tensor: str) -> int:
        found = [k for k, n in enumerate(nodes) if isinstance(n, Keep)
                 and any(self.source(label) == tensor for label in n.tensors)]
        assert found, f"{tensor} has no keep on the path"
        return found[-1]

    def _leaf(self, leaf) -> None:
        einsum = self.cascade.producers[leaf.einsum]
        nodes = leaf.nodes[:-1]
        reads = []
        for access in einsum.inputs:
            tensor = self.source(access.tensor)
            k = self._innermost(nodes, tensor)
            reads.append((access, tensor, self.level_of(nodes[k]),
                          self.spatial_count(nodes[:k]), set()))
        k = self._innermost(nodes, einsum.name)
        out_level, out_spatial = self.level_of(nodes[k]), self.spatial_count(nodes[:k])
        updates: set = set()
        touched: set = set()
        count = 0
        for tidx, sidx, ranges in self.iterate(nodes):
            for env in self.points(einsum, ranges):
                count += self.unmasked(einsum, env)  # masks remove operations only
                step = tidx + tuple(env[v] - ranges.get(v, (0,))[0] for v in einsum.variables)
                for access, tensor, _, spatial, seen in reads:
                    seen.add((step, sidx[:spatial], self.element(access, env)[1]))
                element = self.element(einsum.output, env)[1]
                updates.add((step, sidx[:out_spatial], element))
                touched.add(element)
        result = self.result
        result.points[einsum.name] = count
        for access, tensor, level, _, seen in reads:
            result.reads[(level, tensor)] += len(seen)
        result.writes[(out_level, einsum.name)] += len(updates)
        if self._reduced(einsum):
            result.reads[(out_level, einsum.name)] += len(updates) - len(touched)

    def _tile(self, tensor: str, below, ranges: dict) -> frozenset:
        key = (tensor, tuple(l.einsum for l in below), tuple(sorted(ranges.items())))
        if key in self._tile_cache:
            return self._tile_cache[key]
        elements = set()
        for leaf in below:
            einsum = self.cascade.producers[leaf.einsum]
            accesses = [a for a in einsum.inputs if self.source(a.tensor) == tensor]
            if einsum.name == tensor:
                accesses.append(einsum.output)
            if not accesses:
                continue
            for env in self.points(einsum, ranges):
                for access in accesses:
                    elements.add(self.element(access, env)[1])
        tile = frozenset(elements)
        self._tile_cache[key] = tile
        return tile

    def _keep(self, keep: Keep, tensor: str, prefix, below) -> None:
        result = self.result
        level = self.level_of(keep)
        parents = [k for k, n in enumerate(prefix) if isinstance(n, Keep)
                   and any(self.source(label) == tensor for label in n.tensors)]
        parent = parents[-1] if parents else None
        parent_level = self.level_of(prefix[parent]) if parent is not None else None
        parent_spatial = self.spatial_count(prefix[:parent]) if parent is not None else 0
        producing = any(leaf.einsum == tensor for leaf in below)
        reduction = producing and self._reduced(self.cascade.producers[tensor])
        steps: dict = defaultdict(list)
        for tidx, sidx, ranges in self.iterate(prefix):
            steps[tidx].append((sidx, ranges))
        previous: dict = {}
        drained: set = set()
        peak = 0
        for tidx in sorted(steps):
            resident = 0
            fresh_by_parent: dict = defaultdict(set)
            for sidx, ranges in steps[tidx]:
                tile = self._tile(tensor, below, ranges)
                if not level.endswith(".registers"):
                    resident += len(tile)
                elif sidx:  # a register file holds one PE's tile
                    resident = max(resident, len(tile))
                else:       # kept above the unit's spatial nodes: spread over its PEs
                    pes = math.prod(_number(a, self.values) for a in
                                    self.hierarchy.units[level.split(".")[0]].axes.values())
                    resident = max(resident, -(-len(tile) // int(pes)))
                before = previous.get(sidx, frozenset())
                previous[sidx] = tile
                if parent is None:
                    continue
                if producing:
                    if tile != before:
                        result.reads[(level, tensor)] += len(before)
                        result.writes[(parent_level, tensor)] += len(before)
                        drained |= before
                        if reduction:
                            refill = len((tile - before) & drained)
                            result.reads[(parent_level, tensor)] += refill
                            result.writes[(level, tensor)] += refill
                    continue
                new = tile - before
                result.writes[(level, tensor)] += len(new)
                fresh_by_parent[sidx[:parent_spatial]] |= new
            for fresh in fresh_by_parent.values():
                result.reads[(parent_level, tensor)] += len(fresh)
            peak = max(peak, resident)
        if parent is not None and producing:
            for tile in previous.values():  # the final drain
                result.reads[(level, tensor)] += len(tile)
                result.writes[(parent_level, tensor)] += len(tile)
        result.peaks[(keep.path, tensor)] = peak

    def _occupancy(self, chain, keeps) -> dict:
        own: dict = defaultdict(int)
        for node in chain:
            if isinstance(node, Keep):
                for label in node.tensors:
                    key = (node.path, self.source(label))
                    if key in self.result.peaks:
                        own[self.level_of(node)] += self.result.peaks[key]
            elif isinstance(node, Branch):
                parts = [self._occupancy(child, keeps) for child in node.children]
                for level in {k for part in parts for k in part}:
                    values = [part.get(level, 0) for part in parts]
                    own[level] += max(values) if node.kind == "sequence" else sum(values)
        return dict(own)


def simulate(cascade, mapping, hierarchy, values) -> SimResult:
    return LoopNestSimulator(cascade, mapping, hierarchy, values).run()
