"""Sparse-mask bounds speed: million-token masks counted per tile, against a brute-force oracle.

Run ``python benchmarks/sparse_masks.py [--repeat 3] [--tokens 1M] [--json]``.  Two parts:

* :func:`einsim.sparse_bounds` on the example masks (``examples/masks/``), causal attention and
  neighborhood attention at about a million tokens with 128 x 128 tiles: best time of
  ``--repeat`` runs after one warm-up (wall and CPU time: on a shared machine the CPU time is
  the better estimate), split into the tile sweep and the exact attended-pair count;
* on 4,096 tokens, the brute-force oracle (materialize the (P, M) mask with NumPy, count per
  tile pair) beside the analysis; their counts must agree, and the ratio of times is printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


import einsim
from einsim.language import ir
from einsim.sparsity import sparse_bounds
from einsim.sparsity.bounds import _attended
from einsim.sparsity.mask import (cascade_mask, materialized_mask, materialized_tile_counts,
                                  resolve_sizes)
from einsim.sparsity.tiles import tile_counts
from einsim.workloads import parse_seq_len
from timing import best_of  # noqa: E402  (benchmarks/timing.py)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "masks"
CASES = [
    ("causal", "causal-attention-1pass", {}),
    ("prefix-LM (1024)", str(EXAMPLES / "prefix_lm.einsum"), {}),
    ("causal sliding window (512)", str(EXAMPLES / "causal_sliding_window.einsum"), {}),
    ("document (2048)", str(EXAMPLES / "document.einsum"), {}),
    ("dilated window (4 x 128)", str(EXAMPLES / "dilated_window.einsum"), {}),
    ("strided (128)", str(EXAMPLES / "strided_window.einsum"), {}),
    ("neighborhood W=2048", "gna", {"W": 2048, "S": 1, "D": 1, "C": 0}),
    ("neighborhood W=2048 D=4 causal", "gna", {"W": 2048, "S": 1, "D": 4, "C": 1}),
]


def oracle(cascade: ir.Cascade, sizes: dict, q_tile: int, kv_tile: int) -> dict:
    """Materialize the mask and count tile pairs (the test oracle, timed here)."""
    counts = materialized_tile_counts(materialized_mask(cascade, sizes), q_tile, kv_tile)
    return {key: counts[key] for key in ("visited_tiles", "partial_tiles", "attended_pairs")}


def run(repeat: int, tokens: int) -> dict:
    large = []
    for name, cascade_name, params in CASES:
        cascade = einsim.library.load(cascade_name)
        call = lambda: sparse_bounds(cascade, q_tile=128, kv_tile=128, seq_len=tokens,
                                     sizes=params)
        bounds = call()
        mask = cascade_mask(cascade, resolve_sizes(cascade, tokens, tokens, 128, 128, params))
        tiles_s = best_of(lambda: tile_counts(mask, tokens, tokens, 128, 128), repeat)
        pairs_s = 0.0 if mask is None else best_of(lambda: _attended(mask, tokens, tokens),
                                                    repeat)
        large.append({"mask": name, "tokens": tokens, "total_s": best_of(call, repeat),
                      "total_cpu_s": best_of(call, repeat, time.process_time),
                      "tiles_s": tiles_s, "pairs_s": pairs_s,
                      "tile_speedup_bound": bounds.tile_speedup_bound,
                      "flop_speedup_bound": bounds.flop_speedup_bound})
    small = []
    for name, cascade_name, params in CASES:
        cascade = einsim.library.load(cascade_name)
        params = {k: (v if k != "W" else min(v, 256)) for k, v in params.items()}
        n = 4096
        sizes = resolve_sizes(cascade, n, n, 128, 128, params)
        bounds = sparse_bounds(cascade, q_tile=128, kv_tile=128, seq_len=n, sizes=params)
        want = oracle(cascade, sizes, 128, 128)
        for key, value in want.items():
            if getattr(bounds, key) != value:
                raise AssertionError(f"{name}: {key} analysis {getattr(bounds, key)} != "
                                     f"oracle {value}")
        fast = best_of(lambda: sparse_bounds(cascade, q_tile=128, kv_tile=128, seq_len=n,
                                             sizes=params), repeat)
        slow = best_of(lambda: oracle(cascade, sizes, 128, 128), repeat)
        small.append({"mask": name, "tokens": n, "analysis_s": fast, "oracle_s": slow,
                      "ratio": slow / fast})
    return {"large": large, "oracle": small}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tokens", default="1M")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    results = run(options.repeat, parse_seq_len(options.tokens))
    if options.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'mask':32s} {'tokens':>10s} {'total ms':>9s} {'CPU ms':>7s} {'tiles ms':>9s} "
          f"{'pairs ms':>9s} {'tile bound':>11s} {'FLOP bound':>11s}")
    for row in results["large"]:
        print(f"{row['mask']:32s} {row['tokens']:10,d} {1e3 * row['total_s']:9.1f} "
              f"{1e3 * row['total_cpu_s']:7.1f} "
              f"{1e3 * row['tiles_s']:9.1f} {1e3 * row['pairs_s']:9.1f} "
              f"{row['tile_speedup_bound']:11.2f} {row['flop_speedup_bound']:11.2f}")
    print()
    print(f"{'mask':32s} {'tokens':>10s} {'analysis ms':>12s} {'oracle ms':>10s} {'ratio':>7s}")
    for row in results["oracle"]:
        print(f"{row['mask']:32s} {row['tokens']:10,d} {1e3 * row['analysis_s']:12.2f} "
              f"{1e3 * row['oracle_s']:10.1f} {row['ratio']:7.0f}")


if __name__ == "__main__":
    main()
