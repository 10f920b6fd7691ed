"""GPUs on the loop-tree engine: grids of CTAs in waves, occupancy from the tree's tiles,
overlap from the tree's sequence/pipeline/warpgroup nodes, any cascade.

Expected values are hand calculations from the published preset figures (shown inline), not
the engine's expressions; the calibration facts of ``reference/gpus.md`` are checked as ranges.
"""

from __future__ import annotations

import copy
import math

import pytest
import yaml

from einsim.cost.evaluate import evaluate_tree
from einsim.cost.tree import mapping_from_document
from einsim.errors import MappingError
from hw_models.gpu_sm import load_gpu


def workload(tmp_path, batch=4, heads=16, head_dim=128, seq_len=8448, kv_len=None):
    document = {"name": "bench", "batch": batch, "heads": heads, "head_dim": head_dim,
                "model_dim": heads * head_dim, "ffn_dim": 4 * heads * head_dim,
                "seq_len": seq_len}
    if kv_len is not None:
        document["kv_len"] = kv_len
    path = tmp_path / f"w{batch}-{heads}-{seq_len}-{kv_len}.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def tree(name: str) -> dict:
    return yaml.safe_load(open(f"mappings/{name}.yaml"))


def run(document, tmp_path, hardware=None, parameters=None, cascade=None, **sizes):
    mapping = mapping_from_document(copy.deepcopy(document)) if isinstance(document, dict) \
        else document
    return evaluate_tree(mapping, hardware, workload(tmp_path, **sizes), None,
                         parameters or {}, cascade=cascade, pareto=False).best


def tflops(report, batch=4, heads=16, seq=8448, d=128):
    return 4 * seq * seq * d * heads * batch / report.latency_s / 1e12


def test_fa3_calibration_point_by_hand(tmp_path):
    """batch 4, 8448 tokens, 16 heads, d 128, tile 128 x 176 on H100 (reference facts)."""
    report = run(tree("flash-attention-3"), tmp_path, parameters={"TQ": 128, "M0": 176})
    h100 = load_gpu("h100")
    macs_per_clock = h100.tensor_rate("fp16") / 2 * h100.calibration.tensor_efficiency
    tile = 2 * 128 * 176 * 128 / macs_per_clock       # both GEMMs of one KV tile, tensor-bound
    epilogue = 128 * 128 / h100.exp_per_clock_per_sm  # AV = RNV / RD: a reciprocal per output
    cta = 8448 // 176 * tile + epilogue + h100.calibration.cta_overhead_cycles
    ctas = 4 * 16 * math.ceil(8448 / 128)
    waves = math.ceil(ctas / h100.sms)                # one CTA per SM (registers)
    assert report.parameters["ctas"] == ctas and report.parameters["waves"] == waves
    assert report.latency_s == pytest.approx(waves * cta / h100.clock_hz, rel=1e-9)
    assert tflops(report) == pytest.approx(661, rel=0.02)  # the fact the overhead was set from


@pytest.mark.parametrize("seq", [8192, 16384])
def test_fa2_on_a100_in_the_published_range(tmp_path, seq):
    """FlashAttention-2 forward reaches 50-73% of A100 dense peak (tile 128 x 64)."""
    report = run(tree("flash-attention-2"), tmp_path, parameters={"TQ": 128, "M0": 64},
                 batch=1, seq_len=seq)
    share = tflops(report, batch=1, seq=seq) * 1e12 / load_gpu("a100").peak_flops("fp16")
    assert 0.45 <= share <= 0.73


def _fa3_variant(intra: bool, pingpong: bool) -> dict:
    document = tree("flash-attention-3")
    loop = document["tree"][5]["sequence"][0]
    if not pingpong:
        loop[:] = [node for node in loop if "spatial" not in node]
    body = loop[-1]["sequence"]
    if not intra:
        pv, softmax = body[1][0]["pipeline"]
        steps = softmax[0]["sequence"]
        body[:] = [body[0], steps[0], steps[1], pv, steps[2]]
    return document


def test_fa3_overlaps_are_tree_edits(tmp_path):
    """Each overlap alone is never slower than none; both never slower than either."""
    rate = {(intra, pingpong): tflops(run(_fa3_variant(intra, pingpong), tmp_path,
                                          parameters={"TQ": 128, "M0": 176}))
            for intra in (True, False) for pingpong in (True, False)}
    assert rate[True, True] >= max(rate[True, False], rate[False, True])
    assert min(rate[True, False], rate[False, True]) > rate[False, False]
    # no overlap at all: the softmax adds to the GEMMs (FlashAttention-2 on an H100)
    fa2 = tflops(run(tree("flash-attention-2"), tmp_path, hardware="h100",
                     parameters={"TQ": 128, "M0": 176}))
    assert fa2 == pytest.approx(rate[False, False], rel=0.02)


def test_wave_quantization(tmp_path):
    """As many CTAs as SMs fill one wave of an H100; one more needs a second, nearly doubling
    the time."""
    fa3, sms = tree("flash-attention-3"), load_gpu("h100").sms
    one = run(fa3, tmp_path, parameters={"TQ": 128, "M0": 128}, batch=1, heads=1,
              seq_len=128 * sms, kv_len=4096)
    two = run(fa3, tmp_path, parameters={"TQ": 128, "M0": 128}, batch=1, heads=1,
              seq_len=128 * (sms + 1), kv_len=4096)
    assert (one.parameters["waves"], two.parameters["waves"]) == (1, 2)
    assert two.latency_s / one.latency_s == pytest.approx(2.0, rel=0.01)


def test_occupancy_from_the_tiles(tmp_path):
    """Resident CTAs per SM: the fewest that fit in shared memory (2-byte words) and in the
    registers (4-byte words), at most 32.  FA2, TQ 64, M0 32, d 128, on an A100:
    shared memory Q 64x128 + two buffers of K 32x128 and V 32x128 = 24,576 words = 48 KiB of
    164 KiB -> 3;
    registers S/PS 64x32 + LM, C, LD 3x64 + PV 64x128 + RM, RD 2x64 + RNV 64x128
    = 18,752 words = 75,008 bytes of 256 KiB -> 3."""
    a100 = load_gpu("a100")
    shared = 64 * 128 + 2 * (32 * 128 + 32 * 128)
    registers = 64 * 32 + 3 * 64 + 64 * 128 + 2 * 64 + 64 * 128
    fit = min(a100.shared_memory_bytes_per_sm // (2 * shared),
              a100.register_bytes_per_sm // (4 * registers), a100.max_ctas_per_sm)
    report = run(tree("flash-attention-2"), tmp_path, parameters={"TQ": 64, "M0": 32},
                 batch=1, heads=1, seq_len=8192)
    assert report.parameters["ctas_per_sm"] == fit == 3


def test_tiles_that_do_not_fit_are_refused_and_never_chosen(tmp_path):
    document = tree("flash-attention-3")
    document["parameters"]["TQ"]["domain"]["values"] = [128, 4096]
    best = run(document, tmp_path)
    assert best.parameters["TQ"] == 128 and best.buffer_bytes <= best.buffer_capacity_bytes
    with pytest.raises(MappingError, match="registers|shared_memory"):
        run(document, tmp_path, parameters={"TQ": 4096, "M0": 256})


def test_a_leaf_outside_a_grid_is_refused(tmp_path):
    document = tree("flash-attention-2")
    document["tree"] = [node for node in document["tree"] if "spatial" not in node]
    with pytest.raises(MappingError, match="outside any kernel"):
        run(document, tmp_path)


def test_causal_attention_skips_work(tmp_path):
    dense = run(tree("flash-attention-3"), tmp_path, batch=1, seq_len=16384)
    causal = run(tree("flash-attention-3"), tmp_path, batch=1, seq_len=16384,
                 cascade="causal-attention-1pass")
    assert 0.45 <= causal.latency_s / dense.latency_s <= 0.65


def test_one_wave_of_causal_ctas_lasts_as_long_as_the_longest(tmp_path):
    """One head at 16K tokens with 128 x 128 tiles: 128 CTAs, one wave on 132 SMs.  The last
    Q tile's CTA walks all 128 KV tiles, like every CTA of dense attention, so the causal
    kernel takes about as long as the dense one (the mean CTA walks only 64.5 tiles); with
    16 heads (16 waves) the saving returns."""
    fixed = {"TQ": 128, "M0": 128}
    one = {kind: run(tree("flash-attention-3"), tmp_path, parameters=fixed, batch=1, heads=1,
                     seq_len=16384, cascade=cascade).latency_s
           for kind, cascade in (("dense", None), ("causal", "causal-attention-1pass"))}
    assert 0.95 <= one["causal"] / one["dense"] <= 1.05
    many = {kind: run(tree("flash-attention-3"), tmp_path, parameters=fixed, batch=1, heads=16,
                      seq_len=16384, cascade=cascade).latency_s
            for kind, cascade in (("dense", None), ("causal", "causal-attention-1pass"))}
    assert many["causal"] / many["dense"] < 0.6


def test_cross_attention_scales_with_the_key_length(tmp_path):
    short = run(tree("flash-attention-3"), tmp_path, parameters={"TQ": 128, "M0": 128},
                seq_len=4096, kv_len=8192)
    long = run(tree("flash-attention-3"), tmp_path, parameters={"TQ": 128, "M0": 128},
               seq_len=4096, kv_len=16384)
    assert short.parameters["ctas"] == long.parameters["ctas"] == 4 * 16 * 32
    assert long.latency_s / short.latency_s == pytest.approx(2, rel=0.1)


def test_gpu_traffic_each_cta_reads_its_own_copy(tmp_path):
    """K and V come from HBM once per head and from L2 once per CTA (no multicast)."""
    report = run(tree("flash-attention-2"), tmp_path, parameters={"TQ": 128, "M0": 64},
                 batch=1, heads=2, seq_len=4096)
    words = 2 * 4096 * 128  # K (or V) of both heads
    assert report.traffic_by_level["hbm"]["K"]["reads"] == words
    assert report.traffic_by_level["l2"]["K"]["reads"] == words * 4096 // 128


# ------------------------------------------------------------- tile-level masks (block sparsity)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import numpy as np  # noqa: E402

import einsim  # noqa: E402
from einsim.cost.masks import tile_fractions  # noqa: E402

MASKS = ["m <= p", "m < p", "m >= p", "m == p", "within(p, m, 3)", "m1*M0 + m0 <= p",
         "neighborhood(p, m, P, 5)", "neighborhood(p, m, P, 4, 2)",
         "neighborhood(p, m, P, 5, 1, 1, 1)", "neighborhood(p, m, P, 3, 1, 2)", "m + 2 <= p"]


def _cascade(mask: str):
    key = "m1*M0 + m0" if "m1" in mask else "m"
    partition = "partition M -> M1, M0 by M0\n" if "m1" in mask else ""
    ranks = "m1, m0" if "m1" in mask else "m"
    return einsim.parse(f"{partition}input Q[E, P], K[E, M]\n"
                        f"S[{ranks}, p] = Q[e, p] * K[e, {key}] where {mask}\n")


def _oracle(mask: str, P: int, M: int, M0: int, q_tile: int, kv_tile: int):
    """Materialize the mask as a P x M grid of booleans, count tiles with loops."""
    from einsim.language.functions import neighborhood

    p, m = np.meshgrid(np.arange(P), np.arange(M), indexing="ij")
    if mask.startswith("neighborhood"):
        args = [P if a.strip() == "P" else int(a) for a in mask[13:-1].split(",")[2:]]
        keep = neighborhood(p, m, *args)
    elif mask.startswith("within"):
        keep = np.abs(p - m) <= 3
    else:
        text = mask.replace("m1*M0 + m0", "m")
        keep = {"m <= p": m <= p, "m < p": m < p, "m >= p": m >= p, "m == p": m == p,
                "m + 2 <= p": m + 2 <= p}[text]
    visited = partial = busiest = 0
    q_tiles, kv_tiles = -(-P // q_tile), -(-M // kv_tile)
    for i in range(q_tiles):
        row = 0
        for j in range(kv_tiles):
            block = keep[i * q_tile:(i + 1) * q_tile, j * kv_tile:(j + 1) * kv_tile]
            ragged = block.shape[1] < kv_tile  # its padding keys must be masked
            row += bool(block.any())
            partial += bool(block.any() and (ragged or not block.all()))
        visited += row
        busiest = max(busiest, row)
    return visited / (q_tiles * kv_tiles), partial / (q_tiles * kv_tiles), busiest / kv_tiles


def kv_tiles(mask: str, kv_tile: int) -> dict:
    """Each key variable's extent per KV tile (partitioned: one m1 chunk of M0 keys)."""
    return {"m1": 1, "m0": kv_tile} if "m1" in mask else {"m": kv_tile}


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(MASKS), st.integers(6, 40), st.integers(1, 9), st.integers(1, 9),
       st.data())
def test_tile_fractions_equal_a_materialized_mask(mask, P, q_tile, kv_tile, data):
    partitioned = "m1" in mask
    M = P if "neighborhood" in mask else data.draw(st.integers(1, 40))
    if partitioned:
        M = kv_tile * data.draw(st.integers(1, 6))  # the key tile is the partition's M0
    cascade = _cascade(mask)
    sizes = {"P": P, "M": M, "E": 2, "M0": kv_tile, "M1": M // kv_tile}
    got = tile_fractions(cascade, "S", sizes, {"p": q_tile}, kv_tiles(mask, kv_tile))
    assert got == pytest.approx(_oracle(mask, P, M, kv_tile, q_tile, kv_tile))


def test_neighborhood_kernels_pay_for_partial_tiles(tmp_path):
    """A sliding window (stride 1) leaves partial tiles a blocked window (stride = window,
    aligned to the tiles) does not: same visited tiles, more masking."""
    def na(stride):
        text = open("einsim/library/attention-1pass.einsum").read().replace(
            "S[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0]",
            f"S[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0] where neighborhood(p, m1*M0 + m0, P, "
            f"1024, {stride})")
        path = tmp_path / f"na{stride}.einsum"
        path.write_text(text)
        return run(tree("flash-attention-3"), tmp_path, parameters={"TQ": 128, "M0": 128},
                   cascade=str(path), batch=1, seq_len=16384)

    sliding, blocked = na(1), na(1024)
    dense = run(tree("flash-attention-3"), tmp_path, parameters={"TQ": 128, "M0": 128},
                batch=1, seq_len=16384)
    assert blocked.latency_s < sliding.latency_s < dense.latency_s


def test_a_leaf_on_two_units_splits_its_points_by_rate(tmp_path):
    """FlashAttention-4's exponentials on [exp_unit, fp32] (B200): the SFU does 16 exp per
    clock; the FP32 lanes emulate one with 6 FMA + 1 add, plus the subtraction exp(S - RM)
    needs: 8 of 128 lanes -> 16 per clock; together 32, so PS takes half the cycles."""
    document = tree("flash-attention-4")
    split = run(document, tmp_path, parameters={"TQ": 128, "M0": 128}, batch=1)
    alone = copy.deepcopy(document)
    steps = alone["tree"][6]["sequence"][0][5]["sequence"][1][0]["pipeline"][1][0]["sequence"]
    steps[1][0]["on"] = "exp_unit"
    single = run(alone, tmp_path, parameters={"TQ": 128, "M0": 128}, batch=1)
    cycles = {r.name: r.cycles for r in split.einsums}
    assert cycles["PS"] == pytest.approx({r.name: r.cycles for r in single.einsums}["PS"] / 2)
    assert set(split.utilization) == {"tensor_core", "exp_unit", "fp32"}


def test_blackwell_tensor_memory_bounds_the_tile(tmp_path):
    with pytest.raises(MappingError, match="tensor_memory.*262,144 bytes available"):
        run(tree("flash-attention-4"), tmp_path, parameters={"TQ": 256, "M0": 128}, batch=1)


# ------------------------------------------------------------------ the GPU tree mapper


@pytest.mark.parametrize("cascade", ["attention-1pass", "examples/sigmoid_attention.einsum",
                                     "causal-attention-1pass"])
def test_the_mapper_builds_gpu_trees_for_any_one_pass_cascade(cascade):
    from einsim.search.mapper import map_cascade

    found = map_cascade(None, cascade, "h100", "bert", "8K")
    best = found.result.best
    assert best.hardware == "h100" and best.buffer_bytes <= best.buffer_capacity_bytes
    # the YAML it returns re-evaluates to the same numbers
    again = evaluate_tree(mapping_from_document(yaml.safe_load(found.mapping_yaml)),
                          workload="bert", seq_len="8K", cascade=cascade, pareto=False).best
    assert again.latency_s == pytest.approx(best.latency_s, rel=1e-12)


def test_the_gpu_mapper_refuses_what_its_template_cannot_stream():
    from einsim.search.mapper import map_cascade

    with pytest.raises(MappingError, match="rewrite it to 1 pass"):
        map_cascade(None, "attention-3pass", "h100", "bert", "8K")


def test_cli_evaluates_any_cascade_on_a_gpu(capsys):
    import json

    from einsim.cli import main

    status = main(["evaluate", "--cascade", "examples/sigmoid_attention.einsum", "--hw",
                   "h100", "--seq-len", "4K", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 0 and data["hardware"] == "h100" and data["latency_s"] > 0
    assert "spatial: {sms: p}" in data["mapping_yaml"] or "sms: p" in data["mapping_yaml"]


def test_a_workloads_model_width_does_not_override_a_cascade_parameter():
    """The workload's D (model width, 768 for BERT) is not GNA's dilation D."""
    from einsim.search.mapper import map_cascade

    found = map_cascade(None, "gna", "h100", "bert", "4K")
    assert found.result.best.latency_s > 0
    from einsim.cost.masks import density
    from einsim import library

    sizes = {"M": 4096, "P": 4096, "M0": 128, "M1": 32, "E": 64, "F": 64}
    assert density(library.load("gna"), "BQK", {**sizes, "W": 7, "S": 1, "D": 1, "C": 0}) \
        == pytest.approx(7 * 4096 / 4096 ** 2)


@pytest.mark.parametrize("kv_heads", [32, 8, 1])
def test_grouped_query_attention_reads_each_key_value_head_once(tmp_path, kv_heads):
    """gqa-attention-1pass: the G = heads / kv_heads query heads of a group share K and V, so
    HBM reads K once per (batch, KV head) — hand count: batch x kv_heads x M x E words — while
    the work (and, tensor-bound, the time) stays that of 32 heads."""
    document = {"name": "llama", "batch": 2, "heads": 32, "kv_heads": kv_heads,
                "head_dim": 128, "model_dim": 4096, "ffn_dim": 14336, "seq_len": 8192}
    path = tmp_path / "gqa.yaml"
    path.write_text(yaml.safe_dump(document))
    report = evaluate_tree("flash-attention-3", None, str(path), None, {}, pareto=False,
                           cascade="gqa-attention-1pass").best
    assert report.traffic_by_level["hbm"]["K"]["reads"] == 2 * kv_heads * 8192 * 128
    macs = sum(e.ops.get("mac", 0) for e in report.einsums if e.name == "S")
    assert macs == 2 * 32 * 8192 * 8192 * 128


def test_kv_heads_must_divide_heads(tmp_path):
    from einsim.errors import SpecError
    from einsim.workloads import load_workload

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "batch": 1, "heads": 32, "kv_heads": 5,
                                    "head_dim": 64, "model_dim": 2048, "ffn_dim": 8192,
                                    "seq_len": 1024}))
    with pytest.raises(SpecError, match="kv_heads 5 must divide heads 32"):
        load_workload(str(path))


def test_gpu_tile_masks_of_any_mask_by_interval_arithmetic():
    """A mask that is no single comparison (prefix-LM: m <= p or m < PREFIX) is counted per
    tile by interval arithmetic; hand count at P = M = 64, PREFIX 16, tiles 16 x 16: Q tile 0
    attends its 16 prefix keys fully (1 full tile); Q tile i >= 1 visits KV tiles 0..i, the
    diagonal one partial: visited 1 + 2 + 3 + 4 = 10 of 16, partial 3."""
    cascade = einsim.parse("param PREFIX = 16\ninput Q[E, P], K[E, M]\n"
                           "S[m, p] = Q[e, p] * K[e, m] where m <= p or m < PREFIX\n")
    sizes = {"P": 64, "M": 64, "E": 2, "PREFIX": 16}
    assert tile_fractions(cascade, "S", sizes, {"p": 16}, {"m": 16}) == (10 / 16, 3 / 16, 4 / 4)


def test_linear_attention_on_a_gpu_scales_linearly():
    """Chunk-parallel linear attention (two kernels) grows about linearly with the sequence
    (the prefix over the earlier chunks' d x d states, as the cascade writes it, adds a term
    quadratic in the number of chunks), softmax attention (FlashAttention-3) quadratically."""
    def latency(mapping, n):
        return evaluate_tree(mapping, None, "xlm", n, {"P0": 64, "P1": 16} if "linear" in mapping
                             else {}, pareto=False).best.latency_s

    linear = latency("linear-attention-chunks", "128K") / latency("linear-attention-chunks", "32K")
    softmax = latency("flash-attention-3", "128K") / latency("flash-attention-3", "32K")
    assert softmax == pytest.approx(16, rel=0.1)
    assert 3.5 < linear < 6
