"""A group of GPUs joined by a link as the engine's hierarchy (DESIGN.md §7 "Offload devices").

One PE is one whole device, so a tree spreads work over the group with a spatial node over
the one axis ``devices`` (G positions):

* units ``tensor_core``, ``exp_unit`` and ``fp32`` (bound like the GPU trees' units), each one
  PE per device at the device's aggregate rate per clock: SMs × the tensor-core MACs per SM
  × the preset's calibrated attention efficiency, SMs × exponentials per SM, SMs × FP32 lanes;
* levels, outer to inner:

  - ``link``: the devices' memories seen across the link.  A tensor kept here is spread
    evenly over the G devices, so an access finds 1/G of its data at home and only
    (G − 1)/G crosses the link (``remote_fraction``: nothing moves with one device).  Its
    bandwidth is the link's per device × G (every device sends and receives at once), and
    each move of a tile waits one message latency (the link preset's round trip; NVLink: none);
  - ``hbm``: each device's memory (capacity per device, bandwidth per device × G);
  - ``sram``: each device's on-chip memory (shared memory and registers of all its SMs; no
    bandwidth limit), where the tiles a device works on live.

The engine divides a level's traffic *summed over the devices* by its bandwidth, so a level
each device has its own copy of gets the group's aggregate bandwidth: G × per device.
Energy is the boards at their rated power (no per-action energies are published).
"""

from __future__ import annotations

import sympy

from einsim.cost.expressions import symbol
from einsim.cost.hierarchy import Hierarchy, Level, Unit

WORD_BYTES = 2  # FP16/BF16 operands
AXIS = "devices"
_FP32_ACTIONS = ("add", "max", "mul", "mac")


def device_hierarchy(group, dtype: str = "fp16") -> Hierarchy:
    """The hierarchy of a :class:`hw_models.offload.LinkedGroup`."""
    gpu, devices, link = group.gpu, group.devices, group.link
    sms = gpu.sms
    tensor_macs = sms * gpu.tensor_rate(dtype) / 2 * gpu.calibration.tensor_efficiency
    lanes = sms * gpu.fp32_per_clock_per_sm
    sfu = sms * gpu.exp_per_clock_per_sm
    count = symbol(AXIS)  # a symbol: one compiled tree serves every group size
    axes = {AXIS: count}

    def unit(name: str, actions: dict[str, str], rates: dict[str, float],
             op_costs: dict | None = None) -> Unit:
        return Unit(name, dict(axes), {a: 0.0 for a in actions}, actions, op_costs or {},
                    {k: sympy.Float(v) for k, v in rates.items()})

    fp32_actions = {a: "fp32" for a in _FP32_ACTIONS}
    units = {
        "tensor_core": unit("tensor_core", {"mac": "tensor"}, {"tensor": tensor_macs}),
        "exp_unit": unit("exp_unit", {"exp": "sfu", "divide": "sfu", **fp32_actions},
                         {"sfu": sfu, "fp32": lanes}, {"div": {"divide": 1, "mul": 1}}),
        "fp32": unit("fp32", {**fp32_actions, "divide": "sfu"}, {"fp32": lanes, "sfu": sfu},
                     {"div": {"divide": 1, "mul": 1}}),
    }
    burst = 32 / WORD_BYTES
    remote = (count - 1) / count
    levels = {
        "link": Level("link", burst, 0.0, 0.0,
                      bandwidth_bytes_per_s=sympy.Float(link.bandwidth_bytes_per_s) * count,
                      remote_fraction=remote, message_latency_s=float(link.round_trip_s)),
        "hbm": Level("hbm", burst, 0.0, 0.0,
                     capacity_words=sympy.Integer(int(gpu.hbm_bytes // WORD_BYTES)),
                     bandwidth_bytes_per_s=sympy.Float(gpu.hbm_bandwidth_bytes_per_s) * count,
                     per_instance=True),
        "sram": Level("sram", 1, 0.0, 0.0,
                      capacity_words=sympy.Integer(
                          sms * (gpu.shared_memory_bytes_per_sm + gpu.register_bytes_per_sm)
                          // WORD_BYTES),
                      per_instance=True),
    }
    return Hierarchy(group.name, "device_group", levels, units, symbol("clock_hz"), WORD_BYTES,
                     {"clock_hz": gpu.clock_hz, AXIS: devices}, None,
                     float(gpu.power_w) * devices, "hbm", None, multicast=False)


def group_key(group) -> str:
    """What a group's compiled trees depend on: its GPU and link, not its size (``devices``
    is a symbol of the expressions; give it as an override)."""
    return f'{{"device": {group.gpu.model_dump_json()}, "link": {group.link.model_dump_json()}}}'
