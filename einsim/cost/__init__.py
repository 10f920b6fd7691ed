"""The cost engine: loop-tree mappings (:mod:`.tree`) and their derivation into per-level
traffic, capacity, latency and energy (:mod:`.derivation`, :mod:`.engine`), the Report
(:mod:`.report`) and the front door (:mod:`.evaluate`)."""

from einsim.cost.report import EinsumCost, Report  # noqa: F401
