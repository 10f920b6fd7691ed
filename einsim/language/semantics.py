"""Static checks of a cascade: everything that can be wrong before any size is known.

Each check raises a specific :class:`~einsim.errors.CascadeError` naming the statement's line and
column: unknown tensors, functions and predicates, arity mismatches, duplicate definitions,
reductions that disagree with the reduced variables, and recurrences without ``init``.
"""

from __future__ import annotations

from einsim.language import ir
from einsim.errors import (ArityError, DuplicateDefinitionError, IndexExpressionError,
                           IndexRangeError, LimitError, MissingInitError, RankSizeConflictError,
                           ReductionError, SizeError, UnknownFunctionError, UnknownTensorError)
from einsim.language.functions import MAP_FUNCTIONS, PREDICATES, REDUCE_OPERATORS, check_predicate_args


def check(cascade: ir.Cascade, source: str = "") -> None:
    """Raise the first semantic error found in ``cascade`` (source names the file, if any)."""
    _check_depths(cascade, source)
    _check_declarations(cascade, source)
    _check_definitions(cascade, source)
    _check_arities(cascade, source)
    for einsum in cascade.einsums:
        _check_einsum(einsum, cascade, source)
    _check_recurrences(cascade, source)
    _check_inits(cascade, source)


def _check_depths(cascade: ir.Cascade, source: str) -> None:
    """Refuse trees deeper than :data:`einsim.language.ir.MAX_DEPTH` (IR built in Python, not parsed)."""
    trees = [(e.expression, e) for e in cascade.einsums]
    trees += [(e.condition, e) for e in cascade.einsums if e.condition is not None]
    trees += [(i.value, i) for i in cascade.inits]
    for tree, statement in trees:
        if ir.depth(tree) > ir.MAX_DEPTH:
            raise LimitError(f"expression nested deeper than {ir.MAX_DEPTH} levels; split it "
                             "into several Einsums", statement.line, statement.column, source)


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


def _check_expression(root, einsum: ir.Einsum, source: str) -> None:
    comparison = "a comparison is only allowed as the first argument of where()"
    for node in ir.walk(root):
        if node is root and isinstance(node, ir.Compare) or isinstance(node, ir.BinaryOp) and (
                isinstance(node.left, ir.Compare) or isinstance(node.right, ir.Compare)):
            raise ArityError(comparison, einsum.line, einsum.column, source)
        if not isinstance(node, ir.Call):
            continue
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
                raise ArityError(comparison, node.line, node.column, source)


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
                _check_predicate(part, source)


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


def _check_predicate(predicate: ir.Predicate, source: str) -> None:
    """Scalar arguments of a predicate hold no variable; literal ones must be in range."""
    spec = PREDICATES[predicate.name]
    for position, arg in enumerate(predicate.args):
        if position < spec.variable_args:
            continue
        name = spec.arg_names[position]
        if arg.variables:
            raise IndexExpressionError(
                f"{predicate.name}() argument {name} = {arg} uses a rank variable; expected a "
                "constant or a size", predicate.line, predicate.column, source)
    literal = [None if a.size_symbols or a.variables else a.offset({}) for a in predicate.args]
    try:
        check_predicate_args(predicate.name, literal)
    except SizeError as error:
        raise IndexRangeError(f"in {predicate}, {error}", predicate.line, predicate.column,
                              source) from None


def _check_inits(cascade: ir.Cascade, source: str) -> None:
    """Init values use only the target's own variables; inits never overlap; a recurrence's
    init sits in its start range ``[0, c)`` on the stepped axis."""
    for tensor, inits in cascade.init_of.items():
        einsum = cascade.producers.get(tensor)
        found = recurrence_axis(einsum) if einsum is not None else None
        for position, init in enumerate(inits):
            own = set(init.target.variables)
            for index in init.target.indices:
                if index.variables and index.plain_variable() is None:
                    raise IndexExpressionError(
                        f"init {init.target}: index {index} must be a variable or a constant",
                        init.line, init.column, source)
            for node in ir.walk(init.value):
                used = node.variables if isinstance(node, ir.Access) else (
                    (node.name,) if isinstance(node, ir.Symbol) and node.name[0].islower()
                    else ())
                stray = [v for v in used if v not in own]
                if stray:
                    raise IndexExpressionError(
                        f"init {init.target} = {_brief(init.value)}: variable {stray[0]} on the "
                        f"right is not an index of the target; expected only "
                        f"{', '.join(sorted(own)) or 'constants'}", init.line, init.column,
                        source)
            if einsum is not None and found is None:
                raise DuplicateDefinitionError(
                    f"init {init.target}: {tensor} is not a recurrence (its Einsum writes "
                    f"{einsum.output}, with no step v + c), so the Einsum overwrites the init; "
                    "an init gives a recurrence's start value", init.line, init.column, source)
            if found is not None and found[2] > 0:
                axis, variable, step = found
                index = init.target.indices[axis]
                constant = not index.variables and not index.size_symbols
                if not constant or not 0 <= index.offset({}) < step:
                    start = "0" if step == 1 else f"0 to {step - 1}"
                    raise IndexRangeError(
                        f"init {init.target} is outside the range of the recurrence "
                        f"{einsum.output} (over {variable}); expected index {start} on axis "
                        f"{axis}", init.line, init.column, source)
            for earlier in inits[:position]:
                if _overlap(earlier.target, init.target):
                    raise DuplicateDefinitionError(
                        f"init {init.target} sets points already set by init {earlier.target} "
                        f"on line {earlier.line}; each point has one start value",
                        init.line, init.column, source)


def _overlap(a: ir.Access, b: ir.Access) -> bool:
    """Whether two init targets may share a point (differing literal coordinates say no)."""
    for left, right in zip(a.indices, b.indices):
        fixed = [not i.variables and not i.size_symbols for i in (left, right)]
        if all(fixed) and left.offset({}) != right.offset({}):
            return False
        if all(not i.variables for i in (left, right)) and not all(fixed) and left != right:
            return False  # symbolic constants that differ: decided at run time
    return True


def _brief(node) -> str:
    text = str(node)
    return text if len(text) <= 40 else text[:37] + "..."
