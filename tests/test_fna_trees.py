"""Fused neighborhood attention as loop trees (mappings/fna-1d, fna-2d, fna-3d and
token-permute): tile counts against materialized masks, costs against hand calculations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import einsim
from einsim.cost.masks import tile_fractions
from einsim.gna import problem
from einsim.kernels.fna import predict, tree_inputs
from einsim.kernels.tree_runs import kernel_records, run_tree
from einsim.library.references import neighborhood_mask
from hw_models.gpu_sm import load_gpu


def _materialized_fractions(shape, window, stride, causal, q_tile, kv_tile):
    """Count (Q tile, KV tile) pairs of a materialized N-D mask with loops: a tile pair is
    visited when some query of the Q block attends some key of the KV block, partial when it
    is visited and some pair (or a padding key past an axis) is masked; and the busiest Q
    block's visited share of the KV blocks."""
    dims = len(shape)
    mask = neighborhood_mask(shape, window, stride, [1] * dims, causal).reshape(
        tuple(shape) + tuple(shape))  # mask[keys..., queries...] (keys first, as Q·K)
    q_blocks = [range(0, n, t) for n, t in zip(shape, q_tile)]
    kv_blocks = [range(0, n, t) for n, t in zip(shape, kv_tile)]
    visited = partial = dense = busiest = 0
    for q in np.ndindex(*[len(b) for b in q_blocks]):
        row = 0
        for k in np.ndindex(*[len(b) for b in kv_blocks]):
            q_slice = tuple(slice(q_blocks[a][q[a]], q_blocks[a][q[a]] + q_tile[a])
                            for a in range(dims))
            k_slice = tuple(slice(kv_blocks[a][k[a]], kv_blocks[a][k[a]] + kv_tile[a])
                            for a in range(dims))
            block = mask[k_slice + q_slice]
            ragged = any(block.shape[a] < kv_tile[a] for a in range(dims))
            dense += 1
            if block.any():
                row += 1
                partial += bool(ragged or not block.all())
        visited += row
        busiest = max(busiest, row)
    kv_count = math.prod(len(b) for b in kv_blocks)
    return visited / dense, partial / dense, busiest / kv_count


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_multi_dimensional_tile_fractions_equal_a_materialized_mask(data):
    """The engine counts a window per axis and multiplies; a materialized mask counts the
    N-D tiles directly."""
    dims = data.draw(st.sampled_from([2, 3]))
    shape = [data.draw(st.integers(3, 9)) for _ in range(dims)]
    window = [data.draw(st.integers(1, n)) for n in shape]
    stride = [data.draw(st.integers(1, w)) for w in window]
    causal = [data.draw(st.booleans()) for _ in range(dims)]
    q_tile = [data.draw(st.integers(1, n)) for n in shape]
    kv_tile = [data.draw(st.integers(1, n)) for n in shape]
    axes = "XYZ"[:dims]
    cascade = einsim.library.get(f"gna-{dims}d-tiles")
    sizes = {"E": 2, "F": 2}
    q_tiles, kv_tiles = {}, {}
    for a, axis in enumerate(axes):
        sizes.update({f"M{axis}": shape[a], f"P{axis}": shape[a], f"W{axis}": window[a],
                      f"S{axis}": stride[a], f"D{axis}": 1, f"C{axis}": int(causal[a]),
                      f"M{axis}0": kv_tile[a], f"M{axis}1": -(-shape[a] // kv_tile[a])})
        q_tiles[f"p{axis.lower()}"] = q_tile[a]
        kv_tiles.update({f"m{axis.lower()}1": 1, f"m{axis.lower()}0": kv_tile[a]})
    got = tile_fractions(cascade, "BQK", sizes, q_tiles, kv_tiles)
    want = _materialized_fractions(shape, window, stride, causal, q_tile, kv_tile)
    assert got == pytest.approx(want)


def test_skipped_tiles_cost_nothing_but_their_ctas_overhead():
    """1-D FNA at 8,192 tokens, 128 x 128 tiles: a window of the whole axis visits all 64 KV
    tiles of every Q tile; a blocked window (window = stride = 128) exactly one, never partial.
    Both grids have the same CTAs and waves, so per CTA the difference is 63 tiles of work t,
    and a blocked CTA takes its one tile, the preset's CTA overhead o and at most one more
    tile's worth of pipeline fill and epilogue (a 64-tile CTA spreads its fill thin)."""
    h100 = load_gpu("h100")
    runs = {}
    for window, stride in ((8192, 1), (128, 128)):
        sizes, parameters, params, _ = tree_inputs(
            problem((8192,), (window,), (128,), (128,), stride=(stride,)), 128)
        metrics = run_tree(h100, "fna-1d", sizes, 24, parameters, params)
        runs[window] = kernel_records(metrics["raw"])[0]
    full, blocked = runs[8192], runs[128]
    assert full["waves"] == blocked["waves"] == math.ceil(24 * 64 / (132 * full["slots"]))
    tile = (full["cycles"] - blocked["cycles"]) / (63 * full["waves"])
    overhead = h100.calibration.cta_overhead_cycles
    assert tile + overhead <= blocked["cycles"] / blocked["waves"] <= 2 * tile + overhead
    # and a tile is the two GEMMs at the calibrated tensor rate, the softmax hidden under them
    # (the difference also holds the fill the full CTA spreads thin: a few percent)
    gemms = 128 * 128 * 4 * 128 / (h100.tensor_rate("fp16") * h100.calibration.tensor_efficiency)
    assert 0.97 * gemms <= tile < 1.25 * gemms


def test_token_permute_moves_eight_tensors_through_hbm():
    """A 2-D problem permutes Q, K, V into tile order and the output back: 8 tensors of
    tokens x head_dim x 2 bytes per (batch, head) through HBM, at HBM bandwidth."""
    h100 = load_gpu("h100")
    spec = problem((256, 256), (80, 80), (16, 8), (16, 8))
    result = predict(h100, spec, heads=24, head_dim=128)
    moved = 8 * 256 * 256 * 128 * 2 * 24
    assert result["permute_s"] == pytest.approx(moved / h100.hbm_bandwidth_bytes_per_s,
                                                 rel=0.1)
    one_d = predict(h100, problem((4096,), (512,), (128,), (128,)), heads=4, head_dim=128)
    assert one_d["permute_s"] == 0.0
    dilated = predict(h100, problem((4096,), (512,), (128,), (128,), dilation=(2,)), heads=4,
                      head_dim=128)
    assert dilated["permute_s"] > 0
    assert result["speedup"] == pytest.approx(
        result["dense_s"] / (result["sparse_s"] + result["permute_s"]))


def test_a_window_of_the_whole_grid_costs_about_dense_attention():
    """Every tile visited and none partial: FNA is dense attention with smaller tiles."""
    h100 = load_gpu("h100")
    result = predict(h100, problem((64, 64), (64, 64), (16, 8), (16, 8)), heads=16,
                     head_dim=128, batch=4)
    assert 0.7 < result["speedup"] < 1.05


@pytest.mark.parametrize("stride", [1, 8])
def test_sliding_windows_pay_for_masking_blocked_ones_do_not(stride):
    """Stride 1 leaves most tiles partial, each paying 6 operations per score (two window ends
    per axis, an and, a select); the same problem with every score's mask cost removed (a
    window over the whole grid, scaled by the visited tiles) is the lower bound."""
    h100 = load_gpu("h100")
    spec = problem((128, 128), (24, 24), (16, 8), (16, 8), stride=(stride, stride))
    result = predict(h100, spec, heads=16, head_dim=128)
    counts = einsim.gna(shape=(128, 128), window=(24, 24), q_tile=(16, 8), kv_tile=(16, 8),
                        stride=(stride, stride))
    assert result["sparse_s"] > 0
    assert result["dense_s"] / result["sparse_s"] < counts.tile_upper_bound


def test_grid_nodes_must_be_directly_nested(tmp_path):
    """Two grid nodes with a keep between them would be a kernel inside a kernel."""
    import yaml

    from einsim.errors import MappingError

    document = yaml.safe_load(open("mappings/fna-2d.yaml"))
    tree = document["tree"]
    tree.insert(3, {"keep": {"shared_memory": ["Q"]}})  # between the px and py grid nodes
    path = tmp_path / "split.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(MappingError, match="inside nested kernels"):
        einsim.evaluate(str(path), workload="flux-4k")


def test_image_and_video_workloads_evaluate_the_fna_trees():
    """A workload's token grid sizes the multi-dimensional trees; the CTAs are the Q tiles of
    the grid: 256/16 x 256/8 per head on FLUX.1 4K."""
    report = einsim.evaluate("fna-2d", workload="flux-4k")
    assert report.passes == 1 and report.latency_s > 0
    h100 = load_gpu("h100")
    tree_3d = einsim.evaluate("fna-3d", workload="hunyuan-video")
    assert tree_3d.latency_s > report.latency_s  # more tokens, a 3x3x3 window against 3x3
    sizes, parameters, params, _ = tree_inputs(problem((256, 256), (3, 3), (16, 8), (16, 8)),
                                               128)
    metrics = run_tree(h100, "fna-2d", sizes, 24, parameters, params)
    assert kernel_records(metrics["raw"])[0]["ctas"] == 24 * (256 // 16) * (256 // 8)


@pytest.mark.parametrize("shape, window, q_tile, kv_tile, stride", [
    ((4096,), (200,), (128,), (128,), (1,)), ((64, 64), (13, 13), (16, 8), (16, 8), (1, 1)),
    ((48, 40), (13, 9), (16, 8), (16, 8), (4, 2))])
def test_dynamic_kv_tiling_is_a_tree_edit_counted_by_einsim_gna(shape, window, q_tile,
                                                                kv_tile, stride):
    """``start: mask`` on the KV loops: each Q tile's KV tiles start at its first attended
    key.  The engine's visited tiles equal einsim.gna's dynamic counts, and never exceed the
    static ones."""
    h100 = load_gpu("h100")
    dims = len(shape)
    axes = [""] if dims == 1 else list("XYZ"[:dims])
    cascade = einsim.library.get("gna" if dims == 1 else f"gna-{dims}d-tiles")
    visited = {}
    for tiling in ("static", "dynamic"):
        spec = problem(shape, window, q_tile, kv_tile, stride=stride, kv_tiling=tiling)
        sizes, _, params, _ = tree_inputs(spec, 128)
        q_tiles, kv_tiles = {}, {}
        for a, axis in enumerate(axes):
            low = axis.lower()
            sizes[f"M{axis}0"] = kv_tile[a]
            sizes[f"M{axis}1"] = -(-shape[a] // kv_tile[a])
            q_tiles[f"p{low}"] = q_tile[a]
            kv_tiles.update({f"m{low}1": 1, f"m{low}0": kv_tile[a]})
        seen, _, _ = tile_fractions(cascade, "BQK", {**sizes, **params}, q_tiles, kv_tiles,
                                 tiling == "dynamic")
        dense = math.prod(-(-n // t) for n, t in zip(shape, q_tile)) \
            * math.prod(-(-n // t) for n, t in zip(shape, kv_tile))
        counted = einsim.gna(shape=shape, window=window, q_tile=q_tile, kv_tile=kv_tile,
                             stride=stride, kv_tiling=tiling)
        assert seen * dense == pytest.approx(counted.visited_kv_tiles)
        visited[tiling] = counted.visited_kv_tiles
    assert visited["dynamic"] <= visited["static"]
    static = predict(h100, problem(shape, window, q_tile, kv_tile, stride=stride), heads=8,
                     head_dim=128)
    dynamic = predict(h100, problem(shape, window, q_tile, kv_tile, stride=stride,
                                    kv_tiling="dynamic"), heads=8, head_dim=128)
    assert dynamic["sparse_s"] <= static["sparse_s"] * (1 + 1e-9)


def test_start_mask_counts_neighborhoods_only(tmp_path):
    import yaml

    from einsim.errors import MappingError

    document = yaml.safe_load(open("mappings/flash-attention-3.yaml"))
    document["tree"][5]["sequence"][0][0]["start"] = "mask"
    path = tmp_path / "causal-dynamic.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(MappingError, match="start: mask"):
        einsim.evaluate(str(path), cascade="causal-attention-1pass", workload="bert",
                        seq_len=4096)
