"""GNA bounds: per-axis counting against a brute-force mask-and-count oracle."""

import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einsim.gna import (GNAError, attended_pairs, axis_counts, end_to_end_speedup, find_stride,
                        gna, problem, windows)
from einsim.library.references import neighborhood_mask, neighborhood_mask_1d


def axis_tiles(length, dilation, tile):
    """Tiles of one axis in permuted order: per dilation group, coordinates padded with -1."""
    tiles = []
    for group in range(dilation):
        coords = list(range(group, length, dilation))
        for first in range(0, len(coords), tile):
            chunk = coords[first:first + tile]
            tiles.append((group, chunk + [-1] * (tile - len(chunk))))
    return tiles


def brute_force(shape, window, stride, dilation, causal, q_tile, kv_tile, dynamic=False):
    mask = neighborhood_mask(shape, window, stride, dilation, causal)  # [key, query]
    flat = np.arange(math.prod(shape)).reshape(shape)
    axes_q = [axis_tiles(shape[a], dilation[a], q_tile[a]) for a in range(len(shape))]
    axes_kv = [axis_tiles(shape[a], dilation[a], kv_tile[a]) for a in range(len(shape))]

    def dynamic_tiles(axis, q_coords, group):
        one = neighborhood_mask_1d(shape[axis], window[axis], stride[axis], dilation[axis],
                                   causal[axis])
        keys = [k for k in range(shape[axis]) if any(one[k, q] for q in q_coords if q >= 0)]
        in_group = list(range(group, shape[axis], dilation[axis]))
        first = in_group.index(min(keys))
        tiles = []
        for start in range(first, len(in_group), kv_tile[axis]):
            chunk = in_group[start:start + kv_tile[axis]]
            tiles.append((group, chunk + [-1] * (kv_tile[axis] - len(chunk))))
        return tiles

    visited_counts, masked = [], 0
    for q_combo in itertools.product(*axes_q):
        queries = [flat[c] for c in itertools.product(*(chunk for _, chunk in q_combo))
                   if min(c) >= 0]
        kv_axes = [dynamic_tiles(a, q_combo[a][1], q_combo[a][0]) if dynamic else axes_kv[a]
                   for a in range(len(shape))]
        count = 0
        for kv_combo in itertools.product(*kv_axes):
            coords = list(itertools.product(*(chunk for _, chunk in kv_combo)))
            keys = [flat[c] for c in coords if min(c) >= 0]
            padded = len(keys) < len(coords)
            if not keys:
                continue
            block = mask[np.ix_(keys, queries)]
            if block.any():
                count += 1
                masked += padded or not block.all()
        visited_counts.append(count)
    tokens = math.prod(shape)
    dense = -(-tokens // math.prod(kv_tile))
    return {"flop_upper_bound": tokens * tokens / mask.sum(),
            "tile_upper_bound": dense / max(visited_counts),
            "tile_upper_bound_mean": (-(-tokens // math.prod(q_tile))) * dense
            / sum(visited_counts),
            "q_tiles": len(visited_counts), "worst_kv_tiles": max(visited_counts),
            "masked_tiles": masked, "fully_block_sparse": masked == 0}


@st.composite
def problems(draw):
    dims = draw(st.integers(1, 3))
    shape, window, stride, dilation, causal, q_tile, kv_tile = [], [], [], [], [], [], []
    for _ in range(dims):
        length = draw(st.integers(2, 14 if dims == 1 else 7))
        d = draw(st.integers(1, max(1, length // 2)))
        k = draw(st.integers(1, length // d))
        shape.append(length)
        dilation.append(d)
        window.append(k)
        stride.append(draw(st.integers(1, k)))
        causal.append(draw(st.booleans()))
        q_tile.append(draw(st.integers(1, 4)))
        kv_tile.append(draw(st.integers(1, 4)))
    return shape, window, stride, dilation, causal, q_tile, kv_tile, draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(problems())
def test_per_axis_counting_matches_the_brute_force_oracle(case):
    shape, window, stride, dilation, causal, q_tile, kv_tile, dynamic = case
    result = gna(shape, window, q_tile, kv_tile, stride, dilation, causal,
                 "dynamic" if dynamic else "static")
    oracle = brute_force(shape, window, stride, dilation, causal, q_tile, kv_tile, dynamic)
    for key, want in oracle.items():
        got = getattr(result, key)
        assert got == pytest.approx(want), (key, case)


@pytest.mark.parametrize("shape, window, expected", [
    ((32768,), (2048,), 16.0), ((256, 256), (80, 80), 10.24), ((30, 48, 80), (18, 24, 24), 100 / 9),
])
def test_published_flop_bounds(shape, window, expected):
    tiles = (1,) * len(shape)
    assert gna(shape, window, tiles, tiles).flop_upper_bound == pytest.approx(expected)


def test_blocked_attention_with_aligned_tiles_is_fully_block_sparse():
    result = gna((256, 256), (64, 64), (16, 8), (16, 8), stride=(64, 64))
    assert result.fully_block_sparse and result.masked_tiles == 0
    assert result.tile_upper_bound == pytest.approx(16.0)
    strides = find_stride(problem((256, 256), (64, 64), (16, 8), (16, 8)))
    assert gna((256, 256), (64, 64), (16, 8), (16, 8), stride=strides).fully_block_sparse
    for axis in range(2):  # the smallest: one less on either axis is not block-sparse
        smaller = list(strides)
        smaller[axis] -= 1
        assert not gna((256, 256), (64, 64), (16, 8), (16, 8), stride=smaller).fully_block_sparse


def test_self_attention_window_equal_to_the_axis_is_dense():
    result = gna((64,), (64,), (16,), (16,))
    assert result.tile_upper_bound == 1.0 and result.flop_upper_bound == 1.0


def test_million_token_3d_problem_is_fast():
    started = time.perf_counter()
    result = gna((64, 128, 128), (17, 33, 33), (4, 4, 8), (4, 4, 8), stride=(1, 2, 2),
                 dilation=(1, 1, 2), causal=(True, False, False))
    assert time.perf_counter() - started < 0.5 and result.tokens == 64 * 128 * 128


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(shape=(10,), window=(11,)), "window 11 on axis 0"),
    (dict(shape=(10,), window=(3,), stride=(4,)), "stride 4 on axis 0: larger than the window"),
    (dict(shape=(10, 10), window=(3, 3), q_tile=(2,)), "q_tile [2]: has 1 dimension"),
    (dict(shape=(10,), window=(3,), dilation=(4,)), "window x dilation"),
    (dict(shape=(10,), window=(3,), causal=("maybe",)), "causal 'maybe'"),
])
def test_bad_input_names_the_argument(kwargs, fragment):
    arguments = {"q_tile": (1,) * len(kwargs["shape"]), "kv_tile": (1,) * len(kwargs["shape"]),
                 **kwargs}
    with pytest.raises(GNAError) as caught:
        problem(**arguments)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_amdahl():
    assert end_to_end_speedup(10.0, 0.5) == pytest.approx(1 / (0.5 + 0.05))
    assert end_to_end_speedup(10.0, 0.6, steps=50, full_attention_steps=50) == pytest.approx(1.0)
    assert end_to_end_speedup(4.0, 1.0, steps=4, full_attention_steps=2) == pytest.approx(1.6)
    with pytest.raises(GNAError):
        end_to_end_speedup(2.0, 1.5)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300), st.data())
def test_closed_form_attended_pairs_match_the_per_query_windows(length, data):
    window = data.draw(st.integers(1, length))
    stride = data.draw(st.integers(1, window))
    causal = data.draw(st.booleans())
    start, end = windows(length, window, stride, causal)
    assert attended_pairs(length, window, stride, causal) == int(np.sum(end - start))


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 400), st.data())
def test_first_and_last_query_counts_match_per_token_counting(length, data):
    """The per-Q-tile counts from first/last queries equal a count over every token's window."""
    dilation = data.draw(st.integers(1, max(1, length // 2)))
    window = data.draw(st.integers(1, length // dilation))
    stride = data.draw(st.integers(1, window))
    causal = data.draw(st.booleans())
    q_tile, kv_tile = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))
    axis = axis_counts(length, window, stride, dilation, causal, q_tile, kv_tile)
    want_visited, want_pairs = [], 0
    for group in range(dilation):
        size = -(-(length - group) // dilation)
        start, end = windows(size, window, stride, causal)
        want_pairs += int(np.sum(end - start))
        for first in range(0, size, q_tile):
            lo, hi = start[first:first + q_tile].min(), end[first:first + q_tile].max()
            want_visited.append(-(-hi // kv_tile) - lo // kv_tile)
    assert axis.visited.tolist() == want_visited and axis.attended_pairs == want_pairs
    assert axis.q_tiles == len(want_visited) and axis.visited_total == sum(want_visited)


@pytest.mark.parametrize("causal, dilation", [(False, 1), (True, 4)])
def test_million_token_1d_problem_is_under_a_millisecond(causal, dilation):
    case = dict(shape=(1048576,), window=(2048,), q_tile=(128,), kv_tile=(128,),
                dilation=dilation, causal=causal)
    gna(**case)
    best = float("inf")
    for _ in range(20):
        started = time.perf_counter()
        gna(**case)
        best = min(best, time.perf_counter() - started)
    assert best < 1e-3, f"{best * 1e3:.2f} ms"


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(shape=("64",), window=(3,)), "shape '64': expected an integer"),
    (dict(shape=(64,), window=(1.5,)), "window 1.5: expected an integer"),
    (dict(shape=(64,), window=None), "window None"),
    (dict(shape=(float("inf"),), window=(3,)), "shape inf"),
    (dict(shape=(64,), window=(3,), stride=float("nan")), "stride nan"),
    (dict(shape=(2 ** 63,), window=(3,)), "an axis is longer than"),
    (dict(shape=(10 ** 400,), window=(3,)), "an axis is longer than"),
    (dict(shape=(2 ** 31,), window=(3,), q_tile=(1,)), "use a larger q_tile"),
    (dict(shape=(64,), window=(3,), causal=(2,)), "causal 2"),
    (dict(shape=(64,), window=(3,), q_tile=(True,)), "q_tile True"),
])
def test_api_misuse_is_a_typed_error_naming_the_argument(kwargs, fragment):
    arguments = {"q_tile": (1,) * len(kwargs["shape"]), "kv_tile": (1,) * len(kwargs["shape"]),
                 **kwargs}
    with pytest.raises(GNAError) as caught:
        problem(**arguments)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_integral_floats_are_accepted():
    assert problem((64.0,), (8.0,), (16,), (16,)).shape == (64,)


@settings(max_examples=150, deadline=None)
@given(problems())
def test_find_stride_is_the_smallest_block_sparse_stride(case):
    shape, window, _, dilation, causal, q_tile, kv_tile, dynamic = case
    tiling = "dynamic" if dynamic else "static"
    spec = problem(shape, window, q_tile, kv_tile, 1, dilation, causal, tiling)
    want = []
    for axis in range(len(shape)):
        found = next((s for s in range(1, window[axis] + 1)
                      if axis_counts(shape[axis], window[axis], s, dilation[axis], causal[axis],
                                     q_tile[axis], kv_tile[axis], dynamic).block_sparse), None)
        want.append(found)
    if None in want:
        with pytest.raises(GNAError, match="no stride up to the window"):
            find_stride(spec)
    else:
        assert find_stride(spec) == tuple(want)


def test_stride_search_is_fast_and_bounded():
    started = time.perf_counter()
    assert find_stride(problem((1048576,), (2048,), (128,), (128,))) == (256,)
    with pytest.raises(GNAError, match="no stride"):
        find_stride(problem((1048576,), (2000,), (128,), (128,)))
    assert time.perf_counter() - started < 1.0
    with pytest.raises(GNAError, match="a stride search would examine"):
        find_stride(problem((2 ** 24,), (2 ** 20,), (256,), (128,)))
