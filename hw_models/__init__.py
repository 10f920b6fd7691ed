"""Hardware models: spatial arrays, GPU streaming multiprocessors and offload devices.

Schemas live here as pydantic models and presets as YAML under ``presets/``.
"""
