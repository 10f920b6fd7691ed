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

Each ``init`` and ``einsums`` entry is exactly one statement of the text grammar; declarations
are built from their fields, never pasted into cascade text.  Errors name the YAML field.
"""

from __future__ import annotations

import math
import numbers

import yaml

from einsim.language import ir
from einsim.language.affine import MAX_INDEX
from einsim.errors import ArgumentError, CascadeError, SpecError
from einsim.language.parser import NAME, build_cascade, parse_statements
from einsim.specfile import load_yaml_text

_KEYS = ("name", "ranks", "params", "partitions", "inputs", "init", "einsums")


def load_yaml(text: str, source: str = "") -> ir.Cascade:
    """Load a cascade from YAML text (guarded ``yaml.safe_load``; nothing is evaluated).

    The IR is built from the fields: names are checked as names, sizes as integers, and each
    ``init`` and ``einsums`` entry is parsed as exactly one statement, so no field can add
    another statement (``"R[0] = 0; partition M -> M1, M0 by 2"`` is an error).
    """
    where = source or "YAML"
    document = _document(text, where)
    statements: list = []
    fields: list[str] = []

    def line(field: str) -> int:  # each statement's line number finds its field again
        fields.append(field)
        return len(fields)

    for name, size in _mapping(document, "ranks").items():
        field = _name(name, "ranks")
        size = None if size is None else _integer(size, field, "a rank size or null")
        statements.append(ir.RankDecl(name, size, line=line(field), column=1))
    for name, value in _mapping(document, "params").items():
        field = _name(name, "params")
        statements.append(ir.ParamDecl(name, _number(value, field), line=line(field), column=1))
    for name, spec in _mapping(document, "partitions").items():
        field = _name(name, "partitions")
        if not isinstance(spec, dict) or set(spec) != {"into", "by"}:
            raise SpecError(f"{field}: expected {{into: [parts], by: [sizes]}}")
        parts = _names(spec["into"], f"{field}.into")
        by = tuple(_names(b, f"{field}.by")[0] if isinstance(b, str)
                   else _integer(b, f"{field}.by", "a tile size (positive integer or name)", 1)
                   for b in _as_list(spec["by"]))
        if len(parts) < 2 or len(by) != len(parts) - 1:
            raise SpecError(f"{field}: expected two or more parts in 'into' and one size in "
                            f"'by' for each part but the first; got {len(parts)} and {len(by)}")
        statements.append(ir.Partition(name, parts, by, line=line(field), column=1))
    for name, ranks in _mapping(document, "inputs").items():
        field = _name(name, "inputs")
        statements.append(ir.TensorDecl(name, _names(ranks, field), line=line(field), column=1))
    for kind, key, start in (("init", "init", "init_field"), ("einsum", "einsums",
                                                               "einsum_field")):
        for position, entry in enumerate(_sequence(document, key)):
            field = f"{key}[{position}]"
            if not isinstance(entry, str):
                raise SpecError(f"{field}: expected one {kind} statement (a string), got "
                                f"{type(entry).__name__}")
            try:
                statement, = parse_statements(entry.strip(), start=start)
            except CascadeError as error:
                at = f", column {error.column}" if error.column else ""
                raise type(error)(f"{field}{at}: {error.message}", 0, 0, source) from None
            statements.append(_relocate(statement, line(field)))
    if not any(isinstance(s, ir.Einsum) for s in statements):
        raise SpecError(f"{where}: einsums: expected at least one Einsum")
    name = document.get("name")
    if name is not None and not isinstance(name, (str, int, float)):
        raise SpecError(f"name: expected a string, got {type(name).__name__}")
    try:
        return build_cascade(statements, name=str(name or ""), source=source)
    except CascadeError as error:
        field = fields[error.line - 1] if 0 < error.line <= len(fields) else "cascade"
        raise type(error)(f"{field}: {error.message}", 0, 0, source) from None


def _document(text, where: str) -> dict:
    """The YAML document as a dict with known keys, or a one-line :class:`SpecError`."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as error:
            raise SpecError(f"{where}: not UTF-8 text (byte {error.start}); expected a YAML "
                            "cascade") from None
    if not isinstance(text, str):
        raise ArgumentError(f"text: expected YAML text (str), got {type(text).__name__}")
    try:
        document = load_yaml_text(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SpecError(f"{where}: not valid YAML{at}: {problem}") from None
    if document is None:
        raise SpecError(f"{where}: empty document; expected a mapping with keys "
                        f"{', '.join(_KEYS)}")
    if not isinstance(document, dict):
        raise SpecError(f"{where}: expected a mapping with keys {', '.join(_KEYS)}")
    unknown = sorted(set(document) - set(_KEYS), key=str)
    if unknown:
        raise SpecError(f"{where}: unknown key {_brief(unknown[0])}; expected one of "
                        f"{', '.join(_KEYS)}")
    return document


def _name(name, where: str, what: str = "key") -> str:
    """The field path ``where.name``; refuses anything but one upper-case name."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SpecError(f"{where}: {what} {_brief(name)} is not a name; expected an upper-case "
                        "name such as M or M0 (letters, digits, _)")
    return f"{where}.{name}"


def _names(value, where: str) -> tuple[str, ...]:
    """A name or list of names (rank names of an input, parts of a partition), each checked."""
    names = tuple(_as_list(value))
    for name in names:
        _name(name, where, "entry")
    return names


def _integer(value, field: str, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_INDEX:
        raise SpecError(f"{field}: expected {what}, got {_brief(value)}")
    return value


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpecError(f"{field}: expected a number, got {_brief(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise SpecError(f"{field}: {_brief(value)} is too large; expected a number below "
                        "1e308 (or .inf)") from None
    if math.isnan(number):
        raise SpecError(f"{field}: expected a number, got nan")
    return value if isinstance(value, int) else number


def _relocate(statement, line: int):
    """Give a statement parsed alone (and every node in it) its field's line number."""
    nodes: list = [statement]
    if isinstance(statement, ir.Einsum):
        nodes += [statement.output, *ir.walk(statement.expression)]
        if statement.condition is not None:
            nodes += list(ir.condition_parts(statement.condition))
    else:
        nodes += [statement.target, *ir.walk(statement.value)]
    for node in nodes:
        if hasattr(node, "line"):
            object.__setattr__(node, "line", line)  # positions are excluded from equality
    return statement


def _brief(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
    value = document.get(key)
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise SpecError(f"{key}: expected a mapping, got {type(value).__name__}")
    return value


def _sequence(document: dict, key: str) -> list:
    value = document.get(key)
    value = [] if value is None else value
    if not isinstance(value, list):
        raise SpecError(f"{key}: expected a list of statements, got {type(value).__name__}")
    return value


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]
