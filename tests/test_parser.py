"""Tests for the cascade language: parser, printer, IR round trips, errors and the YAML form."""

from __future__ import annotations

import math
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einsim
from einsim.language import ir
from einsim.language.affine import Affine, Term
from einsim.errors import (ArityError, CascadeError, CascadeSyntaxError,
                           DuplicateDefinitionError, EinsimError, IndexExpressionError,
                           IndexRangeError, MissingInitError, RankSizeConflictError,
                           ReductionError, SpecError, UnknownFunctionError, UnknownTensorError)
from einsim.language.parser import build_cascade

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------------------ the vocabulary

VARIABLES = list("abcdefghijklmnopqrstuvwxyz")
RANK_NAMES = ["M", "N", "P", "E", "F", "R"]
PARAM_NAMES = ["W", "L", "Z", "G"]
PARTITIONS = {"T": ("T1", "T0"), "U": ("U2", "U1", "U0")}
SIZE_NAMES = RANK_NAMES + PARAM_NAMES + ["T0", "U1", "U0", "M0"]
INPUT_TENSORS = ["A", "B", "X", "Y", "Q"]
UNARY = ["exp", "log", "sqrt", "neg", "abs", "recip", "square", "tanh", "sigmoid", "relu", "elu"]
BINARY_FUNCTIONS = ["max", "min"]
COMPARE_OPS = ["<", "<=", ">", ">=", "==", "!="]
REDUCE_OPS = ["sum", "max", "min", "prod", "any"]

finite_floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
small_ints = st.integers(min_value=-1000, max_value=1000)
numbers = st.one_of(finite_floats, small_ints, st.sampled_from([math.inf, -math.inf, 0.5, -2.25]))
# ``param W = -inf`` has its own test below (it does not parse); keep it out of the property so
# that the property can still find other round-trip bugs.
param_values = st.one_of(finite_floats, small_ints, st.sampled_from([math.inf, 0.5, -2.25]))


# Strategies draw *templates* over slots (variable k, tensor k) once, and ``_realise`` maps the
# slots onto the names of one Einsum; building strategies inside draws would be very slow.
SLOTS = 5

term_templates = st.tuples(st.integers(-4, 4), st.lists(st.sampled_from(SIZE_NAMES), max_size=2),
                           st.one_of(st.none(), st.integers(0, SLOTS - 1)))
affine_templates = st.lists(term_templates, min_size=1, max_size=3)

expression_templates = st.recursive(
    st.one_of(
        st.tuples(st.just("access"), st.integers(0, 10), st.lists(affine_templates, min_size=3,
                                                                   max_size=3)),
        st.tuples(st.just("number"), numbers),
        st.tuples(st.just("variable"), st.integers(0, SLOTS - 1)),
        st.tuples(st.just("size"), st.sampled_from(SIZE_NAMES)),
    ),
    lambda children: st.one_of(
        st.tuples(st.just("binary"), st.sampled_from("+-*/"), children, children),
        st.tuples(st.just("call"), st.sampled_from(UNARY), children),
        st.tuples(st.just("call"), st.sampled_from(BINARY_FUNCTIONS), children, children),
        st.tuples(st.just("where"), st.sampled_from(COMPARE_OPS), children, children, children,
                  children),
    ),
    max_leaves=8)

# A neighborhood's length, window, stride and dilation: a positive literal or a size.
scalar_templates = st.one_of(st.integers(1, 9).map(lambda c: [(c, [], None)]),
                             st.sampled_from(SIZE_NAMES).map(lambda n: [(1, [n], None)]))

condition_templates = st.recursive(
    st.one_of(
        st.tuples(st.just("compare"), st.sampled_from(COMPARE_OPS), affine_templates,
                  affine_templates),
        st.tuples(st.just("predicate"), st.just("within"),
                  st.lists(affine_templates, min_size=3, max_size=3)),
        st.tuples(st.just("predicate"), st.just("neighborhood"),
                  st.builds(lambda a, b, rest: [a, b, *rest], affine_templates, affine_templates,
                            st.lists(scalar_templates, min_size=2, max_size=4))),
    ),
    lambda children: st.one_of(
        st.tuples(st.just("bool"), st.sampled_from(["and", "or"]), children, children),
        st.tuples(st.just("not"), children),
    ),
    max_leaves=5)


def _affine(template, variables) -> Affine:
    return Affine.of([Term(c, tuple(sizes), None if v is None else variables[v % len(variables)])
                      for c, sizes, v in template])


def _expression(template, variables, tensors):
    kind = template[0]
    if kind == "access":
        name, arity = tensors[template[1] % len(tensors)]
        return ir.Access(name, tuple(_affine(a, variables) for a in template[2][:arity]))
    if kind == "number":
        return ir.Number(template[1])
    if kind == "variable":
        return ir.Symbol(variables[template[1] % len(variables)])
    if kind == "size":
        return ir.Symbol(template[1])
    if kind == "binary":
        return ir.BinaryOp(template[1], _expression(template[2], variables, tensors),
                           _expression(template[3], variables, tensors))
    if kind == "call":
        return ir.Call(template[1], tuple(_expression(a, variables, tensors)
                                          for a in template[2:]))
    assert kind == "where"
    left, right, a, b = (_expression(t, variables, tensors) for t in template[2:])
    return ir.Call("where", (ir.Compare(template[1], left, right), a, b))


def _condition(template, variables):
    kind = template[0]
    if kind == "compare":
        return ir.IndexComparison(template[1], _affine(template[2], variables),
                                  _affine(template[3], variables))
    if kind == "predicate":
        return ir.Predicate(template[1], tuple(_affine(a, variables) for a in template[2]))
    if kind == "bool":
        return ir.BoolOp(template[1], _condition(template[2], variables),
                         _condition(template[3], variables))
    assert kind == "not"
    return ir.Not(_condition(template[1], variables))


def expressions(variables, tensors):
    """Value expressions reading ``tensors`` (name -> arity) with affine indices over variables."""
    table = sorted(tensors.items())
    return expression_templates.map(lambda t: _expression(t, list(variables), table))


@st.composite
def einsums(draw, name, tensors):
    """One valid Einsum writing ``name`` (plain, distinct output variables)."""
    variables = draw(st.lists(st.sampled_from(VARIABLES), min_size=1, max_size=SLOTS,
                              unique=True))
    arity = draw(st.integers(min_value=0, max_value=min(3, len(variables))))
    output_vars = variables[:arity]
    output = ir.Access(name, tuple(Affine.variable(v) for v in output_vars))
    expression = draw(expressions(variables, tensors))
    condition = draw(st.one_of(st.none(), condition_templates.map(
        lambda t: _condition(t, variables))))
    einsum = ir.Einsum(output, expression, None, condition)
    if einsum.reduced and draw(st.booleans()):
        order = draw(st.permutations(einsum.reduced))
        einsum = ir.Einsum(output, expression,
                           ir.Reduction(draw(st.sampled_from(REDUCE_OPS)), tuple(order)),
                           condition)
    return einsum


@st.composite
def recurrence(draw, tensors):
    """``init RC[0, x] = v`` and ``RC[v + c, x] = max(RC[v, x], <expr>)``."""
    step, other = draw(st.lists(st.sampled_from(VARIABLES), min_size=2, max_size=2, unique=True))
    offset = draw(st.integers(min_value=1, max_value=3))
    init_value = draw(numbers.map(ir.Number))
    target = ir.Access("RC", (Affine.constant(0), Affine.variable(other)))
    output = ir.Access("RC", (Affine.of([Term(1, (), step), Term(offset)]),
                              Affine.variable(other)))
    previous = ir.Access("RC", (Affine.variable(step), Affine.variable(other)))
    body = draw(expressions([step, other], tensors))
    expression = ir.Call("max", (previous, body))
    return ir.Init(target, init_value), ir.Einsum(output, expression)


@st.composite
def cascades(draw):
    ranks = [ir.RankDecl(n, draw(st.one_of(st.none(), st.integers(0, 10_000))))
             for n in draw(st.lists(st.sampled_from(RANK_NAMES), unique=True, max_size=3))]
    params = [ir.ParamDecl(n, draw(param_values))
              for n in draw(st.lists(st.sampled_from(PARAM_NAMES), unique=True, max_size=2))]
    partitions = []
    for parent in draw(st.lists(st.sampled_from(sorted(PARTITIONS)), unique=True, max_size=2)):
        parts = PARTITIONS[parent]
        sizes = tuple(draw(st.one_of(st.integers(1, 512), st.just(part)))
                      for part in parts[1:])
        partitions.append(ir.Partition(parent, parts, sizes))
    input_arity = {name: draw(st.integers(0, 3))
                   for name in draw(st.lists(st.sampled_from(INPUT_TENSORS), min_size=1,
                                             max_size=3, unique=True))}
    tensors = dict(input_arity)
    statements: list = [*ranks, *params, *partitions]
    if draw(st.booleans()):
        statements.append(("input", tuple(
            ir.TensorDecl(name, tuple(draw(st.lists(st.sampled_from(RANK_NAMES), min_size=arity,
                                                    max_size=arity))))
            for name, arity in input_arity.items())))
    body = []
    for position in range(draw(st.integers(1, 4))):
        name = f"O{position + 1}"
        einsum = draw(einsums(name, tensors))
        body.append(einsum)
        tensors[name] = len(einsum.output.indices)
    if draw(st.booleans()):
        init, einsum = draw(recurrence(tensors))
        statements.append(init)
        body.insert(draw(st.integers(0, len(body))), einsum)
    statements.extend(body)
    return build_cascade(statements)


# ------------------------------------------------------------------------------- round trips


@SETTINGS
@given(cascades())
def test_printed_cascade_parses_back_to_the_same_ir(cascade):
    text = str(cascade)
    again = einsim.parse(text)
    assert again == cascade
    assert str(again) == text


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cascades())
def test_yaml_round_trip_of_random_cascades(cascade):
    assert einsim.load_yaml(einsim.to_yaml(cascade)) == cascade


def test_round_trip_examples():
    text = ("rank M = 4096\nparam W = 7\npartition M -> M1, M0 by 256\n"
            "input Q[E, P], K[E, M]\ninit RM[0, p] = -inf\n"
            "S[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0] where m1*M0 + m0 <= p and "
            "within(m1*M0 + m0, p, W)\n"
            "LM[m1, p] = max[m0] S[m1, m0, p]\n"
            "RM[m1 + 1, p] = max(RM[m1, p], LM[m1, p])\n")
    cascade = einsim.parse(text)
    assert str(cascade) == text
    assert einsim.parse(str(cascade)) == cascade
    assert cascade.ranks == (ir.RankDecl("M", 4096),)
    assert cascade.params == (ir.ParamDecl("W", 7),)
    assert cascade.partitions == (ir.Partition("M", ("M1", "M0"), (256,)),)
    assert cascade.inputs == (ir.TensorDecl("Q", ("E", "P")), ir.TensorDecl("K", ("E", "M")))
    s = cascade.einsums[0]
    assert s.output == ir.Access("S", tuple(Affine.variable(v) for v in ("m1", "m0", "p")))
    assert s.expression.right.indices[1] == Affine.of([Term(1, ("M0",), "m1"), Term(1, (), "m0")])
    assert s.reduced == ("e",)
    assert cascade.einsums[1].reduction == ir.Reduction("max", ("m0",))
    assert cascade.inits[0].value == ir.Number(-math.inf)


def test_statements_separated_by_semicolons_and_comments():
    one = einsim.parse("rank M = 4; A[m] = B[m] * 2  # double\n# nothing here\nC[m] = exp(A[m])")
    two = einsim.parse("rank M = 4\nA[m] = B[m] * 2\nC[m] = exp(A[m])\n")
    assert one == two
    assert [e.name for e in one.einsums] == ["A", "C"]


def test_equality_ignores_positions():
    a = einsim.parse("A[i] = B[i]")
    b = einsim.parse("\n\n   A[ i ] =    B[i]")
    assert a == b
    assert a.einsums[0].line == 1 and b.einsums[0].line == 3


def test_operator_precedence_and_unary_minus():
    c = einsim.parse("A[i] = B[i] - C[i] * D[i] / 2 + -E[i]")
    expression = c.einsums[0].expression
    assert expression.op == "+"
    assert expression.right == ir.Call("neg", (ir.Access("E", (Affine.variable("i"),)),))
    assert expression.left.op == "-"
    assert expression.left.right.op == "/"
    assert expression.left.right.left.op == "*"
    parens = einsim.parse("A[i] = B[i] - (C[i] - D[i])").einsums[0].expression
    assert parens.right == ir.BinaryOp("-", ir.Access("C", (Affine.variable("i"),)),
                                       ir.Access("D", (Affine.variable("i"),)))
    assert einsim.parse(str(einsim.parse("A[i] = B[i] - (C[i] - D[i])"))).einsums[0].expression \
        == parens


def test_affine_of_merges_like_terms_and_drops_zeros():
    m = Affine.of([Term(1, (), "m"), Term(2, ("M0",), "m1"), Term(-1, (), "m"), Term(3)])
    assert m == Affine((Term(2, ("M0",), "m1"), Term(3)))
    assert str(m) == "2*m1*M0 + 3"
    assert Affine.constant(0) == Affine(())
    assert str(Affine.constant(0)) == "0"
    assert str(Affine.of([Term(-1, (), "m"), Term(-2)])) == "-m - 2"
    assert Affine.of([Term(1, ("A", "B")), Term(1, ("B", "A"))]) == Affine((Term(2, ("A", "B")),))


def test_negative_infinite_parameter_round_trips():
    """``param W = -inf`` is what ``str(ParamDecl('W', -inf))`` prints, so it must parse."""
    cascade = build_cascade([ir.ParamDecl("W", -math.inf),
                             ir.Einsum(ir.Access("A", (Affine.variable("i"),)),
                                       ir.BinaryOp("*", ir.Access("B", (Affine.variable("i"),)),
                                                   ir.Symbol("W")))])
    assert str(cascade).startswith("param W = -inf\n")
    assert einsim.parse(str(cascade)) == cascade
    assert einsim.parse("param W = -inf").params[0].value == -math.inf


def test_large_integer_literal_round_trips():
    text = "A[i] = B[i] * 12345678901234567891"
    cascade = einsim.parse(text)
    assert cascade.einsums[0].expression.right == ir.Number(12345678901234567891)
    assert einsim.parse(str(cascade)) == cascade


# ------------------------------------------------------------------------------ garbage input

GARBAGE_ALPHABET = (string.ascii_letters + string.digits + "[](),;=+-*/<>!._ \n\t#")
OUTSIDE_LANGUAGE = "$@{}?%&`\"'~^|"


@SETTINGS
@given(st.text(alphabet=GARBAGE_ALPHABET, max_size=60))
def test_garbage_text_parses_or_raises_a_cascade_error(text):
    try:
        cascade = einsim.parse(text)
    except CascadeError as error:
        assert str(error)
        return
    assert isinstance(cascade, ir.Cascade)


@SETTINGS
@given(st.lists(st.sampled_from(["rank", "param", "partition", "input", "init", "where", "by",
                                 "->", "not", "and", "or", "inf", "max", "sum", "exp", "within",
                                 "M", "M0", "m1", "p", "Q", "K", "[", "]", "(", ")", ",", "=",
                                 "+", "-", "*", "/", "<=", "\n", ";", "1", "2.5", " "]),
                max_size=25).map("".join))
def test_token_soup_parses_or_raises_a_cascade_error(text):
    try:
        einsim.parse(text)
    except CascadeError:
        pass


@SETTINGS
@given(st.text(alphabet=GARBAGE_ALPHABET.replace("#", ""), max_size=40),
       st.sampled_from(OUTSIDE_LANGUAGE), st.data())
def test_character_outside_the_language_is_a_syntax_error(text, bad, data):
    position = data.draw(st.integers(0, len(text)))
    garbage = text[:position] + bad + text[position:]
    with pytest.raises(CascadeSyntaxError) as caught:
        einsim.parse(garbage)
    assert type(caught.value) is CascadeSyntaxError


def test_form_feed_is_whitespace_and_the_error_names_the_bad_character():
    with pytest.raises(CascadeSyntaxError) as caught:
        einsim.parse("A[i] = B[i]\x0c$")
    assert (caught.value.line, caught.value.column) == (1, 13)
    assert "'$'" in str(caught.value)


def test_parse_rejects_non_text():
    with pytest.raises(TypeError):
        einsim.parse(b"A[i] = B[i]")


# ---------------------------------------------------------------------------- error examples


def _raises(kind, text, line, column):
    with pytest.raises(kind) as caught:
        einsim.parse(text)
    error = caught.value
    assert type(error) is kind
    assert isinstance(error, CascadeError) and isinstance(error, EinsimError)
    assert (error.line, error.column) == (line, column)
    assert str(error).startswith(f"line {line}, column {column}: ")
    return error


def test_malformed_statement():
    error = _raises(CascadeSyntaxError, "rank M = 4\nQK[m, p] = = Q[e, p]", 2, 12)
    assert "unexpected '='" in str(error)


def test_unexpected_character_position():
    error = _raises(CascadeSyntaxError, "A[p] = Q$[e, p]", 1, 9)
    assert "'$'" in str(error)


def test_unknown_tensor_with_declared_inputs():
    error = _raises(UnknownTensorError, "input Q[E, P]\nA[p] = Z[e, p]", 2, 8)
    assert "Z" in error.message


def test_undeclared_read_is_fine_without_input_declarations():
    cascade = einsim.parse("A[p] = Z[e, p]")
    assert cascade.input_names == ("Z",)


def test_unknown_function():
    error = _raises(UnknownFunctionError, "A[p] = exp(foo(Q[e, p]))", 1, 12)
    assert "foo" in error.message


def test_unknown_predicate():
    _raises(UnknownFunctionError, "A[p] = Q[e, p] where nearby(e, p)", 1, 22)


def test_function_with_wrong_number_of_arguments():
    _raises(ArityError, "A[p] = exp(Q[e, p], Q[e, p])", 1, 8)


def test_predicate_with_wrong_number_of_arguments():
    _raises(ArityError, "A[p] = Q[e, p] where within(e, p)", 1, 22)


def test_tensor_arity_mismatch():
    error = _raises(ArityError, "A[p] = Q[e, p]\nB[p] = Q[p] * A[p]", 2, 8)
    assert "Q" in error.message


def test_rank_with_two_sizes():
    _raises(RankSizeConflictError, "rank M = 4\nrank M = 5\nA[m] = B[m]", 2, 6)


def test_partition_size_conflicting_with_rank_declaration():
    _raises(RankSizeConflictError, "rank M0 = 16\npartition M -> M1, M0 by 32\nA[m] = B[m]", 2, 11)


def test_explicit_reduction_must_list_exactly_the_reduced_variables():
    error = _raises(ReductionError, "A[p] = max[e, m] Q[e, p]", 1, 1)
    assert "m" in error.message
    _raises(ReductionError, "A[p] = max[e] Q[e, m, p]", 1, 1)
    _raises(ReductionError, "A[p, e] = sum[e] Q[e, p]", 1, 1)


def test_non_affine_index():
    error = _raises(IndexExpressionError, "A[p] = Q[m*p, p]", 1, 12)
    assert "m*p" in error.message


def test_output_index_combining_variables():
    _raises(IndexExpressionError, "A[m + p] = Q[m, p]", 1, 1)


def test_recurrence_without_init():
    error = _raises(MissingInitError, "A[p] = Q[0, p]\nRM[m + 1, p] = max(RM[m, p], Q[m, p])", 2, 1)
    assert "RM" in error.message


def test_self_read_without_step():
    _raises(IndexExpressionError, "init R[0] = 0\nR[m] = R[m] + Q[m]", 2, 1)


def test_duplicate_definition():
    _raises(DuplicateDefinitionError, "A[p] = Q[e, p]\nA[p] = Q[e, p]", 2, 1)


def test_partitioned_twice():
    _raises(DuplicateDefinitionError,
            "partition M -> M1, M0 by 4\npartition M -> MA, MB by 8\nA[m] = B[m]", 2, 11)


def test_init_of_unwritten_tensor():
    _raises(UnknownTensorError, "A[m] = B[m]\ninit Z[0] = 0", 2, 6)  # at the target Z[0]


def test_infinite_literal_is_rejected():
    _raises(CascadeSyntaxError, "A[m] = B[m] * 1e999", 1, 15)


def test_error_names_the_source_file():
    with pytest.raises(UnknownFunctionError) as caught:
        einsim.parse("A[p] = foo(Q[p])", source="mine.einsum")
    assert str(caught.value).startswith("mine.einsum, line 1, column 8: ")


def test_index_range_error_at_execution():
    cascade = einsim.parse("input X[M, P]\nY[p] = X[M, p]")
    with pytest.raises(IndexRangeError) as caught:
        einsim.execute(cascade, {"X": np.ones((3, 4))})
    assert (caught.value.line, caught.value.column) == (2, 8)
    assert str(caught.value).startswith("line 2, column 8: ")
    # the last valid coordinate is fine
    out = einsim.execute(einsim.parse("input X[M, P]\nY[p] = X[M - 1, p]"),
                         {"X": np.arange(12.0).reshape(3, 4)})
    np.testing.assert_array_equal(out["Y"], [8.0, 9.0, 10.0, 11.0])


def test_rank_size_conflict_between_inputs_and_sizes():
    cascade = einsim.parse("QK[m, p] = Q[e, p] * K[e, m]")
    with pytest.raises(RankSizeConflictError) as caught:
        einsim.execute(cascade, {"Q": np.ones((2, 3)), "K": np.ones((2, 5))}, sizes={"P": 4})
    assert "P" in str(caught.value)
    with pytest.raises(RankSizeConflictError):
        einsim.execute(cascade, {"Q": np.ones((2, 3)), "K": np.ones((4, 5))})


# ------------------------------------------------------------------------------------- YAML


@pytest.mark.parametrize("name", einsim.library.names())
def test_yaml_round_trip_of_library_cascades(name):
    cascade = einsim.library.get(name)
    text = einsim.to_yaml(cascade)
    loaded = einsim.load_yaml(text)
    assert loaded == cascade
    assert loaded.name == name
    assert einsim.parse(str(cascade)) == cascade


def test_yaml_matches_text_form():
    document = """
name: tiny
ranks: {M: 8, E: null}
params: {W: 2}
partitions: {M: {into: [M1, M0], by: [4]}}
inputs: {Q: [E, P], K: [E, M]}
einsums:
  - S[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0] where within(m1*M0 + m0, p, W)
"""
    text = ("rank M = 8\nrank E\nparam W = 2\npartition M -> M1, M0 by 4\n"
            "input Q[E, P], K[E, M]\n"
            "S[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0] where within(m1*M0 + m0, p, W)\n")
    assert einsim.load_yaml(document) == einsim.parse(text)
    assert einsim.load_yaml(document).name == "tiny"


def test_yaml_bad_partition_field():
    document = "partitions: {M: {into: [M1]}}\neinsums:\n  - A[m] = K[m]\n"
    with pytest.raises(SpecError) as caught:
        einsim.load_yaml(document)
    assert "partitions.M" in str(caught.value)


@pytest.mark.parametrize("document, field", [
    ("bogus: 1\neinsums: ['A[m] = K[m]']\n", "bogus"),
    ("ranks: {M: four}\neinsums: ['A[m] = K[m]']\n", "ranks.M"),
    ("params: {W: [1]}\neinsums: ['A[m] = K[m]']\n", "params.W"),
    ("einsums: {A: 1}\n", "einsums"),
    ("- just a list\n", "mapping"),
    ("einsums: [\n", "not valid YAML"),
])
def test_yaml_spec_errors_name_the_field(document, field):
    with pytest.raises(SpecError) as caught:
        einsim.load_yaml(document)
    assert field in str(caught.value)


def test_yaml_einsum_syntax_error_names_the_entry():
    document = "einsums:\n  - A[m] = K[m]\n  - B[m] = = A[m]\n"
    with pytest.raises(CascadeSyntaxError) as caught:
        einsim.load_yaml(document)
    assert "einsums[1]" in str(caught.value)
    assert "einsums[0]" not in str(caught.value)


def test_yaml_einsum_semantic_error_names_the_entry():
    document = "einsums:\n  - A[m] = K[m]\n  - B[m] = foo(A[m])\n"
    with pytest.raises(UnknownFunctionError) as caught:
        einsim.load_yaml(document)
    assert "einsums[1]" in str(caught.value)
    assert "einsums[0]" not in str(caught.value)


def test_yaml_semantic_error_after_declarations_names_the_entry():
    document = "ranks: {M: 4}\ninputs: {K: [M]}\neinsums:\n  - A[m] = K[m]\n  - B[m] = Z[m]\n"
    with pytest.raises(UnknownTensorError) as caught:
        einsim.load_yaml(document)
    assert "einsums[1]" in str(caught.value)
