"""Sequence parallelism on device groups: time per ``einsim seqpar`` evaluation (the strategy's
tree on G devices searched by the mapper, on a free link for the overlap, and on one device
for the efficiency), the first call compiling the trees and later calls reusing them; and
the time of one engine evaluation of a strategy tree at fixed parameters.

Run ``python benchmarks/seqpar.py [--json]`` from the repository root.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from timing import median_of, report_rows  # benchmarks/timing.py


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run() -> list[dict]:
    from einsim.cost.device_hierarchy import group_step
    from einsim.cost.evaluate import evaluate_tree

    rows = []
    lasp2, cascade = "lasp2", "linear-attention-lasp2"
    for label, strategy, chosen, fixed in (
            ("ring", "ring", None, {"M0": 128, "TQ": 8192}),
            ("lasp2h", "lasp2h", None, {"M0": 128, "TQ": 8192}),
            ("lasp2", lasp2, cascade, {"P0": 256})):
        for link in ("nvlink", "roce-400g"):
            started = time.perf_counter()
            group_step(strategy, "h100", 8, "1M", link, "bert", chosen)
            first = time.perf_counter() - started
            again = median_of(lambda: group_step(strategy, "h100", 8, "1M", link, "bert",
                                               chosen))
            sweep = median_of(lambda: [group_step(strategy, "h100", g, "256K", link, "bert",
                                                chosen) for g in (2, 4, 8, 16, 32, 64)],
                            rounds=1)
            rows.append({"what": f"seqpar {label} on h100:8 ({link}), 1M",
                         "first_s": first, "evaluation_ms": again * 1e3,
                         "g_sweep_2_to_64_s": sweep})
        tree = {"ring": "seqpar-ring", "lasp2h": "seqpar-lasp2h"}.get(label, "seqpar-lasp2")
        point = median_of(lambda: evaluate_tree(tree, "h100:8", "bert", "1M", fixed,
                                              cascade=chosen, pareto=False))
        rows.append({"what": f"engine point: {label} tree on h100:8",
                     "evaluation_ms": point * 1e3})
    return rows


if __name__ == "__main__":
    report_rows(run(), "--json" in sys.argv)
