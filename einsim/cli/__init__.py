"""The ``einsim`` command line: rich tables by default, ``--json`` for machines.

Bad input exits with status 2 and one line on stderr (``--debug`` shows the traceback); a
validation that runs but fails exits with status 1.  Start-up is kept short: the commands of
other modules are registered only when asked for, and every heavy import (sympy, networkx,
lark, pydantic, rich) happens inside the command that needs it.
"""

from __future__ import annotations

import errno
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
import typer.core

from einsim import __version__
from einsim.errors import EinsimError
from einsim.cli.json_output import dumps

if TYPE_CHECKING:  # pragma: no cover
    from einsim.language import ir

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="einsim: attention as cascades of extended Einsums — parse, execute, "
                       "analyse passes, validate.")

_DEFAULT_SIZES = {"E": 16, "F": 16, "M": 128, "P": 128, "M0": 32}

_COMMAND_MODULES = {"evaluate": "einsim.cli.cost", "sweep": "einsim.cli.cost",
                    "sparse": "einsim.cli.sparse",
                    "bound": "einsim.cli.bound",
                    "map": "einsim.cli.cost", "gna": "einsim.cli.gpu", "decode": "einsim.cli.gpu",
                    "offload": "einsim.cli.offload", "report": "einsim.cli.report",
                    "rewrite": "einsim.cli.rewrite",
                    "seqpar": "einsim.cli.seqpar"}
"""Subcommands defined outside this module → the module that registers them on :data:`app`."""

_OWN_COMMANDS = {"cascades", "show", "passes", "validate"}

_MAX_VALIDATION_POINTS = 10**12
"""``validate`` refuses sizes whose Einsums visit more points than this (about an hour)."""


class UsageFailure(EinsimError):
    """A command-line argument that makes no sense."""


class _LazyConsole:
    """A ``rich`` console created on first use (importing rich costs start-up time)."""

    _console: Any = None

    def __getattr__(self, name: str) -> Any:
        if _LazyConsole._console is None:
            from rich.console import Console

            _LazyConsole._console = Console()
        return getattr(_LazyConsole._console, name)


console = _LazyConsole()


def _plain_flags() -> None:
    """Show boolean flags as ``--json``, not ``--json <bool>``, in ``--help``."""
    original = typer.core.TyperOption.display_type_rich
    if getattr(original, "_einsim_plain_flags", False):
        return

    def display_type_rich(self, ctx):
        if getattr(self, "is_flag", False):
            return None
        return original(self, ctx)

    display_type_rich._einsim_plain_flags = True
    typer.core.TyperOption.display_type_rich = display_type_rich


_plain_flags()


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"einsim {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors "
                                     "(accepted anywhere on the command line).")) -> None:
    """Handled in :func:`main`, which strips ``--debug`` wherever it appears."""


def emit(data: Any) -> None:
    """Print ``data`` as strict JSON (non-finite numbers as null): see :mod:`einsim.cli.json_output`."""
    sys.stdout.write(dumps(data) + "\n")


# Options several commands share (one declaration each).
CASCADE_NAME = typer.Argument(None, help="Library cascade name.")
CASCADE_FILE = typer.Option(None, "--file", "-f", help="Cascade text or YAML.")
WORKLOAD = typer.Option("bert", "--workload", "-w",
                        help="A workload preset (bert, trxl, t5, xlm, flux-4k, hunyuan-video, "
                             "cosmos-7b) or a YAML file.")


def _load(name: Optional[str], file: Optional[Path]) -> "ir.Cascade":
    from einsim import library

    if (name is None) == (file is None):
        raise UsageFailure("give a library cascade NAME or --file F (one of them); see "
                           "'einsim cascades' for names")
    if name is not None:
        return library.get(name)
    return load_cascade_file(file, "--file")


def load_cascade_file(file: Path, option: str) -> "ir.Cascade":
    """Parse a cascade (``.einsum`` text or YAML) from ``file``, naming ``option`` on errors."""
    import einsim

    if file.is_dir():
        raise UsageFailure(f"{option} {file}: is a directory, expected a cascade file")
    if not file.exists():
        raise UsageFailure(f"{option} {file}: no such file")
    if not file.is_file():
        raise UsageFailure(f"{option} {file}: not a regular file (a FIFO or device?); expected "
                           "a cascade (.einsum) or YAML file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageFailure(f"{option} {file}: not UTF-8 text; expected a cascade (.einsum) or "
                           "YAML file") from None
    except OSError as error:
        raise UsageFailure(f"{option} {file}: {error.strerror or error}") from None
    if file.suffix in (".yaml", ".yml"):
        return einsim.load_yaml(text, source=str(file))
    return einsim.parse(text, name=file.stem, source=str(file))


def size_assignments(items: list[str], example: str, low: int | None = None) -> dict[str, int]:
    """``--size NAME=INTEGER`` options as a dict (at least ``low`` when given), else a one-line
    error naming the option."""
    sizes = {}
    for item in items:
        key, equals, value = item.partition("=")
        try:
            number = int(value.strip()) if equals and key.strip() else None
        except ValueError:
            number = None
        if number is None or low is not None and number < low:
            raise UsageFailure(f"--size {item!r}: expected NAME=INTEGER, e.g. --size {example}")
        sizes[key.strip()] = number
    return sizes


def _sizes_for(cascade: "ir.Cascade", seq_len: Optional[int], overrides: list[str]) -> dict:
    """Sizes to validate with: the library entry's, or defaults for ranks the text leaves open."""
    from einsim.language import ir
    from einsim import library
    from einsim.execution.validate import size_names

    known = size_names(cascade)
    if cascade.name in library.ENTRIES:
        sizes = library.entry(cascade.name).sizes_for(seq_len)
    else:
        fixed = {r.name for r in cascade.ranks if r.size is not None}
        fixed |= {part for p in cascade.partitions
                  for part, size in zip(p.parts[1:], p.sizes) if isinstance(size, int)}
        sizes = {k: v for k, v in _DEFAULT_SIZES.items() if k not in fixed and k in known}
        if seq_len is not None:
            sizes.update({k: seq_len for k in ("M", "P") if k not in fixed and k in known})
    for item in overrides:
        (key, number), = size_assignments([item], "M0=64").items()
        if key not in known:
            raise UsageFailure(f"--size {item!r}: {cascade.name or 'the cascade'} has no size "
                               f"{key}; expected one of {', '.join(sorted(known))}")
        tiles = {part for p in cascade.partitions for part in p.parts[1:]}
        if number <= 0 and key in {ir.rank_of(v) for v in cascade.rank_variables} - tiles:
            raise UsageFailure(f"--size {item!r}: rank {key} needs a positive size")
        sizes[key] = number
    return sizes


@app.command()
def cascades(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List the cascade library with passes over the sequence rank."""
    from einsim.cli.cascade_listing import listing

    rows = listing()
    if as_json:
        emit({"cascades": rows})
        return
    from rich.table import Table

    table = Table(title="einsim cascade library")
    for column in ("name", "passes", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["name"], str(row["passes_over_m"]), row["description"])
    console.print(table)


@app.command()
def show(name: Optional[str] = CASCADE_NAME, file: Optional[Path] = CASCADE_FILE,
         as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Print a cascade, its Einsums with op counts, and its passes per rank."""
    from einsim.language import ir
    from einsim.analysis.footprint import op_counts
    from einsim.analysis.passes import passes as count_passes

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
    from rich.syntax import Syntax
    from rich.table import Table

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
def passes(name: Optional[str] = CASCADE_NAME, file: Optional[Path] = CASCADE_FILE,
           rank: str = typer.Option("m", "--rank", "-r", help="Rank, e.g. m (with its "
                                    "partitions) or m0 (only that part)."),
           word_bytes: int = typer.Option(2, "--word-bytes", help="Bytes per word."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Passes over a rank, and the on-chip buffer that pass structure forces."""
    from einsim.analysis.footprint import buffer_growth, footprint
    from einsim.analysis.passes import pass_assignment, passes as count_passes

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
    from rich.table import Table

    table = Table(title=f"{cascade.name or 'cascade'}: passes over {rank}")
    table.add_column("quantity")
    table.add_column("value", overflow="fold")
    table.add_row("passes", str(count))
    table.add_row("buffered between passes", ", ".join(live.buffered) or "nothing")
    table.add_row("recurrence state", ", ".join(live.recurrence_state) or "none")
    table.add_row("buffer bytes", result["buffer_bytes_expr"])
    table.add_row("growth", result["buffer_growth"])
    console.print(table)


def _reference_option(reference: Optional[str]):
    """``--reference``: a built-in reference name, or a cascade file executed as the reference."""
    if reference is None:
        return None
    from einsim.library.references import REFERENCES

    if reference in REFERENCES:
        return reference
    path = Path(reference)
    if path.exists() or path.suffix in (".einsum", ".yaml", ".yml") or "/" in reference:
        return load_cascade_file(path, "--reference")
    raise UsageFailure(f"--reference {reference!r}: expected one of {', '.join(REFERENCES)} "
                       "or a cascade file (.einsum or YAML)")


@app.command()
def validate(name: Optional[str] = CASCADE_NAME,
             all_: bool = typer.Option(False, "--all", help="Validate every library cascade."),
             file: Optional[Path] = typer.Option(None, "--file", "-f", help="Cascade text/YAML."),
             seq_len: Optional[str] = typer.Option(None, "--seq-len", help="Set M = P = N, "
                                                   "e.g. 4096, 64K, 1M."),
             dtype: str = typer.Option("float64", "--dtype", help="float64, float32, float16, "
                                       "bfloat16."),
             tile: Optional[str] = typer.Option(None, "--tile", help="Execute tile by tile along "
                                                "this rank variable, e.g. m1."),
             reference: Optional[str] = typer.Option(None, "--reference", help="A reference "
                                                     "name (attention, causal-attention...) or a "
                                                     "cascade file to execute as the reference."),
             size: list[str] = typer.Option([], "--size", help="NAME=VALUE, repeatable."),
             as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Execute cascades on random inputs and compare with a reference."""
    from einsim import library
    from einsim.errors import SpecError
    from einsim.execution.execute import ResourceLimitError
    from einsim.execution.validate import estimate_operations, validate as run_validation
    from einsim.workloads import parse_seq_len

    length = None
    if seq_len is not None:
        try:
            length = parse_seq_len(seq_len)
        except SpecError as error:
            raise UsageFailure(f"--seq-len: {error}") from None
    if all_:
        if name or file:
            raise UsageFailure("--all validates the whole library; drop NAME/--file")
        targets = [library.get(n) for n in library.names()]
    else:
        targets = [_load(name, file)]
    checked_against = _reference_option(reference)
    results = []
    for cascade in targets:
        sizes = _sizes_for(cascade, length, size)
        work = estimate_operations(cascade, sizes)
        if work > _MAX_VALIDATION_POINTS:
            _check_memory(cascade, sizes, tile)  # the more useful message, when both apply
            raise UsageFailure(f"validating {cascade.name or 'the cascade'} at these sizes "
                               f"visits about {work:.1e} points (hours of NumPy; the limit is "
                               f"{_MAX_VALIDATION_POINTS:.0e}); use a smaller --seq-len or "
                               "--size")
        try:
            results.append(run_validation(cascade, sizes=sizes, dtype=dtype, tile=tile,
                                          reference=checked_against))
        except ResourceLimitError as error:
            raise UsageFailure(_memory_message(error, tile, cascade)) from None
    if as_json:
        emit({"results": [r.model_dump() for r in results]})
    else:
        _validation_table(results)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _check_memory(cascade: "ir.Cascade", sizes: dict, tile: Optional[str]) -> None:
    from einsim.execution.execute import ResourceLimitError
    from einsim.execution.validate import check_memory

    try:
        resolved = {**_resolved(cascade, sizes), **sizes}
        check_memory(cascade, resolved, tile)
    except ResourceLimitError as error:
        raise UsageFailure(_memory_message(error, tile, cascade)) from None


def _resolved(cascade: "ir.Cascade", sizes: dict) -> dict:
    from einsim.language.sizes import resolve_sizes

    try:
        return resolve_sizes(cascade, {}, sizes)
    except EinsimError:
        return {}


def _memory_message(error, tile: Optional[str], cascade: "Optional[ir.Cascade]" = None) -> str:
    partitions = cascade.partitions if cascade is not None else ()
    if tile or (cascade is not None and not partitions):
        hint = "a smaller --seq-len" + ("" if tile else " (or a 1-pass cascade such as "
                                         "fusemax with --tile m1)")
    else:
        variable = partitions[0].parts[0].lower() if partitions else "m1"
        hint = f"--tile {variable} or a smaller --seq-len"
    return f"{error.needed_text()}; try {hint}"


def _validation_table(results: list) -> None:
    from rich.table import Table

    references = {r.reference for r in results}
    title = f"validation against {references.pop()}" if len(references) == 1 else \
        "validation against each cascade's reference"
    table = Table(title=title)
    columns = ["cascade", "ok", "max abs error", "max rel error", "dtype", "seconds"]
    if len({r.reference for r in results}) > 1:
        columns.insert(1, "reference")
    for column in columns:
        table.add_column(column)
    for r in results:
        status = "[green]ok[/green]" if r.ok else "[red]FAIL[/red]" + (
            f" overflow in {', '.join(r.overflow)}" if r.overflow else "")
        row = [r.cascade, status, f"{r.max_abs_error:.2e}", f"{r.max_rel_error:.2e}", r.dtype,
               f"{r.seconds:.3f}"]
        if "reference" in columns:
            row.insert(1, r.reference)
        table.add_row(*row)
    console.print(table)


def _subcommand(args: list[str]) -> Optional[str]:
    """The subcommand named on the line (top-level options take no values)."""
    return next((a for a in args if not a.startswith("-")), None)


def _register_commands(args: list[str] | None = None) -> None:
    """Import the module defining the requested subcommand (all of them for help or typos)."""
    import importlib

    wanted = _subcommand(args or [])
    if wanted in _OWN_COMMANDS:
        return
    modules = [_COMMAND_MODULES[wanted]] if wanted in _COMMAND_MODULES else \
        sorted(set(_COMMAND_MODULES.values()))
    for module in modules:
        importlib.import_module(module)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning every user error into one line and status 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:  # accepted anywhere on the line, not only before the subcommand
        args = [a for a in args if a != "--debug"]
    try:
        return _run(args, debug)
    except (BrokenPipeError, OSError) as error:  # stdout closed or on a full disk
        return _output_failure(error, debug, _output_files(args))


def _run(args: list[str], debug: bool) -> int:
    try:
        if args[:1] == ["--version"]:  # the fast path: no command tree to build
            sys.stdout.write(f"einsim {__version__}\n")
            sys.stdout.flush()
            return 0
        if args in (["cascades"], ["cascades", "--json"]):  # no typer: its option parsing
            cascades(as_json=len(args) == 2)             # imports pydantic (~60 ms)
            sys.stdout.flush()
            return 0
        _register_commands(args)
        if "einsim.cli.gpu" in sys.modules:
            args = sys.modules["einsim.cli.gpu"].join_multi_values(args)
        command = typer.main.get_command(app)
        code = command.main(args=args, prog_name="einsim", standalone_mode=False)
        sys.stdout.flush()
    except typer.Exit as done:
        sys.stdout.flush()
        return done.exit_code
    except typer.Abort:
        sys.stderr.write("einsim: aborted\n")
        return 1
    except EinsimError as error:
        return _fail(" ".join(str(error).split()), debug)
    except OverflowError as error:
        return _fail(f"a number is too large to compute with ({error})", debug)
    except RecursionError:
        return _fail("input nested too deeply to process", debug)
    except MemoryError:
        return _fail("out of memory; try smaller sizes or tile the execution", debug)
    except (BrokenPipeError, OSError):
        raise
    except Exception as error:  # click's usage errors (their class moved between versions)
        if not hasattr(error, "format_message"):
            raise
        if type(error).__name__ == "NoArgsIsHelpError":  # bare `einsim`: the help was shown
            return 0
        return _fail(error.format_message(), debug)
    return code if isinstance(code, int) else 0


_OUTPUT_OPTIONS = ("--plot", "--out", "-o", "--csv")


def _output_files(args: list[str]) -> list[str]:
    """Files the command line asks to write (``--plot F``, ``--out F``...)."""
    return [f"{option} {value}" for option, value in zip(args, args[1:])
            if option in _OUTPUT_OPTIONS]


def _output_failure(error: OSError, debug: bool, outputs: list[str] = ()) -> int:
    """stdout (or a file a command wrote) failed: a full disk, a closed pipe, no permission."""
    if debug:
        traceback.print_exc()
    _silence_stdout()
    if isinstance(error, BrokenPipeError) or error.errno == errno.EPIPE:
        return 2  # the reader went away (``einsim ... | head``): nothing useful to say
    filename = getattr(error, "filename", None)
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        where = filename or " or ".join([*outputs, "standard output"])
        message = f"cannot write {where}: no space left on device"
    elif filename:
        message = f"{filename}: {reason}"
    else:
        message = f"cannot write standard output: {reason}"
    _safe_stderr(f"einsim: error: {' '.join(message.split())}\n")
    return 2


def _silence_stdout() -> None:
    """If stdout itself is what failed, point it at /dev/null so the interpreter's final flush
    does not fail again (a failed ``--plot`` leaves a working stdout alone)."""
    import os

    try:
        sys.stdout.flush()
        return
    except (OSError, ValueError):
        pass
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass  # in-process callers (tests) capture stdout: nothing to redirect


def _safe_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except OSError:
        pass


def _fail(message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    _safe_stderr(f"einsim: error: {message}\n")
    return 2


if __name__ == "__main__":  # run through the imported module so there is one app
    from einsim.cli import main as entry_point

    sys.exit(entry_point())
