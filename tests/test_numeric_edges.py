"""Numerical edge cases of the executor: masked rows, -inf running maxima, low precision, empty
ranks.

* A query whose every key is masked attends to nothing: its output is 0 (the empty sum), in the
  3-pass and the 1-pass cascades, whole or tile by tile, in every number format: never NaN.
* An anti-causal filter on FuseMax masks whole leading KV tiles of late queries, so their running
  maximum stays -inf for several tiles and the correction ``exp(RM[m1] - RM[m1+1])`` sees
  ``-inf - -inf``; the result must still be attention restricted to the filter.
* Emulated float16 reports overflow by tensor name; emulated bfloat16 rounds to nearest-even
  and every value it returns is a bfloat16.
* A rank of size 0 gives an EinsimError or a well-formed (empty or finite) result, never a crash.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import einsim
from einsim.errors import EinsimError, PrecisionOverflowWarning

E = F = 8
M = P = 64
TILE = 16
DTYPES = ["float64", "float32", "float16", "bfloat16"]


def _inputs(seed=0, e=E, m=M, p=P, scale=1.0):
    rng = np.random.default_rng(seed)
    return {"Q": scale * rng.standard_normal((e, p)), "K": scale * rng.standard_normal((e, m)),
            "V": rng.standard_normal((F, m))}


def masked_attention(inputs, mask):
    """Softmax attention over the keys ``mask[m, p]`` allows; 0 for a query with none."""
    scores = inputs["K"].T @ inputs["Q"]
    scores = np.where(mask, scores, -np.inf)
    top = scores.max(axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    weights = np.where(mask, np.exp(scores - top), 0.0)
    total = weights.sum(axis=0)
    return inputs["V"] @ (weights / np.where(total > 0, total, 1.0))


def _with_filter(library_name: str, statement: str, condition: str) -> einsim.Cascade:
    text = einsim.library.entry(library_name).text
    assert statement in text
    return einsim.parse(text.replace(statement, f"{statement} where {condition}"),
                        name=f"{library_name}-filtered")


LAG = 20  # key m is attended by query p iff m < p - LAG: queries 0..LAG see no key at all
THREE_PASS = einsim.parse(f"""
QK[m, p] = Q[e, p] * K[e, m] where m < p - {LAG}
GM[p] = max[m] QK[m, p]
SN[m, p] = exp(QK[m, p] - GM[p])
SD[p] = SN[m, p]
A[m, p] = SN[m, p] / SD[p]
AV[f, p] = A[m, p] * V[f, m]
""", name="lagged-3pass")
ONE_PASS = _with_filter("attention-1pass", "S[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0]",
                        f"m1*M0 + m0 < p - {LAG}")
FUSEMAX_LAGGED = _with_filter("fusemax", "BQK[m1, m0, p] = Q[e, p] * BK[e, m1, m0]",
                              f"m1*M0 + m0 < p - {LAG}")
LAGGED_MASK = np.arange(M)[:, None] < np.arange(P)[None, :] - LAG


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cascade, tile", [(THREE_PASS, None), (ONE_PASS, None),
                                           (ONE_PASS, "m1"), (FUSEMAX_LAGGED, None),
                                           (FUSEMAX_LAGGED, "m1")],
                         ids=["3pass", "1pass", "1pass-tiled", "fusemax", "fusemax-tiled"])
def test_fully_masked_rows_are_zero_not_nan(cascade, tile, dtype):
    inputs = _inputs()
    sizes = {} if cascade is THREE_PASS else {"M0": TILE}
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionOverflowWarning)  # nothing may overflow here
        out = einsim.execute(cascade, inputs, sizes=sizes, tile=tile, dtype=dtype)
    av = out["AV"].astype(np.float64)
    assert av.shape == (F, P)
    assert not np.isnan(av).any()
    assert np.all(av[:, :LAG + 1] == 0.0)  # no key at all: the empty sum
    expected = masked_attention(inputs, LAGGED_MASK)
    tolerance = {"float64": 1e-12, "float32": 1e-5, "float16": 2e-2, "bfloat16": 1e-1}[dtype]
    assert np.max(np.abs(av - expected)) <= tolerance * np.max(np.abs(expected))
    assert np.any(av[:, LAG + 1:] != 0.0)


def test_fully_masked_rows_in_the_library_reference_too():
    inputs = _inputs()
    expected = masked_attention(inputs, LAGGED_MASK)
    assert np.all(expected[:, :LAG + 1] == 0.0) and np.isfinite(expected).all()


ANTI_CAUSAL = _with_filter("fusemax", "BQK[m1, m0, p] = Q[e, p] * BK[e, m1, m0]",
                           "m1*M0 + m0 >= p")
ANTI_MASK = np.arange(M)[:, None] >= np.arange(P)[None, :]


def anti_causal_reference(inputs, sizes):
    mask = np.arange(inputs["K"].shape[1])[:, None] >= np.arange(inputs["Q"].shape[1])[None, :]
    return {"AV": masked_attention(inputs, mask)}


def test_anti_causal_fusemax_keeps_minus_inf_running_maxima_without_nan():
    out = einsim.execute(ANTI_CAUSAL, _inputs(1), sizes={"M0": TILE})
    rm = out["RM"]  # RM[m1, p]: running max before tile m1 (M1 + 1 rows)
    assert rm.shape == (M // TILE + 1, P)
    for p in range(P):
        masked_tiles = p // TILE  # tiles whose keys all lie before p
        assert np.all(rm[:masked_tiles + 1, p] == -np.inf), p
        assert np.all(np.isfinite(rm[masked_tiles + 1:, p])), p
    assert np.isneginf(rm).sum() > P  # many prefix tiles stayed at -inf
    for name, tensor in out.items():
        assert not np.isnan(tensor).any(), f"NaN in {name}"
    assert np.all(out["RD"][-1] > 0)  # every query has at least its own key
    expected = masked_attention(_inputs(1), ANTI_MASK)
    assert np.max(np.abs(out["AV"] - expected)) < 1e-12


@pytest.mark.parametrize("tile", [None, "m1"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_anti_causal_fusemax_validates_against_its_reference(tile, dtype):
    result = einsim.validate(ANTI_CAUSAL, sizes={"M": M, "P": P, "E": E, "F": F, "M0": TILE},
                             reference=anti_causal_reference, tile=tile, dtype=dtype, seed=3)
    assert result.ok, result
    assert result.overflow == {}
    assert np.isfinite(result.max_abs_error)


def test_float16_overflow_is_reported_by_tensor_name():
    naive = einsim.library.get("attention-naive")
    result = einsim.validate(naive, dtype="float16", scale=4)
    assert not result.ok
    assert set(result.overflow) == {"SN"}  # exp of unscaled logits, not the inputs or QK
    assert result.overflow["SN"] > 0
    assert result.dtype == "float16"
    inputs = _inputs(scale=4.0)
    with pytest.warns(PrecisionOverflowWarning, match=r"float16 overflow in SN \(\d+ values\)"):
        out = einsim.execute(naive, inputs, dtype="float16")
    assert out["AV"].dtype == np.float16
    assert np.isinf(out["SN"]).any()


@pytest.mark.parametrize("name, tile", [("attention-3pass", None), ("attention-1pass", "m1"),
                                        ("fusemax", "m1"), ("fusemax", None)])
def test_max_subtracting_cascades_do_not_overflow_where_the_naive_one_does(name, tile):
    result = einsim.validate(einsim.library.get(name), dtype="float16", scale=4, tile=tile)
    assert result.ok and result.overflow == {}, result


def test_float16_overflow_of_an_input_names_the_input():
    inputs = _inputs()
    inputs["K"][0, 5] = 1e6  # beyond float16's 65504
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        einsim.execute(einsim.library.get("attention-3pass"), inputs, dtype="float16")
    messages = [str(w.message) for w in caught if w.category is PrecisionOverflowWarning]
    assert len(messages) == 1
    assert "float16 overflow in K (1 values)" in messages[0]


def _is_bfloat16(values: np.ndarray) -> bool:
    values = np.asarray(values)
    assert values.dtype == np.float32
    return bool(np.all((values.view(np.uint32) & np.uint32(0xFFFF)) == 0))


COPY = einsim.parse("Y[p] = X[p] * S[p]", name="scaled-copy")


@pytest.mark.parametrize("value, expected", [
    (1.0 + 2**-8, 1.0),                      # halfway: ties to the even mantissa (down)
    (1.0 + 3 * 2**-8, 1.0 + 2**-6),          # halfway: ties to even (up)
    (1.0 + 2**-8 + 2**-20, 1.0 + 2**-7),     # just above halfway: up
    (1.0 + 2**-9, 1.0),                      # below halfway: down
    (3.14159, 3.140625),
    (-2.5e-3, -0.00250244140625),
    (65504.0, 65536.0),                      # float16's largest is not a bfloat16
    (1e-40, 2.0**-133),                      # subnormal: 0x000116C2 rounds to 0x00010000
    (0.0, 0.0),
])
def test_bfloat16_rounds_to_nearest_even(value, expected):
    out = einsim.execute(COPY, {"X": np.array([value]), "S": np.ones(1)}, dtype="bfloat16")
    assert _is_bfloat16(out["Y"])
    assert float(out["Y"][0]) == pytest.approx(expected, rel=1e-7, abs=0)


def test_bfloat16_overflow_beyond_its_largest_value_is_reported():
    with pytest.warns(PrecisionOverflowWarning, match=r"bfloat16 overflow in X \(1 values\)"):
        out = einsim.execute(COPY, {"X": np.array([3.4e38, 1.0]), "S": np.ones(2)},
                             dtype="bfloat16")
    assert np.isinf(out["Y"][0]) and out["Y"][1] == 1.0


@pytest.mark.parametrize("name, tile", [("fusemax", None), ("attention-3pass", None),
                                        ("causal-fusemax", None), ("attention-1pass", None)])
def test_bfloat16_execution_returns_only_bfloat16_values(name, tile):
    inputs = _inputs(4)
    out = einsim.execute(einsim.library.get(name), inputs, sizes={"M0": TILE}, tile=tile,
                         dtype="bfloat16")
    assert out, "no tensors returned"
    for tensor_name, tensor in out.items():
        assert _is_bfloat16(tensor), f"{tensor_name} holds values that are not bfloat16"
    exact = einsim.execute(einsim.library.get(name), inputs, sizes={"M0": TILE})
    error = np.max(np.abs(out["AV"] - exact["AV"]))
    assert 0 < error < 0.1 * np.max(np.abs(exact["AV"]))  # rounded, and only a little


def test_bfloat16_is_coarser_than_float16_and_float32_on_fusemax():
    errors = {dtype: einsim.validate(einsim.library.get("fusemax"), dtype=dtype,
                                     tile="m1").max_rel_error
              for dtype in ("float32", "float16", "bfloat16")}
    assert errors["float32"] < errors["float16"] < errors["bfloat16"] < 0.1


EMPTY_CASES = [  # cascade, which rank is empty, input shapes
    ("attention-3pass", "P", dict(e=E, m=M, p=0)),
    ("attention-3pass", "M", dict(e=E, m=0, p=P)),
    ("attention-1pass", "M", dict(e=E, m=0, p=P)),
    ("attention-1pass", "P", dict(e=E, m=M, p=0)),
    ("fusemax", "M", dict(e=E, m=0, p=P)),
    ("fusemax", "P", dict(e=E, m=M, p=0)),
    ("causal-fusemax", "P", dict(e=E, m=M, p=0)),
    ("attention-3pass", "E", dict(e=0, m=M, p=P)),
    ("fusemax", "E", dict(e=0, m=M, p=P)),
]


def _empty_inputs(e, m, p):
    rng = np.random.default_rng(5)
    return {"Q": rng.standard_normal((e, p)), "K": rng.standard_normal((e, m)),
            "V": rng.standard_normal((F, m))}


@pytest.mark.parametrize("tile", [None, "m1"])
@pytest.mark.parametrize("name, rank, shape", EMPTY_CASES,
                         ids=[f"{c[0]}-{c[1]}=0" for c in EMPTY_CASES])
def test_a_rank_of_size_zero_gives_an_einsim_error_or_a_well_formed_result(name, rank, shape,
                                                                            tile):
    cascade = einsim.library.get(name)
    if tile and not any(p.rank == "M" for p in cascade.partitions):
        tile = None  # untiled cascades: the whole execution only
    inputs = _empty_inputs(**shape)
    try:
        out = einsim.execute(cascade, inputs, sizes={"M0": TILE}, tile=tile)
    except EinsimError as error:  # what einsim does today (IndexRangeError)
        assert str(error).strip() and "\n" not in str(error)
        return
    av = out["AV"]
    assert av.shape == (F, shape["p"])
    assert np.isfinite(av).all()
    if rank == "E":  # no features: every logit is 0, so attention is the mean of V
        assert np.allclose(av, inputs["V"].mean(axis=1, keepdims=True))
    if rank == "M":  # no keys: every query is fully masked
        assert np.all(av == 0)


def test_no_features_is_uniform_attention():
    inputs = _empty_inputs(e=0, m=M, p=P)
    out = einsim.execute(einsim.library.get("attention-3pass"), inputs)
    assert out["AV"].shape == (F, P)
    assert np.allclose(out["AV"], inputs["V"].mean(axis=1, keepdims=True))


@pytest.mark.parametrize("sizes", [{"M": 0, "P": 4}, {"M": 4, "P": 0}])
def test_validate_with_an_empty_sequence_raises_einsim_error_or_passes(sizes):
    try:
        result = einsim.validate(einsim.library.get("attention-3pass"),
                                 sizes={"E": 4, "F": 4, **sizes})
    except EinsimError as error:
        assert "\n" not in str(error)
        return
    assert result.ok and np.isfinite(result.max_abs_error)
