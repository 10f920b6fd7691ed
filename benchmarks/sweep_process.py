"""Whole-process time of the CLI's 15,360-point vectorized sweep with ``--json`` (issue 12).

Each round runs, one after the other, a bare ``python -c pass``, the sweep with an empty
compiled-tree cache (``EINSIM_CACHE_DIR`` a fresh folder: it compiles the tree with sympy and
stores the plan) and the sweep again on that cache (no sympy); medians of wall and CPU time.
When the environment forbids bytecode files (``PYTHONDONTWRITEBYTECODE``), the runs use a
private ``PYTHONPYCACHEPREFIX`` warmed first, as an installed package has its ``.pyc`` files.

    python benchmarks/sweep_process.py [--rounds 5] [--stages] [--json]

``--stages`` also times the parts of one warm sweep inside a process (imports, cache lookup,
columns, rows, Pareto front, JSON) to show where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = ["1K", "2K", "4K", "8K", "16K", "32K", "64K", "128K", "256K", "512K", "1M", "2M",
           "4M", "8M", "16M"]
GRID = {"pe_dim": [16, 32, 64, 128, 256, 512, 1024, 2048],
        "global_buffer_bytes": [65536 * 4 ** k for k in range(8)],
        "dram_bandwidth": ["1e11", "2e11", "4e11", "8e11"],
        "clock_hz": ["5e8", "1e9", "1.5e9", "2e9"]}
ARGS = ["sweep", "--mapping", "fusemax", "--seq-len", ",".join(LENGTHS),
        *(a for name, values in GRID.items()
          for a in ("--param", f"{name}=" + ",".join(str(v) for v in values))), "--json"]
POINTS = len(LENGTHS) * 8 * 8 * 4 * 4  # 15,360
TARGET_S = 0.5


def command() -> str:
    """The timed command, as a user types it."""
    return "einsim " + " ".join(ARGS)


def _environment(cache: str) -> dict:
    env = {**os.environ, "EINSIM_CACHE_DIR": cache}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _once(argv: list[str], env: dict) -> tuple[float, float, bytes]:
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], stdout=subprocess.PIPE, env=env, check=True)
    wall = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + \
        (after.children_system - before.children_system)
    return wall, cpu, done.stdout


def run(rounds: int = 5) -> dict:
    """Median wall and CPU seconds of ``python -c pass``, a cold-cache and a warm-cache sweep."""
    samples: dict[str, list[tuple[float, float]]] = {"python -c pass": [], "cold cache": [],
                                                     "warm cache": []}
    with tempfile.TemporaryDirectory() as scratch:
        base = _environment(str(Path(scratch, "unused")))
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            base.pop("PYTHONDONTWRITEBYTECODE")
            base["PYTHONPYCACHEPREFIX"] = str(Path(scratch, "pycache"))
        _once(["-m", "einsim", *ARGS], {**base, "EINSIM_CACHE_DIR": ""})  # bytecode, untimed
        outputs = set()
        for k in range(rounds):
            cache = str(Path(scratch, f"cache{k}"))
            env = {**base, "EINSIM_CACHE_DIR": cache}
            samples["python -c pass"].append(_once(["-c", "pass"], env)[:2])
            wall, cpu, cold = _once(["-m", "einsim", *ARGS], env)
            samples["cold cache"].append((wall, cpu))
            wall, cpu, warm = _once(["-m", "einsim", *ARGS], env)
            samples["warm cache"].append((wall, cpu))
            outputs |= {cold, warm}
        points = json.loads(next(iter(outputs)))["points"]
    result = {"command": command(), "points": len(points), "rounds": rounds,
              "same_output": len(outputs) == 1, "target_s": TARGET_S}
    for label, values in samples.items():
        result[label] = {"wall_s": statistics.median(v[0] for v in values),
                         "cpu_s": statistics.median(v[1] for v in values)}
    return result


def stages() -> dict:
    """Seconds of each part of one warm sweep in a fresh process (after a cold run)."""
    probe = r"""
import json, sys, time
t0 = time.perf_counter()
from einsim.cli import main
from einsim.cli import cost as _  # noqa: F401 (the sweep command and what it imports)
from einsim.search import sweeps, tree_sweep
from einsim.cost import compiled_cache
from einsim.cli.json_output import dumps
import einsim.workloads, hw_models.spatial_array, hw_models.gpu_sm
t1 = time.perf_counter()
lengths = [1024 * 2 ** k for k in range(15)]
grid = json.loads(sys.argv[1])
out = {"imports_s": t1 - t0}
def tick(name, function, *args):
    start = time.perf_counter(); value = function(*args)
    out[name] = out.get(name, 0.0) + time.perf_counter() - start
    return value
cached = tick("cache lookup_s", sweeps._cached, "fusemax", None, None)
tick("checks_s", sweeps._check_names, "fusemax", None, grid, cached)
tick("checks_s", sweeps._experiment, "fusemax", "bert", None, "latency", grid, None, cached)
prepared = tick("cache lookup_s", tree_sweep.prepare, "fusemax", grid, None, "latency")
import itertools
names, combos = list(grid), list(itertools.product(*grid.values()))
swept = list(zip(*combos))
rows = []
for n in lengths:
    columns = tick("columns_s", tree_sweep.columns_of, prepared, "bert", n, grid)
    rows += tick("rows_s", tree_sweep._rows, columns, names, swept, combos)
front = tick("pareto_s", sweeps.pareto, rows)
tick("json_s", dumps, {"points": rows, "pareto": front})
out["heavy_modules"] = sorted(m for m in ("sympy", "lark", "networkx") if m in sys.modules)
print(json.dumps(out))
"""
    grid = {k: [float(v) for v in values] for k, values in GRID.items()}
    with tempfile.TemporaryDirectory() as scratch:
        env = _environment(str(Path(scratch, "cache")))
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            env.pop("PYTHONDONTWRITEBYTECODE")
            env["PYTHONPYCACHEPREFIX"] = str(Path(scratch, "pycache"))
        for _ in range(3):  # again if the sources changed in between (a new cache key)
            _once(["-m", "einsim", *ARGS], env)  # cold: compiles and caches
            done = subprocess.run([sys.executable, "-c", probe, json.dumps(grid)], env=env,
                                  capture_output=True, text=True, check=True)
            found = json.loads(done.stdout.splitlines()[-1])
            if not found["heavy_modules"]:
                break
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stages", action="store_true")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    result = run(options.rounds)
    if options.stages:
        result["stages"] = stages()
    if options.json:
        print(json.dumps(result, indent=1))
        return
    print(result["command"])
    for label in ("python -c pass", "cold cache", "warm cache"):
        row = result[label]
        print(f"  {label:15s} {row['wall_s']:.3f} s wall, {row['cpu_s']:.3f} s CPU")
    print(f"  {result['points']:,} points; cold and warm outputs identical: "
          f"{result['same_output']}; target (warm) < {TARGET_S} s")
    for name, value in result.get("stages", {}).items():
        print(f"  {name}: {value if isinstance(value, list) else f'{value:.3f}'}")


if __name__ == "__main__":
    main()
