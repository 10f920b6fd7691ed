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
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from einsim.errors import SpecError

MAX_EXPANDED_NODES = 100_000
"""Most nodes a document may hold once its aliases are expanded (a billion-laughs guard)."""

_MERGE = "tag:yaml.org,2002:merge"


class _Bounded:
    """``yaml.safe_load`` semantics, plus: aliases may not expand past
    :data:`MAX_EXPANDED_NODES` nodes (nor refer to themselves), and duplicate keys are errors."""

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return self.construct_document(node)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: SafeConstructor reports it
                    continue
                if first is not key_node:
                    raise ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"found duplicate key {_brief(key)} (first on line "
                        f"{first.start_mark.line + 1}); each key may appear once",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: Node) -> None:
    """Count the nodes of the document with every alias expanded, without expanding it."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(c)] for c in children)
            sizes[key] = total
            if total > MAX_EXPANDED_NODES:
                raise ConstructorError(
                    None, None, f"aliases expand this document past {MAX_EXPANDED_NODES} nodes; "
                    "expected a document without alias bombs", node.start_mark)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise ConstructorError(None, None, "an alias refers to a node that contains it; "
                                   "expected a document without recursive aliases",
                                   node.start_mark)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _brief(key) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same semantics
SafeLoader = type("SafeLoader", (_Bounded, _BASE), {})
"""The one YAML loader: ``yaml.SafeLoader`` (libyaml when present) with the guards above."""


def safe_load(text: str):
    """``yaml.safe_load(text)`` with alias-expansion and duplicate-key guards (uncached)."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a SafeLoader: no objects built


@lru_cache(maxsize=256)
def _parse(text: str):
    return safe_load(text)


def load_yaml_text(text: str):
    """``yaml.safe_load(text)``, cached, guarded (see :class:`SafeLoader`); raises
    ``yaml.YAMLError`` like it."""
    if not isinstance(text, str):
        raise SpecError(f"YAML text: expected str, got {type(text).__name__}")
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
    if document is None:
        raise SpecError(f"{kind} {source}: empty document; expected a mapping of fields")
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


def file_stamp(name_or_path: str) -> tuple:
    """(modification time, size) of a spec given as a file, () for a preset name: part of a
    cache key, so an edited file is read again while presets stay cached."""
    import os

    try:
        status = os.stat(name_or_path)
    except (OSError, ValueError):
        return ()
    return (status.st_mtime_ns, status.st_size)


def canonical(value):
    """``value`` with every map key as text (YAML reads ``on:`` as True), for sorting and
    digests."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def with_fields(model, values, paths):
    """A copy of the pydantic ``model`` with ``values[name]`` at the dotted field path
    ``paths[name]``, validated by the model's own schema (finite, positive...); a bad value
    raises :class:`SpecError` naming the field."""
    from pydantic import ValidationError

    document = model.model_dump()
    for name, value in values.items():
        *parents, last = paths[name].split(".")
        node = document
        for part in parents:
            node = node[part]
        node[last] = value
    try:
        return type(model).model_validate(document)
    except ValidationError as error:
        raise SpecError(f"hardware {model.name}: {describe_validation_error(error)}") from None
