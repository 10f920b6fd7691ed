"""One evaluation of a GPU kernel's loop tree on the engine, for the kernel front ends
(decode schedules, fused neighborhood attention): the tree, the GPU and the problem in; the
engine's metrics out.  No kernel has a formula of its own."""

from __future__ import annotations

from typing import Mapping

from einsim.errors import EinsimError
from hw_models.gpu_sm import GPU

BYTES = {"fp16": 2, "bf16": 2, "fp8": 1}
"""Bytes per element of the tensor-core types the GPU models take."""


def check_gpu(gpu, dtype: str) -> None:
    if not isinstance(gpu, GPU):
        raise EinsimError(f"gpu {gpu!r:.60}: expected a GPU (see hw_models.gpu_sm.load_gpu)")
    if not isinstance(dtype, str) or dtype not in BYTES:
        raise EinsimError(f"dtype {dtype!r}: expected one of {', '.join(BYTES)}")
    gpu.tensor_rate(dtype)


def run_tree(gpu: GPU, mapping, sizes: Mapping[str, int], copies: int,
             parameters: Mapping[str, int] | None = None,
             cascade_params: Mapping[str, int] | None = None, dtype: str = "fp16",
             cascade=None, mask_counts: Mapping[str, tuple] | None = None) -> dict:
    """The engine's metrics (``latency_s``, ``raw`` with per-kernel records, ...) of the
    mapping ``mapping`` (a name, a file or a MappingTree) on ``gpu`` for rank ``sizes`` and
    ``copies`` (batch x heads); the tree runs ``cascade`` (a parsed Cascade) instead of its
    own when given.  ``mask_counts`` gives, per masked Einsum, counts another analysis made
    for the tree's tiles: ``(density, visited, partial, worst)``."""
    from einsim import library
    from einsim.cost.engine import Problem, compiled
    from einsim.cost.gpu_hierarchy import gpu_hierarchy
    from einsim.cost.tree import load_mapping_tree

    tree = load_mapping_tree(mapping) if isinstance(mapping, str) else mapping
    engine = compiled(cascade or library.load(tree.cascade), tree, gpu_hierarchy(gpu, dtype),
                      gpu.model_dump_json() + dtype)
    problem = Problem(tree.name, dict(sizes), copies, max(sizes.values()))
    given = dict(cascade_params or {})
    for source, (density, visited, partial, worst) in (mask_counts or {}).items():
        by_kind = {"density": density, "visited": visited, "partial": partial, "worst": worst}
        for name in engine.mask_symbols(source):  # density_S, visited_S_0, ...
            given[name] = by_kind[name.split("_", 1)[0]]
    values = engine.values(problem, dict(parameters or {}), given)
    return engine.metrics(values, copies)


def kernel_records(raw: Mapping[tuple, object]) -> list[dict[str, float]]:
    """Per kernel of an evaluated tree, in tree order: ctas, waves, slots, cycles, ..."""
    numbers = sorted({key[1] for key in raw if key[0] == "kernel"})
    return [{key[2]: float(value) for key, value in raw.items()
             if key[0] == "kernel" and key[1] == number} for number in numbers]
