"""GPU and device trees on the engine: time per evaluation (compiled once, then one point) and
per mapper search, for the FlashAttention trees, the decode schedules, fused neighborhood
attention (with its dense baseline and token permute), attention offloading and the GPU tree
mapper.

Run ``python benchmarks/gpu_trees.py [--json]`` from the repository root.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from timing import median_of, report_rows  # benchmarks/timing.py

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run() -> list[dict]:
    from einsim.cost.evaluate import evaluate_tree
    from einsim.kernels.decode import estimate
    from einsim.search.mapper import map_cascade
    from hw_models.gpu_sm import load_gpu

    rows = []
    for mapping, hardware in (("flash-attention-2", "a100"), ("flash-attention-3", "h100"),
                              ("flash-attention-4", "b200")):
        started = time.perf_counter()
        evaluate_tree(mapping, hardware, "xlm", "16K", pareto=False)
        first = time.perf_counter() - started
        fixed = {"TQ": 128, "M0": 128}
        point = median_of(lambda: evaluate_tree(mapping, hardware, "xlm", "16K", fixed,
                                              pareto=False))
        search = median_of(lambda: evaluate_tree(mapping, hardware, "xlm", "16K", pareto=False))
        rows.append({"what": f"{mapping} on {hardware}", "first_s": first,
                     "evaluation_ms": point * 1e3, "parameter_search_ms": search * 1e3})
    h100 = load_gpu("h100")
    for schedule in ("fa2", "flash-decoding", "lean"):
        rows.append({"what": f"decode {schedule} on h100", "evaluation_ms": 1e3 * median_of(
            lambda: estimate(h100, schedule, batch=8, heads=32, head_dim=128, context=32768))})
    from einsim.gna import problem
    from einsim.kernels.fna import predict, supported_tiles

    for shape, window in (((32768,), (2048,)), ((256, 256), (80, 80)),
                          ((30, 48, 80), (18, 24, 24))):
        q, kv = supported_tiles(h100, len(shape))[0]
        spec = problem(shape, window, q, kv)
        started = time.perf_counter()
        predict(h100, spec, heads=24, head_dim=128)
        first = time.perf_counter() - started
        rows.append({"what": f"FNA {len(shape)}-D {'x'.join(map(str, shape))} on h100",
                     "first_s": first, "evaluation_ms": 1e3 * median_of(
                         lambda: predict(h100, spec, heads=24, head_dim=128))})
    from einsim.kernels.lamina import Deployment, best_batch, iteration
    from hw_models.offload import load_link, load_llm, parse_group

    llm = load_llm("llama3-70b")
    for label, deployment in (
            ("lamina h100:2+h20:4", Deployment(llm, parse_group("h100:2", "compute"),
                                              parse_group("h20:4", "memory"), load_link())),
            ("homogeneous h100:4", Deployment(llm, parse_group("h100:4", "compute")))):
        started = time.perf_counter()
        iteration(deployment, 8, 32768)
        first = time.perf_counter() - started
        rows.append({"what": f"offload {label}", "first_s": first,
                     "evaluation_ms": 1e3 * median_of(lambda: iteration(deployment, 8, 32768)),
                     "best_batch_ms": 1e3 * median_of(lambda: best_batch(deployment, 32768))})
    for cascade in ("attention-1pass", "examples/sigmoid_attention.einsum",
                    "causal-attention-1pass"):
        started = time.perf_counter()
        map_cascade(None, cascade, "h100", "xlm", "16K")
        rows.append({"what": f"GPU tree mapper: {cascade}",
                     "mapper_s": time.perf_counter() - started})
    return rows


if __name__ == "__main__":
    report_rows(run(), "--json" in sys.argv)
