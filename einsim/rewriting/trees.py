"""Rebuilding IR trees: renaming indices, replacing accesses, products and their factors.

The IR is immutable, so every edit builds new nodes.  Expression trees are at most
:data:`einsim.language.ir.MAX_DEPTH` levels deep (the parser refuses deeper ones), so the
recursive walks here stay well inside Python's limit.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

from einsim.language import ir
from einsim.language.affine import Affine, Term

Renaming = Mapping[str, Affine]
"""Rank variable → the index that replaces it (``{"p": p}``, ``{"m": m1*M0 + m0}``)."""


# ------------------------------------------------------------------------------------- indices

def rename_index(index: Affine, renaming: Renaming) -> Affine:
    """``index`` with every variable in ``renaming`` replaced by its index."""
    terms: list[Term] = []
    for term in index.terms:
        if term.variable is None or term.variable not in renaming:
            terms.append(term)
            continue
        for inner in renaming[term.variable].terms:
            terms.append(Term(term.coefficient * inner.coefficient, term.sizes + inner.sizes,
                              inner.variable))
    return Affine.of(terms)


def canonical_index(index: Affine) -> Affine:
    """The index with its terms in a fixed order (``m0 + m1*M0`` == ``m1*M0 + m0``)."""
    return Affine(tuple(sorted(index.terms, key=lambda t: (t.variable or "", t.sizes,
                                                           t.coefficient))))


def step(variable: str, offset: int = 1) -> Affine:
    """``variable + offset`` (``m1 + 1``)."""
    return Affine.of([Term(1, (), variable), Term(offset)])


def final(rank: str) -> Affine:
    """The constant coordinate ``rank`` (``M1``): where a recurrence over it ends."""
    return Affine((Term(1, (rank,), None),))


def insert(indices: tuple[Affine, ...], position: int, index: Affine) -> tuple[Affine, ...]:
    """``indices`` with ``index`` inserted before ``position``."""
    return (*indices[:position], index, *indices[position:])


def plain_variables(access: ir.Access) -> Optional[tuple[str, ...]]:
    """The variables of an access whose every index is one plain variable, else None."""
    names = tuple(index.plain_variable() for index in access.indices)
    return None if any(n is None for n in names) or len(set(names)) != len(names) else names


def renaming_between(written: ir.Access, read: ir.Access) -> Optional[dict[str, Affine]]:
    """Variables of a tensor's output (``A[m, p]``) → the indices a reader uses (``A[m, q]``)."""
    names = plain_variables(written)
    if names is None or len(read.indices) != len(names):
        return None
    return dict(zip(names, read.indices))


# --------------------------------------------------------------------------------- expressions

def transform(node: ir.Expression, leaf: Callable[[ir.Expression], Optional[ir.Expression]]
              ) -> ir.Expression:
    """Rebuild ``node`` bottom-up; ``leaf`` may replace any node (None keeps it and descends)."""
    replaced = leaf(node)
    if replaced is not None:
        return replaced
    if isinstance(node, ir.Call):
        return ir.Call(node.function, tuple(transform(a, leaf) for a in node.args))
    if isinstance(node, ir.BinaryOp):
        return ir.BinaryOp(node.op, transform(node.left, leaf), transform(node.right, leaf))
    if isinstance(node, ir.Compare):
        return ir.Compare(node.op, transform(node.left, leaf), transform(node.right, leaf))
    return node


def rename(node: ir.Expression, renaming: Renaming) -> ir.Expression:
    """``node`` with the rank variables of its accesses (and bare ones) renamed."""
    def leaf(current):
        if isinstance(current, ir.Access):
            return ir.Access(current.tensor,
                             tuple(rename_index(i, renaming) for i in current.indices))
        if isinstance(current, ir.Symbol) and current.name in renaming:
            return affine_expression(renaming[current.name])
        return None

    return transform(node, leaf)


def replace_accesses(node: ir.Expression,
                     replacement: Callable[[ir.Access], Optional[ir.Expression]]
                     ) -> ir.Expression:
    """``node`` with each access ``a`` replaced by ``replacement(a)`` (None keeps it)."""
    return transform(node, lambda n: replacement(n) if isinstance(n, ir.Access) else None)


def affine_expression(index: Affine) -> ir.Expression:
    """An index as a value expression (``m1*M0 + m0`` → the same, built from symbols)."""
    total: Optional[ir.Expression] = None
    for term in index.terms:
        factors: list[ir.Expression] = [ir.Symbol(s) for s in term.sizes]
        if term.variable is not None:
            factors.insert(0, ir.Symbol(term.variable))
        value: ir.Expression = ir.Number(abs(term.coefficient))
        for factor in factors:
            value = factor if value == ir.Number(1) else ir.BinaryOp("*", value, factor)
        if total is None:
            total = value if term.coefficient >= 0 else ir.Call("neg", (value,))
        else:
            total = ir.BinaryOp("+" if term.coefficient >= 0 else "-", total, value)
    return total if total is not None else ir.Number(0)


def canonical(node: ir.Expression) -> str:
    """A key equal for equal expressions whatever the order of index terms."""
    def leaf(current):
        if isinstance(current, ir.Access):
            return ir.Access(current.tensor, tuple(canonical_index(i) for i in current.indices))
        return None

    return str(transform(node, leaf))


# ------------------------------------------------------------------------------------ products

def factors(node: ir.Expression, numerator: bool = True) -> list[tuple[ir.Expression, bool]]:
    """Factors of a product or quotient: ``a * b / c`` → [(a, True), (b, True), (c, False)]."""
    if isinstance(node, ir.BinaryOp) and node.op in ("*", "/"):
        right = numerator if node.op == "*" else not numerator
        return factors(node.left, numerator) + factors(node.right, right)
    return [(node, numerator)]


def without_factor(node: ir.Expression, target: ir.Access, numerator: bool
                   ) -> Optional[ir.Expression]:
    """``node`` with one factor ``target`` (on the given side of the quotient) removed, or None
    if it has no such factor: ``SN[m, p] / SD[p]`` without ``SD[p]`` is ``SN[m, p]``."""
    return _without(node, canonical(target), numerator, True)


def _without(node, key: str, wanted: bool, side: bool) -> Optional[ir.Expression]:
    if side == wanted and isinstance(node, ir.Access) and canonical(node) == key:
        return ir.Number(1)
    if not (isinstance(node, ir.BinaryOp) and node.op in ("*", "/")):
        return None
    left = _without(node.left, key, wanted, side)
    if left is not None:
        return _combine(node.op, left, node.right)
    right_side = side if node.op == "*" else not side
    right = _without(node.right, key, wanted, right_side)
    if right is not None:
        return _combine(node.op, node.left, right)
    return None


def _combine(op: str, left: ir.Expression, right: ir.Expression) -> ir.Expression:
    one = ir.Number(1)
    if right == one:
        return left
    if left == one and op == "*":
        return right
    return ir.BinaryOp(op, left, right)


# ---------------------------------------------------------------------------------- conditions

def rename_condition(condition: Optional[ir.Condition], renaming: Renaming
                     ) -> Optional[ir.Condition]:
    """A ``where`` filter with its rank variables renamed."""
    if condition is None:
        return None
    if isinstance(condition, ir.IndexComparison):
        return ir.IndexComparison(condition.op, rename_index(condition.left, renaming),
                                  rename_index(condition.right, renaming))
    if isinstance(condition, ir.Predicate):
        return ir.Predicate(condition.name,
                            tuple(rename_index(a, renaming) for a in condition.args))
    if isinstance(condition, ir.Not):
        return ir.Not(rename_condition(condition.operand, renaming))
    return ir.BoolOp(condition.op, rename_condition(condition.left, renaming),
                     rename_condition(condition.right, renaming))


def both(first: Optional[ir.Condition], second: Optional[ir.Condition]
         ) -> Optional[ir.Condition]:
    """The conjunction of two optional filters."""
    if first is None or second is None or first == second:
        return first if second is None else second
    return ir.BoolOp("and", first, second)
