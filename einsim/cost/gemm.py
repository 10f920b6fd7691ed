"""Dense GEMMs (a transformer layer's projections and FFN) on a spatial array's 2D array.

Output-stationary: tokens spread over rows, output features over columns, the reduction is
temporal.  The weight matrix is re-read once per block of token rows whose inputs and outputs
fit in half the global buffer; inputs are read and outputs written once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from einsim.workloads import GemmLayer
from hw_models.spatial_array import SpatialArray


@dataclass(frozen=True)
class GemmCost:
    name: str
    cycles: float
    busy_cycles: float
    dram_words: float
    energy_j: dict[str, float]


def _fill(extent: int, dim: int) -> float:
    return extent / (math.ceil(extent / dim) * dim)


def gemm_cost(layer: GemmLayer, hardware: SpatialArray) -> GemmCost:
    """Cycles, DRAM traffic and energy of ``layer`` on the 2D array of ``hardware``."""
    dim = hardware.pe_dim
    utilization = _fill(layer.m, dim) * _fill(layer.n, dim)
    cycles = layer.macs / (hardware.pe_count("array2d") * utilization)
    rows = max(1, (hardware.global_buffer.bytes // 2 // hardware.word_bytes)
               // (layer.k + layer.n))
    blocks = math.ceil(layer.m / rows)
    words = layer.count * (layer.m * layer.k + blocks * layer.k * layer.n + layer.m * layer.n)
    unit = hardware.array2d
    rf = unit.register_file
    buffer = hardware.global_buffer
    dram = hardware.dram
    energy = {
        "array2d": layer.macs * unit.actions["mac"].energy_pj * 1e-12,
        "register_files": layer.macs * (2 * rf.read_pj + rf.write_pj) * 1e-12,
        "global_buffer": words * (buffer.read_pj_per_row + buffer.write_pj_per_row)
        / buffer.row_words * 1e-12,
        "dram": words / (dram.access_bits / hardware.word_bits) * dram.energy_pj_per_access
        * 1e-12,
    }
    return GemmCost(layer.name, cycles, layer.macs / hardware.pe_count("array2d"), words, energy)
