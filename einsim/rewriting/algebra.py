"""Linear forms: an expression as a sum of atoms times constant coefficients.

``(QK[m, p] - GM[p]) * SCALE`` is ``SCALE * QK[m, p] + (-SCALE) * GM[p]``.  Atoms are accesses,
rank variables and any sub-expression that is not linear (``exp(...)``, ``where(...)``, a product
of two accesses); coefficients are polynomials in constants (numbers, parameters, sizes and
constant calls such as ``sqrt(E)``).  The rules ask questions of these forms: does the normaliser
enter the exponent linearly, with the opposite coefficient of the values it reduces?
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from einsim.language import ir
from einsim.rewriting.trees import canonical

Monomial = tuple[tuple[str, int], ...]
"""Constant factors (by canonical text) and their powers, sorted: ``SCALE / E`` → (("E", -1),
("SCALE", 1))."""


def _clean(value: float) -> float:
    return 0.0 if abs(value) < 1e-300 else value


@dataclass(frozen=True)
class Coefficient:
    """A polynomial in constant factors: ``sum(number * prod(factor ** power))``."""

    terms: tuple[tuple[Monomial, float], ...] = ()
    nodes: Mapping[str, ir.Expression] = field(default_factory=dict, compare=False, hash=False)

    @staticmethod
    def number(value: float) -> "Coefficient":
        return Coefficient(((((), float(value)),) if value else ()))

    @staticmethod
    def factor(node: ir.Expression, power: int = 1) -> "Coefficient":
        key = canonical(node)
        monomial: Monomial = ((key, power),)
        return Coefficient(((monomial, 1.0),), {key: node})

    def _build(self, table: dict[Monomial, float], nodes: Mapping[str, ir.Expression]
               ) -> "Coefficient":
        terms = tuple(sorted((m, _clean(v)) for m, v in table.items() if _clean(v) != 0.0))
        return Coefficient(terms, dict(nodes))

    def __add__(self, other: "Coefficient") -> "Coefficient":
        table = dict(self.terms)
        for monomial, value in other.terms:
            table[monomial] = table.get(monomial, 0.0) + value
        return self._build(table, {**self.nodes, **other.nodes})

    def __neg__(self) -> "Coefficient":
        return Coefficient(tuple((m, -v) for m, v in self.terms), dict(self.nodes))

    def __sub__(self, other: "Coefficient") -> "Coefficient":
        return self + (-other)

    def __mul__(self, other: "Coefficient") -> "Coefficient":
        table: dict[Monomial, float] = {}
        for left, a in self.terms:
            for right, b in other.terms:
                powers = dict(left)
                for key, power in right:
                    powers[key] = powers.get(key, 0) + power
                monomial = tuple(sorted((k, p) for k, p in powers.items() if p))
                table[monomial] = table.get(monomial, 0.0) + a * b
        return self._build(table, {**self.nodes, **other.nodes})

    def inverse(self) -> "Coefficient | None":
        """``1 / self`` when it is one monomial with a non-zero number, else None."""
        if len(self.terms) != 1 or not self.terms[0][1]:
            return None
        monomial, value = self.terms[0]
        inverted: Monomial = tuple((k, -p) for k, p in monomial)
        return Coefficient(((inverted, 1.0 / value),), dict(self.nodes))

    @property
    def is_zero(self) -> bool:
        return not self.terms

    @property
    def is_one(self) -> bool:
        return len(self.terms) == 1 and self.terms[0] == ((), 1.0)

    @property
    def is_negative(self) -> bool:
        """Every term has a negative number (``-1``, ``-SCALE``): the sign of the whole when the
        factors are positive, as scales and sizes are."""
        return bool(self.terms) and all(value < 0 for _, value in self.terms)

    def same(self, other: "Coefficient") -> bool:
        """Equal up to rounding of the numbers."""
        mine, theirs = dict(self.terms), dict(other.terms)
        if set(mine) != set(theirs):
            return False
        return all(math.isclose(mine[k], theirs[k], rel_tol=1e-12, abs_tol=1e-300) for k in mine)

    def expression(self) -> ir.Expression:
        """The coefficient as cascade text: ``SCALE``, ``0.125``, ``2 * SCALE / E``."""
        total: ir.Expression | None = None
        for monomial, value in self.terms:
            term = self._monomial(monomial, abs(value))
            if total is None:
                total = term if value > 0 else ir.Call("neg", (term,))
            else:
                total = ir.BinaryOp("+" if value > 0 else "-", total, term)
        return total if total is not None else ir.Number(0)

    def _monomial(self, monomial: Monomial, magnitude: float) -> ir.Expression:
        value: ir.Expression | None = None if magnitude == 1.0 and monomial else \
            ir.Number(int(magnitude) if float(magnitude).is_integer() else magnitude)
        for key, power in monomial:
            for _ in range(abs(power)):
                node = self.nodes[key]
                if value is None:
                    value = node if power > 0 else ir.BinaryOp("/", ir.Number(1), node)
                else:
                    value = ir.BinaryOp("*" if power > 0 else "/", value, node)
        return value if value is not None else ir.Number(1)


@dataclass(frozen=True)
class LinearForm:
    """``constant + sum(coefficient * atom)``; atoms by canonical text."""

    atoms: Mapping[str, Coefficient] = field(default_factory=dict)
    nodes: Mapping[str, ir.Expression] = field(default_factory=dict, compare=False)
    constant: Coefficient = field(default_factory=Coefficient)

    @property
    def is_constant(self) -> bool:
        return not self.atoms

    def coefficient(self, atom: ir.Expression) -> Coefficient:
        return self.atoms.get(canonical(atom), Coefficient())

    def __add__(self, other: "LinearForm") -> "LinearForm":
        atoms = dict(self.atoms)
        for key, value in other.atoms.items():
            atoms[key] = atoms[key] + value if key in atoms else value
        atoms = {k: v for k, v in atoms.items() if not v.is_zero}
        return LinearForm(atoms, {**self.nodes, **other.nodes}, self.constant + other.constant)

    def scaled(self, by: Coefficient) -> "LinearForm":
        atoms = {k: v * by for k, v in self.atoms.items()}
        return LinearForm({k: v for k, v in atoms.items() if not v.is_zero}, dict(self.nodes),
                          self.constant * by)

    def __neg__(self) -> "LinearForm":
        return self.scaled(Coefficient.number(-1.0))

    def __sub__(self, other: "LinearForm") -> "LinearForm":
        return self + (-other)

    def expression(self) -> ir.Expression:
        """The form as cascade text: ``2 * (QK[m, p]) - BIAS[m, p] + 1``."""
        total: ir.Expression | None = None
        parts = [(self.nodes[key], value) for key, value in self.atoms.items()]
        parts += [(None, self.constant)] if not self.constant.is_zero else []
        for node, value in parts:
            negative = value.is_negative
            magnitude = -value if negative else value
            term = magnitude.expression() if node is None else scale(magnitude, node)
            if total is None:
                total = ir.Call("neg", (term,)) if negative else term
            else:
                total = ir.BinaryOp("-" if negative else "+", total, term)
        return total if total is not None else ir.Number(0)


def scale(coefficient: Coefficient, node: ir.Expression) -> ir.Expression:
    """``coefficient * node`` written plainly: ``x``, ``2 * x``, ``x / TEMP``, ``-x``."""
    if coefficient.is_one:
        return node
    if len(coefficient.terms) != 1:
        return ir.BinaryOp("*", coefficient.expression(), node)
    monomial, value = coefficient.terms[0]
    above = tuple((k, p) for k, p in monomial if p > 0)
    below = tuple((k, -p) for k, p in monomial if p < 0)
    result = node
    if above or abs(value) != 1.0:
        factor = Coefficient(((above, abs(value)),), dict(coefficient.nodes)).expression()
        result = ir.BinaryOp("*", factor, node)
    if below:
        divisor = Coefficient(((below, 1.0),), dict(coefficient.nodes)).expression()
        result = ir.BinaryOp("/", result, divisor)
    return ir.Call("neg", (result,)) if value < 0 else result


def _atom(node: ir.Expression) -> LinearForm:
    key = canonical(node)
    return LinearForm({key: Coefficient.number(1.0)}, {key: node})


def _constant(coefficient: Coefficient) -> LinearForm:
    return LinearForm(constant=coefficient)


def linear_form(node: ir.Expression) -> LinearForm:
    """The linear form of an expression (see the module docstring)."""
    if isinstance(node, ir.Number):
        if math.isfinite(node.value):
            return _constant(Coefficient.number(node.value))
        return _atom(node)
    if isinstance(node, ir.Symbol):
        return _constant(Coefficient.factor(node)) if node.name[0].isupper() else _atom(node)
    if isinstance(node, ir.BinaryOp):
        left, right = linear_form(node.left), linear_form(node.right)
        if node.op == "+":
            return left + right
        if node.op == "-":
            return left + (-right)
        if node.op == "*":
            if left.is_constant:
                return right.scaled(left.constant)
            if right.is_constant:
                return left.scaled(right.constant)
            return _atom(node)
        if right.is_constant:  # division by a constant
            inverse = right.constant.inverse()
            return left.scaled(inverse if inverse is not None
                               else Coefficient.factor(node.right, -1))
        return _atom(node)
    if isinstance(node, ir.Call):
        if node.function == "neg":
            return -linear_form(node.args[0])
        if all(linear_form(a).is_constant for a in node.args):
            return _constant(Coefficient.factor(node))
    return _atom(node)
