"""Plotly figure of sequence parallelism (:func:`einsim.cost.device_hierarchy.group_step`):
step time and scaling efficiency against the number of devices, one line per strategy (or
per sequence length).  Returns a :class:`plotly.graph_objects.Figure` of plain data.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

_PALETTE = qualitative.D3
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=60))


def scaling_figure(rows: list[dict], title: str = "") -> go.Figure:
    """Step time (left, log scale) and scaling efficiency (right) against devices G.

    Parameters
    ----------
    rows : list of dict
        Each with ``label`` (a line: a strategy, or a strategy at a sequence length),
        ``devices``, ``step_time_s`` and ``scaling_efficiency`` — the ``summary()`` of a
        :class:`~einsim.cost.device_hierarchy.GroupStep` plus a label.
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=("step time", "scaling efficiency"),
                           horizontal_spacing=0.12)
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(str(row["label"]), []).append(row)
    for number, (label, group) in enumerate(groups.items()):
        group = sorted(group, key=lambda r: r["devices"])
        colour = _PALETTE[number % len(_PALETTE)]
        devices = [r["devices"] for r in group]
        common = dict(x=devices, mode="lines+markers", name=label, legendgroup=label,
                      line=dict(color=colour))
        figure.add_trace(go.Scatter(y=[r["step_time_s"] * 1e3 for r in group],
                                    hovertemplate="G=%{x}: %{y:.4g} ms<extra>" + label
                                    + "</extra>", **common), row=1, col=1)
        figure.add_trace(go.Scatter(y=[r["scaling_efficiency"] for r in group],
                                    hovertemplate="G=%{x}: %{y:.3f}<extra>" + label
                                    + "</extra>", showlegend=False, **common), row=1, col=2)
    for col in (1, 2):
        figure.update_xaxes(type="log", dtick=0.30102999566, title_text="devices G",
                            row=1, col=col)
    figure.update_yaxes(type="log", title_text="ms", row=1, col=1)
    figure.update_yaxes(range=[0, 1.05], title_text="single device ÷ (G × step)", row=1, col=2)
    figure.update_layout(title=title or "Sequence parallelism: step time and scaling efficiency",
                         **_LAYOUT)
    return figure
