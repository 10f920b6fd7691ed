"""Tests for the plain-NumPy reference implementations."""

import numpy as np
import pytest

from einsim.library.references import (
    REFERENCES,
    attention,
    attention_scan,
    causal_attention,
    causal_linear_attention,
    gna_attention,
    gna_attention_2d,
    gna_attention_3d,
    masked_attention,
    neighborhood_mask,
    neighborhood_mask_1d,
    neighborhood_window,
)


def random_qkv(rng, head_dim=4, queries=6, keys=6, value_dim=3, spatial=None):
    """Random Q (E, P...), K (E, M...), V (F, M...) for tests."""
    if spatial is not None:
        return {
            "Q": rng.standard_normal((head_dim, *spatial)),
            "K": rng.standard_normal((head_dim, *spatial)),
            "V": rng.standard_normal((value_dim, *spatial)),
        }
    return {
        "Q": rng.standard_normal((head_dim, queries)),
        "K": rng.standard_normal((head_dim, keys)),
        "V": rng.standard_normal((value_dim, keys)),
    }


def naive_attention(query, key, value, attended=lambda m, p: True):
    """Independent triple-loop softmax attention."""
    head_dim, queries = query.shape
    value_dim, keys = value.shape
    output = np.zeros((value_dim, queries))
    for p in range(queries):
        allowed = [m for m in range(keys) if attended(m, p)]
        if not allowed:
            continue
        scores = [sum(query[e, p] * key[e, m] for e in range(head_dim)) for m in allowed]
        top = max(scores)
        weights = [np.exp(s - top) for s in scores]
        total = sum(weights)
        for f in range(value_dim):
            output[f, p] = sum(w * value[f, m] for w, m in zip(weights, allowed)) / total
    return output


# --------------------------------------------------------------------------
# Neighborhood windows: worked examples
# --------------------------------------------------------------------------

WORKED_EXAMPLES = [
    (
        dict(length=10, window=3),
        {0: [0, 1, 2], 1: [0, 1, 2], 2: [1, 2, 3], 5: [4, 5, 6], 8: [7, 8, 9], 9: [7, 8, 9]},
    ),
    (
        dict(length=10, window=3, stride=2),
        {
            0: [0, 1, 2], 1: [0, 1, 2],
            2: [2, 3, 4], 3: [2, 3, 4],
            4: [4, 5, 6], 5: [4, 5, 6],
            6: [6, 7, 8], 7: [6, 7, 8],
            8: [7, 8, 9], 9: [7, 8, 9],
        },
    ),
    (
        dict(length=10, window=3, dilation=2),
        {
            0: [0, 2, 4], 1: [1, 3, 5], 2: [0, 2, 4], 3: [1, 3, 5], 4: [2, 4, 6],
            5: [3, 5, 7], 6: [4, 6, 8], 7: [5, 7, 9], 8: [4, 6, 8], 9: [5, 7, 9],
        },
    ),
    (
        dict(length=10, window=3, causal=True),
        {0: [0], 1: [0, 1], 2: [0, 1, 2], 3: [1, 2, 3], 9: [7, 8, 9]},
    ),
    (
        dict(length=10, window=4, stride=2, causal=True),
        {
            0: [0], 1: [0, 1], 2: [0, 1, 2], 3: [0, 1, 2, 3],
            4: [2, 3, 4], 5: [2, 3, 4, 5], 6: [4, 5, 6], 7: [4, 5, 6, 7],
        },
    ),
]


@pytest.mark.parametrize("parameters, expected", WORKED_EXAMPLES)
def test_neighborhood_window_worked_examples(parameters, expected):
    for query, keys in expected.items():
        assert neighborhood_window(query, **parameters) == keys, (parameters, query)


@pytest.mark.parametrize("parameters, expected", WORKED_EXAMPLES)
def test_neighborhood_mask_1d_matches_windows(parameters, expected):
    parameters = {"stride": 1, "dilation": 1, "causal": False, **parameters}
    mask = neighborhood_mask_1d(**parameters)
    assert mask.shape == (10, 10) and mask.dtype == bool
    for query, keys in expected.items():
        assert np.flatnonzero(mask[:, query]).tolist() == keys


# --------------------------------------------------------------------------
# Neighborhood windows: properties
# --------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 5, 8])
def test_full_window_is_self_attention(length):
    assert neighborhood_mask_1d(length, length, 1, 1, False).all()


@pytest.mark.parametrize("length, window", [(8, 2), (9, 3), (12, 4)])
def test_stride_equal_window_is_blocked(length, window):
    mask = neighborhood_mask_1d(length, window, window, 1, False)
    block = np.arange(length) // window
    np.testing.assert_array_equal(mask, block[:, None] == block[None, :])


# Valid GNA configurations require stride <= window.
VALID_WINDOW_STRIDE = [(w, s) for w in (1, 2, 3, 4, 5) for s in (1, 2, 3) if s <= w]


@pytest.mark.parametrize("length", [7, 10])
@pytest.mark.parametrize("window, stride", VALID_WINDOW_STRIDE)
@pytest.mark.parametrize("dilation", [1, 2])
def test_noncausal_window_never_shrinks(length, window, stride, dilation):
    for query in range(length):
        group_length = -(-(length - query % dilation) // dilation)
        expected = min(window, group_length)
        keys = neighborhood_window(query, length, window, stride, dilation, False)
        assert len(keys) == expected
        assert all(key % dilation == query % dilation for key in keys)


@pytest.mark.parametrize("window, stride", VALID_WINDOW_STRIDE)
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_causal_never_attends_future(window, stride, dilation):
    length = 11
    for query in range(length):
        keys = neighborhood_window(query, length, window, stride, dilation, True)
        assert keys and all(key <= query for key in keys)
        assert query in keys
        assert len(keys) <= window


def test_neighborhood_mask_is_and_of_axes():
    shape, window, stride, dilation, causal = (4, 5), (3, 2), (1, 2), (1, 2), (False, True)
    mask = neighborhood_mask(shape, window, stride, dilation, causal)
    assert mask.shape == (20, 20)
    axis_masks = [
        neighborhood_mask_1d(*parameters)
        for parameters in zip(shape, window, stride, dilation, causal)
    ]
    coordinates = list(np.ndindex(*shape))  # C order
    for key_index, key in enumerate(coordinates):
        for query_index, query in enumerate(coordinates):
            expected = all(axis_masks[a][key[a], query[a]] for a in range(len(shape)))
            assert mask[key_index, query_index] == expected


# --------------------------------------------------------------------------
# Softmax attention
# --------------------------------------------------------------------------


def test_attention_matches_naive_loop():
    rng = np.random.default_rng(0)
    inputs = random_qkv(rng, head_dim=3, queries=5, keys=7, value_dim=2)
    result = attention(inputs, {"E": 3, "P": 5, "M": 7, "F": 2})
    assert set(result) == {"AV"} and result["AV"].shape == (2, 5)
    assert result["AV"].dtype == np.float64
    np.testing.assert_allclose(result["AV"], naive_attention(inputs["Q"], inputs["K"], inputs["V"]))


def test_attention_is_numerically_stable():
    rng = np.random.default_rng(1)
    inputs = random_qkv(rng)
    inputs["Q"] = inputs["Q"] * 1000.0
    assert np.all(np.isfinite(attention(inputs, {})["AV"]))


def test_causal_attention_matches_naive_and_first_query():
    rng = np.random.default_rng(2)
    inputs = random_qkv(rng, queries=6, keys=6)
    output = causal_attention(inputs, {})["AV"]
    np.testing.assert_allclose(output[:, 0], inputs["V"][:, 0])
    expected = naive_attention(inputs["Q"], inputs["K"], inputs["V"], lambda m, p: m <= p)
    np.testing.assert_allclose(output, expected)


def test_fully_masked_query_outputs_zero():
    rng = np.random.default_rng(3)
    inputs = random_qkv(rng, queries=4, keys=5)
    mask = np.ones((5, 4), dtype=bool)
    mask[:, 2] = False
    with np.errstate(all="raise"):
        output = masked_attention(inputs["Q"], inputs["K"], inputs["V"], mask)
    np.testing.assert_array_equal(output[:, 2], 0.0)
    assert np.all(np.isfinite(output))
    full = attention(inputs, {})["AV"]
    np.testing.assert_allclose(output[:, [0, 1, 3]], full[:, [0, 1, 3]])


# --------------------------------------------------------------------------
# GNA attention
# --------------------------------------------------------------------------


def test_gna_full_window_equals_dense_attention():
    rng = np.random.default_rng(4)
    inputs = random_qkv(rng, queries=7, keys=7)
    output = gna_attention(inputs, {"W": 7.0, "S": 1.0, "D": 1.0, "C": 0.0})["AV"]
    np.testing.assert_allclose(output, attention(inputs, {})["AV"])


def test_gna_causal_full_window_equals_causal_attention():
    rng = np.random.default_rng(5)
    inputs = random_qkv(rng, queries=6, keys=6)
    output = gna_attention(inputs, {"W": 6, "S": 1, "D": 1, "C": 1})["AV"]
    np.testing.assert_allclose(output, causal_attention(inputs, {})["AV"])


def test_gna_matches_naive_with_window_oracle():
    rng = np.random.default_rng(6)
    inputs = random_qkv(rng, queries=10, keys=10)
    sizes = {"W": 3, "S": 2, "D": 2, "C": 0}
    output = gna_attention(inputs, sizes)["AV"]
    expected = naive_attention(
        inputs["Q"], inputs["K"], inputs["V"],
        lambda m, p: m in neighborhood_window(p, 10, 3, 2, 2, False),
    )
    np.testing.assert_allclose(output, expected)


def test_gna_2d_full_windows_equal_dense_attention():
    rng = np.random.default_rng(7)
    inputs = random_qkv(rng, spatial=(3, 4))
    sizes = {"WX": 3, "WY": 4, "SX": 1, "SY": 1, "DX": 1, "DY": 1, "CX": 0, "CY": 0}
    output = gna_attention_2d(inputs, sizes)["AV"]
    assert output.shape == (3, 3, 4)
    flat = {name: array.reshape(array.shape[0], -1) for name, array in inputs.items()}
    np.testing.assert_allclose(output.reshape(3, -1), attention(flat, {})["AV"])


def test_gna_3d_matches_naive_over_coordinates():
    rng = np.random.default_rng(8)
    shape = (3, 4, 2)
    inputs = random_qkv(rng, spatial=shape)
    sizes = {"WX": 2, "WY": 3, "WZ": 2, "SX": 1, "SY": 2, "SZ": 1,
             "DX": 1, "DY": 1, "DZ": 1, "CX": 0, "CY": 0, "CZ": 1}
    output = gna_attention_3d(inputs, sizes)["AV"]
    assert output.shape == (3, *shape)
    coordinates = list(np.ndindex(*shape))
    parameters = [(2, 1, 1, False), (3, 2, 1, False), (2, 1, 1, True)]

    def attended(m, p):
        return all(
            coordinates[m][a] in neighborhood_window(coordinates[p][a], shape[a], *parameters[a])
            for a in range(3)
        )

    flat = {name: array.reshape(array.shape[0], -1) for name, array in inputs.items()}
    expected = naive_attention(flat["Q"], flat["K"], flat["V"], attended)
    np.testing.assert_allclose(output.reshape(3, -1), expected)


# --------------------------------------------------------------------------
# Linear attention and attention scan
# --------------------------------------------------------------------------


def test_causal_linear_attention_matches_double_loop():
    rng = np.random.default_rng(9)
    inputs = random_qkv(rng, head_dim=3, queries=6, keys=6, value_dim=2)
    query, key, value = inputs["Q"], inputs["K"], inputs["V"]

    def phi(x):
        return x + 1.0 if x > 0 else np.exp(x)

    expected = np.zeros((2, 6))
    for p in range(6):
        numerator, denominator = np.zeros(2), 0.0
        for m in range(p + 1):
            weight = sum(phi(query[e, p]) * phi(key[e, m]) for e in range(3))
            numerator += weight * value[:, m]
            denominator += weight
        expected[:, p] = numerator / denominator
    output = causal_linear_attention(inputs, {})["AV"]
    np.testing.assert_allclose(output, expected)
    np.testing.assert_allclose(output[:, 0], value[:, 0])


def test_attention_scan_prefixes():
    rng = np.random.default_rng(10)
    inputs = random_qkv(rng, queries=4, keys=5, value_dim=3)
    output = attention_scan(inputs, {})["AV"]
    assert output.shape == (3, 5, 4)
    np.testing.assert_allclose(output[:, -1, :], attention(inputs, {})["AV"])
    np.testing.assert_allclose(output[:, 0, :], np.repeat(inputs["V"][:, :1], 4, axis=1))
    prefix = 2
    truncated = {"Q": inputs["Q"], "K": inputs["K"][:, : prefix + 1], "V": inputs["V"][:, : prefix + 1]}
    np.testing.assert_allclose(output[:, prefix, :], attention(truncated, {})["AV"])


def test_registry_names():
    assert REFERENCES == {
        "attention": attention,
        "causal-attention": causal_attention,
        "gna": gna_attention,
        "gna-2d": gna_attention_2d,
        "gna-3d": gna_attention_3d,
        "causal-linear-attention": causal_linear_attention,
        "attention-scan": attention_scan,
    }


def test_fractional_size_rejected():
    rng = np.random.default_rng(11)
    with pytest.raises(ValueError):
        gna_attention(random_qkv(rng), {"W": 2.5})
