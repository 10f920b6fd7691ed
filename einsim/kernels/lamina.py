"""Attention offloading for LLM decode (Lamina) and the homogeneous deployment it competes with,
as loop trees on the engine (DESIGN.md §9).

One decode iteration runs every layer once for a batch of sequences.  A layer is the
``decode-layer`` cascade (Q/K/V projections, grouped-query attention over the KV cache, output
projection, SwiGLU FFN) and its mapping is data:

* ``mappings/decode-tensor-parallel`` — the homogeneous deployment: tensor-parallel over the
  compute devices joined by NVLink (``GPU:COUNT``), each device holding its key/value heads'
  weights and KV cache; the layer's two all-reduces go through the link level;
* ``mappings/attention-offload`` — Lamina: the same projections and FFN on the compute
  devices, the KV cache and attention on the memory devices, the new token's queries, keys,
  values and the attention outputs across the offload link (``COMPUTE:COUNT+MEMORY:COUNT@LINK``,
  :func:`einsim.cost.device_hierarchy.pair_hierarchy`).  Staggered pipelining is the tree's
  micro-batch loop (``BM = ceil(B / 2)``: two micro-batches in a pipeline, each streaming the
  weights once; ``BM = B``: none).

What stays code here is capacity arithmetic (the largest batch whose KV cache fits) and the
economics (tokens per dollar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from einsim.errors import EinsimError
from hw_models.gpu_sm import size_argument
from hw_models.offload import LLM, DeviceGroup, Link, load_link


@dataclass(frozen=True)
class Deployment:
    """Who runs what: compute devices, optional memory devices and link, and the layer's loop
    tree (``mapping``: a mapping of ``decode-layer``; default by deployment, :data:`MAPPINGS`)."""

    model: LLM
    compute: DeviceGroup
    memory: DeviceGroup | None = None
    link: Link | None = None
    pipelined: bool = True
    mapping: str | None = None  # the layer's loop tree (default: MAPPINGS by deployment)
    memory_fraction: float = 0.9

    def __post_init__(self):
        for name, value, kind in (("model", self.model, LLM), ("compute", self.compute,
                                                               DeviceGroup),
                                  ("memory", self.memory, (DeviceGroup, type(None))),
                                  ("link", self.link, (Link, type(None)))):
            if not isinstance(value, kind):
                raise EinsimError(f"{name} {value!r}: expected "
                                  f"{getattr(kind, '__name__', 'a ' + name)}")
        if self.mapping is not None:
            from einsim.cost.tree import load_mapping_tree

            tree = load_mapping_tree(self.mapping)
            if tree.cascade != "decode-layer":
                raise EinsimError(f"mapping {tree.name}: runs cascade {tree.cascade}; a "
                                  "deployment's tree maps decode-layer")
        fraction = self.memory_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
                or not 0 < fraction <= 1:
            raise EinsimError(f"memory_fraction {fraction!r}: expected a fraction in (0, 1]")
        if self.memory is not None and self.link is None:  # the published RoCE link
            object.__setattr__(self, "link", load_link())

    @property
    def name(self) -> str:
        return "lamina" if self.memory else "homogeneous"

    @property
    def cost_per_hour(self) -> float:
        return self.compute.price_per_hour + (self.memory.price_per_hour if self.memory else 0.0)


@dataclass(frozen=True)
class Iteration:
    batch: int
    context: int
    iteration_s: float
    compute_s: float
    link_s: float
    memory_s: float
    max_batch: int
    link_bytes: float
    cost_per_hour: float
    details: dict = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.batch / self.iteration_s

    def summary(self) -> dict:
        tokens_per_s = self.tokens_per_s
        return {"tokens_per_s": tokens_per_s, "cost_per_hour": self.cost_per_hour,
                "tokens_per_dollar": tokens_per_s * 3600 / self.cost_per_hour,
                "max_batch": self.max_batch, "batch": self.batch,
                "iteration_s": self.iteration_s,
                "link_bandwidth_needed_bytes_per_s": self.link_bytes / self.iteration_s,
                "time_split_s": {"compute": self.compute_s, "link": self.link_s,
                                 "memory": self.memory_s}}


def max_batch(deployment: Deployment, context: int) -> int:
    """Largest batch whose KV cache fits at ``context``; errors name the numbers.

    The cache is partitioned by KV head, so the device holding the most heads fills first.
    """
    context = size_argument("context", context)
    model, compute = deployment.model, deployment.compute
    fraction = deployment.memory_fraction
    weights = model.weight_bytes
    usable_compute = compute.count * compute.gpu.hbm_bytes * fraction
    if weights > usable_compute:
        raise EinsimError(
            f"model {model.name} does not fit on the compute devices: its weights need "
            f"{weights / 1e9:.1f} GB but {compute.label} have {usable_compute / 1e9:.1f} GB "
            f"usable ({fraction:.0%} of HBM)")
    holder = deployment.memory or compute
    room = holder.gpu.hbm_bytes * fraction
    where = f"each of {holder.label}"
    if deployment.memory is None:
        room -= weights / compute.count
        where += " after its share of the weights"
    heads_per_device = math.ceil(model.kv_heads / holder.count)
    per_request = context * model.kv_bytes_per_token * heads_per_device / model.kv_heads
    batch = int(room // per_request)
    if batch < 1:
        raise EinsimError(
            f"context {context:,} leaves no room for one request: its KV cache needs "
            f"{per_request / 1e9:.2f} GB per device ({heads_per_device} of {model.kv_heads} KV "
            f"heads) but {where} has {room / 1e9:.2f} GB")
    return batch


MAPPINGS = {"homogeneous": "decode-tensor-parallel", "lamina": "attention-offload"}
"""The loop tree of each deployment (``mappings/``)."""


def _layer(deployment: Deployment, batch: int, context: int) -> dict:
    """One layer's step on the engine: its time, the split, and the bytes over the link."""
    from einsim.cost.device_hierarchy import network_time
    from einsim.kernels.tree_runs import compile_tree, metrics_of
    from hw_models.offload import DevicePair, LinkedGroup, device_link, load_link

    model, compute = deployment.model, deployment.compute
    dtype = "fp16" if model.bytes_per_value == 2 else "fp8"
    if deployment.memory is None:
        hardware = LinkedGroup(compute.gpu, compute.count, device_link(compute.gpu))
    else:
        hardware = DevicePair(compute, deployment.memory, deployment.link or load_link())
    engine, tree = compile_tree(hardware, deployment.mapping or MAPPINGS[deployment.name],
                                dtype)
    sizes = {"D": model.hidden, "N": model.kv_heads, "G": model.heads // model.kv_heads,
             "E": model.head_dim, "F": model.head_dim, "I": model.ffn, "B": batch,
             "M": context, "P": 1}
    parameters = {}
    if "BM" in tree.parameters:
        pipelined = deployment.pipelined and batch >= 2
        parameters["BM"] = math.ceil(batch / 2) if pipelined else batch
    metrics = metrics_of(engine, sizes, batch * model.heads, parameters)
    if not metrics["feasible"]:
        raise EinsimError(f"{deployment.name} deployment, batch {batch}: {metrics['reason']}")
    raw = metrics["raw"]
    latency = float(metrics["latency_s"])
    memory_s, compute_s = _sides(tree, engine.cascade, raw, latency)
    link_s, link_bytes = 0.0, 0.0
    if deployment.memory is not None:
        link_s, counted = network_time(engine.hardware, raw, "offload")
        link_bytes = counted / 2  # each crossing is counted on both sides
    return {"latency_s": latency, "compute_s": compute_s, "memory_s": memory_s,
            "link_s": link_s, "link_bytes": link_bytes}


def _sides(tree, cascade, raw, latency: float) -> tuple[float, float]:
    """(attention, the rest) of a layer's time.  The attention side is the pipeline branch
    holding every leaf that reads the KV cache (the inputs over the context rank M), the rest
    its other branches; without a pipeline, the innermost branch holding them, the rest the
    remainder of the step."""
    from einsim.cost.tree import Branch, leaves, nodes
    from einsim.execution.validate import input_axis_ranks

    times = {key[1]: float(value) for key, value in raw.items() if key[0] == "branch_s"}
    cache = {name for name in cascade.input_names  # inputs over the context: the KV cache
             if "M" in input_axis_ranks(cascade, name)}
    reading = [leaf.nodes[-1] for leaf in leaves(tree.root)
               if cache & {a.tensor for a in cascade.producers[leaf.einsum].inputs}]
    holding = []  # (branch node, child index), outer to inner
    for node in nodes(tree.root):
        if isinstance(node, Branch):
            for k, child in enumerate(node.children):
                below = {id(n) for n in nodes(child)}
                if reading and all(id(run) in below for run in reading):
                    holding.append((node, k))
    if not holding:  # no branch isolates the attention: it is the whole step
        return latency, 0.0
    node, k = next(((n, k) for n, k in holding if n.kind == "pipeline"), holding[-1])
    paths = [f"{node.path}.{node.kind}[{j}]" for j in range(len(node.children))]
    if node.kind == "pipeline":
        return times[paths[k]], sum(times[p] for j, p in enumerate(paths) if j != k)
    return times[paths[k]], max(latency - times[paths[k]], 0.0)


def iteration(deployment: Deployment, batch: int, context: int) -> Iteration:
    """Time of one decode iteration (all layers) for ``batch`` sequences at ``context``."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch > 0:
        batch = size_argument("batch", batch)  # a typed error for "4", None, 1.5, inf
    limit = max_batch(deployment, context)
    if not 1 <= batch <= limit:
        raise EinsimError(f"batch {batch}: must be between 1 and the largest that fits, {limit}")
    layers = deployment.model.layers
    step = _layer(deployment, batch, context)
    pipelined = deployment.pipelined and deployment.memory is not None and batch >= 2
    return Iteration(batch, context, layers * step["latency_s"], layers * step["compute_s"],
                     layers * step["link_s"], layers * step["memory_s"], limit,
                     layers * step["link_bytes"], deployment.cost_per_hour,
                     {"pipelined": pipelined, "deployment": deployment.name,
                      "mapping": deployment.mapping or MAPPINGS[deployment.name]})


def best_batch(deployment: Deployment, context: int) -> Iteration:
    """The throughput-optimal batch that fits (powers of two up to the largest, and it)."""
    limit = max_batch(deployment, context)
    candidates = sorted({2 ** k for k in range(int(math.log2(limit)) + 1)} | {limit})
    return max((iteration(deployment, b, context) for b in candidates),
               key=lambda it: it.tokens_per_s)
