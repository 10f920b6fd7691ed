"""One iteration of a loop tree, laid out on its units: the schedule the engine's latency
rules imply (DESIGN.md §6-§7), for timelines, Gantt charts and trace files.

The engine gives each Einsum its cycles on its unit (over every iteration of the loops above
it) and combines them by the tree: ``sequence`` children add, ``pipeline`` children overlap
(the slowest branch, plus one iteration of the others as fill and drain), a time-shared
spatial node (a GPU's ``warpgroups``) lasts the longer of one position's chain and W × its
busiest unit.  :func:`schedules` walks the same tree with the same rules and places every
leaf in time for **one iteration of a scope loop**:

* the scope is, by default, the innermost loop enclosing the tree's first ``pipeline`` or
  warpgroup node (the tile loop a pipeline is staged across); with neither, the deepest loop
  enclosing two or more leaves; with none, the whole tree (or the whole CTA).  On a GPU there
  is one schedule per kernel (a spatial node over the SMs), and the scope lies inside its CTA;
* durations are the leaf cycles divided by the iterations of every loop down to the scope,
  so one drawn iteration is the engine's time of the scope's body divided by its iterations;
* ``sequence``: children one after another;
* ``pipeline``: branches start together and overlap.  Each Einsum works on the tile
  (iteration) ``stage`` behind the drawn one, the fewest that let everything it reads finish
  before it starts (FLAT: QK of tile t beside the softmax of t-1, then AV of t-2); where the
  data flow allows no such staging, branch k works on tile k behind.  The engine charges the
  other branches' one iteration of fill and drain once over all iterations, so each iteration
  carries its share: an interval of kind ``"fill"`` after the slowest branch;
* time-shared positions (W warpgroups): the iteration lasts P = max(one position's chain,
  W × the busiest unit) and position w starts at w·P/W; what runs past P wraps to the start as
  the previous iteration's work (``stage`` + 1), a modulo schedule.  The engine bounds only the
  busiest unit, so positions may overlap on another unit: the schedule shows that, it does not
  resolve it;
* loops inside the scope are folded: an interval below them covers all their iterations
  (``repeat`` says how many).

The schedule's ``span`` is therefore exactly the engine's compute time of one iteration
(``tests/test_timelines.py`` checks it against the per-leaf cycles of the report and the
engine's totals).  Memory time is not laid out: on a GPU the kernel facts say how long a CTA
takes (``chunk_cycles``, the longer of its compute and its memory time), and
:attr:`Schedule.memory_bound` whether memory set it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping

import sympy

from einsim.cost.counts import _min, size
from einsim.cost.tree import Branch, Chain, Keep, Loop, MappingTree, Run, Spatial, leaves
from einsim.errors import EinsimError, MappingError

FILL = "fill and drain"
"""The Einsum name of an iteration's share of a pipeline's fill and drain."""


@dataclass(frozen=True)
class Interval:
    """One Einsum (or a pipeline's fill share) on one unit, in cycles from the start of the
    drawn iteration."""

    unit: str              # "" for a fill share (no unit of its own)
    einsum: str
    start: float
    end: float
    stage: int = 0         # iterations behind the drawn one (a later pipeline stage, a wrap)
    position: int = 0      # position of a time-shared spatial node (a warpgroup)
    repeat: float = 1.0    # iterations of loops inside the scope this interval covers
    kind: str = "compute"  # or "fill"
    path: str = ""         # the run (or pipeline) node

    @property
    def cycles(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Schedule:
    """One iteration of a scope loop of a mapping (per CTA on a GPU, per (batch, head) block
    on a spatial array), and what surrounds it."""

    mapping: str
    hardware: str
    kind: str                  # the hardware kind: spatial_array, gpu_sm, device_group
    clock_hz: float
    scope: str                 # path of the scope loop (the kernel's grid node or "tree": none)
    variable: str | None       # its loop variable
    trips: float               # iterations of the scope per CTA (GPU) or per (batch, head)
    span: float                # cycles of one iteration: the engine's time of the scope's body
    intervals: tuple[Interval, ...]
    total: float               # compute cycles per CTA (GPU) or per (batch, head) (array)
    outside: dict[str, float] = field(default_factory=dict)  # Einsums outside the scope: cycles
    positions: int = 1         # positions of time-shared nodes (warpgroups)
    kernel: dict | None = None  # GPU: the kernel's facts (see :func:`grid_waves`)
    copies: float = 1.0        # batch × heads

    def lane(self, interval: Interval) -> str:
        """The row an interval is drawn on: its unit (per warpgroup when positions share the
        SM), or ``fill/drain``."""
        unit = "fill/drain" if interval.kind == "fill" else interval.unit
        return f"{unit} wg{interval.position}" if self.positions > 1 else unit

    @property
    def lanes(self) -> tuple[str, ...]:
        """Rows in tree order (the fill lane last)."""
        seen = dict.fromkeys(self.lane(i) for i in self.intervals if i.kind == "compute")
        seen.update(dict.fromkeys(self.lane(i) for i in self.intervals if i.kind == "fill"))
        return tuple(seen)

    @property
    def memory_bound(self) -> bool:
        """On a GPU, whether a CTA lasts longer than its units are busy (memory sets it)."""
        return bool(self.kernel) and self.kernel["chunk_cycles"] > self.total * (1 + 1e-9)

    @property
    def fill(self) -> float:
        return sum(i.cycles for i in self.intervals if i.kind == "fill")

    def busy(self) -> dict[str, float]:
        """Cycles each unit is busy in the drawn iteration."""
        table: dict[str, float] = {}
        for i in self.intervals:
            if i.kind == "compute":
                table[i.unit] = table.get(i.unit, 0.0) + i.cycles
        return table

    def title(self) -> str:
        where = f"loop {self.variable}" if self.variable else \
            ("a CTA" if self.kernel else "the whole tree")
        per = "per CTA" if self.kernel else "per (batch, head)"
        return (f"{self.mapping} on {self.hardware}: one iteration of {where} "
                f"({self.span:,.0f} cycles, {self.trips:,.6g} {per})")


# ------------------------------------------------------------------------------ building


def schedules(engine, values: Mapping[str, object], copies: float = 1.0,
              at: str | None = None) -> list[Schedule]:
    """The schedule of one scope iteration of a compiled mapping at one point: one per GPU
    kernel, one for a spatial array.

    Parameters
    ----------
    engine : CompiledMapping
        From :func:`einsim.cost.evaluate.compile_for`.
    values : mapping
        ``engine.values(problem, parameters)`` (scalars).
    copies : float
        Batch × heads (the GPU kernel facts schedule every copy's CTAs).
    at : str, optional
        The path of the loop to draw one iteration of (``tree[5].sequence[0][0]``); ``"tree"``
        (or a kernel's grid node) draws the whole tree (CTA).  Default: see the module.
    """
    return _Walker(engine, values, copies).schedules(at)


def schedules_for(mapping: str | MappingTree, hardware: str | None = None,
                  workload: str = "bert", seq_len: int | str | None = None,
                  parameters: Mapping[str, object] | None = None, cascade: str | None = None,
                  objective: str = "latency", at: str | None = None) -> list[Schedule]:
    """Evaluate a mapping as ``einsim evaluate`` does (free parameters searched) and schedule
    its best point."""
    from einsim.cost.evaluate import best_concrete, problem_of
    from einsim.cost.tree import load_mapping_tree
    from einsim.workloads import load_workload

    tree = load_mapping_tree(mapping) if isinstance(mapping, str) else mapping
    problem = problem_of(load_workload(workload, seq_len))
    found, concrete = best_concrete(tree, problem, hardware, parameters, objective, cascade,
                                    pareto=False)
    return _of_report(found.best, concrete, problem, hardware, parameters, cascade, at)


def schedules_of(report, mapping: str | MappingTree | None = None,
                 workload: str | None = None, hardware: str | None = None,
                 parameters: Mapping[str, object] | None = None, cascade: str | None = None,
                 at: str | None = None) -> list[Schedule]:
    """The schedules of an evaluated :class:`~einsim.cost.report.Report`, rebuilt from its
    tree (``mapping``: a name, file or tree; default the report's mapping name), workload,
    length and chosen parameters.  ``parameters``: the hardware overrides it was evaluated
    with (``pe_dim``...); ``cascade``: the cascade it was evaluated with, if not the tree's."""
    from einsim.cost.evaluate import problem_of
    from einsim.cost.tree import load_mapping_tree
    from einsim.workloads import load_workload

    tree = mapping if isinstance(mapping, MappingTree) else \
        load_mapping_tree(mapping or report.mapping)
    if tree.structural:
        tree = tree.concrete({n: str(report.parameters[n]) for n in tree.structural})
    problem = problem_of(load_workload(workload or report.workload, report.seq_len))
    return _of_report(report, tree, problem, hardware or report.hardware, parameters,
                      cascade, at)


def _of_report(report, tree: MappingTree, problem, hardware, parameters, cascade, at):
    from einsim.cost.evaluate import SYMBOLIC_FIELDS, compile_for, split_tree_parameters

    overrides = {k: v for k, v in dict(parameters or {}).items()  # the hardware's, by name
                 if k in SYMBOLIC_FIELDS or "." in k}
    _, symbolic, baked = split_tree_parameters(tree, overrides)
    engine, _ = compile_for(tree, cascade, hardware, baked)
    chosen = {k: v for k, v in report.parameters.items() if k in tree.parameters}
    values = engine.values(problem, chosen, symbolic)
    raw = engine.raw(values, problem.copies)
    for einsum in report.einsums:  # the same point, or the schedule would be another one's
        key = ("cycles", einsum.name)
        if key in raw and not math.isclose(float(raw[key]) * problem.copies, einsum.cycles,
                                           rel_tol=1e-6, abs_tol=1e-9):
            raise MappingError(
                f"report of {report.mapping}: rebuilding its point gives {einsum.name} "
                f"{float(raw[key]) * problem.copies:.6g} cycles, the report {einsum.cycles:.6g}"
                "; pass the workload, hardware overrides (parameters) and cascade it was "
                "evaluated with")
    return schedules(engine, values, problem.copies, at)


# ------------------------------------------------------------------------------ the walk


def _preorder(chain: Chain, above: tuple = ()):
    """(node, its ancestors outer to inner, the nodes after it in its chain)."""
    for position, node in enumerate(chain):
        yield node, above, chain[position + 1:]
        if isinstance(node, Branch):
            for child in node.children:
                yield from _preorder(child, above + (node,))
        above = above + (node,)


class _Walker:
    def __init__(self, engine, values, copies):
        self.engine, self.derivation = engine, engine.derivation
        self.hardware, self.mapping = engine.hardware, engine.mapping
        self.values, self.copies = values, float(copies)
        self.raw = engine.raw(values, copies)
        self.cycles = {name: float(self.raw[("cycles", name)]) for name in engine.counts.cycles}
        self.clock = self.number(self.hardware.clock_hz)
        self.order = {e.name: k for k, e in enumerate(engine.cascade.einsums)}
        self.kernels = {k["path"]: n for n, k in enumerate(engine.counts.kernels)}
        self.positions = 1
        try:
            from einsim.analysis.graph import dependency_graph

            self.graph = dependency_graph(engine.cascade)
        except EinsimError:  # no data flow to stage by: stage by branch
            self.graph = None

    def number(self, expression) -> float:
        expression = sympy.sympify(expression)
        if expression.free_symbols:
            expression = expression.xreplace({s: sympy.sympify(self.values[str(s)])
                                              for s in expression.free_symbols})
        return float(expression)

    def time_shared(self, node) -> bool:
        if not isinstance(node, Spatial):
            return False
        units = [self.hardware.units[u]
                 for u in self.derivation.units_below.get(node.path, ())]
        return any(axis in u.time_shared for axis, _ in node.axes for u in units
                   if axis in u.axes)

    # ------------------------------------------------------------------------ kernels

    def schedules(self, at: str | None) -> list[Schedule]:
        if self.hardware.grid is None:
            return [self.build(self.mapping.root, 1.0, {}, None, at)]
        found: list[Schedule] = []
        self.find_kernels(self.mapping.root, 1.0, {}, found, at)
        return found

    def find_kernels(self, chain: Chain, iterations: float, extents: dict, found: list, at):
        extents = dict(extents)
        for position, node in enumerate(chain):
            if isinstance(node, Loop):
                iterations *= self.step(node, extents)
            elif isinstance(node, Spatial):
                spread = self.derivation._spread_in_time(node, extents)
                waves = math.prod(self.number(info.trips) for info in spread)
                if self.derivation.is_grid(node):
                    kernel = self.kernel_facts(node, iterations)
                    end = self.derivation.grid_end(chain, position)
                    for inner in chain[position + 1:end]:
                        waves *= math.prod(self.number(info.trips) for info in
                                           self.derivation._spread_in_time(inner, extents))
                    found.append(self.build(chain[end:], iterations * waves, extents, kernel,
                                            at))
                    return
                iterations *= waves
            elif isinstance(node, Branch):
                for child in node.children:
                    self.find_kernels(child, iterations, extents, found, at)

    def kernel_facts(self, node: Spatial, iterations: float) -> dict:
        number = self.kernels[node.path]
        facts = {name: float(value) for (kind, *key), value in self.raw.items()
                 if kind == "kernel" and key[0] == number for name in [key[1]]}
        grid = self.hardware.grid
        return {"index": number, "path": node.path, **facts, "sms": grid.instances,
                "overhead_cycles": float(grid.overhead_cycles), "persistent": node.persistent,
                "launches": iterations}

    def step(self, loop: Loop, extents: dict) -> float:
        before = extents.get(loop.variable, size(loop.variable))
        extents[loop.variable] = _min(loop.tile, before)
        return self.number(sympy.ceiling(before / loop.tile))

    # ------------------------------------------------------------------------ one schedule

    def build(self, chain: Chain, base: float, extents: dict, kernel: dict | None,
              at: str | None) -> Schedule:
        self.positions = 1
        _, total = self.walk(chain, base, extents, 1.0, base)
        self.positions = 1
        scope, above, body = self.scope(chain, kernel, at)
        names = [leaf.einsum for leaf in leaves(chain)]
        if scope is None:
            intervals, span = self.walk(chain, base, extents, 1.0, base)
            trips, inside, variable, path = 1.0, set(names), None, \
                (kernel["path"] if kernel else "tree")
        else:
            iterations, here = base, dict(extents)
            for node in above + (scope,):
                if isinstance(node, Loop):
                    iterations *= self.step(node, here)
                elif isinstance(node, Spatial):
                    if self.time_shared(node):
                        raise MappingError(f"{scope.path}: a schedule draws one iteration of a "
                                           f"loop above any warpgroup node; {node.path} is above "
                                           "it")
                    spread = self.derivation._spread_in_time(node, here)
                    iterations *= math.prod(self.number(info.trips) for info in spread)
            intervals, span = self.walk(body, iterations, here, 1.0, iterations)
            trips, variable, path = iterations / base, scope.variable, scope.path
            inside = {leaf.einsum for leaf in leaves(body)}
        outside = {name: self.cycles[name] / base for name in names
                   if name not in inside and name in self.cycles}
        return Schedule(self.mapping.name, self.hardware.name, self.hardware.kind, self.clock,
                        path, variable, trips, span, tuple(intervals), total, outside,
                        self.positions, kernel, self.copies)

    def scope(self, chain: Chain, kernel: dict | None, at: str | None):
        """(scope loop or None, its ancestors within ``chain``, its body)."""
        walked = list(_preorder(chain))
        if at is not None:
            if at in ("tree", kernel and kernel["path"]):
                return None, (), chain
            for node, above, rest in walked:
                if node.path == at:
                    if not isinstance(node, Loop):
                        raise MappingError(f"schedule at {at}: expected a loop node, got a "
                                           f"{type(node).__name__.lower()} node")
                    return node, above, rest
            loops = [n.path for n, _, _ in walked if isinstance(n, Loop)]
            raise MappingError(f"schedule at {at}: no such loop in mapping {self.mapping.name}"
                               + (f"{' (kernel ' + kernel['path'] + ')' if kernel else ''}; its"
                                  f" loops are {', '.join(loops)}" if loops else
                                  "; it has no loop here (use 'tree')"))
        for node, above, _ in walked:
            if (isinstance(node, Branch) and node.kind == "pipeline") or self.time_shared(node):
                loops = [k for k, n in enumerate(above) if isinstance(n, Loop)]
                if not loops:
                    return None, (), chain
                k = loops[-1]
                return above[k], above[:k], self.rest_of(walked, above[k])
        best = None
        for node, above, rest in walked:
            if isinstance(node, Loop) and len(leaves(rest)) >= 2 and \
                    (best is None or len(above) > len(best[1])):
                best = (node, above, rest)
        return best if best is not None else (None, (), chain)

    @staticmethod
    def rest_of(walked, target):
        return next(rest for node, _, rest in walked if node is target)

    def walk(self, chain: Chain, iterations: float, extents: dict, repeat: float,
             divisor: float) -> tuple[list[Interval], float]:
        """A chain's intervals (from 0) and its span, per ``divisor`` iterations: the mirror of
        the engine's compute time (``Derivation._time``) laid out in time."""
        extents = dict(extents)
        for position, node in enumerate(chain):
            if isinstance(node, Loop):
                trips = self.step(node, extents)
                iterations, repeat = iterations * trips, repeat * trips
            elif isinstance(node, Spatial):
                if self.derivation.is_grid(node):
                    raise MappingError(f"{node.path}: a kernel inside a kernel")
                spread = self.derivation._spread_in_time(node, extents)
                waves = math.prod(self.number(info.trips) for info in spread)
                iterations, repeat = iterations * waves, repeat * waves
                shared = [info.fanout for info in spread if info.time_shared]
                if shared:
                    count = int(round(math.prod(self.number(f) for f in shared)))
                    inner, span = self.walk(chain[position + 1:], iterations, extents, repeat,
                                            divisor)
                    period = max(span, count * self.busiest(node) / divisor)
                    self.positions = max(self.positions, count)
                    return _interleave(inner, count, period), period
            elif isinstance(node, Keep):
                continue
            elif isinstance(node, Run):
                out, cursor = [], 0.0
                for name in node.einsums:
                    cycles = self.cycles.get(name, 0.0) / divisor
                    if cycles <= 0:
                        continue
                    for unit in node.unit.split("+"):
                        out.append(Interval(unit, name, cursor, cursor + cycles, repeat=repeat,
                                            path=node.path))
                    cursor += cycles
                return out, cursor
            elif isinstance(node, Branch):
                parts = [self.walk(child, iterations, extents, repeat, divisor)
                         for child in node.children]
                if node.kind == "sequence":
                    out, cursor = [], 0.0
                    for intervals, span in parts:
                        out += _shifted(intervals, cursor)
                        cursor += span
                    return out, cursor
                spans = [span for _, span in parts]
                slowest = max(spans)
                fill = (sum(spans) - slowest) / iterations
                out = self.staged(node, parts)
                if fill > 0:
                    out.append(Interval("", FILL, slowest, slowest + fill, repeat=repeat,
                                        kind="fill", path=node.path))
                return out, slowest + fill
        return [], 0.0

    def staged(self, node: Branch, parts) -> list[Interval]:
        """The branches' intervals, side by side from the pipeline's start, each Einsum
        staged: the tile it works on, behind the drawn iteration, so that everything it reads
        is done before it starts (:meth:`lags`); where the data flow allows no such
        staging, branch k works on the tile k behind (ranked by earliest Einsum)."""
        intervals = [i for found, _ in parts for i in found]
        lag = self.lags(intervals)
        if lag is not None:
            return [replace(i, stage=i.stage + lag.get(i.einsum, 0)) for i in intervals]
        first = [min((self.order.get(leaf.einsum, math.inf) for leaf in leaves(child)),
                     default=math.inf) for child in node.children]
        ranked = sorted(range(len(first)), key=lambda k: (first[k], k))
        return [replace(i, stage=i.stage + ranked.index(k))
                for k, (found, _) in enumerate(parts) for i in found]

    def lags(self, intervals: list[Interval]) -> dict[str, int] | None:
        """The fewest tiles each Einsum of a pipeline must lag behind so its reads are done:

        * it reads ``p``'s element of its own tile: lag(e) >= lag(p), + 1 unless ``p`` ends
          before ``e`` starts in the drawn iteration;
        * it reads the previous step of a recurrence ``p``: lag(e) >= lag(p) - 1, + 1 unless
          ``p`` ends before ``e`` starts.

        (Iteration w runs tile w - lag of each Einsum.)  None when no lags satisfy them
        (longest paths by relaxation, as Bellman-Ford)."""
        if self.graph is None:
            return None
        window: dict[str, tuple[float, float]] = {}
        for i in intervals:
            if i.kind == "compute":
                start, end = window.get(i.einsum, (math.inf, -math.inf))
                window[i.einsum] = (min(start, i.start), max(end, i.end))
        tolerance = 1e-9 * max((end for _, end in window.values()), default=1.0)

        def late(p: str, e: str) -> int:
            return int(window[p][1] > window[e][0] + tolerance)

        rules = []  # (target, source, weight): lag[target] >= lag[source] + weight
        for e in window:
            for p in self.graph.predecessors(e):
                if p == e or p not in window:
                    continue
                carried = self.graph.edges[p, e]["loop_carried"]
                rules.append((e, p, late(p, e) - int(carried)))
        lag = dict.fromkeys(window, 0)
        for _ in range(len(window) + 1):
            changed = False
            for target, source, weight in rules:
                if lag[source] + weight > lag[target]:
                    lag[target], changed = lag[source] + weight, True
            if not changed:
                return lag
        return None

    def busiest(self, node: Spatial) -> float:
        """The busiest unit's cycles over the leaves below ``node`` (every iteration)."""
        per_unit: dict[str, float] = {}
        for leaf in self.derivation.leaves:
            if node in leaf.nodes and leaf.einsum in self.cycles:
                for name in leaf.unit.split("+"):
                    per_unit[name] = per_unit.get(name, 0.0) + self.cycles[leaf.einsum]
        return max(per_unit.values(), default=0.0)


def _shifted(intervals: list[Interval], offset: float) -> list[Interval]:
    return [replace(i, start=i.start + offset, end=i.end + offset) for i in intervals]


def _interleave(inner: list[Interval], count: int, period: float) -> list[Interval]:
    """``count`` positions of one chain, position w started at w·period/count; what runs past
    the period wraps to its start as the previous iteration's work."""
    out: list[Interval] = []
    tolerance = 1e-12 * period
    for w in range(count):
        offset = w * period / count
        for interval in inner:
            start, end = interval.start + offset, interval.end + offset
            moved = replace(interval, position=interval.position * count + w)
            if end <= period + tolerance:
                out.append(replace(moved, start=start, end=min(end, period)))
            elif start >= period - tolerance:
                out.append(replace(moved, start=max(start - period, 0.0), end=end - period,
                                   stage=interval.stage + 1))
            else:
                out.append(replace(moved, start=start, end=period))
                out.append(replace(moved, start=0.0, end=end - period,
                                   stage=interval.stage + 1))
    return out


# ------------------------------------------------------------------------------ the grid


def grid_waves(kernel: dict, clock_hz: float = 1.0) -> list[dict]:
    """The waves of a GPU kernel's CTAs, as the engine counts them (``_kernel_cycles``), run
    length encoded: ``first`` wave index, ``count`` waves alike, ``ctas`` per wave,
    ``capacity`` (SMs × resident CTAs per SM), ``start`` and ``cycles`` of each (seconds too,
    with ``clock_hz``).

    A full wave of k resident CTAs per SM shares each SM's units, so it lasts k CTA times; the
    tail's CTAs spread over the SMs.  A persistent grid is one wave: each of its CTAs walks an
    equal share of the chunks after one prologue.
    """
    sms, slots = int(kernel["sms"]), int(round(kernel["slots"]))
    launches = kernel.get("launches", 1.0) or 1.0
    chunks = round(kernel["chunks"] / launches)
    capacity = sms * slots
    if kernel.get("persistent"):
        cycles = kernel["cycles"] / launches
        return [dict(first=0, count=1, ctas=int(round(kernel["ctas"] / launches)),
                     capacity=capacity, chunks=chunks, start=0.0, cycles=cycles,
                     start_s=0.0, seconds=cycles / clock_hz)]
    per = kernel["cta_cycles"]
    full, rest = divmod(chunks, capacity)
    waves = []
    if full:
        waves.append(dict(first=0, count=int(full), ctas=capacity, capacity=capacity,
                          chunks=capacity, start=0.0, cycles=slots * per))
    if rest:
        waves.append(dict(first=int(full), count=1, ctas=int(rest), capacity=capacity,
                          chunks=int(rest), start=full * slots * per,
                          cycles=math.ceil(rest / sms) * per))
    for wave in waves:
        wave["start_s"], wave["seconds"] = wave["start"] / clock_hz, wave["cycles"] / clock_hz
    return waves


__all__ = ["Interval", "Schedule", "FILL", "schedules", "schedules_for", "schedules_of",
           "grid_waves"]
