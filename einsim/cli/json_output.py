"""The one JSON writer every ``--json`` output goes through: strict JSON, never ``NaN``.

Non-finite floats (``inf``, ``-inf``, ``nan``, also inside NumPy arrays and scalars) are
written as ``null``; NumPy scalars and arrays become numbers and lists; anything else JSON has
no type for (paths, enums, sympy expressions) is written as its ``str``.  ``orjson`` is used
when it is installed (it is much faster for large sweeps); the standard library otherwise, with
the same result.

>>> dumps({"latency": float("inf"), "rows": [1, 2.5]}, indent=None)
'{"latency":null,"rows":[1,2.5]}'
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, TextIO

try:  # optional: not a dependency, only a faster encoder
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


def clean(value: Any) -> Any:
    """``value`` with non-finite floats as None and NumPy types as Python ones (recursive)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {_key(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, (numpy.generic, numpy.ndarray)):
        return clean(value.tolist())
    if hasattr(value, "model_dump"):  # pydantic models
        return clean(value.model_dump())
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, float) and not math.isfinite(key):
        return str(key)
    return json.dumps(clean(key)) if not isinstance(key, (int, float, bool)) else \
        json.dumps(key)


def _default(value: Any) -> Any:
    cleaned = clean(value)
    if cleaned is value:  # orjson only calls this for types it cannot write
        return str(value)
    return cleaned


def dumps(data: Any, indent: int | None = 2) -> str:
    """``data`` as strict JSON text (``indent`` 2 or None for compact)."""
    if _orjson is not None and indent in (2, None):
        option = _orjson.OPT_SERIALIZE_NUMPY | _orjson.OPT_NON_STR_KEYS
        if indent == 2:
            option |= _orjson.OPT_INDENT_2
        try:
            return _orjson.dumps(data, default=_default, option=option).decode()
        except (TypeError, _orjson.JSONEncodeError):
            pass  # e.g. integers beyond 64 bits: the standard library writes them
    separators = (",", ":") if indent is None else None
    return json.dumps(clean(data), indent=indent, allow_nan=False, separators=separators)


def write(data: Any, stream: TextIO | None = None, indent: int | None = 2) -> None:
    """Write ``data`` as JSON plus a newline to ``stream`` (stdout by default)."""
    (stream or sys.stdout).write(dumps(data, indent) + "\n")
