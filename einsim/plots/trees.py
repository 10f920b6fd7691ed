"""Plotly figures of loop-tree mappings: the tree itself, and the traffic per memory level.

>>> from einsim.cost.evaluate import evaluate_tree
>>> from einsim.plots.trees import traffic_by_level_figure, tree_figure
>>> tree_figure("fusemax").write_html("fusemax-tree.html")        # doctest: +SKIP
>>> report = evaluate_tree("fusemax", seq_len="64K").best
>>> traffic_by_level_figure(report, log_y=True).show()             # doctest: +SKIP

The tree is drawn top to bottom: a chain's nodes stack one under the other, a ``sequence`` or
``pipeline`` fans out into its branches, and each ``run`` leaf gets its own column (leaves are
spread evenly on x, every other node is centred over the leaves below it).  The boxes are the
figure's only annotations, one per node, each named by the node's path in the file
(``tree[3].sequence[0][2]``); hovering a box's centre shows the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from einsim.cost.tree import Branch, Chain, Keep, Loop, MappingTree, Node, Run, Spatial
from einsim.cost.tree_yaml import size_text

if TYPE_CHECKING:  # plotly is imported lazily: importing einsim.plots.trees stays cheap
    import plotly.graph_objects as go

    from einsim.cost.report import Report

# Kind → (fill, border) colours; the legend explains them.
_STYLE = {
    "loop": ("#dbe9f6", "#2c6fb0"),
    "spatial": ("#fde3c8", "#d46b08"),
    "keep": ("#dcf1dc", "#2e8b3a"),
    "sequence": ("#ececec", "#555555"),
    "pipeline": ("#eadcf5", "#7b3fa6"),
    "run": ("#fff6bf", "#a68a00"),
}
_KIND_LABEL = {"loop": "temporal loop", "spatial": "spatial (PE axes)",
               "keep": "keep (level: tensors)", "sequence": "sequence",
               "pipeline": "pipeline", "run": "run (Einsums on a unit)"}
_LEVEL_ORDER = ("dram", "global_buffer")  # then register files, in report order


def _kind(node: Node) -> str:
    return node.kind if isinstance(node, Branch) else type(node).__name__.lower()


def _wrap(names: list[str], per_line: int = 3) -> str:
    lines = [", ".join(names[k:k + per_line]) for k in range(0, len(names), per_line)]
    return "<br>".join(lines)


def node_label(node: Node) -> str:
    """The text in a node's box (plotly HTML: ``<b>``, ``<br>``)."""
    if isinstance(node, Loop):
        tile = size_text(node.tile)
        return f"<b>loop {node.variable}</b>" + ("" if tile == 1 else f"<br>tile {tile}")
    if isinstance(node, Spatial):
        tile = "" if node.tile is None else f"<br>tile {size_text(node.tile)}"
        return "<b>spatial</b><br>" + "<br>".join(f"{axis}: {v}" for axis, v in node.axes) + tile
    if isinstance(node, Keep):
        groups = ["/".join(g) for g in (node.groups or tuple((t,) for t in node.tensors))]
        return f"<b>keep @ {node.level}</b><br>{_wrap(groups)}"
    if isinstance(node, Branch):
        return f"<b>{node.kind}</b> ({len(node.children)})"
    return f"<b>run {_wrap(list(node.einsums), 2)}</b><br>on {node.unit.replace('+', ' + ')}"


@dataclass
class _Placed:
    node: Node
    x: float
    depth: int
    parent: int | None  # index into the placed list


def layout_tree(root: Chain) -> list[_Placed]:
    """Every node with its position: depth on y, leaves in tree order on x, others centred."""
    placed: list[_Placed] = []
    next_leaf = [0]

    def chain(nodes: Chain, depth: int, parent: int | None) -> tuple[float, float]:
        """Place a chain; returns the x span (first, last) of its leaves."""
        node, rest = nodes[0], nodes[1:]
        index = len(placed)
        placed.append(_Placed(node, 0.0, depth, parent))
        if rest:
            span = chain(rest, depth + 1, index)
        elif isinstance(node, Branch):
            spans = [chain(child, depth + 1, index) for child in node.children]
            span = (spans[0][0], spans[-1][1])
        else:  # a run: a new column
            x = float(next_leaf[0])
            next_leaf[0] += 1
            span = (x, x)
        placed[index].x = (span[0] + span[1]) / 2
        return span

    chain(root, 0, None)
    return placed


def tree_figure(mapping: MappingTree | str, title: str | None = None) -> "go.Figure":
    """A drawing of a loop tree: one box per node, edges from parent to child.

    Parameters
    ----------
    mapping : MappingTree or str
        A loaded tree, or a mapping name / YAML file for :func:`load_mapping_tree`.
    title : str, optional
        Defaults to the mapping's name, cascade and hardware.
    """
    import plotly.graph_objects as go

    if isinstance(mapping, str):
        from einsim.cost.tree import load_mapping_tree

        mapping = load_mapping_tree(mapping)
    placed = layout_tree(mapping.root)
    leaves = max(int(p.x) for p in placed if isinstance(p.node, Run)) + 1
    depth = max(p.depth for p in placed) + 1
    x_step, y_step = 1.0, 1.0

    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    for item in placed:
        if item.parent is None:
            continue
        parent = placed[item.parent]
        x0, y0, x1, y1 = parent.x * x_step, -parent.depth * y_step, item.x * x_step, \
            -item.depth * y_step
        middle = (y0 + y1) / 2
        edge_x += [x0, x0, x1, x1, None]
        edge_y += [y0, middle, middle, y1, None]

    figure = go.Figure()
    figure.add_trace(go.Scatter(x=edge_x, y=edge_y, mode="lines", meta="edges",
                                line=dict(color="#8a8a8a", width=1.2), hoverinfo="skip",
                                showlegend=False))
    # Invisible markers at the box centres carry the hover text (annotations have none).
    figure.add_trace(go.Scatter(
        x=[p.x * x_step for p in placed], y=[-p.depth * y_step for p in placed],
        mode="markers", meta="nodes", marker=dict(size=18, opacity=0),
        text=[p.node.path for p in placed],
        hovertext=[f"{p.node.path}<br>{node_label(p.node)}" for p in placed],
        hoverinfo="text", showlegend=False))
    kinds_present = []
    for item in placed:
        kind = _kind(item.node)
        if kind not in kinds_present:
            kinds_present.append(kind)
        fill, border = _STYLE[kind]
        figure.add_annotation(
            x=item.x * x_step, y=-item.depth * y_step, text=node_label(item.node),
            name=item.node.path, showarrow=False, bgcolor=fill, bordercolor=border,
            borderwidth=1.5, borderpad=3, font=dict(size=11, color="#1a1a1a"),
            align="center")
    for kind in _STYLE:  # legend: one square per kind drawn
        if kind in kinds_present:
            fill, border = _STYLE[kind]
            figure.add_trace(go.Scatter(
                x=[None], y=[None], mode="markers", name=_KIND_LABEL[kind], meta="legend",
                marker=dict(symbol="square", size=14, color=fill,
                            line=dict(color=border, width=1.5))))
    if title is None:
        title = (f"{_short(mapping.name)}: loop tree ({_short(mapping.cascade)} on "
                 f"{mapping.hardware})"
                 "<br><sup>outer → inner from top to bottom; sequence and pipeline fan out "
                 "into their branches</sup>")
    figure.update_layout(
        title=title, template="plotly_white", hovermode="closest",
        width=max(760, 150 * leaves + 120), height=max(440, 78 * depth + 170),
        margin=dict(l=30, r=30, t=80, b=70),
        legend=dict(orientation="h", yanchor="top", y=-0.01, xanchor="left", x=0.0),
        xaxis=dict(visible=False, range=[-0.7 * x_step, (leaves - 0.3) * x_step]),
        yaxis=dict(visible=False, range=[-(depth - 0.5) * y_step, 0.6 * y_step]))
    return figure


def _levels(report: "Report") -> list[str]:
    """Levels outer to inner: DRAM, the global buffer, then register files in report order."""
    names = list(report.accesses_by_level) + [k for k in report.traffic_by_level
                                              if k not in report.accesses_by_level]
    names = [n for n in names if n in report.traffic_by_level]
    known = [n for n in _LEVEL_ORDER if n in names]
    return known + [n for n in names if n not in known]


def traffic_totals(report: "Report", bytes_per_word: float | None = None) \
        -> dict[str, dict[str, float]]:
    """``{level: {tensor: reads + writes}}`` in words (or bytes with ``bytes_per_word``)."""
    scale = bytes_per_word or 1
    return {level: {tensor: (counts.get("reads", 0.0) + counts.get("writes", 0.0)) * scale
                    for tensor, counts in report.traffic_by_level[level].items()}
            for level in _levels(report)}


def traffic_by_level_figure(report: "Report", log_y: bool = False,
                            bytes_per_word: float | None = None,
                            title: str | None = None) -> "go.Figure":
    """Stacked bars, one per memory level, one segment per tensor (reads + writes).

    Parameters
    ----------
    report : Report
        A loop-tree report (its ``traffic_by_level`` is in words, for all batches and heads).
    log_y : bool
        Log-scale y axis (the levels differ by orders of magnitude; on a log axis the
        segments' heights are no longer proportional, read the hover or the totals).
    bytes_per_word : float, optional
        Plot bytes instead of words (the hardware's ``word_bits / 8``).
    """
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    unit = "bytes" if bytes_per_word else "words"
    scale = bytes_per_word or 1
    levels = _levels(report)
    totals = traffic_totals(report, bytes_per_word)
    tensors: list[str] = []
    for level in levels:
        tensors += [t for t in report.traffic_by_level[level] if t not in tensors]
    palette = qualitative.D3 + qualitative.Pastel
    figure = go.Figure()
    for k, tensor in enumerate(tensors):
        present = [level for level in levels if tensor in report.traffic_by_level[level]]
        counts = [report.traffic_by_level[level][tensor] for level in present]
        figure.add_trace(go.Bar(
            x=present, y=[totals[level][tensor] for level in present], name=tensor,
            meta="traffic", marker_color=palette[k % len(palette)],
            customdata=[[c.get("reads", 0.0) * scale, c.get("writes", 0.0) * scale]
                        for c in counts],
            hovertemplate=(f"<b>{tensor}</b> @ %{{x}}<br>reads %{{customdata[0]:.4s}} {unit}"
                           f"<br>writes %{{customdata[1]:.4s}} {unit}<extra></extra>")))
    level_totals = [sum(totals[level].values()) for level in levels]
    figure.add_trace(go.Scatter(
        x=levels, y=level_totals, mode="text", meta="totals", showlegend=False,
        text=[_si(v) for v in level_totals], textposition="top center",
        textfont=dict(size=12), hoverinfo="skip"))
    figure.update_layout(
        barmode="stack", template="plotly_white",
        title=title or (f"Traffic per level: {_short(report.mapping)} "
                        f"({_short(report.cascade)}) on {report.hardware}, {report.workload} "
                        f"{report.seq_len:,} tokens"),
        xaxis_title="memory level (outer → inner)",
        yaxis_title=f"reads + writes ({unit}, all batches and heads)",
        legend_title_text="tensor", margin=dict(l=70, r=20, t=70, b=60),
        width=max(640, 170 * len(levels) + 260), height=520)
    if log_y:
        # From just under the smallest segment (the bottom of a stack would hide below the
        # axis otherwise), at most 9 decades under the tallest bar.
        segments = [v for level in totals.values() for v in level.values() if v > 0]
        figure.update_yaxes(type="log", dtick=1, tickformat="~s")
        if segments:
            import math

            top = math.log10(max(level_totals))
            bottom = max(math.log10(min(segments)) - 0.3, top - 9)
            figure.update_yaxes(range=[bottom, top + 0.4])
    else:
        figure.update_yaxes(tickformat="~s",
                            range=[0, (max(level_totals, default=0) * 1.12) or 1])
    return figure


def _short(name: str) -> str:
    """A mapping or cascade name without the directories of a file path."""
    if "/" not in name and "\\" not in name:
        return name
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "mapped-" + base if name.startswith("mapped-") else base  # the mapper's names


def _si(value: float) -> str:
    for factor, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g}{suffix}"
    return f"{value:.3g}"


def traffic_table(report: "Report", bytes_per_word: float | None = None) \
        -> list[Mapping[str, object]]:
    """Rows ``{level, tensor, reads, writes}`` (words, or bytes), outer level first."""
    scale = bytes_per_word or 1
    return [{"level": level, "tensor": tensor, "reads": c.get("reads", 0.0) * scale,
             "writes": c.get("writes", 0.0) * scale}
            for level in _levels(report)
            for tensor, c in report.traffic_by_level[level].items()]
