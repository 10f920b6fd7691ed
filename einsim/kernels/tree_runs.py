"""One evaluation of a kernel's or a layer's loop tree on the engine, for the front ends
(decode schedules, fused neighborhood attention, sparse masks, attention offloading): the
tree, the hardware and the problem in; the engine's metrics out.  No kernel has a formula of
its own."""

from __future__ import annotations

from typing import Mapping

from einsim.errors import EinsimError
from hw_models.gpu_sm import GPU

BYTES = {"fp16": 2, "bf16": 2, "fp8": 1}
"""Bytes per element of the tensor-core types the GPU models take."""


def check_gpu(gpu, dtype: str, error: type[EinsimError] = EinsimError) -> None:
    """A GPU and one of its tensor-core types, else ``error`` naming the argument."""
    if not isinstance(gpu, GPU):
        raise error(f"gpu {gpu!r:.60}: expected a GPU (see hw_models.gpu_sm.load_gpu)")
    if not isinstance(dtype, str) or dtype not in BYTES:
        raise error(f"dtype {dtype!r}: expected one of {', '.join(BYTES)}")
    try:
        gpu.tensor_rate(dtype)
    except EinsimError as failure:
        raise error(str(failure)) from None


def compile_tree(hardware, mapping, dtype: str = "fp16", cascade=None):
    """(compiled engine, tree) of ``mapping`` (a name, a file or a MappingTree) on a GPU, a
    device group or a device pair; the tree runs ``cascade`` instead of its own when given."""
    from einsim import library
    from einsim.cost.device_hierarchy import device_hierarchy
    from einsim.cost.engine import compiled
    from einsim.cost.gpu_hierarchy import gpu_hierarchy
    from einsim.cost.tree import load_mapping_tree

    tree = load_mapping_tree(mapping) if isinstance(mapping, str) else mapping
    hierarchy = gpu_hierarchy(hardware, dtype) if isinstance(hardware, GPU) \
        else device_hierarchy(hardware, dtype)
    engine = compiled(cascade or library.load(tree.cascade), tree, hierarchy,
                      hardware.model_dump_json() + dtype)
    return engine, tree


def metrics_of(engine, sizes: Mapping[str, int], copies: int,
               parameters: Mapping[str, int] | None = None,
               cascade_params: Mapping[str, int] | None = None,
               mask_counts: Mapping[str, tuple] | None = None) -> dict:
    """One evaluation of a compiled tree: rank ``sizes``, ``copies`` (batch x heads), tree
    ``parameters``, the cascade's own params, and per masked Einsum the counts another
    analysis made for the tree's tiles (``mask_counts``: ``(density, visited, partial,
    worst)``)."""
    from einsim.cost.engine import Problem

    given = dict(cascade_params or {})
    for source, (density, visited, partial, worst) in (mask_counts or {}).items():
        by_kind = {"density": density, "visited": visited, "partial": partial, "worst": worst}
        for name in engine.mask_symbols(source):  # density_S, visited_S_0, ...
            given[name] = by_kind[name.split("_", 1)[0]]
    problem = Problem(engine.mapping.name, dict(sizes), copies, max(sizes.values()))
    return engine.metrics(engine.values(problem, dict(parameters or {}), given), copies)


def run_tree(hardware, mapping, sizes: Mapping[str, int], copies: int,
             parameters: Mapping[str, int] | None = None,
             cascade_params: Mapping[str, int] | None = None, dtype: str = "fp16",
             cascade=None, mask_counts: Mapping[str, tuple] | None = None) -> dict:
    """The engine's metrics (``latency_s``, ``raw`` with per-kernel records, ...) of
    ``mapping`` on ``hardware`` (:func:`compile_tree`, then :func:`metrics_of`)."""
    engine, _ = compile_tree(hardware, mapping, dtype, cascade)
    return metrics_of(engine, sizes, copies, parameters, cascade_params, mask_counts)


def kernel_records(raw: Mapping[tuple, object]) -> list[dict[str, float]]:
    """Per kernel of an evaluated tree, in tree order: ctas, waves, slots, cycles, ..."""
    numbers = sorted({key[1] for key in raw if key[0] == "kernel"})
    return [{key[2]: float(value) for key, value in raw.items()
             if key[0] == "kernel" and key[1] == number} for number in numbers]
