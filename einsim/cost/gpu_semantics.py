"""GPU semantics on top of the derivation (DESIGN.md §7): a spatial node over the SMs is a
kernel's grid of CTAs in waves, resident CTAs per SM come from the tiles a CTA keeps, and
masks work per (Q tile, KV tile): empty tiles are skipped, partial ones masked element-wise.
"""

from __future__ import annotations

import sympy

from einsim.cost.masks import mask_operations
from einsim.cost.counts import (COPIES, KeepInfo, LoopInfo, _max, _min, size,
                                 tile_mask_symbols)
from einsim.cost.tree import Chain, Spatial, nodes
from einsim.errors import MappingError
from einsim.language import ir


class GridSemantics:
    """The GPU half of :class:`~einsim.cost.derivation.Derivation` (a mixin: it reads the
    derivation's cascade, hardware, leaves, masks and counts)."""

    def _check_grid(self) -> None:
        """On a GPU, every leaf runs inside exactly one kernel: one spatial node over the grid
        above it, or several directly nested ones (a grid over several variables)."""
        if self.hardware.grid is None:
            return
        for leaf in self.leaves:
            at = [k for k, n in enumerate(leaf.nodes) if self.is_grid(n)]
            if not at or at != list(range(at[0], at[0] + len(at))):
                raise MappingError(
                    f"{leaf.nodes[-1].path}: Einsum {leaf.einsum} runs "
                    f"{'outside any kernel' if not at else 'inside nested kernels'}: on "
                    f"{self.hardware.name} each leaf needs exactly one spatial node over "
                    f"{self.hardware.grid.axis} above it (the grid of CTAs), or several "
                    "directly nested ones")

    def _tile_mask(self, einsum, loops, extents, grid_extents) -> tuple | None:
        """On a GPU, (visited, partial) for a masked Einsum: the fractions of (Q tile, KV tile)
        pairs its kernel visits, and the masking operations per point of partial ones.  The
        Q tile is a CTA's share of the grid's variables, the KV tile the leaf's extent of the
        others."""
        if grid_extents is None:
            return None
        self.grid_extents[grid_extents["#"]] = grid_extents
        source = self.masks.get(einsum.name) or self._kernel_mask(grid_extents["#"], loops)
        if source is None:
            return None
        visited, partial = self._tile_symbols(source, grid_extents, extents, loops)
        condition = self.cascade.producers[source].condition
        variables = ir.condition_variables(condition)
        others = sympy.Mul(*(size(v) for v in einsum.variables if v not in variables))
        if source != einsum.name:
            return visited, sympy.Integer(0)
        return visited, partial * mask_operations(condition) / others

    def _tile_symbols(self, source: str, grid_extents: dict, extents: dict, loops):
        """(visited, partial) tile fractions of ``source``'s mask, for the kernel's Q tile and
        the KV tile of ``extents``; a loop over its keys with ``start: mask`` aligns the KV
        tiles to each Q tile's first attended key (dynamic KV tiling)."""
        variables = ir.condition_variables(self.cascade.producers[source].condition)
        query = set(grid_extents[""])
        dynamic = any(self.loop_starts.get(l.path) == "mask" for l in loops
                      if l.variable in variables and l.variable not in query)
        key = (source, tuple((v, grid_extents.get(v, size(v))) for v in variables if v in query),
               tuple((v, extents.get(v, size(v))) for v in variables if v not in query),
               dynamic)
        stem = next((k for k, v in self.counts.tile_masks.items() if v == key), None)
        if stem is None:
            stem = f"{source}_{len(self.counts.tile_masks)}"
            self.counts.tile_masks[stem] = key
        return tile_mask_symbols(stem)[:2]

    def _skipped_fills(self, info: KeepInfo) -> sympy.Expr:
        """On a GPU, the fraction of a keep's fills a block-sparse kernel makes: tiles loaded
        under a loop walking a mask's keys come only for visited (Q tile, KV tile) pairs."""
        kernel = next((l.path for l in info.loops if l.path in self.grid_extents), None)
        if kernel is None:
            return sympy.Integer(1)
        source = self._kernel_mask(kernel, info.loops)
        if source is None:
            return sympy.Integer(1)
        return self._tile_symbols(source, self.grid_extents[kernel], info.extents,
                                  info.loops)[0]

    def _kernel_mask(self, kernel: str, loops) -> str | None:
        """The mask of a kernel's Einsum whose key variables a temporal loop above this leaf
        walks: the kernel skips that loop's empty tiles for every leaf below it."""
        walked = {l.variable for l in loops if not l.spatial}
        for leaf in self.leaves:
            source = self.masks.get(leaf.einsum)
            if source is None or not any(n.path == kernel for n in leaf.nodes):
                continue
            if walked & set(ir.condition_variables(self.cascade.producers[source].condition)):
                return source
        return None

    def _longest(self, work: sympy.Expr) -> sympy.Expr:
        """A chunk's work for the busiest Q tile: every tile mask's visited fraction replaced
        by the busiest Q tile's (its partial tiles in the same proportion).  Rounds of the
        mean chunk plus this excess once is the list-scheduling bound on unequal CTAs."""
        swap = {}
        for stem in self.counts.tile_masks:
            visited, partial, worst = tile_mask_symbols(stem)
            # (no visited tile: no partial one either, and no 0/0)
            swap[visited] = worst
            swap[partial] = partial * worst / _max(visited, sympy.Float(1e-300))
        if not swap:
            return work
        with sympy.evaluate(False):  # a substitution: re-simplifying every Max costs seconds
            return work.xreplace(swap)

    def _busiest_unit_cycles(self, node: Spatial) -> sympy.Expr:
        """Cycles of the busiest unit over the leaves below ``node``, per position."""
        per_unit: dict[str, sympy.Expr] = {}
        for leaf in self.leaves:
            if node in leaf.nodes and leaf.einsum in self.counts.cycles:
                for name in leaf.unit.split("+"):
                    per_unit[name] = per_unit.get(name, 0) + self.counts.cycles[leaf.einsum]
        return _max(*per_unit.values()) if per_unit else sympy.Integer(0)

    def _kernel_cycles(self, node: Spatial, rest: Chain, iterations: sympy.Expr, extents: dict,
                       spread: list[LoopInfo]) -> sympy.Expr:
        """A GPU kernel: CTAs (``copies`` × the grid's chunks) in waves of SMs × resident CTAs
        per SM; a wave of k resident CTAs shares the SM's units, so lasts k CTA times.
        Resident CTAs are limited by the per-SM levels the CTA's tiles occupy."""
        grid = self.hardware.grid
        if node.tile is None:
            raise MappingError(f"{node.path}: a spatial node over {grid.axis} launches CTAs; "
                               "give it a tile (the elements of its variable per CTA)")
        waves = sympy.Mul(*(info.trips for info in spread))
        chunks = sympy.Mul(*(info.trips * info.fanout for info in spread))
        compute = self._time(rest, node.path, iterations * waves, extents, False) \
            / (iterations * waves)
        # a CTA draws its SM's share of each level's bandwidth (few CTAs: idle bandwidth)
        below = {n.path for n in nodes(rest)}
        memory = self._memory_seconds(lambda owner: owner in below) \
            / (COPIES * chunks * iterations) * grid.instances * self.hardware.clock_hz
        work = _max(compute, memory)
        # CTAs are unequal under a mask: the longest (the busiest Q tile's) ends the kernel
        excess = self._longest(work) - work
        resident = [sympy.Integer(grid.max_resident)]
        for level, words in self._occupancy(rest).items():
            capacity = self.hardware.levels[level].capacity_words
            if self.hardware.levels[level].per_instance and capacity is not None:
                resident.append(sympy.floor(capacity / _max(words, sympy.Integer(1))))
        slots = _max(_min(*resident), sympy.Integer(1))
        ctas = COPIES * chunks
        # full waves of SMs x slots CTAs share each SM; the tail spreads over the SMs
        full = sympy.floor(ctas / (grid.instances * slots))
        tail = sympy.ceiling((ctas - full * grid.instances * slots) / grid.instances)
        rounds = full * slots + tail
        if node.persistent:  # one CTA per slot walks its share of the chunks: one prologue
            cycles = rounds * work + slots * grid.overhead_cycles + excess
            launched = _min(ctas, grid.instances * slots)
            per_cta = ctas / launched * work + grid.overhead_cycles
        else:
            cycles = rounds * (work + grid.overhead_cycles) + excess
            launched, per_cta = ctas, work + grid.overhead_cycles
        kernel_waves = sympy.ceiling(ctas / (grid.instances * slots))
        self.counts.kernels.append({"path": node.path, "ctas": launched * iterations,
                                    "waves": kernel_waves * iterations,
                                    "chunks": ctas * iterations, "slots": slots,
                                    "chunk_cycles": work, "cta_cycles": per_cta,
                                    "cycles": iterations * cycles})
        return iterations * cycles
