"""GPU decode schedules: FlashAttention-2, FlashDecoding and LeanAttention (stream-K)."""

import json
import math

import pytest

import einsim
from einsim.cli import main
from einsim.errors import EinsimError
from hw_models.gpu_sm import load_gpu
from einsim.kernels.decode import SCHEDULES, estimate, kv_block, num_splits


@pytest.fixture(scope="module")
def h100():
    return load_gpu("h100")


@pytest.fixture(scope="module")
def a100():
    return load_gpu("a100")


def run_cli(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def tile_seconds(gpu, head_dim=128, rows=1):
    """One KV tile of a decode CTA, memory-bound: K and V (2 x 128 keys x d x 2 bytes) from HBM
    at one SM's share of the bandwidth."""
    block = kv_block(head_dim)
    return 2 * block * head_dim * 2 / (gpu.hbm_bandwidth_bytes_per_s / gpu.sms)


# --------------------------------------------------------------------------- wave quantization


def test_a100_wave_quantization_fact(a100):
    full = estimate(a100, "fa2", batch=216, heads=1, head_dim=128, context=4096)
    over = estimate(a100, "fa2", batch=220, heads=1, head_dim=128, context=4096)
    assert (full.ctas, over.ctas) == (216, 220)
    assert over.waves == full.waves + 1
    assert over.latency_s / full.latency_s > 1.25
    assert full.sm_utilization == pytest.approx(1.0)


def test_fa2_with_few_ctas_is_much_slower_than_split_schedules(h100):
    args = dict(batch=1, heads=32, head_dim=128, context=32768)
    fa2 = estimate(h100, "fa2", **args)
    flash = estimate(h100, "flash-decoding", **args)
    lean = estimate(h100, "lean", **args)
    assert fa2.ctas == 32 and fa2.splits == 1
    assert fa2.latency_s > 2 * flash.latency_s
    assert fa2.latency_s > 2 * lean.latency_s
    assert flash.splits > 1 and lean.splits > 1
    assert flash.merge_s > 0 and lean.merge_s > 0
    assert fa2.sm_utilization == pytest.approx(32 / 132)


def test_full_grid_needs_no_split(h100):
    args = dict(batch=64, heads=32, head_dim=128, context=32768)
    fa2 = estimate(h100, "fa2", **args)
    flash = estimate(h100, "flash-decoding", **args)
    assert flash.splits == 1 and flash.merge_s == 0
    assert flash.latency_s == pytest.approx(fa2.latency_s)
    assert (flash.ctas, flash.waves) == (fa2.ctas, fa2.waves) == (2048, math.ceil(2048 / 132))


def test_decode_is_bandwidth_bound_when_the_grid_is_full(h100):
    # Every byte of K and V read once: the time cannot beat the HBM stream.
    batch, heads, context = 64, 32, 32768
    result = estimate(h100, "lean", batch=batch, heads=heads, head_dim=128, context=context)
    kv_bytes = 2 * batch * heads * context * 128 * 2
    assert result.latency_s >= kv_bytes / h100.hbm_bandwidth_bytes_per_s * (1 - 1e-9)
    assert result.latency_s <= 1.05 * kv_bytes / h100.hbm_bandwidth_bytes_per_s


# --------------------------------------------------------------------------- num_splits


@pytest.mark.parametrize("work, slots, blocks", [(212, 264, 256), (264, 264, 2), (1000, 264, 7)])
def test_no_split_when_the_grid_fills_80_percent(work, slots, blocks):
    assert work >= 0.8 * slots
    assert num_splits(work, slots, blocks) == 1


def test_num_splits_small_case_by_hand():
    # work 3 on 8 slots, 4 blocks: split counts 1, 2 and 4 are eligible (3 gives ceil(4/3) = 2
    # blocks per split, the same as 2 splits).  Wave efficiencies: 1 → 3/8 = 0.375,
    # 2 → 6/8 = 0.75, 4 → 12/16 = 0.75.  Best 0.75; the first reaching 0.85 · 0.75 is 2.
    assert num_splits(3, 8, 4) == 2


def test_num_splits_second_case_by_hand():
    # work 1 on 10 slots, 5 blocks: eligible 1 (0.1), 2 (0.2), 3 (0.3), 5 (0.5); 4 is not
    # (ceil(5/4) = ceil(5/3) = 2).  0.85 · 0.5 = 0.425: only 5 reaches it.
    assert num_splits(1, 10, 5) == 5


def test_num_splits_just_below_the_threshold_splits():
    # 211 < 0.8 · 264: efficiencies 211/264 = 0.80 (s=1), 422/528 = 0.80 (s=2),
    # 633/792 = 0.80 (s=3), 844/1056 = 0.80 (s=4), 1055/1056 ≈ 0.999 (s=5): 0.85 · 0.999 =
    # 0.849 > 0.80, so 5.
    assert num_splits(211, 264, 256) == 5


def test_num_splits_never_exceeds_the_blocks():
    for work in range(1, 40):
        for blocks in range(1, 20):
            assert 1 <= num_splits(work, 264, blocks) <= blocks


# --------------------------------------------------------------------------- lean attention


@pytest.mark.parametrize("batch, heads, kv_heads, context", [
    (2, 32, None, 65536), (1, 32, None, 32768), (3, 40, None, 10000), (64, 32, None, 32768),
    (1, 8, 1, 32768),      # MQA: 256 KV tiles in all on 132 slots
    (1, 1, None, 133 * 128),
])
def test_lean_splits_the_work_evenly(h100, batch, heads, kv_heads, context):
    """Stream-K: every SM gets an equal share of all KV tiles (to one tile), plus one prologue
    per resident CTA; a tile also moves its query rows and its partial state (2% here)."""
    result = estimate(h100, "lean", batch=batch, heads=heads, kv_heads=kv_heads, head_dim=128,
                      context=context)
    tiles = batch * (kv_heads or heads) * math.ceil(context / 128)
    tile = tile_seconds(h100)
    resident = result.ctas // h100.sms if result.ctas >= h100.sms else 1
    prologue = resident * h100.calibration.cta_overhead_cycles / h100.clock_hz
    span = result.latency_s - result.merge_s - prologue
    ideal = tiles * tile / h100.sms
    assert ideal * (1 - 1e-9) <= span <= (ideal + tile) * 1.02
    assert result.ctas <= h100.sms * h100.max_ctas_per_sm
    durations = [row["end_s"] - row["start_s"] for row in result.timeline]
    assert len(durations) == result.ctas and min(durations) > 0
    assert 0 < result.sm_utilization <= 1 + 1e-12


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("batch, heads, context", [(1, 32, 32768), (2, 32, 65536), (7, 12, 3000),
                                                   (64, 32, 32768)])
def test_sm_utilization_is_a_fraction(h100, schedule, batch, heads, context):
    result = estimate(h100, schedule, batch=batch, heads=heads, head_dim=128, context=context)
    assert 0 < result.sm_utilization <= 1 + 1e-12
    assert result.waves >= 1 and result.ctas >= 1 and result.splits >= 1
    assert result.latency_s > 0


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_grouped_query_attention_reads_less(h100, schedule):
    args = dict(batch=8, heads=64, head_dim=128, context=32768)
    gqa = estimate(h100, schedule, kv_heads=8, **args)
    mha = estimate(h100, schedule, kv_heads=64, **args)
    assert gqa.latency_s < mha.latency_s


def test_longer_context_takes_longer(h100):
    short = estimate(h100, "flash-decoding", batch=4, heads=32, head_dim=128, context=8192)
    long = estimate(h100, "flash-decoding", batch=4, heads=32, head_dim=128, context=65536)
    assert long.latency_s > short.latency_s


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, name", [
    (dict(heads=32, kv_heads=5), "kv_heads"),
    (dict(schedule="flash-decoding-9"), "schedule"),
    (dict(batch=0), "batch"),
    (dict(context=0), "context"),
    (dict(head_dim=0), "head_dim"),
    (dict(heads=0), "heads"),
    (dict(heads=32, kv_heads=-4), "kv_heads"),
    (dict(heads=32, kv_heads=0), "kv_heads"),
])
def test_bad_input_names_the_argument(h100, kwargs, name):
    arguments = dict(schedule="fa2", batch=1, heads=32, head_dim=128, context=4096)
    arguments.update(kwargs)
    schedule = arguments.pop("schedule")
    with pytest.raises(EinsimError) as caught:
        estimate(h100, schedule, **arguments)
    assert name in str(caught.value)


# --------------------------------------------------------------------------- CLI


def test_cli_decode_json(capsys, h100):
    status, out, err = run_cli(capsys, "decode", "--hw", "h100", "--schedule", "lean",
                               "--batch", "2", "--heads", "32", "--context", "64K", "--json")
    assert status == 0, err
    data = json.loads(out)
    assert {"latency_s", "ctas", "waves", "splits", "sm_utilization"} <= set(data)
    assert set(data) - {"latency_s", "ctas", "waves", "splits", "sm_utilization"} <= {"merge_s"}
    direct = estimate(h100, "lean", batch=2, heads=32, head_dim=128, context=65536)
    assert data["latency_s"] == pytest.approx(direct.latency_s)
    assert (data["ctas"], data["waves"], data["splits"]) == (direct.ctas, direct.waves,
                                                             direct.splits)


def test_cli_decode_table(capsys):
    status, out, _ = run_cli(capsys, "decode", "--hw", "a100", "--schedule", "fa2",
                             "--batch", "216", "--heads", "1", "--context", "4096")
    assert status == 0
    assert "latency_s" in out and "waves" in out


@pytest.mark.parametrize("args, name", [
    (("--hw", "x100"), "x100"),
    (("--schedule", "fast"), "schedule"),
    (("--heads", "32", "--kv-heads", "5"), "kv_heads"),
    (("--batch", "0"), "batch"),
    (("--heads", "0"), "heads"),
])
def test_cli_decode_errors_are_one_line(capsys, args, name):
    status, out, err = run_cli(capsys, "decode", *args, "--json")
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("einsim: error:")
    assert name in err


# --------------------------------------------------------------------------- merge numerics


def test_split_kv_merge_is_exact():
    result = einsim.validate(einsim.library.get("decode-split"),
                             sizes={"E": 32, "F": 32, "P": 3, "M": 1000, "M0": 96})
    assert result.ok
    assert result.max_rel_error < 1e-9


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_a_million_sequences_are_fast_and_small(schedule):
    import time
    import tracemalloc

    h100 = load_gpu("h100")
    tracemalloc.start()
    started = time.perf_counter()
    result = estimate(h100, schedule, batch=1_000_000, heads=32, head_dim=128, context=32768)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 10 * 2 ** 20, (elapsed, peak)
    assert result.ctas == (132 if schedule == "lean" else 32_000_000)
    if schedule != "lean":  # listing every CTA is refused before allocating
        with pytest.raises(EinsimError, match="SM timeline of 32,000,000 CTAs"):
            result.timeline


def test_grouped_grid_matches_the_listed_timeline():
    h100 = load_gpu("h100")
    for schedule in SCHEDULES:
        result = estimate(h100, schedule, batch=3, heads=8, head_dim=128, context=5000)
        end = max(row["end_s"] for row in result.timeline)
        assert end == pytest.approx(result.latency_s - result.merge_s)
        assert len(result.timeline) == result.ctas


@pytest.mark.parametrize("name, value, fragment", [
    ("batch", "4", "batch '4': expected a positive integer"),
    ("batch", None, "batch None"),
    ("batch", 1.5, "batch 1.5: expected a positive integer, not a fractional"),
    ("context", float("inf"), "context inf"),
    ("heads", float("nan"), "heads nan"),
    ("batch", 2 ** 63, "batch 9223372036854775808: expected a positive integer of at most"),
    ("context", 10 ** 400, "(401 digits)"),
    ("kv_heads", 0, "kv_heads 0"),
    ("head_dim", True, "head_dim True"),
])
def test_api_misuse_names_the_argument(name, value, fragment):
    arguments = dict(batch=2, heads=8, head_dim=128, context=4096)
    arguments[name] = value
    with pytest.raises(EinsimError) as caught:
        estimate(load_gpu("h100"), "flash-decoding", **arguments)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_integral_float_batch_is_accepted():
    h100 = load_gpu("h100")
    assert estimate(h100, "fa2", batch=1e3, heads=8, head_dim=128, context=4096).ctas == 8000


def test_cli_batch_of_a_million_and_its_timeline_guard(capsys, tmp_path):
    status = main(["decode", "--batch", "1e6", "--json"])
    captured = capsys.readouterr()
    assert status == 0 and json.loads(captured.out)["ctas"] == 32_000_000
    plot = tmp_path / "timeline.html"
    status = main(["decode", "--batch", "1000000", "--plot", str(plot)])
    captured = capsys.readouterr()
    assert status == 2 and "SM timeline of 32,000,000 CTAs" in captured.err
    assert not plot.exists()
    assert main(["decode", "--batch", "0.5"]) == 2
    assert "--batch '0.5'" in capsys.readouterr().err
