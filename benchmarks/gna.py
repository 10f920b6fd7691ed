"""GNA analysis speed: per-axis counting on million-token problems, against a brute-force oracle.

Run ``python benchmarks/gna.py [--repeat 5] [--json]``.  Four parts:

* analysis time of :func:`einsim.gna.gna` on 1-D, 2-D and 3-D problems of about 1M tokens;
* on the 1-D problems, the previous per-token counting (every query's window, O(length)) timed
  alternately with the per-Q-tile closed forms, median of the rounds, as a ratio;
* a brute-force oracle (build the explicit token mask, count attended pairs per Q-tile x KV-tile
  block) on small shapes where it is feasible, the same analysis on them, and the ratio
  oracle_time / analysis_time (the oracle's counts are checked against the analysis);
* the cost of one predicted-runtime evaluation (:func:`einsim.kernels.fna.predict`, FLUX.1 at 4K,
  256 x 256 tokens, 24 heads, head dim 128, on H100).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from einsim.language.functions import window_bounds
from einsim.gna import gna, problem
from einsim.library.references import neighborhood_mask
from hw_models.gpu_sm import load_gpu
from einsim.kernels.fna import predict
from timing import best_of  # noqa: E402  (benchmarks/timing.py)

# name, shape, window, q_tile, kv_tile, stride, dilation, causal


LARGE = [
    ("1-D 1,048,576", (1048576,), (2048,), (128,), (128,), 1, 1, False),
    ("1-D 1,048,576 causal dil 4", (1048576,), (2048,), (128,), (128,), 1, 4, True),
    ("2-D 1024x1024", (1024, 1024), (128, 128), (16, 8), (16, 8), 1, 1, False),
    ("2-D 1024x1024 stride 16x8", (1024, 1024), (128, 128), (16, 8), (16, 8), (16, 8), 1,
     False),
    ("3-D 64x128x128 2x8x8", (64, 128, 128), (17, 33, 33), (2, 8, 8), (2, 8, 8), 1, 1, False),
    ("3-D 64x128x128 4x4x8", (64, 128, 128), (17, 33, 33), (4, 4, 8), (4, 4, 8), (1, 2, 2),
     (1, 1, 2), (True, False, False)),
]

SMALL = [
    ("1-D 2048", (2048,), (256,), (128,), (128,), 1, 1, False),
    ("1-D 2048 causal dil 2", (2048,), (256,), (128,), (128,), 3, 2, True),
    ("2-D 48x48", (48, 48), (13, 13), (16, 8), (16, 8), 1, 1, False),
    ("2-D 48x48 stride/dil", (48, 48), (13, 9), (16, 8), (16, 8), (4, 2), (1, 2), False),
    ("3-D 12x16x16", (12, 16, 16), (5, 7, 7), (2, 8, 8), (2, 8, 8), 1, 1, False),
    ("3-D 12x16x16 4x4x8", (12, 16, 16), (5, 7, 7), (4, 4, 8), (4, 4, 8), 1, 1,
     (True, False, False)),
]


def per_axis(value, dims):
    return tuple(value) if isinstance(value, tuple) else (value,) * dims


def oracle(shape, window, q_tile, kv_tile, stride, dilation, causal) -> dict:
    """Mask-and-count: the explicit (key, query) mask reduced over tile pairs (static tiling).

    Tokens are numbered per axis in tile order (dilation group, then position in the group, so
    a tile holds every dilation-th coordinate), and a block is *visited* when any of its pairs
    is attended and *masked* when not all of its pairs are, or when its KV tile is padded.
    """
    dims = len(shape)
    stride, dilation, causal = (per_axis(v, dims) for v in (stride, dilation, causal))
    mask = neighborhood_mask(shape, window, stride, dilation, causal)  # [key, query]
    q_axes, kv_axes = [], []
    for length, d, qt, kt in zip(shape, dilation, q_tile, kv_tile):
        coordinate = np.arange(length)
        group, index = coordinate % d, coordinate // d
        group_sizes = [-(-(length - g) // d) for g in range(d)]
        for tile, out in ((qt, q_axes), (kt, kv_axes)):
            counts = [-(-size // tile) for size in group_sizes]
            offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
            out.append((offsets[group] + index // tile, sum(counts)))
    q_id = np.ravel_multi_index(np.meshgrid(*[ids for ids, _ in q_axes], indexing="ij"),
                                [n for _, n in q_axes]).ravel()
    kv_id = np.ravel_multi_index(np.meshgrid(*[ids for ids, _ in kv_axes], indexing="ij"),
                                 [n for _, n in kv_axes]).ravel()
    n_q, n_kv = math.prod(n for _, n in q_axes), math.prod(n for _, n in kv_axes)
    keys, queries = np.nonzero(mask)
    pairs = np.bincount(kv_id[keys] * n_q + q_id[queries], minlength=n_kv * n_q)
    pairs = pairs.reshape(n_kv, n_q)
    real_kv = np.bincount(kv_id, minlength=n_kv)
    real_q = np.bincount(q_id, minlength=n_q)
    visited = pairs > 0
    clean = visited & (pairs == np.outer(real_kv, real_q)) \
        & (real_kv == math.prod(kv_tile))[:, None]
    tokens = math.prod(shape)
    dense = -(-tokens // math.prod(kv_tile))
    per_q = visited.sum(axis=0)
    return {"flop_upper_bound": tokens * tokens / mask.sum(),
            "tile_upper_bound": dense / per_q.max(),
            "q_tiles": n_q, "worst_kv_tiles": int(per_q.max()),
            "masked_tiles": int(visited.sum() - clean.sum())}


def per_token(length, window, q_tile, kv_tile, stride, dilation, causal) -> tuple[int, int, int]:
    """The previous 1-D analysis: every query's window, then (worst, visited, attended)."""
    visited, attended = [], 0
    for group in range(dilation):
        size = -(-(length - group) // dilation)
        start, end = window_bounds(np.arange(size), size, window, stride, causal)
        attended += int(np.sum(end - start))
        firsts = np.arange(0, size, q_tile)
        lasts = np.minimum(firsts + q_tile, size) - 1
        visited.append(-(-end[lasts] // kv_tile) - start[firsts] // kv_tile)
    counts = np.concatenate(visited)
    return int(counts.max()), int(counts.sum()), attended


def alternating(first, second, rounds: int) -> tuple[float, float]:
    """Median times of two functions timed alternately (fair on a noisy machine)."""
    times: tuple[list, list] = ([], [])
    for _ in range(rounds):
        for function, out in ((first, times[0]), (second, times[1])):
            started = time.perf_counter()
            function()
            out.append(time.perf_counter() - started)
    return float(np.median(times[0])), float(np.median(times[1]))


def analysis(case):
    _, shape, window, q_tile, kv_tile, stride, dilation, causal = case
    return gna(shape, window, q_tile, kv_tile, stride, dilation, causal)


def run(repeat: int) -> dict:
    large = []
    for case in LARGE:
        analysis(case)  # warm up
        seconds = best_of(lambda: analysis(case), repeat)
        result = analysis(case)
        large.append({"problem": case[0], "tokens": result.tokens, "analysis_s": seconds,
                      "tile_upper_bound": result.tile_upper_bound})
    one_d = []
    for case in LARGE:
        name, shape, window, q_tile, kv_tile, stride, dilation, causal = case
        if len(shape) != 1:
            continue
        args = (shape[0], window[0], q_tile[0], kv_tile[0], stride, dilation, causal)
        result = analysis(case)
        worst, visited, attended = per_token(*args)
        if (worst, visited) != (result.worst_kv_tiles, result.visited_kv_tiles) or \
                not math.isclose(result.flop_upper_bound, shape[0] ** 2 / attended):
            raise AssertionError(f"{name}: per-token and per-Q-tile counts differ")
        new, old = alternating(lambda: analysis(case), lambda: per_token(*args), 2 * repeat + 1)
        one_d.append({"problem": name, "per_q_tile_s": new, "per_token_s": old,
                      "ratio": old / new})
    small = []
    for case in SMALL:
        name, shape, window, q_tile, kv_tile, stride, dilation, causal = case
        result = analysis(case)
        want = oracle(shape, window, q_tile, kv_tile, stride, dilation, causal)
        for key, value in want.items():
            got = getattr(result, key)
            if not math.isclose(got, value, rel_tol=1e-12):
                raise AssertionError(f"{name}: {key} analysis {got} != oracle {value}")
        fast = best_of(lambda: analysis(case), repeat)
        slow = best_of(lambda: oracle(shape, window, q_tile, kv_tile, stride, dilation, causal),
                       max(1, repeat // 2))
        small.append({"problem": name, "tokens": result.tokens, "analysis_s": fast,
                      "oracle_s": slow, "ratio": slow / fast})
    gpu = load_gpu("h100")
    flux = problem((256, 256), (80, 80), (16, 8), (16, 8))
    predict(gpu, flux, heads=24, head_dim=128)
    predict_s = best_of(lambda: predict(gpu, flux, heads=24, head_dim=128), 5 * repeat)
    return {"large": large, "one_d": one_d, "oracle": small, "predict_flux_h100_s": predict_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    results = run(options.repeat)
    if options.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'problem':32s} {'tokens':>10s} {'analysis ms':>12s} {'tile bound':>11s}")
    for row in results["large"]:
        print(f"{row['problem']:32s} {row['tokens']:10,d} {1e3 * row['analysis_s']:12.3f} "
              f"{row['tile_upper_bound']:11.3f}")
    print()
    print(f"{'1-D problem':32s} {'per Q tile ms':>14s} {'per token ms':>13s} {'ratio':>8s}")
    for row in results["one_d"]:
        print(f"{row['problem']:32s} {1e3 * row['per_q_tile_s']:14.3f} "
              f"{1e3 * row['per_token_s']:13.3f} {row['ratio']:8.0f}")
    print()
    print(f"{'problem':32s} {'tokens':>10s} {'analysis ms':>12s} {'oracle ms':>10s} "
          f"{'ratio':>8s}")
    for row in results["oracle"]:
        print(f"{row['problem']:32s} {row['tokens']:10,d} {1e3 * row['analysis_s']:12.3f} "
              f"{1e3 * row['oracle_s']:10.1f} {row['ratio']:8.0f}")
    print()
    print(f"predicted runtime, FLUX 256x256 on H100: "
          f"{1e3 * results['predict_flux_h100_s']:.3f} ms")


if __name__ == "__main__":
    main()
