"""Mapping strategies: what the YAML specs beside this module cannot say as data.

A spec (``*.yaml``) binds Einsums to units and orders pipeline stages; a strategy turns the
spec, a hardware model, a workload and free-parameter values into a concrete
:class:`einsim.mapping.Mapping` (sizes, residency of every tensor) and enumerates the space of
its free parameters for the mapper.
"""

from mappings import flat, fusemax, unfused

STRATEGIES = {"unfused": unfused, "flat": flat, "fusemax": fusemax}
