"""CLI command ``seqpar``: a long sequence split over a group of devices (Ring Attention,
LASP-2, LASP-2H), each strategy a loop tree evaluated by the engine on the device group."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from einsim.cli import UsageFailure, app, console, emit

_KEYS = ("step_time_s", "compute_s", "communication_s", "communication_bytes_per_device",
         "overlap", "scaling_efficiency")


def _devices(text: str) -> int:
    try:
        number = int(str(text).strip())
    except ValueError:
        raise UsageFailure(f"--devices {text!r}: expected a whole number of devices, e.g. 8") \
            from None
    from hw_models.offload import MAX_DEVICES

    if not 1 <= number <= MAX_DEVICES:
        raise UsageFailure(f"--devices {text!r}: expected from 1 to {MAX_DEVICES:,} devices")
    return number


def _sweep(devices: int) -> list[int]:
    """Group sizes for the figure: powers of two up to ``devices``, and ``devices``."""
    sizes, g = [], 1
    while g < devices:
        sizes.append(g)
        g *= 2
    return sizes + [devices]


@app.command()
def seqpar(strategy: str = typer.Option(..., "--strategy",
                                        help="ring, lasp2, lasp2h, or a mapping file (a tree "
                                             "on a device group)."),
           cascade: Optional[str] = typer.Option(None, "--cascade",
                                                 help="Library cascade NAME or FILE (default: "
                                                      "the strategy tree's own)."),
           devices: str = typer.Option("8", "--devices", help="Devices G in the group."),
           seq_len: str = typer.Option("64K", "--seq-len", help="Tokens N, e.g. 65536, 64K, 1M."),
           hw: str = typer.Option("h100", "--hw", help="GPU preset of every device."),
           link: str = typer.Option("nvlink", "--link",
                                    help="nvlink (the GPU preset's), a link preset such as "
                                         "roce-400g, or ideal (free)."),
           workload: str = typer.Option("bert", "--workload",
                                        help="Batch, heads and head dims: a preset or a YAML "
                                             "file."),
           plot: Optional[Path] = typer.Option(None, "--plot",
                                               help="Step time and scaling efficiency against G "
                                                    "(HTML)."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Step time, communication and scaling efficiency of sequence parallelism on G devices."""
    from einsim.cost.device_hierarchy import group_step
    from einsim.errors import SpecError
    from einsim.workloads import parse_seq_len

    count = _devices(devices)
    try:
        tokens = parse_seq_len(seq_len)
    except SpecError as error:
        raise UsageFailure(f"--seq-len: {error}") from None
    result = group_step(strategy, hw, count, tokens, link, workload, cascade)
    if plot:
        from einsim.plots.seqpar import scaling_figure

        rows = [(result if g == count else group_step(strategy, hw, g, tokens, link, workload,
                                                      cascade)).summary() for g in _sweep(count)]
        title = (f"{strategy} on {hw} ({link}), {result.cascade}, N = {tokens:,}, "
                 f"{result.workload}")
        scaling_figure([r | {"label": strategy} for r in rows], title).write_html(plot)
    output = result.summary()
    if as_json:
        emit(output)
        return
    from rich.table import Table

    table = Table(title=f"{strategy}: {result.cascade} on {result.hardware}, N = {tokens:,}, "
                        f"{result.workload}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows = [("step time", output["step_time_s"], "{:.4g} s"),
            ("compute", output["compute_s"], "{:.4g} s"),
            ("communication", output["communication_s"], "{:.4g} s"),
            ("communication per device", output["communication_bytes_per_device"], "{:.4g} B"),
            ("overlap", output["overlap"], "{:.0%}"),
            ("one device", output["single_device_s"], "{:.4g} s"),
            ("scaling efficiency", output["scaling_efficiency"], "{:.1%}")]
    for label, value, fmt in rows:
        table.add_row(label, "—" if value is None else fmt.format(value))
    console.print(table)
    free = {k: v for k, v in output["parameters"].items() if k != "tflops"}
    if free:
        console.print("tree parameters: " + ", ".join(f"{k} = {v}" for k, v in free.items()))


__all__ = ["seqpar"]
