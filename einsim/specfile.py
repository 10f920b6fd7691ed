"""Reading YAML specification files: safely (never evaluating), and once.

Specs and presets are immutable data, so parsed documents are cached by their text; callers get
a fresh deep copy they may modify (e.g. to apply overrides).
"""

from __future__ import annotations

import copy
from functools import lru_cache

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same semantics


@lru_cache(maxsize=256)
def _parse(text: str):
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader: no object construction


def load_yaml_text(text: str):
    """``yaml.safe_load(text)``, cached; raises ``yaml.YAMLError`` like it."""
    return copy.deepcopy(_parse(text))
