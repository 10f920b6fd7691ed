"""Mappings as data: loop-tree YAML files (``*.yaml`` with a ``tree``) that the engine in
:mod:`einsim.cost` reads, and the GPU kernel specs (``flash-attention-*.yaml``) whose models
live in :mod:`einsim.kernels`.  This package holds no code; it exists so the files ship."""
