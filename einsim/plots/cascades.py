"""Plotly figures of cascades: the dependency graph coloured by pass, and passes per cascade.

>>> import einsim
>>> from einsim.plots.cascades import dependency_graph_figure
>>> fig = dependency_graph_figure(einsim.library.get("fusemax"), "m")
>>> fig.layout.title.text
'fusemax: 1 pass over m'
"""

from __future__ import annotations

import math

import networkx as nx
import plotly.graph_objects as go
from plotly.colors import qualitative

from einsim.language import ir
from einsim import library
from einsim.analysis.footprint import op_counts
from einsim.analysis.graph import dependency_graph
from einsim.errors import UnknownRankError
from einsim.analysis.passes import pass_assignment

_PALETTE = qualitative.D3
_INPUT_COLOUR = "#9e9e9e"
_EARLY_COLOUR = "#17becf"
_EDGE_STYLES = {"element": ("solid", "read"), "carried": ("dash", "loop-carried read"),
                "final": ("dot", "final-iterate read")}


def _layers(graph: nx.DiGraph, order: dict[str, int]) -> list[list[str]]:
    """Topological generations ignoring loop-carried edges (cycles collapse to one layer)."""
    acyclic = nx.DiGraph()
    acyclic.add_nodes_from(graph)
    acyclic.add_edges_from((u, v) for u, v, d in graph.edges(data=True)
                           if not d["loop_carried"] and u != v)
    condensed = nx.condensation(acyclic)
    layers = []
    for generation in nx.topological_generations(condensed):
        members = [n for c in generation for n in condensed.nodes[c]["members"]]
        layers.append(sorted(members, key=order.__getitem__))
    return layers


def _positions(graph: nx.DiGraph, layers: list[list[str]]) -> dict[str, tuple[float, float]]:
    """x = layer; y ordered by the mean height of each node's predecessors (fewer crossings)."""
    positions: dict[str, tuple[float, float]] = {}
    for x, layer in enumerate(layers):
        def height(node: str) -> float:
            above = [positions[p][1] for p in graph.predecessors(node) if p in positions]
            return -sum(above) / len(above) if above else 0.0
        if x > 0:
            layer = sorted(layer, key=height)  # stable: ties keep text order
        for k, node in enumerate(layer):
            positions[node] = (float(x), (len(layer) - 1) / 2 - k)
    return positions


def _group(info, rank: str | None) -> tuple[str, str, str, float]:
    """(legend label, colour, marker symbol, sort key) of an Einsum's pass placement."""
    if rank is None or info is None:
        return "einsum", _PALETTE[0], "circle", 1.0
    if info.traversal:
        k = info.pass_number
        return f"pass {k} (traverses {rank})", _PALETTE[(k - 1) % len(_PALETTE)], "circle", k
    k = math.floor(info.start)
    if k == 0:
        return "before pass 1", _EARLY_COLOUR, "square", 0.5
    colour = _PALETTE[(k - 1) % len(_PALETTE)]
    if info.start == k:
        return f"pass {k} (does not traverse {rank})", colour, "diamond", k + 0.25
    return f"after pass {k}", colour, "square", k + 0.5


def _hover(node: str, data: dict, cascade: ir.Cascade) -> str:
    if data["kind"] == "input":
        decl = next((t for t in cascade.inputs if t.name == node), None)
        return f"input {decl if decl is not None else node}"
    einsum = data["einsum"]
    counts = "<br>".join(f"{kind}: {count}" for kind, count in op_counts(einsum).items())
    return f"<b>{einsum}</b><br>{counts or 'no arithmetic (a copy)'}"


def _curve(start, end, bend: float, steps: int = 16) -> list[tuple[float, float]]:
    """Points of a quadratic Bezier from start to end, bulging sideways by ``bend``."""
    (x0, y0), (x1, y1) = start, end
    if start == end:  # a self loop: a small circle above the node
        return [(x0 + 0.12 * math.sin(2 * math.pi * t / steps),
                 y0 + 0.15 - 0.15 * math.cos(2 * math.pi * t / steps)) for t in range(steps + 1)]
    length = math.hypot(x1 - x0, y1 - y0)
    cx = (x0 + x1) / 2 - bend * (y1 - y0) / length
    cy = (y0 + y1) / 2 + bend * (x1 - x0) / length
    return [((1 - t) ** 2 * x0 + 2 * t * (1 - t) * cx + t * t * x1,
             (1 - t) ** 2 * y0 + 2 * t * (1 - t) * cy + t * t * y1)
            for t in (i / steps for i in range(steps + 1))]


def _edge_traces(graph: nx.DiGraph, positions) -> list[go.Scatter]:
    lines = {kind: ([], []) for kind in _EDGE_STYLES}
    heads: tuple[list, list, list] = ([], [], [])
    for u, v, data in graph.edges(data=True):
        kind = "carried" if data["loop_carried"] else "final" if data["final"] else "element"
        span = positions[v][0] - positions[u][0]  # bend edges that could cross other nodes
        points = _curve(positions[u], positions[v], 0.0 if span == 1 else 0.35)
        xs, ys = lines[kind]
        xs.extend([p[0] for p in points] + [None])
        ys.extend([p[1] for p in points] + [None])
        k = len(points) - 3 if u != v else len(points) // 2
        heads[0].extend([points[k - 1][0], points[k][0], None])  # the tip follows its predecessor,
        heads[1].extend([points[k - 1][1], points[k][1], None])  # which orients the arrow
        heads[2].extend(["", f"{u} → {v}: {_EDGE_STYLES[kind][1]}", ""])
    traces = [go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", meta="edges",
                         name=_EDGE_STYLES[kind][1], legendgroup="edges",
                         line=dict(color="#555", width=1.2, dash=_EDGE_STYLES[kind][0]))
              for kind, (xs, ys) in lines.items() if xs]
    traces.append(go.Scatter(x=heads[0], y=heads[1], mode="markers", meta="arrows",
                             hovertext=heads[2], hoverinfo="text", showlegend=False,
                             marker=dict(symbol="arrow", angleref="previous", color="#555",
                                         size=[0, 10, 0] * (len(heads[0]) // 3))))
    return traces


def dependency_graph_figure(cascade: ir.Cascade, rank: str | None = "m") -> go.Figure:
    """Draw a cascade's dependency graph as a layered DAG, nodes coloured by pass over ``rank``.

    Parameters
    ----------
    cascade : Cascade
        From :func:`einsim.parse` or :func:`einsim.library.get`.
    rank : str or None
        Rank whose passes colour the nodes (``"m"``, ``"m0"``...); None colours every Einsum
        alike.  A library cascade without this rank falls back to its entry's sequence rank.

    Returns
    -------
    plotly.graph_objects.Figure
        Layers are topological generations ignoring loop-carried edges.  Inputs are grey;
        hovering a node shows its Einsum and op counts.  Loop-carried reads are dashed, reads
        of a recurrence's final iterate dotted.
    """
    graph = dependency_graph(cascade)
    assignment = None
    if rank is not None:
        try:
            assignment = pass_assignment(cascade, rank)
        except UnknownRankError:
            if cascade.name not in library.names():
                raise
            rank = library.entry(cascade.name).sequence_rank
            assignment = pass_assignment(cascade, rank)
        rank = rank.lower()
    order = {name: k for k, name in enumerate(cascade.input_names)}
    order.update({e.name: len(order) + k for k, e in enumerate(cascade.einsums)})
    layers = _layers(graph, order)
    positions = _positions(graph, layers)
    groups: dict[str, dict] = {}
    for node in sorted(graph, key=order.__getitem__):
        data = graph.nodes[node]
        if data["kind"] == "input":
            label, colour, symbol, key = "input", _INPUT_COLOUR, "circle", -1.0
        else:
            info = assignment[node] if assignment is not None else None
            label, colour, symbol, key = _group(info, rank)
        group = groups.setdefault(label, dict(colour=colour, symbol=symbol, key=key, nodes=[]))
        group["nodes"].append(node)
    fig = go.Figure(_edge_traces(graph, positions))
    for label, group in sorted(groups.items(), key=lambda item: item[1]["key"]):
        nodes = group["nodes"]
        fig.add_trace(go.Scatter(
            x=[positions[n][0] for n in nodes], y=[positions[n][1] for n in nodes],
            mode="markers+text", text=nodes, textposition="top center", name=label,
            meta="nodes", hovertext=[_hover(n, graph.nodes[n], cascade) for n in nodes],
            hoverinfo="text", marker=dict(size=18, color=group["colour"],
                                          symbol=group["symbol"],
                                          line=dict(width=1, color="#333"))))
    name = cascade.name or "cascade"
    if assignment is None:
        title = f"{name}: dependency graph"
    else:
        count = max((p.pass_number for p in assignment.values() if p.traversal), default=0)
        title = f"{name}: {count} pass{'es' if count != 1 else ''} over {rank}"
    tallest = max((len(layer) for layer in layers), default=1)
    fig.update_layout(
        title=title, template="plotly_white", hovermode="closest", legend_title_text="",
        height=max(360, 90 * tallest + 120), margin=dict(l=20, r=20, t=60, b=20),
        xaxis=dict(visible=False, range=[-0.5, len(layers) - 0.5]),
        yaxis=dict(visible=False, range=[-tallest / 2 - 0.2, tallest / 2 + 0.4]))
    return fig


def pass_bars_figure(cascade_names: list[str], ranks=("m",)) -> go.Figure:
    """Grouped bar chart of how many passes each library cascade needs over each rank.

    Parameters
    ----------
    cascade_names : list of str
        Library cascade names (see :func:`einsim.library.names`).
    ranks : sequence of str
        One bar per rank and cascade; ``"seq"`` stands for each entry's ``sequence_rank``.
        A rank a cascade does not use gets no bar (hover says so).

    Returns
    -------
    plotly.graph_objects.Figure
    """
    fig = go.Figure()
    for k, rank in enumerate(ranks):
        values, notes = [], []
        for name in cascade_names:
            actual = library.entry(name).sequence_rank if rank == "seq" else rank
            try:
                assignment = pass_assignment(library.get(name), actual)
            except UnknownRankError:
                values.append(None)
                notes.append(f"{name}: no rank {actual}")
                continue
            count = max((p.pass_number for p in assignment.values() if p.traversal), default=0)
            values.append(count)
            notes.append(f"{name}: {count} pass{'es' if count != 1 else ''} over {actual}")
        label = "sequence rank" if rank == "seq" else f"over {rank}"
        fig.add_trace(go.Bar(x=list(cascade_names), y=values, name=label, hovertext=notes,
                             hoverinfo="text", text=values, textposition="outside",
                             marker_color=_PALETTE[k % len(_PALETTE)]))
    fig.update_layout(barmode="group", template="plotly_white", title="Passes per cascade",
                      yaxis=dict(title="passes", dtick=1, rangemode="tozero"),
                      xaxis=dict(tickangle=-35), margin=dict(l=40, r=20, t=60, b=120))
    return fig
