"""A hardware model as the engine sees it: memory levels and compute units.

Every hardware kind becomes the same :class:`Hierarchy` — levels (capacity, access width,
energy per access, bandwidth) and units (PE axes, the actions an operation costs) — so one
engine derives every kind's costs.  Sweepable fields (``pe_dim``, ``clock_hz``,
``dram_bandwidth``, ``global_buffer_bytes``) stay sympy symbols, so one compiled expression
serves a whole sweep; the rest are numbers baked in when the expressions are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from einsim.cost.expressions import symbol
from einsim.errors import MappingError

# How an operation decomposes into others when a unit has no action of its own for it.
# sigmoid(x) = 1 / (1 + exp(-x)); tanh(x) = (exp(2x) - 1) / (exp(2x) + 1); sqrt by three
# Newton steps x' = (x + a / x) / 2; log by a polynomial on the mantissa (as exp: 6 MAC + 1 add).
DECOMPOSITIONS: dict[str, dict[str, int]] = {
    "sigmoid": {"exp": 1, "add": 1, "div": 1},
    "tanh": {"exp": 1, "mul": 1, "add": 2, "div": 1},
    "sqrt": {"div": 3, "add": 3, "mul": 3},
    "log": {"mac": 6, "add": 1},
    "exp": {"mac": 6, "add": 1},
    "mul": {"mac": 1},
    "div": {"divide": 1},
    "neg": {"add": 1},
    "min": {"max": 1},
    "abs": {"max": 1},
    "select": {"max": 1},
    "compare": {"max": 1},
}


@dataclass(frozen=True)
class Level:
    """A memory level; ``capacity_words`` is per instance for a unit's register files (per PE)
    and in all for shared levels (None: unbounded)."""

    name: str
    width_words: float
    read_pj: float
    write_pj: float
    capacity_words: sympy.Expr | None = None
    bandwidth_bytes_per_s: sympy.Expr | None = None
    per_unit: str | None = None  # register files belong to one unit
    per_instance: bool = False   # capacity per PE (per SM on a GPU), not in all
    word_bytes: int | None = None  # bytes per word held here, if not the hierarchy's
    # a level spread evenly over G devices (their memories seen across the link): an access
    # finds 1/G of its data at home, so only ``remote_fraction`` = (G - 1) / G moves
    remote_fraction: sympy.Expr | float = 1
    message_latency_s: float = 0.0  # per fill of a tile from this level (a link's latency)
    # a network between devices: a transfer to or from a single-buffered keep waits (its data
    # is needed next, or was just made), so it adds to the subtree's time; ``buffers: 2``
    # prefetches it behind the work
    network: bool = False

    @property
    def instanced(self) -> bool:
        return self.per_instance or self.per_unit is not None


@dataclass(frozen=True)
class Unit:
    """A compute unit: its PE axes and, per action, energy and the functional unit doing it."""

    name: str
    axes: dict[str, sympy.Expr]
    action_energy_pj: dict[str, float]
    functional_unit: dict[str, str]
    op_costs: dict[str, dict[str, int]] = field(default_factory=dict)
    rates: dict[str, sympy.Expr] = field(default_factory=dict)  # actions/clock/PE (default 1)
    time_shared: tuple[str, ...] = ()  # axes whose positions share the PE (GPU warpgroups)

    @property
    def pes(self) -> sympy.Expr:
        return sympy.Mul(*(size for axis, size in self.axes.items()
                           if axis not in self.time_shared))

    def actions_for(self, operation: str, _depth: int = 0) -> dict[str, int]:
        """Actions one ``operation`` costs here, decomposed where no action does it directly."""
        if operation in self.op_costs:
            return dict(self.op_costs[operation])
        if operation in self.action_energy_pj:
            return {operation: 1}
        parts = DECOMPOSITIONS.get(operation)
        if parts is None or _depth > 4:
            raise MappingError(f"operation {operation!r} has no cost on unit {self.name}: it "
                               f"offers {', '.join(self.action_energy_pj)}, and {operation} "
                               "does not decompose into them")
        total: dict[str, int] = {}
        for part, times in parts.items():
            for action, count in self.actions_for(part, _depth + 1).items():
                total[action] = total.get(action, 0) + times * count
        return total


@dataclass(frozen=True)
class Grid:
    """GPU semantics on top of the hierarchy: a spatial node over ``axis`` launches a grid of
    CTAs, scheduled in waves of ``instances`` × (CTAs resident per instance)."""

    axis: str
    instances: int
    max_resident: int
    overhead_cycles: float


@dataclass(frozen=True)
class Hierarchy:
    name: str
    kind: str
    levels: dict[str, Level]
    units: dict[str, Unit]
    clock_hz: sympy.Expr
    word_bytes: int
    values: dict[str, float]  # numbers for the symbols above
    area_mm2: sympy.Expr | None  # of the symbols above (pe_dim scales the arrays)
    static_power_w: float = 0.0
    buffer_level: str = "global_buffer"  # the on-chip level a report's buffer_bytes states
    grid: Grid | None = None
    multicast: bool = True  # one read of a parent level feeds every position that shares it
    mask_cycles_per_operation: float = 0.0  # masking a partial tile element-wise (GPUs)

    def level(self, name: str, units: set[str], where: str) -> Level:
        """A level named in a keep node; ``registers`` means the register file of the unit
        (all leaves below must then run on one unit)."""
        if name == "registers" and name not in self.levels:
            if len(units) != 1:
                raise MappingError(f"{where}: 'registers' is ambiguous here, leaves below run on "
                                   f"{', '.join(sorted(units)) or 'no unit'}; name one, e.g. "
                                   f"{sorted(units)[0] if units else 'array1d'}.registers")
            name = f"{next(iter(units))}.registers"
        if name not in self.levels:
            raise MappingError(f"{where}: unknown level {name!r} on {self.name}; expected one of "
                               f"{', '.join(self.levels)} or registers")
        return self.levels[name]

    def unit(self, name: str, where: str) -> Unit:
        if name not in self.units:
            raise MappingError(f"{where}: unknown unit {name!r} on {self.name}; expected one of "
                               f"{', '.join(self.units)}")
        return self.units[name]


def spatial_array_hierarchy(hardware) -> Hierarchy:
    """The hierarchy of a :class:`hw_models.spatial_array.SpatialArray`."""
    pe_dim = symbol("pe_dim")
    units, levels = {}, {}
    words_per_access = hardware.dram.access_bits / hardware.word_bits
    levels["dram"] = Level("dram", words_per_access, hardware.dram.energy_pj_per_access,
                           hardware.dram.energy_pj_per_access,
                           bandwidth_bytes_per_s=symbol("dram_bandwidth"))
    buffer = hardware.global_buffer
    levels["global_buffer"] = Level("global_buffer", buffer.row_words, buffer.read_pj_per_row,
                                    buffer.write_pj_per_row,
                                    capacity_words=symbol("global_buffer_bytes")
                                    / hardware.word_bytes)
    for name, axes in (("array2d", {"rows": pe_dim, "cols": pe_dim}),
                       ("array1d", {"pes": pe_dim})):
        array = getattr(hardware, name)
        units[name] = Unit(name, axes, {a: x.energy_pj for a, x in array.actions.items()},
                           {a: x.unit or a for a, x in array.actions.items()},
                           {op: dict(c) for op, c in array.op_costs.items()})
        rf = array.register_file
        levels[f"{name}.registers"] = Level(f"{name}.registers", 1, rf.read_pj, rf.write_pj,
                                            capacity_words=sympy.Integer(rf.words),
                                            per_unit=name)
    values = {"pe_dim": hardware.pe_dim, "clock_hz": hardware.clock_hz,
              "dram_bandwidth": hardware.dram.bandwidth_bytes_per_s,
              "global_buffer_bytes": buffer.bytes}
    per_pe = {name: getattr(hardware, name).pe_area_um2 for name in ("array2d", "array1d")}
    area = (pe_dim ** 2 * per_pe["array2d"] + pe_dim * per_pe["array1d"]
            + buffer.area_um2) / 1e6
    return Hierarchy(hardware.name, "spatial_array", levels, units, symbol("clock_hz"),
                     hardware.word_bytes, values, area,
                     float(getattr(hardware, "static_power_w", 0.0) or 0.0))
