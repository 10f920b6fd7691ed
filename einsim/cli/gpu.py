"""CLI commands for GPUs: ``gna`` (sparse-attention bounds and runtimes) and ``decode``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from einsim.cli import UsageFailure, app, console, emit
from einsim.gna import GNAError, analyze, end_to_end_speedup, find_stride, problem
from hw_models.gpu_sm import load_gpu

MULTI_VALUE = ("--shape", "--window", "--stride", "--dilation", "--causal", "--q-tile",
               "--kv-tile")


def join_multi_values(args: list[str]) -> list[str]:
    """``--shape 30 48 80`` → ``--shape 30,48,80`` (click options take one value)."""
    out: list[str] = []
    position = 0
    while position < len(args):
        arg = args[position]
        out.append(arg)
        position += 1
        if arg in MULTI_VALUE:
            values = []
            while position < len(args) and not args[position].startswith("--"):
                values.append(args[position])
                position += 1
            out.append(",".join(values))
    return out


def _values(text: Optional[str], name: str, kind=int) -> list:
    if text is None:
        return []
    try:
        return [kind(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise UsageFailure(f"{name} {text!r}: expected {'integers' if kind is int else 'values'}"
                           " separated by spaces") from None


def _count(value: int | str, name: str) -> int:
    """A whole number option: ``1000000``, or ``1e6`` when it is whole; ``1.5`` is refused."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not number.is_integer():
        raise UsageFailure(f"{name} {value!r}: expected a whole number, e.g. 64 or 1e6")
    return int(number)


# Options shared with ``einsim report gna``.
GNA_SHAPE = typer.Option(..., "--shape", help="Token layout: L1 [L2 L3].")
GNA_WINDOW = typer.Option(..., "--window", help="Window per axis (or one for all).")
GNA_STRIDE = typer.Option(None, "--stride", help="Stride per axis.")
GNA_DILATION = typer.Option(None, "--dilation", help="Dilation per axis.")
GNA_CAUSAL = typer.Option(None, "--causal", help="true|false per axis.")
GNA_Q_TILE = typer.Option(None, "--q-tile", help="Q tile per axis.")
GNA_KV_TILE = typer.Option(None, "--kv-tile", help="KV tile per axis.")
GNA_KV_TILING = typer.Option("static", "--kv-tiling", help="static or dynamic.")
GNA_HW = typer.Option(None, "--hw", help="GPU preset for predicted runtimes.")
GNA_HEADS = typer.Option(1, "--heads")
GNA_HEAD_DIM = typer.Option(128, "--head-dim")
GNA_BATCH = typer.Option("1", "--batch", help="Sequences, e.g. 8 or 1e6.")
GNA_DTYPE = typer.Option("fp16", "--dtype", help="fp16, bf16 or fp8.")
GNA_FIND_STRIDE = typer.Option(False, "--find-stride",
                               help="Smallest per-axis stride that makes the problem fully "
                                    "block-sparse.")
GNA_FIND_TILES = typer.Option(False, "--find-tiles",
                              help="Try the GPU's supported tile shapes and report the best.")
GNA_ATTENTION_SHARE = typer.Option(None, "--attention-share",
                                   help="Share of end-to-end time in attention, for Amdahl's law.")
GNA_STEPS = typer.Option(1, "--steps")
GNA_FULL_ATTENTION_STEPS = typer.Option(0, "--full-attention-steps")


@app.command()
def gna(shape: str = GNA_SHAPE,
        window: str = GNA_WINDOW,
        stride: Optional[str] = GNA_STRIDE,
        dilation: Optional[str] = GNA_DILATION,
        causal: Optional[str] = GNA_CAUSAL,
        q_tile: Optional[str] = GNA_Q_TILE,
        kv_tile: Optional[str] = GNA_KV_TILE,
        kv_tiling: str = GNA_KV_TILING,
        hw: Optional[str] = GNA_HW,
        heads: int = GNA_HEADS, head_dim: int = GNA_HEAD_DIM,
        batch: str = GNA_BATCH,
        dtype: str = GNA_DTYPE,
        find_stride_: bool = GNA_FIND_STRIDE,
        find_tiles: bool = GNA_FIND_TILES,
        attention_share: Optional[float] = GNA_ATTENTION_SHARE,
        steps: int = GNA_STEPS,
        full_attention_steps: int = GNA_FULL_ATTENTION_STEPS,
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Speedup upper bounds of generalized neighborhood attention (and GPU runtimes)."""
    batch = _count(batch, "--batch")
    gpu = load_gpu(hw) if hw else None
    dims = len(_values(shape, "--shape"))
    candidates = []
    if find_tiles:
        if gpu is None:
            raise UsageFailure("--find-tiles searches a GPU's supported tiles: give --hw")
        from einsim.kernels.fna import supported_tiles

        candidates = supported_tiles(gpu, dims)
        if not candidates:
            raise UsageFailure(f"--hw {hw}: no supported {dims}-D neighborhood tiles")
    else:
        if q_tile is None or kv_tile is None:
            raise UsageFailure("--q-tile and --kv-tile are required (or --find-tiles with --hw)")
        candidates = [(tuple(_values(q_tile, "--q-tile")), tuple(_values(kv_tile, "--kv-tile")))]
    results = []
    for q, kv in candidates:
        spec = problem(_values(shape, "--shape"), _values(window, "--window"), q, kv,
                       _values(stride, "--stride") or 1, _values(dilation, "--dilation") or 1,
                       _values(causal, "--causal", str) or False, kv_tiling)
        result = analyze(spec).model_dump()
        result.update(q_tile=list(spec.q_tile), kv_tile=list(spec.kv_tile))
        if gpu is not None:
            from einsim.kernels.fna import check_tiles, predict

            check_tiles(gpu, spec)
            result["predicted"] = {k: float(v) for k, v in predict(
                gpu, spec, heads=heads, head_dim=head_dim, batch=batch, dtype=dtype).items()}
        if find_stride_:
            try:
                result["stride_for_block_sparsity"] = list(find_stride(spec))
            except GNAError as error:
                if not find_tiles:
                    raise
                result["stride_for_block_sparsity"] = None  # this candidate tile has none
                result["stride_note"] = str(error)
        if attention_share is not None:
            speedup = result.get("predicted", {}).get("speedup", result["tile_upper_bound"])
            result["end_to_end_speedup"] = end_to_end_speedup(speedup, attention_share, steps,
                                                              full_attention_steps)
        results.append(result)
    key = (lambda r: r["predicted"]["speedup"]) if gpu else (lambda r: r["tile_upper_bound"])
    best = max(results, key=key)
    if find_tiles:
        best = {**best, "candidates": results}
    if as_json:
        emit(best)
        return
    table = Table(title=f"GNA on {' x '.join(shape.replace(',', ' ').split())} tokens")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for name in ("q_tile", "kv_tile", "flop_upper_bound", "tile_upper_bound",
                 "tile_upper_bound_mean", "fully_block_sparse", "q_tiles", "worst_kv_tiles",
                 "masked_tiles", "stride_for_block_sparsity", "end_to_end_speedup"):
        if name in best:
            value = best[name]
            table.add_row(name, f"{value:.3f}" if isinstance(value, float) else str(value))
    for name, value in best.get("predicted", {}).items():
        table.add_row(f"predicted {name}", f"{value:.4g}")
    console.print(table)


# Options shared with ``einsim report decode``.
DECODE_HW = typer.Option("h100", "--hw", help="GPU preset.")
DECODE_SCHEDULE = typer.Option("flash-decoding", "--schedule", help="fa2, flash-decoding or lean.")
DECODE_BATCH = typer.Option("1", "--batch", help="Sequences, e.g. 8 or 1e6.")
DECODE_HEADS = typer.Option(32, "--heads")
DECODE_KV_HEADS = typer.Option(None, "--kv-heads")
DECODE_HEAD_DIM = typer.Option(128, "--head-dim")
DECODE_CONTEXT = typer.Option("32K", "--context", help="KV length, e.g. 32768 or 32K.")
DECODE_DTYPE = typer.Option("fp16", "--dtype")


@app.command()
def decode(hw: str = DECODE_HW,
           schedule: str = DECODE_SCHEDULE,
           batch: str = DECODE_BATCH, heads: int = DECODE_HEADS,
           kv_heads: Optional[int] = DECODE_KV_HEADS,
           head_dim: int = DECODE_HEAD_DIM,
           context: str = DECODE_CONTEXT,
           dtype: str = DECODE_DTYPE,
           plot: Optional[Path] = typer.Option(None, "--plot", help="SM timeline (HTML)."),
           trace: Optional[Path] = typer.Option(None, "--trace", help="The CTAs on their SM "
                                                "slots (and the merge) as a Chrome / Perfetto "
                                                "trace (JSON)."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Decode attention time of one step under a GPU decode schedule."""
    from einsim.cli.cost import _trace_file
    from einsim.workloads import parse_seq_len
    from einsim.kernels.decode import estimate

    _trace_file(trace)
    batch = _count(batch, "--batch")
    gpu = load_gpu(hw)
    result = estimate(gpu, schedule, batch=batch, heads=heads, kv_heads=kv_heads,
                      head_dim=head_dim, context=parse_seq_len(context), dtype=dtype)
    if plot:
        from einsim.plots.gpu import sm_timeline_figure

        sm_timeline_figure(result, title=f"{schedule} on {gpu.name}").write_html(plot)
    if trace:
        import sys

        from einsim.traces import chrome_trace, write_trace

        write_trace(trace, chrome_trace(
            decode=result, decode_name=f"{schedule} decode on {gpu.name}: CTAs on SM slots",
            metadata={"command": "einsim decode", "schedule": schedule, "gpu": gpu.name,
                      "batch": batch, "heads": heads, "context": parse_seq_len(context),
                      **result.summary()}))
        sys.stderr.write(f"wrote {trace}\n")
    if as_json:
        emit(result.summary())
        return
    table = Table(title=f"{schedule} decode on {gpu.name}: batch {batch}, {heads} heads, "
                        f"context {parse_seq_len(context):,}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for name, value in result.summary().items():
        table.add_row(name, f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)


__all__ = ["gna", "decode", "join_multi_values", "GNAError"]
