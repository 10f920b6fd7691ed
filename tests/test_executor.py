"""Tests for the NumPy executor: classic Einsums, the library, masks, precision and tiling."""

from __future__ import annotations

import re
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import einsim
from einsim import library
from einsim.errors import (IndexRangeError, InputError, MissingSizeError,
                           PrecisionOverflowWarning, ScheduleError)
from einsim.errors import EinsimError
from einsim.execution.execute import run
from einsim.language.sizes import resolve_sizes
from einsim.library.references import masked_attention, neighborhood_mask_1d
from einsim.execution.schedule import Loop, Whole
from einsim.execution.validate import random_inputs

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _qkv(rng, E, P, M, F):
    return {"Q": rng.standard_normal((E, P)), "K": rng.standard_normal((E, M)),
            "V": rng.standard_normal((F, M))}


# ------------------------------------------------------------------- (a) classic Einsums


@st.composite
def classic_einsums(draw):
    letters = draw(st.lists(st.sampled_from("ijkl"), min_size=1, max_size=4, unique=True))
    sizes = {x: draw(st.integers(1, 5)) for x in letters}
    operands = []
    for _ in range(draw(st.integers(2, 3))):
        operands.append(draw(st.lists(st.sampled_from(letters), min_size=1, max_size=3)))
    used = sorted({x for operand in operands for x in operand})
    # Scalar outputs (``OUT[] = ...``) have their own test below.
    output = draw(st.permutations(used).flatmap(
        lambda order: st.integers(1, len(order)).map(lambda n: order[:n])))
    seed = draw(st.integers(0, 2**32 - 1))
    return sizes, operands, list(output), seed


def _classic_case(sizes, operands, output, seed):
    rng = np.random.default_rng(seed)
    names = ["A", "B", "C"][:len(operands)]
    arrays = {n: rng.standard_normal([sizes[x] for x in op]) for n, op in zip(names, operands)}
    reads = [f"{n}[{', '.join(op)}]" for n, op in zip(names, operands)]
    return names, arrays, reads


@SETTINGS
@given(classic_einsums())
def test_classic_einsum_matches_numpy(case):
    sizes, operands, output, seed = case
    names, arrays, reads = _classic_case(sizes, operands, output, seed)
    text = f"OUT[{', '.join(output)}] = {' * '.join(reads)}"
    result = einsim.execute(einsim.parse(text), arrays)["OUT"]
    spec = ",".join("".join(op) for op in operands) + "->" + "".join(output)
    expected = np.einsum(spec, *(arrays[n] for n in names))
    assert result.shape == expected.shape
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(classic_einsums(), st.sampled_from(["sum", "max", "min", "prod"]),
       st.floats(-3, 3, allow_nan=False))
def test_explicit_reductions_of_scaled_products_match_numpy(case, op, scale):
    sizes, operands, output, seed = case
    names, arrays, reads = _classic_case(sizes, operands, output, seed)
    used = sorted({x for operand in operands for x in operand})
    reduced = [x for x in used if x not in output]
    reduction = f"{op}[{', '.join(reduced)}] " if reduced else ""
    text = f"OUT[{', '.join(output)}] = {reduction}{scale!r} * {' * '.join(reads)}"
    cascade = einsim.parse(text)
    assert einsim.parse(str(cascade)) == cascade
    result = einsim.execute(cascade, arrays)["OUT"]
    full = scale * np.einsum(",".join("".join(o) for o in operands) + "->" + "".join(
        output + reduced), *(arrays[n] for n in names))
    axes = tuple(range(len(output), len(output) + len(reduced)))
    expected = {"sum": np.sum, "max": np.max, "min": np.min, "prod": np.prod}[op](full, axis=axes)
    np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("text, expected", [
    ("OUT[] = A[i] * B[i]", 5.0),
    ("OUT[] = max[i] A[i]", 2.0),
    ("OUT[] = exp(A[i] - A[i])", 3.0),
])
def test_scalar_output(text, expected):
    a = np.arange(3.0)
    out = einsim.execute(einsim.parse(text), {"A": a, "B": a})
    assert out["OUT"].shape == ()
    assert float(out["OUT"]) == expected


@pytest.mark.parametrize("tile", [None, "m"])
def test_one_dimensional_recurrence(tile):
    """Each step writes a single point R[m + 1]."""
    cascade = einsim.parse("init R[0] = 1\nR[m + 1] = R[m] * X[m]")
    out = einsim.execute(cascade, {"X": np.arange(1.0, 5.0)}, tile=tile)
    np.testing.assert_array_equal(out["R"], [1.0, 1.0, 2.0, 6.0, 24.0])


def test_affine_reads():
    x = np.arange(10.0)
    out = einsim.execute(einsim.parse("Y[m] = X[m + 1]\nR[m] = X[M - 1 - m]\nE[m] = X[2*m]"),
                         {"X": x}, sizes={"M": 5})
    np.testing.assert_array_equal(out["Y"], x[1:6])
    np.testing.assert_array_equal(out["R"], x[4::-1])
    np.testing.assert_array_equal(out["E"], x[0:10:2])


def test_three_level_partition_with_ragged_tail():
    cascade = einsim.parse("partition M -> M2, M1, M0 by 3, 2\n"
                           "S[m2, m1] = X[m2*M1*M0 + m1*M0 + m0]\n"
                           "Y[m2*M1*M0 + m1*M0 + m0] = X[m2*M1*M0 + m1*M0 + m0] + 1")
    x = np.arange(10.0)
    result = run(cascade, {"X": x})
    assert result.sizes["M2"] == 2
    np.testing.assert_array_equal(result.tensors["S"], [[1.0, 5.0, 9.0], [13.0, 17.0, 0.0]])
    np.testing.assert_array_equal(result.tensors["Y"], x + 1)


def test_inputs_follow_access_index_order():
    cascade = einsim.parse("QK[m, p] = Q[e, p] * K[e, m]")
    q, k = np.arange(6.0).reshape(2, 3), np.arange(8.0).reshape(2, 4)
    out = einsim.execute(cascade, {"Q": q, "K": k})
    np.testing.assert_allclose(out["QK"], k.T @ q)
    assert out["QK"].shape == (4, 3)


def test_coordinates_sizes_and_maps():
    cascade = einsim.parse("rank P = 3\nparam W = 4\nT[m, p] = m * 10 + p + W\n"
                           "S[p] = m\nR[m] = where(m < 2, sqrt(square(m - 5)), -1)")
    out = einsim.execute(cascade, {}, sizes={"M": 4})
    np.testing.assert_array_equal(out["T"], np.arange(4)[:, None] * 10 + np.arange(3) + 4)
    np.testing.assert_array_equal(out["S"], [6.0, 6.0, 6.0])
    np.testing.assert_array_equal(out["R"], [5.0, 4.0, -1.0, -1.0])


def test_map_functions():
    x = np.linspace(-3, 3, 13)
    cascade = einsim.parse(
        "A[i] = exp(X[i]); B[i] = tanh(X[i]); C[i] = sigmoid(X[i]); D[i] = relu(X[i])\n"
        "G[i] = elu(X[i]); H[i] = abs(X[i]); I[i] = neg(X[i]); J[i] = recip(X[i])\n"
        "L[i] = log(abs(X[i]) + 1); N[i] = max(X[i], 0.5); O[i] = min(X[i], 0.5)")
    out = einsim.execute(cascade, {"X": x})
    np.testing.assert_allclose(out["A"], np.exp(x))
    np.testing.assert_allclose(out["B"], np.tanh(x))
    np.testing.assert_allclose(out["C"], 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(out["D"], np.maximum(x, 0))
    np.testing.assert_allclose(out["G"], np.where(x > 0, x, np.exp(x) - 1))
    np.testing.assert_allclose(out["H"], np.abs(x))
    np.testing.assert_allclose(out["I"], -x)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(out["J"], 1 / x)  # recip(0) = inf
    np.testing.assert_allclose(out["L"], np.log(np.abs(x) + 1))
    np.testing.assert_allclose(out["N"], np.maximum(x, 0.5))
    np.testing.assert_allclose(out["O"], np.minimum(x, 0.5))


# ---------------------------------------------------------------------- empty-point semantics

X9 = np.arange(1.0, 10.0).reshape(3, 3)
Y9 = np.full((3, 3), 10.0)
UPPER = np.arange(3)[:, None] <= np.arange(3)[None, :]  # m <= p


def _masked(expression_lines: str) -> dict:
    return einsim.execute(einsim.parse("A[m, p] = X[m, p] where m <= p\n" + expression_lines),
                          {"X": X9, "Y": Y9})


def test_masked_points_are_zero_and_constants_create_no_points():
    out = _masked("B[m, p] = A[m, p] + 1\nD[m, p] = A[m, p] * Y[m, p]")
    np.testing.assert_array_equal(out["A"], np.where(UPPER, X9, 0))
    np.testing.assert_array_equal(out["B"], np.where(UPPER, X9 + 1, 0))
    np.testing.assert_array_equal(out["D"], np.where(UPPER, X9 * 10, 0))


def test_union_operators_treat_the_missing_side_as_identity():
    out = _masked("C[m, p] = A[m, p] + Y[m, p]\nG[m, p] = max(A[m, p], neg(Y[m, p]))\n"
                  "H[m, p] = min(A[m, p], Y[m, p])")
    np.testing.assert_array_equal(out["C"], np.where(UPPER, X9 + 10, 10))
    np.testing.assert_array_equal(out["G"], np.where(UPPER, X9, -10))
    np.testing.assert_array_equal(out["H"], np.where(UPPER, X9, 10))


def test_union_with_a_computed_full_operand():
    """``Y*1`` and ``Y - 20`` are present wherever Y is: they are not constants."""
    out = _masked("C[m, p] = A[m, p] + Y[m, p] * 1\nG[m, p] = max(A[m, p], Y[m, p] - 20)")
    np.testing.assert_array_equal(out["C"], np.where(UPPER, X9 + 10, 10))
    np.testing.assert_array_equal(out["G"], np.where(UPPER, X9, -10))


def test_reductions_skip_empty_points():
    out = _masked("E[p] = max[m] A[m, p] where m >= 1\nI[p] = min[m] A[m, p]\n"
                  "J[p] = prod[m] A[m, p]\nS[p] = A[m, p]\nN[p] = any[m] A[m, p]")
    np.testing.assert_array_equal(out["E"], [0.0, 5.0, 9.0])  # p = 0: whole fiber empty
    np.testing.assert_array_equal(out["I"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(out["J"], [1.0, 10.0, 162.0])
    np.testing.assert_array_equal(out["S"], [1.0, 7.0, 18.0])
    np.testing.assert_array_equal(out["N"], [1.0, 1.0, 1.0])


def test_infinite_differences_and_zero_division():
    cascade = einsim.parse("A[i] = exp(X[i] - Y[i])\nB[i] = X[i] / Y[i]")
    x = np.array([-np.inf, 0.0, 1.0])
    y = np.array([-np.inf, 0.0, 2.0])
    out = einsim.execute(cascade, {"X": x, "Y": y})
    np.testing.assert_array_equal(out["A"], [0.0, 1.0, np.exp(-1.0)])  # -inf - -inf = -inf
    assert out["B"][1] == 0.0  # 0 / 0 = 0
    assert out["B"][2] == 0.5


# ------------------------------------------------------------------ (b) the library validates

DENSE_SHAPES = [(37, 8), (64, 16), (100, 32)]
SHAPES = {
    "gna": [(37, 8), (64, 16), (45, 7)],
    "gna-2d": [(12, 5), (9, 3), (16, 4)],
    "gna-3d": [(6, 4), (5, 2), (7, 3)],
    "gna-2d-tiles": [(12, 5), (9, 3), (16, 4)],
    "gna-3d-tiles": [(6, 4), (5, 2), (7, 3)],
    "attention-scan": [(48, None), (13, None), (20, None)],
    "linear-attention-lasp2": [(48, None), (50, None), (13, None)],  # its own P0/M0 of 8
}
TILES = {"gna-2d": ["mx1"], "gna-3d": ["mx1"], "gna-2d-tiles": ["my1"],
         "gna-3d-tiles": ["mz1"], "linear-attention": ["m1", "p1"],
         "linear-attention-lasp2": ["p1"]}


def _tiles(name):
    if name in TILES:
        return TILES[name]
    return ["m1"] if "m1" in library.get(name).rank_variables else ["m"]


def _library_cases():
    for name in library.names():
        for length, tile_size in SHAPES.get(name, DENSE_SHAPES):
            for tile in [None, *_tiles(name)]:
                yield pytest.param(name, length, tile_size, tile,
                                   id=f"{name}-{length}-{tile_size}-{tile or 'whole'}")


def _library_sizes(name, length, tile_size):
    sizes = library.entry(name).sizes_for(length)
    for key in ("M0", "MX0"):
        if key in sizes and tile_size is not None:
            sizes[key] = tile_size
    return sizes


@pytest.mark.parametrize("name, length, tile_size, tile", list(_library_cases()))
def test_library_cascade_validates(name, length, tile_size, tile):
    sizes = _library_sizes(name, length, tile_size)
    result = einsim.validate(library.get(name), sizes=sizes, tile=tile)
    assert result.ok, result
    assert result.max_rel_error <= 1e-9
    assert result.overflow == {}
    assert result.output in library.get(name).outputs  # AV, or the permute's copies


def test_every_library_cascade_is_covered():
    assert set(library.names()) == {
        "attention-3pass", "attention-2pass", "attention-2pass-tiled", "attention-1pass",
        "fusemax", "causal-attention-3pass", "causal-attention-2pass",
        "causal-attention-1pass", "causal-fusemax", "attention-naive", "gna", "gna-2d", "gna-3d",
        "gna-2d-tiles", "gna-3d-tiles", "token-permute", "decode-layer",
        "decode-split", "decode-split-online", "gqa-attention-1pass", "linear-attention", "linear-attention-lasp2",
        "attention-scan"}


@pytest.mark.parametrize("name", ["attention-3pass", "attention-2pass", "decode-split"])
def test_tiling_along_the_query_rank(name):
    """Tiling along p: every Einsum writing ``X[p]`` then writes one point per step."""
    sizes = library.entry(name).sizes_for(20)
    sizes["M0"] = 6
    result = einsim.validate(library.get(name), sizes=sizes, tile="p")
    assert result.ok, result


def test_validation_detects_a_wrong_cascade():
    wrong = einsim.parse(library.entry("attention-3pass").text.replace(
        "SN[m, p] / SD[p]", "SN[m, p] / (SD[p] + 1)"))
    result = einsim.validate(wrong, sizes={"E": 4, "F": 3, "M": 9, "P": 5})
    assert not result.ok
    assert result.max_rel_error > 1e-9


# ---------------------------------------------------------------------- (c) masks vs brute force


def test_causal_three_pass_equals_masked_attention_with_tril_mask():
    rng = np.random.default_rng(1)
    E, P, M, F = 5, 11, 11, 4
    inputs = _qkv(rng, E, P, M, F)
    out = einsim.execute(library.get("causal-attention-3pass"), inputs)
    mask = np.tril(np.ones((P, M), bool)).T  # mask[m, p] = m <= p
    assert mask[0, 5] and not mask[5, 0]
    expected = masked_attention(inputs["Q"], inputs["K"], inputs["V"], mask)
    np.testing.assert_allclose(out["AV"], expected, rtol=1e-10, atol=1e-12)


SOFTMAX_3PASS = """
QK[m, p] = Q[e, p] * K[e, m] where {condition}
GM[p] = max[m] QK[m, p]
SN[m, p] = exp(QK[m, p] - GM[p])
SD[p] = SN[m, p]
A[m, p] = SN[m, p] / SD[p]
AV[f, p] = A[m, p] * V[f, m]
"""


def test_within_band_equals_masked_attention():
    rng = np.random.default_rng(2)
    E, P, M, F = 4, 9, 12, 3
    inputs = _qkv(rng, E, P, M, F)
    cascade = einsim.parse(SOFTMAX_3PASS.format(condition="within(m, p, 2)"))
    out = einsim.execute(cascade, inputs)
    mask = np.abs(np.arange(M)[:, None] - np.arange(P)[None, :]) <= 2
    expected = masked_attention(inputs["Q"], inputs["K"], inputs["V"], mask)
    np.testing.assert_allclose(out["AV"], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(out["QK"] != 0, mask)


NEIGHBORHOOD_CASES = [(9, 3, 1, 1, False), (10, 4, 2, 1, False), (12, 3, 1, 2, False),
                      (12, 5, 3, 2, True), (7, 7, 1, 1, True), (13, 4, 4, 3, False),
                      (8, 1, 1, 1, False), (11, 5, 2, 2, True)]


@pytest.mark.parametrize("length, window, stride, dilation, causal", NEIGHBORHOOD_CASES)
def test_neighborhood_filter_equals_masked_attention(length, window, stride, dilation, causal):
    _check_neighborhood(length, window, stride, dilation, causal, seed=length * 7 + window)


@st.composite
def neighborhood_parameters(draw):
    length = draw(st.integers(1, 14))
    window = draw(st.integers(1, length))
    stride = draw(st.integers(1, window))
    dilation = draw(st.integers(1, max(1, length // window)))
    return length, window, stride, dilation, draw(st.booleans())


@settings(max_examples=100, deadline=None, database=None)
@given(neighborhood_parameters(), st.integers(0, 1000))
def test_neighborhood_filter_property(parameters, seed):
    _check_neighborhood(*parameters, seed=seed)


def _check_neighborhood(length, window, stride, dilation, causal, seed):
    rng = np.random.default_rng(seed)
    inputs = _qkv(rng, 3, length, length, 2)
    cascade = einsim.parse(SOFTMAX_3PASS.format(condition="neighborhood(p, m, M, W, S, D, C)"))
    sizes = {"W": window, "S": stride, "D": dilation, "C": int(causal)}
    out = einsim.execute(cascade, inputs, sizes=sizes)
    mask = neighborhood_mask_1d(length, window, stride, dilation, causal)
    np.testing.assert_array_equal(out["QK"] != 0, mask)
    expected = masked_attention(inputs["Q"], inputs["K"], inputs["V"], mask)
    np.testing.assert_allclose(out["AV"], expected, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------- (d) masked prefixes and empty rows


def _with_filter(name: str, condition: str) -> einsim.Cascade:
    """A library cascade with ``where condition`` on its score Einsum (``m`` = key index)."""
    text = library.entry(name).text
    lines = text.splitlines()
    for position, line in enumerate(lines):
        if line.startswith(("S[", "QK[", "BQK[")) and "Q[e, p]" in line:
            key = "m1*M0 + m0" if "m1" in line.split("=")[0] else "m"
            lines[position] = f"{line} where {condition.replace('KEY', key)}"
            break
    else:
        raise AssertionError(f"no score Einsum in {name}")
    return einsim.parse("\n".join(lines))


@pytest.mark.parametrize("name", ["fusemax", "attention-1pass"])
@pytest.mark.parametrize("tile", [None, "m1"])
def test_fully_masked_prefix_has_no_nan(name, tile):
    rng = np.random.default_rng(3)
    E, P, M, F = 4, 10, 10, 3
    inputs = _qkv(rng, E, P, M, F)
    cascade = _with_filter(name, "KEY >= p")
    out = einsim.execute(cascade, inputs, sizes={"M0": 3}, tile=tile)
    assert not np.isnan(out["AV"]).any()
    mask = np.arange(M)[:, None] >= np.arange(P)[None, :]
    expected = masked_attention(inputs["Q"], inputs["K"], inputs["V"], mask)
    np.testing.assert_allclose(out["AV"], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["attention-3pass", "attention-2pass", "attention-1pass",
                                  "fusemax", "decode-split", "attention-2pass-tiled"])
def test_fully_masked_rows_output_zero(name):
    rng = np.random.default_rng(4)
    E, P, M, F = 4, 9, 8, 3
    inputs = _qkv(rng, E, P, M, F)
    cascade = _with_filter(name, "KEY + 5 < p")
    out = einsim.execute(cascade, inputs, sizes={"M0": 3})
    assert not np.isnan(out["AV"]).any()
    np.testing.assert_array_equal(out["AV"][:, :6], 0.0)  # p <= 5 attends nothing
    assert np.all(np.abs(out["AV"][:, 6:]) > 0)
    mask = np.arange(M)[:, None] + 5 < np.arange(P)[None, :]
    expected = masked_attention(inputs["Q"], inputs["K"], inputs["V"], mask)
    np.testing.assert_allclose(out["AV"], expected, rtol=1e-10, atol=1e-12)


FILTERS = {
    "none": ("m1*M0 + m0 >= 0", lambda m, p: m >= 0),
    "causal": ("m1*M0 + m0 <= p", lambda m, p: m <= p),
    "anti-causal": ("m1*M0 + m0 >= p", lambda m, p: m >= p),
    "band": ("within(m1*M0 + m0, p, 1)", lambda m, p: abs(m - p) <= 1),
    "late": ("m1*M0 + m0 + 3 < p", lambda m, p: m + 3 < p),
    "odd": ("not (m1*M0 + m0 == p or m1*M0 + m0 < 2)", lambda m, p: not (m == p or m < 2)),
}


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["fusemax", "attention-1pass", "decode-split", "attention-2pass-tiled"]),
       st.sampled_from(sorted(FILTERS)), st.integers(1, 13), st.integers(1, 6),
       st.integers(1, 6), st.sampled_from([None, "m1"]), st.integers(0, 10_000))
def test_tiled_online_softmax_matches_masked_attention(name, kind, M, M0, P, tile, seed):
    rng = np.random.default_rng(seed)
    inputs = _qkv(rng, 3, P, M, 2)
    condition, rule = FILTERS[kind]
    text = library.entry(name).text
    score = next(line for line in text.splitlines() if "Q[e, p]" in line and "=" in line)
    cascade = einsim.parse(text.replace(score, f"{score} where {condition}"))
    out = einsim.execute(cascade, inputs, sizes={"M0": M0}, tile=tile)
    mask = np.array([[rule(m, p) for p in range(P)] for m in range(M)], bool).reshape(M, P)
    expected = masked_attention(inputs["Q"], inputs["K"], inputs["V"], mask)
    assert out["AV"].shape == (2, P)
    np.testing.assert_allclose(out["AV"], expected, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------- (e) low precision


def test_naive_attention_overflows_in_float16():
    cascade = library.get("attention-naive")
    sizes = library.entry("attention-naive").sizes
    inputs = random_inputs(cascade, sizes, scale=4)
    with pytest.warns(PrecisionOverflowWarning, match="SN"):
        out = einsim.execute(cascade, inputs, dtype="float16")
    assert out["AV"].dtype == np.float16
    result = einsim.validate(cascade, dtype="float16", scale=4)
    assert result.ok is False
    assert "SN" in result.overflow and result.overflow["SN"] > 0
    execution = run(cascade, inputs, dtype="float16")
    assert execution.overflow.get("SN", 0) > 0


def test_naive_attention_is_fine_in_float64_at_the_same_scale():
    result = einsim.validate(library.get("attention-naive"), scale=4)
    assert result.ok and result.overflow == {}


@pytest.mark.parametrize("dtype, tolerance", [("float16", 2e-2), ("bfloat16", 1e-1),
                                               ("float32", 1e-4)])
def test_fusemax_in_low_precision(dtype, tolerance):
    cascade = library.get("fusemax")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionOverflowWarning)
        result = einsim.validate(cascade, dtype=dtype)
    assert result.ok, result
    assert result.overflow == {}
    assert result.max_rel_error <= tolerance
    assert result.dtype == dtype


@pytest.mark.parametrize("dtype, returned", [("float16", np.float16), ("float32", np.float32),
                                              ("float64", np.float64), ("fp16", np.float16)])
def test_returned_dtype(dtype, returned):
    cascade = library.get("fusemax")
    inputs = random_inputs(cascade, {"E": 4, "F": 3, "M": 10, "P": 5})
    out = einsim.execute(cascade, inputs, sizes={"M0": 4}, dtype=dtype)
    assert all(array.dtype == returned for array in out.values())


def test_float16_rounding_is_applied():
    cascade = einsim.parse("Y[i] = X[i] * 300")
    x = np.array([1.0 + 2.0 ** -12, 300.0, 3.0])
    with pytest.warns(PrecisionOverflowWarning, match="Y"):
        out = einsim.execute(cascade, {"X": x}, dtype="float16")
    assert out["Y"][0] == 300.0  # the input was rounded to 1.0 first
    assert np.isinf(out["Y"][1])  # 90000 > 65504
    assert out["Y"][2] == 900.0
    assert run(cascade, {"X": x}, dtype="float16").overflow == {"Y": 1}
    out32 = einsim.execute(cascade, {"X": x}, dtype="float32")
    assert out32["Y"][0] == np.float32(1.0 + 2.0 ** -12) * np.float32(300)
    assert out32["Y"][1] == 90000.0


def test_unknown_dtype():
    with pytest.raises(einsim.EinsimError):
        einsim.execute(einsim.parse("Y[i] = X[i]"), {"X": np.ones(2)}, dtype="float8")


# ------------------------------------------------------------------------ (f) tiled execution


def test_tiled_fusemax_never_materialises_m_by_p():
    rng = np.random.default_rng(5)
    M = P = 512
    inputs = _qkv(rng, 16, P, M, 16)
    cascade = library.get("fusemax")
    tiled = run(cascade, inputs, sizes={"M0": 64}, tile="m1", keep=("RM", "RD", "RNV"))
    assert set(tiled.tensors) == {"AV", "RM", "RD", "RNV"}
    assert all(array.size < M * P for array in tiled.tensors.values())
    assert tiled.tensors["RD"].shape == (M // 64 + 1, P)
    assert tiled.tensors["RNV"].shape == (16, M // 64 + 1, P)
    plain = run(cascade, inputs, sizes={"M0": 64}, tile="m1")
    assert set(plain.tensors) == {"AV"}
    whole = einsim.execute(cascade, inputs, sizes={"M0": 64})
    assert whole["BQK"].size == M * P  # the untiled run does hold it
    np.testing.assert_allclose(tiled.tensors["AV"], whole["AV"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tiled.tensors["RD"], whole["RD"], rtol=1e-10)
    np.testing.assert_allclose(plain.tensors["AV"], whole["AV"], rtol=1e-10, atol=1e-12)


def test_tiled_fusemax_peak_memory():
    rng = np.random.default_rng(6)
    M = P = 1024
    inputs = _qkv(rng, 16, P, M, 16)
    cascade = library.get("fusemax")
    run(cascade, {k: v[:, :64] for k, v in inputs.items()}, sizes={"M0": 64}, tile="m1")
    tracemalloc.start()
    try:
        result = run(cascade, inputs, sizes={"M0": 64}, tile="m1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < M * P * 8 / 2, f"peak {peak} bytes"
    expected = masked_attention(inputs["Q"], inputs["K"], inputs["V"], np.ones((M, P), bool))
    np.testing.assert_allclose(result.tensors["AV"], expected, rtol=1e-9, atol=1e-12)


def test_keep_returns_tile_local_tensors_completely():
    rng = np.random.default_rng(7)
    inputs = _qkv(rng, 3, 5, 11, 2)
    cascade = library.get("fusemax")
    whole = einsim.execute(cascade, inputs, sizes={"M0": 4})
    kept = einsim.execute(cascade, inputs, sizes={"M0": 4}, tile="m1", keep=("SLN", "LM", "RM"))
    for name in ("SLN", "LM", "RM", "AV"):
        np.testing.assert_allclose(kept[name], whole[name], rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------- (g) schedules and errors


def test_three_pass_schedule_has_three_loops():
    rng = np.random.default_rng(8)
    cascade = library.get("attention-3pass")
    result = run(cascade, _qkv(rng, 4, 6, 9, 3), tile="m")
    loops = [step for step in result.schedule if isinstance(step, Loop)]
    assert len(loops) == 3
    assert [loop.pass_number for loop in loops] == [1, 2, 3]
    assert all(loop.variable == "m" for loop in loops)
    assert [set(loop.members) for loop in loops] == [{"QK", "GM"}, {"SN", "SD"}, {"A", "AV"}]
    untiled = run(cascade, _qkv(rng, 4, 6, 9, 3))
    assert all(isinstance(step, Whole) for step in untiled.schedule)


def test_fusemax_schedule_is_one_loop():
    rng = np.random.default_rng(9)
    result = run(library.get("fusemax"), _qkv(rng, 4, 6, 9, 3), sizes={"M0": 4}, tile="m1")
    loops = [step for step in result.schedule if isinstance(step, Loop)]
    assert len(loops) == 1 and loops[0].pass_number == 1
    assert result.schedule[-1] == Whole("AV")
    assert result.sizes["M1"] == 3


def test_tile_variable_that_no_einsum_iterates():
    rng = np.random.default_rng(10)
    with pytest.raises(ScheduleError):
        einsim.execute(library.get("fusemax"), _qkv(rng, 4, 6, 9, 3), sizes={"M0": 4},
                       tile="z")


def test_missing_input():
    rng = np.random.default_rng(11)
    inputs = _qkv(rng, 4, 6, 9, 3)
    del inputs["V"]
    with pytest.raises(InputError, match="V"):
        einsim.execute(library.get("attention-3pass"), inputs)


def test_input_with_wrong_number_of_axes():
    rng = np.random.default_rng(12)
    inputs = _qkv(rng, 4, 6, 9, 3)
    inputs["Q"] = inputs["Q"][None]
    with pytest.raises(InputError, match="Q"):
        einsim.execute(library.get("attention-3pass"), inputs)


def test_missing_size_names_it():
    rng = np.random.default_rng(13)
    with pytest.raises(MissingSizeError, match="M0"):
        einsim.execute(library.get("fusemax"), _qkv(rng, 4, 6, 9, 3))


def test_out_of_range_read_of_a_computed_tensor():
    cascade = einsim.parse("A[m] = X[m] * 2\nB[m] = A[m + 1]")
    with pytest.raises(IndexRangeError):
        einsim.execute(cascade, {"X": np.ones(4)})


def test_sizes_come_from_declarations_and_partitions():
    cascade = einsim.parse("rank M = 10\npartition M -> M1, M0 by 4\nB[m1, m0] = m1*M0 + m0\n"
                           "C[m1] = max[m0] X[m1*M0 + m0]")
    x = np.arange(10.0)
    result = run(cascade, {"X": x})
    assert result.sizes["M1"] == 3 and result.sizes["M0"] == 4
    np.testing.assert_array_equal(result.tensors["B"], np.arange(12.0).reshape(3, 4))
    np.testing.assert_array_equal(result.tensors["C"], [3.0, 7.0, 9.0])


def test_cyclic_dependency_without_recurrence():
    cascade = einsim.parse("A[m] = B[m] * 2\nB[m] = A[m] + 1")
    with pytest.raises(ScheduleError) as caught:
        einsim.execute(cascade, {}, sizes={"M": 3})
    assert "A" in str(caught.value) and "B" in str(caught.value)


def test_non_numeric_input():
    with pytest.raises(InputError, match="X"):
        einsim.execute(einsim.parse("A[m] = X[m]"), {"X": np.array(["a", "b"])})


def test_partition_size_conflicting_with_sizes_argument():
    cascade = einsim.parse("partition M -> M1, M0 by 4\nA[m1, m0] = X[m1*M0 + m0]")
    with pytest.raises(einsim.errors.RankSizeConflictError, match="M0"):
        einsim.execute(cascade, {"X": np.ones(9)}, sizes={"M0": 8})


@pytest.mark.parametrize("tile", [None, "m"])
def test_reduction_across_tiles_with_empty_fibers(tile):
    x = -np.arange(1.0, 17.0).reshape(4, 4)
    cascade = einsim.parse("A[p] = max[m] X[m, p] where m < p\nB[p] = X[m, p] where m < p")
    out = einsim.execute(cascade, {"X": x}, tile=tile)
    mask = np.arange(4)[:, None] < np.arange(4)[None, :]
    expected_max = [np.max(x[:, p][mask[:, p]]) if mask[:, p].any() else 0.0 for p in range(4)]
    np.testing.assert_array_equal(out["A"], expected_max)  # p = 0 is empty: 0, not -inf
    np.testing.assert_array_equal(out["B"], np.where(mask, x, 0).sum(axis=0))


def test_bfloat16_rounds_to_nearest_even_and_reports_overflow():
    x = np.array([1 + 2.0 ** -8, 1 + 3 * 2.0 ** -9, 1e9, 2.0])
    cascade = einsim.parse("Y[i] = X[i] * 1e30\nZ[i] = X[i] * 1")
    with pytest.warns(PrecisionOverflowWarning, match="Y"):
        out = einsim.execute(cascade, {"X": x}, dtype="bfloat16")
    np.testing.assert_array_equal(out["Z"][:2], [1.0, 1.0078125])  # a tie, then round up
    assert abs(out["Z"][2] - 1e9) / 1e9 < 2 ** -8
    assert np.isinf(out["Y"][2]) and np.isfinite(out["Y"][[0, 1, 3]]).all()
    assert run(cascade, {"X": x}, dtype="bfloat16").overflow == {"Y": 1}


def test_validate_with_named_and_callable_references():
    causal = library.get("causal-attention-3pass")
    assert einsim.validate(causal).ok
    assert einsim.validate(causal, reference="causal-attention").ok
    assert not einsim.validate(causal, reference="attention").ok
    calls = []

    def reference(inputs, sizes):
        calls.append(dict(sizes))
        mask = np.arange(sizes["M"])[:, None] <= np.arange(sizes["P"])[None, :]
        return {"AV": masked_attention(inputs["Q"], inputs["K"], inputs["V"], mask)}

    result = einsim.validate(causal, sizes={"E": 3, "F": 2, "M": 7, "P": 5}, reference=reference)
    assert result.ok and calls and calls[0]["M"] == 7
    with pytest.raises(einsim.EinsimError):
        einsim.validate(causal, reference="no-such-reference")


def test_validate_with_given_inputs():
    rng = np.random.default_rng(14)
    inputs = _qkv(rng, 3, 6, 10, 2)
    result = einsim.validate(library.get("fusemax"), sizes={"M0": 4}, inputs=inputs)
    assert result.ok
    assert result.cascade == "fusemax"
    assert 0 <= result.max_abs_error <= 1e-12


def test_random_inputs_shapes_and_scale():
    cascade = library.get("fusemax")
    sizes = {"E": 3, "F": 2, "M": 10, "P": 5}
    a = random_inputs(cascade, sizes, seed=1)
    b = random_inputs(cascade, sizes, seed=1, scale=4.0)
    assert {k: v.shape for k, v in a.items()} == {"Q": (3, 5), "K": (3, 10), "V": (2, 10)}
    for name in a:
        np.testing.assert_allclose(b[name], 4.0 * a[name])


@pytest.mark.parametrize("tile", [None, "m"])
def test_any_reduction_is_a_zero_one_flag(tile):
    cascade = einsim.parse("A[p] = any[m] X[m, p]")
    x = np.array([[0.5, -1.0, 0.0], [2.0, 0.0, 0.0]])
    np.testing.assert_array_equal(einsim.execute(cascade, {"X": x}, tile=tile)["A"],
                                  [1.0, 1.0, 0.0])


REDUCTION_OPERATORS = {"sum": np.sum, "max": np.max, "min": np.min, "prod": np.prod,
                       "any": lambda v, axis: np.any(v != 0, axis=axis).astype(float)}
REDUCTION_FILTERS = {"m < p": lambda m, p: m < p, "m >= 2": lambda m, p: m >= 2,
                     "m > 9": lambda m, p: m > 9, "within(m, p, 1)": lambda m, p: abs(m - p) <= 1}
REDUCTION_BODIES = {"X[m, p]": lambda x, y: x, "X[m, p] * Y[m, p]": lambda x, y: x * y,
                    "exp(X[m, p]) + 1": lambda x, y: np.exp(x) + 1,
                    "X[m, p] + Y[m, p]": lambda x, y: x + y,
                    "max(X[m, p], 0)": lambda x, y: np.maximum(x, 0)}


@pytest.mark.parametrize("op", sorted(REDUCTION_OPERATORS))
@pytest.mark.parametrize("tile", [None, "m"])
@settings(max_examples=20, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate])  # small inputs: shrinking only costs time
@given(st.sampled_from(sorted(REDUCTION_FILTERS)), st.sampled_from(sorted(REDUCTION_BODIES)),
       st.integers(1, 6), st.integers(1, 5), st.integers(0, 1000))
def test_filtered_reductions_match_numpy(op, tile, condition, body, M, P, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((M, P)), rng.standard_normal((M, P))
    text = (f"A[p] = {op}[m] {body} where {condition}\nB[m, p] = {body} where {condition}\n"
            f"C[p] = {op}[m] B[m, p]")
    out = einsim.execute(einsim.parse(text), {"X": x, "Y": y}, tile=tile, keep=("B",))
    mask = np.array([[REDUCTION_FILTERS[condition](m, p) for p in range(P)] for m in range(M)],
                    bool).reshape(M, P)
    values = REDUCTION_BODIES[body](x, y)
    reduce = REDUCTION_OPERATORS[op]
    expected = np.array([reduce(values[:, p][mask[:, p]], axis=0) if mask[:, p].any() else 0.0
                         for p in range(P)])
    np.testing.assert_allclose(out["B"], np.where(mask, values, 0), rtol=1e-12)
    np.testing.assert_allclose(out["A"], expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["C"], expected, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------- Python API misuse

def _small_qkv(n: int = 8, e: int = 4) -> dict:
    rng = np.random.default_rng(1)
    return {"Q": rng.standard_normal((e, n)), "K": rng.standard_normal((e, n)),
            "V": rng.standard_normal((e, n))}


@pytest.mark.parametrize("inputs, sizes, fragment", [
    ([np.ones((4, 8))] * 3, {"M0": 4}, "inputs must be a dict"),
    ({**_small_qkv(), "Q": _small_qkv()["Q"] + 1j}, {"M0": 4}, "input Q is complex"),
    ({**_small_qkv(), "K": np.ones((4, 8, 2))}, {"M0": 4}, "input K has 3 axes"),
    ({**_small_qkv(), "K": np.array([["a"] * 8] * 4)}, {"M0": 4}, "input K must be numeric"),
    (_small_qkv(), {"M0": "4"}, "size M0 = '4'"),
    (_small_qkv(), {"M0": True}, "size M0 = True"),
    (_small_qkv(), {"M0": float("inf")}, "size M0 = inf"),
    (_small_qkv(), {"M0": float("nan")}, "size M0 = nan"),
    (_small_qkv(), {"M0": 1.5}, "size M0 = 1.5: expected an integer"),
    (_small_qkv(), {"M0": 2**70}, "size M0 is too large"),
    (_small_qkv(), [("M0", 4)], "sizes must be a dict"),
])
def test_api_misuse_is_a_typed_error_naming_the_argument(inputs, sizes, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)):
        einsim.execute(library.get("fusemax"), inputs, sizes=sizes)


def test_api_misuse_of_the_other_arguments():
    cascade = library.get("attention-1pass")
    with pytest.raises(InputError, match="cascade must be a Cascade"):
        einsim.execute("attention-1pass", _small_qkv(), sizes={"M0": 4})
    with pytest.raises(InputError, match="tile must be a rank variable"):
        einsim.execute(cascade, _small_qkv(), sizes={"M0": 4}, tile=1)
    with pytest.raises(InputError, match="keep must be a list"):
        einsim.execute(cascade, _small_qkv(), sizes={"M0": 4}, tile="m1", keep="S")
    with pytest.raises(EinsimError, match="dtype"):
        einsim.execute(cascade, _small_qkv(), sizes={"M0": 4}, dtype=object())
    with pytest.raises(InputError, match="cascade must be a Cascade"):
        einsim.validate(None)


def test_wrong_shapes_name_the_tensors():
    inputs = _small_qkv()
    inputs["V"] = np.ones((4, 9))  # M is 8 from K
    with pytest.raises(EinsimError, match=r"input V axis 1|input K axis 1"):
        einsim.execute(library.get("fusemax"), inputs, sizes={"M0": 4})


def test_memory_guard_refuses_before_allocating():
    from einsim.execution.execute import ResourceLimitError, estimate_bytes

    inputs = _small_qkv(64)
    with pytest.raises(ResourceLimitError, match=r"would need about .* more than the 1\.0 KiB"):
        einsim.execute(library.get("attention-3pass"), inputs, memory_limit=1024)
    tracemalloc.start()
    with pytest.raises(ResourceLimitError):
        einsim.execute(library.get("attention-3pass"), inputs, memory_limit=1024)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 64 * 8  # the 64 x 64 score matrix was never allocated
    assert estimate_bytes  # public for callers that want the number


def test_validate_refuses_a_million_tokens_untiled_without_allocating():
    from einsim.execution.execute import ResourceLimitError

    sizes = library.entry("fusemax").sizes_for(2**20)
    with pytest.raises(ResourceLimitError, match=r"M=1048576, P=1048576 would need about"):
        einsim.validate(library.get("fusemax"), sizes=sizes)


def test_validate_against_a_reference_cascade():
    result = einsim.validate(library.get("fusemax"), reference=library.get("attention-3pass"))
    assert result.ok and result.reference == "cascade attention-3pass"
    assert einsim.validate(library.get("fusemax")).reference == "plain NumPy attention"
    causal = einsim.validate(library.get("causal-fusemax"))
    assert causal.reference == "NumPy causal-attention"


def test_validate_a_cascade_without_qkv_names_the_missing_input():
    cascade = einsim.parse("A[i] = X[i] * 2")
    with pytest.raises(EinsimError, match="needs input 'Q'.*reads X"):
        einsim.validate(cascade, sizes={"I": 4})


@pytest.mark.parametrize("name", ["fusemax", "attention-1pass", "causal-fusemax",
                                  "causal-attention-1pass", "gna"])
@pytest.mark.parametrize("tile_size", [3, 16])
def test_tiled_execution_into_storage_equals_untiled(name, tile_size):
    """The direct-to-storage path (rings, GEMM plans) agrees with the untiled execution,
    including ragged last tiles and masks, which fall back to the general path."""
    cascade = library.get(name)
    sizes = {**library.entry(name).sizes, "M0": tile_size}
    inputs = random_inputs(cascade, {**resolve_sizes(cascade, {}, sizes), **sizes}, seed=3)
    whole = einsim.execute(cascade, inputs, sizes=sizes)
    tiled = einsim.execute(cascade, inputs, sizes=sizes, tile="m1")
    np.testing.assert_allclose(tiled["AV"], whole["AV"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", ["ab,bc->ac", "ab,bc->ca", "ba,bc->ac", "ab,b->a", "a,ab->b",
                                  "a,a->", "abc,cd->abd", "ab,cb->ac", "ab->b", "ab->ba"])
def test_contraction_plans_match_einsum(spec):
    from einsim.execution.contraction import contract_plan

    inputs, output = spec.split("->")
    sizes = {"a": 3, "b": 4, "c": 5, "d": 2}
    rng = np.random.default_rng(0)
    operands = [rng.standard_normal([sizes[c] for c in term]) for term in inputs.split(",")]
    expected = np.einsum(spec, *operands)
    plan = contract_plan(tuple(inputs.split(",")), output)
    np.testing.assert_allclose(plan(operands, None), expected, rtol=1e-12, atol=1e-12)
    out = np.empty(expected.shape)
    plan(operands, out)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
