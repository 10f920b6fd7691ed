"""Mappings: loop-tree YAML files (``*.yaml`` with a ``tree``), which the engine in
:mod:`einsim.cost` reads as data, and — until the GPU kernels move onto trees — the GPU kernel
models (``flash_attention``, ``decode``, ``fna``, ``lamina``).

Strategy modules are imported on first use, so importing this package does not import the
engine (which imports this package).
"""

from __future__ import annotations

import importlib
from types import ModuleType

STRATEGY_NAMES = ("flash_attention",)


def strategy(name: str) -> ModuleType:
    """The strategy module ``name`` (with ``parameter_space`` and ``build``)."""
    if name not in STRATEGY_NAMES:
        raise KeyError(name)
    return importlib.import_module(f"mappings.{name}")
