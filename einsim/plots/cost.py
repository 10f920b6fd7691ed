"""Plotly figures of cost reports and sweeps (DESIGN.md §6): utilization against sequence
length, cycles per Einsum, the pipeline Gantt (scheduled from the loop tree by
:mod:`einsim.plots.timelines`), energy breakdown, area-latency Pareto front and speedups.
Every function returns a :class:`plotly.graph_objects.Figure` of plain data.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative

from einsim.cost import Report

UNITS = ("array2d", "array1d")
ENERGY_PARTS = ("array2d", "array1d", "register_files", "global_buffer", "dram")
_PALETTE = qualitative.D3
_UNIT_COLOURS = {"array2d": _PALETTE[0], "array1d": _PALETTE[1]}
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=60))


def seq_label(n: int | float) -> str:
    """``1024 -> '1K'``, ``1048576 -> '1M'``, other lengths unchanged."""
    n = int(n)
    for size, suffix in ((1 << 20, "M"), (1 << 10, "K")):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def _log2_axis(values, title: str) -> dict:
    ticks = sorted({int(v) for v in values})
    return dict(title=title, type="log", tickvals=ticks, ticktext=[seq_label(v) for v in ticks])


def _colour(k: int) -> str:
    return _PALETTE[k % len(_PALETTE)]


def utilization_figure(points: list[dict], x: str | None = None) -> go.Figure:
    """Utilization of each array against the swept quantity, one line per (mapping, unit).

    Solid lines are ``array2d``, dashed ``array1d``; the x axis is log2.

    Parameters
    ----------
    points : list of dict
        Sweep points (:func:`einsim.search.sweeps.sweep`), possibly of several mappings or workloads;
        infeasible points are skipped.
    x : str, optional
        The column on the x axis; by default the one that varies (``seq_len`` first, then a
        swept parameter such as ``pe_dim``), so a sweep at one length is not a single dot.
    """
    feasible = [p for p in points if p.get("feasible", True) and p.get("utilization")]
    if x is None:
        candidates = ["seq_len"] + [k for k in (feasible[0] if feasible else {})
                                    if k not in ("seq_len", "utilization")
                                    and isinstance(feasible[0][k], (int, float))
                                    and not isinstance(feasible[0][k], bool)]
        x = next((c for c in candidates if len({p.get(c) for p in feasible}) > 1), "seq_len")
    workloads = {p.get("workload") for p in feasible}
    groups: dict[str, list[dict]] = {}
    for p in feasible:
        key = f"{p['mapping']} ({p.get('workload')})" if len(workloads) > 1 else p["mapping"]
        groups.setdefault(key, []).append(p)
    fig = go.Figure()
    for k, (key, rows) in enumerate(groups.items()):
        rows = sorted(rows, key=lambda p: p[x])
        for unit, dash in zip(UNITS, ("solid", "dash")):
            fig.add_trace(go.Scatter(
                x=[p[x] for p in rows], y=[p["utilization"].get(unit) for p in rows],
                mode="lines+markers", name=f"{key}: {unit}", legendgroup=key,
                line=dict(color=_colour(k), dash=dash),
                hovertemplate=f"{key} {unit}<br>{x} %{{x}}: %{{y:.1%}}<extra></extra>"))
    title = "sequence length" if x == "seq_len" else x
    fig.update_layout(title="Array utilization", yaxis=dict(title="utilization",
                      tickformat=".0%", range=[0, 1.05]),
                      xaxis=_log2_axis([p[x] for p in feasible], title), **_LAYOUT)
    return fig


def einsum_breakdown_figure(report: Report, log_y: bool = False) -> go.Figure:
    """Cycles of every Einsum on its unit (all batches and heads), coloured by unit, in stage
    order; each bar is labelled with its share of all cycles.

    Parameters
    ----------
    report : Report
        From :func:`einsim.cost.front_door.evaluate`.
    log_y : bool
        Log-scale cycles (short Einsums stay visible).
    """
    einsums = sorted(report.einsums, key=lambda e: e.stage)  # stable: cascade order in a stage
    total = sum(e.cycles for e in einsums) or 1.0
    fig = go.Figure()
    for unit in UNITS:
        chosen = [e for e in einsums if e.unit == unit]
        if not chosen:
            continue
        fig.add_trace(go.Bar(
            x=[e.name for e in chosen], y=[e.cycles for e in chosen], name=unit,
            marker_color=_UNIT_COLOURS[unit], text=[f"{e.cycles / total:.1%}" for e in chosen],
            textposition="outside",
            hovertext=[f"{e.name} on {unit}, stage {e.stage}<br>{e.cycles:.3g} cycles<br>"
                       + "<br>".join(f"{op}: {n:.3g}" for op, n in e.ops.items())
                       for e in chosen], hoverinfo="text"))
    fig.update_layout(
        title=f"{report.mapping}: cycles per Einsum ({report.workload}, "
              f"{seq_label(report.seq_len)} tokens)",
        xaxis=dict(title="Einsum", categoryorder="array",
                   categoryarray=[e.name for e in einsums]),
        yaxis=dict(title="cycles on its unit", type="log" if log_y else "linear"),
        barmode="group", **_LAYOUT)
    return fig


def pipeline_gantt_figure(report: Report, tiles: int = 3, schedules=None, mapping=None,
                          **where) -> go.Figure:
    """The pipeline of ``tiles`` consecutive iterations of the mapping's tile loop, scheduled
    from its loop tree (:mod:`einsim.cost.timeline`): one row per unit, bars coloured by tile;
    a ``pipeline`` shows its later stage finishing the previous tile beside the current one,
    a ``sequence`` its units taking turns.  On a GPU, the SM timeline of its kernels
    (:func:`einsim.plots.timelines.sm_timeline_figure`).

    Parameters
    ----------
    report : Report
        From :func:`einsim.cost.front_door.evaluate`.
    tiles : int
        Iterations to draw.
    schedules : list of Schedule, optional
        Already built; otherwise rebuilt from the report (its mapping name, workload, length
        and chosen parameters): pass ``mapping`` (a file or tree) when it is not a library
        mapping, and ``workload``, ``hardware``, ``parameters`` (hardware overrides) or
        ``cascade`` as it was evaluated.  A report whose tree cannot be rebuilt draws a
        placeholder saying why.
    """
    from einsim.cost.timeline import schedules_of
    from einsim.errors import EinsimError
    from einsim.plots import timelines

    if schedules is None:
        try:
            schedules = schedules_of(report, mapping, **where)
        except EinsimError as error:
            return timelines.unavailable_figure(f"{report.mapping}: no schedule", str(error))
    return timelines.schedule_figure(schedules, tiles)


def energy_breakdown_figure(reports: list[Report]) -> go.Figure:
    """Stacked energy by component (arrays, register files, global buffer, DRAM) per report.

    Parameters
    ----------
    reports : list of Report
        Bars in this order, labelled by mapping (plus workload and length if names repeat).
    """
    labels = [r.mapping for r in reports]
    if len(set(labels)) < len(labels):
        labels = [f"{r.mapping} ({r.workload}, {seq_label(r.seq_len)})" for r in reports]
    parts = list(ENERGY_PARTS) + sorted({k for r in reports for k in r.energy_breakdown_j}
                                        - set(ENERGY_PARTS))
    fig = go.Figure()
    for k, part in enumerate(parts):
        values = [r.energy_breakdown_j.get(part, 0.0) for r in reports]
        fig.add_trace(go.Bar(
            x=labels, y=values, name=part, marker_color=_colour(k),
            hovertext=[f"{label}: {part} {v:.4g} J ({v / (r.energy_j or 1):.1%})"
                       for label, v, r in zip(labels, values, reports)], hoverinfo="text"))
    fig.update_layout(title="Energy breakdown", barmode="stack",
                      yaxis=dict(title="energy (J)"), xaxis=dict(title=""), **_LAYOUT)
    return fig


def pareto_figure(points: list[dict], x: str = "area_mm2", y: str = "latency_s",
                  label: str = "pe_dim", log_x: bool = False) -> go.Figure:
    """Scatter of feasible sweep points with the (x, y) Pareto front drawn as a line.

    Parameters
    ----------
    points : list of dict
        Sweep points, possibly of several mappings (one colour each).
    x, y : str
        Metrics, lower is better (``area_mm2``, ``latency_s``, ``energy_j``...).
    label : str
        Point field written beside each marker.
    log_x : bool
        Log-scale x axis (y is always log).
    """
    feasible = [p for p in points if p.get("feasible", True) and x in p and y in p]
    groups: dict[str, list[dict]] = {}
    for p in feasible:
        groups.setdefault(str(p.get("mapping", "")), []).append(p)
    fig = go.Figure()
    for k, (mapping, rows) in enumerate(groups.items()):
        fig.add_trace(go.Scatter(
            x=[p[x] for p in rows], y=[p[y] for p in rows], mode="markers+text", name=mapping,
            text=[f"{label}={p.get(label)}" for p in rows],
            textposition=["top left" if p[x] == max(q[x] for q in rows) else "top right"
                          for p in rows],  # keep the rightmost label inside the plot
            marker=dict(size=10, color=_colour(k)),
            hovertemplate=f"{mapping}<br>%{{text}}<br>{x}=%{{x:.4g}}<br>{y}=%{{y:.4g}}"
                          "<extra></extra>"))
    front, best = [], float("inf")
    for p in sorted(feasible, key=lambda p: (p[x], p[y])):
        if p[y] < best:
            front.append(p)
            best = p[y]
    fig.add_trace(go.Scatter(
        x=[p[x] for p in front], y=[p[y] for p in front], mode="lines", name="Pareto front",
        line=dict(color="black", width=2, dash="dash"), hoverinfo="skip"))
    skipped = len(points) - len(feasible)
    fig.update_layout(
        title=f"{y} against {x}" + (f" ({skipped} infeasible points omitted)" if skipped
                                    else ""),
        xaxis=dict(title=x, type="log" if log_x else "linear"),
        yaxis=dict(title=y, type="log"), **_LAYOUT)
    return fig


def speedup_figure(rows: list[dict]) -> go.Figure:
    """Grouped bars of speedup against sequence length, one colour per mapping; a dotted line
    marks speedup 1.

    Parameters
    ----------
    rows : list of dict
        Each with ``mapping``, ``seq_len`` and ``speedup``; with a ``workload`` key holding
        several values, the x axis is grouped by workload, then length.
    """
    workloads = list(dict.fromkeys(r.get("workload") for r in rows))
    grouped = len(workloads) > 1
    mappings = list(dict.fromkeys(r["mapping"] for r in rows))
    lengths = sorted({int(r["seq_len"]) for r in rows})
    labelled = len(mappings) * len(workloads) * len(lengths) <= 40  # else too crowded
    fig = go.Figure()
    for k, mapping in enumerate(mappings):
        table = {(r.get("workload"), int(r["seq_len"])): r["speedup"] for r in rows
                 if r["mapping"] == mapping}
        keys = [(w, n) for w in workloads for n in lengths]
        values = [table.get(key) for key in keys]
        x = ([[str(w) for w, _ in keys], [seq_label(n) for _, n in keys]] if grouped
             else [seq_label(n) for _, n in keys])
        fig.add_trace(go.Bar(x=x, y=values, name=mapping, marker_color=_colour(k),
                             text=[f"{v:.1f}×" if v is not None and labelled else ""
                                   for v in values], textposition="outside",
                             hovertemplate=f"{mapping}: %{{y:.2f}}×<extra></extra>"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="#555")
    fig.update_layout(title="Speedup", barmode="group", yaxis=dict(title="speedup (×)"),
                      xaxis=dict(title="sequence length"), **_LAYOUT)
    return fig
