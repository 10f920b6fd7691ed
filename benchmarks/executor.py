"""Executor speed and memory: tiled FuseMax and 1-pass cascades against hand-tiled NumPy.

Run ``python benchmarks/executor.py [--sizes 8192] [--tile-size 256] [--rounds 7] [--json]``.
For each M = P (E = F = 64, float64) the baseline is a hand-tiled NumPy online softmax (the
FlashAttention-2 loop over KV tiles of ``--tile-size``, written as a NumPy user would, in place
where possible).  Each cascade is executed tile by tile along m1 with M0 = ``--tile-size``.
Timing alternates baseline and cascade (ABAB...) for ``--rounds`` rounds and reports the median
of each and the median of the per-round ratios, so a noisy machine slows both sides alike.
The median ratio of CPU times (``process_time``, all threads) is reported beside it: on a
machine shared with other work it moves much less than wall time.  Peak traced memory (tracemalloc, one separate run) is compared with the M x P matrix's size.
Target: a ratio of at most 1.2 at M = P = 8192, and a peak that does not grow with M x P.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc

import numpy as np

import einsim

CASCADES = ("fusemax", "attention-1pass")


def numpy_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Plain softmax attention (the whole M x P matrix), for the error column."""
    scores = k.T @ q
    scores -= scores.max(axis=0)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=0)
    return v @ scores


def tiled_online_softmax(q: np.ndarray, k: np.ndarray, v: np.ndarray,
                         tile: int = 256) -> np.ndarray:
    """Hand-tiled online softmax over KV tiles: running max, denominator and numerator."""
    running_max = np.full(q.shape[1], -np.inf)
    denominator = np.zeros(q.shape[1])
    numerator = np.zeros((v.shape[0], q.shape[1]))
    for start in range(0, k.shape[1], tile):
        scores = k[:, start:start + tile].T @ q
        new_max = np.maximum(running_max, scores.max(axis=0))
        scores -= new_max
        np.exp(scores, out=scores)
        correction = np.exp(running_max - new_max)
        denominator = correction * denominator + scores.sum(axis=0)
        numerator = correction * numerator + v[:, start:start + tile] @ scores
        running_max = new_max
    return numerator / denominator


def alternate(baseline, candidate, rounds: int) -> dict:
    """Time ``baseline`` and ``candidate`` alternately; medians and the median round ratio."""
    baseline()
    candidate()  # warm-up: caches, allocator, BLAS threads
    base_times, times, ratios, cpu_ratios = [], [], [], []
    for _ in range(rounds):
        started, cpu_started = time.perf_counter(), time.process_time()
        baseline()
        middle, cpu_middle = time.perf_counter(), time.process_time()
        candidate()
        ended, cpu_ended = time.perf_counter(), time.process_time()
        base_times.append(middle - started)
        times.append(ended - middle)
        ratios.append((ended - middle) / (middle - started))
        cpu_ratios.append((cpu_ended - cpu_middle) / max(cpu_middle - cpu_started, 1e-9))
    return {"numpy_s": statistics.median(base_times), "einsim_s": statistics.median(times),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "cpu_ratio": statistics.median(cpu_ratios)}


def traced_peak(function) -> int:
    """Peak bytes traced by tracemalloc during one call."""
    tracemalloc.start()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def run(sizes: list[int], tile_size: int, rounds: int, head_dim: int = 64,
        memory: bool = True) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        q, k, v = (rng.standard_normal((head_dim, n)) for _ in range(3))
        expected = tiled_online_softmax(q, k, v, tile_size)
        baseline = lambda: tiled_online_softmax(q, k, v, tile_size)  # noqa: E731
        base_peak = traced_peak(baseline) if memory else 0
        for name in CASCADES:
            cascade = einsim.library.get(name)
            candidate = lambda: einsim.execute(  # noqa: E731
                cascade, {"Q": q, "K": k, "V": v}, sizes={"M0": tile_size}, tile="m1")
            timing = alternate(baseline, candidate, rounds)
            out = candidate()
            peak = traced_peak(candidate) if memory else 0
            rows.append({
                "cascade": name, "seq_len": n, "head_dim": head_dim, "tile": tile_size,
                **timing, "numpy_peak_mb": base_peak / 2**20, "einsim_peak_mb": peak / 2**20,
                "mp_matrix_mb": n * n * 8 / 2**20,
                "max_abs_error": float(np.max(np.abs(out["AV"] - expected))),
                "max_abs_error_vs_plain": float(np.max(np.abs(
                    out["AV"] - numpy_attention(q, k, v)))) if n <= 8192 else None,
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8192")
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    rows = run([int(s) for s in options.sizes.split(",")], options.tile_size, options.rounds)
    if options.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'cascade':16} {'M=P':>6} {'numpy s':>8} {'einsim s':>9} {'ratio':>6} "
          f"{'(min-max)':>11} {'cpu':>5} {'numpy MB':>9} {'einsim MB':>10} {'MxP MB':>8} {'error':>8}")
    for r in rows:
        print(f"{r['cascade']:16} {r['seq_len']:6d} {r['numpy_s']:8.3f} {r['einsim_s']:9.3f} "
              f"{r['ratio']:6.2f} {r['ratio_min']:5.2f}-{r['ratio_max']:<5.2f} "
              f"{r['cpu_ratio']:5.2f} "
              f"{r['numpy_peak_mb']:9.1f} {r['einsim_peak_mb']:10.1f} {r['mp_matrix_mb']:8.1f} "
              f"{r['max_abs_error']:8.1e}")


if __name__ == "__main__":
    main()
