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

from dataclasses import dataclass, field

import sympy

from einsim.cost.expressions import symbol
from einsim.cost.hierarchy import Hierarchy, Level, Unit
from einsim.errors import MappingError, SpecError
from hw_models.gpu_sm import size_argument

WORD_BYTES = 2  # FP16/BF16 operands (FP8: 1)
AXIS = "devices"
MEMORY_AXIS = "memory_devices"  # the memory group's devices, attention offloading
_FP32_ACTIONS = ("add", "max", "mul", "mac")


def device_hierarchy(group, dtype: str = "fp16") -> Hierarchy:
    """The hierarchy of a :class:`hw_models.offload.LinkedGroup` (or of a
    :class:`~hw_models.offload.DevicePair`: :func:`pair_hierarchy`)."""
    from hw_models.offload import DevicePair

    if isinstance(group, DevicePair):
        return pair_hierarchy(group, dtype)
    gpu, devices, link = group.gpu, group.devices, group.link
    count = symbol(AXIS)  # a symbol: one compiled tree serves every group size
    word = _word_bytes(dtype)
    units, levels = _group(gpu, AXIS, "", dtype, 1.0)
    levels = {"link": Level("link", 32 / word, 0.0, 0.0,
                            bandwidth_bytes_per_s=sympy.Float(link.bandwidth_bytes_per_s) * count,
                            remote_fraction=(count - 1) / count,
                            message_latency_s=float(link.round_trip_s), network=True), **levels}
    return Hierarchy(group.name, "device_group", levels, units, symbol("clock_hz"), word,
                     {"clock_hz": gpu.clock_hz, AXIS: devices}, None,
                     float(gpu.power_w) * devices, "hbm", None, multicast=False)


def pair_hierarchy(pair, dtype: str = "fp16") -> Hierarchy:
    """Attention offloading's hardware: the compute group as :func:`device_hierarchy` names
    it (axis ``devices``, units ``tensor_core``..., levels ``link`` — its NVLink — ``hbm`` and
    ``sram``), the memory group the same with the prefix ``memory.`` (axis
    ``memory_devices``), and ``offload``, the link between the groups.

    A tensor kept at ``offload`` is written by one group and read by the other, so each
    crossing counts twice: the level's bandwidth is twice the link's (over min(compute,
    memory) lanes), and each move waits a quarter of the link's round trip (a round trip is
    two crossings of two moves).  The engine runs on the compute devices' clock: the memory
    devices' rates are scaled to it."""
    compute, memory, link = pair.compute, pair.memory, pair.link
    word = _word_bytes(dtype)
    units, levels = _group(compute.gpu, AXIS, "", dtype, 1.0)
    count, remote = symbol(AXIS), symbol(MEMORY_AXIS)
    nvlink = {"link": Level("link", 32 / word, 0.0, 0.0,
                            bandwidth_bytes_per_s=sympy.Float(compute.gpu.nvlink_bytes_per_s)
                            * count, remote_fraction=(count - 1) / count, network=True)}
    scale = memory.gpu.clock_hz / compute.gpu.clock_hz
    memory_units, memory_levels = _group(memory.gpu, MEMORY_AXIS, "memory.", dtype, scale)
    lanes = sympy.Min(count, remote)
    offload = Level("offload", 32 / word, 0.0, 0.0,
                    bandwidth_bytes_per_s=2 * sympy.Float(link.bandwidth_bytes_per_s) * lanes,
                    message_latency_s=float(link.round_trip_s) / 4, network=True)
    power = float(compute.gpu.power_w) * compute.count + float(memory.gpu.power_w) * memory.count
    return Hierarchy(pair.name, "device_group",
                     {"hbm": levels["hbm"], **nvlink, "offload": offload,  # outer to inner
                      "memory.hbm": memory_levels["memory.hbm"], "sram": levels["sram"],
                      "memory.sram": memory_levels["memory.sram"]},
                     {**units, **memory_units}, symbol("clock_hz"), word,
                     {"clock_hz": compute.gpu.clock_hz, AXIS: compute.count,
                      MEMORY_AXIS: memory.count}, None, power, "hbm", None, multicast=False)


def network_time(hierarchy: Hierarchy, raw, level: str, copies: float = 1) -> tuple[float, float]:
    """(seconds, bytes) of a network level of an evaluated tree: the bytes its accesses move
    (over every copy) at the level's bandwidth, plus a message latency per move."""
    found = hierarchy.levels[level]
    words = sum(float(v) for k, v in raw.items() if k[0] in ("reads", "writes")
                and k[1] == level)
    moved = words * copies * hierarchy.word_bytes
    bandwidth = sympy.sympify(found.bandwidth_bytes_per_s)
    bandwidth = float(bandwidth.subs({s: hierarchy.values[str(s)]
                                      for s in bandwidth.free_symbols}))
    latency = float(raw.get(("messages", level), 0.0)) * found.message_latency_s
    return moved / bandwidth + latency, moved


def _word_bytes(dtype: str) -> int:
    """Bytes per operand: one for FP8, else two (FP16/BF16)."""
    return 1 if dtype == "fp8" else WORD_BYTES


def _group(gpu, axis: str, prefix: str, dtype: str, scale: float):
    """(units, levels ``hbm`` and ``sram``) of a group of ``gpu`` spread over ``axis``: one PE
    per device at its aggregate rate per clock (× ``scale`` for another clock)."""
    sms, word = gpu.sms, _word_bytes(dtype)
    tensor_macs = sms * gpu.tensor_rate(dtype) / 2 * gpu.calibration.tensor_efficiency * scale
    lanes = sms * gpu.fp32_per_clock_per_sm * scale
    sfu = sms * gpu.exp_per_clock_per_sm * scale
    count = symbol(axis)
    axes = {axis: count}

    def unit(name: str, actions: dict[str, str], rates: dict[str, float],
             op_costs: dict | None = None) -> Unit:
        return Unit(prefix + name, dict(axes), {a: 0.0 for a in actions}, actions,
                    op_costs or {}, {k: sympy.Float(v) for k, v in rates.items()})

    fp32_actions = {a: "fp32" for a in _FP32_ACTIONS}
    units = [
        unit("tensor_core", {"mac": "tensor"}, {"tensor": tensor_macs}),
        unit("exp_unit", {"exp": "sfu", "divide": "sfu", **fp32_actions},
             {"sfu": sfu, "fp32": lanes}, {"div": {"divide": 1, "mul": 1}}),
        unit("fp32", {**fp32_actions, "divide": "sfu"}, {"fp32": lanes, "sfu": sfu},
             {"div": {"divide": 1, "mul": 1}}),
    ]
    levels = [
        Level(prefix + "hbm", 32 / word, 0.0, 0.0,
              capacity_words=sympy.Integer(int(gpu.hbm_bytes // word)),
              bandwidth_bytes_per_s=sympy.Float(gpu.hbm_bandwidth_bytes_per_s) * count,
              per_instance=True),
        Level(prefix + "sram", 1, 0.0, 0.0,
              capacity_words=sympy.Integer(
                  sms * (gpu.shared_memory_bytes_per_sm + gpu.register_bytes_per_sm)
                  // word),
              per_instance=True),
    ]
    return {u.name: u for u in units}, {l.name: l for l in levels}


# ------------------------------------------------- a tree on a group: step, compute, communication

STRATEGIES = {"ring": "seqpar-ring", "lasp2": "seqpar-lasp2", "lasp2h": "seqpar-lasp2h"}
"""Sequence-parallel strategies → their loop trees in ``mappings/``."""


@dataclass(frozen=True)
class GroupStep:
    """One evaluation of a tree on a device group, with what the link costs.

    ``communication_s`` is the link level's time (its bytes over the group's bandwidth plus
    its message latencies), ``overlap`` the fraction of it hidden behind the rest of the step
    (1 − (step − step with a free link) / communication_s; None without communication) and
    ``scaling_efficiency`` the same tree's time on one device ÷ (G × step time)."""

    strategy: str
    cascade: str
    hardware: str
    devices: int
    seq_len: int
    workload: str
    step_time_s: float
    compute_s: float
    communication_s: float
    communication_bytes_per_device: float
    overlap: float | None
    scaling_efficiency: float
    single_device_s: float
    parameters: dict
    report: object = field(repr=False, compare=False, default=None)

    def summary(self) -> dict:
        return {"step_time_s": self.step_time_s, "compute_s": self.compute_s,
                "communication_s": self.communication_s,
                "communication_bytes_per_device": self.communication_bytes_per_device,
                "overlap": self.overlap, "scaling_efficiency": self.scaling_efficiency,
                "single_device_s": self.single_device_s, "strategy": self.strategy,
                "cascade": self.cascade, "hardware": self.hardware, "devices": self.devices,
                "seq_len": self.seq_len, "workload": self.workload,
                "parameters": dict(self.parameters)}


def strategy_tree(strategy: str):
    """The loop tree of a strategy name (``ring``, ``lasp2``, ``lasp2h``) or a mapping file,
    checked to run on a device group."""
    from einsim.cost.tree import load_mapping_tree
    from hw_models.offload import is_device_group

    if not isinstance(strategy, str) or not strategy.strip():
        raise SpecError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)} or a "
                        "mapping file")
    name = strategy.strip()
    if name not in STRATEGIES and not name.endswith((".yaml", ".yml")):
        raise SpecError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)} or a "
                        "mapping file (.yaml)")
    tree = load_mapping_tree(STRATEGIES.get(name, name))
    if not is_device_group(tree.hardware):
        raise SpecError(f"strategy {strategy}: mapping {tree.name} runs on {tree.hardware}, not "
                        "on a device group (hardware: GPU:COUNT[@LINK], e.g. h100:8)")
    return tree


def group_step(strategy: str, gpu: str = "h100", devices: int = 8, seq_len: int | str = 65536,
               link: str = "nvlink", workload: str = "bert", cascade: str | None = None,
               objective: str = "latency") -> GroupStep:
    """Evaluate a strategy's tree on ``devices`` GPUs joined by ``link`` (the mapper chooses
    the tree's free parameters), and on one device for the scaling efficiency."""
    from einsim.cost.evaluate import best_concrete, compile_for, problem_of
    from einsim.workloads import load_workload
    from hw_models.gpu_sm import gpu_presets, load_gpu
    from hw_models.offload import IDEAL, MAX_DEVICES, LinkedGroup, device_link

    tree = strategy_tree(strategy)
    if not isinstance(gpu, str) or gpu.strip().lower() not in gpu_presets():
        raise SpecError(f"hw {gpu!r}: expected a GPU preset ({', '.join(gpu_presets())})")
    device = load_gpu(gpu.strip().lower())
    count = size_argument("devices", devices, MAX_DEVICES, SpecError)
    chosen = device_link(device, link)
    load = load_workload(workload, seq_len)
    problem = problem_of(load)
    name = cascade or tree.cascade

    def run(group: LinkedGroup, fixed=None):
        try:
            found, concrete = best_concrete(tree, problem, group.name, fixed or {}, objective,
                                            cascade, pareto=False)
        except MappingError as error:
            raise MappingError(f"strategy {strategy} ({tree.name}) on {name}, {group.name}: "
                               f"{error}") from None
        return found.best, concrete

    group = LinkedGroup(device, count, chosen)
    report, concrete = run(group)
    fixed = {k: v for k, v in report.parameters.items() if k in concrete.parameters}
    engine, _ = compile_for(concrete, cascade, group.name)
    raw = engine.raw(engine.values(problem, fixed), problem.copies)
    communication, link_bytes = network_time(engine.hardware, raw, "link", problem.copies)
    overlap = None
    if communication > 0:
        free = LinkedGroup(device, count, device_link(device, IDEAL))
        ideal, _ = run(free, fixed)
        exposed = max(report.latency_s - ideal.latency_s, 0.0)
        overlap = min(max(1.0 - exposed / communication, 0.0), 1.0)
    single = run(LinkedGroup(device, 1, chosen))[0] if count > 1 else report
    return GroupStep(strategy, name, group.name, count, load.seq_len, load.name,
                     report.latency_s, report.compute_latency_s, communication,
                     link_bytes / count, overlap, single.latency_s / (count * report.latency_s),
                     single.latency_s, report.parameters, report)
