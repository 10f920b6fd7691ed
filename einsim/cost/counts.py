"""What the derivation records and counts: loops and keeps on a leaf's path, the table of
expressions handed to the engine, and the symbolic helpers they are built with."""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from einsim.cost.expressions import symbol
from einsim.cost.hierarchy import Level
from einsim.cost.tree import Spatial
from einsim.language import ir


COPIES = sympy.Symbol("copies", positive=True)  # batch × heads, multiplied in at the end


@dataclass(frozen=True)
class LoopInfo:
    variable: str
    trips: sympy.Expr   # temporal iterations (1 for spatial, waves for a tiled spatial node)
    fanout: sympy.Expr  # positions used per trip (1 for temporal)
    spatial: bool
    path: str
    time_shared: bool = False  # positions share their PE (GPU warpgroups)


@dataclass
class KeepInfo:
    tensor: str          # the tensor whose data is kept (views resolved)
    label: str           # the name written in the keep node
    level: Level
    path: str
    loops: tuple[LoopInfo, ...]
    extents: dict[str, sympy.Expr]
    leaves: list[str] = field(default_factory=list)
    parent: "KeepInfo | None" = None
    producing: bool = False
    tile: sympy.Expr = sympy.Integer(0)
    partials: sympy.Expr = sympy.Integer(1)  # positions each draining a partial result


@dataclass
class Counts:
    """What the derivation hands to the engine: every quantity per (batch, head)."""

    reads: dict[tuple[str, str], sympy.Expr] = field(default_factory=dict)   # (level, tensor)
    writes: dict[tuple[str, str], sympy.Expr] = field(default_factory=dict)
    occupancy: dict[str, sympy.Expr] = field(default_factory=dict)          # level -> words
    tiles: dict[tuple[str, str, str], sympy.Expr] = field(default_factory=dict)  # path, level, T
    cycles: dict[str, sympy.Expr] = field(default_factory=dict)             # Einsum -> cycles
    busy: dict[str, sympy.Expr] = field(default_factory=dict)               # Einsum -> PE-cycles
    actions: dict[tuple[str, str], sympy.Expr] = field(default_factory=dict)  # (unit, action)
    ops: dict[str, dict[str, sympy.Expr]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    shares: dict[str, dict[str, sympy.Expr]] = field(default_factory=dict)  # split leaves
    stages: dict[str, int] = field(default_factory=dict)
    owned: dict[tuple[str, str], sympy.Expr] = field(default_factory=dict)  # (node, level)
    messages: dict[tuple[str, str], sympy.Expr] = field(default_factory=dict)  # (keep, level)
    compute_cycles: sympy.Expr = sympy.Integer(0)
    latency_s: sympy.Expr = sympy.Integer(0)
    branches: dict[str, sympy.Expr] = field(default_factory=dict)  # branch path -> seconds
    densities: tuple[str, ...] = ()
    # GPU block-sparse masks: symbol stem -> (mask source, query variables, Q tile, KV tile)
    tile_masks: dict[str, tuple] = field(default_factory=dict)
    kernels: list[dict] = field(default_factory=list)  # per GPU kernel: CTAs, slots, cycles

    def add(self, table: dict, key, value) -> None:
        table[key] = table.get(key, sympy.Integer(0)) + value


def _fold(function, builtin, *args) -> sympy.Expr:
    """Max or Min without sympy's (slow) simplification; exact numbers still fold."""
    numbers = [a for a in args if getattr(a, "is_Number", False) or isinstance(a, (int, float))]
    others = [a for a in args if a not in numbers]
    if numbers:
        others.append(builtin(numbers))
    return others[0] if len(others) == 1 else function(*others, evaluate=False)


def _max(*args) -> sympy.Expr:
    return _fold(sympy.Max, max, *args)


def _min(*args) -> sympy.Expr:
    return _fold(sympy.Min, min, *args)


def _spread(node: Spatial, axis: str, variable: str, before: sympy.Expr, width: sympy.Expr,
            time_shared: tuple[str, ...]) -> tuple[LoopInfo, sympy.Expr]:
    """A spatial node's loop and the extent each position gets: ceil(extent / width), or with a
    tile, chunks of the tile in waves (trips) of up to ``width`` positions."""
    shared = axis in time_shared
    if node.tile is None:
        return (LoopInfo(variable, sympy.Integer(1), _min(before, width), True, node.path,
                         shared), sympy.ceiling(before / width))
    chunks = sympy.ceiling(before / node.tile)
    waves = sympy.ceiling(chunks / width)
    return (LoopInfo(variable, waves, chunks / waves, True, node.path, shared),
            _min(node.tile, before))


def size(variable: str) -> sympy.Symbol:
    return symbol(ir.rank_of(variable))


def density_symbol(einsum: str) -> sympy.Symbol:
    """The unmasked fraction of an Einsum's iteration space (counted, not symbolic)."""
    return sympy.Symbol(f"density_{einsum}", positive=True)


def tile_mask_symbols(stem: str) -> tuple[sympy.Symbol, sympy.Symbol, sympy.Symbol]:
    """(visited, partial, worst) of a GPU kernel's tile mask ``stem`` (counted, not symbolic):
    the fractions of (Q tile, KV tile) pairs visited and masked element-wise, and the busiest
    Q tile's share of the KV tiles."""
    return (sympy.Symbol(f"visited_{stem}", positive=True),
            sympy.Symbol(f"partial_{stem}", nonnegative=True),
            sympy.Symbol(f"worst_{stem}", positive=True))
