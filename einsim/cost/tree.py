"""Loop-tree mappings (DESIGN.md §5): the schema of a mapping file and its structural checks.

A mapping is data: a tree, outer to inner, of

* ``{loop: v, tile: T}`` — a temporal loop over rank variable ``v``, handing chunks of ``T``
  (default 1) to the subtree: trips = ceil(extent / T);
* ``{spatial: {axis: v, ...}}`` — ``v`` spread over a unit's PE axis (``rows``, ``cols``,
  ``pes``; SMs; devices): each position gets ceil(extent / axis size) of it; with
  ``tile: T`` (one axis only), chunks of ``T`` go to the positions in waves (a GPU's CTAs;
  ``persistent: true``: one CTA per slot takes an equal share of the chunks, stream-K);
* ``{keep: {level: [tensors]}}`` — from here down, a tile of each tensor lives at that level
  (``QK/SN/A``: the three share one buffer, each overwriting the previous in place;
  ``buffers: 2`` holds two tiles, the next loading while one is used);
* ``{sequence: [chain, ...]}`` / ``{pipeline: [chain, ...]}`` — children one after another,
  or overlapped on different units;
* ``{run: [Einsums], on: unit}`` — the leaf binding Einsums to a unit (``on: [a, b]``: the
  points split over both units in proportion to their rates, as FlashAttention-4 emulates
  part of the exponentials on the FMA units).

A chain is a YAML list of nodes; only its last node may be a ``sequence``, ``pipeline`` or
``run``.  Every node carries its path (``tree[3].sequence[0][2]``) for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Union

import sympy
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from einsim.cost.expressions import parse_size
from einsim.errors import EinsimError, SpecError
from einsim.specfile import file_stamp, describe_validation_error, preset_names, read_spec


@dataclass(frozen=True)
class Loop:
    variable: str
    tile: sympy.Expr
    path: str
    start: str | None = None  # "mask": from the first key the CTA's mask attends (GPUs)


@dataclass(frozen=True)
class Spatial:
    axes: tuple[tuple[str, str], ...]  # (axis, variable)
    path: str
    tile: sympy.Expr | None = None  # chunks of the variable per position (a GPU's CTAs)
    persistent: bool = False  # a GPU grid of one CTA per slot sharing the chunks (stream-K)


@dataclass(frozen=True)
class Keep:
    level: str
    tensors: tuple[str, ...]
    path: str
    groups: tuple[tuple[str, ...], ...] = ()  # tensors sharing one buffer (``QK/SN/A``)
    buffers: int = 1  # copies of each tile held at once (2: the next loads while one is used)


@dataclass(frozen=True)
class Branch:
    kind: str  # "sequence" or "pipeline"
    children: tuple["Chain", ...]
    path: str


@dataclass(frozen=True)
class Run:
    einsums: tuple[str, ...]
    unit: str
    path: str


Node = Union[Loop, Spatial, Keep, Branch, Run]
Chain = tuple[Node, ...]


class Domain(BaseModel):
    """Values a free parameter may take; exactly one field is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    divisors_of: str | int | None = None
    powers_of_two_up_to: str | int | None = None
    range: tuple[int, int] | None = None
    values: tuple[str | int, ...] | None = None


class Parameter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default: str | int
    description: str = ""
    domain: Domain | None = None


class MappingTree(BaseModel):
    """A mapping file: which cascade and hardware, free parameters, and the tree."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    description: str = ""
    cascade: str
    hardware: str
    parameters: dict[str, Parameter] = {}
    tree: tuple = Field(description="the loop tree (a chain: a list of nodes)")

    @field_validator("tree", mode="before")
    @classmethod
    def _build(cls, value):
        return parse_chain(value, "tree")

    @property
    def root(self) -> Chain:
        return self.tree

    @property
    def structural(self) -> tuple[str, ...]:
        """Parameters that name a level (``keep: {$row_buffer: [...]}``): each choice is its
        own tree, compiled separately."""
        used = {node.level[1:] for node in nodes(self.root)
                if isinstance(node, Keep) and node.level.startswith("$")}
        return tuple(name for name in self.parameters if name in used)

    def parameter_defaults(self) -> dict[str, sympy.Expr]:
        return {name: parse_size(p.default, f"parameters.{name}.default")
                for name, p in self.parameters.items() if name not in self.structural}

    def choices(self, name: str) -> list[str]:
        parameter = self.parameters[name]
        values = list(parameter.domain.values) if parameter.domain and parameter.domain.values \
            else [parameter.default]
        return [str(v) for v in values]

    def concrete(self, choices: dict[str, str]) -> "MappingTree":
        """The tree with each ``$parameter`` level replaced by its choice."""
        for name, value in choices.items():
            if name not in self.structural:
                raise SpecError(f"mapping {self.name}: {name} is not a level parameter")
            if str(value) not in self.choices(name):
                raise SpecError(f"mapping {self.name}: parameter {name} = {value!r}; expected "
                                f"one of {', '.join(self.choices(name))}")
        missing = [n for n in self.structural if n not in choices]
        if missing:
            raise SpecError(f"mapping {self.name}: no choice for level parameter {missing[0]}")

        def rebuild(chain: Chain) -> Chain:
            out = []
            for node in chain:
                if isinstance(node, Keep) and node.level.startswith("$"):
                    node = replace(node, level=str(choices[node.level[1:]]))
                elif isinstance(node, Branch):
                    node = replace(node, children=tuple(rebuild(c) for c in node.children))
                out.append(node)
            return tuple(out)

        kept = {n: p for n, p in self.parameters.items() if n not in self.structural}
        return self.model_copy(update={"tree": rebuild(self.root), "parameters": kept})


_KINDS = ("loop", "spatial", "keep", "sequence", "pipeline", "run")


def parse_chain(value, path: str) -> Chain:
    """A YAML list of nodes → a chain; errors name the node's path."""
    if not isinstance(value, list) or not value:
        raise SpecError(f"{path}: expected a non-empty list of nodes "
                        f"({', '.join(_KINDS)}), got {type(value).__name__}")
    nodes: list[Node] = []
    for position, item in enumerate(value):
        here = f"{path}[{position}]"
        node = _parse_node(item, here)
        if isinstance(node, (Branch, Run)) and position != len(value) - 1:
            raise SpecError(f"{here}: a {_kind(node)} must be the last node of its list")
        nodes.append(node)
    if not isinstance(nodes[-1], (Branch, Run)):
        raise SpecError(f"{path}: the last node must be a run, sequence or pipeline, "
                        f"got {_kind(nodes[-1])}")
    return tuple(nodes)


def _kind(node: Node) -> str:
    return node.kind if isinstance(node, Branch) else type(node).__name__.lower()


def _parse_node(item, path: str) -> Node:
    if not isinstance(item, dict):
        raise SpecError(f"{path}: expected a node such as {{loop: m1}}, got {item!r}")
    if True in item:  # YAML 1.1 reads the key `on` as true
        item = {("on" if k is True else k): v for k, v in item.items()}
    kinds = [k for k in _KINDS if k in item]
    if len(kinds) != 1:
        raise SpecError(f"{path}: expected exactly one of {', '.join(_KINDS)}; "
                        f"got keys {', '.join(map(_shown, item)) or 'none'}")
    kind = kinds[0]
    allowed = {"loop": {"loop", "tile", "start"}, "spatial": {"spatial", "tile", "persistent"},
               "keep": {"keep", "buffers"},
               "run": {"run", "on", "unit"}}.get(kind, {kind})
    extra = set(item) - allowed
    if extra:
        raise SpecError(f"{path}: unexpected key(s) {', '.join(map(_shown, sorted(extra, key=str)))}"
                        f" in a {kind} node; allowed: {', '.join(sorted(allowed))}")
    body = item[kind]
    if kind == "loop":
        _check_variable(body, f"{path}.loop")
        start = item.get("start")
        if start not in (None, "mask"):
            raise SpecError(f"{path}.start: expected mask (the loop starts at the first key "
                            f"the CTA's mask attends: dynamic KV tiling), got {_shown(start)}")
        return Loop(body, parse_size(item.get("tile", 1), f"{path}.tile"), path, start)
    if kind == "spatial":
        if not isinstance(body, dict) or not body:
            raise SpecError(f"{path}.spatial: expected a map of axis to variable, "
                            f"e.g. {{rows: m0, cols: p}}")
        for axis, variable in body.items():
            _check_variable(variable, f"{path}.spatial.{_shown(axis)}")
        tile = None
        if "tile" in item:
            if len(body) != 1:
                raise SpecError(f"{path}.tile: a tiled spatial node spreads one variable; "
                                f"got {len(body)} axes")
            tile = parse_size(item["tile"], f"{path}.tile")
        persistent = item.get("persistent", False)
        if not isinstance(persistent, bool) or (persistent and tile is None):
            raise SpecError(f"{path}.persistent: expected true or false, on a tiled spatial "
                            "node (persistent CTAs share its chunks)")
        return Spatial(tuple((str(a), v) for a, v in body.items()), path, tile, persistent)
    if kind == "keep":
        if not isinstance(body, dict) or not body:
            raise SpecError(f"{path}.keep: expected a map of level to tensors, "
                            f"e.g. {{global_buffer: [Q, K]}}")
        if len(body) != 1:
            raise SpecError(f"{path}.keep: one level per keep node (got {', '.join(map(_shown, body))}); "
                            "write one keep node per level")
        level, entries = next(iter(body.items()))
        if not isinstance(entries, list) or not entries or \
                not all(isinstance(t, str) for t in entries):
            raise SpecError(f"{path}.keep.{_shown(level)}: expected a list of tensor names (A/B: A and B "
                            "share one buffer, B overwriting A in place)")
        groups = tuple(tuple(name.strip() for name in entry.split("/")) for entry in entries)
        tensors = tuple(name for group in groups for name in group)
        if len(set(tensors)) != len(tensors):
            raise SpecError(f"{path}.keep.{_shown(level)}: a tensor is listed twice")
        buffers = item.get("buffers", 1)
        if isinstance(buffers, bool) or not isinstance(buffers, int) or not 1 <= buffers <= 8:
            raise SpecError(f"{path}.buffers: expected a whole number from 1 to 8 (tiles held "
                            f"at once), got {buffers!r}")
        return Keep(str(level), tensors, path, groups, buffers)
    if kind in ("sequence", "pipeline"):
        if not isinstance(body, list) or len(body) < 1:
            raise SpecError(f"{path}.{kind}: expected a list of branches (each a list of nodes)")
        return Branch(kind, tuple(parse_chain(child, f"{path}.{kind}[{k}]")
                                  for k, child in enumerate(body)), path)
    einsums = body if isinstance(body, list) else [body]
    if not einsums or not all(isinstance(e, str) for e in einsums):
        raise SpecError(f"{path}.run: expected an Einsum name or a list of them")
    unit = item.get("on", item.get("unit"))
    if isinstance(unit, list) and unit and all(isinstance(u, str) and u for u in unit) \
            and len(set(unit)) == len(unit):
        unit = "+".join(unit)  # the points split over several units
    if not isinstance(unit, str) or ("on" in item and "unit" in item):
        raise SpecError(f"{path}: a run node needs 'on: <unit>' (or 'unit: <unit>', or a list "
                        "of distinct units sharing the points) naming the unit it runs on")
    return Run(tuple(einsums), unit, path)


def _shown(key) -> str:
    """A key of the user's file as it may be printed on one line."""
    text = str(key)
    return text if text.isprintable() and text.strip() == text and text else repr(key)


def _check_variable(value, path: str) -> None:
    if not isinstance(value, str) or not value.isidentifier() or not value[0].islower():
        raise SpecError(f"{path}: expected a rank variable (lower case, e.g. m1), got {value!r}")


# ------------------------------------------------------------------------------- walking the tree


@dataclass(frozen=True)
class LeafPath:
    """One Einsum's leaf and everything above it, outer to inner."""

    einsum: str
    unit: str
    nodes: tuple[Node, ...]  # ancestors (Loop, Spatial, Keep, Branch) then the Run
    branch_positions: tuple[tuple[str, int], ...]  # (branch path, child index) outer to inner


def leaves(chain: Chain, above: tuple = (), positions: tuple = ()) -> list[LeafPath]:
    """Every (Einsum, path) of the tree, in tree order."""
    found: list[LeafPath] = []
    for node in chain:
        if isinstance(node, Run):
            found += [LeafPath(e, node.unit, above + (node,), positions) for e in node.einsums]
        elif isinstance(node, Branch):
            for k, child in enumerate(node.children):
                found += leaves(child, above + (node,), positions + ((node.path, k),))
        else:
            above = above + (node,)
    return found


def nodes(chain: Chain):
    """Every node of the tree, parents before children."""
    for node in chain:
        yield node
        if isinstance(node, Branch):
            for child in node.children:
                yield from nodes(child)


def mapping_names() -> list[str]:
    return preset_names(resources.files("mappings"))


def load_mapping_tree(name_or_path: str) -> MappingTree:
    """A mapping tree by name (``fusemax``) or from a YAML file."""
    return _load_mapping_tree(name_or_path, file_stamp(name_or_path))


@lru_cache(maxsize=128)
def _load_mapping_tree(name_or_path: str, stamp: tuple):
    document, source = read_spec(name_or_path, resources.files("mappings"), "mapping")
    return mapping_from_document(document, source)


def mapping_from_document(document, source: str = "<mapping>") -> MappingTree:
    if not isinstance(document, dict):
        raise SpecError(f"mapping {source}: expected a YAML map with name, cascade, hardware, "
                        "tree")
    try:
        return MappingTree.model_validate(document)
    except SpecError as error:
        raise SpecError(f"mapping {source}: {error}") from None
    except ValidationError as error:
        raise SpecError(f"mapping {source}: {describe_validation_error(error)}") from None


def is_tree_file(name_or_path: str) -> bool:
    """Whether a mapping name or file is a loop tree (a YAML map with a ``tree`` key)."""
    try:
        document, _ = read_spec(name_or_path, resources.files("mappings"), "mapping")
    except EinsimError:
        return False
    return isinstance(document, dict) and "tree" in document
