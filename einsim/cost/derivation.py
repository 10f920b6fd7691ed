"""Derive tiles, fills, accesses, capacity and compute from a loop tree (DESIGN.md §6).

Everything is a sympy expression of rank sizes, mapping parameters and the hierarchy's
sweepable fields.  The rules (``docs/concepts/loop-trees.md`` states them with examples):

* **extent** of a variable at a node: its rank size, cut by each loop above (to the loop's
  tile) and each spatial node above (to ceil(extent / axis size) per position);
* **tile** of a tensor kept at a node: per axis ``sum |a_v| (extent_v - 1) + 1`` of its index
  ``sum a_v v``; a recurrence's stepped axis counts 1 (carried state);
* **fills** of a tensor read below a keep node: tile × the trips of every loop above the node
  down to the innermost loop whose variable indexes the tensor (irrelevant loops inside it
  keep the tile: stationarity); irrelevant spatial loops multicast and never multiply;
* **operand reads** at the innermost keep on a leaf's path: one per point and access, divided
  by the fan-out of spatial loops below the keep that do not index the tensor (multicast);
  **updates** of an output likewise (spatial reduction), with read-modify-write of partial
  sums except the first touch of each element per visit;
* **drains** of an output kept at two levels: tile × visits go up; partial sums come back
  when a reduction loop sits above the lower keep;
* **capacity** per level: the sum of tiles live at once — ``sequence`` takes the largest
  branch, ``pipeline`` adds branches;
* **cycles** of a leaf: the temporal steps on its path × the busiest functional unit's actions
  per point; ``sequence`` adds, ``pipeline`` overlaps (slowest branch, plus fill and drain of
  one iteration).
"""

from __future__ import annotations

from dataclasses import replace

import sympy

from einsim.language import ir
from einsim.cost.cascade_view import CascadeView, TensorAccess
from einsim.cost.counts import (COPIES, Counts, KeepInfo, LoopInfo, _max, _min, _spread,
                                density_symbol, size)
from einsim.cost.gpu_semantics import GridSemantics
from einsim.cost.hierarchy import Hierarchy
from einsim.cost.legality import check_legality
from einsim.cost.masks import mask_sources
from einsim.cost.tree import (Branch, Chain, Keep, LeafPath, Loop, MappingTree, Run, Spatial,
                              leaves, nodes)
from einsim.analysis.footprint import op_counts
from einsim.errors import MappingError

__all__ = ["COPIES", "Counts", "Derivation", "density_symbol"]


class Derivation(GridSemantics):
    """One (cascade, tree, hierarchy): walk every leaf, then count."""

    def __init__(self, cascade: ir.Cascade, mapping: MappingTree, hierarchy: Hierarchy):
        self.cascade, self.mapping, self.hardware = cascade, mapping, hierarchy
        self.leaves = leaves(mapping.root)
        self.view = CascadeView(cascade, frozenset(leaf.einsum for leaf in self.leaves))
        self.masks = mask_sources(cascade)
        self.keeps: dict[tuple[str, str], KeepInfo] = {}  # (keep path, tensor)
        self.leaf_items: dict[str, list] = {}             # Einsum -> [LoopInfo | KeepInfo]
        self.counts = Counts()
        self.grid_extents: dict[str, dict] = {}  # GPU kernel path -> a CTA's extents
        self.loop_starts = {n.path: n.start for n in nodes(mapping.root) if isinstance(n, Loop)}
        self.keep_buffers = {n.path: n.buffers for n in nodes(mapping.root)
                             if isinstance(n, Keep)}
        self._check_bindings()
        self._check_grid()
        check_legality(cascade, [l for l in self.leaves if l.einsum in self.view.einsums])
        self.units_below = self._units_below()
        for leaf in self.leaves:
            if leaf.einsum in self.view.einsums:
                self._walk_leaf(leaf)
        self._link_keeps()
        self._count()

    # ---------------------------------------------------------------------------- structure

    def _check_bindings(self) -> None:
        seen: dict[str, str] = {}
        for leaf in self.leaves:
            run = leaf.nodes[-1]
            if leaf.einsum not in self.cascade.producers:
                raise MappingError(f"{run.path}: unknown Einsum {leaf.einsum!r}; cascade "
                                   f"{self.cascade.name or ''} has "
                                   f"{', '.join(self.cascade.producers)}")
            if leaf.einsum in seen:
                raise MappingError(f"{run.path}: Einsum {leaf.einsum} is bound twice (also at "
                                   f"{seen[leaf.einsum]})")
            seen[leaf.einsum] = run.path
            names = leaf.unit.split("+")
            for name in names:
                self.hardware.unit(name, run.path)
            if len({tuple(self.hardware.units[n].axes) for n in names}) > 1:
                raise MappingError(f"{run.path}: units {', '.join(names)} have different PE "
                                   "axes; a leaf shared by several units needs the same axes")
        missing = [name for name in self.view.einsums if name not in seen]
        if missing:
            raise MappingError(f"tree: Einsum(s) {', '.join(missing)} of the cascade are bound "
                               "to no leaf; add a {run: NAME, on: UNIT} node for each")

    def _units_below(self) -> dict[str, set[str]]:
        """Node path -> units of the leaves below it."""
        table: dict[str, set[str]] = {}
        for leaf in self.leaves:
            for node in leaf.nodes:
                table.setdefault(node.path, set()).update(leaf.unit.split("+"))
        return table

    def _walk_leaf(self, leaf: LeafPath) -> None:
        einsum = self.view.einsums[leaf.einsum]
        unit = self.hardware.units[leaf.unit.split("+")[0]]
        extents: dict[str, sympy.Expr] = {}
        items: list = []
        loops: list[LoopInfo] = []
        grid_extents: dict[str, sympy.Expr] | None = None
        grid = self.hardware.grid

        def extent(v: str) -> sympy.Expr:
            return extents.get(v, size(v))

        for node in leaf.nodes[:-1]:
            if isinstance(node, Loop):
                self._check_iterates(einsum, node.variable, node.path)
                trips = sympy.ceiling(extent(node.variable) / node.tile)
                info = LoopInfo(node.variable, trips, sympy.Integer(1), False, node.path)
                extents[node.variable] = _min(node.tile, extent(node.variable))
                loops.append(info)
                items.append(info)
            elif isinstance(node, Spatial):
                for axis, variable in node.axes:
                    if axis not in unit.axes:
                        raise MappingError(
                            f"{node.path}: spreads {variable} over axis {axis!r}, but Einsum "
                            f"{einsum.name} runs on {unit.name}, whose axes are "
                            f"{', '.join(unit.axes)}")
                    self._check_iterates(einsum, variable, node.path)
                    info, extents[variable] = _spread(node, axis, variable, extent(variable),
                                                      unit.axes[axis], unit.time_shared)
                    loops.append(info)
                    items.append(info)
                    if grid is not None and axis == grid.axis:
                        # "" names the grid's variables, "#" its (outermost) node
                        outer = grid_extents or {"": (), "#": node.path}
                        grid_extents = {**extents, "": outer[""] + (variable,),
                                        "#": outer["#"]}
            elif isinstance(node, Keep):
                for label in node.tensors:
                    items.append(self._keep(node, label, loops, extents, leaf))
        self.leaf_items[leaf.einsum] = items
        self._leaf_compute(leaf, einsum, loops, extents, grid_extents)

    def _check_iterates(self, einsum, variable: str, path: str) -> None:
        if variable not in einsum.variables:
            raise MappingError(f"{path}: loop over {variable!r} above Einsum {einsum.name}, which "
                               f"iterates only {', '.join(einsum.variables)} (a loop over a rank "
                               "an Einsum does not iterate would recompute it)")

    def _keep(self, node: Keep, label: str, loops, extents, leaf: LeafPath) -> KeepInfo:
        if not self.view.known_tensor(label):
            raise MappingError(f"{node.path}: unknown tensor {label!r}; the cascade has "
                               f"{', '.join(self.cascade.input_names + tuple(self.cascade.producers))}")
        tensor = self.view.source(label)
        key = (node.path, tensor)
        info = self.keeps.get(key)
        if info is None:
            level = self.hardware.level(node.level, self.units_below[node.path], node.path)
            info = KeepInfo(tensor, label, level, node.path, tuple(loops), dict(extents))
            self.keeps[key] = info
        info.leaves.append(leaf.einsum)
        return info

    def _link_keeps(self) -> None:
        """Each keep's parent (the next keep of its tensor above it) and whether the
        tensor's producer runs below it; the tile from the tensor's accesses below."""
        for items in self.leaf_items.values():
            last: dict[str, KeepInfo] = {}
            for item in items:
                if isinstance(item, KeepInfo):
                    if item.tensor in last and item.parent is None:
                        item.parent = last[item.tensor]
                    last[item.tensor] = item
        for info in self.keeps.values():
            info.producing = info.tensor in info.leaves
            if info.producing:
                output = self.relevant(info.tensor,
                                       self.view.einsums[info.tensor].write.variables)
                shared = [l for l in info.loops if l.spatial and l.variable not in output]
                above = len(info.parent.loops) if info.parent is not None else None
                if shared and above is not None and all(l in info.loops[above:] for l in shared):
                    # each position drains its partial result; they meet at the parent keep
                    info.partials = sympy.Mul(*(l.trips * l.fanout for l in shared))
                elif shared:
                    raise MappingError(
                        f"{info.path}: keeps {info.label} below spatial node {shared[0].path}, "
                        f"whose {shared[0].variable} does not index {info.label}: partial results"
                        f" across its positions would have no place to meet; keep "
                        f"{info.label} above that spatial node (reduced in the network), or "
                        f"at a level above it too (each position's partial drains there)")
            accesses = self._accesses_below(info)
            if not accesses:
                raise MappingError(f"{info.path}: keeps {info.label}, but no Einsum below reads "
                                   "or writes it")
            info.tile = self._tile(accesses[0], info.extents)
            if info.parent is None and not info.producing and not self.view.is_input(info.tensor):
                producer = self.cascade.producers[info.tensor]
                raise MappingError(
                    f"{info.path}: intermediate {info.label} is kept here but produced by "
                    f"{producer.name} outside this subtree, with no keep of it above both: give "
                    f"it a home at a common ancestor of {producer.name} and its readers")

    def _accesses_below(self, info: KeepInfo) -> list[TensorAccess]:
        found = []
        for name in info.leaves:
            einsum = self.view.einsums[name]
            if einsum.name == info.tensor:
                found.append(einsum.write)
            found += [a for a in einsum.reads if a.tensor == info.tensor]
        return found

    def _tile(self, access: TensorAccess, extents: dict[str, sympy.Expr]) -> sympy.Expr:
        carried = self.view.carried_axis(access.tensor)
        words = sympy.Integer(1)
        for position, axis in enumerate(access.axes):
            if position == carried or not axis.terms:
                continue
            words *= sum((sympy.Abs(c) * (extents.get(v, size(v)) - 1) for c, v in axis.terms),
                         sympy.Integer(0)) + 1
        return words

    def density(self, einsum: str) -> sympy.Expr:
        source = self.masks.get(einsum)
        if source is None:
            return sympy.Integer(1)
        if source not in self.counts.densities:
            self.counts.densities += (source,)
        return density_symbol(source)

    def relevant(self, tensor: str, variables: frozenset[str]) -> frozenset[str]:
        carried = self.view.carried_variable(tensor)
        return variables - {carried} if carried else variables

    # ------------------------------------------------------------------------------ counting

    def _leaf_compute(self, leaf: LeafPath, einsum, loops, extents, grid_extents=None) -> None:
        """Cycles and busy PE-cycles of a leaf: its steps × the busiest functional unit's
        actions per point.  A leaf on several units (``on: [exp_unit, fp32]``) splits its points
        so they finish together: its rate is the sum of theirs."""
        counts = self.counts
        members = [self.hardware.units[name] for name in leaf.unit.split("+")]
        unit = members[0]
        points = sympy.Mul(*(size(v) for v in einsum.variables))
        steps = sympy.Mul(*(l.trips for l in loops)) \
            * sympy.Mul(*(extents.get(v, size(v)) for v in einsum.variables))
        density = self.density(einsum.name)
        ops = op_counts(einsum.einsum)
        counts.ops[einsum.name] = {op: c * density for op, c in ops.items()}
        each = [self._per_point(leaf, einsum, member, ops, points) for member in members]
        rate = sympy.Add(*(1 / cost for cost, _ in each))
        shares = {m.name: (1 / cost) / rate for m, (cost, _) in zip(members, each)}
        for member, (_, actions) in zip(members, each):
            for action, count in actions.items():
                share = shares[member.name] if len(members) > 1 else 1
                counts.add(counts.actions, (member.name, action), count * density * share)
        per_point = each[0][0] if len(members) == 1 else 1 / rate
        if len(members) > 1:
            counts.shares[einsum.name] = shares
        tiles = self._tile_mask(einsum, loops, extents, grid_extents)
        if tiles is not None:  # a GPU kernel skips empty tiles and masks partial ones whole
            visited, partial = tiles  # partial: per point of the mask's own variables
            per_point = per_point * visited + partial * self.hardware.mask_cycles_per_operation
            density = sympy.Integer(1)
        counts.cycles[einsum.name] = steps * per_point * density
        counts.busy[einsum.name] = points * per_point * density / unit.pes
        counts.units[einsum.name] = leaf.unit

    @staticmethod
    def _per_point(leaf: LeafPath, einsum, unit, ops, points):
        """(cycles per point on ``unit``: its busiest functional unit, actions by name)."""
        per_functional: dict[str, sympy.Expr] = {}
        actions: dict[str, sympy.Expr] = {}
        for op, count in ops.items():
            try:
                needed = unit.actions_for(op)
            except MappingError as error:
                raise MappingError(f"{leaf.nodes[-1].path}: Einsum {einsum.name}: {error}") \
                    from None
            for action, times in needed.items():
                actions[action] = actions.get(action, 0) + count * times
                functional = unit.functional_unit.get(action, action)
                per_functional[functional] = per_functional.get(functional, 0) \
                    + sympy.cancel(count * times / points) / unit.rates.get(functional, 1)
        cost = _max(*per_functional.values()) if per_functional else sympy.Integer(0)
        return cost, actions

    def _count(self) -> None:
        counts = self.counts
        for name, items in self.leaf_items.items():
            einsum = self.view.einsums[name]
            # masks remove operations, not data movement: tiles move whole (see the doc)
            points = sympy.Mul(*(size(v) for v in einsum.variables))
            owner = next(l for l in self.leaves if l.einsum == name).nodes[-1].path
            for access in einsum.reads:
                keep, below = self._innermost(items, access.tensor, name)
                multicast = self._multicast(below, self.relevant(access.tensor, access.variables))
                self._access("reads", keep.level.name, access.tensor, points / multicast, owner)
            keep, below = self._innermost(items, name, name)
            reduction = self._multicast(below, self.relevant(name, einsum.write.variables))
            updates = points / reduction
            self._access("writes", keep.level.name, name, updates, owner)
            if einsum.reduced:
                output = self.relevant(name, einsum.write.variables)
                first = keep.tile * self._distinct(keep.loops, output)
                self._access("reads", keep.level.name, name, updates - first, owner)
        for info in self.keeps.values():
            self._count_keep(info)
        counts.occupancy = self._occupancy(self.mapping.root)
        counts.compute_cycles = self._time(self.mapping.root, "tree", sympy.Integer(1), {}, False)
        counts.kernels = []
        counts.latency_s = self._time(self.mapping.root, "tree", sympy.Integer(1), {}, True)
        for info in self.keeps.values():
            counts.tiles[(info.path, info.level.name, info.label)] = info.tile

    def _access(self, kind: str, level: str, tensor: str, amount, owner: str) -> None:
        """Count ``amount`` words read or written at ``level``, moved by node ``owner`` (of
        a level spread over devices, only the part not at home)."""
        amount = amount * self.hardware.levels[level].remote_fraction
        self.counts.add(getattr(self.counts, kind), (level, tensor), amount)
        self.counts.add(self.counts.owned, (owner, level), amount)

    def _innermost(self, items, tensor: str, einsum: str):
        """The innermost keep of ``tensor`` on a leaf's path and the loops below it."""
        position = max((k for k, item in enumerate(items)
                        if isinstance(item, KeepInfo) and item.tensor == tensor), default=None)
        if position is None:
            run = next(l for l in self.leaves if l.einsum == einsum).nodes[-1]
            raise MappingError(f"{run.path}: Einsum {einsum} accesses {tensor}, which has no keep "
                               "on its path; keep it at some level above this leaf")
        below = [item for item in items[position + 1:] if isinstance(item, LoopInfo)]
        return items[position], below

    @staticmethod
    def _multicast(loops, relevant: frozenset[str]) -> sympy.Expr:
        return sympy.Mul(*(l.fanout for l in loops if l.spatial and l.variable not in relevant))

    @staticmethod
    def _changes(loops, relevant: frozenset[str]) -> sympy.Expr:
        """How many times a tile indexed by ``relevant`` variables is (re)loaded under
        ``loops`` (outer to inner) with one tile of memory per instance: a relevant loop
        changes it at every trip (a relevant spatial loop: one tile per position); an irrelevant
        temporal loop only when some relevant temporal loop inside it has more than one trip
        (stationarity); an irrelevant spatial loop never (its positions share the tile:
        multicast or spatial reduction)."""
        factors = []
        for position, loop in enumerate(loops):
            if loop.variable in relevant:
                factors.append(loop.trips * loop.fanout)
            elif not loop.spatial or loop.trips != 1:  # a tiled spatial node's waves are temporal
                inner = [l.trips for l in loops[position + 1:]
                         if l.variable in relevant and not l.spatial]
                if inner:
                    factors.append(sympy.Piecewise(
                        (loop.trips, sympy.Or(*(x > 1 for x in inner))), (1, True)))
        return sympy.Mul(*factors)

    @staticmethod
    def _distinct(loops, relevant: frozenset[str]) -> sympy.Expr:
        """Distinct tiles under ``loops``: the product over the relevant ones."""
        return sympy.Mul(*(l.trips * l.fanout for l in loops if l.variable in relevant))

    def _count_keep(self, info: KeepInfo) -> None:
        if info.parent is None:
            return  # the backing store: inputs start here, results end here
        parent = info.parent
        variables = frozenset().union(*(a.variables for a in self._accesses_below(info)))
        relevant = self.relevant(info.tensor, variables)
        if parent.level.message_latency_s:  # each move of a tile waits one message latency
            changed = self.relevant(info.tensor, self.view.einsums[info.tensor].write.variables) \
                if info.producing else relevant
            per_instance = [replace(l, fanout=sympy.Integer(1)) for l in info.loops]
            moves = self._changes(per_instance, changed) * parent.level.remote_fraction
            # the tiles one keep node fills move together, and those it drains (later) too
            key = (info.path, parent.level.name, info.producing)
            self.counts.messages[key] = _max(self.counts.messages.get(key, 0), moves)
        if info.producing:
            einsum = self.view.einsums[info.tensor]
            output = self.relevant(info.tensor, einsum.write.variables)
            drains = info.tile * self._changes(info.loops, output) * info.partials
            refills = drains - info.tile * self._distinct(info.loops, output)
            self._access("reads", info.level.name, info.tensor, drains, info.path)
            self._access("writes", parent.level.name, info.tensor, drains, info.path)
            if einsum.reduced:
                self._access("reads", parent.level.name, info.tensor, refills, info.path)
                self._access("writes", info.level.name, info.tensor, refills, info.path)
            return
        # one tile per instance; positions of an irrelevant spatial loop share it (multicast),
        # but each holds its own copy, and a parent below such a loop is replicated too
        fills = info.tile * self._changes(info.loops, relevant) * self._skipped_fills(info)
        parent_copies = self._multicast(info.loops[:len(parent.loops)] if
                                        self.hardware.multicast else info.loops, relevant)
        self._access("reads", parent.level.name, info.tensor, fills * parent_copies,
                     info.path)
        self._access("writes", info.level.name, info.tensor,
                     fills * self._multicast(info.loops, relevant), info.path)

    def _occupancy(self, chain: Chain) -> dict[str, sympy.Expr]:
        """Peak words live per level below a chain (sequence: max, pipeline: sum)."""
        own: dict[str, sympy.Expr] = {}
        for node in chain:
            if isinstance(node, Keep):
                for group in node.groups:
                    infos = [self.keeps.get((node.path, self.view.source(label)))
                             for label in group]
                    infos = [info for info in infos if info is not None]
                    if not infos:
                        continue
                    words = _max(*(self._words_held(info) for info in infos)) * node.buffers
                    level = infos[0].level.name
                    own[level] = own.get(level, 0) + words
            elif isinstance(node, Branch):
                parts = [self._occupancy(child) for child in node.children]
                for level in {k for part in parts for k in part}:
                    values = [part.get(level, sympy.Integer(0)) for part in parts]
                    combined = _max(*values) if node.kind == "sequence" else sympy.Add(*values)
                    own[level] = own.get(level, 0) + combined
        return own

    def _words_held(self, info: KeepInfo) -> sympy.Expr:
        """Words a keep occupies at its level: per PE for a register file (a tile kept above
        the unit's spatial nodes is spread over its PEs), in all for a shared level."""
        if not info.level.instanced:
            return info.tile * sympy.Mul(*(l.fanout for l in info.loops))
        if info.level.per_instance:  # warpgroups of one SM share its registers
            return info.tile * sympy.Mul(*(l.fanout for l in info.loops if l.time_shared))
        if any(l.spatial for l in info.loops):
            return info.tile
        return sympy.ceiling(info.tile / self.hardware.units[info.level.per_unit].pes)

    def _waits(self, owner: str, level) -> bool:
        """Whether a transfer at ``level`` moved by node ``owner`` adds to its subtree's time:
        a network transfer to or from a single-buffered keep (not prefetched)."""
        return level.network and self.keep_buffers.get(owner) == 1

    def _serial_seconds(self, owner: str) -> sympy.Expr:
        """Time of the transfers keep node ``owner`` waits for: their bytes over each network
        level's bandwidth, plus a message latency per move."""
        total = sympy.Integer(0)
        for level in self.hardware.levels.values():
            if not self._waits(owner, level):
                continue
            words = self.counts.owned.get((owner, level.name), 0)
            total += words * self.hardware.word_bytes / level.bandwidth_bytes_per_s
            total += sympy.Add(*(n for (path, name, _), n in self.counts.messages.items()
                                 if path == owner and name == level.name)) \
                * level.message_latency_s
        return total

    def _memory_seconds(self, within) -> sympy.Expr:
        """Time the bandwidth-limited levels need for the traffic moved within a subtree
        (``within``: its path prefix, or a test of the owning node's path), overlapped with
        its work (transfers a keep waits for are added where the keep is: ``_time``)."""
        if isinstance(within, str):
            prefix = within
            within = lambda owner: owner == prefix or owner.startswith(prefix + "[")  # noqa
        times = [sympy.Integer(0)]
        for level in self.hardware.levels.values():
            if level.bandwidth_bytes_per_s is None:
                continue
            words = sympy.Add(*(amount for (owner, name), amount in self.counts.owned.items()
                                if name == level.name and within(owner)
                                and not self._waits(owner, level)))
            times.append(words * self.hardware.word_bytes / level.bandwidth_bytes_per_s)
        if self.hardware.grid is not None:  # a GPU kernel moves every copy's data
            return _max(*times) * COPIES
        return _max(*times)

    def _time(self, chain: Chain, prefix: str, iterations: sympy.Expr, extents: dict,
              memory_bound: bool) -> sympy.Expr:
        """A subtree's duration per (batch, head).  Compute alone, in cycles; or, with
        ``memory_bound``, in seconds, each subtree lasting as long as its compute or its own
        memory traffic, whichever is longer (they overlap), plus the network transfers its
        single-buffered keeps wait for.  ``sequence`` children add; ``pipeline`` children
        overlap (slowest branch plus one iteration of the others)."""
        extents = dict(extents)
        memory = self._memory_seconds(prefix) if memory_bound else sympy.Integer(0)
        clock = self.hardware.clock_hz if memory_bound else sympy.Integer(1)
        waited = sympy.Integer(0)
        result = memory
        for position, node in enumerate(chain):
            if isinstance(node, Keep) and memory_bound:
                waited += self._serial_seconds(node.path)
            if isinstance(node, Loop):
                before = extents.get(node.variable, size(node.variable))
                iterations = iterations * sympy.ceiling(before / node.tile)
                extents[node.variable] = _min(node.tile, before)
            elif isinstance(node, Spatial):
                rest = chain[position + 1:]
                spread = self._spread_in_time(node, extents)
                waves = sympy.Mul(*(info.trips for info in spread))
                if self.is_grid(node):  # nested grid nodes: one grid over several variables
                    end = self.grid_end(chain, position)
                    for inner in chain[position + 1:end]:
                        spread += self._spread_in_time(inner, extents)
                    kernel = self._kernel_cycles(node, chain[end:], iterations, extents, spread)
                    result = _max(kernel / clock, memory)
                    break
                iterations = iterations * waves
                shared = [info.fanout for info in spread if info.time_shared]
                if shared:  # positions take turns on one PE: its load, or one chain
                    chain_time = self._time(rest, prefix, iterations, extents, False)
                    load = sympy.Mul(*shared) * self._busiest_unit_cycles(node)
                    result = _max(_max(chain_time, load) / clock, memory)
                    break
            elif isinstance(node, Run):
                compute = sympy.Add(*(self.counts.cycles.get(e, 0) for e in node.einsums)) / clock
                result = _max(compute, memory)
                break
            elif isinstance(node, Branch):
                parts = [self._time(child, f"{node.path}.{node.kind}[{k}]", iterations, extents,
                                    memory_bound) for k, child in enumerate(node.children)]
                if memory_bound:  # each branch's own time, for reports that split a step
                    for k, part in enumerate(parts):
                        self.counts.branches[f"{node.path}.{node.kind}[{k}]"] = part
                if node.kind == "sequence":
                    result = _max(sympy.Add(*parts), memory)
                    break
                self._check_disjoint_units(node)
                slowest = _max(*parts)
                result = _max(slowest + (sympy.Add(*parts) - slowest) / iterations, memory)
                break
        return result + waited

    def is_grid(self, node) -> bool:
        """A spatial node over a GPU's grid axis (it launches CTAs)."""
        grid = self.hardware.grid
        return isinstance(node, Spatial) and grid is not None and \
            any(axis == grid.axis for axis, _ in node.axes)

    def grid_end(self, chain: Chain, position: int) -> int:
        """The end of the run of grid nodes starting at ``position``: directly nested grid
        nodes make one kernel whose CTAs tile several variables (a multi-dimensional Q tile)."""
        end = position + 1
        while end < len(chain) and self.is_grid(chain[end]):
            end += 1
        return end

    def _spread_in_time(self, node: Spatial, extents: dict) -> list[LoopInfo]:
        """The loops a spatial node stands for (``extents`` updated to one position's)."""
        found = []
        for axis, variable in node.axes:
            units = [self.hardware.units[u] for u in self.units_below.get(node.path, ())
                     if axis in self.hardware.units[u].axes]
            if not units:
                continue
            info, extents[variable] = _spread(node, axis, variable,
                                              extents.get(variable, size(variable)),
                                              units[0].axes[axis], units[0].time_shared)
            found.append(info)
        return found

    def _check_disjoint_units(self, node: Branch) -> None:
        seen: dict[str, int] = {}
        for k, child in enumerate(node.children):
            for unit in self.units_below.get(child[0].path, set()):
                if unit in seen:
                    raise MappingError(f"{node.path}: pipeline branches {seen[unit]} and {k} both "
                                       f"run on {unit}; branches of a pipeline overlap only on "
                                       "different units (use a sequence)")
                seen[unit] = k
