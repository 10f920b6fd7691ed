"""GPU decode schedules (one new query per sequence): FlashAttention-2, FlashDecoding and
LeanAttention (stream-K), as loop trees on the engine (DESIGN.md §9): ``mappings/decode-fa2``,
``flash-decoding`` and ``lean-attention``.

Decode streams the KV cache once; a CTA draws its SM's share of the bandwidth, so SMs left
idle are bandwidth left unused.  Query heads sharing a KV head (grouped-query attention) ride
in the same CTA.  Split schedules write partial (max, sum, numerator) states that a second
kernel merges — the ``decode-split-online`` cascade.  This module keeps FlashDecoding's split
heuristic (a kernel's own choice, not an optimum) and the SM timeline.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from einsim.errors import EinsimError
from hw_models.gpu_sm import GPU, size_argument
from einsim.kernels.tree_runs import check_gpu, run_tree

SCHEDULES = ("fa2", "flash-decoding", "lean")


TIMELINE_LIMIT = 200_000
"""CTAs an SM timeline lists (one row each); larger grids are summarised, not listed."""


@dataclass(frozen=True)
class DecodeEstimate:
    """One decode step.  The grid is kept run-length encoded (``cta_cycles[k]`` repeated
    ``cta_counts[k]`` times, in launch order), so a million sequences cost no memory."""

    latency_s: float
    ctas: int
    waves: int
    splits: int
    sm_utilization: float
    merge_s: float
    cta_cycles: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    cta_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64),
                                   repr=False)
    slots: int = 1
    clock_hz: float = 1.0
    persistent: bool = False

    def summary(self) -> dict:
        return {"latency_s": self.latency_s, "ctas": self.ctas, "waves": self.waves,
                "splits": self.splits, "sm_utilization": self.sm_utilization,
                "merge_s": self.merge_s}

    @property
    def timeline(self) -> list[dict]:
        """Start and end of every CTA on its slot (for the SM timeline figure).

        Raises :class:`EinsimError` beyond :data:`TIMELINE_LIMIT` CTAs, before allocating.
        """
        if self.ctas > TIMELINE_LIMIT:
            raise EinsimError(f"SM timeline of {self.ctas:,} CTAs: a row per CTA would need "
                              f"about {self.ctas * 400 / 1e9:.1f} GB; plot at most "
                              f"{TIMELINE_LIMIT:,} CTAs (a smaller --batch or fewer heads)")
        cycles = np.repeat(self.cta_cycles, self.cta_counts)
        return _timeline(cycles, self.slots, self.clock_hz, self.persistent)


def kv_block(head_dim: int) -> int:
    """KV tokens per tile of the split-KV decode kernels (FlashAttention-2's choice)."""
    return 256 if head_dim <= 64 else (128 if head_dim <= 128 else 64)


def num_splits(work: int, slots: int, blocks: int, max_splits: int = 128) -> int:
    """FlashDecoding's heuristic over ``slots`` (two waves of SMs): no split when the grid fills
    80% of them; otherwise the smallest split count whose wave efficiency reaches 85% of the
    best one."""
    if work >= 0.8 * slots:
        return 1
    limit = min(max_splits, slots, blocks)

    def eligible(s: int) -> bool:
        return s == 1 or math.ceil(blocks / s) != math.ceil(blocks / (s - 1))

    efficiency = {}
    for s in range(1, limit + 1):
        if eligible(s):
            waves = work * s / slots
            efficiency[s] = waves / math.ceil(waves)
    best = max(efficiency.values())
    return next(s for s, e in efficiency.items() if e >= 0.85 * best)


MAPPINGS = {"fa2": "decode-fa2", "flash-decoding": "flash-decoding", "lean": "lean-attention"}
"""The loop tree of each schedule (``mappings/``)."""


def estimate(gpu: GPU, schedule: str, *, batch: int, heads: int, head_dim: int, context: int,
             kv_heads: int | None = None, dtype: str = "fp16") -> DecodeEstimate:
    """Predicted decode attention time of one step for ``batch`` sequences of ``context``,
    from the schedule's loop tree on the engine.  The query heads of a KV head (grouped-query
    attention) are the query rows of one CTA: P = heads / kv_heads, copies = batch × kv_heads.

    Time and memory are O(1) in the batch: the grid is counted, never listed.
    """
    check_gpu(gpu, dtype)
    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        raise EinsimError(f"schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    batch, heads, head_dim, context = (size_argument(name, value) for name, value in (
        ("batch", batch), ("heads", heads), ("head_dim", head_dim), ("context", context)))
    kv_heads = heads if kv_heads is None else size_argument("kv_heads", kv_heads)
    if heads % kv_heads:
        raise EinsimError(f"kv_heads {kv_heads}: must divide heads {heads}")
    block = kv_block(head_dim)
    blocks = math.ceil(context / block)
    work = batch * kv_heads
    parameters = {"M0": block}
    splits, mapping = 1, MAPPINGS[schedule]
    if schedule == "flash-decoding":
        splits = num_splits(work, 2 * gpu.sms, blocks)
        parameters["M1"] = math.ceil(blocks / splits)
        splits = math.ceil(blocks / parameters["M1"])
        if splits == 1:  # FlashDecoding then launches the unsplit kernel, with no merge
            mapping, parameters = MAPPINGS["fa2"], {"M0": block}
    elif schedule == "lean":
        parameters["M1"] = 1
    metrics = run_tree(gpu, mapping, {"P": heads // kv_heads, "M": context, "E": head_dim,
                                      "F": head_dim}, work, parameters, dtype=dtype)
    raw = metrics["raw"]
    kernels = sorted({k[1] for k in raw if k[0] == "kernel"})
    first = {k[2]: float(v) for k, v in raw.items() if k[0] == "kernel" and k[1] == kernels[0]}
    merge_s = sum(float(v) for k, v in raw.items() if k[0] == "kernel" and k[1] != kernels[0]
                  and k[2] == "cycles") / gpu.clock_hz
    ctas, per_cta = int(first["ctas"]), first["cta_cycles"]
    waves = math.ceil(ctas / (int(first["slots"]) * gpu.sms))
    utilization = min(1.0, ctas * per_cta / (gpu.sms * first["cycles"]))
    if schedule == "lean":  # heads whose tiles a CTA boundary cuts: their partial states merge
        splits = int(_lean_splits(work * blocks, ctas, blocks))
    cycles, counts = np.array([per_cta]), np.array([ctas], dtype=np.int64)
    if schedule == "lean":  # equal shares to one chunk: the first `rest` CTAs take one more
        share, rest = divmod(int(first["chunks"]), ctas)
        overhead = per_cta - first["chunks"] / ctas * first["chunk_cycles"]
        cycles = np.array([share + 1, share]) * first["chunk_cycles"] + overhead
        counts = np.array([rest, ctas - rest], dtype=np.int64)
    # the timeline has a row per SM: co-resident CTAs share it, so they run one after another
    return DecodeEstimate(float(metrics["latency_s"]), ctas, waves, splits, utilization,
                          merge_s if splits > 1 else 0.0, cycles, counts, gpu.sms, gpu.clock_hz,
                          schedule == "lean")


def _lean_splits(total: int, ctas: int, blocks: int) -> int:
    """Most CTAs one head's tiles span under stream-K's equal shares."""
    share, rest = divmod(total, ctas)
    bounds = np.cumsum(np.full(ctas, share, dtype=object) + (np.arange(ctas) < rest))
    inside = [b // blocks for b in bounds.tolist() if b % blocks]
    return 1 + (max(np.unique(inside, return_counts=True)[1]) if inside else 0)


def _timeline(cycles: np.ndarray, slots: int, clock_hz: float, persistent: bool) -> list[dict]:
    """Start and end of every CTA on its slot (for the SM timeline figure)."""
    order = np.argsort(-cycles, kind="stable") if persistent else np.arange(cycles.size)
    free = [(0.0, slot) for slot in range(slots)]  # (load, slot): the lowest slot on ties
    rows = []
    for cta in order.tolist():
        start, slot = free[0]
        end = start + float(cycles[cta])
        heapq.heapreplace(free, (end, slot))
        rows.append({"cta": cta, "slot": slot, "start_s": start / clock_hz,
                     "end_s": end / clock_hz})
    return rows
