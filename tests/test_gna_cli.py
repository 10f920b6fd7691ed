"""``einsim gna``: JSON keys, predicted runtimes, stride and tile search, Amdahl, one-line errors."""

import json

import pytest

from einsim.cli import main
from einsim.gna import gna, problem
from hw_models.gpu_sm import load_gpu
from einsim.kernels.fna import predict, supported_tiles

FLUX = ("--shape", "256", "256", "--window", "80", "80", "--q-tile", "16", "8",
        "--kv-tile", "16", "8")
BOUND_KEYS = {"flop_upper_bound", "tile_upper_bound", "tile_upper_bound_mean",
              "fully_block_sparse", "q_tiles", "worst_kv_tiles", "masked_tiles"}


def run_cli(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_json(capsys, *args):
    status, out, err = run_cli(capsys, "gna", *args, "--json")
    assert status == 0, err
    return json.loads(out)


def test_bounds_json_equals_the_library(capsys):
    data = run_json(capsys, *FLUX)
    assert BOUND_KEYS <= set(data)
    assert data["flop_upper_bound"] == pytest.approx(10.24)
    expected = gna((256, 256), (80, 80), (16, 8), (16, 8)).model_dump()
    for key in BOUND_KEYS:
        assert data[key] == pytest.approx(expected[key]), key
    assert data["q_tiles"] == (256 // 16) * (256 // 8)
    assert data["tile_upper_bound"] == pytest.approx(512 / data["worst_kv_tiles"])
    assert data["fully_block_sparse"] is False and data["masked_tiles"] > 0
    assert "predicted" not in data


def test_parameters_reach_the_library(capsys):
    data = run_json(capsys, "--shape", "30", "48", "80", "--window", "18", "24", "24",
                    "--stride", "2", "4", "4", "--dilation", "1", "2", "1",
                    "--causal", "true", "false", "false", "--q-tile", "2", "8", "8",
                    "--kv-tile", "2", "8", "8", "--kv-tiling", "dynamic")
    expected = gna((30, 48, 80), (18, 24, 24), (2, 8, 8), (2, 8, 8), stride=(2, 4, 4),
                   dilation=(1, 2, 1), causal=(True, False, False), kv_tiling="dynamic")
    for key in BOUND_KEYS:
        assert data[key] == pytest.approx(getattr(expected, key)), key


def test_window_given_once_applies_to_every_axis(capsys):
    once = run_json(capsys, "--shape", "64", "64", "--window", "16", "--q-tile", "16", "8",
                    "--kv-tile", "16", "8")
    both = run_json(capsys, "--shape", "64", "64", "--window", "16", "16", "--q-tile", "16", "8",
                    "--kv-tile", "16", "8")
    assert once["tile_upper_bound"] == both["tile_upper_bound"]
    assert once["flop_upper_bound"] == pytest.approx(16.0)


def test_table_output(capsys):
    status, out, _ = run_cli(capsys, "gna", *FLUX)
    assert status == 0
    assert "flop_upper_bound" in out and "10.240" in out


def test_predicted_runtime_on_h100(capsys):
    data = run_json(capsys, *FLUX, "--hw", "h100", "--heads", "24", "--head-dim", "128",
                    "--batch", "1", "--dtype", "fp16")
    predicted = data["predicted"]
    assert set(predicted) == {"dense_s", "sparse_s", "permute_s", "speedup"}
    assert predicted["speedup"] == pytest.approx(
        predicted["dense_s"] / (predicted["sparse_s"] + predicted["permute_s"]))
    assert predicted["permute_s"] > 0  # 2-D layouts are permuted into tile order
    direct = predict(load_gpu("h100"), problem((256, 256), (80, 80), (16, 8), (16, 8)),
                     heads=24, head_dim=128, batch=1, dtype="fp16")
    for key, value in direct.items():
        assert predicted[key] == pytest.approx(value), key
    # Sparse attention cannot beat its tile-level bound.
    assert 1 < predicted["speedup"] <= data["tile_upper_bound"]
    # The dense baseline is FA3 on the same tokens: 4 · N² · d · heads FLOPs at < 989 TFLOP/s.
    flops = 4 * 65536 ** 2 * 128 * 24
    assert flops / predicted["dense_s"] < 989e12


def test_find_stride_is_the_smallest_block_sparse_stride(capsys):
    data = run_json(capsys, *FLUX, "--find-stride")
    stride = data["stride_for_block_sparsity"]
    assert len(stride) == 2
    arguments = ((256, 256), (80, 80), (16, 8), (16, 8))
    assert gna(*arguments, stride=tuple(stride)).fully_block_sparse
    for axis in range(2):
        smaller = list(stride)
        smaller[axis] -= 1
        assert smaller[axis] >= 1
        assert not gna(*arguments, stride=tuple(smaller)).fully_block_sparse


def test_find_stride_one_dimensional(capsys):
    data = run_json(capsys, "--shape", "4096", "--window", "512", "--q-tile", "128",
                    "--kv-tile", "128", "--find-stride")
    (stride,) = data["stride_for_block_sparsity"]
    assert gna((4096,), (512,), (128,), (128,), stride=stride).fully_block_sparse
    assert not gna((4096,), (512,), (128,), (128,), stride=stride - 1).fully_block_sparse


def test_find_tiles_on_b200_picks_the_best_supported_tile(capsys):
    data = run_json(capsys, "--shape", "16", "44", "80", "--window", "9", "13", "17",
                    "--find-tiles", "--hw", "b200", "--heads", "32")
    gpu = load_gpu("b200")
    supported = supported_tiles(gpu, 3)
    assert len(supported) >= 2
    tried = {(tuple(c["q_tile"]), tuple(c["kv_tile"])) for c in data["candidates"]}
    assert tried == set(supported)
    speedups = {}
    for q, kv in supported:
        spec = problem((16, 44, 80), (9, 13, 17), q, kv)
        speedups[(q, kv)] = predict(gpu, spec, heads=32, head_dim=128)["speedup"]
    best = max(speedups, key=speedups.get)
    assert (tuple(data["q_tile"]), tuple(data["kv_tile"])) == best
    assert data["predicted"]["speedup"] == pytest.approx(speedups[best])


@pytest.mark.parametrize("gpu_args", [(), ("--hw", "h100", "--heads", "24")])
def test_end_to_end_speedup_is_amdahl(capsys, gpu_args):
    data = run_json(capsys, *FLUX, *gpu_args, "--attention-share", "0.5", "--steps", "10",
                    "--full-attention-steps", "0")
    speedup = data["predicted"]["speedup"] if gpu_args else data["tile_upper_bound"]
    assert data["end_to_end_speedup"] == pytest.approx(1 / (0.5 + 0.5 / speedup))


def test_full_attention_steps_reduce_the_end_to_end_speedup(capsys):
    data = run_json(capsys, *FLUX, "--attention-share", "0.5", "--steps", "10",
                    "--full-attention-steps", "2")
    s = data["tile_upper_bound"]
    assert data["end_to_end_speedup"] == pytest.approx(1 / (0.5 + 0.5 * (0.2 + 0.8 / s)))


@pytest.mark.parametrize("args, name", [
    (("--shape", "256", "256", "--window", "300", "80", "--q-tile", "16", "8", "--kv-tile",
      "16", "8"), "window"),
    (("--shape", "256", "256", "--window", "80", "80", "--stride", "81", "1", "--q-tile", "16",
      "8", "--kv-tile", "16", "8"), "stride"),
    (("--shape", "256", "256", "--window", "80", "80", "--q-tile", "16", "8", "8", "--kv-tile",
      "16", "8"), "q_tile"),
    (("--shape", "256", "256", "--window", "80", "80", "--q-tile", "16", "8", "--kv-tile",
      "16"), "kv_tile"),
    ((*FLUX, "--hw", "x100"), "x100"),
    (("--shape", "256", "256", "--window", "80", "80", "--q-tile", "8", "8", "--kv-tile", "8",
      "8", "--hw", "h100"), "q_tile"),
    (("--shape", "256", "256", "--window", "80", "80", "--kv-tile", "16", "8"), "--q-tile"),
    (("--shape", "256", "256", "--window", "80", "80", "--find-tiles"), "--hw"),
    ((*FLUX, "--attention-share", "1.5"), "attention_share"),
    ((*FLUX, "--hw", "h100", "--dtype", "fp32"), "dtype"),
    (("--shape", "256", "x", "--window", "80", "--q-tile", "16", "8", "--kv-tile", "16", "8"),
     "--shape"),
    ((*FLUX, "--hw", "h100", "--heads", "0"), "heads"),
    ((*FLUX, "--hw", "h100", "--batch", "-1"), "batch"),
    ((*FLUX, "--hw", "h100", "--head-dim", "0"), "head_dim"),
])
def test_errors_exit_2_with_one_line_naming_the_argument(capsys, args, name):
    status, out, err = run_cli(capsys, "gna", *args, "--json")
    assert status == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("einsim: error:")
    assert name in err.replace("-", "_") or name in err


def test_unsupported_tile_error_lists_the_supported_ones(capsys):
    status, _, err = run_cli(capsys, "gna", "--shape", "256", "256", "--window", "80", "80",
                             "--q-tile", "8", "8", "--kv-tile", "8", "8", "--hw", "h100")
    assert status == 2
    assert "h100" in err and "[16, 8]" in err


def test_predicted_runtime_of_a_huge_batch_is_fast_and_small():
    import time
    import tracemalloc

    gpu = load_gpu("h100")
    spec = problem((256, 256), (80, 80), (16, 8), (16, 8))
    small = predict(gpu, spec, heads=24, head_dim=128, batch=1)
    tracemalloc.start()
    started = time.perf_counter()
    huge = predict(gpu, spec, heads=24, head_dim=128, batch=10 ** 8)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 10 * 2 ** 20, (elapsed, peak)
    assert huge["dense_s"] == pytest.approx(small["dense_s"] * 10 ** 8, rel=0.01)
    assert huge["speedup"] > 1


@pytest.mark.parametrize("name, value", [("batch", "2"), ("heads", None), ("batch", 1.5),
                                         ("head_dim", float("inf")), ("batch", 2 ** 63)])
def test_predict_misuse_names_the_argument(name, value):
    from einsim.gna import GNAError

    arguments = dict(heads=2, head_dim=128, batch=1)
    arguments[name] = value
    with pytest.raises(GNAError, match=f"^{name} "):
        predict(load_gpu("h100"), problem((64,), (16,), (128,), (128,)), **arguments)


@pytest.mark.parametrize("batch, ok", [("1e8", True), ("100000000", True), ("1.5", False),
                                       ("nan", False), ("1e400", False), ("2" * 30, False)])
def test_batch_accepts_whole_floats_only(capsys, batch, ok):
    status, out, err = run_cli(capsys, "gna", *FLUX, "--hw", "h100", "--batch", batch, "--json")
    if ok:
        assert status == 0 and json.loads(out)["predicted"]["speedup"] > 1
    else:
        assert status == 2 and out == "" and err.count("\n") == 1 and "batch" in err


def test_model_api_misuse_names_the_argument():
    from einsim.gna import GNAError, analyze, end_to_end_speedup, find_stride

    gpu = load_gpu("h100")
    spec = problem((64,), (16,), (128,), (128,))
    cases = [(lambda: analyze("x"), "spec 'x'"), (lambda: find_stride(None), "spec None"),
             (lambda: end_to_end_speedup("2", 0.5), "attention_speedup '2'"),
             (lambda: end_to_end_speedup(2.0, float("nan")), "attention_share nan"),
             (lambda: predict("h100", spec, heads=1, head_dim=64), "gpu 'h100'"),
             (lambda: predict(gpu, {"shape": [64]}, heads=1, head_dim=64), "spec {'shape'"),
             (lambda: supported_tiles(gpu, 4), "dims 4")]
    for call, fragment in cases:
        with pytest.raises(GNAError) as caught:
            call()
        assert str(caught.value).startswith(fragment), str(caught.value)
