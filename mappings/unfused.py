"""Unfused residency: one Einsum at a time, so every intermediate with more than one axis
(the M x P logits, exponentials, probabilities) goes to DRAM and comes back once for each
Einsum that reads it; per-query vectors (max, sum) stay in the global buffer."""

from __future__ import annotations

from einsim import library
from einsim.mapping import Mapping, MappingSpec, Residency


def parameter_space(spec: MappingSpec, hardware, workload) -> dict[str, list]:
    return {}


def build(spec: MappingSpec, hardware, workload, parameters: dict) -> Mapping:
    cascade = library.get(spec.cascade)
    residency = {name: Residency(level="dram", dram_reads=1) for name in cascade.input_names}
    for einsum in cascade.einsums:
        readers = sum(1 for e in cascade.einsums if einsum.name in {a.tensor for a in e.inputs})
        if einsum.name in cascade.outputs:
            residency[einsum.name] = Residency(level="dram", dram_writes=1)
        elif len(einsum.output.indices) > 1:
            residency[einsum.name] = Residency(level="dram", dram_reads=readers, dram_writes=1)
        else:
            residency[einsum.name] = Residency(level="global_buffer", buffer_words=workload.P)
    return Mapping(spec=spec, sizes=workload.sizes(), residency=residency)
