"""Cost-model speed: one evaluation, a 10,000-point sweep, one mapper search.

Run ``python benchmarks/evaluate.py [--points 10000] [--json]``.  Targets: an evaluation under
5 ms and a mapper search under 1 s for the built-in mappings.  The sweep crosses sequence
lengths with pe_dim, global buffer size, DRAM bandwidth and clock for FuseMax, the mapper choosing
P1 at every point (the point-by-point path; a vectorized engine is future work).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

from einsim.evaluator import evaluate
from einsim.mapper import search
from einsim.mapping import load_mapping_spec
from einsim.sweeps import iterate
from einsim.workload import load_workload
from hw_models.spatial_array import load_spatial_array


def best_of(function, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def run(points: int) -> dict:
    results = {}
    evaluate("fusemax", seq_len=65536, parameters={"P1": 128})  # warm the caches
    results["evaluation_ms"] = 1e3 * best_of(
        lambda: evaluate("fusemax", seq_len=65536, parameters={"P1": 128}), 50)
    for name in ("fusemax", "flat"):
        spec = load_mapping_spec(name)
        machine = load_spatial_array(spec.hardware)
        problem = load_workload("bert", 1048576)
        results[f"mapper_{name}_1M_s"] = best_of(lambda: search(spec, machine, problem), 3)
    grid = {"pe_dim": [16, 32, 64, 128, 256, 512, 1024],
            "global_buffer_bytes": [2**k for k in range(20, 30)],
            "dram_bandwidth": [1e11, 2e11, 4e11, 8e11, 1.6e12, 3.2e12, 6.4e12, 1.28e13,
                               2.56e13, 5.12e13],
            "clock_hz": [0.94e9, 1.5e9]}
    lengths = [2**k for k in range(10, 21)]
    per_length = len(list(itertools.product(*grid.values())))
    lengths = lengths[:max(1, -(-points // per_length))]
    started = time.perf_counter()
    count = feasible = 0
    for point in iterate("fusemax", "bert", lengths, grid):
        count += 1
        feasible += point["feasible"]
        if count >= points:
            break
    elapsed = time.perf_counter() - started
    results.update({"sweep_points": count, "sweep_feasible": feasible, "sweep_s": elapsed,
                    "sweep_points_per_s": count / elapsed})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    results = run(options.points)
    if options.json:
        print(json.dumps(results, indent=2))
        return
    for key, value in results.items():
        print(f"{key:24s} {value:12.4g}")


if __name__ == "__main__":
    main()
