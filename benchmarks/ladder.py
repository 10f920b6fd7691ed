"""The FuseMax ablation ladder from the loop trees: speedup over FLAT, energy ratio and both
arrays' utilization, per model and sequence length (attention only).

    python benchmarks/ladder.py [--json] [--lengths 1K,4K,16K,64K,256K,1M]

Every number comes from the mapping trees in ``mappings/`` and the published hardware
parameters, with each tree's free parameters chosen by the mapper for latency.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from einsim.cost.evaluate import evaluate_tree  # noqa: E402
from einsim.workloads import parse_seq_lens  # noqa: E402

LADDER = ["unfused", "flat", "fusemax-cascade", "fusemax-arch", "fusemax"]
MODELS = ["bert", "trxl", "t5", "xlm"]


def ladder(lengths: list[int]) -> list[dict]:
    rows = []
    for model in MODELS:
        for n in lengths:
            reports = {m: evaluate_tree(m, workload=model, seq_len=n).best for m in LADDER}
            flat = reports["flat"]
            row = {"model": model, "seq_len": n}
            for m, r in reports.items():
                row[f"{m}:speedup"] = flat.latency_s / r.latency_s
                row[f"{m}:energy_ratio"] = r.energy_j / flat.energy_j
                row[f"{m}:util2d"] = r.utilization.get("array2d", 0.0)
                row[f"{m}:util1d"] = r.utilization.get("array1d", 0.0)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1K,4K,16K,64K,256K,1M")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = ladder(parse_seq_lens(args.lengths))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'model':6} {'N':>8} " + " ".join(f"{m[:14]:>22}" for m in LADDER))
    for row in rows:
        cells = [f"{row[f'{m}:speedup']:6.2f}x {row[f'{m}:energy_ratio']:4.2f}E "
                 f"{row[f'{m}:util2d']:4.0%}/{row[f'{m}:util1d']:4.0%}" for m in LADDER]
        print(f"{row['model']:6} {row['seq_len']:>8} " + " ".join(f"{c:>22}" for c in cells))
    for m in LADDER:
        speedups = [r[f"{m}:speedup"] for r in rows]
        energy = [r[f"{m}:energy_ratio"] for r in rows]
        print(f"{m:16} speedup over FLAT: mean {sum(speedups) / len(speedups):.2f}x, geomean "
              f"{math.exp(sum(map(math.log, speedups)) / len(speedups)):.2f}x; energy ratio "
              f"mean {sum(energy) / len(energy):.3f}")


if __name__ == "__main__":
    main()
