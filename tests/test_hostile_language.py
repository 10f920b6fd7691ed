"""Hostile input to the language layer: every bad cascade is one typed, one-line error.

Deep and long expressions, huge literals, non-finite and fractional sizes, bad ``init``s and
``neighborhood()`` arguments, injection through the YAML form's fields, YAML alias bombs and
duplicate keys, binary and empty input.  The hypothesis properties feed hostile text and YAML
to the parser and loader: each either succeeds (and round-trips) or raises an
:class:`~einsim.errors.EinsimError` with a one-line message, never any other exception.
``HOSTILE_COUNTS`` tallies the generated cases by kind (printed with ``pytest -s``).
"""

from __future__ import annotations

import collections
import copy
import math
import sys
import time
import warnings

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einsim
from einsim.language import ir
from einsim.language.affine import Affine
from einsim.errors import (ArgumentError, CascadeError, CascadeSyntaxError,
                           DuplicateDefinitionError, EinsimError, IndexExpressionError,
                           IndexRangeError, LimitError, SizeError, SpecError)
from einsim.language.functions import neighborhood
from einsim.language.parser import MAX_LINE, build_cascade
from einsim.language.sizes import input_axis_ranks, resolve_sizes, tensor_extents
from einsim.specfile import MAX_EXPANDED_NODES, load_yaml_text

FUZZ = settings(max_examples=300, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HOSTILE_COUNTS: collections.Counter = collections.Counter()
PARSED: collections.Counter = collections.Counter()  # of those, the ones that parsed


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    total = sum(HOSTILE_COUNTS.values())
    print(f"\nhostile language cases: {total} "
          + ", ".join(f"{k}: {v} ({PARSED[k]} accepted)" for k, v in
                      sorted(HOSTILE_COUNTS.items())))


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message.strip() and "\n" not in message, repr(message)
    return message


def _raises(kind, function, *args, **kwargs) -> str:
    with pytest.raises(kind) as caught:
        function(*args, **kwargs)
    assert isinstance(caught.value, EinsimError)
    return _one_line(caught.value)


# ------------------------------------------------------------------ deep and long expressions

DEEP = {
    "nested calls": "A[m] = " + "exp(" * 3000 + "B[m]" + ")" * 3000,
    "long sum": "A[m] = " + " + ".join(["B[m]"] * 20000),
    "long sum over continued lines": "A[m] = " + " + \\\n".join(["B[m]"] * 20000),
    "long product": "A[m] = " + " * ".join(["B[m]"] * 5000),
    "nested negation": "A[m] = " + "-(" * 3000 + "B[m]" + ")" * 3000,
    "nested max": "A[m] = " + "max(B[m], " * 3000 + "B[m]" + ")" * 3000,
    "long and": "A[m, p] = B[m] where " + " and ".join(["m <= p"] * 5000),
    "nested not": "A[m, p] = B[m] where " + "not " * 5000 + "m <= p",
}


@pytest.mark.parametrize("kind", sorted(DEEP))
def test_deep_or_long_expression_states_the_limit(kind):
    message = _raises(LimitError, einsim.parse, "rank M = 4\n" + DEEP[kind], source="deep.einsum")
    assert f"nested deeper than {ir.MAX_DEPTH} levels" in message \
        or f"expected at most {MAX_LINE}" in message  # a line too long to be worth parsing
    assert message.startswith("deep.einsum, line 2, column ")


def test_parentheses_alone_do_not_nest():
    assert einsim.parse("A[m] = " + "(" * 3000 + "B[m]" + ")" * 3000) == einsim.parse(
        "A[m] = B[m]")


@pytest.mark.parametrize("text", [
    "A[m] = " + " + ".join(["B[m]"] * ir.MAX_DEPTH),
    "A[m] = " + "exp(" * (ir.MAX_DEPTH - 1) + "B[m]" + ")" * (ir.MAX_DEPTH - 1),
    "A[m, p] = B[m] where " + "not " * (ir.MAX_DEPTH - 1) + "m <= p",
])
def test_expression_at_the_limit_works_everywhere_with_a_small_stack(text):
    cascade = einsim.parse(text)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(_stack()) + 150)  # printing, equality and hashing never recurse
    try:
        again = einsim.parse(str(cascade))
        assert again == cascade and hash(again) == hash(cascade)
        assert einsim.load_yaml(einsim.to_yaml(cascade)) == cascade
    finally:
        sys.setrecursionlimit(limit)
    einsim.execute(cascade, {"B": np.ones(3)}, sizes={"P": 3})


def _stack() -> list:
    frame, frames = sys._getframe(), []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def test_deep_ir_built_in_python_is_refused():
    node: ir.Expression = ir.Access("B", (Affine.variable("m"),))
    for _ in range(5000):
        node = ir.Call("exp", (node,))
    einsum = ir.Einsum(ir.Access("A", (Affine.variable("m"),)), node, line=3)
    assert "nested deeper" in _raises(LimitError, build_cascade, [einsum])
    assert len(list(ir.walk(node))) == 5001  # walking is iterative
    assert ir.depth(node) > ir.MAX_DEPTH


# ----------------------------------------------------------------------- numbers at the edges

@pytest.mark.parametrize("text, words", [
    ("A[m] = B[m] * " + "9" * 400, ["integer", "400 digits", "at most 309 digits"]),
    ("A[m] = B[m] * 2" + "0" * 308, ["too large for a number"]),
    ("A[m] = B[m + " + "9" * 5000 + "]", ["5000 digits", "2**63 - 1"]),
    (f"A[m] = B[m + {2**63}]", ["2**63 - 1"]),
    (f"A[m] = B[{2**62}*4*m]", ["coefficient", "2**63 - 1"]),
    ("rank M = " + "9" * 5000 + "\nA[m] = B[m]", ["size of rank M", "2**63 - 1"]),
    (f"partition M -> M1, M0 by {2**63}\nA[m1, m0] = B[m1*M0 + m0]", ["tile size of M"]),
    ("param W = " + "9" * 400, ["400 digits"]),
    ("A[m] = B[m] * 1e400", ["too large", "inf"]),
])
def test_huge_literal_is_a_clear_error(text, words):
    message = _raises(CascadeError, einsim.parse, text)
    for word in words:
        assert word in message, (word, message)


def test_literals_within_bounds_parse():
    assert einsim.parse(f"A[m] = B[m + {2**63 - 1}]").einsums[0].inputs[0].indices[0] \
        .offset({}) == 2**63 - 1
    assert einsim.parse("A[m] = B[m] * " + "0" * 5000 + "7").einsums[0].expression.right \
        == ir.Number(7)
    assert einsim.parse("A[m] = B[m] * 1e-400").einsums[0].expression.right == ir.Number(0.0)


MASK = "rank M = 4\nA[m] = B[m] where m < W"


@pytest.mark.parametrize("value, words", [
    (math.inf, ["W", "inf", "finite integer"]),
    (-math.inf, ["W", "inf"]),
    (1.5, ["W", "1.5", "integer"]),  # never truncated to the mask m < 1
    (2**63, ["W", "2**63 - 1"]),
    (-3, ["W", "non-negative"]),
])
def test_size_used_in_an_index_must_be_a_finite_integer(value, words):
    cascade = einsim.parse(MASK)
    message = _raises(SizeError, resolve_sizes, cascade, {}, {"W": value})
    for word in words:
        assert word in message, (word, message)
    with pytest.raises(EinsimError):
        einsim.execute(cascade, {"B": np.ones(4)}, sizes={"W": value})


@pytest.mark.parametrize("sizes, kind, words", [
    ({"W": math.nan}, SizeError, ["sizes['W']", "nan"]),
    ({"W": "3"}, ArgumentError, ["sizes['W']", "str"]),
    ({"W": True}, ArgumentError, ["sizes['W']", "bool"]),
    ({"W": 1 + 2j}, ArgumentError, ["sizes['W']", "complex"]),
    ({3: 4}, ArgumentError, ["sizes", "str names"]),
    ([("W", 3)], ArgumentError, ["sizes", "dict", "list"]),
])
def test_bad_sizes_argument_names_the_argument(sizes, kind, words):
    message = _raises(kind, resolve_sizes, einsim.parse(MASK), {}, sizes)
    for word in words:
        assert word in message, (word, message)


def test_integral_float_sizes_become_ints_and_value_parameters_stay_real():
    cascade = einsim.parse("rank M = 4\nparam S = 0.5\nparam N = -inf\n"
                           "A[m] = B[m] * S + N where m < W")
    sizes = resolve_sizes(cascade, {}, {"W": 2.0})
    assert sizes["W"] == 2 and isinstance(sizes["W"], int)
    assert sizes["S"] == 0.5 and sizes["N"] == -math.inf


def test_fractional_parameter_in_an_index_is_refused():
    cascade = einsim.parse("rank M = 4\nparam W = 1.5\nA[m] = B[m] where m < W")
    assert "line 2" in _raises(SizeError, resolve_sizes, cascade, {}, {})


def test_affine_code_refuses_non_finite_sizes_by_name():
    index = einsim.parse("A[m] = B[m + W]").einsums[0].inputs[0].indices[0]
    for value in (math.inf, math.nan, 2.5, "7"):
        assert "size W" in _raises(SizeError, index.evaluate, {"W": value}, {"m": 0})


# ---------------------------------------------------------------------------------- inits

RECURRENCE = "R[m + 1] = R[m] + B[m]"


@pytest.mark.parametrize("inits, kind, words", [
    (["init R[0] = m"], IndexExpressionError, ["variable m on the right"]),
    (["init S[0, p] = X[q]"], IndexExpressionError, ["variable q"]),
    (["init R[0] = 1", "init R[0] = 2"], DuplicateDefinitionError, ["line 1", "one start"]),
    (["init R[7] = 1"], IndexRangeError, ["outside the range of the recurrence", "index 0"]),
    (["init R[M] = 1"], IndexRangeError, ["outside the range"]),
    (["init A[0] = 5"], DuplicateDefinitionError, ["not a recurrence"]),
])
def test_bad_init_is_an_error(inits, kind, words):
    body = {"S": "S[m + 1, p] = S[m, p] + B[m]", "A": "A[m] = B[m]"}.get(inits[0][5],
                                                                      RECURRENCE)
    message = _raises(kind, einsim.parse, "\n".join(inits + [body]))
    for word in words:
        assert word in message, (word, message)


def test_overlapping_inits_are_an_error_and_disjoint_ones_are_fine():
    body = "S[m + 2, p] = S[m, p] + S[m + 1, p] + B[m]"
    _raises(DuplicateDefinitionError, einsim.parse, f"init S[0, p] = 0\ninit S[0, 1] = 5\n{body}")
    cascade = einsim.parse(f"init S[0, p] = 0\ninit S[1, p] = 1\n{body}")
    assert len(cascade.inits) == 2


def test_init_outside_the_tensor_on_another_axis_is_an_error_at_run_time():
    cascade = einsim.parse("rank M = 4\nrank F = 2\ninit S[5, 0] = 1\n"
                           "S[f, m + 1] = S[f, m] + B[m]")
    message = _raises(IndexRangeError, tensor_extents, cascade, {"M": 4, "F": 2}, {})
    assert "S[5, 0]" in message and "axis 0" in message


# ------------------------------------------------------------------- neighborhood arguments

@pytest.mark.parametrize("arguments, words", [
    ("P, 0", ["window = 0", "at least 1"]),
    ("P, 3, 0", ["stride = 0"]),
    ("P, 3, 1, -1", ["dilation = -1"]),
    ("P, 3, 1, 0", ["dilation = 0"]),
    ("P, 3, 1, 1, 2", ["causal = 2", "0 or 1"]),
    ("0, 3", ["length = 0"]),
])
def test_neighborhood_literal_argument_out_of_range(arguments, words):
    message = _raises(IndexRangeError, einsim.parse,
                      f"A[p] = B[m] where neighborhood(p, m, {arguments})")
    for word in words:
        assert word in message, (word, message)


def test_neighborhood_argument_from_sizes_and_with_a_variable():
    cascade = einsim.parse("A[p] = B[m] where neighborhood(p, m, P, W)")
    assert "window = 0" in _raises(IndexRangeError, resolve_sizes, cascade, {},
                                   {"P": 4, "M": 4, "W": 0})
    assert "window = p" in _raises(IndexExpressionError, einsim.parse,
                                   "A[p] = B[m] where neighborhood(p, m, P, p)")
    assert "stride = 0" in _raises(SizeError, neighborhood, 0, 0, 4, 2, 0)


# ------------------------------------------------------------------------- the YAML form

@pytest.mark.parametrize("document, words", [
    ({"init": ["R[0] = 0; partition M -> M1, M0 by 2"], "einsums": [RECURRENCE]},
     ["init[0]", "';'"]),
    ({"init": ["R[0] = 0\npartition M -> M1, M0 by 2"], "einsums": [RECURRENCE]},
     ["init[0]"]),
    ({"einsums": ["A[m] = B[m]; rank N = 4"]}, ["einsums[0]", "';'"]),
    ({"einsums": ["A[m] = B[m]\ninput C[N]"]}, ["einsums[0]"]),
    ({"einsums": ["rank N = 4"]}, ["einsums[0]"]),
    ({"ranks": {"M = 3; rank N": 4}, "einsums": ["A[m] = B[m]"]}, ["ranks", "not a name"]),
    ({"ranks": {"M": "3; rank N = 4"}, "einsums": ["A[m] = B[m]"]}, ["ranks.M"]),
    ({"inputs": {"B": ["M]; input C[N"]}, "einsums": ["A[m] = B[m]"]}, ["inputs.B"]),
    ({"inputs": {"B[M], C": ["N"]}, "einsums": ["A[m] = B[m]"]}, ["inputs", "not a name"]),
    ({"partitions": {"M": {"into": ["M1", "M0 by 2\nrank N"], "by": [2]}},
      "einsums": ["A[m] = B[m]"]}, ["partitions.M.into"]),
    ({"partitions": {"M": {"into": ["M1", "M0"], "by": ["2; rank N = 1"]}},
      "einsums": ["A[m] = B[m]"]}, ["partitions.M.by"]),
    ({"params": {"W": float("nan")}, "einsums": ["A[m] = B[m]"]}, ["params.W", "nan"]),
    ({"params": {"W": 10**400}, "einsums": ["A[m] = B[m]"]}, ["params.W", "too large"]),
    ({"ranks": {"M": 2**63}, "einsums": ["A[m] = B[m]"]}, ["ranks.M"]),
    ({"ranks": {"M": 1.5}, "einsums": ["A[m] = B[m]"]}, ["ranks.M"]),
    ({"einsums": [["A[m] = B[m]"]]}, ["einsums[0]", "string"]),
    ({"einsums": []}, ["at least one Einsum"]),
])
def test_yaml_fields_cannot_inject_statements(document, words):
    message = _raises(EinsimError, einsim.load_yaml, yaml.safe_dump(document), source="c.yaml")
    for word in words:
        assert word in message, (word, message)


def test_yaml_built_from_fields_matches_text():
    document = {"ranks": {"M": 8}, "params": {"W": 3}, "inputs": {"B": ["M"]},
                "partitions": {"M": {"into": ["M1", "M0"], "by": [4]}},
                "init": ["R[0] = -inf"], "einsums": ["R[m + 1] = max(R[m], B[m])"]}
    text = ("rank M = 8\nparam W = 3\npartition M -> M1, M0 by 4\ninput B[M]\n"
            "init R[0] = -inf\nR[m + 1] = max(R[m], B[m])\n")
    assert einsim.load_yaml(yaml.safe_dump(document)) == einsim.parse(text)


def test_yaml_semantic_error_names_the_field():
    document = {"inputs": {"B": ["M"]}, "einsums": ["A[m] = B[m]", "C[m] = D[m]"]}
    message = _raises(CascadeError, einsim.load_yaml, yaml.safe_dump(document))
    assert "einsums[1]" in message and "unknown tensor D" in message


def _laughs(levels: int = 9, fan: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_a_cascade_is_refused_fast():
    bomb = "einsums:\n  - &x [" + ", ".join(["lol"] * 9) + "]\n"
    for level in range(8):
        bomb += f"  - &y{level} [" + ", ".join(["*x" if level == 0 else f"*y{level - 1}"] * 9) \
            + "]\n"
    started = time.perf_counter()
    message = _raises(SpecError, einsim.load_yaml, bomb, source="bomb.yaml")
    assert time.perf_counter() - started < 1.0
    assert "bomb.yaml" in message and f"past {MAX_EXPANDED_NODES} nodes" in message


def test_alias_bomb_and_recursive_alias_in_any_spec_are_yaml_errors():
    with pytest.raises(yaml.YAMLError, match="past"):
        load_yaml_text(_laughs())
    with pytest.raises(yaml.YAMLError, match="contains it"):
        load_yaml_text("a: &a [1, *a]\n")
    assert load_yaml_text("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\nl: [*b, *b]\n") == {
        "base": {"x": 1, "y": 2}, "d": {"x": 3, "y": 2}, "l": [{"x": 1, "y": 2}] * 2}


@pytest.mark.parametrize("text, key, line", [
    ("einsums: ['A[m] = B[m]']\neinsums: ['A[m] = C[m]']\n", "'einsums'", 2),
    ("ranks:\n  M: 4\n  E: 2\n  M: 8\neinsums: ['A[m] = B[m]']\n", "'M'", 4),
])
def test_duplicate_yaml_key_names_the_key_and_line(text, key, line):
    message = _raises(SpecError, einsim.load_yaml, text, source="dup.yaml")
    assert f"duplicate key {key}" in message and f"line {line}" in message


# ----------------------------------------------------------------- binary, NUL, empty input

@pytest.mark.parametrize("text, kind, words", [
    (b"A[m] = B[m]", ArgumentError, ["str", "bytes"]),
    (None, ArgumentError, ["NoneType"]),
    ("A[m] = B[m]\x00", CascadeSyntaxError, ["line 1, column 12", "control character"]),
    ("A[m] = B[m]\n\x1b[31m", CascadeSyntaxError, ["line 2, column 1"]),
    ("", CascadeSyntaxError, ["empty cascade"]),
    ("  # only a comment\n\n", CascadeSyntaxError, ["empty cascade"]),
    ("A[m] = B[m]\ud800", CascadeSyntaxError, ["unexpected character"]),
])
def test_binary_nul_and_empty_text(text, kind, words):
    message = _raises(kind, einsim.parse, text)
    for word in words:
        assert word in message, (word, message)
    if kind is ArgumentError:
        assert isinstance(pytest.raises(TypeError, einsim.parse, text).value, TypeError)


@pytest.mark.parametrize("text, words", [
    (b"\xff\xfe\x00garbage", ["not UTF-8"]),
    ("", ["empty document"]),
    ("einsums: ['A[m] = B[m]']\x00", ["not valid YAML"]),
    ("- just\n- a list\n", ["expected a mapping"]),
])
def test_binary_and_empty_yaml(text, words):
    message = _raises(SpecError, einsim.load_yaml, text)
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("name, content", [
    ("deep.einsum", DEEP["nested calls"]),
    ("huge.einsum", "A[m] = B[m] * " + "9" * 400),
    ("nul.einsum", "A[m] = B[m]\x00\n"),
    ("empty.einsum", ""),
    ("inject.yaml", yaml.safe_dump({"init": ["R[0] = 0; partition M -> M1, M0 by 2"],
                                    "einsums": [RECURRENCE]})),
    ("dup.yaml", "einsums: ['A[m] = B[m]']\neinsums: ['A[m] = C[m]']\n"),
    ("bomb.yaml", "einsums: " + _laughs().replace("\n", "\n  ").replace("a0:", "\n  a0:")),
])
def test_cli_prints_one_line_and_exits_2(tmp_path, capsys, name, content):
    from einsim.cli import main

    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    status = main(["passes", "--file", str(path)])
    captured = capsys.readouterr()
    assert status == 2, captured.err
    assert len(captured.err.splitlines()) == 1 and "Traceback" not in captured.err
    assert captured.out == ""


# ------------------------------------------------------------------------- hypothesis fuzzing

EDGE_NUMBERS = ["0", "-1", "1", "1.5", "-2.5", "inf", "-inf", "nan", str(2**63),
                str(2**63 - 1), str(2**64), "9" * 400, "0" * 400 + "3", "1e309", "1e-400",
                ".5", "1e3", "4294967296", "-" + "9" * 30]
NAMES = ["M", "P", "E", "W", "M0", "M1", "R", "B", "A"]
VARIABLES = ["m", "p", "e", "m0", "m1"]


def _index(draw) -> str:
    return draw(st.sampled_from(VARIABLES + EDGE_NUMBERS[:3] + ["M1", "m1*M0 + m0", "m + 1"]))


STATEMENT_TEMPLATES = [
    "rank {N} = {n}", "rank {N}", "param {N} = {n}", "partition M -> M1, M0 by {n}",
    "partition {N} -> {N}1, {N}0 by {N}0", "input {N}[{N}, {N}]", "init R[{n}] = {n}",
    "init R[{i}] = {v}", "R[m + 1] = max(R[m], B[m])", "A[{i}] = B[{i}] * {n}",
    "A[{i}, p] = sum[m] B[{i} + {n}] where m <= p", "A[p] = B[m] where neighborhood(p, m, {n}, {n})",
    "A[p] = B[m] where neighborhood(p, m, P, W, {n}, {n})", "A[m] = B[{n}*m]",
    "A[m] = B[m] where m < {n}", "A[m] = where(B[m] > {n}, {v}, {n})", "{N}[{i}] = {v}",
]


@st.composite
def valid_looking(draw) -> str:
    """Statements from templates, filled with edge numbers, names and variables."""
    lines = []
    for template in draw(st.lists(st.sampled_from(STATEMENT_TEMPLATES), min_size=1,
                                  max_size=6)):
        lines.append(template.format(
            N=draw(st.sampled_from(NAMES)), n=draw(st.sampled_from(EDGE_NUMBERS)),
            i=_index(draw), v=draw(st.sampled_from(VARIABLES + EDGE_NUMBERS + ["B[m]"]))))
    return draw(st.sampled_from(["\n", ";", "\r\n"])).join(lines)


@st.composite
def nested(draw) -> str:
    """Deep nesting and long chains around a small core, sometimes past the limit."""
    depth = draw(st.integers(0, 2 * ir.MAX_DEPTH))
    wrapper = draw(st.sampled_from([("exp(", ")"), ("-(", ")"), ("max(B[m], ", ")"),
                                    ("(", ")"), ("(B[m] + ", ")"), ("where(B[m] < 1, ", ", 0)")]))
    core = wrapper[0] * depth + "B[m]" + wrapper[1] * depth
    terms = draw(st.integers(1, 2 * ir.MAX_DEPTH))
    operator = draw(st.sampled_from([" + ", " * ", " - ", " / "]))
    condition = draw(st.sampled_from(["", " where " + " and ".join(["m <= p"] * terms),
                                      " where " + "not " * terms + "m <= p"]))
    return f"A[m, p] = {operator.join([core] * min(terms, 3))}{condition}"


@st.composite
def long_sum(draw) -> str:
    terms = draw(st.integers(ir.MAX_DEPTH - 5, ir.MAX_DEPTH + 5))
    return "A[m] = " + " + ".join(["B[m]"] * terms)


HOSTILE_TEXT = {
    "edge numbers and valid-looking statements": valid_looking(),
    "deep nesting": nested(),
    "long sums": long_sum(),
    "random garbage": st.text(max_size=200),
    "random garbage in the alphabet": st.text(alphabet="ABMPmp01[](),;=+-*/<>.e \n\x00\t#",
                                              max_size=120),
}


def _parse_or_einsim_error(kind: str, text: str):
    HOSTILE_COUNTS[kind] += 1
    try:
        cascade = einsim.parse(text)
    except EinsimError as error:
        _one_line(error)
        return None
    again = einsim.parse(str(cascade))  # a cascade that parses round-trips
    assert again == cascade and str(again) == str(cascade)
    PARSED[kind] += 1
    return cascade


@pytest.mark.parametrize("kind", sorted(HOSTILE_TEXT))
@FUZZ
@given(data=st.data())
def test_hostile_text_parses_and_round_trips_or_raises_einsim_error(kind, data):
    _parse_or_einsim_error(kind, data.draw(HOSTILE_TEXT[kind]))


EDGE_VALUES = st.sampled_from([0, -1, 1, 1.5, -2.5, math.inf, -math.inf, math.nan, 2**63,
                               2**63 - 1, 10**400, 10**20, 1e-400, True, "3", "inf", None,
                               [1], {"a": 1}, 1 + 0j])


@FUZZ
@given(sizes=st.dictionaries(st.sampled_from(["M", "P", "W", "M0", "E", 3]), EDGE_VALUES,
                             max_size=4),
       text=st.sampled_from([MASK, "partition M -> M1, M0 by M0\nA[m1, m0] = B[m1*M0 + m0]",
                             "A[p] = B[m] where neighborhood(p, m, P, W)",
                             "param S = 2\nA[m] = B[m] * S + W"]))
def test_hostile_sizes_resolve_or_raise_einsim_error(sizes, text):
    HOSTILE_COUNTS["sizes at the edges"] += 1
    try:
        resolved = resolve_sizes(einsim.parse(text), {}, sizes)
    except EinsimError as error:
        _one_line(error)
        return
    PARSED["sizes at the edges"] += 1
    for name, value in resolved.items():
        assert not isinstance(value, float) or not math.isnan(value), name


FIELD_TEXT = st.sampled_from([
    "N", "M", "P", "E", "Z", "W", "A[m] = B[m] + W", "C[m] = B[m]", "R[0] = 1", "S[m] = R[m]",
    "R[0] = 0; partition M -> M1, M0 by 2", "R[0] = 0\nrank N = 3", "A[m] = B[m]; input C[N]",
    "M]; input C[N", "M = 3; rank N", "M0 by 2\nrank Q", "A[m] = B[m]", "R[0] = -inf",
    "R[m + 1] = max(R[m], B[m])", "", " ", "#", "A[m] = B[m] # ; rank N", "\x00",
]) | st.text(max_size=30)
FIELD_VALUES = FIELD_TEXT | EDGE_VALUES | st.lists(FIELD_TEXT | EDGE_VALUES, max_size=3)


def _statement_count(cascade: ir.Cascade) -> int:
    return (len(cascade.ranks) + len(cascade.params) + len(cascade.partitions)
            + len(cascade.inputs) + len(cascade.inits) + len(cascade.einsums))


def _field_count(document: dict) -> int:
    count = 0
    for key in ("ranks", "params", "partitions", "inputs"):
        count += len(document.get(key) or {})
    for key in ("init", "einsums"):
        count += len(document.get(key) or [])
    return count


BASE_DOCUMENT = {"ranks": {"M": 8}, "params": {"W": 2}, "inputs": {"B": ["M"]},
                 "partitions": {"P": {"into": ["P1", "P0"], "by": [4]}},
                 "init": ["R[0] = 0"],
                 "einsums": ["R[m + 1] = max(R[m], B[m])", "A[m] = B[m] * W"]}
EDITS = [("ranks", "key"), ("ranks", "value"), ("params", "key"), ("params", "value"),
         ("inputs", "key"), ("inputs", "value"), ("partitions", "into"), ("partitions", "by"),
         ("init", 0), ("einsums", 1), ("einsums", 2)]


@FUZZ
@given(data=st.data())
def test_hostile_yaml_fields_build_one_statement_each_or_raise_einsim_error(data):
    HOSTILE_COUNTS["hostile YAML fields"] += 1
    document = copy.deepcopy(BASE_DOCUMENT)
    for _ in range(data.draw(st.integers(1, 3))):
        field, part = data.draw(st.sampled_from(EDITS))
        value = data.draw(FIELD_VALUES | FIELD_TEXT)
        if part == "key":
            document[field][value if isinstance(value, (str, int, float)) else "K"] = 1
        elif part == "value":
            document[field][next(iter(document[field]))] = value
        elif field == "partitions":
            document[field]["P"][part] = value
        else:
            entries = document[field]
            entries[min(part, len(entries)):part + 1] = [value]
    try:
        text = yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        return
    try:
        cascade = einsim.load_yaml(text)
    except EinsimError as error:
        _one_line(error)
        return
    assert _statement_count(cascade) == _field_count(yaml.safe_load(text))  # nothing injected
    PARSED["hostile YAML fields"] += 1


@FUZZ
@given(levels=st.integers(1, 12), fan=st.integers(1, 12), where=st.sampled_from(
    ["einsums", "ranks", "top"]))
def test_alias_fans_load_or_raise_a_yaml_error(levels, fan, where):
    HOSTILE_COUNTS["YAML alias fans"] += 1
    text = _laughs(levels, fan)
    if where != "top":
        text = f"{where}:\n" + "".join(f"  {line}\n" for line in text.splitlines())
    started = time.perf_counter()
    try:
        einsim.load_yaml(text)
    except EinsimError as error:
        _one_line(error)
    else:
        PARSED["YAML alias fans"] += 1
    assert time.perf_counter() - started < 1.0


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=valid_looking(), sizes=st.dictionaries(
    st.sampled_from(["M", "P", "W", "M0", "M1", "E"]),
    st.sampled_from([0, 1, 2, 3, -1, 1.5, math.inf, math.nan, "3", 2.0]), max_size=3))
def test_parsed_hostile_cascades_execute_or_raise_einsim_error(text, sizes):
    """Small sizes only (the memory guards are the executor's); sizes at the edges."""
    HOSTILE_COUNTS["executed valid-looking cascades"] += 1
    try:
        cascade = einsim.parse(text)
    except EinsimError:
        return
    inputs = {name: np.ones([3] * len(input_axis_ranks(cascade, name)))
              for name in cascade.input_names}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # overflow in emulated precision is not the point
            einsim.execute(cascade, inputs, sizes=sizes)
    except EinsimError as error:
        _one_line(error)
        return
    PARSED["executed valid-looking cascades"] += 1


def test_cached_tree_hashes_are_not_pickled():
    import pickle

    expression = einsim.parse("A[m] = exp(B[m] - max(B[m], 0))").einsums[0].expression
    hash(expression)
    copied = pickle.loads(pickle.dumps(expression))
    assert "_hash" not in copied.__dict__ and copied == expression
