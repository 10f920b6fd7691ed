"""All einsim benchmarks in one table: cost-model speed, sweeps, executor, GNA, ZigZag.

Run ``python benchmarks/run.py [--quick] [--json]`` from the repository root (with the project
installed, or ``PYTHONPATH=.``).  ``--quick`` keeps the whole run under about a minute: a
300-point point-by-point sweep instead of 10,000, the executor at M = P = 4096 instead of 8192
with three alternating rounds instead of seven, three start-up runs per command instead of
seven, one GNA repetition instead of five, three whole-process sweep rounds instead of
five.  The vectorized sweep always times at least 100,000 points.  CLI start-up is measured as whole processes (``python -m einsim ...``).  Targets and how they were chosen: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for _path in (_HERE.parent, _HERE):  # the benchmark modules, then einsim / mappings / hw_models
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import evaluate as evaluate_bench  # noqa: E402  (benchmarks/evaluate.py)
import executor as executor_bench  # noqa: E402
import gna as gna_bench  # noqa: E402
import sweep_process as sweep_process_bench  # noqa: E402
import tree_engine as tree_bench  # noqa: E402
import zigzag_compare  # noqa: E402

# The vectorized sweep: 11 lengths x 7 x 13 x 100 = 100,100 points.
VECTOR_SEQ_LENS = [2**k for k in range(10, 21)]  # 1K .. 1M
VECTOR_GRID = {"pe_dim": [16, 32, 64, 128, 256, 512, 1024],
               "global_buffer_bytes": [2**k for k in range(18, 31)],
               "dram_bandwidth": [1e11 * 2 ** (i / 14) for i in range(100)]}
VECTOR_CHECKS = 12  # points re-evaluated one by one to check the vectorized rows

TARGETS = {"evaluation_ms": 5.0, "mapper_s": 1.0, "executor_ratio": 1.2, "gna_ms": 100.0,
           "vector_points": 100_000, "startup_s": 0.25,
           "sweep_process_s": sweep_process_bench.TARGET_S}

STARTUP_COMMANDS = (["--version"], ["cascades"], ["cascades", "--json"])


def startup(rounds: int) -> list[dict]:
    """Whole-process wall and CPU time of short CLI commands (median of ``rounds`` runs).

    Each run is a fresh ``python -m einsim ...`` (what the ``einsim`` script runs), beside a
    bare ``python -c pass`` for the interpreter's own start-up on this machine.
    """
    import os
    import statistics
    import subprocess

    def once(argv: list[str]) -> tuple[float, float]:
        before = os.times()
        started = time.perf_counter()
        subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL, check=True)
        wall = time.perf_counter() - started
        after = os.times()
        return wall, (after.children_user - before.children_user) + \
            (after.children_system - before.children_system)

    out = []
    for command in [["-c", "pass"], *(["-m", "einsim", *c] for c in STARTUP_COMMANDS)]:
        samples = [once(command) for _ in range(rounds)]
        label = "python -c pass" if command[0] == "-c" else "einsim " + " ".join(command[2:])
        out.append({"command": label, "wall_s": statistics.median(s[0] for s in samples),
                    "cpu_s": statistics.median(s[1] for s in samples)})
    return out


def vectorized(quick: bool) -> dict:
    """Time ``einsim.search.tree_sweep.vectorized_points`` on :data:`VECTOR_GRID` (rows, ≥ 100,000
    points; the FuseMax tree's P1 searched at every point).

    ``{"status": "n/a", ...}`` when the module is missing or the sweep is not vectorizable.
    A few rows, spread over the grid, are checked against the point-by-point evaluator.
    """
    try:
        from einsim.search.tree_sweep import NotVectorizable, vectorized_points
    except ImportError as error:
        return {"status": "n/a", "reason": f"einsim.search.tree_sweep missing ({error})"}
    started = time.perf_counter()
    try:
        points = vectorized_points("fusemax", "bert", VECTOR_SEQ_LENS, VECTOR_GRID)
    except NotVectorizable as error:
        return {"status": "n/a", "reason": f"NotVectorizable: {error}"}
    seconds = time.perf_counter() - started
    result = {"status": "ok", "points": len(points), "seconds": seconds,
              "points_per_s": len(points) / seconds,
              "feasible": sum(bool(p.get("feasible")) for p in points)}
    result.update(_check_vectorized(points, VECTOR_CHECKS // (2 if quick else 1)))
    return result


def _check_vectorized(points: list[dict], count: int) -> dict:
    """Re-evaluate ``count`` rows (evenly spaced, plus the first infeasible) point by point."""
    from einsim.cost.front_door import evaluate
    from einsim.errors import MappingError

    picks = {round(k * (len(points) - 1) / max(1, count - 1)) for k in range(count)}
    picks |= {next((k for k, p in enumerate(points) if not p.get("feasible")), 0)}
    mismatches = []
    for k in sorted(picks):
        row = points[k]
        swept = {name: row[name] for name in VECTOR_GRID}
        try:
            report = evaluate("fusemax", None, "bert", row["seq_len"], swept)
        except MappingError:
            if row.get("feasible"):
                mismatches.append(f"point {k}: vectorized feasible, point-by-point infeasible")
            continue
        if not row.get("feasible"):
            mismatches.append(f"point {k}: vectorized infeasible, point-by-point feasible")
            continue
        for key in ("latency_s", "energy_j", "traffic_bytes"):
            if not math.isclose(row[key], getattr(report, key), rel_tol=1e-9):
                mismatches.append(f"point {k}: {key} {row[key]!r} != {getattr(report, key)!r}")
    return {"checked": len(picks), "mismatches": mismatches}


def collect(quick: bool) -> dict:
    """Run every benchmark; the raw results by section (what ``--json`` prints)."""
    timings = {}

    def timed(name, function, *args, **kwargs):
        started = time.perf_counter()
        value = function(*args, **kwargs)
        timings[name] = time.perf_counter() - started
        return value

    results = {"quick": quick}
    results["startup"] = timed("startup", startup, 3 if quick else 7)
    results["evaluate"] = timed("evaluate", evaluate_bench.run, 300 if quick else 10_000)
    results["vectorized"] = timed("vectorized", vectorized, quick)
    results["sweep_process"] = timed("sweep_process", sweep_process_bench.run, 3 if quick else 5)
    results["tree_engine"] = timed("tree_engine", tree_bench.run, quick)
    size = 4096 if quick else 8192
    results["executor"] = timed("executor", executor_bench.run, [size], 256, 3 if quick else 7)
    results["gna"] = timed("gna", gna_bench.run, 1 if quick else 5)
    results["zigzag"] = timed("zigzag", zigzag_compare.run, search=True)
    results["section_seconds"] = timings
    return results


def _status(ok: bool | None) -> str:
    if ok is None:
        return ""
    return "[green]ok[/green]" if ok else "[red]MISS[/red]"


def rows(results: dict) -> list[tuple[str, str, str, str, str]]:
    """(benchmark, measurement, value, target, status) rows of the summary table."""
    out = []
    for row in results.get("startup", []):
        command = row["command"]
        target = "" if command.startswith("python") else f"< {TARGETS['startup_s']:g} s"
        out.append(("start-up", command, f"{row['wall_s']:.3f} s (CPU {row['cpu_s']:.3f} s)",
                    target, "" if not target else _status(row["wall_s"] < TARGETS["startup_s"])))
    ev = results["evaluate"]
    out.extend(_cost_model_rows(ev))
    sweep_rate = ev["sweep"]["points_per_s"] if "sweep" in ev else ev["sweep_points_per_s"]
    vec = results["vectorized"]
    if vec["status"] == "ok":
        speedup = vec["points_per_s"] / sweep_rate
        agree = not vec["mismatches"]
        out.append(("sweep", f"vectorized ({vec['points']:,} points, {vec['feasible']:,} "
                    f"feasible)", f"{vec['points_per_s']:,.0f} points/s ({speedup:,.0f}x)",
                    f"≥ {TARGETS['vector_points']:,} points",
                    _status(vec["points"] >= TARGETS["vector_points"])))
        out.append(("sweep", f"vectorized = point by point ({vec['checked']} points)",
                    "agree" if agree else "; ".join(vec["mismatches"][:2]), "rel 1e-9",
                    _status(agree)))
    else:
        out.append(("sweep", "vectorized", f"n/a ({vec['reason']})", "", ""))
    if "sweep_process" in results:
        sp = results["sweep_process"]
        bare = sp["python -c pass"]["wall_s"]
        for label in ("cold cache", "warm cache"):
            row = sp[label]
            target = f"< {TARGETS['sweep_process_s']:g} s" if label == "warm cache" else ""
            out.append(("sweep", f"CLI {sp['points']:,}-point sweep --json, whole process, "
                        f"{label}", f"{row['wall_s']:.3f} s (CPU {row['cpu_s']:.3f} s; "
                        f"python -c pass {bare:.3f} s)", target,
                        _status(row["wall_s"] < TARGETS["sweep_process_s"]
                                and sp["same_output"]) if target else ""))
    if "tree_engine" in results:
        col = results["tree_engine"]["columns"]
        out.append(("sweep", f"vectorized columns, warm ({col['points']:,} points, P1 fixed)",
                    f"{col['points_per_s']:,.0f} points/s (first call {col['first_s']:.1f} s)",
                    "≥ 1,000,000 points/s", _status(col["points_per_s"] >= 1e6)))
        for row in results["tree_engine"]["mapper"]:
            against = (f"; hand-written {row['hand_written']} {row['hand_latency_s']:.4g} s"
                       if "hand_written" in row else "")
            out.append(("mapper", f"tree search: {row['cascade']} on {row['hardware']}",
                        f"{row['seconds']:.2f} s, {row['trees']} trees, best "
                        f"{row['latency_s']:.4g} s{against}", f"< {TARGETS['mapper_s']:g} s",
                        _status(row["seconds"] < TARGETS["mapper_s"]
                                and row["latency_s"] <= row.get("hand_latency_s", 1e300))))
    for row in results["executor"]:
        label = f"{row['cascade']}, M=P={row['seq_len']:,}, tile {row['tile']}"
        out.append(("executor", f"{label}: time vs hand-tiled NumPy (ABAB median)",
                    f"{row['ratio']:.2f}x ({row['einsim_s']:.2f} s vs {row['numpy_s']:.2f} s; "
                    f"CPU {row['cpu_ratio']:.2f}x)",
                    f"≤ {TARGETS['executor_ratio']:g}x",
                    _status(row["ratio"] <= TARGETS["executor_ratio"])))
        out.append(("executor", f"{label}: peak memory",
                    f"{row['einsim_peak_mb']:.0f} MB (NumPy {row['numpy_peak_mb']:.0f} MB)",
                    f"< M x P matrix ({row['mp_matrix_mb']:.0f} MB)",
                    _status(row["einsim_peak_mb"] < row["mp_matrix_mb"])))
    for row in results["gna"]["large"]:
        ms = 1e3 * row["analysis_s"]
        out.append(("GNA", f"analysis {row['problem']} ({row['tokens']:,} tokens)",
                    f"{ms:.2f} ms", f"< {TARGETS['gna_ms']:g} ms",
                    _status(ms < TARGETS["gna_ms"])))
    ratios = [r["ratio"] for r in results["gna"]["oracle"]]
    out.append(("GNA", f"brute-force oracle / analysis ({len(ratios)} small shapes, counts "
                "equal)", f"{min(ratios):,.0f}x .. {max(ratios):,.0f}x", "> 1x",
                _status(min(ratios) > 1)))
    out.append(("GNA", "predicted runtime, FLUX 256x256 on H100",
                f"{1e3 * results['gna']['predict_flux_h100_s']:.2f} ms", "", ""))
    zz = results["zigzag"]
    ours = zz["einsim"]["M x P"]
    problem = f"QKᵀ GEMM {zz['problem']['M']}x{zz['problem']['P']}x{zz['problem']['E']}, M x P"
    if "headline" in zz:
        h = zz["headline"]
        out.append(("ZigZag", f"{problem}: latency, einsim / ZigZag",
                    f"{h['einsim_latency_cycles']:,.0f} / {h['zigzag_latency_cycles']:,.0f} cyc "
                    f"(ZigZag {h['latency_ratio']:.3f}x)", "", ""))
        out.append(("ZigZag", f"{problem}: energy, einsim / ZigZag",
                    f"{1e6 * h['einsim_energy_j']:,.0f} / {1e6 * h['zigzag_energy_j']:,.0f} µJ "
                    f"(ZigZag {h['energy_ratio']:.3f}x)", "", ""))
    else:
        out.append(("ZigZag", f"{problem}: einsim latency, energy",
                    f"{ours['latency_cycles']:,.0f} cyc, {1e6 * ours['energy_j']:,.0f} µJ; "
                    f"{zz['zigzag']['status']}", "", ""))
    return out


def _cost_model_rows(ev: dict) -> list[tuple[str, str, str, str, str]]:
    """Rows of ``benchmarks/evaluate.py``: the loop-tree ladder format, or the older one."""
    out = []
    if "ladder" in ev:
        for name, row in ev["ladder"].items():
            out.append(("cost model", f"evaluation: {name}, BERT 64K",
                        f"{row['evaluate_ms']:.2f} ms (compile {row['compile_s']:.2f} s)",
                        f"< {TARGETS['evaluation_ms']:g} ms",
                        _status(row["evaluate_ms"] < TARGETS["evaluation_ms"])))
        for name, row in ev["mapper_1M"].items():
            out.append(("cost model", f"mapper search: {name}, BERT 1M",
                        f"{1e3 * row['seconds']:.1f} ms", f"< {TARGETS['mapper_s']:g} s",
                        _status(row["seconds"] < TARGETS["mapper_s"])))
        sweep = ev["sweep"]
        out.append(("sweep", f"point by point ({sweep['points']:,} points)",
                    f"{sweep['points_per_s']:,.0f} points/s", "", ""))
        return out
    out.append(("cost model", "evaluation: fusemax, BERT 64K, P1 fixed",
                f"{ev['evaluation_ms']:.2f} ms", f"< {TARGETS['evaluation_ms']:g} ms",
                _status(ev["evaluation_ms"] < TARGETS["evaluation_ms"])))
    for name in ("fusemax", "flat"):
        seconds = ev[f"mapper_{name}_1M_s"]
        out.append(("cost model", f"mapper search: {name}, BERT 1M", f"{1e3 * seconds:.1f} ms",
                    f"< {TARGETS['mapper_s']:g} s", _status(seconds < TARGETS["mapper_s"])))
    out.append(("sweep", f"point by point ({ev['sweep_points']:,} points)",
                f"{ev['sweep_points_per_s']:,.0f} points/s", "", ""))
    return out


def print_table(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    total = sum(results["section_seconds"].values())
    table = Table(title=f"einsim benchmarks{' (--quick)' if results['quick'] else ''}, "
                        f"{total:.0f} s")
    for column, justify in (("benchmark", "left"), ("measurement", "left"), ("value", "right"),
                            ("target", "right"), ("", "left")):
        table.add_column(column, justify=justify)
    previous = None
    for benchmark, measurement, value, target, status in rows(results):
        if previous is not None and benchmark != previous:
            table.add_section()
        table.add_row(benchmark if benchmark != previous else "", measurement, value, target,
                      status)
        previous = benchmark
    Console(width=None if sys.stdout.isatty() else 150).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller runs: under a minute.")
    parser.add_argument("--json", action="store_true", help="Raw results as JSON.")
    options = parser.parse_args(argv)
    results = collect(options.quick)
    if options.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
