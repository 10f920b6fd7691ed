"""GPU kernel and device models still written as code: FlashAttention prefill
(``flash_attention``), decode schedules (``decode``), fused neighborhood attention (``fna``) and
attention offloading (``lamina``).  They move onto loop trees with issue 10; ``mappings/``
itself holds data only.

A GPU mapping YAML names its kernel model as ``strategy``; :func:`strategy` imports it on
first use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

STRATEGY_NAMES = ("flash_attention",)


def strategy(name: str) -> ModuleType:
    """The kernel model ``name`` (with ``parameter_space`` and ``evaluate``)."""
    if name not in STRATEGY_NAMES:
        raise KeyError(name)
    return importlib.import_module(f"einsim.kernels.{name}")
