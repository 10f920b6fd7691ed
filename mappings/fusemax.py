"""FuseMax-family residency (+Cascade, +Architecture, FuseMax).

Loop nest per (batch, head): P2 → M1 → P1 → spatial P0 × spatial M0, with M0 = P0 = pe_dim.
The global buffer holds one K and one V tile and, for pe_dim·P1 queries, Q and the running
state RM, RD, RNV; only Q, K, V and AV touch DRAM, and K and V are re-read once per P2 block.
"""

from __future__ import annotations

import math

from einsim.mapping import Mapping, MappingSpec, Residency


def _query_blocks(hardware, workload) -> int:
    return math.ceil(workload.P / hardware.pe_dim)


def parameter_space(spec: MappingSpec, hardware, workload) -> dict[str, list]:
    """P1 ranges over the divisors of the number of pe_dim-wide query blocks."""
    blocks = _query_blocks(hardware, workload)
    return {"P1": [d for d in range(1, blocks + 1) if blocks % d == 0]}


def build(spec: MappingSpec, hardware, workload, parameters: dict) -> Mapping:
    tile = hardware.pe_dim
    blocks = _query_blocks(hardware, workload)
    p1 = int(parameters.get("P1", 1))
    p2 = math.ceil(blocks / p1)
    sizes = {**workload.sizes(), "M0": tile, "M1": math.ceil(workload.M / tile)}
    queries = tile * p1
    E, F = workload.E, workload.F
    on_chip = ("BQK", "LM", "SLN", "SLD", "SLNV", "PRM", "SPD", "SPNV")
    residency = {
        "Q": Residency(level="global_buffer", buffer_words=E * queries, dram_reads=1),
        "K": Residency(level="dram", dram_reads=p2),
        "V": Residency(level="dram", dram_reads=p2),
        "BK": Residency(level="global_buffer", buffer_words=E * tile),
        "BV": Residency(level="global_buffer", buffer_words=F * tile),
        "RM": Residency(level="global_buffer", buffer_words=queries),
        "RD": Residency(level="global_buffer", buffer_words=queries),
        "RNV": Residency(level="global_buffer", buffer_words=F * queries),
        "AV": Residency(level="dram", dram_writes=1),
        **{name: Residency(level="array") for name in on_chip},
    }
    return Mapping(spec=spec, sizes=sizes, parameters={"P1": p1, "P2": p2},
                   residency=residency, spatial_extents={"p": min(queries, workload.P)})
