"""Plotly tile maps of sparse masks: every (Q tile, KV tile) pair skipped, partial or full.

A partial tile has unmasked and masked points (a kernel visits it and masks elements); a full
tile has no masked point; a skipped tile has no unmasked point.  The figure is plain data, so it
can be written to HTML or shown in a notebook.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

_COLOURS = ("#f2f2f2", "#ff7f0e", "#1f77b4")
_NAMES = ("skipped", "partial (element masking)", "full")


def tile_map_figure(tile_map, title: str = "") -> go.Figure:
    """A heatmap of ``tile_map.grid`` (from :func:`einsim.sparsity.sparse_tile_map`): rows are
    Q tiles, columns KV tiles; the title carries the bounds.

    Parameters
    ----------
    tile_map : TileMap
        The bounds and the (Q tiles x KV tiles) map of 0 skipped, 1 partial, 2 full.
    title : str
        Figure title; the cascade name and bounds are appended.
    """
    b = tile_map.bounds
    grid = np.asarray(tile_map.grid, dtype=np.int8)
    scale = []
    for value, colour in enumerate(_COLOURS):  # three flat bands of a 0..2 colour scale
        scale += [[value / 3, colour], [(value + 1) / 3, colour]]
    counts = [int((grid == v).sum()) for v in range(3)]
    small = grid.size <= 1 << 16  # hover names only where the page stays small
    fig = go.Figure(go.Heatmap(
        z=grid, zmin=-0.5, zmax=2.5, colorscale=scale, xgap=1 if grid.shape[1] <= 128 else 0,
        ygap=1 if grid.shape[0] <= 128 else 0,
        customdata=np.array(_NAMES, dtype=object)[grid] if small else None,
        colorbar=dict(tickvals=[0, 1, 2], ticktext=[f"{n}: {c:,}" for n, c in
                                                     zip(_NAMES, counts)]),
        hovertemplate="Q tile %{y}, KV tile %{x}: "
                      + ("%{customdata}" if small else "%{z} (0 skipped, 1 partial, 2 full)")
                      + "<extra></extra>"))
    summary = (f"{b.cascade}: P={b.seq_len:,}, M={b.kv_len:,}, tiles {b.q_tile}x{b.kv_tile}; "
               f"tile bound {b.tile_speedup_bound:.3g}x, FLOP bound {b.flop_speedup_bound:.3g}x")
    if b.predicted_speedup is not None:
        summary += f", {b.hw} {b.predicted_speedup:.3g}x"
    fig.update_layout(
        template="plotly_white", margin=dict(l=60, r=20, t=70, b=60),
        title=f"{title} — {summary}" if title else summary,
        xaxis=dict(title="KV tile", side="top", constrain="domain"),
        yaxis=dict(title="Q tile", autorange="reversed", scaleanchor="x"))
    return fig
