"""Reading YAML specifications (presets by name, or files): safely, once, with clear errors.

Specs and presets are immutable data, so parsed documents are cached by their text; callers get
a fresh deep copy they may modify (e.g. to apply overrides).  Nothing is ever evaluated.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from einsim.errors import SpecError

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same semantics


@lru_cache(maxsize=256)
def _parse(text: str):
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader: no object construction


def load_yaml_text(text: str):
    """``yaml.safe_load(text)``, cached; raises ``yaml.YAMLError`` like it."""
    return copy.deepcopy(_parse(text))


def preset_names(folder: Traversable) -> list[str]:
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_spec(name_or_path: str, folder: Traversable, kind: str,
              names: list[str] | None = None) -> tuple[dict, str]:
    """The YAML document of a preset in ``folder`` (case-insensitive name) or of a file.

    Returns ``(document, source)``; ``source`` names the file for error messages.  Raises
    :class:`SpecError` for an unknown preset, a missing file, invalid YAML (with its line and
    column) or a document that is not a mapping.
    """
    key = str(name_or_path).strip()
    names = preset_names(folder) if names is None else names
    if key.lower() in names:
        source = f"{key.lower()}.yaml"
        text = folder.joinpath(source).read_text(encoding="utf-8")
    else:
        path = Path(key)
        if not path.is_file():
            looks_like_path = path.suffix in (".yaml", ".yml") or len(path.parts) > 1
            what = "no such file" if looks_like_path else "unknown preset"
            raise SpecError(f"{kind} {key!r}: {what}; expected a YAML file or one of "
                            f"{', '.join(names)}")
        source = path.name
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise SpecError(f"{kind} {source}: cannot read file: {error}") from None
    try:
        document = load_yaml_text(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{kind} {source}: not valid YAML{where}: {problem}") from None
    if not isinstance(document, dict):
        raise SpecError(f"{kind} {source}: expected a mapping of fields, got "
                        f"{type(document).__name__}")
    return document, source


def describe_validation_error(error, fields=()) -> str:
    """A pydantic ValidationError as one line: the first problem with its field path (unknown
    fields first: they are usually typos that explain the rest), plus a count of the others."""
    problems = sorted(error.errors(include_url=False),
                      key=lambda p: p["type"] != "extra_forbidden")
    first = problems[0]
    where = ".".join(str(part) if str(part).isprintable() else repr(str(part))
                     for part in first["loc"])  # a key with a newline stays on one line
    if first["type"] == "extra_forbidden":
        text = f"unknown field {where!r}" + (f"; expected one of {', '.join(fields)}"
                                             if fields else "")
    elif first["type"] == "missing":
        text = f"{where}: missing required field"
    else:
        text = f"{where}: {first['msg']}"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more error{'s' if len(problems) > 2 else ''})"
    return text
