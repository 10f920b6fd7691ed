"""Cost-model speed on the loop-tree engine: each ladder mapping compiled once, then evaluated
per point; the mapper; a vectorized sweep.

Run ``python benchmarks/evaluate.py [--points 10000] [--json]``.  Per ladder mapping (at the
point the mapper chooses for BERT at 64K): the time
to compile the tree (derive and lambdify every expression, once per tree and hardware), one
point's full Report from the compiled tree, and one ``einsim.evaluate`` call (the mapper
searching the free parameters, compiled trees cached).  The mapper is timed on FuseMax and
FLAT at 1M (``einsim.search.mapper.map_cascade``: every level choice, every free-parameter
candidate in one array evaluation).  The sweep crosses sequence lengths with pe_dim, global
buffer size, DRAM bandwidth and clock for FuseMax, the mapper choosing P1 at every point, point
by point (``einsim.search.sweeps.iterate``; ``benchmarks/run.py`` times the vectorized path against
it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

from timing import best_of  # benchmarks/timing.py

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(_ROOT))

from einsim.cost import engine as engine_module  # noqa: E402
from einsim.cost.evaluate import compile_for, problem_of  # noqa: E402
from einsim.cost.tree import load_mapping_tree  # noqa: E402
from einsim.cost.front_door import evaluate  # noqa: E402
from einsim.search.mapper import map_cascade  # noqa: E402
from einsim.search.sweeps import iterate  # noqa: E402
from einsim.workloads import load_workload  # noqa: E402

LADDER = ["unfused", "flat", "fusemax-cascade", "fusemax-arch", "fusemax"]
SEQ_LEN = 65536


def ladder_timings(seq_len: int = SEQ_LEN, repeat: int = 20) -> dict:
    """Per ladder mapping: compile (s), one compiled point (ms), one evaluate() call (ms)."""
    problem = problem_of(load_workload("bert", seq_len))
    results = {}
    for name in LADDER:
        tree = load_mapping_tree(name)
        chosen = evaluate(name, seq_len=seq_len).parameters  # a feasible point: the mapper's
        choice = {k: v for k, v in chosen.items() if k in tree.structural}
        point = {k: v for k, v in chosen.items() if k not in tree.structural}
        concrete = tree.concrete(choice) if choice else tree
        engine_module._COMPILED.clear()  # a cold compile, not the cache
        started = time.perf_counter()
        compiled, _ = compile_for(concrete)
        compile_s = time.perf_counter() - started
        compiled.report(problem, point)  # warm NumPy
        point_ms = 1e3 * best_of(lambda: compiled.report(problem, point), repeat)
        evaluate(name, seq_len=seq_len)  # compiles every level choice once
        evaluate_ms = 1e3 * best_of(lambda: evaluate(name, seq_len=seq_len), max(3, repeat // 4))
        results[name] = {"compile_s": compile_s, "point_ms": point_ms,
                         "evaluate_ms": evaluate_ms, "parameters": chosen}
    return results


def mapper_timings(seq_len: int = 1 << 20) -> dict:
    results = {}
    for name in ("fusemax", "flat"):
        map_cascade(name, None, None, "bert", seq_len)  # compile once
        found = None

        def run():
            nonlocal found
            found = map_cascade(name, None, None, "bert", seq_len)

        seconds = best_of(run, 3)
        results[name] = {"seconds": seconds, "trees": found.trees, "points": found.points,
                         "best_latency_s": found.result.best.latency_s,
                         "best_parameters": found.result.best.parameters}
    return results


def sweep_timing(points: int) -> dict:
    grid = {"pe_dim": [16, 32, 64, 128, 256, 512, 1024],
            "global_buffer_bytes": [2**k for k in range(20, 30)],
            "dram_bandwidth": [1e11, 2e11, 4e11, 8e11, 1.6e12, 3.2e12, 6.4e12, 1.28e13,
                               2.56e13, 5.12e13],
            "clock_hz": [0.94e9, 1.5e9]}
    per_length = len(list(itertools.product(*grid.values())))
    lengths = [2**k for k in range(10, 21)][:max(1, -(-points // per_length))]
    started = time.perf_counter()
    count = feasible = 0
    for point in iterate("fusemax", "bert", lengths, grid):
        count += 1
        feasible += bool(point["feasible"])
        if count >= points:
            break
    elapsed = time.perf_counter() - started
    return {"points": count, "feasible": feasible, "seconds": elapsed,
            "points_per_s": count / elapsed}


def run(points: int) -> dict:
    return {"ladder": ladder_timings(), "mapper_1M": mapper_timings(),
            "sweep": sweep_timing(points)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    results = run(options.points)
    if options.json:
        print(json.dumps(results, indent=2, default=str))
        return
    print(f"{'mapping':16} {'compile s':>10} {'point ms':>10} {'evaluate ms':>12}  point")
    for name, row in results["ladder"].items():
        choice = ", ".join(f"{k}={v}" for k, v in row["parameters"].items()) or "-"
        print(f"{name:16} {row['compile_s']:10.3f} {row['point_ms']:10.3f} "
              f"{row['evaluate_ms']:12.3f}  {choice}")
    for name, row in results["mapper_1M"].items():
        print(f"mapper {name:9} at 1M: {row['seconds']:.3f} s ({row['trees']} tree(s), "
              f"{row['points']} points; best {row['best_parameters']})")
    sweep = results["sweep"]
    print(f"sweep, point by point: {sweep['points']} points ({sweep['feasible']} feasible) in "
          f"{sweep['seconds']:.2f} s, {sweep['points_per_s']:,.0f} points/s")


if __name__ == "__main__":
    main()
