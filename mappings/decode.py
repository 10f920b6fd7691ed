"""GPU decode schedules (one new query per sequence): FlashAttention-2, FlashDecoding and
LeanAttention (stream-K), on the same SM execution model (DESIGN.md §9).

Decode streams the KV cache once, so a CTA's time is its share of K and V over the bandwidth
one CTA slot can draw (HBM bandwidth / slots): SMs left idle are bandwidth left unused.  Query
heads sharing a KV head (grouped-query attention) ride in the same CTA.  Split schedules write
partial (max, sum, numerator) states that a merge combines — the ``decode-split`` cascade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from einsim.errors import EinsimError
from hw_models.gpu_sm import GPU, makespan, tile_cycles
from mappings.flash_attention import BYTES

SCHEDULES = ("fa2", "flash-decoding", "lean")


@dataclass(frozen=True)
class DecodeEstimate:
    latency_s: float
    ctas: int
    waves: int
    splits: int
    sm_utilization: float
    merge_s: float
    timeline: list[dict] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        return {"latency_s": self.latency_s, "ctas": self.ctas, "waves": self.waves,
                "splits": self.splits, "sm_utilization": self.sm_utilization,
                "merge_s": self.merge_s}


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
    """Predicted decode attention time of one step for ``batch`` sequences of ``context``."""
    if dtype not in BYTES:
        raise EinsimError(f"dtype {dtype!r}: expected one of {', '.join(BYTES)}")
    if schedule not in SCHEDULES:
        raise EinsimError(f"schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    kv_heads = heads if kv_heads is None else kv_heads
    for name, value in (("batch", batch), ("heads", heads), ("kv_heads", kv_heads),
                        ("head_dim", head_dim), ("context", context)):
        if value < 1:
            raise EinsimError(f"{name} {value}: must be at least 1")
    if heads % kv_heads:
        raise EinsimError(f"kv_heads {kv_heads}: must divide heads {heads}")
    rows = heads // kv_heads
    work = batch * kv_heads
    slots = gpu.sms * gpu.decode_ctas_per_sm
    blocks = math.ceil(context / kv_block(head_dim))
    merge_s = 0.0
    if schedule == "lean":  # stream-K: all tiles end to end, an equal share per CTA
        total = work * blocks
        ctas = min(slots, total)
        tiles = np.full(ctas, total // ctas)
        tiles[:total % ctas] += 1
        bounds = np.concatenate([[0], np.cumsum(tiles)])
        heads_first = np.arange(work) * blocks
        first = np.searchsorted(bounds, heads_first, side="right") - 1
        last = np.searchsorted(bounds, heads_first + blocks - 1, side="right") - 1
        splits = int(np.max(last - first + 1))  # CTAs the most divided head spans
        tokens = tiles * kv_block(head_dim)
    else:
        splits = 1 if schedule == "fa2" else num_splits(work, 2 * gpu.sms, blocks)
        chunk = math.ceil(blocks / splits) * kv_block(head_dim)
        per_split = np.minimum(chunk, context - chunk * np.arange(splits))
        tokens = np.tile(per_split[per_split > 0], work)
    cycles = _cta_cycles(gpu, tokens.astype(float), rows, head_dim, dtype, slots)
    span, waves = makespan(cycles, slots, persistent=schedule == "lean")
    if splits > 1:  # merging partial states: one more pass over (max, sum, numerator)
        partial_bytes = batch * heads * splits * (head_dim + 2) * 4
        merge_s = 2 * partial_bytes / gpu.hbm_bandwidth_bytes_per_s
    latency = float(span / gpu.clock_hz + merge_s)
    busy = float(cycles.sum())
    utilization = float(busy / (slots * span)) if span else 0.0
    return DecodeEstimate(latency, int(cycles.size), waves, int(splits), utilization, merge_s,
                          _timeline(cycles, slots, gpu.clock_hz,
                                    persistent=schedule == "lean"))


def _timeline(cycles: np.ndarray, slots: int, clock_hz: float, persistent: bool) -> list[dict]:
    """Start and end of every CTA on its slot (for the SM timeline figure)."""
    order = np.argsort(-cycles, kind="stable") if persistent else np.arange(cycles.size)
    free = np.zeros(slots)
    rows = []
    for cta in order:
        slot = int(np.argmin(free))
        start = free[slot]
        free[slot] += cycles[cta]
        rows.append({"cta": int(cta), "slot": slot, "start_s": start / clock_hz,
                     "end_s": free[slot] / clock_hz})
    return rows
