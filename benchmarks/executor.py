"""Executor speed and memory: tiled FuseMax and 1-pass cascades against plain NumPy attention.

Run ``python benchmarks/executor.py [--sizes 2048,4096,8192] [--tile-size 256] [--json]``.
For each M = P (E = F = 64, float64) it reports the best-of-``--repeat`` wall time of plain
NumPy softmax attention and of each cascade executed tile by tile along m1, their ratio, and
peak traced memory (tracemalloc) against the M x P matrix's size.  Targets: at most 3x
NumPy's time, and a peak that does not grow with M x P.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np

import einsim


def numpy_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Plain softmax attention, written the way a NumPy user would (in place where possible)."""
    scores = k.T @ q
    scores -= scores.max(axis=0)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=0)
    return v @ scores


def measure(function, repeat: int) -> tuple[float, int, object]:
    """Best wall time of ``repeat`` untraced runs, then the peak of one traced run.

    Timing and tracing are separate because tracemalloc slows every Python allocation.
    """
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    tracemalloc.start()
    function()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak, result


def run(sizes: list[int], tile_size: int, repeat: int, head_dim: int = 64) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        q, k, v = (rng.standard_normal((head_dim, n)) for _ in range(3))
        base_time, base_peak, expected = measure(lambda: numpy_attention(q, k, v), repeat)
        for name in ("fusemax", "attention-1pass"):
            cascade = einsim.library.get(name)
            seconds, peak, out = measure(
                lambda: einsim.execute(cascade, {"Q": q, "K": k, "V": v},
                                       sizes={"M0": tile_size}, tile="m1"), repeat)
            rows.append({
                "cascade": name, "seq_len": n, "head_dim": head_dim, "tile": tile_size,
                "numpy_s": base_time, "einsim_s": seconds, "ratio": seconds / base_time,
                "numpy_peak_mb": base_peak / 2**20, "einsim_peak_mb": peak / 2**20,
                "mp_matrix_mb": n * n * 8 / 2**20,
                "max_abs_error": float(np.max(np.abs(out["AV"] - expected))),
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2048,4096,8192")
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    rows = run([int(s) for s in options.sizes.split(",")], options.tile_size, options.repeat)
    if options.json:
        print(json.dumps(rows, indent=2))
        return
    header = f"{'cascade':16} {'M=P':>6} {'numpy s':>8} {'einsim s':>9} {'ratio':>6} " \
             f"{'numpy MB':>9} {'einsim MB':>10} {'MxP MB':>8} {'error':>8}"
    print(header)
    for r in rows:
        print(f"{r['cascade']:16} {r['seq_len']:6d} {r['numpy_s']:8.3f} {r['einsim_s']:9.3f} "
              f"{r['ratio']:6.2f} {r['numpy_peak_mb']:9.1f} {r['einsim_peak_mb']:10.1f} "
              f"{r['mp_matrix_mb']:8.1f} {r['max_abs_error']:8.1e}")


if __name__ == "__main__":
    main()
