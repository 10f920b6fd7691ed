"""The ``einsim`` command line: rich tables by default, ``--json`` for machines.

Bad input exits with status 2 and one line on stderr (``--debug`` shows the traceback); a
validation that runs but fails exits with status 1.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

import einsim
from einsim import ir, library
from einsim.errors import EinsimError
from einsim.footprint import buffer_growth, footprint, op_counts
from einsim.passes import pass_assignment, passes as count_passes
from einsim.validate import validate as run_validation

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="einsim: attention as cascades of extended Einsums — parse, execute, "
                       "analyse passes, validate.")
console = Console()

_DEFAULT_SIZES = {"E": 16, "F": 16, "M": 128, "P": 128, "M0": 32}


class UsageFailure(EinsimError):
    """A command-line argument that makes no sense."""


def _version(value: bool) -> None:
    if value:
        console.print(f"einsim {einsim.__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors "
                                     "(accepted anywhere on the command line).")) -> None:
    """Handled in :func:`main`, which strips ``--debug`` wherever it appears."""


def emit(data: dict) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _load(name: Optional[str], file: Optional[Path]) -> ir.Cascade:
    if (name is None) == (file is None):
        raise UsageFailure("give a library cascade NAME or --file F (one of them); see "
                           "'einsim cascades' for names")
    if name is not None:
        return library.get(name)
    if not file.is_file():
        raise UsageFailure(f"--file {file}: no such file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageFailure(f"--file {file}: not UTF-8 text; expected a cascade (.einsum) or "
                           "YAML file") from None
    if file.suffix in (".yaml", ".yml"):
        return einsim.load_yaml(text, source=str(file))
    return einsim.parse(text, name=file.stem, source=str(file))


def _sizes_for(cascade: ir.Cascade, seq_len: Optional[int], overrides: list[str]) -> dict:
    """Sizes to validate with: the library entry's, or defaults for ranks the text leaves open."""
    if cascade.name in library.ENTRIES:
        sizes = library.entry(cascade.name).sizes_for(seq_len)
    else:
        fixed = {r.name for r in cascade.ranks if r.size is not None}
        fixed |= {part for p in cascade.partitions
                  for part, size in zip(p.parts[1:], p.sizes) if isinstance(size, int)}
        sizes = {k: v for k, v in _DEFAULT_SIZES.items() if k not in fixed}
        if seq_len is not None:
            sizes.update({k: seq_len for k in ("M", "P") if k not in fixed})
    for item in overrides:
        key, _, value = item.partition("=")
        try:
            sizes[key.strip()] = int(value)
        except ValueError:
            raise UsageFailure(f"--size {item!r}: expected NAME=INTEGER, e.g. --size M0=64") \
                from None
    return sizes


@app.command()
def cascades(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List the cascade library with passes over the sequence rank."""
    rows = []
    for name in library.names():
        entry = library.entry(name)
        rows.append({"name": name, "description": entry.description,
                     "passes_over_m": count_passes(library.get(name), entry.sequence_rank),
                     "sequence_rank": entry.sequence_rank, "citation": entry.citation})
    if as_json:
        emit({"cascades": rows})
        return
    table = Table(title="einsim cascade library")
    for column in ("name", "passes", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["name"], str(row["passes_over_m"]), row["description"])
    console.print(table)


@app.command()
def show(name: Optional[str] = typer.Argument(None, help="Library cascade name."),
         file: Optional[Path] = typer.Option(None, "--file", "-f", help="Cascade text or YAML."),
         as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Print a cascade, its Einsums with op counts, and its passes per rank."""
    cascade = _load(name, file)
    ranks = sorted({ir.rank_of(v).lower() for v in cascade.rank_variables}
                   | {p.rank.lower() for p in cascade.partitions})
    pass_table = {r: count_passes(cascade, r) for r in ranks}
    einsums = [{"name": e.name, "text": str(e), "iterates": list(e.variables),
                "reduces": list(e.reduced), "reduce_op": e.reduce_op if e.reduced else None,
                "ops": {k: str(v) for k, v in op_counts(e).items()}} for e in cascade.einsums]
    if as_json:
        emit({"cascade": cascade.name, "text": str(cascade), "inputs": list(cascade.input_names),
               "outputs": list(cascade.outputs), "einsums": einsums, "passes": pass_table})
        return
    console.print(Syntax(str(cascade), "python", theme="ansi_dark", word_wrap=True))
    table = Table(title=f"{cascade.name or 'cascade'}: Einsums")
    for column in ("tensor", "iterates", "reduces", "ops"):
        table.add_column(column, overflow="fold")
    for row in einsums:
        reduces = f"{row['reduce_op']}[{', '.join(row['reduces'])}]" if row["reduces"] else ""
        table.add_row(row["name"], ", ".join(row["iterates"]), reduces,
                      "; ".join(f"{k}: {v}" for k, v in row["ops"].items()))
    console.print(table)
    console.print("passes: " + ", ".join(f"{r}: {n}" for r, n in pass_table.items()))


@app.command()
def passes(name: Optional[str] = typer.Argument(None, help="Library cascade name."),
           file: Optional[Path] = typer.Option(None, "--file", "-f", help="Cascade text or YAML."),
           rank: str = typer.Option("m", "--rank", "-r", help="Rank, e.g. m (with its "
                                    "partitions) or m0 (only that part)."),
           word_bytes: int = typer.Option(2, "--word-bytes", help="Bytes per word."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Passes over a rank, and the on-chip buffer that pass structure forces."""
    cascade = _load(name, file)
    if word_bytes <= 0:
        raise UsageFailure(f"--word-bytes must be positive, got {word_bytes}")
    count = count_passes(cascade, rank)
    live = footprint(cascade, rank)
    result = {"cascade": cascade.name, "rank": rank, "passes": count,
              "buffer_bytes_expr": str(live.bytes(word_bytes)),
              "buffer_growth": buffer_growth(cascade, rank, live.words)}
    if as_json:
        assignment = pass_assignment(cascade, rank)
        result["einsum_passes"] = {n: p.pass_number for n, p in assignment.items() if p.traversal}
        result["buffered"] = {k: str(v) for k, v in live.buffered.items()}
        result["recurrence_state"] = {k: str(v) for k, v in live.recurrence_state.items()}
        emit(result)
        return
    table = Table(title=f"{cascade.name or 'cascade'}: passes over {rank}")
    table.add_column("quantity")
    table.add_column("value", overflow="fold")
    table.add_row("passes", str(count))
    table.add_row("buffered between passes", ", ".join(live.buffered) or "nothing")
    table.add_row("recurrence state", ", ".join(live.recurrence_state) or "none")
    table.add_row("buffer bytes", result["buffer_bytes_expr"])
    table.add_row("growth", result["buffer_growth"])
    console.print(table)


@app.command()
def validate(name: Optional[str] = typer.Argument(None, help="Library cascade name."),
             all_: bool = typer.Option(False, "--all", help="Validate every library cascade."),
             file: Optional[Path] = typer.Option(None, "--file", "-f", help="Cascade text/YAML."),
             seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Set M = P = N."),
             dtype: str = typer.Option("float64", "--dtype", help="float64, float32, float16, "
                                       "bfloat16."),
             tile: Optional[str] = typer.Option(None, "--tile", help="Execute tile by tile along "
                                                "this rank variable, e.g. m1."),
             reference: Optional[str] = typer.Option(None, "--reference", help="Reference for "
                                                     "--file cascades (default attention)."),
             size: list[str] = typer.Option([], "--size", help="NAME=VALUE, repeatable."),
             as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Execute cascades on random inputs and compare with plain NumPy attention."""
    if seq_len is not None and seq_len <= 0:
        raise UsageFailure(f"--seq-len must be positive, got {seq_len}")
    if all_:
        if name or file:
            raise UsageFailure("--all validates the whole library; drop NAME/--file")
        targets = [library.get(n) for n in library.names()]
    else:
        targets = [_load(name, file)]
    results = []
    for cascade in targets:
        sizes = _sizes_for(cascade, seq_len, size)
        results.append(run_validation(cascade, sizes=sizes, dtype=dtype, tile=tile,
                                      reference=reference))
    if as_json:
        emit({"results": [r.model_dump() for r in results]})
    else:
        table = Table(title="validation against plain NumPy attention")
        for column in ("cascade", "ok", "max abs error", "max rel error", "dtype", "seconds"):
            table.add_column(column)
        for r in results:
            status = "[green]ok[/green]" if r.ok else "[red]FAIL[/red]" + (
                f" overflow in {', '.join(r.overflow)}" if r.overflow else "")
            table.add_row(r.cascade, status, f"{r.max_abs_error:.2e}", f"{r.max_rel_error:.2e}",
                          r.dtype, f"{r.seconds:.3f}")
        console.print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _register_commands() -> None:
    import einsim.cli_cost  # noqa: F401  (registers evaluate, sweep and map on the app)
    import einsim.cli_gpu  # noqa: F401  (registers gna and decode)
    import einsim.cli_offload  # noqa: F401  (registers offload)
    import einsim.cli_report  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning every user error into one line and status 2."""
    _register_commands()
    from einsim.cli_gpu import join_multi_values

    command = typer.main.get_command(app)
    args = join_multi_values(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in args
    if debug:  # accepted anywhere on the line, not only before the subcommand
        args = [a for a in args if a != "--debug"]
    try:
        code = command.main(args=args, prog_name="einsim", standalone_mode=False)
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        sys.stderr.write("einsim: aborted\n")
        return 1
    except EinsimError as error:
        return _fail(" ".join(str(error).split()), debug)
    except Exception as error:  # click's usage errors (their class moved between versions)
        if not hasattr(error, "format_message"):
            raise
        if type(error).__name__ == "NoArgsIsHelpError":  # bare `einsim`: the help was shown
            return 0
        return _fail(error.format_message(), debug)
    return code if isinstance(code, int) else 0


def _fail(message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    sys.stderr.write(f"einsim: error: {message}\n")
    return 2


if __name__ == "__main__":  # run through the imported module so there is one app
    from einsim.cli import main as entry_point

    sys.exit(entry_point())
