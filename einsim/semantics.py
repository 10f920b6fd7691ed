"""Static checks of a cascade: everything that can be wrong before any size is known.

Each check raises a specific :class:`~einsim.errors.CascadeError` naming the statement's line and
column: unknown tensors, functions and predicates, arity mismatches, duplicate definitions,
reductions that disagree with the reduced variables, and recurrences without ``init``.
"""

from __future__ import annotations

from einsim import ir
from einsim.errors import (ArityError, DuplicateDefinitionError, IndexExpressionError,
                           MissingInitError, RankSizeConflictError, ReductionError,
                           UnknownFunctionError, UnknownTensorError)
from einsim.functions import MAP_FUNCTIONS, PREDICATES, REDUCE_OPERATORS


def check(cascade: ir.Cascade, source: str = "") -> None:
    """Raise the first semantic error found in ``cascade`` (source names the file, if any)."""
    _check_declarations(cascade, source)
    _check_definitions(cascade, source)
    _check_arities(cascade, source)
    for einsum in cascade.einsums:
        _check_einsum(einsum, cascade, source)
    _check_recurrences(cascade, source)


def _check_declarations(cascade: ir.Cascade, source: str) -> None:
    sizes: dict[str, tuple[int, ir.RankDecl]] = {}
    for decl in cascade.ranks:
        if decl.name in sizes and decl.size is not None and sizes[decl.name][0] is not None \
                and sizes[decl.name][0] != decl.size:
            raise RankSizeConflictError(
                f"rank {decl.name} declared with size {decl.size} but line "
                f"{sizes[decl.name][1].line} gives {sizes[decl.name][0]}",
                decl.line, decl.column, source)
        if decl.name not in sizes or decl.size is not None:
            sizes[decl.name] = (decl.size, decl)
    parents: dict[str, ir.Partition] = {}
    parts: dict[str, ir.Partition] = {}
    for partition in cascade.partitions:
        if partition.rank in parents:
            raise DuplicateDefinitionError(
                f"rank {partition.rank} is partitioned twice (first on line "
                f"{parents[partition.rank].line})", partition.line, partition.column, source)
        parents[partition.rank] = partition
        for position, part in enumerate(partition.parts):
            if part in parts or part == partition.rank:
                raise DuplicateDefinitionError(
                    f"rank {part} is already a part of a partition", partition.line,
                    partition.column, source)
            parts[part] = partition
            if position > 0:
                given = partition.sizes[position - 1]
                declared = sizes.get(part, (None,))[0]
                if isinstance(given, int) and declared is not None and declared != given:
                    raise RankSizeConflictError(
                        f"partition gives {part} size {given} but it is declared {declared}",
                        partition.line, partition.column, source)
    params: dict[str, ir.ParamDecl] = {}
    for param in cascade.params:
        if param.name in params and params[param.name].value != param.value:
            raise DuplicateDefinitionError(
                f"parameter {param.name} declared twice with different values",
                param.line, param.column, source)
        if param.name in sizes:
            raise DuplicateDefinitionError(
                f"{param.name} is declared both as a rank and as a parameter",
                param.line, param.column, source)
        params[param.name] = param


def _check_definitions(cascade: ir.Cascade, source: str) -> None:
    written: dict[str, ir.Einsum] = {}
    for einsum in cascade.einsums:
        if einsum.name in written:
            raise DuplicateDefinitionError(
                f"tensor {einsum.name} is already written on line {written[einsum.name].line}; "
                "each tensor is defined by one Einsum", einsum.line, einsum.column, source)
        written[einsum.name] = einsum
    declared = {t.name for t in cascade.inputs}
    for decl in cascade.inputs:
        if decl.name in written:
            raise DuplicateDefinitionError(
                f"{decl.name} is declared as an input but written on line {written[decl.name].line}",
                decl.line, decl.column, source)
    for init in cascade.inits:
        if init.target.tensor not in written:
            raise UnknownTensorError(
                f"init of {init.target.tensor}, which no Einsum writes; expected the output "
                "tensor of a recurrence", init.line, init.column, source)
        for access in ir.accesses(init.value):
            _known(access, written, declared, cascade, source)
    for einsum in cascade.einsums:
        for access in einsum.inputs:
            _known(access, written, declared, cascade, source)


def _known(access, written, declared, cascade, source):
    if declared and access.tensor not in written and access.tensor not in declared:
        raise UnknownTensorError(
            f"unknown tensor {access.tensor}; expected an input ({', '.join(sorted(declared))}) "
            f"or a tensor written by an Einsum", access.line, access.column, source)


def _check_arities(cascade: ir.Cascade, source: str) -> None:
    arity: dict[str, tuple[int, object]] = {}

    def see(name: str, count: int, node) -> None:
        if name in arity and arity[name][0] != count:
            first = arity[name][1]
            raise ArityError(
                f"tensor {name} accessed with {count} indices but with {arity[name][0]} on line "
                f"{getattr(first, 'line', '?')}", getattr(node, "line", 0),
                getattr(node, "column", 0), source)
        arity.setdefault(name, (count, node))

    for decl in cascade.inputs:
        see(decl.name, len(decl.ranks), decl)
    for einsum in cascade.einsums:
        see(einsum.name, len(einsum.output.indices), einsum.output)
    for init in cascade.inits:
        see(init.target.tensor, len(init.target.indices), init.target)
    for einsum in cascade.einsums:
        for access in einsum.inputs:
            see(access.tensor, len(access.indices), access)


def _check_expression(node, einsum: ir.Einsum, source: str, top: bool = True) -> None:
    if isinstance(node, ir.Call):
        spec = MAP_FUNCTIONS.get(node.function)
        if spec is None:
            raise UnknownFunctionError(
                f"unknown function {node.function!r}; expected one of "
                f"{', '.join(sorted(MAP_FUNCTIONS))}", node.line, node.column, source)
        if len(node.args) != spec.arity:
            raise ArityError(f"{node.function}() takes {spec.arity} argument(s), got "
                             f"{len(node.args)}", node.line, node.column, source)
        for position, arg in enumerate(node.args):
            if isinstance(arg, ir.Compare) and not (node.function == "where" and position == 0):
                raise ArityError("a comparison is only allowed as the first argument of where()",
                                 node.line, node.column, source)
            _check_expression(arg, einsum, source, top=False)
    elif isinstance(node, (ir.BinaryOp, ir.Compare)):
        _check_expression(node.left, einsum, source, top=False)
        _check_expression(node.right, einsum, source, top=False)


def _check_einsum(einsum: ir.Einsum, cascade: ir.Cascade, source: str) -> None:
    _check_expression(einsum.expression, einsum, source)
    for index in einsum.output.indices:
        if len(index.variables) > 1 and not _is_reconstruction(index, cascade):
            raise IndexExpressionError(
                f"output index {index} of {einsum.name} combines several variables; only a "
                "partition reconstruction such as p1*P0 + p0 may", einsum.line, einsum.column,
                source)
    if einsum.reduction is not None:
        if einsum.reduction.op not in REDUCE_OPERATORS:
            raise UnknownFunctionError(
                f"unknown reduction {einsum.reduction.op!r}; expected one of "
                f"{', '.join(REDUCE_OPERATORS)}", einsum.line, einsum.column, source)
        listed = set(einsum.reduction.variables)
        actual = set(einsum.reduced)
        if listed != actual:
            missing = ", ".join(sorted(actual - listed)) or "none"
            extra = ", ".join(sorted(listed - actual)) or "none"
            raise ReductionError(
                f"{einsum.reduction} in {einsum.name} must list exactly the reduced variables "
                f"({', '.join(einsum.reduced) or 'none'}); missing: {missing}; not reduced: {extra}",
                einsum.line, einsum.column, source)
    if einsum.condition is not None:
        for part in ir.condition_parts(einsum.condition):
            if isinstance(part, ir.Predicate):
                spec = PREDICATES.get(part.name)
                if spec is None:
                    raise UnknownFunctionError(
                        f"unknown predicate {part.name!r}; expected one of "
                        f"{', '.join(sorted(PREDICATES))}", part.line, part.column, source)
                if not spec.min_args <= len(part.args) <= spec.max_args:
                    raise ArityError(
                        f"{part.name}() takes {spec.min_args} to {spec.max_args} arguments, got "
                        f"{len(part.args)}", part.line, part.column, source)


def _is_reconstruction(index, cascade: ir.Cascade) -> bool:
    return any(index == p.reconstruction() for p in cascade.partitions)


def recurrence_axis(einsum: ir.Einsum):
    """(axis, variable, offset) if the output steps a variable, as in ``RD[m1 + 1, p]``.

    An output index ``v + c`` with a non-zero integer ``c`` makes the Einsum a recurrence over
    ``v``: it reads earlier iterates (directly or through other Einsums) at ``v``.
    """
    for axis, index in enumerate(einsum.output.indices):
        if len(index.variables) != 1:
            continue
        variable = index.variables[0]
        coefficient, rest = index.split_variable(variable)
        if coefficient == 1 and not rest.variables and not rest.size_symbols \
                and rest.offset({}) != 0:
            return axis, variable, rest.offset({})
    return None


def _check_recurrences(cascade: ir.Cascade, source: str) -> None:
    for einsum in cascade.einsums:
        found = recurrence_axis(einsum)
        own = [a for a in einsum.inputs if a.tensor == einsum.name]
        if own and found is None:
            raise IndexExpressionError(
                f"{einsum.name} reads itself but its output index has no step v + c; a "
                "recurrence writes T[v + 1] from T[v]", einsum.line, einsum.column, source)
        if found is not None and found[2] > 0 and einsum.name not in cascade.init_of:
            raise MissingInitError(
                f"recurrence {einsum.name} writes {einsum.output} but has no start value; "
                f"expected a statement like 'init {einsum.name}[...] = 0'",
                einsum.line, einsum.column, source)
