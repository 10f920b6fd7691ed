"""Attention offloading for LLM decode (Lamina) and the homogeneous deployment it competes with.

One decode iteration runs every layer once for a batch of sequences:

* **non-attention** (projections, FFN) on the compute devices, tensor-parallel: the time to
  stream the layer's weights from HBM or to do its FLOPs at this batch, whichever is longer,
  plus two all-reduces over NVLink;
* **attention** from the decode schedule's loop tree on the cost engine
  (:func:`einsim.kernels.decode.estimate`: ``mappings/flash-decoding.yaml`` by default) on one
  device holding the KV cache, partitioned by KV head — each device runs ``ceil(kv_heads / N)``
  KV heads of the whole batch as the engine's copies — the memory devices for ``lamina``, the
  compute devices themselves for ``homogeneous``;
* **link** (lamina): queries, new keys and values go to the memory devices and attention
  outputs come back, once per layer, plus the round trip.

Lamina's staggered pipelining splits the batch into two micro-batches so each side works on
one while the other crosses the link; it pays for streaming the weights twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from einsim.errors import EinsimError
from hw_models.gpu_sm import size_argument
from hw_models.offload import LLM, DeviceGroup, Link, load_link
from einsim.kernels.decode import SCHEDULES, estimate


@dataclass(frozen=True)
class Deployment:
    """Who runs what: compute devices, optional memory devices and link, decode schedule."""

    model: LLM
    compute: DeviceGroup
    memory: DeviceGroup | None = None
    link: Link | None = None
    pipelined: bool = True
    schedule: str = "flash-decoding"
    memory_fraction: float = 0.9

    def __post_init__(self):
        for name, value, kind in (("model", self.model, LLM), ("compute", self.compute,
                                                               DeviceGroup),
                                  ("memory", self.memory, (DeviceGroup, type(None))),
                                  ("link", self.link, (Link, type(None)))):
            if not isinstance(value, kind):
                raise EinsimError(f"{name} {value!r}: expected "
                                  f"{getattr(kind, '__name__', 'a ' + name)}")
        if self.schedule not in SCHEDULES:
            raise EinsimError(f"schedule {self.schedule!r}: expected one of "
                              f"{', '.join(SCHEDULES)}")
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


def _non_attention_s(deployment: Deployment, batch: float) -> float:
    model, group = deployment.model, deployment.compute
    gpu, devices = group.gpu, group.count
    params = model.attention_weights_per_layer + model.ffn_weights_per_layer
    stream = params * model.bytes_per_value / devices / gpu.hbm_bandwidth_bytes_per_s
    dtype = "fp16" if model.bytes_per_value == 2 else "fp8"
    compute = 2 * batch * params / devices / (gpu.peak_flops(dtype)
                                              * gpu.calibration.tensor_efficiency)
    reduce = 0.0
    if devices > 1:  # two ring all-reduces of the hidden state per layer
        message = batch * model.hidden * model.bytes_per_value
        reduce = 2 * 2 * (devices - 1) / devices * message / gpu.nvlink_bytes_per_s
    return max(stream, compute) + reduce


def _attention_s(deployment: Deployment, batch: int, context: int) -> float:
    model = deployment.model
    group = deployment.memory or deployment.compute
    kv_heads = math.ceil(model.kv_heads / group.count)  # partitioned by KV head
    heads = kv_heads * (model.heads // model.kv_heads)
    return estimate(group.gpu, deployment.schedule, batch=batch, heads=heads,
                    kv_heads=kv_heads, head_dim=model.head_dim, context=context).latency_s


def _link(deployment: Deployment, batch: float) -> tuple[float, float]:
    """(seconds, bytes) of one layer's exchange with the memory devices."""
    if deployment.memory is None:
        return 0.0, 0.0
    model, link = deployment.model, deployment.link
    values = batch * model.head_dim * (2 * model.heads + 2 * model.kv_heads)  # q, k, v out; o in
    data = values * model.bytes_per_value
    lanes = min(deployment.compute.count, deployment.memory.count)
    return data / (link.bandwidth_bytes_per_s * lanes) + link.round_trip_s, data


def iteration(deployment: Deployment, batch: int, context: int) -> Iteration:
    """Time of one decode iteration (all layers) for ``batch`` sequences at ``context``."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch > 0:
        batch = size_argument("batch", batch)  # a typed error for "4", None, 1.5, inf
    limit = max_batch(deployment, context)
    if not 1 <= batch <= limit:
        raise EinsimError(f"batch {batch}: must be between 1 and the largest that fits, {limit}")
    layers = deployment.model.layers
    pipelined = deployment.pipelined and deployment.memory is not None and batch >= 2
    if pipelined:
        half = batch / 2
        compute = _non_attention_s(deployment, half)
        attention = _attention_s(deployment, math.ceil(half), context)
        link, data = _link(deployment, half)
        per_layer = max(2 * compute, 2 * attention, 2 * link,
                        compute + link + attention)  # a micro-batch's own path
        split = (2 * compute, 2 * link, 2 * attention)
        data *= 2
    else:
        compute = _non_attention_s(deployment, batch)
        attention = _attention_s(deployment, batch, context)
        link, data = _link(deployment, batch)
        per_layer = compute + link + attention
        split = (compute, link, attention)
    return Iteration(batch, context, layers * per_layer, layers * split[0], layers * split[1],
                     layers * split[2], limit, layers * data, deployment.cost_per_hour,
                     {"pipelined": pipelined, "deployment": deployment.name})


def best_batch(deployment: Deployment, context: int) -> Iteration:
    """The throughput-optimal batch that fits (powers of two up to the largest, and it)."""
    limit = max_batch(deployment, context)
    candidates = sorted({2 ** k for k in range(int(math.log2(limit)) + 1)} | {limit})
    return max((iteration(deployment, b, context) for b in candidates),
               key=lambda it: it.tokens_per_s)
