"""Expressions as plain data: an op list, and the small NumPy interpreter that runs it.

A :class:`Program` is what :mod:`einsim.cost.compiled_cache` keeps on disk instead of code.
Its slots are the named inputs, then the constants, then one slot per operation; every
operation reads earlier slots only, so a program is a DAG (shared subexpressions are computed
once).  :func:`compile_expressions` builds one from sympy expressions the way ``lambdify``
prints them (``a*b/(c*d)`` as one division, ``Max`` as ``maximum``, ``Piecewise`` as
``select``), so both agree to a few ulps; :meth:`Program.from_data` checks stored data
strictly (known operations, arities, indices in range, bounded sizes) and nothing but the
operations named in :data:`OPERATIONS` ever runs.
"""

from __future__ import annotations

import math
import operator
from functools import reduce

import numpy as np

MAX_INPUTS = 10_000
MAX_CONSTANTS = 100_000
MAX_OPERATIONS = 1_000_000
MAX_OPERANDS = 4_000_000  # over all operations
MAX_OUTPUTS = 100_000
MAX_NAME = 200
MAX_INTEGER = 2 ** 63


class NotCompilable(ValueError):
    """An expression using something the op list has no operation for."""


class InvalidProgram(ValueError):
    """Stored program data that is not a well-formed program."""


def _fold(function):
    return lambda *args: reduce(function, args)


def _select(*args):
    return np.select(list(args[0::2]), list(args[1::2]), default=np.nan)


# name -> (least operands, most operands or None, function)
OPERATIONS = {
    "add": (2, None, _fold(operator.add)),
    "mul": (2, None, _fold(operator.mul)),
    "div": (2, 2, operator.truediv),
    "neg": (1, 1, operator.neg),
    "pow": (2, 2, operator.pow),
    "sqrt": (1, 1, np.sqrt),
    "max": (1, None, _fold(np.maximum)),
    "min": (1, None, _fold(np.minimum)),
    "ceiling": (1, 1, np.ceil),
    "floor": (1, 1, np.floor),
    "mod": (2, 2, np.mod),
    "abs": (1, 1, np.abs),
    "exp": (1, 1, np.exp),
    "log": (1, 1, np.log),
    "select": (2, None, _select),  # condition, value, condition, value, ...
    "gt": (2, 2, np.greater),
    "ge": (2, 2, np.greater_equal),
    "lt": (2, 2, np.less),
    "le": (2, 2, np.less_equal),
    "eq": (2, 2, np.equal),
    "ne": (2, 2, np.not_equal),
    "and": (2, None, _fold(np.logical_and)),
    "or": (2, None, _fold(np.logical_or)),
    "not": (1, 1, np.logical_not),
}


class Program:
    """A checked op list, callable as ``program(*inputs) -> [outputs]`` (scalars or arrays)."""

    def __init__(self, inputs, constants, ops, outputs):
        self.inputs, self.constants = list(inputs), list(constants)
        self.ops, self.outputs = [list(op) for op in ops], list(outputs)
        _check(self.inputs, self.constants, self.ops, self.outputs)
        first = len(self.inputs) + len(self.constants)
        last = {}
        for position, (_, *operands) in enumerate(self.ops):
            for index in operands:
                last[index] = first + position
        keep = set(self.outputs)
        release: dict[int, list[int]] = {}
        for index, at in last.items():
            if index >= first and index not in keep:  # free large intermediates early
                release.setdefault(at, []).append(index)
        self._code = [(OPERATIONS[name][2], tuple(operands), tuple(release.get(first + k, ())))
                      for k, (name, *operands) in enumerate(self.ops)]
        self._first = first

    def __call__(self, *arguments):
        if len(arguments) != len(self.inputs):
            raise TypeError(f"program takes {len(self.inputs)} inputs, got {len(arguments)}")
        slots = [*arguments, *self.constants, *([None] * len(self._code))]
        position = self._first
        for function, operands, release in self._code:
            slots[position] = function(*[slots[i] for i in operands])
            for index in release:
                slots[index] = None
            position += 1
        return [slots[i] for i in self.outputs]

    def to_data(self) -> dict:
        return {"inputs": self.inputs, "constants": self.constants, "ops": self.ops,
                "outputs": self.outputs}

    @classmethod
    def from_data(cls, data) -> "Program":
        """A program from stored data; anything malformed raises :class:`InvalidProgram`."""
        if not isinstance(data, dict) or set(data) != {"inputs", "constants", "ops", "outputs"}:
            raise InvalidProgram("expected inputs, constants, ops and outputs")
        return cls(data["inputs"], data["constants"], data["ops"], data["outputs"])


def _is_index(value) -> bool:
    return type(value) is int


def _check(inputs, constants, ops, outputs) -> None:
    if not (isinstance(inputs, list) and isinstance(constants, list) and isinstance(ops, list)
            and isinstance(outputs, list)):
        raise InvalidProgram("inputs, constants, ops and outputs must be lists")
    if len(inputs) > MAX_INPUTS or len(constants) > MAX_CONSTANTS or \
            len(ops) > MAX_OPERATIONS or len(outputs) > MAX_OUTPUTS:
        raise InvalidProgram("program too large")
    if not all(isinstance(n, str) and 0 < len(n) <= MAX_NAME for n in inputs) or \
            len(set(inputs)) != len(inputs):
        raise InvalidProgram("inputs must be distinct names")
    for value in constants:
        if type(value) is bool:
            continue
        if type(value) is int:
            if abs(value) >= MAX_INTEGER:
                raise InvalidProgram("integer constant out of range")
        elif type(value) is not float or not math.isfinite(value):
            raise InvalidProgram("constants must be finite numbers or booleans")
    slot, operands_seen = len(inputs) + len(constants), 0
    for op in ops:
        if not isinstance(op, list) or not op or not isinstance(op[0], str) or \
                op[0] not in OPERATIONS:
            raise InvalidProgram("unknown operation " + repr(op)[:100])
        least, most, _ = OPERATIONS[op[0]]
        operands = op[1:]
        if len(operands) < least or (most is not None and len(operands) > most) or \
                (op[0] == "select" and len(operands) % 2):
            raise InvalidProgram(f"operation {op[0]}: wrong number of operands")
        if not all(_is_index(i) and 0 <= i < slot for i in operands):
            raise InvalidProgram(f"operation {op[0]}: operand index out of range")
        operands_seen += len(operands)
        if operands_seen > MAX_OPERANDS:
            raise InvalidProgram("program too large")
        slot += 1
    if not all(_is_index(i) and 0 <= i < slot for i in outputs):
        raise InvalidProgram("output index out of range")


# ------------------------------------------------------------------------ sympy -> program

_RELATIONS = {"StrictGreaterThan": "gt", "GreaterThan": "ge", "StrictLessThan": "lt",
              "LessThan": "le", "Equality": "eq", "Unequality": "ne"}
_FUNCTIONS = {"Max": "max", "Min": "min", "ceiling": "ceiling", "floor": "floor", "Mod": "mod",
              "Abs": "abs", "exp": "exp", "And": "and", "Or": "or", "Not": "not"}


def compile_expressions(expressions, inputs) -> Program:
    """One program computing every expression (sympy) from the symbols named ``inputs``;
    raises :class:`NotCompilable` for anything outside the operations above."""
    import sympy

    builder = _Builder(sympy, list(inputs))
    outputs = [builder.reference(sympy.sympify(e)) for e in expressions]
    return builder.program(outputs)


class _Builder:
    """Translates a sympy DAG bottom-up (iteratively: deep expressions are fine); a node seen
    before (equal expressions) reuses its slot.  References are ``("i"|"c"|"o", k)`` until
    :meth:`program` numbers the slots."""

    def __init__(self, sympy, inputs):
        self.sympy, self.inputs = sympy, inputs
        self.names = {name: k for k, name in enumerate(inputs)}
        self.constants: list = []
        self.constant_index: dict = {}
        self.ops: list[tuple] = []
        self.memo: dict = {}

    def reference(self, expression):
        stack = [(expression, None)]
        while stack:
            node, shape = stack.pop()
            if node in self.memo:
                continue
            if shape is None:
                shape = self._shape(node)
                stack.append((node, shape))
                stack.extend((child, None) for child in _children(shape)
                             if child not in self.memo)
                continue
            self.memo[node] = self._emit(node, shape)
        return self.memo[expression]

    def program(self, outputs) -> Program:
        first_constant = len(self.inputs)
        first_op = first_constant + len(self.constants)

        def slot(ref):
            kind, k = ref
            return k if kind == "i" else (first_constant + k if kind == "c" else first_op + k)

        ops = [[name, *(slot(r) for r in operands)] for name, operands in self.ops]
        return Program(self.inputs, self.constants, ops, [slot(r) for r in outputs])

    def _constant(self, value):
        key = (type(value), value)
        if key not in self.constant_index:
            self.constant_index[key] = len(self.constants)
            self.constants.append(value)
        return ("c", self.constant_index[key])

    def _op(self, name, operands):
        self.ops.append((name, tuple(operands)))
        return ("o", len(self.ops) - 1)

    def _shape(self, node):
        """``(kind, children)``: a leaf kind or an operation name with its operands."""
        sympy = self.sympy
        name = type(node).__name__
        if node.is_Symbol:
            return ("symbol", [])
        if node is sympy.true or node is sympy.false:
            return ("bool", [])
        if node.is_Number or isinstance(node, sympy.NumberSymbol):
            return ("number", [])
        if node.is_Add:
            return ("add", list(node.args))
        if node.is_Mul:  # as the code printer: numerator / (product of the denominators)
            numerator, denominator = [], []
            for factor in node.args:
                if factor.is_Pow and factor.exp.is_Rational and factor.exp.is_negative:
                    denominator.append(factor.base if factor.exp == -1
                                       else sympy.Pow(factor.base, -factor.exp))
                else:
                    numerator.append(factor)
            return ("mul", (numerator, denominator))
        if node.is_Pow:
            if node.exp == sympy.Rational(1, 2):
                return ("sqrt", [node.base])
            if node.exp.is_Rational and node.exp.is_negative:
                return ("reciprocal", [node.base if node.exp == -1
                                       else sympy.Pow(node.base, -node.exp)])
            return ("pow", [node.base, node.exp])
        if name == "Piecewise":
            children = []
            for pair in node.args:
                children += [pair.cond, pair.expr]
            return ("select", children)
        if name in _RELATIONS:
            return (_RELATIONS[name], list(node.args))
        if name in _FUNCTIONS or (name == "log" and len(node.args) == 1):
            return (_FUNCTIONS.get(name, "log"), list(node.args))
        raise NotCompilable(f"no operation for {name}")

    def _emit(self, node, shape):
        kind, children = shape
        if kind == "symbol":
            if str(node) not in self.names:
                raise NotCompilable(f"symbol {node} is not an input")
            return ("i", self.names[str(node)])
        if kind == "bool":
            return self._constant(bool(node))
        if kind == "number":
            return self._constant(_number(self.sympy, node))
        if kind == "mul":
            numerator, denominator = ([self.memo[c] for c in part] for part in children)
            top = self._product(numerator)
            return self._op("div", [top, self._product(denominator)]) if denominator else top
        operands = [self.memo[c] for c in children]
        if kind == "reciprocal":
            return self._op("div", [self._constant(1), operands[0]])
        if kind in ("max", "min") and len(operands) == 1:
            return operands[0]
        return self._op(kind, operands)

    def _product(self, operands):
        if not operands:
            return self._constant(1)
        return operands[0] if len(operands) == 1 else self._op("mul", operands)


def _children(shape):
    kind, children = shape
    return children[0] + children[1] if kind == "mul" else children


def _number(sympy, node):
    if node.is_Integer:
        value = int(node)
        if abs(value) >= MAX_INTEGER:
            raise NotCompilable("integer constant out of range")
        return value
    if node.is_Rational:
        return int(node.p) / int(node.q)  # as lambdify prints it: (p/q)
    if node.is_Float or isinstance(node, sympy.NumberSymbol):
        value = float(node)
        if math.isfinite(value):
            return value
    raise NotCompilable(f"no constant for {node}")


# ------------------------------------------------------------------------ checking plain data

def text(value, limit: int = 1 << 20) -> str:
    """``value`` if it is text of at most ``limit`` characters, else :class:`InvalidProgram`
    (as the other checks below: stored data is taken only in the shape expected)."""
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidProgram("expected text")
    return value


def list_of(value, limit: int = 1_000_000) -> list:
    if not isinstance(value, list) or len(value) > limit:
        raise InvalidProgram("expected a list")
    return value


def mapping_of(value, limit: int = 100_000) -> dict:
    if not isinstance(value, dict) or len(value) > limit:
        raise InvalidProgram("expected a map")
    return value


def texts(value) -> list[str]:
    return [text(v, 10_000) for v in list_of(value)]


def number(value):
    """A finite int (below 2^63) or float."""
    if type(value) not in (int, float) or not math.isfinite(value) or \
            (type(value) is int and abs(value) >= MAX_INTEGER):
        raise InvalidProgram("expected a finite number")
    return value


def fields(value, names: set[str]) -> dict:
    """``value`` if it is a map with exactly the keys ``names`` (a copy)."""
    if not isinstance(value, dict) or set(value) != names:
        raise InvalidProgram(f"expected the fields {', '.join(sorted(names))}")
    return dict(value)


def pairs(value) -> list[tuple[str, object]]:
    """``[[name, number], ...]``."""
    if not all(isinstance(p, list) and len(p) == 2 for p in list_of(value)):
        raise InvalidProgram("expected name, number pairs")
    return [(text(name, 200), number(amount)) for name, amount in value]


def small_program(value) -> tuple[str, str, Program]:
    """``{where, text, program}`` of a one-output program: (where, text, program)."""
    entry = fields(value, {"where", "text", "program"})
    program = Program.from_data(entry["program"])
    if len(program.outputs) != 1:
        raise InvalidProgram("a small program has one output")
    return text(entry["where"], 10_000), text(entry["text"], 10_000), program
