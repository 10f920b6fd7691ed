"""CLI command ``rewrite``: derive the 2-pass or 1-pass form of a softmax-like cascade."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from einsim.cli import CASCADE_FILE, CASCADE_NAME, UsageFailure, app, console, emit, load_cascade_file


def _cascade(name: Optional[str], file: Optional[Path]):
    from einsim import library

    if (name is None) == (file is None):
        raise UsageFailure("give a library cascade NAME or --file F (one of them); see "
                           "'einsim cascades' for names")
    return library.get(name) if name is not None else load_cascade_file(file, "--file")


@app.command()
def rewrite(name: Optional[str] = CASCADE_NAME, file: Optional[Path] = CASCADE_FILE,
            passes: int = typer.Option(..., "--passes", "-n", help="2 (deferred division) or 1 "
                                       "(running max with correction factors)."),
            rank: str = typer.Option("m", "--rank", "-r", help="The rank to save passes over."),
            as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Rewrite a softmax-like cascade to 2 or 1 passes, proven equal by execution."""
    from einsim.rewriting import RewriteValidationError
    from einsim.rewriting import rewrite as derive

    cascade = _cascade(name, file)
    try:
        result = derive(cascade, passes, rank)
    except RewriteValidationError as error:  # ran, but differed: a failed validation
        sys.stderr.write(f"einsim: error: {' '.join(str(error).split())}\n")
        raise typer.Exit(1) from None
    if as_json:
        emit(result.to_json())
        return
    from rich.syntax import Syntax

    checked = result.validated
    sizes = ", ".join(f"{k}={v}" for k, v in checked.sizes)
    tiled = f", and tile by tile along {checked.tile}" if checked.tile else ""
    console.print(Syntax(result.text, "python", theme="ansi_dark", word_wrap=True))
    console.print(f"passes over {result.rank}: {result.original_passes} → {result.passes}")
    console.print(f"validated: [green]ok[/green], max abs error {checked.max_abs_error:.2e} "
                  f"against the original on {checked.cases} random input sets ({sizes}{tiled})")
    if checked.undefined:
        console.print(f"({checked.undefined} output values the original leaves NaN were not "
                      "compared)")
