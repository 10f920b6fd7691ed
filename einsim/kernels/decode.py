"""GPU decode schedules (one new query per sequence): FlashAttention-2, FlashDecoding and
LeanAttention (stream-K), on the same SM execution model (DESIGN.md §9).

Decode streams the KV cache once, so a CTA's time is its share of K and V over the bandwidth
one CTA slot can draw (HBM bandwidth / slots): SMs left idle are bandwidth left unused.  Query
heads sharing a KV head (grouped-query attention) ride in the same CTA.  Split schedules write
partial (max, sum, numerator) states that a merge combines — the ``decode-split`` cascade.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from einsim.errors import EinsimError
from hw_models.gpu_sm import GPU, makespan, size_argument, tile_cycles
from einsim.kernels.flash_attention import BYTES

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


def _cta_cycles(gpu: GPU, tokens: np.ndarray, q_rows: int, head_dim: int, dtype: str,
                slots: int) -> np.ndarray:
    """Cycles of CTAs each streaming ``tokens`` keys and values for ``q_rows`` query rows."""
    per_slot_bandwidth = gpu.hbm_bandwidth_bytes_per_s / slots / gpu.clock_hz  # bytes/cycle
    memory = 2 * tokens * head_dim * BYTES[dtype] / per_slot_bandwidth
    tile = tile_cycles(gpu, dtype, max(q_rows, 16), kv_block(head_dim), head_dim, True)
    compute = tokens / kv_block(head_dim) * tile["total"] * (slots / gpu.sms)
    return np.maximum(memory, compute)


def estimate(gpu: GPU, schedule: str, *, batch: int, heads: int, head_dim: int, context: int,
             kv_heads: int | None = None, dtype: str = "fp16") -> DecodeEstimate:
    """Predicted decode attention time of one step for ``batch`` sequences of ``context``.

    Time and memory are O(distinct CTA shapes): equal CTAs are counted, never listed.
    """
    if not isinstance(gpu, GPU):
        raise EinsimError(f"gpu {gpu!r:.60}: expected a GPU (see hw_models.gpu_sm.load_gpu)")
    if not isinstance(dtype, str) or dtype not in BYTES:
        raise EinsimError(f"dtype {dtype!r}: expected one of {', '.join(BYTES)}")
    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        raise EinsimError(f"schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    batch, heads, head_dim, context = (size_argument(name, value) for name, value in (
        ("batch", batch), ("heads", heads), ("head_dim", head_dim), ("context", context)))
    kv_heads = heads if kv_heads is None else size_argument("kv_heads", kv_heads)
    if heads % kv_heads:
        raise EinsimError(f"kv_heads {kv_heads}: must divide heads {heads}")
    rows = heads // kv_heads
    work = batch * kv_heads
    slots = gpu.sms * gpu.decode_ctas_per_sm
    block = kv_block(head_dim)
    blocks = math.ceil(context / block)
    merge_s = 0.0
    if schedule == "lean":  # stream-K: all tiles end to end, an equal share per CTA
        total = work * blocks
        ctas = min(slots, total)
        share, rest = divmod(total, ctas)  # the first `rest` CTAs take one tile more
        tiles = np.array([share + 1, share], dtype=float)
        counts = np.array([rest, ctas - rest], dtype=np.int64)
        bounds = np.cumsum(np.full(ctas, share, dtype=object) + (np.arange(ctas) < rest))
        inside = [b // blocks for b in bounds.tolist() if b % blocks]  # boundaries in a head
        splits = 1 + (max(np.unique(inside, return_counts=True)[1]) if inside else 0)
        tokens = tiles * block
    else:
        splits = 1 if schedule == "fa2" else num_splits(work, 2 * gpu.sms, blocks)
        chunk = math.ceil(blocks / splits) * block
        per_split = np.minimum(chunk, context - chunk * np.arange(splits))
        per_split = per_split[per_split > 0].astype(float)
        if per_split.size == 1 or np.all(per_split == per_split[0]):
            tokens = per_split[:1]
            counts = np.array([work * per_split.size], dtype=np.int64)
        else:  # splits > 1 only when the grid is small (under 0.8 x two waves)
            tokens = np.tile(per_split, work)
            counts = np.ones(tokens.size, dtype=np.int64)
    cycles = _cta_cycles(gpu, tokens, rows, head_dim, dtype, slots)
    persistent = schedule == "lean"
    span, waves = makespan(cycles, slots, persistent=persistent, counts=counts)
    if splits > 1:  # merging partial states: one more pass over (max, sum, numerator)
        partial_bytes = batch * heads * splits * (head_dim + 2) * 4
        merge_s = 2 * partial_bytes / gpu.hbm_bandwidth_bytes_per_s
    latency = float(span / gpu.clock_hz + merge_s)
    busy = float(np.dot(cycles, counts.astype(float)))
    utilization = float(busy / (slots * span)) if span else 0.0
    return DecodeEstimate(latency, int(counts.sum()), waves, int(splits), utilization, merge_s,
                          cycles, counts, slots, gpu.clock_hz, persistent)


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
