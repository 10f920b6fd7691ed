"""Size expressions in mapping files (``P0 * P1``, ``ceil(P / P0)``, ``pe_dim``) → sympy.

The text is parsed with :func:`ast.parse` and only a whitelist of node kinds is translated
(numbers, names, ``+ - * / //``, ``ceil``/``floor``/``min``/``max``); nothing is evaluated, so
a mapping file can never run code.
"""

from __future__ import annotations

import ast
from functools import lru_cache

import sympy

from einsim.errors import SpecError

MAX_LENGTH = 200
_FUNCTIONS = {"ceil": sympy.ceiling, "floor": sympy.floor, "min": sympy.Min, "max": sympy.Max}


def symbol(name: str) -> sympy.Symbol:
    """The one sympy symbol used for a size, parameter or hardware field name."""
    return sympy.Symbol(name, positive=True, integer=True)


def parse_size(text: str | int | float, where: str = "expression") -> sympy.Expr:
    """A size expression as sympy; ``where`` names the field for error messages."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise SpecError(f"{where}: expected a size expression such as 'P0 * P1', got "
                        f"{text!r}")
    if isinstance(text, int) and text.bit_length() > 62:
        raise SpecError(f"{where}: {text} is too large (at most 2^62)")
    expression = _parse_size(text, where)
    if expression.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise SpecError(f"{where}: {text!r} divides by zero or is infinite")
    if expression.is_number and not (expression.is_integer and expression >= 1):
        raise SpecError(f"{where}: {text!r} is {expression}; a size must be a whole number "
                        "of at least 1")
    return expression


@lru_cache(maxsize=4096)
def _parse_size(text: str | int | float, where: str) -> sympy.Expr:
    if isinstance(text, int):
        return sympy.Integer(text)
    if isinstance(text, float):
        if not text.is_integer():
            raise SpecError(f"{where}: expected a whole number, got {text!r}")
        return sympy.Integer(int(text))
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"{where}: expected a size expression such as 'P0 * P1', got {text!r}")
    if len(text) > MAX_LENGTH:
        raise SpecError(f"{where}: expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise SpecError(f"{where}: cannot read {text!r} as a size expression "
                        "(numbers, names, + - * / //, ceil, floor, min, max)") from None
    return _translate(tree.body, text, where)


def _translate(node: ast.AST, text: str, where: str) -> sympy.Expr:
    def fail(what: str):
        raise SpecError(f"{where}: {what} in {text!r}; expected numbers, names, + - * / //, "
                        "ceil(), floor(), min(), max()")

    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            fail(f"constant {node.value!r}")
        if isinstance(node.value, int) and node.value.bit_length() > 62:
            fail(f"number {node.value} too large")
        return sympy.nsimplify(node.value) if isinstance(node.value, float) \
            else sympy.Integer(node.value)
    if isinstance(node, ast.Name):
        return symbol(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_translate(node.operand, text, where)
    if isinstance(node, ast.BinOp):
        left, right = _translate(node.left, text, where), _translate(node.right, text, where)
        operators = {ast.Add: lambda: left + right, ast.Sub: lambda: left - right,
                     ast.Mult: lambda: left * right, ast.Div: lambda: left / right,
                     ast.FloorDiv: lambda: sympy.floor(left / right)}
        if type(node.op) not in operators:
            fail(f"operator {type(node.op).__name__}")
        return operators[type(node.op)]()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        function = _FUNCTIONS.get(node.func.id)
        if function is None:
            fail(f"function {node.func.id!r}")
        arguments = [_translate(a, text, where) for a in node.args]
        if function in (sympy.ceiling, sympy.floor) and len(arguments) != 1 or not arguments:
            fail(f"{node.func.id}() with {len(arguments)} arguments")
        return function(*arguments)
    fail(f"{type(node).__name__.lower()}")
