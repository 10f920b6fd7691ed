"""The GPU streaming-multiprocessor model: presets and the evaluator front door on GPUs (the
kernels themselves are loop trees: tests/test_gpu_trees.py)."""


import pytest

import einsim
from einsim.errors import EinsimError, SpecError
from hw_models.gpu_sm import gpu_presets, load_gpu

# Published dense figures (reference/gpus.md): SMs, FP16 tensor TFLOP/s, HBM TB/s, HBM GB.
PUBLISHED = {
    "a100": dict(sms=108, tflops=312, hbm_tb_s=2.04, hbm_gb=80),
    "h100": dict(sms=132, tflops=989, hbm_tb_s=3.35, hbm_gb=80),
    "h200": dict(sms=132, tflops=989, hbm_tb_s=4.8, hbm_gb=141),
    "b200": dict(sms=148, tflops=2250, hbm_tb_s=8.0, hbm_gb=180),
    "h20": dict(sms=78, tflops=148, hbm_tb_s=4.0, hbm_gb=96),
}


@pytest.fixture(scope="module")
def h100():
    return load_gpu("h100")


@pytest.fixture(scope="module")
def a100():
    return load_gpu("a100")


# --------------------------------------------------------------------------- presets


def test_every_published_gpu_is_a_preset():
    assert set(PUBLISHED) <= set(gpu_presets())
    assert "fusemax-cloud" not in gpu_presets()  # spatial arrays are not GPUs


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_matches_the_published_numbers(name):
    gpu = load_gpu(name)
    facts = PUBLISHED[name]
    assert gpu.name == name and gpu.kind == "gpu_sm"
    assert gpu.sms == facts["sms"]
    assert gpu.peak_flops("fp16") == pytest.approx(facts["tflops"] * 1e12, rel=0.01)
    assert gpu.peak_flops("bf16") == pytest.approx(gpu.peak_flops("fp16"))
    assert gpu.hbm_bandwidth_bytes_per_s == pytest.approx(facts["hbm_tb_s"] * 1e12, rel=1e-6)
    assert gpu.hbm_bytes == pytest.approx(facts["hbm_gb"] * 1e9, rel=1e-6)
    assert gpu.exp_per_clock_per_sm == 16
    assert gpu.register_bytes_per_sm == 256 * 1024


@pytest.mark.parametrize("name, flop_per_clock, clock_mhz", [
    ("a100", 2048, 1410), ("h100", 4096, 1830), ("h200", 4096, 1830), ("b200", 8192, 1855),
])
def test_tensor_rate_and_clock_are_the_published_ones(name, flop_per_clock, clock_mhz):
    gpu = load_gpu(name)
    assert gpu.tensor_rate("fp16") == flop_per_clock
    assert gpu.clock_hz == pytest.approx(clock_mhz * 1e6, rel=0.005)


def test_h20_clock_is_derived_from_its_peak():
    gpu = load_gpu("h20")
    assert gpu.clock_hz == pytest.approx(148e12 / (78 * gpu.tensor_rate("fp16")), rel=0.001)


def test_unknown_dtype_names_the_dtype_and_the_available_ones(a100):
    with pytest.raises(SpecError) as caught:
        a100.peak_flops("fp8")  # Ampere has no FP8 tensor cores
    assert "fp8" in str(caught.value) and "fp16" in str(caught.value)


def test_unknown_gpu_lists_the_presets():
    with pytest.raises(SpecError) as caught:
        load_gpu("x100")
    message = str(caught.value)
    assert "x100" in message
    for name in PUBLISHED:
        assert name in message


def test_load_case_insensitive_and_from_a_file(tmp_path):
    assert load_gpu("H100").name == "h100"
    import hw_models
    from importlib import resources
    text = resources.files(hw_models).joinpath("presets", "h100.yaml").read_text()
    path = tmp_path / "my-gpu.yaml"
    path.write_text(text.replace("sms: 132", "sms: 66"))
    gpu = load_gpu(str(path))
    assert gpu.sms == 66
    assert gpu.peak_flops("fp16") == pytest.approx(load_gpu("h100").peak_flops("fp16") / 2)


def test_invalid_gpu_file_names_the_field(tmp_path):
    import hw_models
    from importlib import resources
    text = resources.files(hw_models).joinpath("presets", "h100.yaml").read_text()
    path = tmp_path / "broken.yaml"
    path.write_text(text.replace("sms: 132", "sms: -1"))
    with pytest.raises(SpecError) as caught:
        load_gpu(str(path))
    assert "sms" in str(caught.value)


SPATIAL_REPORT_KEYS = {"cascade", "mapping", "hardware", "workload", "passes", "buffer_bytes",
                       "buffer_capacity_bytes", "traffic_bytes", "compute_latency_s",
                       "memory_latency_s", "latency_s", "utilization", "energy_j",
                       "energy_breakdown_j", "area_mm2", "einsums"}


def test_evaluate_flash_attention_3_on_h100():
    report = einsim.evaluate("flash-attention-3", hardware="h100", workload="bert",
                             seq_len="8K")
    data = report.model_dump()
    assert SPATIAL_REPORT_KEYS <= set(data)
    assert set(report.utilization) == {"tensor_core", "exp_unit", "fp32"}
    assert all(0 < value <= 1 for value in report.utilization.values())
    assert (report.mapping, report.hardware, report.seq_len) == ("flash-attention-3", "h100",
                                                                 8192)
    assert report.latency_s == pytest.approx(max(report.compute_latency_s,
                                                 report.memory_latency_s))
    assert report.buffer_bytes <= report.buffer_capacity_bytes
    assert report.passes == 1


def test_gpu_report_has_the_same_keys_as_a_spatial_report():
    gpu = einsim.evaluate("flash-attention-3", hardware="h100", workload="bert", seq_len="8K")
    spatial = einsim.evaluate("fusemax", workload="bert", seq_len="8K")
    assert set(gpu.model_dump()) == set(spatial.model_dump())


def test_spatial_mapping_on_a_gpu_is_rejected():
    with pytest.raises(EinsimError) as caught:
        einsim.evaluate("fusemax", hardware="h100", workload="bert", seq_len="8K")
    assert "GPU" in str(caught.value)


def test_unknown_gpu_in_evaluate_lists_the_gpu_presets():
    # A GPU mapping on an unknown hardware name: the message should offer the GPUs.
    with pytest.raises(SpecError) as caught:
        einsim.evaluate("flash-attention-3", hardware="h999", workload="bert", seq_len="8K")
    message = str(caught.value)
    assert "h999" in message
    assert all(name in message for name in PUBLISHED), message


@pytest.mark.parametrize("field, value, fragment", [
    ("hbm_bandwidth_bytes_per_s", float("inf"), "hbm_bandwidth_bytes_per_s: expected a finite"),
    ("hbm_bandwidth_bytes_per_s", "3.35e12", None),  # YAML 1.1 reads 3.35e12 as text
    ("price_per_hour", -1.0, "price_per_hour"),
    ("price_per_hour", 0, "price_per_hour"),
    ("sms", 132.5, "sms: expected an integer"),
    ("sms", 2 ** 63, "sms: expected an integer greater than 0 and at most 65,536"),
    ("clock_hz", float("nan"), "clock_hz: expected a finite number"),
    ("max_ctas_per_sm", True, "max_ctas_per_sm: expected an integer"),
])
def test_gpu_fields_are_finite_and_integral(tmp_path, field, value, fragment):
    import yaml

    from einsim.errors import SpecError

    document = yaml.safe_load(open("hw_models/presets/h100.yaml").read())
    document[field] = value
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(document))
    if fragment is None:
        assert load_gpu(str(path)).hbm_bandwidth_bytes_per_s == 3.35e12
        return
    with pytest.raises(SpecError) as caught:
        load_gpu(str(path))
    assert fragment in str(caught.value) and "mine.yaml" in str(caught.value)


def test_tile_shapes_must_match_their_dimensions(tmp_path):
    import yaml

    from einsim.errors import SpecError

    document = yaml.safe_load(open("hw_models/presets/h100.yaml").read())
    document["tiles"]["na2d"] = [[[16, 8, 2], [16, 8]]]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(SpecError, match="tiles.na2d"):
        load_gpu(str(path))
    with pytest.raises(SpecError, match="GPU None: expected a preset name"):
        load_gpu(None)


def test_fa2_or_fa3_behaviour_comes_from_the_tree_not_its_name(tmp_path):
    """A copy of FlashAttention-2's tree under another name still runs as FlashAttention-2;
    turning its softmax/GEMM sequence into a pipeline is what makes it faster."""
    import yaml

    from einsim.cost.front_door import evaluate

    document = yaml.safe_load(open("mappings/flash-attention-2.yaml"))
    document["name"] = "my-kernel"
    copy = tmp_path / "my-kernel.yaml"
    copy.write_text(yaml.safe_dump(document))
    fa2 = evaluate("flash-attention-2", workload="xlm", seq_len=8192)
    renamed = evaluate(str(copy), workload="xlm", seq_len=8192)
    assert renamed.latency_s == fa2.latency_s
    body = document["tree"][5]["sequence"][0][-1]["sequence"]
    unit = [step[0].get("on", step[0].get(True)) for step in body]  # YAML 1.1 reads on: as True
    tensor = [step for step, u in zip(body, unit) if u == "tensor_core"]
    softmax = [step for step, u in zip(body, unit) if u != "tensor_core"]
    # S first; then the previous tile's PV overlaps this tile's softmax
    document["tree"][5]["sequence"][0][-1]["sequence"] = [
        tensor[0], [{"pipeline": [tensor[1], [{"sequence": softmax}]]}]]
    copy.write_text(yaml.safe_dump(document))
    overlapped = evaluate(str(copy), workload="xlm", seq_len=8192)
    assert overlapped.latency_s < fa2.latency_s
