"""The "ski-slope": DRAM traffic lower bound against on-chip capacity, log-log, per cascade,
with the mappings the mapper finds placed against it (DESIGN.md §12).

A mapping sits at the on-chip bytes it occupies — its global-buffer bytes plus the register
words its tree keeps (per-PE occupancy × PEs) — and its report's ``traffic_bytes``; a sound
bound has every point on or above its cascade's curve.

>>> curves = [einsim.traffic_bound(c, seq_len=4096) for c in REFERENCE_CASCADES]
>>> points = mapping_points(seq_len=4096)                          # doctest: +SKIP
>>> ski_slope_figure(curves, points).write_html("bounds.html")     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import plotly.graph_objects as go
from plotly.colors import qualitative

from einsim.bounds import BoundCurve
from einsim.errors import EinsimError

REFERENCE_CASCADES = ("attention-3pass", "attention-2pass", "attention-1pass")
LIBRARY_MAPPINGS = ("unfused", "flat", "fusemax-cascade", "fusemax-arch", "fusemax")
_LAYOUT = dict(template="plotly_white", margin=dict(l=70, r=20, t=60, b=60))
_DASH = {"attention-3pass": "solid", "attention-2pass": "dash", "attention-1pass": "dot"}


@dataclass(frozen=True)
class MappingPoint:
    """One mapping's report placed on the ski-slope."""

    mapping: str
    cascade: str
    hardware: str
    global_buffer_bytes: float
    buffer_bytes: float
    register_bytes: float
    traffic_bytes: float
    parameters: dict = field(default_factory=dict)

    @property
    def on_chip_bytes(self) -> float:
        return self.buffer_bytes + self.register_bytes


def register_bytes_used(mapping: str, report, workload: str, seq_len: int,
                        global_buffer_bytes: float | None = None,
                        cascade: str | None = None) -> float:
    """Register-file bytes a mapping's tree keeps (per-PE peak × PEs), summed over units."""
    from einsim.cost.evaluate import compile_for, concrete_trees, problem_of, \
        split_tree_parameters
    from einsim.cost.tree import load_mapping_tree
    from einsim.workloads import load_workload

    tree = load_mapping_tree(mapping)
    parameters = dict(report.parameters)
    trees, rest = concrete_trees(tree, parameters)
    concrete = trees[0][1]
    if global_buffer_bytes is not None:
        rest["global_buffer_bytes"] = global_buffer_bytes
    fixed, symbolic, baked = split_tree_parameters(concrete, {
        k: v for k, v in rest.items() if k in concrete.parameters or k == "global_buffer_bytes"})
    engine, machine = compile_for(concrete, cascade, report.hardware, baked)
    problem = problem_of(load_workload(workload, seq_len))
    values = engine.values(problem, fixed, symbolic)
    raw = engine.raw(values)
    total = 0.0
    for level in engine.hardware.levels.values():
        if level.per_unit is None:
            continue
        pes = engine.hardware.units[level.per_unit].pes
        count = float(pes.subs({s: values[str(s)] for s in pes.free_symbols}))
        total += float(raw.get(("occupancy", level.name), 0.0)) * count
    return total * machine.word_bytes


def mapping_points(mappings=LIBRARY_MAPPINGS, workload: str = "bert", seq_len: int = 4096,
                   capacities=None, cascade: str | None = None,
                   mapper_capacities=()) -> list[MappingPoint]:
    """Each library mapping's best report at several ``global_buffer_bytes`` (and, for
    ``cascade``, the tree mapper's best at ``mapper_capacities``); infeasible ones skipped."""
    import einsim
    from einsim.cost.tree import load_mapping_tree

    capacities = capacities if capacities is not None else [2 ** k for k in range(14, 27, 2)]
    points: list[MappingPoint] = []
    for name in mappings:
        tree = load_mapping_tree(name)
        for capacity in capacities:
            capacity = int(round(float(capacity)))
            try:
                report = einsim.evaluate(name, workload=workload, seq_len=seq_len,
                                         parameters={"global_buffer_bytes": capacity})
                registers = register_bytes_used(name, report, workload, seq_len, capacity)
            except EinsimError:
                continue
            points.append(MappingPoint(name, tree.cascade, report.hardware, float(capacity),
                                       report.buffer_bytes, registers, report.traffic_bytes,
                                       dict(report.parameters)))
    if cascade is not None:
        points += mapper_points(cascade, workload, seq_len, mapper_capacities)
    return points


def mapper_points(cascade: str, workload: str, seq_len: int, capacities,
                  hardware: str = "fusemax-cloud") -> list[MappingPoint]:
    """The tree mapper's best tree for ``cascade`` at each ``global_buffer_bytes``."""
    from einsim.bounds import register_bytes
    from einsim.search.mapper import map_cascade

    points = []
    for capacity in capacities:
        capacity = int(round(float(capacity)))
        try:
            found = map_cascade(None, cascade, hardware, workload, seq_len,
                                parameters={"global_buffer_bytes": capacity})
        except EinsimError:
            continue
        report = found.result.best
        points.append(MappingPoint(f"mapper:{cascade}", cascade, report.hardware,
                                   float(capacity), report.buffer_bytes,
                                   register_bytes(report.hardware), report.traffic_bytes,
                                   dict(report.parameters)))
    return points


def ski_slope_figure(curves: list[BoundCurve], points: list[MappingPoint] = (),
                     title: str | None = None) -> go.Figure:
    """Bound curves (one line per cascade) and mapping points, DRAM bytes against on-chip
    bytes, both axes log."""
    figure = go.Figure()
    palette = qualitative.D3
    for k, curve in enumerate(curves):
        x = [p.buffer_bytes for p in curve.points]
        y = [p.traffic_lower_bound_bytes for p in curve.points]
        text = [p.regime for p in curve.points]
        figure.add_trace(go.Scatter(
            x=x, y=y, mode="lines", name=f"{curve.cascade} bound ({curve.passes} pass"
            f"{'es' if curve.passes != 1 else ''})", text=text,
            line=dict(color=palette[k % len(palette)], dash=_DASH.get(curve.cascade, "solid"),
                      width=2.5),
            hovertemplate="%{x:.3s}B on chip<br>%{y:.3s}B DRAM<br>%{text}<extra>%{fullData.name}"
                          "</extra>"))
    if curves:
        compulsory = min(c.compulsory_bytes for c in curves)
        figure.add_hline(y=compulsory, line=dict(color="grey", dash="dot", width=1),
                         annotation_text="compulsory", annotation_position="bottom right")
    markers = ["circle", "square", "diamond", "triangle-up", "x", "star", "cross"]
    for k, name in enumerate(dict.fromkeys(p.mapping for p in points)):
        mine = [p for p in points if p.mapping == name]
        figure.add_trace(go.Scatter(
            x=[p.on_chip_bytes for p in mine], y=[p.traffic_bytes for p in mine],
            mode="markers", name=f"{name} ({mine[0].cascade})",
            marker=dict(symbol=markers[k % len(markers)], size=9,
                        color=palette[(k + len(curves)) % len(palette)]),
            text=[f"{p.hardware}, buffer {p.global_buffer_bytes:.3g} B, "
                  + ", ".join(f"{a}={b}" for a, b in p.parameters.items()) for p in mine],
            hovertemplate="%{x:.3s}B on chip<br>%{y:.3s}B DRAM<br>%{text}<extra>"
                          "%{fullData.name}</extra>"))
    first = curves[0] if curves else None
    figure.update_layout(
        title=title or ("DRAM traffic lower bound against on-chip capacity"
                        + (f" — {first.workload}, {first.seq_len:,} tokens" if first else "")),
        xaxis=dict(title="on-chip capacity (bytes: buffer + register files)", type="log"),
        yaxis=dict(title="DRAM traffic (bytes, all batch × heads)", type="log"),
        legend=dict(orientation="v"), **_LAYOUT)
    return figure


def write_ski_slope(path, curves: list[BoundCurve], points: list[MappingPoint] = ()) -> None:
    """Write :func:`ski_slope_figure` as a standalone HTML file."""
    ski_slope_figure(curves, points).write_html(str(path), include_plotlyjs=True)
