"""CLI command ``sparse``: tile and FLOP speedup bounds of any cascade's mask (and a GPU runtime)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from einsim.cli import CASCADE_FILE, CASCADE_NAME, WORKLOAD, UsageFailure, _load, app, console, emit, size_assignments

_QUANTITIES = ("mask", "seq_len", "kv_len", "batch", "heads", "q_tile", "kv_tile", "q_tiles",
               "kv_tiles", "dense_tiles", "visited_tiles", "partial_tiles",
               "worst_q_tile_kv_tiles", "attended_pairs", "tile_speedup_bound",
               "flop_speedup_bound", "hw", "dense_runtime_s", "predicted_runtime_s",
               "predicted_speedup")


def _tile(text: str, option: str) -> int:
    """A positive whole number of tokens: ``64`` or ``1e2``; ``0``, ``-8``, ``1.5`` are refused."""
    try:
        value = int(text.strip())
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            number = float("nan")
        if not number == number or number in (float("inf"), float("-inf")) \
                or not number.is_integer():
            raise UsageFailure(f"{option} {text!r}: expected a positive whole number of tokens, "
                               "e.g. 128") from None
        value = int(number)
    if value < 1:
        raise UsageFailure(f"{option} {text!r}: expected a positive whole number of tokens, "
                           "e.g. 128")
    return value


@app.command()
def sparse(name: Optional[str] = CASCADE_NAME, file: Optional[Path] = CASCADE_FILE,
           workload: str = WORKLOAD,
           seq_len: Optional[str] = typer.Option(None, "--seq-len", "-n",
                                                 help="Query length P (and M for self "
                                                      "attention), e.g. 4096, 64K, 1M."),
           kv_len: Optional[str] = typer.Option(None, "--kv-len", help="Key length M."),
           q_tile: str = typer.Option(..., "--q-tile", help="Queries per tile."),
           kv_tile: str = typer.Option(..., "--kv-tile", help="Keys per tile."),
           hw: Optional[str] = typer.Option(None, "--hw", help="GPU preset (a100, h100, h200, "
                                            "b200, h20) for a predicted runtime."),
           size: list[str] = typer.Option([], "--size", help="NAME=VALUE for a parameter of "
                                          "the mask, repeatable (e.g. --size W=256)."),
           plot: Optional[Path] = typer.Option(None, "--plot", help="Write the tile map "
                                               "(HTML)."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Speedup bounds of a cascade's mask: visited, partial and skipped (Q tile, KV tile) pairs."""
    from einsim.sparsity import sparse_bounds, sparse_tile_map

    cascade = _load(name, file)
    tiles = dict(q_tile=_tile(q_tile, "--q-tile"), kv_tile=_tile(kv_tile, "--kv-tile"))
    if plot is not None and not plot.resolve().parent.is_dir():
        raise UsageFailure(f"--plot {plot}: the folder {plot.resolve().parent} does not exist")
    options = dict(workload=workload, seq_len=seq_len, kv_len=kv_len, hw=hw,
                   sizes=size_assignments(size, "W=256"), **tiles)
    if plot is not None:
        from einsim.plots.sparse_masks import tile_map_figure

        tile_map = sparse_tile_map(cascade, **options)
        bounds = tile_map.bounds
        tile_map_figure(tile_map).write_html(plot)
        sys.stderr.write(f"wrote {plot}\n")
    else:
        bounds = sparse_bounds(cascade, **options)
    data = bounds.to_dict()
    if as_json:
        emit(data)
        return
    from rich.table import Table

    table = Table(title=f"{bounds.cascade}: mask speedup bounds per (batch, head)")
    table.add_column("quantity")
    table.add_column("value", justify="right", overflow="fold")
    for key in _QUANTITIES:
        if key in data:
            value = data[key]
            text = "none" if value is None else f"{value:.4g}" if isinstance(value, float) \
                else f"{value:,}" if isinstance(value, int) else str(value)
            table.add_row(key, text)
    console.print(table)


__all__ = ["sparse"]
