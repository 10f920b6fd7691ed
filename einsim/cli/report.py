"""``einsim report COMMAND ... --out page.html``: one self-contained HTML page per command.

Each command takes the options of the command it reports on (``evaluate``, ``sweep``, ``gna``,
``decode``, ``offload``), runs that command with ``--json`` for the results (so the tables
hold exactly what ``einsim COMMAND --json`` prints) and adds the figures
(:mod:`einsim.plots.html_report`).  ``sweep`` writes its CSV with ``--csv`` (``--out`` is the page).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import shlex
from pathlib import Path
from typing import Optional

import typer

from einsim.cli import cost as cli_cost
from einsim.cli import gpu as cli_gpu
from einsim.cli import offload as cli_offload
from einsim.plots import html_report as report
from einsim.cli import WORKLOAD, UsageFailure, app, console
from einsim.errors import EinsimError

report_app = typer.Typer(no_args_is_help=True, help="Write a self-contained HTML report "
                         "(inputs, result tables, figures) of evaluate, sweep, gna, decode or "
                         "offload.")
app.add_typer(report_app, name="report")

_OUT = typer.Option(..., "--out", "-o", help="The HTML page to write (refused if it exists, "
                    "unless --force).")
_FORCE = typer.Option(False, "--force", help="Overwrite an existing --out file.")


def _check_out(out: Path, force: bool) -> None:
    if out.is_dir() or not out.parent.is_dir():
        raise UsageFailure(f"--out {out}: not a file in an existing directory")
    if out.exists() or out.is_symlink():
        if not force:
            raise UsageFailure(f"--out {out}: already exists; pass --force to overwrite it")
        if not out.is_file():
            raise UsageFailure(f"--out {out}: not a regular file; refusing to replace it")


def _json_of(command, **options) -> dict:
    """Run a CLI command function with ``--json`` and return what it prints.

    Options not given take the command's defaults, so commands may grow options.
    """
    for name, parameter in inspect.signature(command).parameters.items():
        default = parameter.default
        if name not in options:
            value = getattr(default, "default", default)
            options[name] = None if value is ... else value
    options.update(as_json=True)
    if "plot" in options:
        options["plot"] = None
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        command(**options)
    return json.loads(buffer.getvalue())


def _inputs(ctx: typer.Context) -> tuple[str, dict]:
    """The command line (options given on it) and every parameter with its value."""
    words = ["einsim", "report", ctx.info_name]
    inputs = {}
    for parameter in ctx.command.params:
        value = ctx.params.get(parameter.name)
        flag = next((o for o in parameter.opts if o.startswith("--")), parameter.opts[0])
        inputs[flag.lstrip("-")] = value
        source = ctx.get_parameter_source(parameter.name)
        if getattr(source, "name", None) != "COMMANDLINE":
            continue
        if getattr(parameter, "is_flag", False):
            words += [flag] if value else []
        else:
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                words += [flag, str(item)]
    return " ".join(shlex.quote(w) for w in words), inputs


def _write(out: Path, text: str) -> None:
    try:
        report.write(out, text)
    except OSError as error:
        raise UsageFailure(f"--out {out}: {error.strerror or error}") from None
    console.print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")


@report_app.command()
def evaluate(ctx: typer.Context,
             mapping: Optional[str] = typer.Option(None, "--mapping", "-m", help="Mapping name "
                                                   "or YAML; omit to compare FuseMax with FLAT."),
             hw: Optional[str] = cli_cost._HW, workload: str = WORKLOAD,
             seq_len: str = typer.Option("64K", "--seq-len", "-n", help="e.g. 4096, 64K, 1M."),
             param: list[str] = cli_cost._PARAM,
             objective: str = typer.Option("latency", "--objective", help="latency, energy "
                                           "or edp (for free mapping parameters)."),
             scope: str = typer.Option("attention", "--scope", help="attention or end-to-end."),
             check: bool = typer.Option(False, "--check", help="First execute the mapping's "
                                        "tiling numerically on a small problem."),
             out: Path = _OUT, force: bool = _FORCE):
    """Report of ``einsim evaluate``: utilization, per-Einsum cycles, Gantt, energy."""
    _check_out(out, force)
    result = _json_of(cli_cost.evaluate, mapping=mapping, hw=hw, workload=workload,
                      seq_len=seq_len, param=param, objective=objective, scope=scope,
                      check=check)
    _write(out, report.evaluate_page(result, *_inputs(ctx)))


@report_app.command()
def sweep(ctx: typer.Context,
          mapping: str = typer.Option("fusemax", "--mapping", "-m", help="Mapping name or YAML."),
          hw: Optional[str] = cli_cost._HW, workload: str = WORKLOAD,
          seq_len: str = typer.Option("64K", "--seq-len", "-n", help="N1,N2,... e.g. 1K,64K,1M."),
          param: list[str] = typer.Option([], "--param", "-p", help="name=v1,v2,... "
                                          "(repeatable); the Cartesian product is evaluated."),
          csv: Optional[Path] = typer.Option(None, "--csv", help="Also write every point as "
                                             "CSV (sweep's --out)."),
          objective: str = typer.Option("latency", "--objective"),
          out: Path = _OUT, force: bool = _FORCE):
    """Report of ``einsim sweep``: Pareto front, utilization against length, every point."""
    _check_out(out, force)
    result = _json_of(cli_cost.sweep, mapping=mapping, hw=hw, workload=workload,
                      seq_len=seq_len, param=param, out=csv, objective=objective)
    label = next(iter(cli_cost._pairs(param, multiple=True)), "seq_len")
    _write(out, report.sweep_page(result, *_inputs(ctx), label=label))


@report_app.command()
def gna(ctx: typer.Context,
        shape: str = cli_gpu.GNA_SHAPE,
        window: str = cli_gpu.GNA_WINDOW,
        stride: Optional[str] = cli_gpu.GNA_STRIDE,
        dilation: Optional[str] = cli_gpu.GNA_DILATION,
        causal: Optional[str] = cli_gpu.GNA_CAUSAL,
        q_tile: Optional[str] = cli_gpu.GNA_Q_TILE,
        kv_tile: Optional[str] = cli_gpu.GNA_KV_TILE,
        kv_tiling: str = cli_gpu.GNA_KV_TILING,
        hw: Optional[str] = cli_gpu.GNA_HW,
        heads: int = cli_gpu.GNA_HEADS, head_dim: int = cli_gpu.GNA_HEAD_DIM,
        batch: int = cli_gpu.GNA_BATCH,
        dtype: str = cli_gpu.GNA_DTYPE,
        find_stride_: bool = cli_gpu.GNA_FIND_STRIDE,
        find_tiles: bool = cli_gpu.GNA_FIND_TILES,
        attention_share: Optional[float] = cli_gpu.GNA_ATTENTION_SHARE,
        steps: int = cli_gpu.GNA_STEPS,
        full_attention_steps: int = cli_gpu.GNA_FULL_ATTENTION_STEPS,
        out: Path = _OUT, force: bool = _FORCE):
    """Report of ``einsim gna``: visited KV tiles per Q tile, speedup against stride."""
    from hw_models.gpu_sm import load_gpu

    _check_out(out, force)
    result = _json_of(cli_gpu.gna, shape=shape, window=window, stride=stride,
                      dilation=dilation, causal=causal, q_tile=q_tile, kv_tile=kv_tile,
                      kv_tiling=kv_tiling, hw=hw, heads=heads, head_dim=head_dim, batch=batch,
                      dtype=dtype, find_stride_=find_stride_, find_tiles=find_tiles,
                      attention_share=attention_share, steps=steps,
                      full_attention_steps=full_attention_steps)
    values = cli_gpu._values
    problem = dict(shape=values(shape, "--shape"), window=values(window, "--window"),
                   stride=values(stride, "--stride") or 1,
                   dilation=values(dilation, "--dilation") or 1,
                   causal=values(causal, "--causal", str) or False, kv_tiling=kv_tiling)
    _write(out, report.gna_page(result, *_inputs(ctx), problem=problem,
                                gpu=load_gpu(hw) if hw else None, heads=heads,
                                head_dim=head_dim))


@report_app.command()
def decode(ctx: typer.Context,
           hw: str = cli_gpu.DECODE_HW,
           schedule: str = cli_gpu.DECODE_SCHEDULE,
           batch: int = cli_gpu.DECODE_BATCH, heads: int = cli_gpu.DECODE_HEADS,
           kv_heads: Optional[int] = cli_gpu.DECODE_KV_HEADS,
           head_dim: int = cli_gpu.DECODE_HEAD_DIM,
           context: str = cli_gpu.DECODE_CONTEXT,
           dtype: str = cli_gpu.DECODE_DTYPE,
           out: Path = _OUT, force: bool = _FORCE):
    """Report of ``einsim decode``: SM timeline and every schedule compared."""
    from einsim.workloads import parse_seq_len
    from hw_models.gpu_sm import load_gpu
    from einsim.kernels.decode import SCHEDULES, estimate

    _check_out(out, force)
    result = _json_of(cli_gpu.decode, hw=hw, schedule=schedule, batch=batch, heads=heads,
                      kv_heads=kv_heads, head_dim=head_dim, context=context, dtype=dtype)
    gpu = load_gpu(hw)
    estimates = {name: estimate(gpu, name, batch=batch, heads=heads, kv_heads=kv_heads,
                                head_dim=head_dim, context=parse_seq_len(context), dtype=dtype)
                 for name in dict.fromkeys((schedule, *SCHEDULES))}
    _write(out, report.decode_page(result, *_inputs(ctx), estimates=estimates, schedule=schedule,
                                   gpu_name=gpu.name))


@report_app.command()
def offload(ctx: typer.Context,
            model: str = cli_offload.OFFLOAD_MODEL,
            context: str = cli_offload.OFFLOAD_CONTEXT,
            compute: str = cli_offload.OFFLOAD_COMPUTE,
            memory: Optional[str] = cli_offload.OFFLOAD_MEMORY,
            baseline: Optional[str] = cli_offload.OFFLOAD_BASELINE,
            batch: str = cli_offload.OFFLOAD_BATCH,
            link: str = cli_offload.OFFLOAD_LINK,
            no_pipelining: bool = cli_offload.OFFLOAD_NO_PIPELINING,
            mapping: Optional[str] = cli_offload.OFFLOAD_MAPPING,
            out: Path = _OUT, force: bool = _FORCE):
    """Report of ``einsim offload``: time split, tokens per dollar against context."""
    from einsim.workloads import parse_seq_len
    from hw_models.offload import load_link, load_llm, parse_group
    from einsim.kernels.lamina import Deployment

    _check_out(out, force)
    result = _json_of(cli_offload.offload, model=model, context=context, compute=compute,
                      memory=memory, baseline=baseline, batch=batch, link=link,
                      no_pipelining=no_pipelining, mapping=mapping)
    llm, tokens = load_llm(model), parse_seq_len(context)
    deployments = {(f"lamina {compute} + {memory}" if memory else f"homogeneous {compute}"): (
        Deployment(llm, parse_group(compute, "compute"),
                   parse_group(memory, "memory") if memory else None,
                   load_link(link) if memory else None, not no_pipelining, mapping), batch)}
    if baseline:
        deployments[f"homogeneous {baseline}"] = (
            Deployment(llm, parse_group(baseline, "baseline")), "auto")
    summaries = {label: cli_offload._run(d, tokens, b).summary()
                 for label, (d, b) in deployments.items()}
    curve = []
    for n in sorted({4096 << k for k in range(6)} | {tokens}):
        for label, (d, b) in deployments.items():
            try:
                value = cli_offload._run(d, n, b).summary()["tokens_per_dollar"]
            except EinsimError:  # cannot serve this context: a gap in the line
                value = None
            curve.append({"label": label, "context": n, "tokens_per_dollar": value})
    _write(out, report.offload_page(result, *_inputs(ctx), summaries=summaries, curve=curve,
                                    model=llm.name))


__all__ = ["report_app"]
