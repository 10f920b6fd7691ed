"""Plotly figures of the GPU models: SM timelines of decode schedules, visited-KV-tile maps and
stride sweeps of generalized neighborhood attention (GNA), and a roofline with attention
variants.  Every function returns a :class:`plotly.graph_objects.Figure` of plain data.
"""

from __future__ import annotations


import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from einsim.gna import GNAError, analyze, axis_counts, gna, problem

_PALETTE = qualitative.D3
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=60))


def sm_timeline_figure(result, title: str = "") -> go.Figure:
    """Every CTA of a decode schedule as a bar on its CTA slot (SM), coloured by wave.

    The k-th CTA a slot runs is wave k, so quantization shows as a partly filled last wave
    and tails as slots idle before the end of the kernel.  A dashed line marks the end of the
    CTAs and a shaded band the merge of partial states (split schedules).  One bar trace holds
    all CTAs, so grids of thousands of CTAs draw quickly.

    Parameters
    ----------
    result : DecodeEstimate
        From :func:`einsim.kernels.decode.estimate`.
    title : str
        Figure title; a summary of the estimate is appended.
    """
    rows = sorted(result.timeline, key=lambda r: (r["slot"], r["start_s"]))
    slot = np.array([r["slot"] for r in rows], dtype=int)
    start = np.array([r["start_s"] for r in rows]) * 1e6
    end = np.array([r["end_s"] for r in rows]) * 1e6
    cta = np.array([r["cta"] for r in rows], dtype=int)
    wave = np.zeros(len(rows), dtype=int)
    if len(rows):
        first = np.r_[True, slot[1:] != slot[:-1]]
        position = np.arange(len(rows))
        wave = position - np.maximum.accumulate(np.where(first, position, 0))
    colours = [_PALETTE[w % len(_PALETTE)] for w in wave]
    fig = go.Figure(go.Bar(
        y=slot, base=start, x=end - start, orientation="h", width=0.85,
        marker=dict(color=colours, line=dict(width=0)), name="CTAs",
        customdata=np.stack([cta, wave, start, end], axis=-1) if len(rows) else None,
        hovertemplate="CTA %{customdata[0]} (wave %{customdata[1]}) on slot %{y}<br>"
                      "%{customdata[2]:.2f} to %{customdata[3]:.2f} µs<extra></extra>"))
    span = float(end.max()) if len(rows) else 0.0
    fig.add_vline(x=span, line_dash="dash", line_color="#444")
    if result.merge_s > 0:
        fig.add_vrect(x0=span, x1=span + result.merge_s * 1e6, fillcolor="#d62728",
                      opacity=0.25, line_width=0, annotation_text="merge",
                      annotation_position="top left")
    summary = (f"{result.ctas} CTAs, {result.waves} wave(s), {result.splits} split(s), "
               f"SM utilization {result.sm_utilization:.0%}, {result.latency_s * 1e6:.1f} µs")
    fig.update_layout(
        title=f"{title}: {summary}" if title else summary, showlegend=False, bargap=0.1,
        xaxis=dict(title="time (µs)", rangemode="tozero"),
        yaxis=dict(title="CTA slot (SM)", autorange="reversed"),
        height=max(300, min(900, 4 * (int(slot.max()) + 1 if len(rows) else 1) + 120)),
        **_LAYOUT)
    return fig


def visited_tiles(shape, window, q_tile, kv_tile, stride=1, dilation=1, causal=False,
                  kv_tiling="static") -> np.ndarray:
    """Visited KV tiles of every Q tile, shaped by the Q-tile grid (outer product of axes).

    Parameters
    ----------
    shape, window, q_tile, kv_tile, stride, dilation, causal, kv_tiling
        As :func:`einsim.gna.problem`.
    """
    spec = problem(shape, window, q_tile, kv_tile, stride, dilation, causal, kv_tiling)
    counts = np.ones(())
    for a in range(len(spec.shape)):
        axis = axis_counts(spec.shape[a], spec.window[a], spec.stride[a], spec.dilation[a],
                           spec.causal[a], spec.q_tile[a], spec.kv_tile[a],
                           spec.kv_tiling == "dynamic")
        counts = np.multiply.outer(counts, axis.visited)
    return counts.astype(int)


def visited_tiles_heatmap(shape, window, q_tile, kv_tile, stride=1, dilation=1, causal=False,
                          kv_tiling="static", slice_axis0: int | None = None) -> go.Figure:
    """KV tiles visited by every Q tile: bars (1-D), a heatmap (2-D) or a heatmap of one
    axis-0 slice (3-D, default the middle Q tile of axis 0).

    Parameters
    ----------
    shape, window, q_tile, kv_tile, stride, dilation, causal, kv_tiling
        As :func:`einsim.gna.problem`.
    slice_axis0 : int, optional
        3-D only: the Q-tile index along axis 0 to show.
    """
    counts = visited_tiles(shape, window, q_tile, kv_tile, stride, dilation, causal, kv_tiling)
    result = gna(shape, window, q_tile, kv_tile, stride, dilation, causal, kv_tiling)
    label = (f"worst {result.worst_kv_tiles}, mean {counts.mean():.1f} of "
             f"{result.dense_kv_tiles} KV tiles")
    fig = go.Figure()
    if counts.ndim == 1:
        fig.add_trace(go.Bar(x=np.arange(counts.size), y=counts, marker_color=_PALETTE[0],
                             hovertemplate="Q tile %{x}: %{y} KV tiles<extra></extra>"))
        fig.update_layout(xaxis_title="Q tile", yaxis_title="visited KV tiles")
        where = ""
    else:
        if counts.ndim == 3:
            index = counts.shape[0] // 2 if slice_axis0 is None else int(slice_axis0)
            if not 0 <= index < counts.shape[0]:
                raise GNAError(f"slice_axis0 {index}: expected 0 to {counts.shape[0] - 1}")
            plane, where = counts[index], f", axis-0 Q tile {index} of {counts.shape[0]}"
        else:
            plane, where = counts, ""
        fig.add_trace(go.Heatmap(
            z=plane, colorscale="Viridis", colorbar=dict(title="KV tiles"),
            zmin=int(counts.min()), zmax=int(counts.max()),
            hovertemplate="Q tile (%{y}, %{x}): %{z} KV tiles<extra></extra>"))
        names = ("axis 0", "axis 1") if counts.ndim == 2 else ("axis 1", "axis 2")
        fig.update_layout(xaxis_title=f"Q tile along {names[1]}",
                          yaxis=dict(title=f"Q tile along {names[0]}", autorange="reversed",
                                     scaleanchor="x"))
    fig.update_layout(title=f"Visited KV tiles per Q tile: {' x '.join(map(str, shape))} "
                            f"tokens, window {_dims(window)}, tiles {_dims(q_tile)}/"
                            f"{_dims(kv_tile)}{where}<br><sup>{label}</sup>", **_LAYOUT)
    return fig


def _dims(value) -> str:
    return " x ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def speedup_vs_stride_figure(shape, window, q_tile, kv_tile, strides: list,
                             axis: int | None = None, gpu=None, heads: int = 1,
                             head_dim: int = 128) -> go.Figure:
    """Worst-tile and mean tile bounds, the FLOP bound and (with ``gpu``) the predicted
    speedup against stride; stars mark fully block-sparse strides.

    Parameters
    ----------
    shape, window, q_tile, kv_tile
        As :func:`einsim.gna.problem`.
    strides : list of int
        Strides to try; one larger than the window of an axis it applies to is skipped.
    axis : int, optional
        Stride only this axis (the others stay 1); default every axis.
    gpu : GPU, optional
        A :func:`hw_models.gpu_sm.load_gpu` preset for :func:`einsim.kernels.fna.predict`.
    heads, head_dim : int
        The attention layer, for the predicted runtime.
    """
    dims = len(shape)
    rows = []
    for s in strides:
        stride = tuple(s if axis is None or a == axis else 1 for a in range(dims))
        try:
            spec = problem(shape, window, q_tile, kv_tile, stride)
        except GNAError:
            continue
        r = analyze(spec)
        row = dict(stride=s, worst=r.tile_upper_bound, mean=r.tile_upper_bound_mean,
                   flop=r.flop_upper_bound, sparse=r.fully_block_sparse)
        if gpu is not None:
            from einsim.kernels.fna import predict

            row["predicted"] = float(predict(gpu, spec, heads=heads, head_dim=head_dim)["speedup"])
        rows.append(row)
    x = [r["stride"] for r in rows]
    fig = go.Figure()
    lines = [("flop", "FLOP bound", "dot"), ("mean", "mean-tile bound", "dash"),
             ("worst", "worst-tile bound", "solid")]
    if gpu is not None:
        lines.append(("predicted", f"predicted on {gpu.name}", "solid"))
    for k, (key, name, dash) in enumerate(lines):
        fig.add_trace(go.Scatter(x=x, y=[r[key] for r in rows], mode="lines+markers", name=name,
                                 line=dict(color=_PALETTE[k], dash=dash),
                                 hovertemplate=f"{name}<br>stride %{{x}}: %{{y:.2f}}x"
                                               "<extra></extra>"))
    sparse = [r for r in rows if r["sparse"]]
    fig.add_trace(go.Scatter(x=[r["stride"] for r in sparse], y=[r["worst"] for r in sparse],
                             mode="markers", name="fully block-sparse",
                             marker=dict(symbol="star", size=14, color="gold",
                                         line=dict(color="black", width=1))))
    where = "every axis" if axis is None else f"axis {axis}"
    fig.update_layout(title=f"GNA speedup vs stride on {where}: {_dims(tuple(shape))} tokens, "
                            f"window {_dims(window)}, tiles {_dims(q_tile)}/{_dims(kv_tile)}",
                      xaxis_title="stride", yaxis=dict(title="speedup over dense (x)",
                                                       rangemode="tozero"), **_LAYOUT)
    return fig
