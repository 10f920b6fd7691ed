"""FuseMax-family residency (+Cascade, +Architecture, FuseMax).

Loop nest per (batch, head): P2 → M1 → P1 → spatial P0 × spatial M0, with M0 = P0 = pe_dim.
The global buffer holds one K and one V tile and, for pe_dim·P1 queries, Q and the running
state RM, RD, RNV; only Q, K, V and AV touch DRAM, and K and V are re-read once per P2 block.
"""

from __future__ import annotations

import math
import numbers

from einsim.errors import SpecError
from einsim.mapping import Mapping, MappingSpec, Residency


def _query_blocks(hardware, workload) -> int:
    return math.ceil(workload.P / hardware.pe_dim)


def parameter_space(spec: MappingSpec, hardware, workload) -> dict[str, list]:
    """P1 ranges over the divisors of the number of pe_dim-wide query blocks."""
    blocks = _query_blocks(hardware, workload)
    return {"P1": [d for d in range(1, blocks + 1) if blocks % d == 0]}


ON_CHIP = ("BQK", "LM", "SLN", "SLD", "SLNV", "PRM", "SPD", "SPNV")


def residency_table(E, F, tile, p1, p2) -> dict[str, tuple]:
    """``name -> (level, buffer_words, dram_reads, dram_writes)``; arithmetic only, so the
    vectorized sweep engine evaluates the same formulas over arrays."""
    queries = tile * p1
    return {
        "Q": ("global_buffer", E * queries, 1, 0),
        "K": ("dram", 0, p2, 0),
        "V": ("dram", 0, p2, 0),
        "BK": ("global_buffer", E * tile, 0, 0),
        "BV": ("global_buffer", F * tile, 0, 0),
        "RM": ("global_buffer", queries, 0, 0),
        "RD": ("global_buffer", queries, 0, 0),
        "RNV": ("global_buffer", F * queries, 0, 0),
        "AV": ("dram", 0, 0, 1),
        **{name: ("array", 0, 0, 0) for name in ON_CHIP},
    }


def build(spec: MappingSpec, hardware, workload, parameters: dict) -> Mapping:
    tile = hardware.pe_dim
    blocks = _query_blocks(hardware, workload)
    raw = parameters.get("P1", 1)
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real) \
            or not math.isfinite(raw) or raw != math.floor(raw) or raw < 1:
        raise SpecError(f"P1 {raw!r}: expected a positive integer number of query blocks "
                        "(fractions are refused, not truncated)")
    p1 = int(raw)
    p2 = math.ceil(blocks / p1)
    sizes = {**workload.sizes(), "M0": tile, "M1": math.ceil(workload.M / tile)}
    residency = {name: Residency(level=level, buffer_words=words, dram_reads=reads,
                                 dram_writes=writes)
                 for name, (level, words, reads, writes)
                 in residency_table(workload.E, workload.F, tile, p1, p2).items()}
    # Query blocks are the same whatever P1 groups them into: p's spatial extent is P itself
    # (only the last pe_dim-wide block is padded).
    return Mapping(spec=spec, sizes=sizes, parameters={"P1": p1, "P2": p2},
                   residency=residency)
