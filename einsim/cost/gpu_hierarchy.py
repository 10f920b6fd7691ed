"""A GPU as the engine's hierarchy (DESIGN.md §7): SMs, their units, and four memory levels.

* levels: ``registers`` and ``shared_memory`` (capacity per SM; Blackwell adds
  ``tensor_memory`` for accumulators), ``l2`` (a cache: an assumed bandwidth, see the preset,
  and no capacity check) and ``hbm`` (bandwidth);
* units, each one PE per SM with a throughput per clock: ``tensor_core`` (MACs at the dense
  FP16 rate × the calibrated attention efficiency), ``exp_unit`` (16 exponentials per clock;
  the subtraction in ``exp(x - m)`` goes to the FP32 lanes) and ``fp32`` (the FP32 lanes:
  add, max, multiply, FMA; an exponential here is emulated by a polynomial, as FlashAttention-4
  does on Blackwell);
* every unit has two axes: ``sms`` (the grid: a spatial node over it launches CTAs) and
  ``warpgroups`` (consumer warpgroups of one CTA, which share the SM's units: ping-pong);
* energy is the board at its rated power (no per-action energies are published);
* masks work per tile: a kernel skips KV tiles with no unmasked point and masks a partial
  tile element by element on the FP32 lanes: per score, the comparisons of the mask's
  condition and a select (:func:`einsim.cost.masks.mask_operations`).
"""

from __future__ import annotations

import sympy

from einsim.cost.expressions import symbol
from einsim.cost.hierarchy import Grid, Hierarchy, Level, Unit

WORD_BYTES = 2  # FP16/BF16 operands
REGISTER_WORD_BYTES = 4  # accumulators and softmax state live in 32-bit registers

# How an operation the cascade names maps to each unit's actions when not one of its own.
_FP32_ACTIONS = ("add", "max", "mul", "mac")


def gpu_hierarchy(gpu, dtype: str = "fp16") -> Hierarchy:
    """The hierarchy of a :class:`hw_models.gpu_sm.GPU`."""
    tensor_macs = gpu.tensor_rate(dtype) / 2 * gpu.calibration.tensor_efficiency
    lanes = gpu.fp32_per_clock_per_sm
    axes = {"sms": sympy.Integer(gpu.sms), "warpgroups": sympy.Integer(gpu.warpgroups)}

    def unit(name: str, actions: dict[str, str], rates: dict[str, float],
             op_costs: dict | None = None) -> Unit:
        return Unit(name, dict(axes), {a: 0.0 for a in actions}, actions, op_costs or {},
                    {k: sympy.Float(v) for k, v in rates.items()}, ("warpgroups",))

    fp32_actions = {a: "fp32" for a in _FP32_ACTIONS}
    units = {
        "tensor_core": unit("tensor_core", {"mac": "tensor"}, {"tensor": tensor_macs}),
        # the SFU computes exp and reciprocals; the arithmetic around them uses the FP32 lanes
        "exp_unit": unit("exp_unit", {"exp": "sfu", "divide": "sfu", **fp32_actions},
                         {"sfu": gpu.exp_per_clock_per_sm, "fp32": lanes},
                         {"div": {"divide": 1, "mul": 1}}),
        "fp32": unit("fp32", {**fp32_actions, "divide": "sfu"},
                     {"fp32": lanes, "sfu": gpu.exp_per_clock_per_sm},
                     {"div": {"divide": 1, "mul": 1}}),
    }
    hbm_width = 32 / WORD_BYTES  # one 32-byte sector
    levels = {
        "hbm": Level("hbm", hbm_width, 0.0, 0.0,
                     bandwidth_bytes_per_s=sympy.Float(gpu.hbm_bandwidth_bytes_per_s)),
        # a cache shared by the concurrent CTAs, which walk a head's K/V tiles together: a
        # keep at l2 means they share its tiles; its size bounds nothing (no capacity check)
        "l2": Level("l2", hbm_width, 0.0, 0.0,
                    bandwidth_bytes_per_s=sympy.Float(gpu.l2_bandwidth)),
        "shared_memory": Level("shared_memory", 1, 0.0, 0.0,
                               capacity_words=sympy.Integer(
                                   gpu.shared_memory_bytes_per_sm // WORD_BYTES),
                               per_instance=True),
        "registers": Level("registers", 1, 0.0, 0.0,
                           capacity_words=sympy.Integer(
                               gpu.register_bytes_per_sm // REGISTER_WORD_BYTES),
                           per_instance=True, word_bytes=REGISTER_WORD_BYTES),
    }
    if gpu.tensor_memory_bytes_per_sm:
        levels["tensor_memory"] = Level("tensor_memory", 1, 0.0, 0.0,
                                        capacity_words=sympy.Integer(
                                            gpu.tensor_memory_bytes_per_sm // REGISTER_WORD_BYTES),
                                        per_instance=True, word_bytes=REGISTER_WORD_BYTES)
    grid = Grid("sms", gpu.sms, gpu.max_ctas_per_sm, gpu.calibration.cta_overhead_cycles)
    return Hierarchy(gpu.name, "gpu_sm", levels, units, symbol("clock_hz"), WORD_BYTES,
                     {"clock_hz": gpu.clock_hz}, None, float(gpu.power_w), "shared_memory", grid,
                     multicast=False,  # each SM fetches its own copy from L2
                     mask_cycles_per_operation=1 / lanes)
