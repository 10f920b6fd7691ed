"""Fused neighborhood attention (FNA) on GPUs: predicted runtime of a GNA problem, from loop
trees on the engine.

* the attention kernel is ``mappings/fna-1d``, ``fna-2d`` or ``fna-3d`` on the ``gna``,
  ``gna-2d-tiles`` or ``gna-3d-tiles`` cascade: a CTA owns one multi-dimensional Q tile (nested
  grid nodes) and walks the KV tiles its windows touch; the engine skips empty tiles and masks
  partial ones score by score, counting them from the mask (:func:`einsim.gna.axis_counts`);
* a multi-dimensional or dilated layout is first permuted into tile order and the output back:
  ``mappings/token-permute``, its own kernels;
* dilation groups are contiguous after the permute, so they run as more sequences of the
  undilated problem (a group length of ``ceil(L / D)``: groups one token shorter are padded);
* dynamic KV tiling is the same tree with its KV loops starting at each Q tile's first attended
  key (``start: mask``);
* the dense baseline is the GPU's own FMHA tree (FlashAttention-3, or -2 where the preset says
  its kernel does not overlap softmax with the GEMMs) on the same tokens.
"""

from __future__ import annotations

import math

from einsim.gna import GNAError, GNAProblem
from einsim.kernels.tree_runs import check_gpu, run_tree
from hw_models.gpu_sm import GPU, size_argument

MAPPINGS = {1: "fna-1d", 2: "fna-2d", 3: "fna-3d"}
"""The attention tree of each dimensionality (``mappings/``)."""

_AXES = {1: [""], 2: ["X", "Y"], 3: ["X", "Y", "Z"]}


def supported_tiles(gpu: GPU, dims: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The GPU's neighborhood-attention ``(q_tile, kv_tile)`` shapes for ``dims`` axes."""
    _gpu(gpu)
    if dims not in (1, 2, 3):
        raise GNAError(f"dims {dims!r}: expected 1, 2 or 3")
    shapes = {1: gpu.tiles.na1d, 2: gpu.tiles.na2d, 3: gpu.tiles.na3d}[dims]
    return [(tuple(q), tuple(kv)) for q, kv in shapes]


def _gpu(gpu) -> None:
    if not isinstance(gpu, GPU):
        raise GNAError(f"gpu {gpu!r:.60}: expected a GPU (see hw_models.gpu_sm.load_gpu)")


def check_tiles(gpu: GPU, spec: GNAProblem) -> None:
    supported = supported_tiles(gpu, len(spec.shape))
    if (spec.q_tile, spec.kv_tile) not in supported:
        listing = "; ".join(f"q {list(q)} kv {list(kv)}" for q, kv in supported) or "none"
        raise GNAError(f"q_tile {list(spec.q_tile)} with kv_tile {list(spec.kv_tile)}: not a "
                       f"supported {len(spec.shape)}-D tile on {gpu.name} (supported: {listing})")


def fna_tree(dims: int, kv_tiling: str = "static"):
    """The FNA tree of ``dims`` axes; with ``dynamic`` KV tiling, the same tree with its loops
    over KV tiles starting at each Q tile's first attended key (``start: mask``): a tree edit,
    not another model."""
    from einsim import library
    from einsim.cost.tree import load_mapping_tree, mapping_from_document
    from einsim.cost.tree_yaml import mapping_document
    from einsim.execution.validate import input_axis_ranks

    tree = load_mapping_tree(MAPPINGS[dims])
    if kv_tiling == "static":
        return tree
    document = mapping_document(tree)
    cascade = library.get(tree.cascade)
    keys = set(input_axis_ranks(cascade, "K"))  # the KV tile loops: the keys' outer parts
    walks = {p.parts[0].lower() for p in cascade.partitions if p.rank in keys}

    def edit(chain):
        for item in chain:
            if isinstance(item, dict) and item.get("loop") in walks:
                item["start"] = "mask"
            for kind in ("sequence", "pipeline"):
                for child in (item.get(kind, []) if isinstance(item, dict) else []):
                    edit(child)

    edit(document["tree"])
    document["name"] = f"{tree.name} (dynamic KV tiling)"
    return mapping_from_document(document)


def tree_inputs(spec: GNAProblem, head_dim: int) -> tuple[dict, dict, dict, int]:
    """(rank sizes, tree parameters, cascade params, dilation groups) of the FNA tree for
    ``spec``: per axis, the length of one dilation group, the window, stride and causality;
    the Q and KV tile extents."""
    dims = len(spec.shape)
    sizes: dict[str, int] = {"E": head_dim, "F": head_dim}
    parameters: dict[str, int] = {}
    params: dict[str, int] = {}
    groups = 1
    for a, axis in enumerate(_AXES[dims]):
        length = math.ceil(spec.shape[a] / spec.dilation[a])
        groups *= spec.dilation[a]
        sizes[f"M{axis}"] = sizes[f"P{axis}"] = length
        params.update({f"W{axis}": spec.window[a], f"S{axis}": spec.stride[a],
                       f"D{axis}": 1, f"C{axis}": int(spec.causal[a])})
        if dims == 1:
            parameters.update(TQ=spec.q_tile[0], M0=spec.kv_tile[0])
        else:
            parameters.update({f"Q{axis}": spec.q_tile[a], f"M{axis}0": spec.kv_tile[a]})
    return sizes, parameters, params, groups


def predict(gpu: GPU, spec: GNAProblem, *, heads: int, head_dim: int, batch: int = 1,
            dtype: str = "fp16") -> dict[str, float]:
    """``dense_s``, ``sparse_s``, ``permute_s`` and ``speedup`` of GNA against dense FMHA.

    Each is one evaluation of a loop tree on the engine; time and memory do not grow with
    ``batch x heads`` (the grid is counted, never listed).
    """
    _gpu(gpu)
    if not isinstance(spec, GNAProblem):
        raise GNAError(f"spec {spec!r:.60}: expected a GNAProblem (see einsim.gna.problem)")
    check_gpu(gpu, dtype, GNAError)
    heads, head_dim, batch = (size_argument(name, value, error=GNAError) for name, value in (
        ("heads", heads), ("head_dim", head_dim), ("batch", batch)))
    sequences = batch * heads
    sizes, parameters, params, groups = tree_inputs(spec, head_dim)
    sparse = run_tree(gpu, fna_tree(len(spec.shape), spec.kv_tiling), sizes,
                      sequences * groups, parameters, params, dtype)
    tokens = spec.tokens
    dense_q, dense_kv = gpu.tiles.fmha[0]
    dense = run_tree(gpu, "flash-attention-3" if gpu.fmha_pipelined else "flash-attention-2",
                     {"M": tokens, "P": tokens, "E": head_dim, "F": head_dim}, sequences,
                     {"TQ": dense_q, "M0": dense_kv}, dtype=dtype)
    permuted = len(spec.shape) > 1 or any(d > 1 for d in spec.dilation)
    permute_s = 0.0
    if permuted:
        permute_s = float(run_tree(gpu, "token-permute", {"M": tokens, "P": tokens,
                                                          "E": head_dim, "F": head_dim},
                                   sequences, dtype=dtype)["latency_s"])
    dense_s, sparse_s = float(dense["latency_s"]), float(sparse["latency_s"])
    return {"dense_s": dense_s, "sparse_s": sparse_s, "permute_s": permute_s,
            "speedup": dense_s / (sparse_s + permute_s)}
