"""CLI commands of the cost model: ``evaluate``, ``sweep`` and ``map`` (registered on the app)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from einsim.cli import WORKLOAD, UsageFailure, app, console, emit
from einsim.errors import MappingError
from einsim.workloads import parse_seq_len, parse_seq_lens

if TYPE_CHECKING:  # pragma: no cover
    from rich.table import Table

    from einsim.cost import Report

# sympy, the cost model and rich are imported by the commands that need them: a sweep whose
# compiled tree is cached (einsim.cost.compiled_cache) runs without sympy

_HW = typer.Option(None, "--hw", help="Hardware preset or YAML (default: the mapping's).")
_PARAM = typer.Option([], "--param", "-p", help="name=value (repeatable): a hardware field "
                      "(pe_dim, global_buffer_bytes, dram_bandwidth, clock_hz) or a mapping "
                      "parameter (P1, rows).")
_JSON = typer.Option(False, "--json", help="Machine-readable output.")
_CASCADE = typer.Option(None, "--cascade", "-c", help="A library cascade or a cascade file; "
                        "replaces a loop-tree mapping's own cascade (Einsum names must match).")


def _number(text: str, name: str):
    try:
        value = float(text)
    except ValueError:
        raise UsageFailure(f"--param {name}={text}: expected a number") from None
    return int(value) if value.is_integer() and "e" not in text.lower() and "." not in text \
        else value


def _pairs(items: list[str], multiple: bool) -> dict:
    parameters = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageFailure(f"--param {item!r}: expected name=value"
                               + (" or name=v1,v2,..." if multiple else ""))
        values = [_number(v.strip(), name) for v in value.split(",")] if multiple \
            else _number(value.strip(), name)
        parameters[name.strip()] = values
    return parameters


def _writable(path: Optional[Path], option: str) -> None:
    if path is not None and not path.resolve().parent.is_dir():
        raise UsageFailure(f"{option} {path}: the folder {path.resolve().parent} does not exist")


def _report_table(reports: list[Report], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    for report in reports:
        table.add_column(report.mapping, justify="right")
    rows = [
        ("hardware", lambda r: r.hardware),
        ("passes over M", lambda r: str(r.passes)),
        ("parameters", lambda r: ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in r.parameters.items()) or "-"),
        ("latency", lambda r: f"{r.latency_s:.4g} s"),
        ("compute / memory", lambda r: f"{r.compute_latency_s:.3g} / {r.memory_latency_s:.3g} s"),
        ("utilization", lambda r: ", ".join(f"{unit} {share:.1%}"
                                            for unit, share in r.utilization.items())),
        ("energy", lambda r: f"{r.energy_j:.4g} J"),
        ("DRAM traffic", lambda r: f"{r.traffic_bytes / 2**30:.4g} GiB"),
        ("buffer used / capacity", lambda r: f"{r.buffer_bytes / 2**20:.3g} / "
                                             f"{r.buffer_capacity_bytes / 2**20:.3g} MiB"),
        ("area", lambda r: "-" if r.area_mm2 is None else f"{r.area_mm2:.1f} mm²"),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(r) for r in reports))
    return table


@app.command()
def evaluate(mapping: Optional[str] = typer.Option(None, "--mapping", "-m", help="Mapping name "
                                                   "or YAML; omit to compare FuseMax with FLAT."),
             hw: Optional[str] = _HW, workload: str = WORKLOAD,
             seq_len: Optional[str] = typer.Option(None, "--seq-len", "-n", help="e.g. 4096, "
                                                   "64K, 1M (default: the workload's own)."),
             param: list[str] = _PARAM,
             objective: str = typer.Option("latency", "--objective", help="What the mapper "
                                           "minimises for free parameters: latency, energy, edp."),
             scope: str = typer.Option("attention", "--scope", help="attention or end-to-end."),
             check: bool = typer.Option(False, "--check", help="First execute the mapping's "
                                        "tiling numerically on a small problem."),
             plot: Optional[Path] = typer.Option(None, "--plot", help="Write per-Einsum, "
                                                 "pipeline and energy figures (HTML)."),
             trace: Optional[Path] = typer.Option(None, "--trace", help="Write the schedule "
                                                  "of each mapping (iterations of its tile "
                                                  "loop per unit; a GPU's waves of CTAs) as a "
                                                  "Chrome / Perfetto trace (JSON)."),
             cascade: Optional[str] = _CASCADE, as_json: bool = _JSON):
    """Cost of a mapping on a spatial array or a GPU: latency, utilization, energy, area
    (with --cascade and no --mapping, of the tree the mapper finds)."""
    from einsim.cost.front_door import evaluate as evaluate_report
    from einsim.cost.front_door import execute_mapping
    from einsim.workloads import load_workload

    parameters = _pairs(param, multiple=False)
    length = parse_seq_len(seq_len) if seq_len else None
    _writable(plot, "--plot")
    _trace_file(trace)
    if cascade and not mapping:  # the mapper finds the tree (any cascade, any hardware)
        if check or scope != "attention":
            raise UsageFailure("--cascade without --mapping evaluates the mapper's tree: use "
                               "'einsim map --cascade ...' and --check/--scope on its YAML")
        from einsim.search.mapper import map_cascade

        found = map_cascade(None, cascade, hw, workload, length,
                            objective, parameters)
        if trace:
            import yaml

            from einsim.cost.tree import mapping_from_document

            tree = mapping_from_document(yaml.safe_load(found.mapping_yaml), "the mapper's tree")
            _write_trace([(found.result.best, tree)], trace, workload, hw, parameters, cascade)
        if as_json:
            emit({**found.result.best.model_dump(), "mapping_yaml": found.mapping_yaml})
            return
        console.print(_report_table([found.result.best], f"{cascade} (tree found by the mapper)"))
        return
    names = [mapping] if mapping else ["flat", "fusemax"]
    checks = {name: execute_mapping(name, cascade=cascade) for name in names} if check else {}
    reports = [evaluate_report(name, hw, workload, length, parameters, objective, scope,
                               cascade) for name in names]
    if plot or trace:
        schedules = _schedules(zip(reports, names), workload, hw, parameters, cascade)
    if plot:
        _write_figures(reports, plot, schedules)
        sys.stderr.write(f"wrote {plot}\n")
    if trace:
        _write_trace(zip(reports, names), trace, workload, hw, parameters, cascade, schedules)
    for name, result in checks.items():
        if not result.ok:
            raise MappingError(f"mapping {name}: its tiling computes a wrong answer (max "
                               f"relative error {result.max_rel_error:.2e})")
    if as_json:
        if mapping:
            emit({**reports[0].model_dump(), **({"mapped_execution": checks[mapping].model_dump()}
                                                 if check else {})})
        else:
            flat, fusemax = reports
            emit({"comparison": [r.model_dump() for r in reports],
                  "speedup": flat.latency_s / fusemax.latency_s,
                  "energy_ratio": fusemax.energy_j / flat.energy_j})
        return
    problem = load_workload(workload, length)
    title = f"{reports[0].workload}, {problem.P:,} tokens, batch {problem.batch}" \
        + (", end-to-end" if scope == "end-to-end" else "")
    console.print(_report_table(reports, title))
    for name, result in checks.items():
        console.print(f"mapped execution of {name}: matches the reference "
                      f"(max relative error {result.max_rel_error:.1e})")
    if not mapping:
        flat, fusemax = reports
        console.print(f"FuseMax is [bold]{flat.latency_s / fusemax.latency_s:.2f}x[/bold] faster "
                      f"than FLAT at {fusemax.energy_j / flat.energy_j:.0%} of its energy.")


def _trace_file(path: Optional[Path]) -> None:
    """``--trace FILE``: its folder exists and it is not itself a folder (checked before the
    evaluation runs)."""
    _writable(path, "--trace")
    if path is not None and path.is_dir():
        raise UsageFailure(f"--trace {path}: is a folder; give a file name, e.g. "
                           f"{path / 'trace.json'}")


def _schedules(evaluated, workload, hw, parameters, cascade) -> list:
    """The schedules of each (report, mapping name or tree) (:mod:`einsim.cost.timeline`)."""
    from einsim.cost.timeline import schedules_of

    return [schedules_of(report, mapping, workload=workload, hardware=hw,
                         parameters=parameters, cascade=cascade)
            for report, mapping in evaluated]


def _write_trace(evaluated, path: Path, workload, hw, parameters, cascade,
                 schedules: list | None = None) -> None:
    from einsim.traces import chrome_trace, write_trace

    evaluated = list(evaluated)
    if schedules is None:
        schedules = _schedules(evaluated, workload, hw, parameters, cascade)
    document = chrome_trace([s for group in schedules for s in group], metadata={
        "command": "einsim evaluate", "mappings": [r.mapping for r, _ in evaluated],
        "workload": evaluated[0][0].workload, "seq_len": evaluated[0][0].seq_len,
        "latency_s": {r.mapping: r.latency_s for r, _ in evaluated}})
    write_trace(path, document)
    sys.stderr.write(f"wrote {path}\n")


def _write_figures(reports: list[Report], path: Path, schedules: list) -> None:
    from einsim.plots import cost as cost_plots

    figures = [cost_plots.energy_breakdown_figure(reports)]
    for report, chosen in zip(reports, schedules):
        figures += [cost_plots.einsum_breakdown_figure(report),
                    cost_plots.pipeline_gantt_figure(report, schedules=chosen)]
    parts = [f.to_html(full_html=False, include_plotlyjs=(k == 0)) for k, f in enumerate(figures)]
    path.write_text("<html><head><meta charset='utf-8'><title>einsim evaluate</title></head>"
                    "<body>" + "\n".join(parts) + "</body></html>")


@app.command()
def sweep(mapping: str = typer.Option("fusemax", "--mapping", "-m", help="Mapping name or YAML."),
          hw: Optional[str] = _HW, workload: str = WORKLOAD,
          seq_len: str = typer.Option("64K", "--seq-len", "-n", help="N1,N2,... e.g. 1K,64K,1M."),
          param: list[str] = typer.Option([], "--param", "-p", help="name=v1,v2,... "
                                          "(repeatable); the Cartesian product is evaluated."),
          out: Optional[Path] = typer.Option(None, "--out", help="Write every point as it "
                                             "finishes: a .csv file (its experiment in "
                                             "<file>.manifest.json) or a .parquet directory; "
                                             "one writer at a time (<out>.lock)."),
          resume: bool = typer.Option(False, "--resume", help="Continue an existing --out of "
                                      "the same experiment: skip the points it holds, append "
                                      "the rest."),
          no_vectorize: bool = typer.Option(False, "--no-vectorize", help="Evaluate point by "
                                            "point even when the sweep can be vectorized."),
          scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Run point-by-point "
                                                  "sweeps on Dask: local:N (N worker "
                                                  "processes) or tcp://HOST:PORT."),
          plot: Optional[Path] = typer.Option(None, "--plot", help="Write a Pareto plot (HTML)."),
          objective: str = typer.Option("latency", "--objective"),
          cascade: Optional[str] = _CASCADE, as_json: bool = _JSON):
    """Evaluate the Cartesian product of sequence lengths and parameters."""
    import gc

    gc.freeze()  # what the imports made lives as long as the process: no collection walks it
    lengths = parse_seq_lens(seq_len)
    parameters = _pairs(param, multiple=True)
    _writable(out, "--out")
    _writable(plot, "--plot")
    if resume and out is None:
        raise UsageFailure("--resume continues the sweep stored in --out; give --out")
    keep = as_json or plot is not None or _count(lengths, parameters) <= 200

    def run(progress=None):
        from einsim.search.sweeps import run_sweep

        return run_sweep(mapping, workload, lengths, parameters, hw, objective, out=out,
                         resume=resume, vectorize=not no_vectorize, scheduler=scheduler,
                         progress=progress, keep_points=keep, cascade=cascade)

    if as_json:  # no progress bar (and no rich to import)
        result = run()
    else:
        result = _with_progress(run)
    points, front = result.points, result.pareto
    if scheduler and result.engine == "vectorized" and not as_json:
        console.print(f"[dim]vectorized: --scheduler {scheduler} was not needed (pass "
                      "--no-vectorize to evaluate point by point on it)[/dim]")
    if plot:
        from einsim.plots.cost import pareto_figure

        label = next(iter(parameters), "seq_len")
        x = "area_mm2" if len({p.get("area_mm2") for p in points if p["feasible"]}) > 1 \
            else "energy_j"
        pareto_figure(points, x=x, y="latency_s", label=label).write_html(plot)
        sys.stderr.write(f"wrote {plot}\n")
    if as_json:
        from einsim.cli.json_output import write

        write({"points": points, "pareto": front})
        return
    console.print(_sweep_table(mapping, workload, list(parameters), result, out))


def _with_progress(run):
    """``run(progress)`` under a rich progress bar (on the terminal only: elsewhere it would
    leave a blank line)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                               TextColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):  # points per second, as rich measures it
        def render(self, task) -> Text:
            return Text("" if task.speed is None else f"{task.speed:,.0f} pts/s")

    bar = _rich_console()
    with Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                  TimeRemainingColumn(), console=bar, transient=True,
                  disable=not bar.is_terminal) as progress:
        task = progress.add_task("sweep", total=None)

        def advance(done: int, total: int) -> None:
            if progress.tasks[0].total is None:  # the first call: the points stored before
                progress.reset(task, total=total, completed=done)  # (not in the rate)
            else:
                progress.update(task, completed=done)

        return run(advance)


def _rich_console():
    """A rich Console for the progress bar (``einsim.cli.console`` may be a lazy stand-in)."""
    from rich.console import Console

    return console if isinstance(console, Console) else Console()


def _count(lengths: list[int], parameters: dict) -> int:
    """Points in the sweep, once repeated values are removed."""
    from einsim.search.sweeps import distinct

    lengths, parameters = distinct(lengths, parameters)
    count = len(lengths)
    for values in parameters.values():
        count *= len(values)
    return count


def _number_cell(value, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _sweep_table(mapping: str, workload: str, swept: list[str], result, out) -> Table:
    """The sweep's points (its Pareto points only when there are more than 200)."""
    from rich.table import Table

    points, front = result.points, result.pareto
    shown = points if points and result.count <= 200 else front
    caption = None if shown is points else "Pareto points only; " + (
        f"every point is in {out}" if out else "--out keeps every point")
    units = next((list(p["utilization"]) for p in shown if p["feasible"]), ["array2d",
                                                                             "array1d"])[:2]
    labels = {"array2d": "2D util", "array1d": "1D util"}
    table = Table(title=f"sweep of {mapping} on {workload} ({result.count} points, "
                        f"{len(front)} on the Pareto front)", caption=caption)
    for column in swept + ["seq_len", "latency s", "energy J", "area mm²"] + \
            [labels.get(u, f"{u} util") for u in units]:
        table.add_column(column, justify="right")
    on_front = {id(p) for p in front}
    for p in shown:
        head = [str(p.get(k)) for k in swept] + [str(p["seq_len"])]
        if not p["feasible"]:
            table.add_row(*head, "[red]infeasible[/red]", "", "", *([""] * len(units)))
            continue
        mark = "*" if id(p) in on_front else ""
        table.add_row(*head, _number_cell(p["latency_s"], ".4g", mark),
                      _number_cell(p["energy_j"], ".4g"), _number_cell(p.get("area_mm2"), ".1f"),
                      *(_number_cell(p["utilization"].get(u), ".1%") for u in units))
    return table


@app.command(name="map")
def map_(mapping: Optional[str] = typer.Option(None, "--mapping", "-m", help="A loop-tree "
                                               "mapping (name or YAML) whose free parameters "
                                               "to search; omit to search trees for --cascade."),
         cascade: Optional[str] = _CASCADE, hw: Optional[str] = _HW,
         workload: str = WORKLOAD,
         seq_len: Optional[str] = typer.Option(None, "--seq-len", "-n", help="e.g. 64K "
                                               "(default: the workload's own)."),
         objective: str = typer.Option("latency", "--objective",
                                       help="latency, energy or edp."),
         param: list[str] = _PARAM, as_json: bool = _JSON):
    """Search a mapping's free parameters, or (with --cascade and no --mapping) loop trees
    themselves; report the best mapping, its YAML and the Pareto set."""
    from einsim.search.mapper import map_cascade

    found = map_cascade(mapping, cascade, hw, workload,
                        parse_seq_len(seq_len) if seq_len else None, objective,
                        _pairs(param, multiple=False))
    result = found.result
    summary = [{"parameters": r.parameters, "latency_s": r.latency_s, "energy_j": r.energy_j,
                "edp_js": r.latency_s * r.energy_j} for r in result.pareto]
    if as_json:
        emit({**result.best.model_dump(), "mapping_yaml": found.mapping_yaml, "pareto": summary,
              "searched": {"trees": found.trees, "points": found.points},
              "seconds": found.seconds, "objective": objective, "best": result.best.model_dump(),
              "evaluated": result.evaluated, "infeasible": result.infeasible})
        return
    console.print(_report_table([result.best], f"best {result.best.mapping} mapping for "
                                f"{objective} ({found.trees} tree(s), {found.points} points, "
                                f"{result.infeasible} infeasible, {found.seconds:.2f} s)"))
    from rich.table import Table

    table = Table(title="Pareto set (latency, energy)")
    for column in ("parameters", "latency s", "energy J"):
        table.add_column(column)
    for row in summary:
        table.add_row(", ".join(f"{k}={v}" for k, v in row["parameters"].items()),
                      f"{row['latency_s']:.4g}", f"{row['energy_j']:.4g}")
    console.print(table)
    if found.trees and not mapping:
        console.print("[dim]the tree (einsim evaluate --mapping FILE accepts it):[/dim]")
        print(found.mapping_yaml, end="")  # raw: copied from the terminal, it stays YAML
