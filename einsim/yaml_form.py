"""The YAML form of a cascade: the same IR from ``ranks:``, ``params:``, ``partitions:``,
``inputs:``, ``init:`` and ``einsums:`` keys.

.. code-block:: yaml

    name: fusemax
    ranks: {M: 4096, E: 64}
    partitions: {M: {into: [M1, M0], by: [M0]}}
    inputs: {Q: [E, P], K: [E, M], V: [F, M]}
    init: ["RM[0, p] = -inf"]
    einsums:
      - BQK[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0]

Statements inside ``init`` and ``einsums`` use the text grammar; errors name the YAML field.
"""

from __future__ import annotations

import yaml

from einsim import ir
from einsim.errors import CascadeError, SpecError
from einsim.parser import build_cascade, parse_statements

_KEYS = ("name", "ranks", "params", "partitions", "inputs", "init", "einsums")


def load_yaml(text: str, source: str = "") -> ir.Cascade:
    """Load a cascade from YAML text (``yaml.safe_load``; nothing is evaluated)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{source or 'YAML'}: not valid YAML{where}: {problem}") from None
    if not isinstance(document, dict):
        raise SpecError(f"{source or 'YAML'}: expected a mapping with keys {', '.join(_KEYS)}")
    unknown = sorted(set(document) - set(_KEYS), key=str)
    if unknown:
        raise SpecError(f"{source or 'YAML'}: unknown key {unknown[0]!r}; expected one of "
                        f"{', '.join(_KEYS)}")
    lines: list[str] = []
    fields: list[str] = []

    def add(text_line: str, field: str) -> None:
        lines.append(text_line)
        fields.append(field)

    for name, size in _mapping(document, "ranks").items():
        if size is not None and not isinstance(size, int):
            raise SpecError(f"ranks.{name}: expected an integer size or null, got {size!r}")
        add(f"rank {name}" + ("" if size is None else f" = {size}"), f"ranks.{name}")
    for name, value in _mapping(document, "params").items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SpecError(f"params.{name}: expected a number, got {value!r}")
        add(f"param {name} = {ir.Number(value)}", f"params.{name}")
    for name, spec in _mapping(document, "partitions").items():
        if not isinstance(spec, dict) or set(spec) != {"into", "by"}:
            raise SpecError(f"partitions.{name}: expected {{into: [parts], by: [sizes]}}")
        parts, by = _as_list(spec["into"]), _as_list(spec["by"])
        add(f"partition {name} -> {', '.join(map(str, parts))} by {', '.join(map(str, by))}",
            f"partitions.{name}")
    for name, ranks in _mapping(document, "inputs").items():
        add(f"input {name}[{', '.join(map(str, _as_list(ranks)))}]", f"inputs.{name}")
    for position, statement in enumerate(_sequence(document, "init")):
        add(f"init {statement}", f"init[{position}]")
    for position, statement in enumerate(_sequence(document, "einsums")):
        add(str(statement), f"einsums[{position}]")
    statements = []
    for number, (text_line, field) in enumerate(zip(lines, fields)):
        try:  # padded with newlines so each statement's line number finds its field again
            statements.extend(parse_statements("\n" * number + text_line))
        except CascadeError as error:
            raise type(error)(f"{field}: {error.message}", 0, error.column, source) from None
    try:
        return build_cascade(statements, name=str(document.get("name") or ""), source=source)
    except CascadeError as error:
        field = fields[error.line - 1] if 0 < error.line <= len(fields) else "cascade"
        raise type(error)(f"{field}: {error.message}", 0, 0, source) from None


def to_yaml(cascade: ir.Cascade) -> str:
    """The YAML form of a cascade; ``load_yaml(to_yaml(c)) == c``."""
    document: dict = {}
    if cascade.name:
        document["name"] = cascade.name
    if cascade.ranks:
        document["ranks"] = {r.name: r.size for r in cascade.ranks}
    if cascade.params:
        document["params"] = {p.name: p.value for p in cascade.params}
    if cascade.partitions:
        document["partitions"] = {p.rank: {"into": list(p.parts), "by": list(p.sizes)}
                                  for p in cascade.partitions}
    if cascade.inputs:
        document["inputs"] = {t.name: list(t.ranks) for t in cascade.inputs}
    if cascade.inits:
        document["init"] = [str(i)[len("init "):] for i in cascade.inits]
    document["einsums"] = [str(e) for e in cascade.einsums]
    return yaml.safe_dump(document, sort_keys=False, width=120)


def _mapping(document: dict, key: str) -> dict:
    value = document.get(key) or {}
    if not isinstance(value, dict):
        raise SpecError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def _sequence(document: dict, key: str) -> list:
    value = document.get(key) or []
    if not isinstance(value, list):
        raise SpecError(f"{key}: expected a list of statements, got {type(value).__name__}")
    return value


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]
