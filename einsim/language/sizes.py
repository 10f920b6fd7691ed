"""Resolve every rank size and parameter a cascade needs, and the extent of every tensor.

Sizes come from, in order of authority: the ``sizes`` argument and the input shapes (which
must agree), then ``rank``/``param`` declarations in the text (defaults), then partitions
(``M1 = ceil(M / M0)``).  Two sources disagreeing is a :class:`RankSizeConflictError`.
"""

from __future__ import annotations

import math
import numbers
from typing import Mapping

from einsim.language import ir
from einsim.language.affine import Affine, index_size
from einsim.errors import (ArgumentError, IndexRangeError, InputError, MissingSizeError,
                           RankSizeConflictError, SizeError)
from einsim.language.functions import PREDICATES, check_predicate_args


def axis_rank(index: Affine, cascade: ir.Cascade) -> str | None:
    """The rank an index walks: ``m`` → M, ``m1*M0 + m0`` → M; None for other affine forms."""
    variable = index.plain_variable()
    if variable is not None:
        return ir.rank_of(variable)
    for partition in cascade.partitions:
        if index == partition.reconstruction():
            return partition.rank
    return None


def input_axis_ranks(cascade: ir.Cascade, tensor: str) -> tuple[str | None, ...]:
    """Rank of each axis of an input, from its declaration or the first access that names it."""
    for decl in cascade.inputs:
        if decl.name == tensor:
            return decl.ranks
    ranks: list[str | None] | None = None
    for einsum in cascade.einsums:
        for access in einsum.inputs:
            if access.tensor != tensor:
                continue
            found = [axis_rank(i, cascade) for i in access.indices]
            if ranks is None:
                ranks = found
            else:
                ranks = [r if r is not None else f for r, f in zip(ranks, found)]
    return tuple(ranks or ())


def resolve_sizes(cascade: ir.Cascade, shapes: Mapping[str, tuple[int, ...]],
                  sizes: Mapping[str, float] | None = None) -> dict[str, float]:
    """All sizes (ranks, partition parts, parameters) as a dict; raises on conflicts and gaps."""
    known: dict[str, float] = {}
    origin: dict[str, str] = {}
    integral = index_names(cascade)

    def give(name: str, value: float, source: str, line: int = 0, column: int = 0) -> None:
        if name in integral:
            value = _integer(name, value, source)
        if name in known and known[name] != value:
            raise RankSizeConflictError(
                f"rank {name} has size {_fmt(value)} from {source} but {_fmt(known[name])} from "
                f"{origin[name]}", line, column)
        known[name] = value
        origin[name] = source

    for name, value in _given(sizes).items():
        give(name, value, "sizes")
    for tensor, shape in shapes.items():
        ranks = input_axis_ranks(cascade, tensor)
        if len(shape) != len(ranks):
            raise InputError(f"input {tensor} has {len(shape)} axes but the cascade indexes it "
                             f"with {len(ranks)} ({', '.join(r or '?' for r in ranks)})")
        for axis, (rank, extent) in enumerate(zip(ranks, shape)):
            if rank is not None:
                give(rank, extent, f"input {tensor} axis {axis}")
    for decl in cascade.ranks:
        if decl.size is not None and decl.name not in known:
            give(decl.name, decl.size, f"line {decl.line}")
    for param in cascade.params:
        if param.name not in known:
            give(param.name, param.value, f"line {param.line}")
    _resolve_partitions(cascade, known, give)
    _require(cascade, known)
    _check_predicates(cascade, known)
    return known


def _given(sizes) -> dict[str, float]:
    """The ``sizes`` argument checked: str names, real numbers, no NaN."""
    if sizes is None:
        return {}
    if not isinstance(sizes, Mapping):
        raise ArgumentError(f"sizes: expected a dict of name to number, got "
                            f"{type(sizes).__name__}")
    for name, value in sizes.items():
        if not isinstance(name, str):
            raise ArgumentError(f"sizes: expected str names, got {type(name).__name__} {name!r}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ArgumentError(f"sizes[{name!r}]: expected a number, got "
                                f"{type(value).__name__} {value!r:.40}")
        try:
            number = float(value)
        except OverflowError:
            raise SizeError(f"sizes[{name!r}] is too large (about 2**"
                            f"{abs(int(value)).bit_length() - 1}); expected a number below "
                            "1.8e308") from None
        if math.isnan(number):
            raise SizeError(f"sizes[{name!r}] is nan; expected a number")
    return dict(sizes)


def index_names(cascade: ir.Cascade) -> set[str]:
    """Sizes that reach indices or loop bounds (ranks, tile sizes, sizes used in indices or
    filters): these must be finite integers."""
    names = {ir.rank_of(v) for e in cascade.einsums for v in e.variables}
    for partition in cascade.partitions:
        names |= {partition.rank, *partition.parts}
        names |= {s for s in partition.sizes if isinstance(s, str)}
    accesses = [e.output for e in cascade.einsums] + [i.target for i in cascade.inits]
    accesses += [a for e in cascade.einsums for a in e.inputs]
    accesses += [a for i in cascade.inits for a in ir.accesses(i.value)]
    for access in accesses:
        names.update(s for index in access.indices for s in index.size_symbols)
    for einsum in cascade.einsums:
        if einsum.condition is not None:
            for part in ir.condition_parts(einsum.condition):
                indices = (part.left, part.right) if isinstance(part, ir.IndexComparison) \
                    else part.args
                names.update(s for index in indices for s in index.size_symbols)
    return names


def _integer(name: str, value, source: str) -> int:
    """A size used as an index as an int: fractions, inf and NaN are refused, never truncated."""
    try:
        number = index_size(name, value)
    except SizeError as error:
        raise SizeError(f"{error} (from {source})") from None
    if number < 0:
        raise SizeError(f"size {name} = {number} (from {source}); expected a non-negative "
                        "integer")
    return number


def _check_predicates(cascade: ir.Cascade, known: Mapping[str, float]) -> None:
    """Scalar predicate arguments (a neighborhood's window, stride, dilation) in range."""
    for einsum in cascade.einsums:
        if einsum.condition is None:
            continue
        for part in ir.condition_parts(einsum.condition):
            if not isinstance(part, ir.Predicate) or part.name not in PREDICATES:
                continue
            scalars = PREDICATES[part.name].variable_args
            args = [0] * scalars + [a.offset(known) for a in part.args[scalars:]]
            try:
                check_predicate_args(part.name, args)
            except SizeError as error:
                raise IndexRangeError(f"in {part}, {error}", part.line, part.column) from None


def _resolve_partitions(cascade, known, give) -> None:
    for _ in range(len(cascade.partitions) + 1):
        for partition in cascade.partitions:
            where = f"partition on line {partition.line}"
            inner = partition.parts[1:]
            for part, size in zip(inner, partition.sizes):
                if isinstance(size, int):
                    give(part, size, where, partition.line, partition.column)
                elif size in known and size != part:
                    give(part, known[size], where, partition.line, partition.column)
            for part in inner:
                if part in known and known[part] < 1:
                    raise RankSizeConflictError(
                        f"tile size {part} = {_fmt(known[part])} in '{partition}': expected a "
                        "positive integer", partition.line, partition.column)
            if partition.rank in known and all(p in known for p in inner):
                tile = math.prod(int(known[p]) for p in inner)
                give(partition.parts[0], -(-int(known[partition.rank]) // tile), where,
                     partition.line, partition.column)


def _require(cascade: ir.Cascade, known: Mapping[str, float]) -> None:
    def need(name: str, what: str, node) -> None:
        if name not in known:
            raise MissingSizeError(
                f"size of {name} ({what}, line {getattr(node, 'line', 0)}) is not given; pass it "
                f"in sizes, e.g. sizes={{'{name}': ...}}, or declare 'rank {name} = ...'")

    for partition in cascade.partitions:  # name the tile size, not the derived tile count
        need(partition.rank, f"partitioned into {', '.join(partition.parts)}", partition)
        for size in partition.sizes:
            if isinstance(size, str):
                need(size, f"tile size in '{partition}'", partition)

    for statement in (*cascade.einsums, *cascade.inits):
        target = statement.output if isinstance(statement, ir.Einsum) else statement.target
        for variable in target.variables:
            need(ir.rank_of(variable), f"rank of variable {variable}", statement)
        for index in target.indices:
            for symbol in index.size_symbols:
                need(symbol, f"used in {target}", statement)
    def expression(value, statement, access_site=None):
        """Sizes an expression's access indices and size-valued symbols use."""
        for node in ir.walk(value):
            if isinstance(node, ir.Access):
                for index in node.indices:
                    for symbol in index.size_symbols:
                        need(symbol, f"used in {node}", access_site or node)
            elif isinstance(node, ir.Symbol) and node.name[0].isupper():
                need(node.name, "used as a value", statement)

    for init in cascade.inits:
        expression(init.value, init, init)
    for einsum in cascade.einsums:
        for variable in einsum.variables:
            need(ir.rank_of(variable), f"rank of variable {variable}", einsum)
        expression(einsum.expression, einsum)
        if einsum.condition is not None:
            for part in ir.condition_parts(einsum.condition):
                indices = (part.left, part.right) if isinstance(part, ir.IndexComparison) \
                    else part.args
                for index in indices:
                    for symbol in index.size_symbols:
                        need(symbol, f"used in the filter of {einsum.name}", einsum)


def index_bounds(index: Affine, sizes: Mapping[str, float]) -> tuple[int, int]:
    """Smallest and largest value an index takes over its variables' ranges."""
    low = high = index.offset(sizes)
    for term in index.terms:
        if term.variable is None:
            continue
        span = term.coefficient * math.prod(int(sizes[s]) for s in term.sizes)
        last = int(sizes[ir.rank_of(term.variable)]) - 1
        low += min(0, span * last)
        high += max(0, span * last)
    return low, high


def tensor_extents(cascade: ir.Cascade, sizes: Mapping[str, float],
                   shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Logical extent of every tensor: inputs from their arrays, others from all their writes."""
    extents: dict[str, list[int]] = {name: list(shape) for name, shape in shapes.items()}
    for einsum in cascade.einsums:
        target = einsum.output
        current = extents.setdefault(target.tensor, [0] * len(target.indices))
        for axis, index in enumerate(target.indices):
            rank = axis_rank(index, cascade)
            low, high = index_bounds(index, sizes)
            if low < 0:
                raise IndexRangeError(
                    f"{target} writes index {low} on axis {axis}; indices start at 0",
                    einsum.line, einsum.column)
            if rank is not None and len(index.variables) > 1:
                high = int(sizes[rank]) - 1  # a partition reconstruction: padding is dropped
            current[axis] = max(current[axis], high + 1)
    for init in cascade.inits:  # an init sets points of its tensor; it never extends it
        extent = extents.setdefault(init.target.tensor, [0] * len(init.target.indices))
        for axis, index in enumerate(init.target.indices):
            low, high = index_bounds(index, sizes)
            if low < 0 or high >= extent[axis]:
                raise IndexRangeError(
                    f"init {init.target} sets index {low if low < 0 else high} on axis {axis}, "
                    f"outside {init.target.tensor}'s range 0 to {extent[axis] - 1}",
                    init.line, init.column)
    return {name: tuple(extent) for name, extent in extents.items()}


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def index_size_names(cascade: ir.Cascade) -> set[str]:
    """Sizes that appear in index expressions: accesses, ``where`` masks, init targets."""
    names: set[str] = set()
    for einsum in cascade.einsums:
        for access in (einsum.output, *einsum.inputs):
            for index in access.indices:
                names |= set(index.size_symbols)
        if einsum.condition is not None:
            for part in ir.condition_parts(einsum.condition):
                indices = (part.left, part.right) if isinstance(part, ir.IndexComparison) \
                    else part.args
                for index in indices:
                    names |= set(index.size_symbols)
    for init in cascade.inits:
        for index in init.target.indices:
            names |= set(index.size_symbols)
    return names
