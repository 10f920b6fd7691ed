"""The loop-tree engine at speed: vectorized sweep columns and the tree mapper.

    python benchmarks/tree_engine.py [--quick]

* columns: ``einsim.search.tree_sweep.vectorized_columns`` on a grid of about a million
  FuseMax design points (P1 fixed, so every point is one candidate), timed warm (the
  expressions are compiled and specialized once, then evaluated);
* mapper: ``einsim map --cascade`` with no mapping (tree search) for the library ``fusemax``
  cascade on fusemax-cloud, ``attention-3pass`` on flat-cloud, and a user cascade
  (``examples/sigmoid_attention.einsum``), each against its hand-written tree where one
  exists.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent


def columns(quick: bool) -> dict:
    import numpy as np

    from einsim.search.tree_sweep import vectorized_columns

    grid = {"P1": list(range(1, 257)), "global_buffer_bytes":
            [int(x) for x in np.linspace(2 ** 20, 2 ** 26, 16 if quick else 64)],
            "dram_bandwidth": list(np.linspace(1e10, 1e12, 16 if quick else 64)),
            "clock_hz": [5e8, 9.4e8, 1.5e9, 2e9]}
    started = time.perf_counter()
    vectorized_columns("fusemax", "bert", 65536, grid)          # compile and specialize
    cold = time.perf_counter() - started
    started = time.perf_counter()
    result = vectorized_columns("fusemax", "bert", 65536, grid)
    warm = time.perf_counter() - started
    points = len(result["feasible"])
    return {"points": points, "first_s": cold, "warm_s": warm, "points_per_s": points / warm}


def mapper() -> list[dict]:
    from einsim.cost.evaluate import evaluate_tree
    from einsim.search.mapper import map_cascade

    cases = [("fusemax", "fusemax-cloud", "fusemax"), ("attention-3pass", "flat-cloud", "flat"),
             (str(ROOT / "examples/sigmoid_attention.einsum"), "fusemax-cloud", None)]
    rows = []
    for cascade, hardware, hand in cases:
        started = time.perf_counter()
        found = map_cascade(None, cascade, hardware, "bert", 65536)
        seconds = time.perf_counter() - started
        row = {"cascade": Path(cascade).name, "hardware": hardware, "seconds": seconds,
               "trees": found.trees, "points": found.points,
               "latency_s": found.result.best.latency_s}
        if hand:
            row["hand_written"] = hand
            row["hand_latency_s"] = evaluate_tree(hand, workload="bert", seq_len=65536
                                                  ).best.latency_s
        rows.append(row)
    return rows


def run(quick: bool = False) -> dict:
    return {"columns": columns(quick), "mapper": mapper()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=1))


if __name__ == "__main__":
    main()
