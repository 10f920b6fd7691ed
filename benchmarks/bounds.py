"""Lower-bound speed: the traffic–capacity curve of a cascade at 1M tokens, analytically.

Run ``python benchmarks/bounds.py [--repeat 5] [--json]``.  For each cascade (3-, 2-, 1-pass,
FuseMax, causal FuseMax) on BERT at 1,048,576 tokens: the time of
:func:`einsim.traffic_bound` for a 48-point curve (cold: the first call, which parses and
analyses the cascade; warm: the median of ``--repeat`` further calls), and one point.  No
mapping is enumerated: the cost is the pass analysis plus O(queries) mask counting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

CASCADES = ("attention-3pass", "attention-2pass", "attention-1pass", "fusemax",
            "causal-fusemax")
SEQ_LEN = 1 << 20


def measure(repeat: int = 5) -> list[dict]:
    from einsim.bounds import traffic_bound

    rows = []
    for name in CASCADES:
        start = time.perf_counter()
        curve = traffic_bound(name, "bert", SEQ_LEN, points=48)
        cold = time.perf_counter() - start
        warm = []
        for _ in range(repeat):
            start = time.perf_counter()
            traffic_bound(name, "bert", SEQ_LEN, points=48)
            warm.append(time.perf_counter() - start)
        start = time.perf_counter()
        one = traffic_bound(name, "bert", SEQ_LEN, buffer_bytes=16 << 20)
        single = time.perf_counter() - start
        rows.append({"cascade": name, "seq_len": SEQ_LEN, "points": len(curve.points),
                     "cold_s": cold, "warm_s": statistics.median(warm), "one_point_s": single,
                     "compulsory_bytes": curve.compulsory_bytes, "fit_bytes": curve.fit_bytes,
                     "at_16MiB_bytes": one.points[0].traffic_lower_bound_bytes,
                     "regime_at_16MiB": one.points[0].regime})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    rows = measure(arguments.repeat)
    if arguments.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'cascade':<18}{'points':>7}{'cold':>10}{'warm':>10}{'1 point':>10}"
          f"{'x compulsory @16MiB':>22}  regime")
    for row in rows:
        print(f"{row['cascade']:<18}{row['points']:>7}{row['cold_s'] * 1e3:>8.1f}ms"
              f"{row['warm_s'] * 1e3:>8.1f}ms{row['one_point_s'] * 1e3:>8.1f}ms"
              f"{row['at_16MiB_bytes'] / row['compulsory_bytes']:>22.3g}  "
              f"{row['regime_at_16MiB']}")


if __name__ == "__main__":
    main()
