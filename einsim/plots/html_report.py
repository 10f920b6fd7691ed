"""Self-contained HTML reports: the inputs of a command, its results as tables, its figures.

One page per report, with plotly.js inlined once (the page opens offline).  Every figure is
a ``div.plotly-graph-div`` with id ``plot-<name>`` inside a ``section.einsim-figure`` with id
``figure-<name>``.  The ``*_page`` functions build the page of one command from its JSON
result (what ``einsim COMMAND --json`` prints) and the extra data its figures need; ``einsim
report COMMAND --out page.html`` (:mod:`einsim.cli.report`) writes them.
"""

from __future__ import annotations

import contextlib
import datetime
import html
import re
from pathlib import Path
from typing import Any, Iterable

import plotly.graph_objects as go

import einsim
from einsim.cli.json_output import dumps

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
pre.command { background: #f4f4f8; padding: 0.8em; white-space: pre-wrap; }
.table-wrap { overflow-x: auto; margin-bottom: 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; }
caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #eef; } td:first-child, th:first-child { text-align: left; }
section.einsim-figure { margin: 1.5em 0; }
"""


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, (dict, list, tuple)):
        return dumps(value, indent=None)
    return str(value)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _flat(row: dict) -> dict:
    """One level of nested dicts of scalars becomes ``key.sub`` columns."""
    out = {}
    for key, value in row.items():
        if isinstance(value, dict) and value and not any(
                isinstance(v, (dict, list)) for v in value.values()):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _table(header: list[str], rows: Iterable[list], caption: str) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return (f'<div class="table-wrap"><table class="einsim-table"><caption>'
            f"{html.escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}"
            "</tbody></table></div>")


def tables(data: Any, caption: str) -> list[str]:
    """HTML tables of a JSON-able result.

    A dict becomes a name/value table of its scalars (nested dicts flattened to ``key.sub``)
    followed by one table per list of dicts it holds; a list of dicts becomes one table, a row
    per item, whose own lists of dicts follow as tables of their own.
    """
    if _is_rows(data):
        rows = [_flat(r) for r in data]
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        cells = [[f"{len(r[c])} rows (below)" if _is_rows(r.get(c)) else r.get(c)
                  for c in columns] for r in rows]
        out = [_table(columns, cells, caption)]
        for k, row in enumerate(data):
            label = row.get("mapping") or row.get("name") or row.get("label") or f"#{k}"
            for key, value in row.items():
                if _is_rows(value):
                    out += tables(value, f"{caption}: {label}: {key}")
        return out
    if not isinstance(data, dict):
        return [_table(["value"], [[data]], caption)]
    scalars = _flat({k: v for k, v in data.items() if not _is_rows(v)})
    out = [_table(["quantity", "value"], scalars.items(), caption)] if scalars else []
    for key, value in data.items():
        if _is_rows(value):
            out += tables(value, f"{caption}: {key}")
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "figure"


def page(title: str, command: str, inputs: dict, results: list[str],
         figures: list[tuple[str, go.Figure]]) -> str:
    """The HTML page: title, the command and its inputs, result tables, then the figures.

    Parameters
    ----------
    title : str
        Page title and heading.
    command : str
        The command line that produced the report.
    inputs : dict
        Every parameter of the command with its value.
    results : list of str
        HTML tables (:func:`tables`).
    figures : list of (str, Figure)
        Named figures; names become the ids ``figure-<name>`` and ``plot-<name>``.
    """
    parts, seen = [], set()
    for k, (name, fig) in enumerate(figures):
        slug = _slug(name)
        while slug in seen:
            slug += "-x"
        seen.add(slug)
        div = fig.to_html(full_html=False, include_plotlyjs=(k == 0), div_id=f"plot-{slug}",
                          default_height="520px", config={"displaylogo": False})
        parts.append(f'<section class="einsim-figure" id="figure-{slug}">{div}</section>')
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1><p class='meta'>einsim {einsim.__version__}, {stamp}</p>"
        f"<h2>Inputs</h2><pre class='command'>{html.escape(command)}</pre>"
        + _table(["parameter", "value"], inputs.items(), "parameters of the command")
        + "<h2>Results</h2>" + "\n".join(results)
        + f"<h2>Figures</h2><p>{len(parts)} interactive figure(s).</p>\n" + "\n".join(parts)
        + "\n</body></html>\n")


def write(path: str | Path, text: str) -> Path:
    """Write a page atomically: a temporary file beside ``path``, renamed over it when complete,
    so a full disk or an interruption never leaves a truncated page."""
    import os
    import tempfile

    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def evaluate_page(result: dict, command: str, inputs: dict) -> str:
    """``einsim evaluate``: report table(s), utilization, energy, per-Einsum cycles, Gantt."""
    from einsim.plots import cost as cost_plots
    from einsim.cost import Report
    from einsim.search.sweeps import point_of

    dumps = result.get("comparison") or [result]
    reports = [Report.model_validate({k: v for k, v in d.items() if k != "mapped_execution"})
               for d in dumps]
    figures = [("utilization", cost_plots.utilization_figure([point_of(r, {}) for r in reports])),
               ("energy", cost_plots.energy_breakdown_figure(reports))]
    for r in reports:
        figures += [(f"einsums {r.mapping}", cost_plots.einsum_breakdown_figure(r)),
                    (f"gantt {r.mapping}", cost_plots.pipeline_gantt_figure(
                        r, mapping=inputs.get("mapping") if len(reports) == 1 else None))]
    names = " vs ".join(r.mapping for r in reports)
    return page(f"einsim evaluate: {names}", command, inputs, tables(result, "evaluate"),
                figures)


def sweep_page(result: dict, command: str, inputs: dict, label: str) -> str:
    """``einsim sweep``: Pareto front, utilization against sequence length, every point."""
    from einsim.plots.cost import pareto_figure, utilization_figure
    from einsim.search.sweeps import flat_row

    points = result["points"]
    feasible = [p for p in points if p["feasible"]]
    x = "area_mm2" if len({p.get("area_mm2") for p in feasible}) > 1 else "energy_j"
    figures = [("pareto", pareto_figure(points, x=x, y="latency_s", label=label)),
               ("utilization", utilization_figure(points))]
    results = (tables({"points": len(points), "feasible": len(feasible),
                       "on the Pareto front": len(result["pareto"])}, "sweep")
               + tables([flat_row(p) for p in points], "every point")
               + tables([flat_row(p) for p in result["pareto"]], "Pareto set"))
    return page("einsim sweep", command, inputs, results, figures)


def gna_page(result: dict, command: str, inputs: dict, problem: dict, gpu=None,
             heads: int = 1, head_dim: int = 128) -> str:
    """``einsim gna``: visited KV tiles per Q tile and the bounds against stride.

    ``problem`` holds the :func:`einsim.gna.problem` arguments other than the tiles, which
    come from the (best) result.
    """
    from einsim.gna import problem as make_problem
    from einsim.plots.gpu import speedup_vs_stride_figure, visited_tiles_heatmap

    q, kv = result["q_tile"], result["kv_tile"]
    spec = make_problem(problem["shape"], problem["window"], q, kv)
    largest = max(spec.window)
    strides = sorted({s for s in (*range(1, 17), *(2 ** k for k in range(5, 12)))
                      if s <= largest})
    figures = [("visited tiles", visited_tiles_heatmap(q_tile=q, kv_tile=kv, **problem)),
               ("speedup vs stride", speedup_vs_stride_figure(
                   problem["shape"], problem["window"], q, kv, strides, gpu=gpu, heads=heads,
                   head_dim=head_dim))]
    shape = " x ".join(map(str, spec.shape))
    return page(f"einsim gna: {shape} tokens", command, inputs, tables(result, "gna"), figures)


def decode_page(result: dict, command: str, inputs: dict, estimates: dict, schedule: str,
                gpu_name: str) -> str:
    """``einsim decode``: the schedule's SM timeline and a comparison of every schedule.

    ``estimates`` maps schedule names to :func:`einsim.kernels.decode.estimate` results.
    """
    from einsim.plots.gpu import sm_timeline_figure

    comparison = [{"schedule": name, **e.summary()} for name, e in estimates.items()]
    figures = [(f"timeline {schedule}",
                sm_timeline_figure(estimates[schedule], title=f"{schedule} on {gpu_name}"))]
    return page(f"einsim decode: {schedule} on {gpu_name}", command, inputs,
                tables(result, f"decode ({schedule})")
                + tables(comparison, "every decode schedule"), figures)


def offload_page(result: dict, command: str, inputs: dict, summaries: dict,
                 curve: list[dict], model: str) -> str:
    """``einsim offload``: time split of one iteration and tokens per dollar against context.

    ``summaries`` maps deployment labels to :meth:`einsim.kernels.lamina.Iteration.summary` at the
    configured context; ``curve`` holds ``label``, ``context`` and ``tokens_per_dollar`` rows.
    """
    from einsim.plots.offload import time_split_figure, tokens_per_dollar_figure

    figures = [("time split", time_split_figure(summaries, title=f"{model}: time split of "
                                                "one decode iteration")),
               ("tokens per dollar", tokens_per_dollar_figure(
                   curve, title=f"{model}: tokens per dollar against context"))]
    by_context: dict[int, dict] = {}
    for row in curve:
        by_context.setdefault(row["context"], {"context": row["context"]})[row["label"]] = \
            row["tokens_per_dollar"]
    return page(f"einsim offload: {model}", command, inputs,
                tables(result, "offload") + tables(list(by_context.values()),
                                                   "tokens per dollar against context"),
                figures)
