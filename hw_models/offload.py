"""Offload deployments: groups of GPUs joined by a link, and the LLMs they serve.

A deployment has compute-optimized devices (projections, FFN) and, for attention offloading,
memory-optimized devices (KV cache, attention) joined by a link.  Devices are GPU presets
(:mod:`hw_models.gpu_sm`: FLOP/s, HBM bandwidth and capacity, power, price per hour); the link
and the models are YAML presets too.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from einsim.errors import SpecError
from einsim.spec_types import NonNegative, Positive, count, spec_name
from einsim.specfile import describe_validation_error, load_yaml_text, preset_names, read_spec
from hw_models.gpu_sm import GPU, gpu_presets, load_gpu, size_argument


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Link(_Spec):
    """A link between device groups: bandwidth per lane and round-trip latency."""

    name: str
    kind: Literal["link"] = "link"
    bandwidth_bytes_per_s: Positive
    round_trip_s: NonNegative


class LLM(_Spec):
    """A decoder-only transformer's shape (weights and KV cache in ``bytes_per_value``:
    2 for FP16/BF16, 1 for FP8)."""

    name: str
    layers: count(high=2 ** 20)
    hidden: count(high=2 ** 24)
    heads: count(high=2 ** 20)
    kv_heads: count(high=2 ** 20)
    head_dim: count(high=2 ** 20)
    ffn: count(high=2 ** 30)
    bytes_per_value: count(high=2) = 2

    @field_validator("kv_heads")
    @classmethod
    def _kv_heads_divide_heads(cls, kv_heads: int, info: ValidationInfo) -> int:
        heads = info.data.get("heads")
        if heads is not None and heads % kv_heads:
            raise PydanticCustomError("kv_heads", "expected a divisor of heads ({heads}) for "
                                      "grouped-query attention, got {kv_heads}",
                                      {"heads": heads, "kv_heads": kv_heads})
        return kv_heads

    @property
    def attention_weights_per_layer(self) -> int:
        """Q, K, V and output projections."""
        q = self.hidden * self.heads * self.head_dim
        kv = 2 * self.hidden * self.kv_heads * self.head_dim
        return 2 * q + kv

    @property
    def ffn_weights_per_layer(self) -> int:
        """Gate, up and down projections (SwiGLU)."""
        return 3 * self.hidden * self.ffn

    @property
    def weight_bytes(self) -> int:
        per_layer = self.attention_weights_per_layer + self.ffn_weights_per_layer
        return self.layers * per_layer * self.bytes_per_value

    @property
    def kv_bytes_per_token(self) -> int:
        """KV cache of one token over all layers."""
        return self.layers * 2 * self.kv_heads * self.head_dim * self.bytes_per_value


MAX_DEVICES = 2 ** 20
"""Devices in one group."""


@dataclass(frozen=True)
class DeviceGroup:
    """``count`` identical GPUs."""

    gpu: GPU
    count: int

    def __post_init__(self):
        if not isinstance(self.gpu, GPU):
            raise SpecError(f"gpu {self.gpu!r}: expected a GPU (hw_models.gpu_sm.load_gpu)")
        object.__setattr__(self, "count", size_argument("count", self.count, MAX_DEVICES,
                                                        SpecError))

    @property
    def label(self) -> str:
        return f"{self.gpu.name}:{self.count}"

    @property
    def price_per_hour(self) -> float:
        if self.gpu.price_per_hour is None:
            raise SpecError(f"device {self.gpu.name}: no price per hour in its preset; offload "
                            "economics need one (presets with prices: "
                            f"{', '.join(n for n in gpu_presets() if load_gpu(n).price_per_hour)})")
        return self.gpu.price_per_hour * self.count


def parse_group(text: str, role: str) -> DeviceGroup:
    """``h100:2`` → two H100s; names the argument on error."""
    if not isinstance(text, str):
        raise SpecError(f"--{role} {text!r}: expected DEVICE:COUNT, e.g. h100:2")
    name, _, count = text.partition(":")
    if count and not count.strip().isdigit():
        raise SpecError(f"--{role} {text!r}: expected DEVICE:COUNT, e.g. h100:2")
    number = int(count) if count else 1
    if not 1 <= number <= MAX_DEVICES:
        raise SpecError(f"--{role} {text!r}: the count must be from 1 to {MAX_DEVICES:,}")
    if name not in gpu_presets():
        raise SpecError(f"--{role} {text!r}: unknown device {name!r}; expected one of "
                        f"{', '.join(gpu_presets())}")
    return DeviceGroup(load_gpu(name), number)


def llm_names() -> list[str]:
    return preset_names(resources.files("einsim").joinpath("llms"))


def load_llm(name_or_path: str) -> LLM:
    name_or_path = spec_name("model", name_or_path)
    document, source = read_spec(name_or_path, resources.files("einsim").joinpath("llms"), "model")
    try:
        return LLM.model_validate(document)
    except ValidationError as error:
        raise SpecError(f"model {source}: {describe_validation_error(error)}") from None


def load_link(name: str = "roce-400g") -> Link:
    folder = resources.files("hw_models").joinpath("presets")
    links = [n for n in preset_names(folder)
             if load_yaml_text(folder.joinpath(f"{n}.yaml").read_text()).get("kind") == "link"]
    document, source = read_spec(spec_name("link", name), folder, "link", links)
    try:
        return Link.model_validate(document)
    except ValidationError as error:
        raise SpecError(f"link {source}: {describe_validation_error(error)}") from None


# ------------------------------------------------------------------ device groups as hardware

NVLINK = "nvlink"
"""The GPUs' own link (its bandwidth per device from the GPU preset's ``nvlink_bytes_per_s``)."""

IDEAL = "ideal"
"""A link that costs nothing (what a step would take if communication were free)."""


def device_link(gpu: GPU, name: str = NVLINK) -> Link:
    """The link joining a group of ``gpu``: ``nvlink`` (the preset's bandwidth per device, no
    latency figure), a link preset (``roce-400g``: bandwidth per device and round trip) or
    ``ideal`` (free)."""
    if not isinstance(name, str) or not name.strip():
        raise SpecError(f"link {name!r}: expected {NVLINK}, {IDEAL} or a link preset "
                        f"({', '.join(link_names())})")
    if name.strip().lower() == NVLINK:
        return Link(name=NVLINK, bandwidth_bytes_per_s=gpu.nvlink_bytes_per_s, round_trip_s=0.0)
    if name.strip().lower() == IDEAL:
        return Link(name=IDEAL, bandwidth_bytes_per_s=1e30, round_trip_s=0.0)
    if name.strip().lower() not in link_names() and not name.strip().endswith((".yaml", ".yml")):
        raise SpecError(f"link {name!r}: unknown; expected {NVLINK}, {IDEAL}, a link preset "
                        f"({', '.join(link_names())}) or a link YAML file")
    return load_link(name.strip())


def link_names() -> list[str]:
    folder = resources.files("hw_models").joinpath("presets")
    return [n for n in preset_names(folder)
            if load_yaml_text(folder.joinpath(f"{n}.yaml").read_text()).get("kind") == "link"]


@dataclass(frozen=True)
class LinkedGroup:
    """``devices`` GPUs joined by ``link``, as one piece of hardware (kind ``device_group``):
    named ``GPU:COUNT`` or ``GPU:COUNT@LINK`` (``h100:8``, ``h20:4@roce-400g``)."""

    gpu: GPU
    devices: int
    link: Link
    kind: str = "device_group"

    def __post_init__(self):
        if not isinstance(self.gpu, GPU):
            raise SpecError(f"gpu {self.gpu!r}: expected a GPU (hw_models.gpu_sm.load_gpu)")
        if not isinstance(self.link, Link):
            raise SpecError(f"link {self.link!r}: expected a Link (hw_models.offload.device_link)")
        object.__setattr__(self, "devices", size_argument("devices", self.devices, MAX_DEVICES,
                                                          SpecError))

    @property
    def name(self) -> str:
        suffix = "" if self.link.name == NVLINK else f"@{self.link.name}"
        return f"{self.gpu.name}:{self.devices}{suffix}"

    def model_dump_json(self) -> str:
        """Identifies the numbers the group's hierarchy bakes in (a compilation cache key)."""
        return (f'{{"group": {self.gpu.model_dump_json()}, "devices": {self.devices}, '
                f'"link": {self.link.model_dump_json()}}}')


@dataclass(frozen=True)
class DevicePair:
    """Compute devices and memory devices joined by an offload link, as one piece of hardware
    (kind ``device_group``; attention offloading): named ``COMPUTE:COUNT+MEMORY:COUNT@LINK``
    (``h100:2+h20:4@roce-400g``; the link defaults to the RoCE preset).  Each group's own
    devices are joined by their NVLink."""

    compute: DeviceGroup
    memory: DeviceGroup
    link: Link
    kind: str = "device_group"

    def __post_init__(self):
        for role, group in (("compute", self.compute), ("memory", self.memory)):
            if not isinstance(group, DeviceGroup):
                raise SpecError(f"{role} {group!r}: expected a DeviceGroup")
        if not isinstance(self.link, Link):
            raise SpecError(f"link {self.link!r}: expected a Link (hw_models.offload.load_link)")

    @property
    def name(self) -> str:
        return f"{self.compute.label}+{self.memory.label}@{self.link.name}"

    def model_dump_json(self) -> str:
        """Identifies the numbers the pair's hierarchy bakes in (a compilation cache key)."""
        return (f'{{"compute": {self.compute.gpu.model_dump_json()}, '
                f'"devices": {self.compute.count}, '
                f'"memory": {self.memory.gpu.model_dump_json()}, '
                f'"memory_devices": {self.memory.count}, '
                f'"link": {self.link.model_dump_json()}}}')


def is_device_group(name) -> bool:
    """Whether a hardware name means a device group (``GPU:COUNT[@LINK]``)."""
    if not isinstance(name, str):
        return False
    head = name.strip().partition("@")[0]
    return ":" in head and not head.endswith((".yaml", ".yml"))


def load_device_group(name: str) -> LinkedGroup | DevicePair:
    """``h100:8`` (NVLink) or ``h100:8@roce-400g`` → a :class:`LinkedGroup`;
    ``h100:2+h20:4[@roce-400g]`` → a :class:`DevicePair`."""
    if not is_device_group(name):
        raise SpecError(f"device group {name!r}: expected GPU:COUNT or GPU:COUNT@LINK, e.g. "
                        "h100:8 or h100:8@roce-400g, or COMPUTE:COUNT+MEMORY:COUNT@LINK")
    group, _, link = name.strip().partition("@")
    if "+" in group:
        compute, _, memory = group.partition("+")
        if not compute.strip() or not memory.strip() or "+" in memory:
            raise SpecError(f"device pair {name!r}: expected COMPUTE:COUNT+MEMORY:COUNT[@LINK], "
                            "e.g. h100:2+h20:4@roce-400g")
        return DevicePair(parse_group(compute.strip(), "compute"),
                          parse_group(memory.strip(), "memory"),
                          load_link(link) if link else load_link())
    devices = parse_group(group, "hw")
    return LinkedGroup(devices.gpu, devices.count, device_link(devices.gpu, link or NVLINK))
