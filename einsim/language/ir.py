"""The typed, immutable intermediate representation of a cascade of extended Einsums.

Every node is a frozen dataclass.  Source positions (``line``, ``column``) are kept for error
messages but excluded from equality, so ``parse(str(cascade)) == cascade``.  ``str()`` of any
node prints valid cascade text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Union

from einsim.language.affine import Affine

# ----------------------------------------------------------------------------------- expressions

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def _position():
    return field(default=0, compare=False, repr=False)


class _Tree:
    """Inner expression and condition nodes: equality, hashing and printing walk the tree
    without recursion, so a deep tree never raises RecursionError."""

    __slots__ = ()

    def __eq__(self, other) -> bool:
        return _same(self, other)

    def __hash__(self) -> int:
        return _hash(self)

    def __getstate__(self) -> dict:  # string hashes differ between processes: never pickled
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    def _fields(self) -> tuple:
        """Own fields then children, compared in this order by :func:`_same`."""
        return (*_shallow(self), *_children(self))


def _shallow(node) -> tuple:
    """A node's own fields, children excluded (leaves compare by value)."""
    if isinstance(node, Call):
        return (node.function, len(node.args))
    if isinstance(node, (BinaryOp, Compare, BoolOp)):
        return (node.op,)
    return ()


def _same(a, b) -> bool:
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if type(x) is not type(y):
            return False
        if isinstance(x, _Tree):
            left, right = x._fields(), y._fields()
            if len(left) != len(right):
                return False
            stack.extend(zip(left, right))
        elif x != y:
            return False
    return True


def _hash(root) -> int:
    cached = root.__dict__.get("_hash")
    if cached is not None:
        return cached
    done: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if not isinstance(node, _Tree):
            done[id(node)] = hash(node)
            continue
        if "_hash" in node.__dict__:
            done[id(node)] = node.__dict__["_hash"]
            continue
        children = _children(node)
        if not ready:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in done)
            continue
        value = hash((type(node).__name__, _shallow(node), tuple(done[id(c)] for c in children)))
        node.__dict__["_hash"] = value  # immutable nodes: computed once
        done[id(node)] = value
    return done[id(root)]


@dataclass(frozen=True)
class Number:
    """A numeric literal (``inf`` and ``-inf`` allowed)."""

    value: float

    def __str__(self) -> str:
        if math.isinf(self.value):
            return "inf" if self.value > 0 else "-inf"
        if isinstance(self.value, int):
            return str(self.value)
        return repr(float(self.value))


@dataclass(frozen=True)
class Symbol:
    """A bare name: a rank variable (lower case, its coordinate) or a size/parameter (upper case)."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Access:
    """``T[i, j, ...]`` with affine indices."""

    tensor: str
    indices: tuple[Affine, ...]
    line: int = _position()
    column: int = _position()

    @property
    def variables(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for index in self.indices:
            for variable in index.variables:
                seen.setdefault(variable, None)
        return tuple(seen)

    def __str__(self) -> str:
        return f"{self.tensor}[{', '.join(str(i) for i in self.indices)}]"


@dataclass(frozen=True, eq=False)
class Call(_Tree):
    """``f(a, b, ...)``: an element-wise map function (see :mod:`einsim.language.functions`)."""

    function: str
    args: tuple["Expression", ...]
    line: int = _position()
    column: int = _position()

    def __str__(self) -> str:
        return _text(self)

    def _render(self, texts: list[str]) -> str:
        return f"{self.function}({', '.join(texts)})"


@dataclass(frozen=True, eq=False)
class BinaryOp(_Tree):
    """``left op right`` with op one of ``+ - * /``."""

    op: str
    left: "Expression"
    right: "Expression"

    def __str__(self) -> str:
        return _text(self)

    def _render(self, texts: list[str]) -> str:
        mine = _PRECEDENCE[self.op]
        left = _wrap(self.left, texts[0], mine, strict=False)
        right = _wrap(self.right, texts[1], mine, strict=True)
        return f"{left} {self.op} {right}"


@dataclass(frozen=True, eq=False)
class Compare(_Tree):
    """A value comparison, only valid as the first argument of ``where(cond, a, b)``."""

    op: str
    left: "Expression"
    right: "Expression"

    def __str__(self) -> str:
        return _text(self)

    def _render(self, texts: list[str]) -> str:
        return f"{texts[0]} {self.op} {texts[1]}"


Expression = Union[Number, Symbol, Access, Call, BinaryOp, Compare]


def _text(root) -> str:
    """Print an expression or condition tree bottom-up without recursion (each node's
    ``_render`` formats it from its children's texts)."""
    done: dict[int, str] = {}
    stack = [(root, False)]
    while stack:
        node, ready = stack.pop()
        children = _children(node)
        if children and not ready:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in done)
            continue
        if id(node) not in done:
            done[id(node)] = node._render([done[id(c)] for c in children]) if children \
                else str(node)
    return done[id(root)]


def _wrap(node: Expression, text: str, parent_precedence: int, strict: bool) -> str:
    if isinstance(node, BinaryOp):
        child = _PRECEDENCE[node.op]
        if child < parent_precedence or (strict and child == parent_precedence):
            return f"({text})"
    if isinstance(node, Number) and node.value < 0 and not math.isinf(node.value):
        return f"({text})"
    return text


def walk(node: Expression) -> Iterator[Expression]:
    """Every node of an expression tree, parents before children (iterative: any depth)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(_children(current)))


def _children(node) -> tuple:
    if isinstance(node, Call):
        return node.args
    if isinstance(node, (BinaryOp, Compare, BoolOp)):
        return (node.left, node.right)
    if isinstance(node, Not):
        return (node.operand,)
    return ()


MAX_DEPTH = 200
"""Deepest expression or condition accepted (each operator of a chain like a + b + c nests one
level); the printer, equality and the executor recurse this deep."""


def depth(node) -> int:
    """Nesting depth of an expression or condition tree (a leaf is 1), without recursion."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if level <= MAX_DEPTH + 1:  # deeper is refused anyway: stop counting there
            stack.extend((child, level + 1) for child in _children(current))
    return deepest


def accesses(node: Expression) -> list[Access]:
    return [n for n in walk(node) if isinstance(n, Access)]


# ------------------------------------------------------------------------------------ conditions


@dataclass(frozen=True)
class IndexComparison:
    """``a <= b`` between affine index expressions (a static mask)."""

    op: str
    left: Affine
    right: Affine

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class Predicate:
    """A mask predicate call such as ``neighborhood(p, m, P, W)`` or ``within(m, p, 4)``."""

    name: str
    args: tuple[Affine, ...]
    line: int = _position()
    column: int = _position()

    def __str__(self) -> str:
        return f"{self.name}({', '.join(str(a) for a in self.args)})"


@dataclass(frozen=True, eq=False)
class BoolOp(_Tree):
    """``left and right`` / ``left or right``."""

    op: str
    left: "Condition"
    right: "Condition"

    def __str__(self) -> str:
        return _text(self)

    def _render(self, texts: list[str]) -> str:
        left, right = texts
        if isinstance(self.left, BoolOp) and self.left.op != self.op:
            left = f"({left})"
        if isinstance(self.right, BoolOp):
            right = f"({right})"
        return f"{left} {self.op} {right}"


@dataclass(frozen=True, eq=False)
class Not(_Tree):
    operand: "Condition"

    def __str__(self) -> str:
        return _text(self)

    def _render(self, texts: list[str]) -> str:
        inner = texts[0]
        return f"not ({inner})" if isinstance(self.operand, BoolOp) else f"not {inner}"


Condition = Union[IndexComparison, Predicate, BoolOp, Not]


def condition_parts(condition: Condition) -> Iterator[Union[IndexComparison, Predicate]]:
    """The comparisons and predicates of a condition, left to right (iterative: any depth)."""
    stack = [condition]
    while stack:
        current = stack.pop()
        if isinstance(current, (BoolOp, Not)):
            stack.extend(reversed(_children(current)))
        else:
            yield current


def condition_variables(condition: Condition) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for part in condition_parts(condition):
        indices = (part.left, part.right) if isinstance(part, IndexComparison) else part.args
        for index in indices:
            for variable in index.variables:
                seen.setdefault(variable, None)
    return tuple(seen)


# ------------------------------------------------------------------------------------ statements


@dataclass(frozen=True)
class RankDecl:
    """``rank M = 4096`` (a default size) or ``rank M`` (declared, sized by the workload)."""

    name: str
    size: int | None = None
    line: int = _position()
    column: int = _position()

    def __str__(self) -> str:
        return f"rank {self.name}" + ("" if self.size is None else f" = {self.size}")


@dataclass(frozen=True)
class ParamDecl:
    """``param W = 7``: a named constant usable in indices, predicates and expressions."""

    name: str
    value: float
    line: int = _position()
    column: int = _position()

    def __str__(self) -> str:
        return f"param {self.name} = {Number(self.value)}"


@dataclass(frozen=True)
class Partition:
    """``partition M -> M1, M0 by 256``: ``m = m1*M0 + m0``; sizes of all parts but the first."""

    rank: str
    parts: tuple[str, ...]
    sizes: tuple[int | str, ...]
    line: int = _position()
    column: int = _position()

    def reconstruction(self) -> Affine:
        """The parent index in terms of the parts, e.g. ``m1*M0 + m0``."""
        from einsim.language.affine import Term

        terms = []
        for position, part in enumerate(self.parts):
            inner = tuple(self.parts[position + 1:])
            terms.append(Term(1, inner, part.lower()))
        return Affine(tuple(terms))

    def __str__(self) -> str:
        return (f"partition {self.rank} -> {', '.join(self.parts)} by "
                f"{', '.join(str(s) for s in self.sizes)}")


@dataclass(frozen=True)
class TensorDecl:
    """``input Q[E, P]``: an input tensor and the rank of each axis."""

    name: str
    ranks: tuple[str, ...]
    line: int = _position()
    column: int = _position()

    def __str__(self) -> str:
        return f"{self.name}[{', '.join(self.ranks)}]"


@dataclass(frozen=True)
class Init:
    """``init RM[0, p] = -inf``: the start value of a recurrence."""

    target: Access
    value: Expression
    line: int = _position()
    column: int = _position()

    def __str__(self) -> str:
        return f"init {self.target} = {self.value}"


@dataclass(frozen=True)
class Reduction:
    """An explicit reduction ``op[v, ...]`` in front of an Einsum's expression."""

    op: str
    variables: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.op}[{', '.join(self.variables)}]"


@dataclass(frozen=True)
class Einsum:
    """``OUT[...] = [op[vars]] expression [where condition]``.

    Variables on the right but not on the left are reduced (``sum`` unless ``reduction`` says
    otherwise); points where ``condition`` is false are empty.
    """

    output: Access
    expression: Expression
    reduction: Reduction | None = None
    condition: Condition | None = None
    line: int = _position()
    column: int = _position()

    @property
    def name(self) -> str:
        return self.output.tensor

    @cached_property
    def inputs(self) -> tuple[Access, ...]:
        return tuple(accesses(self.expression))

    @cached_property
    def variables(self) -> tuple[str, ...]:
        """All iteration variables: output's first, then the rest in order of appearance."""
        seen: dict[str, None] = {v: None for v in self.output.variables}
        for node in walk(self.expression):
            if isinstance(node, Access):
                for v in node.variables:
                    seen.setdefault(v, None)
            elif isinstance(node, Symbol) and node.name[0].islower():
                seen.setdefault(node.name, None)
        if self.condition is not None:
            for v in condition_variables(self.condition):
                seen.setdefault(v, None)
        return tuple(seen)

    @cached_property
    def reduced(self) -> tuple[str, ...]:
        out = set(self.output.variables)
        return tuple(v for v in self.variables if v not in out)

    @property
    def reduce_op(self) -> str:
        return self.reduction.op if self.reduction else "sum"

    def __str__(self) -> str:
        reduction = f"{self.reduction} " if self.reduction else ""
        condition = f" where {self.condition}" if self.condition is not None else ""
        return f"{self.output} = {reduction}{self.expression}{condition}"


Statement = Union[RankDecl, ParamDecl, Partition, TensorDecl, Init, Einsum]


@dataclass(frozen=True)
class Cascade:
    """A cascade: declarations, recurrence initialisations and Einsums (in dataflow, not text, order)."""

    ranks: tuple[RankDecl, ...] = ()
    params: tuple[ParamDecl, ...] = ()
    partitions: tuple[Partition, ...] = ()
    inputs: tuple[TensorDecl, ...] = ()
    inits: tuple[Init, ...] = ()
    einsums: tuple[Einsum, ...] = ()
    name: str = field(default="", compare=False)

    def __str__(self) -> str:
        lines = [str(r) for r in self.ranks]
        lines += [str(p) for p in self.params]
        lines += [str(p) for p in self.partitions]
        if self.inputs:
            lines.append("input " + ", ".join(str(t) for t in self.inputs))
        lines += [str(i) for i in self.inits]
        lines += [str(e) for e in self.einsums]
        return "\n".join(lines) + "\n"

    # ---- derived views (computed once) ----

    @cached_property
    def producers(self) -> dict[str, Einsum]:
        """Tensor name → the Einsum that writes it."""
        return {e.name: e for e in self.einsums}

    @cached_property
    def input_names(self) -> tuple[str, ...]:
        """Tensors read but never written, in order of first read (or declaration)."""
        seen: dict[str, None] = {t.name: None for t in self.inputs}
        for einsum in self.einsums:
            for access in einsum.inputs:
                if access.tensor not in self.producers:
                    seen.setdefault(access.tensor, None)
        for init in self.inits:
            for access in accesses(init.value):
                if access.tensor not in self.producers:
                    seen.setdefault(access.tensor, None)
        return tuple(seen)

    @cached_property
    def outputs(self) -> tuple[str, ...]:
        """Computed tensors that no Einsum reads: the cascade's results."""
        read = {a.tensor for e in self.einsums for a in e.inputs if a.tensor != e.name}
        return tuple(e.name for e in self.einsums if e.name not in read)

    @cached_property
    def init_of(self) -> dict[str, tuple[Init, ...]]:
        table: dict[str, list[Init]] = {}
        for init in self.inits:
            table.setdefault(init.target.tensor, []).append(init)
        return {k: tuple(v) for k, v in table.items()}

    def einsum(self, name: str) -> Einsum:
        return self.producers[name]

    @cached_property
    def rank_variables(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for einsum in self.einsums:
            for v in einsum.variables:
                seen.setdefault(v, None)
        return tuple(seen)


def rank_of(variable: str) -> str:
    """The rank a variable iterates: ``m1`` → ``M1``."""
    return variable.upper()
