"""FLAT residency: QK, softmax and AV fused over a block of R query rows.

The R x M logits of the rows in flight stay in the global buffer (softmax overwrites them in
place); K and V are streamed once per row block.  When the rows do not fit, the logits and
the exponentials spill: each is written to DRAM once and read back once.
"""

from __future__ import annotations

import math

from einsim.mapping import Mapping, MappingSpec, Residency


def parameter_space(spec: MappingSpec, hardware, workload) -> dict[str, list]:
    """Row blocks: powers of two below P, and P itself (head granularity)."""
    rows = [2 ** k for k in range(int(math.log2(workload.P)) + 1) if 2 ** k < workload.P]
    return {"rows": rows + [workload.P]}


def build(spec: MappingSpec, hardware, workload, parameters: dict) -> Mapping:
    rows = int(parameters.get("rows", workload.P))
    blocks = math.ceil(workload.P / rows)
    E, F, M = workload.E, workload.F, workload.M
    logits = rows * M
    fits = (logits + (E + F) * rows) * hardware.word_bytes <= hardware.global_buffer.bytes
    spill = Residency(level="dram", dram_reads=1, dram_writes=1)
    residency = {
        "Q": Residency(level="global_buffer", buffer_words=E * rows, dram_reads=1),
        "K": Residency(level="dram", dram_reads=blocks),
        "V": Residency(level="dram", dram_reads=blocks),
        "QK": Residency(level="global_buffer", buffer_words=logits) if fits else spill,
        "SN": Residency(level="global_buffer") if fits else spill,
        "A": Residency(level="array"),
        "GM": Residency(level="global_buffer", buffer_words=rows),
        "SD": Residency(level="global_buffer", buffer_words=rows),
        "AV": Residency(level="global_buffer", buffer_words=F * rows, dram_writes=1),
    }
    return Mapping(spec=spec, sizes=workload.sizes(),
                   parameters={"rows": rows, "spills": "yes" if not fits else "no"},
                   residency=residency, spatial_extents={"p": rows})
