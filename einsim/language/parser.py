"""Parse cascade text into the IR (:mod:`einsim.language.ir`) with a lark LALR grammar.

Lark errors are translated into :class:`~einsim.errors.CascadeSyntaxError` naming the line,
the column and what was expected; the parsed cascade is then checked by
:func:`einsim.language.semantics.check`.  Nothing in the text is ever evaluated as Python.

Hostile text is bounded: lines of at most :data:`MAX_LINE` characters, expressions nested at most
:data:`einsim.language.ir.MAX_DEPTH` levels (the tree is built without recursion), integer literals of at
most :data:`MAX_DIGITS` digits as values and 2**63 - 1 as indices and sizes, and no control
characters; each is a one-line :class:`~einsim.errors.EinsimError` naming the line.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from importlib import resources

import lark
from lark import Token, Tree

from einsim.language import ir
from einsim.language.affine import MAX_INDEX, Affine, Term
from einsim.errors import (ArgumentError, CascadeError, CascadeSyntaxError,
                           IndexExpressionError, LimitError)
from einsim.language.semantics import check

NAME = re.compile(r"[A-Z][A-Za-z0-9_]*")
"""A tensor, rank, size or parameter name (upper case first)."""

MAX_DIGITS = 309
"""Longest integer literal read as a value (the largest float is about 1.8e308)."""

MAX_LINE = 50_000
"""Longest line accepted, in characters (a statement at the depth limit needs a few thousand)."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_NESTING = {"binary", "negate", "call", "where_call", "or_cond", "and_cond", "not_cond"}

_READABLE = {
    "LSQB": "'['", "RSQB": "']'", "LPAR": "'('", "RPAR": "')'", "COMMA": "','",
    "EQUAL": "'='", "_NL": "end of line", "SEMICOLON": "';'", "UNAME": "upper-case name",
    "LNAME": "lower-case name", "INT": "integer", "FLOAT": "number", "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*' or '/'", "NEG": "'-'", "COMPARE": "comparison", "REDUCE_OP": "reduction operator",
    "STAR": "'*'", "$END": "end of input", "MORETHAN": "'>'",
}


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    grammar = resources.files("einsim.language").joinpath("grammar.lark").read_text()
    return lark.Lark(grammar, start=["program", "einsum_field", "init_field"], parser="lalr",
                     propagate_positions=True, maybe_placeholders=False)


def _expected(names) -> str:
    readable = sorted({_READABLE.get(n, n.strip('"').lower()) for n in names})
    if len(readable) > 8:
        readable = readable[:8] + ["..."]
    return ", ".join(readable)


def _pos(item) -> dict:
    meta = getattr(item, "meta", None)
    if isinstance(item, Token):
        return {"line": item.line or 0, "column": item.column or 0}
    if meta is not None and not getattr(meta, "empty", True):
        return {"line": meta.line, "column": meta.column}
    return {}


class _Builder:
    """Turns the lark parse tree into IR nodes (one method per rule, called by :func:`_build`)."""

    # ---- declarations
    def rank_decl(self, items):
        name = items[0]
        size = _index_integer(items[1], f"size of rank {name}") if len(items) > 1 else None
        return ir.RankDecl(str(name), size, **_pos(name))

    def param_decl(self, items):
        return ir.ParamDecl(str(items[0]), items[1], **_pos(items[0]))

    def partition_decl(self, items):
        # Grammar: parent, two or more parts, then the sizes of every part but the first.
        parent, *rest = items
        parts_count = (len(rest) + 1) // 2
        parts = tuple(str(t) for t in rest[:parts_count])
        sizes = tuple(_index_integer(t, f"tile size of {parent}") if t.type == "INT" else str(t)
                      for t in rest[parts_count:])
        if len(sizes) != len(parts) - 1:
            raise CascadeSyntaxError(
                f"partition of {parent} into {len(parts)} parts needs {len(parts) - 1} "
                f"size(s) after 'by', got {len(sizes)}", **_pos(parent))
        return ir.Partition(str(parent), parts, sizes, **_pos(parent))

    def tensor_shape(self, items):
        return ir.TensorDecl(str(items[0]), tuple(str(t) for t in items[1:]), **_pos(items[0]))

    def input_decl(self, items):
        return ("input", tuple(items))

    def init_stmt(self, items):
        target, value = items
        return ir.Init(target, value, line=target.line, column=target.column)

    def einsum(self, items):
        output, *rest = items
        reduction = next((r for r in rest if isinstance(r, ir.Reduction)), None)
        condition = next((r for r in rest if isinstance(r, _Filter)), None)
        expression = next(r for r in rest if not isinstance(r, (ir.Reduction, _Filter)))
        return ir.Einsum(output, expression, reduction,
                         condition.condition if condition else None,
                         line=output.line, column=output.column)

    def einsum_field(self, items):
        return items[0]

    def init_field(self, items):
        return self.init_stmt(items)

    def reduction(self, items):
        return ir.Reduction(str(items[0]), tuple(str(t) for t in items[1:]))

    def filter(self, items):
        return _Filter(items[0])

    # ---- conditions
    def or_cond(self, items):
        return ir.BoolOp("or", items[0], items[1])

    def and_cond(self, items):
        return ir.BoolOp("and", items[0], items[1])

    def not_cond(self, items):
        return ir.Not(items[0])

    def index_compare(self, items):
        return ir.IndexComparison(str(items[1]), items[0], items[2])

    def predicate(self, items):
        name = items[0]
        return ir.Predicate(str(name), tuple(items[1:]), **_pos(name))

    # ---- indices
    def index(self, items):
        terms: list[Term] = []
        sign = 1
        for item in items:
            if isinstance(item, Token):
                sign = -1 if str(item) == "-" else 1
            else:
                terms.append(Term(sign * item.coefficient, item.sizes, item.variable))
                sign = 1
        affine = Affine.of(terms)
        for term in affine.terms:
            if abs(term.coefficient) > MAX_INDEX:
                raise LimitError(f"index coefficient {_short(term.coefficient)} is too large; "
                                 f"expected at most 2**63 - 1", **_pos(items[0]))
        return affine

    def index_term(self, items):
        coefficient, sizes, variable = 1, [], None
        for factor in items:
            if factor.type == "INT":
                coefficient *= _index_integer(factor, "index")
                if abs(coefficient) > MAX_INDEX:
                    raise LimitError(f"index coefficient {_short(coefficient)} is too large; "
                                     "expected at most 2**63 - 1", **_pos(factor))
            elif factor.type == "UNAME":
                sizes.append(str(factor))
            elif variable is None:
                variable = str(factor)
            else:
                raise IndexExpressionError(
                    f"index term multiplies two rank variables ({variable}*{factor}); "
                    "indices must be affine in the rank variables", **_pos(factor))
        return Term(coefficient, tuple(sizes), variable)

    def access(self, items):
        name = items[0]
        return ir.Access(str(name), tuple(items[1:]), **_pos(name))

    # ---- expressions
    def binary(self, items):
        left, op, right = items
        return ir.BinaryOp(str(op), left, right)

    def negate(self, items):
        operand = items[1]
        if isinstance(operand, ir.Number):
            return ir.Number(-operand.value)
        return ir.Call("neg", (operand,), **_pos(items[0]))

    def infinity(self, _items):
        return ir.Number(math.inf)

    def number(self, items):
        return ir.Number(_number(items[0]))

    def signed_number(self, items):
        numbers = [t for t in items if t.type in ("INT", "FLOAT")]
        value = _number(numbers[0]) if numbers else math.inf  # the keyword inf leaves no token
        return -value if any(t.type == "NEG" for t in items) else value

    def function_name(self, items):
        return items[0]

    def call(self, items):
        name = items[0]
        return ir.Call(str(name), tuple(items[1:]), **_pos(name))

    def where_call(self, items):
        left, op, right, a, b = items
        return ir.Call("where", (ir.Compare(str(op), left, right), a, b))

    def symbol(self, items):
        return ir.Symbol(str(items[0]))

    def program(self, items):
        return [i for i in items if not isinstance(i, Token)]


class _Filter:
    def __init__(self, condition):
        self.condition = condition


def _number(token: Token):
    text = str(token)
    if token.type == "INT":
        if len(text.lstrip("0")) > MAX_DIGITS:
            raise LimitError(f"integer {_short(text)} is too large; expected at most "
                             f"{MAX_DIGITS} digits (write inf for infinity)", **_pos(token))
        value = int(text.lstrip("0") or "0")
        try:
            float(value)
        except OverflowError:
            raise LimitError(f"integer {_short(text)} is too large for a number; write inf for "
                             "infinity", **_pos(token)) from None
        return value
    value = float(text)
    if math.isinf(value):
        raise CascadeSyntaxError(f"number {_short(text)} is too large; write inf for infinity",
                                 **_pos(token))
    return value


def _index_integer(token: Token, what: str) -> int:
    """An integer literal used as an index or size: at most 2**63 - 1."""
    text = str(token)
    digits = text.lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > MAX_INDEX:
        raise LimitError(f"{what}: integer {_short(text)} is too large; expected at most "
                         "2**63 - 1", **_pos(token))
    return int(digits)


def _short(text) -> str:
    """A long literal abbreviated for a one-line message (digits counted, not converted)."""
    text = str(text) if not isinstance(text, int) or abs(text).bit_length() < 4000 else "huge"
    return text if len(text) <= 24 else f"{text[:10]}...{text[-6:]} ({len(text)} digits)"


def _build(tree: Tree, source: str):
    """Apply :class:`_Builder` bottom-up without recursion, refusing trees deeper than
    :data:`einsim.language.ir.MAX_DEPTH` nesting levels (checked on the way down)."""
    builder = _Builder()
    stack: list = [(tree, 0, False)]
    values: list = []
    while stack:
        node, level, ready = stack.pop()
        if not isinstance(node, Tree):
            values.append(node)
            continue
        if ready:
            count = len(node.children)
            items = values[len(values) - count:] if count else []
            del values[len(values) - count:]
            values.append(getattr(builder, node.data)(items))
            continue
        if node.data in _NESTING:
            level += 1
            if level > ir.MAX_DEPTH:
                where = _pos(node)
                raise LimitError(f"expression nested deeper than {ir.MAX_DEPTH} levels (each "
                                 "operator of a chain like a + b + c nests one); split it into "
                                 "several Einsums", where.get("line", 0), where.get("column", 0),
                                 source)
        stack.append((node, level, True))
        stack.extend((child, level, False) for child in reversed(node.children))
    return values[0]


def _check_text(text, source: str, argument: str = "text") -> str:
    """Refuse non-text and control characters with a one-line error naming where."""
    if not isinstance(text, str):
        hint = "; decode it first, e.g. data.decode('utf-8')" if isinstance(
            text, (bytes, bytearray)) else ""
        raise ArgumentError(f"{argument}: expected cascade text (str), got "
                            f"{type(text).__name__}{hint}")
    if len(text) > MAX_LINE:
        for number, line in enumerate(text.split("\n"), 1):
            if len(line) > MAX_LINE:
                raise LimitError(f"line of {len(line)} characters; expected at most {MAX_LINE} "
                                 "(split the statement into several Einsums)", number, 1,
                                 source)
    bad = _CONTROL.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        column = bad.start() - text.rfind("\n", 0, bad.start())
        raise CascadeSyntaxError(f"control character {bad.group()!r} is not allowed; expected "
                                 "cascade text", line, column, source)
    return text


def parse(text: str, name: str = "", source: str = "") -> ir.Cascade:
    """Parse cascade text into a checked, immutable :class:`~einsim.language.ir.Cascade`.

    Parameters
    ----------
    text : str
        The cascade, one statement per line (``#`` starts a comment).
    name : str, optional
        A name to attach to the cascade (not part of its equality).
    source : str, optional
        Where the text came from (a file name), used in error messages.

    Raises
    ------
    CascadeSyntaxError
        For text that does not follow the grammar (or has no statement); other
        :class:`~einsim.errors.CascadeError` subclasses for semantic mistakes (unknown tensor,
        missing init, ...); :class:`~einsim.errors.LimitError` for expressions nested deeper
        than :data:`einsim.language.ir.MAX_DEPTH` or literals too large;
        :class:`~einsim.errors.ArgumentError` (a ``TypeError``) for non-text.
    """
    statements = parse_statements(text, source)
    if not statements:
        raise CascadeSyntaxError("empty cascade (no statements); expected at least one Einsum "
                                 "such as 'A[m] = B[m]'", 0, 0, source)
    return build_cascade(statements, name=name, source=source)


def parse_statements(text: str, source: str = "", start: str = "program") -> list:
    """Parse text into a list of IR statements without semantic checks.

    ``start`` is ``program`` (any statements), or ``einsum_field`` / ``init_field`` for exactly
    one Einsum / one ``init`` body (``R[0] = 0``), as the YAML form's fields are read.
    """
    _check_text(text, source)
    try:
        tree = _parser().parse(text if text.endswith("\n") else text + "\n", start=start)
    except lark.exceptions.UnexpectedCharacters as error:
        raise CascadeSyntaxError(
            f"unexpected character {error.char!r}; expected {_expected(error.allowed)}",
            error.line, error.column, source) from None
    except lark.exceptions.UnexpectedEOF as error:
        raise CascadeSyntaxError(f"unexpected end of input; expected {_expected(error.expected)}",
                                 0, 0, source) from None
    except lark.exceptions.UnexpectedToken as error:
        found = "end of line" if error.token.type == "_NL" else repr(_short(str(error.token)))
        if error.token.type == "SEMICOLON":
            found = "';' (one statement per field)" if start != "program" else "';'"
        if error.token.type == "$END":
            found = "end of input"
        raise CascadeSyntaxError(f"unexpected {found}; expected {_expected(error.expected)}",
                                 error.line if error.line != -1 else 0,
                                 error.column if error.column != -1 else 0, source) from None
    try:
        built = _build(tree, source)
    except CascadeError as error:
        if error.source or not source:
            raise
        raise type(error)(error.message, error.line, error.column, source) from None
    return [built] if start != "program" else built


def build_cascade(statements: list, name: str = "", source: str = "") -> ir.Cascade:
    """Group statements into a :class:`~einsim.language.ir.Cascade` and run the semantic checks."""
    groups: dict[str, list] = {k: [] for k in ("ranks", "params", "partitions", "inputs", "inits",
                                                "einsums")}
    kinds = {ir.RankDecl: "ranks", ir.ParamDecl: "params", ir.Partition: "partitions",
             ir.Init: "inits", ir.Einsum: "einsums", ir.TensorDecl: "inputs"}
    for statement in statements:
        if isinstance(statement, tuple) and statement[0] == "input":
            groups["inputs"].extend(statement[1])
        else:
            groups[kinds[type(statement)]].append(statement)
    cascade = ir.Cascade(**{k: tuple(v) for k, v in groups.items()}, name=name)
    check(cascade, source)
    return cascade
