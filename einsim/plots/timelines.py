"""Timelines of a mapping from its loop tree (:mod:`einsim.cost.timeline`): the pipeline Gantt
of a spatial array and the SM timeline of a GPU mapping.  Every function returns a
:class:`plotly.graph_objects.Figure` of plain data.

Both draw a few consecutive iterations of the schedule's scope loop in steady state: one row
per unit (per warpgroup when CTAs ping-pong), bars coloured by the tile (iteration of the
scope loop) they work on, so a pipelined mapping shows a later stage finishing the previous
tile beside the current one, and a sequential mapping shows its units taking turns.
"""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from einsim.cost.timeline import Schedule, grid_waves

_PALETTE = qualitative.D3
_EARLIER = "#9e9e9e"  # tiles started before the drawn window
_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=80, b=60))
WAVES_DRAWN = 400
"""Waves of a grid drawn one by one; beyond, runs of equal waves are drawn as one bar."""


def _bars(schedule: Schedule, iterations: int) -> dict[int, list[tuple]]:
    """Bars by tile (-1: tiles begun before the window): (lane, start, length, Einsum, hover)
    over ``iterations`` iterations."""
    bars: dict[int, list[tuple]] = {}
    for k in range(iterations):
        offset = k * schedule.span
        for interval in schedule.intervals:
            tile = k - interval.stage
            folded = f" (all {interval.repeat:,.0f} iterations of the loops inside)" \
                if interval.repeat > 1 else ""
            what = "its share of the pipeline's fill and drain" if interval.kind == "fill" \
                else f"on {interval.unit}"
            hover = (f"{interval.einsum} {what}{folded}<br>tile {tile}"
                     + (f" (stage {interval.stage})" if interval.stage else "")
                     + (f", warpgroup {interval.position}" if schedule.positions > 1 else "")
                     + f"<br>{offset + interval.start:,.1f} to {offset + interval.end:,.1f} "
                       f"cycles ({interval.cycles:,.1f})")
            bars.setdefault(max(tile, -1), []).append(  # -1: every tile before the window
                (schedule.lane(interval), offset + interval.start, interval.cycles,
                 interval.einsum, hover))
    return bars


def _draw_iterations(fig: go.Figure, schedule: Schedule, iterations: int, row=None,
                     legend: bool = True) -> None:
    place = {} if row is None else dict(row=row, col=1)
    for tile, rows in sorted(_bars(schedule, iterations).items()):
        colour = _PALETTE[tile % len(_PALETTE)] if tile >= 0 else _EARLIER
        fig.add_trace(go.Bar(
            y=[r[0] for r in rows], base=[r[1] for r in rows], x=[r[2] for r in rows],
            orientation="h", name=f"tile {tile}" if tile >= 0 else "earlier tiles",
            legendgroup=f"tile {tile}", showlegend=legend,
            marker=dict(color=colour, line=dict(color="white", width=1)),
            text=[r[3] for r in rows], textposition="inside", insidetextanchor="middle",
            hovertext=[r[4] for r in rows], hoverinfo="text"), **place)
    for k in range(iterations + 1):
        line = dict(x=k * schedule.span, line_width=1, line_dash="dot", line_color="#888")
        fig.add_vline(**line, **place) if place else fig.add_vline(**line)


def _notes(schedule: Schedule) -> str:
    parts = []
    if schedule.fill:
        parts.append(f"fill/drain share {schedule.fill:,.3g} cycles per iteration")
    if schedule.outside:
        parts.append("outside the loop: " + ", ".join(
            f"{name} {cycles:,.0f}" for name, cycles in schedule.outside.items()) + " cycles")
    return "; ".join(parts)


def pipeline_gantt_figure(schedule: Schedule, iterations: int = 3) -> go.Figure:
    """``iterations`` consecutive iterations of the schedule's scope loop on each unit.

    In a ``pipeline``, branch k works on the tile k behind, so each tile (colour) spills into
    the next iteration on the later stage's unit; a ``sequence`` leaves one unit idle while
    the other works.  A ``fill/drain`` row (when the tree pipelines) holds each iteration's
    share of the pipeline's fill and drain, which the engine charges once.

    Parameters
    ----------
    schedule : Schedule
        From :func:`einsim.cost.timeline.schedules` (or ``schedules_of(report)``).
    iterations : int
        Iterations drawn (at least 1).
    """
    iterations = max(1, int(iterations))
    fig = go.Figure()
    _draw_iterations(fig, schedule, iterations)
    notes = _notes(schedule)
    fig.update_layout(
        title=schedule.title() + (f"<br><sup>{notes}</sup>" if notes else ""),
        barmode="overlay", height=220 + 40 * len(schedule.lanes), legend_title_text="",
        uniformtext=dict(minsize=8, mode="hide"),
        xaxis=dict(title="cycles", range=[0, iterations * schedule.span]),
        yaxis=dict(title="", categoryorder="array",
                   categoryarray=list(reversed(schedule.lanes))), **_LAYOUT)
    return fig


def sm_timeline_figure(schedules: Schedule | Sequence[Schedule], iterations: int = 2
                       ) -> go.Figure:
    """The SM timeline of a GPU mapping: for each kernel, ``iterations`` iterations of one
    CTA's scope loop on the SM's units (one row per unit and warpgroup), then the grid: the
    waves of CTAs of every kernel (kernels of a ``sequence`` one after another), coloured by
    how full each wave is.

    A kernel whose CTA lasts longer than its units are busy is memory-bound; its panel says so
    (the engine overlaps a CTA's loads with its compute and keeps the longer).

    Parameters
    ----------
    schedules : Schedule or list of Schedule
        The GPU schedules of one mapping (one per kernel), from
        :func:`einsim.cost.timeline.schedules`.
    iterations : int
        Iterations of each CTA's loop drawn.
    """
    chosen = [schedules] if isinstance(schedules, Schedule) else list(schedules)
    if not chosen or any(s.kernel is None for s in chosen):
        raise ValueError("sm_timeline_figure draws GPU schedules (with kernel facts); use "
                         "pipeline_gantt_figure for a spatial array")
    iterations = max(1, int(iterations))
    titles = [_kernel_title(s) for s in chosen] + ["grid: waves of CTAs on the SMs"]
    heights = [max(1, len(s.lanes)) for s in chosen] + [max(2, len(chosen))]
    fig = make_subplots(rows=len(chosen) + 1, cols=1, subplot_titles=titles,
                        row_heights=[h / sum(heights) for h in heights],
                        vertical_spacing=min(0.12, 0.5 / len(titles)))
    for k, schedule in enumerate(chosen, start=1):
        _draw_iterations(fig, schedule, iterations, row=k, legend=(k == 1))
        fig.update_xaxes(title_text="cycles (one CTA)", row=k, col=1,
                         range=[0, iterations * schedule.span])
        fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(schedule.lanes)),
                         row=k, col=1)
    _draw_waves(fig, chosen, len(chosen) + 1)
    first = chosen[0]
    grid = ", ".join(f"kernel {s.kernel['index']}: {s.kernel['ctas']:,.0f} CTAs, "
                     f"{sum(w['count'] for w in grid_waves(s.kernel)):,} wave(s)"
                     for s in chosen)
    fig.update_layout(title=f"{first.mapping} on {first.hardware}: SM timeline<br>"
                            f"<sup>{grid}</sup>", barmode="overlay", legend_title_text="",
                      uniformtext=dict(minsize=8, mode="hide"),
                      height=260 + 45 * sum(heights), **_LAYOUT)
    return fig


def _kernel_title(schedule: Schedule) -> str:
    kernel = schedule.kernel
    where = f"loop {schedule.variable} ({schedule.trips:,.6g} per CTA)" if schedule.variable \
        else "the CTA"
    text = f"kernel {kernel['index']} ({kernel['path']}): one iteration of {where}"
    if schedule.memory_bound:
        text += (f" — memory-bound: a CTA lasts {kernel['chunk_cycles']:,.0f} cycles, its "
                 f"units are busy {schedule.total:,.0f}")
    notes = _notes(schedule)
    return text + (f"<br>{notes}" if notes else "")


def _draw_waves(fig: go.Figure, chosen: list[Schedule], row: int) -> None:
    """Each kernel's waves on its own row, kernels one after another."""
    start = 0.0
    for schedule in chosen:
        kernel, clock = schedule.kernel, schedule.clock_hz
        lane = f"kernel {kernel['index']}"
        bars, waves = [], grid_waves(kernel, clock)
        single = sum(w["count"] for w in waves) <= WAVES_DRAWN
        for wave in waves:
            repeats = range(wave["count"]) if single else [None]
            for r in repeats:
                offset = wave["start_s"] + (r or 0) * wave["seconds"]
                length = wave["seconds"] * (1 if single else wave["count"])
                first = wave["first"] + (r or 0)
                label = f"wave {first}" if single or wave["count"] == 1 else \
                    f"waves {wave['first']} to {wave['first'] + wave['count'] - 1}"
                bars.append((start + offset, length, wave["ctas"] / wave["capacity"],
                             f"{label}: {wave['ctas']:,} CTAs of {wave['capacity']:,} slots "
                             f"({wave['chunks']:,} chunks)<br>{(start + offset) * 1e6:,.2f} to "
                             f"{(start + offset + length) * 1e6:,.2f} µs"))
        fig.add_trace(go.Bar(
            y=[lane] * len(bars), base=[b[0] * 1e6 for b in bars], x=[b[1] * 1e6 for b in bars],
            orientation="h", showlegend=False, name=lane,
            marker=dict(color=[b[2] for b in bars], colorscale="Blues", cmin=0, cmax=1,
                        line=dict(color="white", width=0.5)),
            hovertext=[b[3] for b in bars], hoverinfo="text"), row=row, col=1)
        start += kernel["cycles"] / clock
    fig.update_xaxes(title_text="time (µs)", row=row, col=1)
    fig.update_yaxes(autorange="reversed", row=row, col=1)


def schedule_figure(schedules: Schedule | Sequence[Schedule], iterations: int = 3
                    ) -> go.Figure:
    """The SM timeline of GPU schedules, the pipeline Gantt of a spatial array's."""
    chosen = [schedules] if isinstance(schedules, Schedule) else list(schedules)
    if chosen and chosen[0].kernel is not None:
        return sm_timeline_figure(chosen, iterations=min(iterations, 2))
    return pipeline_gantt_figure(chosen[0], iterations)


def unavailable_figure(title: str, reason: str) -> go.Figure:
    """A placeholder naming why no schedule could be drawn."""
    fig = go.Figure()
    fig.add_annotation(text=reason, showarrow=False, x=0.5, y=0.5, xref="paper",
                       yref="paper")
    fig.update_layout(title=title, height=200, xaxis=dict(visible=False),
                      yaxis=dict(visible=False), **_LAYOUT)
    return fig


__all__ = ["pipeline_gantt_figure", "sm_timeline_figure", "schedule_figure",
           "unavailable_figure"]
