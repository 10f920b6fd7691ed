"""Plotly figures of attention offloading (:mod:`einsim.kernels.lamina`): tokens per dollar against
context length, iteration time and throughput against batch, and the time split of one decode
iteration.  Every function returns a :class:`plotly.graph_objects.Figure` of plain data.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

_PALETTE = qualitative.D3
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=60))
SIDES = ("compute", "link", "memory")
_SIDE_COLOURS = {"compute": _PALETTE[0], "link": _PALETTE[2], "memory": _PALETTE[1]}


def _tokens_label(n: int | float) -> str:
    """``4096 -> '4K'``, ``1048576 -> '1M'``, other lengths unchanged."""
    n = int(n)
    for size, suffix in ((1 << 20, "M"), (1 << 10, "K")):
        if n >= size and n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def _grouped(rows: list[dict], key: str) -> dict[str, list[dict]]:
    """Rows by ``label`` (first-seen order), each group sorted by ``key``."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["label"], []).append(row)
    return {label: sorted(group, key=lambda r: r[key]) for label, group in groups.items()}


def tokens_per_dollar_figure(rows: list[dict], title: str = "") -> go.Figure:
    """Tokens per dollar against context length, one line per deployment (device mix).

    Parameters
    ----------
    rows : list of dict
        ``label``, ``context`` (tokens) and ``tokens_per_dollar``; ``None`` where the
        deployment cannot serve the context (drawn as a gap).
    title : str
        Figure title.
    """
    fig = go.Figure()
    contexts = sorted({int(r["context"]) for r in rows})
    for k, (label, group) in enumerate(_grouped(rows, "context").items()):
        dashed = label.startswith("homogeneous")
        fig.add_trace(go.Scatter(
            x=[r["context"] for r in group], y=[r["tokens_per_dollar"] for r in group],
            mode="lines+markers", name=label, connectgaps=False,
            line=dict(color="#444" if dashed else _PALETTE[k % len(_PALETTE)],
                      dash="dash" if dashed else "solid"),
            hovertemplate=f"{label}<br>context %{{x:,}}<br>%{{y:,.0f}} tokens/$<extra></extra>"))
    fig.update_layout(
        title=title or "Tokens per dollar against context length",
        xaxis=dict(title="context (tokens)", type="log", tickvals=contexts,
                   ticktext=[_tokens_label(c) for c in contexts]),
        yaxis=dict(title="tokens per dollar", type="log"), **_LAYOUT)
    return fig


def batch_iteration_figure(rows: list[dict], title: str = "") -> go.Figure:
    """Iteration time (solid, left axis) and tokens/s (dotted, right axis) against batch.

    Parameters
    ----------
    rows : list of dict
        ``label`` (e.g. ``lamina`` and ``homogeneous``), ``batch``, ``iteration_s`` and
        ``tokens_per_s`` — e.g. :meth:`einsim.kernels.lamina.Iteration.summary` plus a label.
    title : str
        Figure title.
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    batches = sorted({int(r["batch"]) for r in rows})
    for k, (label, group) in enumerate(_grouped(rows, "batch").items()):
        colour = _PALETTE[k % len(_PALETTE)]
        x = [r["batch"] for r in group]
        fig.add_trace(go.Scatter(
            x=x, y=[r["iteration_s"] * 1e3 for r in group], mode="lines+markers",
            name=f"{label}: iteration", line=dict(color=colour),
            hovertemplate=f"{label}<br>batch %{{x}}<br>%{{y:.2f}} ms<extra></extra>"),
            secondary_y=False)
        fig.add_trace(go.Scatter(
            x=x, y=[r["tokens_per_s"] for r in group], mode="lines+markers",
            name=f"{label}: tokens/s", line=dict(color=colour, dash="dot"),
            marker=dict(symbol="diamond-open"),
            hovertemplate=f"{label}<br>batch %{{x}}<br>%{{y:,.0f}} tokens/s<extra></extra>"),
            secondary_y=True)
    fig.update_xaxes(title_text="batch (sequences)", type="log", tickvals=batches,
                     ticktext=[str(b) for b in batches])
    fig.update_yaxes(title_text="iteration time (ms)", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="tokens/s", rangemode="tozero", showgrid=False,
                     secondary_y=True)
    fig.update_layout(title=title or "Decode iteration time and throughput against batch",
                      **_LAYOUT)
    return fig


def time_split_figure(summaries: dict[str, dict], title: str = "") -> go.Figure:
    """Compute, link and memory (attention) seconds of one iteration, stacked per deployment.

    Each side's busy time over all layers.  With pipelining the sides overlap, so the stack can
    exceed the iteration time, which is drawn as a black diamond on each bar.

    Parameters
    ----------
    summaries : dict
        Deployment label → :meth:`einsim.kernels.lamina.Iteration.summary` (needs ``time_split_s``
        and ``iteration_s``).
    title : str
        Figure title.
    """
    labels = list(summaries)
    fig = go.Figure()
    for side in SIDES:
        fig.add_trace(go.Bar(
            x=labels, y=[summaries[k]["time_split_s"][side] * 1e3 for k in labels], name=side,
            marker_color=_SIDE_COLOURS[side],
            hovertemplate=f"%{{x}}<br>{side}: %{{y:.2f}} ms<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=labels, y=[summaries[k]["iteration_s"] * 1e3 for k in labels], mode="markers",
        name="iteration", marker=dict(symbol="diamond", size=12, color="black"),
        hovertemplate="%{x}<br>iteration: %{y:.2f} ms<extra></extra>"))
    fig.update_layout(title=title or "Time split of one decode iteration", barmode="stack",
                      xaxis=dict(title="deployment"),
                      yaxis=dict(title="busy time per iteration (ms)"), **_LAYOUT)
    return fig
