"""Mapping strategies: what the YAML specs beside this module cannot say as data.

A spec (``*.yaml``) binds Einsums to units and orders pipeline stages; a strategy turns the
spec, a hardware model, a workload and free-parameter values into a concrete
:class:`einsim.mapping.Mapping` (sizes, residency of every tensor) and enumerates the space of
its free parameters for the mapper.

Strategy modules are imported on first use, so importing this package does not import the
engine (which imports this package).
"""

from __future__ import annotations

import importlib
from types import ModuleType

STRATEGY_NAMES = ("unfused", "flat", "fusemax", "flash_attention")


def strategy(name: str) -> ModuleType:
    """The strategy module ``name`` (with ``parameter_space`` and ``build``)."""
    if name not in STRATEGY_NAMES:
        raise KeyError(name)
    return importlib.import_module(f"mappings.{name}")
