"""``einsim bound``: the DRAM traffic lower bound of a cascade against on-chip capacity."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Optional

import typer

from einsim.cli import CASCADE_FILE, CASCADE_NAME, WORKLOAD, UsageFailure, app, console, emit, load_cascade_file, size_assignments

_BYTES = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)(i?B)?\s*",
                    re.IGNORECASE)
_SCALE = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str, option: str = "--buffer-bytes") -> float:
    """``16777216``, ``1e6``, ``512K``, ``16MiB``, ``2GB`` (binary multiples) → bytes."""
    match = _BYTES.fullmatch(text) if isinstance(text, str) and len(text) <= 64 else None
    if match is None:
        raise UsageFailure(f"{option} {text!r}: expected a number of bytes, e.g. 16777216, "
                           "512K or 16MiB")
    value = float(match.group(1)) * _SCALE[match.group(2).upper()]
    if not math.isfinite(value) or value < 0 or value > 2.0 ** 80:
        raise UsageFailure(f"{option} {text!r}: expected a number of bytes from 0 to 2^80")
    return value


def _human(value: float) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10),
                       ("B", 1)):
        if value >= size or unit == "B":
            x = value / size
            return f"{x:.{0 if x >= 100 else 1 if x >= 10 else 2}f} {unit}"
    return f"{value:.0f} B"


@app.command()
def bound(name: Optional[str] = CASCADE_NAME, file: Optional[Path] = CASCADE_FILE,
          workload: str = WORKLOAD,
          seq_len: Optional[str] = typer.Option(None, "--seq-len", "-n",
                                                help="e.g. 4096, 64K, 1M (default: the "
                                                     "workload's own)."),
          buffer_bytes: Optional[str] = typer.Option(None, "--buffer-bytes", "-b",
                                                     help="One on-chip capacity (buffer and "
                                                          "register files), e.g. 16MiB; "
                                                          "default a log-spaced range."),
          hw: str = typer.Option("fusemax-cloud", "--hw",
                                 help="Spatial-array preset or YAML whose word size makes "
                                      "bytes."),
          points: int = typer.Option(32, "--points", help="Capacities in the range."),
          size: list[str] = typer.Option([], "--size", help="NAME=INTEGER (repeatable): a "
                                         "rank size or parameter the workload lacks."),
          plot: Optional[Path] = typer.Option(None, "--plot", help="Write the ski-slope "
                                              "(3-, 2- and 1-pass bounds and the library "
                                              "mappings) as HTML."),
          as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Minimum DRAM traffic of a cascade against on-chip capacity (no mapping beats it)."""
    from einsim import library
    from einsim.bounds import traffic_bound
    from einsim.workloads import parse_seq_len

    if (name is None) == (file is None):
        raise UsageFailure("give a library cascade NAME or --file F (one of them); see "
                           "'einsim cascades' for names")
    cascade = library.get(name) if name is not None else load_cascade_file(file, "--file")
    length = parse_seq_len(seq_len) if seq_len else None
    capacity = parse_bytes(buffer_bytes) if buffer_bytes is not None else None
    if not 2 <= points <= 10_000:
        raise UsageFailure(f"--points {points}: expected 2 to 10000")
    if plot is not None and not plot.resolve().parent.is_dir():
        raise UsageFailure(f"--plot {plot}: the folder {plot.resolve().parent} does not exist")
    sizes = size_assignments(size, "MX=64", 0)
    chosen = cascade if name is None else name
    curve = traffic_bound(chosen, workload, length, capacity, hw, sizes, points)
    if plot is not None:
        _write_plot(plot, curve, chosen, name or str(file), workload, length, hw, sizes)
        sys.stderr.write(f"wrote {plot}\n")
    if as_json:
        emit(curve.to_json())
        return
    _table(curve)


def _write_plot(path: Path, curve, cascade, mapper_name: Optional[str], workload: str,
                length, hw: str, sizes: dict) -> None:
    """The requested cascade's curve, the 3-, 2- and 1-pass references, the library
    mappings and (for another cascade) the tree mapper's trees for it."""
    from einsim.bounds import traffic_bound
    from einsim.plots.bounds import (LIBRARY_MAPPINGS, REFERENCE_CASCADES, mapping_points,
                                     mapper_points, write_ski_slope)

    if len(curve.points) < 2:  # one capacity asked for: the plot still shows the whole curve
        curve = traffic_bound(cascade, workload, length, None, hw, sizes)
    curves = [curve] + [traffic_bound(c, workload, length, hw=hw) for c in REFERENCE_CASCADES
                        if c != curve.cascade]
    points = mapping_points(LIBRARY_MAPPINGS, workload, curve.seq_len)
    if mapper_name is not None and mapper_name not in REFERENCE_CASCADES + ("fusemax",):
        points += mapper_points(mapper_name, workload, curve.seq_len, [2 ** 18, 2 ** 22])
    write_ski_slope(path, curves, points)


def _table(curve) -> None:
    from rich.table import Table

    title = (f"{curve.cascade}: DRAM traffic lower bound, {curve.workload}, "
             f"{curve.seq_len:,} tokens, {curve.passes} pass{'es' if curve.passes != 1 else ''}"
             f"; compulsory {_human(curve.compulsory_bytes)}, reached at "
             f"{_human(curve.fit_bytes)} on chip")
    table = Table(title=title)
    for column, justify in (("on-chip capacity", "right"), ("traffic lower bound", "right"),
                            ("× compulsory", "right"), ("regime", "left")):
        table.add_column(column, justify=justify)
    for point in curve.points:
        table.add_row(_human(point.buffer_bytes), _human(point.traffic_lower_bound_bytes),
                      f"{point.traffic_lower_bound_bytes / curve.compulsory_bytes:.3g}"
                      if curve.compulsory_bytes else "-", point.regime)
    console.print(table)
    for note in curve.notes:
        console.print(f"note: {note}")
