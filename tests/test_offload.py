"""Attention offloading (Lamina) against homogeneous decode: presets, capacity, timing, CLI.

Expected values are computed here from the published model shapes and the preset hardware
numbers (H100: 80 GB, 3.35 TB/s, 132 SMs at 1.83 GHz, 4096 FP16 FLOP/clk/SM at 75%, NVLink
900 GB/s, $11.06/h; H20: 96 GB, $4.63/h; RoCE 400 Gbit/s, 33 µs), not from the library.
"""

from __future__ import annotations

import json
import math

import pytest

from einsim.cli import main
from einsim.errors import EinsimError, SpecError
from hw_models.gpu_sm import load_gpu
from hw_models.offload import load_link, load_llm, llm_names, parse_group
from einsim.kernels.lamina import Deployment, best_batch, iteration, max_batch

H100_HBM, H20_HBM = 80e9, 96e9
H100_BW = 3.35e12
# the published dense peak at the preset's calibrated attention efficiency (not a published
# figure: the fact it was fitted on is in reference/gpus.md)
H100_FLOPS = 132 * 1.83e9 * 4096 * load_gpu("h100").calibration.tensor_efficiency
LINK_BW, LINK_RTT = 400e9 / 8, 33e-6
PRICE = {"h100": 11.06, "h20": 4.63}
USABLE = 0.9

# layers, hidden, heads, kv_heads, head_dim, ffn (FP16)
PUBLISHED = {"llama-33b": (60, 6656, 52, 52, 128, 17920),
             "llama-65b": (80, 8192, 64, 64, 128, 22016),
             "llama3-70b": (80, 8192, 64, 8, 128, 28672),
             "llama3-8b": (32, 4096, 32, 8, 128, 14336)}


def layer_params(name: str) -> int:
    """SwiGLU FFN (gate, up, down) plus Q, O (hidden x heads x d) and K, V (x kv_heads)."""
    _, h, heads, kv, d, ffn = PUBLISHED[name]
    return 3 * h * ffn + 2 * h * heads * d + 2 * h * kv * d


def weight_bytes(name: str) -> int:
    return PUBLISHED[name][0] * layer_params(name) * 2


def kv_bytes_per_token(name: str) -> int:
    layers, _, _, kv, d, _ = PUBLISHED[name]
    return layers * 2 * kv * d * 2


def non_attention_s(name: str, devices: int, batch: float) -> float:
    """One layer on ``devices`` H100s: weight streaming or FLOPs, whichever is longer (the
    all-reduces' NVLink traffic overlaps them: under 1% here)."""
    params = layer_params(name)
    stream = params * 2 / devices / H100_BW
    flops = 2 * batch * params / devices / H100_FLOPS
    return max(stream, flops)


def link_s(name: str, batch: float, lanes: int) -> float:
    """One layer: q, k, v to the memory devices and attention outputs back, plus a round trip."""
    _, _, heads, kv, d, _ = PUBLISHED[name]
    return batch * d * (2 * heads + 2 * kv) * 2 / (LINK_BW * lanes) + LINK_RTT


def attention_s(name: str, gpu: str, devices: int, batch: int, context: int) -> float:
    """Decode attention streams the KV cache once: its bytes over the devices' HBM bandwidth
    (the heads spread evenly; the score and value products are far below the tensor peak)."""
    _, _, _, kv, d, _ = PUBLISHED[name]
    cache = 2 * kv * d * context * batch * 2
    return cache / (devices * load_gpu(gpu).hbm_bandwidth_bytes_per_s)


def lamina(model: str, compute: str = "h100:2", memory: str = "h20:4",
           pipelined: bool = True) -> Deployment:
    return Deployment(load_llm(model), parse_group(compute, "compute"),
                      parse_group(memory, "memory"), load_link("roce-400g"), pipelined)


def homogeneous(model: str, compute: str = "h100:4") -> Deployment:
    return Deployment(load_llm(model), parse_group(compute, "compute"))


def run_cli(capsys, *args):
    status = main(["offload", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ----------------------------------------------------------------------------- presets


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_llm_presets_match_the_published_shapes(name):
    llm = load_llm(name)
    assert (llm.layers, llm.hidden, llm.heads, llm.kv_heads, llm.head_dim, llm.ffn) \
        == PUBLISHED[name]
    assert llm.bytes_per_value == 2  # FP16
    assert llm.weight_bytes == weight_bytes(name)
    assert llm.kv_bytes_per_token == kv_bytes_per_token(name)
    assert set(llm_names()) >= set(PUBLISHED)


def test_weight_bytes_are_about_the_parameter_counts():
    # transformer blocks only (no embeddings or LM head), in billions of parameters
    billions = {n: load_llm(n).weight_bytes / 2e9 for n in PUBLISHED}
    assert billions["llama-33b"] == pytest.approx(32.1, abs=0.1)
    assert billions["llama-65b"] == pytest.approx(64.8, abs=0.1)
    assert billions["llama3-70b"] == pytest.approx(68.5, abs=0.1)
    assert billions["llama3-8b"] == pytest.approx(6.98, abs=0.01)


def test_link_preset_is_400_gbit_and_33_us():
    link = load_link("roce-400g")
    assert link.bandwidth_bytes_per_s == pytest.approx(50e9)
    assert link.round_trip_s == pytest.approx(33e-6)


def test_device_groups_price_and_label():
    group = parse_group("h100:2", "compute")
    assert (group.gpu.name, group.count, group.label) == ("h100", 2, "h100:2")
    assert group.price_per_hour == pytest.approx(2 * PRICE["h100"])
    assert lamina("llama3-70b").cost_per_hour == pytest.approx(2 * 11.06 + 4 * 4.63)


# ----------------------------------------------------------------------------- capacity


@pytest.mark.parametrize("model, memory, context", [
    ("llama3-70b", "h20:4", 32768), ("llama3-70b", "h20:2", 131072),
    ("llama-65b", "h20:8", 4096), ("llama-33b", "h20:2", 65536), ("llama3-8b", "h20:8", 4096)])
def test_lamina_max_batch_is_the_memory_devices_kv_capacity(model, memory, context):
    count = int(memory.split(":")[1])
    expected = math.floor(count * H20_HBM * USABLE / (context * kv_bytes_per_token(model)))
    assert max_batch(lamina(model, memory=memory), context) == expected


@pytest.mark.parametrize("model, compute, context", [
    ("llama3-70b", "h100:4", 32768), ("llama-65b", "h100:4", 8192),
    ("llama-33b", "h100:4", 4096), ("llama3-8b", "h100:1", 16384)])
def test_homogeneous_max_batch_is_what_the_weights_leave(model, compute, context):
    count = int(compute.split(":")[1])
    room = count * H100_HBM * USABLE - weight_bytes(model)
    expected = math.floor(room / (context * kv_bytes_per_token(model)))
    assert max_batch(homogeneous(model, compute), context) == expected


def test_known_capacities_at_32k():
    assert max_batch(lamina("llama3-70b"), 32768) == 32
    assert max_batch(homogeneous("llama3-70b"), 32768) == 14


def test_capacity_is_limited_by_the_fullest_device():
    # 8 KV heads on 16 H20s: each device still holds a whole KV head, so the group's total
    # capacity overstates the batch; the device holding one head of every request limits it.
    per_device = 32768 * kv_bytes_per_token("llama3-70b") / 8
    assert max_batch(lamina("llama3-70b", memory="h20:16"), 32768) == \
        int(H20_HBM * USABLE // per_device)


def test_model_too_big_and_context_without_room_raise_with_numbers():
    with pytest.raises(EinsimError, match=f"{weight_bytes('llama-65b') / 1e9:.1f} GB"):
        max_batch(homogeneous("llama-65b", "h100:1"), 4096)
    # per device: 2 of the 8 KV heads live on each of the 4 H20s
    need = 4 * 2**20 * kv_bytes_per_token("llama3-70b") * 2 / 8 / 1e9
    with pytest.raises(EinsimError, match=f"{need:.2f} GB per device.*{H20_HBM * USABLE / 1e9:.2f} GB"):
        max_batch(lamina("llama3-70b"), 4 * 2**20)
    with pytest.raises(EinsimError, match="between 1 and the largest that fits, 32"):
        iteration(lamina("llama3-70b"), 33, 32768)


# ----------------------------------------------------------------------------- timing


def test_non_attention_is_weight_streaming_at_batch_1():
    """The weights stream once per step (the activations add under 0.1%)."""
    it = iteration(homogeneous("llama3-8b", "h100:1"), 1, 4096)
    assert it.compute_s == pytest.approx(32 * layer_params("llama3-8b") * 2 / H100_BW, rel=1e-3)
    assert it.link_s == 0
    two = iteration(homogeneous("llama3-8b", "h100:2"), 1, 4096)
    assert two.compute_s == pytest.approx(32 * layer_params("llama3-8b") * 2 / 2 / H100_BW,
                                          rel=1e-3)


def test_non_attention_flat_while_streaming_then_grows_with_flops():
    deployment = homogeneous("llama3-8b", "h100:1")
    streaming = [iteration(deployment, b, 128).compute_s for b in (1, 8, 64)]
    assert streaming == pytest.approx([streaming[0]] * 3, rel=0.02)
    big = iteration(deployment, 1024, 128).compute_s
    # (the weights stream once per 256 sequences: near the ridge some pieces stay
    # streaming-bound, a few percent)
    assert big == pytest.approx(32 * 2 * 1024 * layer_params("llama3-8b") / H100_FLOPS,
                                rel=0.05)
    assert big > 3 * streaming[0]
    assert iteration(deployment, 512, 128).compute_s == pytest.approx(big / 2, rel=0.02)


@pytest.mark.parametrize("model, memory, batch, context", [
    ("llama3-70b", "h20:4", 16, 32768), ("llama3-70b", "h20:8", 3, 131072)])
def test_unpipelined_offload_adds_its_three_sides(model, memory, batch, context):
    """Without pipelining a layer is its projections and FFN, the exchange over the link and
    the attention one after another, each by hand.  Each side waits for its half of every
    crossing (its sends or its receives), so the link appears once in the sum."""
    count = int(memory.split(":")[1])
    it = iteration(lamina(model, memory=memory, pipelined=False), batch, context)
    layers = PUBLISHED[model][0]
    link = layers * link_s(model, batch, min(2, count))
    assert it.link_s == pytest.approx(link, rel=0.01)
    attention = layers * attention_s(model, "h20", count, batch, context)
    assert it.memory_s == pytest.approx(attention + link / 2, rel=0.01)
    compute = layers * non_attention_s(model, 2, batch)
    assert it.compute_s + it.memory_s == pytest.approx(compute + attention + link, rel=0.05)
    # (and the new keys and values landing in the cache, under 0.1%)
    assert it.iteration_s == pytest.approx(it.compute_s + it.memory_s, rel=1e-3)


def test_unevenly_split_heads():
    """52 key/value heads on 8 devices: each device gets ceil(52 / 8) = 7 heads' share of the
    work, so the step waits for the busiest device: 56/52 of the balanced time."""
    it = iteration(homogeneous("llama-33b", "h100:8"), 10, 16384)
    balanced = 60 * attention_s("llama-33b", "h100", 8, 10, 16384)
    assert it.memory_s == pytest.approx(balanced * 56 / 52, rel=1e-3)


def test_homogeneous_attention_runs_on_the_compute_gpus():
    it = iteration(homogeneous("llama3-70b"), 8, 32768)
    assert it.memory_s == pytest.approx(80 * attention_s("llama3-70b", "h100", 4, 8, 32768),
                                        rel=0.01)
    assert it.iteration_s == pytest.approx(it.compute_s + it.memory_s)


@pytest.mark.parametrize("model, compute, memory, batch, context", [
    ("llama3-70b", "h100:2", "h20:4", 128, 4096),
    ("llama3-8b", "h100:1", "h20:2", 8, 131072)])
def test_pipelined_layer_overlaps_its_two_sides(model, compute, memory, batch, context):
    """Two micro-batches in a two-stage pipeline (compute side, memory side): the layer takes
    the slower side's two micro-batches plus one of the other's (hand calculation from each
    side's time: its work and its half of the exchange); the compute side streams the weights
    twice."""
    devices, count = (int(g.split(":")[1]) for g in (compute, memory))
    layers = PUBLISHED[model][0]
    half = link_s(model, batch / 2, min(devices, count)) / 2  # each side waits for half
    c = non_attention_s(model, devices, batch / 2) + half
    a = attention_s(model, memory.split(":")[0], count, math.ceil(batch / 2), context) + half
    pipelined = iteration(lamina(model, compute, memory), batch, context)
    sides = sorted((2 * c, 2 * a))
    assert pipelined.iteration_s == pytest.approx(layers * (sides[1] + sides[0] / 2),
                                                  rel=0.05)
    assert pipelined.iteration_s >= max(pipelined.compute_s, pipelined.memory_s) * (1 - 1e-12)
    assert pipelined.compute_s + pipelined.memory_s > pipelined.iteration_s


def test_a_short_context_large_batch_is_link_bound():
    """LLaMA-33B, 256 sequences of 64 tokens: the exchange (q, k, v out, attention outputs
    back: 256 x 128 x 208 values per micro-batch pair over 4 lanes of 400 Gbit/s, plus the
    round trips) outweighs the attention; the link time is the hand count."""
    it = iteration(lamina("llama-33b", "h100:4", "h100:8"), 256, 64)
    assert it.link_s == pytest.approx(60 * 2 * link_s("llama-33b", 128, 4), rel=0.05)
    assert it.link_s > it.memory_s
    assert it.iteration_s >= it.link_s


def test_pipelining_costs_twice_the_weights_at_small_batch():
    on = iteration(lamina("llama3-70b"), 2, 4096)
    off = iteration(lamina("llama3-70b", pipelined=False), 2, 4096)
    assert on.compute_s == pytest.approx(2 * off.compute_s, rel=1e-3)
    assert on.iteration_s > off.iteration_s


def test_batch_one_is_never_pipelined():
    on = iteration(lamina("llama3-70b"), 1, 32768)
    off = iteration(lamina("llama3-70b", pipelined=False), 1, 32768)
    assert on.iteration_s == pytest.approx(off.iteration_s)
    assert on.details["pipelined"] is False


def test_summary_economics():
    it = iteration(lamina("llama3-70b"), 16, 32768)
    s = it.summary()
    cost = 2 * PRICE["h100"] + 4 * PRICE["h20"]
    assert s["cost_per_hour"] == pytest.approx(cost)
    assert s["tokens_per_s"] == pytest.approx(16 / s["iteration_s"])
    assert s["tokens_per_dollar"] == pytest.approx(s["tokens_per_s"] * 3600 / cost)
    link_bytes = 80 * 16 * 128 * (2 * 64 + 2 * 8) * 2
    assert s["link_bandwidth_needed_bytes_per_s"] == pytest.approx(link_bytes / s["iteration_s"])
    assert set(s["time_split_s"]) == {"compute", "link", "memory"}


@pytest.mark.parametrize("deployment, context", [
    (lamina("llama3-70b"), 32768), (lamina("llama3-8b", memory="h20:2"), 16384),
    (homogeneous("llama3-70b"), 8192), (homogeneous("llama3-8b"), 4096)])
def test_best_batch_is_the_fastest_power_of_two_or_max(deployment, context):
    limit = max_batch(deployment, context)
    candidates = [2 ** k for k in range(20) if 2 ** k <= limit] + [limit]
    rates = {b: b / iteration(deployment, b, context).iteration_s for b in candidates}
    best = best_batch(deployment, context)
    assert best.batch <= limit == best.max_batch
    assert best.tokens_per_s == pytest.approx(max(rates.values()))
    assert best.batch == max(rates, key=rates.get)


# ----------------------------------------------------------------------------- CLI

KEYS = {"tokens_per_s", "cost_per_hour", "tokens_per_dollar", "max_batch", "iteration_s",
        "link_bandwidth_needed_bytes_per_s"}


def test_cli_json_matches_python_and_baseline(capsys):
    status, out, _ = run_cli(capsys, "--model", "llama3-70b", "--context", "32K", "--compute",
                             "h100:2", "--memory", "h20:4", "--baseline", "h100:4", "--json")
    assert status == 0
    data = json.loads(out)
    assert set(data) == KEYS | {"batch", "time_split_s", "deployment", "baseline",
                                "tokens_per_dollar_ratio"}
    assert set(data["baseline"]) == KEYS | {"batch"}
    assert data["deployment"] == "lamina"
    ours, theirs = best_batch(lamina("llama3-70b"), 32768), best_batch(homogeneous("llama3-70b"),
                                                                        32768)
    assert data["batch"] == ours.batch and data["max_batch"] == 32
    assert data["tokens_per_s"] == pytest.approx(ours.tokens_per_s)
    assert data["baseline"]["batch"] == theirs.batch and data["baseline"]["max_batch"] == 14
    assert data["baseline"]["cost_per_hour"] == pytest.approx(4 * PRICE["h100"])
    assert data["baseline"]["link_bandwidth_needed_bytes_per_s"] == 0
    assert data["tokens_per_dollar_ratio"] == pytest.approx(
        data["tokens_per_dollar"] / data["baseline"]["tokens_per_dollar"])


def test_cli_fixed_batch_and_no_pipelining(capsys):
    status, out, _ = run_cli(capsys, "--context", "8K", "--batch", "16", "--no-pipelining",
                             "--json")
    assert status == 0
    data = json.loads(out)
    expected = iteration(lamina("llama3-70b", pipelined=False), 16, 8192).summary()
    assert data["batch"] == 16
    assert data["iteration_s"] == pytest.approx(expected["iteration_s"])
    assert data["time_split_s"] == pytest.approx(expected["time_split_s"])


def test_cli_table(capsys):
    status, out, _ = run_cli(capsys, "--model", "llama3-8b", "--context", "4K")
    assert status == 0
    assert "tokens per dollar" in out and "homogeneous (h100:4)" in out


@pytest.mark.parametrize("args, needles", [
    (("--model", "llama-65b", "--compute", "h100:1"),
     (f"{weight_bytes('llama-65b') / 1e9:.1f} GB", f"{H100_HBM * USABLE / 1e9:.1f} GB",
      "h100:1")),
    (("--context", "4M", "--memory", "h20:4"),
     ("4,194,304", f"{4 * 2**20 * kv_bytes_per_token('llama3-70b') * 2 / 8 / 1e9:.2f} GB",
      f"{H20_HBM * USABLE / 1e9:.2f} GB")),
    (("--compute", "tpu:2"), ("unknown device 'tpu'", "h100")),
    (("--memory", "a100:4"), ("a100", "no price")),
    (("--baseline", "a100:4"), ("a100", "no price")),
    (("--batch", "many"), ("--batch 'many'", "auto")),
    (("--batch", "33"), ("batch 33", "32")),
    (("--batch", "0"), ("batch 0", "32")),
])
def test_cli_errors_exit_2_with_one_line(capsys, args, needles):
    status, out, err = run_cli(capsys, "--context", "32K", *args)
    assert status == 2
    assert out == ""
    assert err.startswith("einsim: error: ") and err.count("\n") == 1
    for needle in needles:
        assert needle in err


# ----------------------------------------------------------------------------- figures


def test_offload_figures():
    from einsim.plots.offload import (batch_iteration_figure, time_split_figure,
                                      tokens_per_dollar_figure)

    rows = [{"label": "lamina", "context": c, "tokens_per_dollar": t}
            for c, t in ((8192, 2.0), (4096, 3.0))]
    rows += [{"label": "homogeneous", "context": 4096, "tokens_per_dollar": 1.0},
             {"label": "homogeneous", "context": 8192, "tokens_per_dollar": None}]
    fig = tokens_per_dollar_figure(rows)
    assert [t.name for t in fig.data] == ["lamina", "homogeneous"]
    assert list(fig.data[0].x) == [4096, 8192] and list(fig.data[0].y) == [3.0, 2.0]
    assert list(fig.data[1].y) == [1.0, None]
    assert list(fig.layout.xaxis.ticktext) == ["4K", "8K"]

    points = [iteration(lamina("llama3-70b"), b, 32768).summary() | {"label": "lamina"}
              for b in (4, 2)]
    fig = batch_iteration_figure(points)
    assert len(fig.data) == 2
    assert list(fig.data[0].x) == [2, 4]
    assert fig.data[0].y[1] == pytest.approx(points[0]["iteration_s"] * 1e3)
    assert fig.data[1].yaxis == "y2" and fig.data[1].y[1] == pytest.approx(
        points[0]["tokens_per_s"])

    summaries = {"lamina": points[0], "homogeneous": iteration(homogeneous("llama3-70b"), 4,
                                                               32768).summary()}
    fig = time_split_figure(summaries)
    assert [t.name for t in fig.data] == ["compute", "link", "memory", "iteration"]
    assert fig.layout.barmode == "stack"
    assert fig.data[1].y[0] == pytest.approx(points[0]["time_split_s"]["link"] * 1e3)
    assert fig.data[3].y[1] == pytest.approx(summaries["homogeneous"]["iteration_s"] * 1e3)
    fig.to_json()


def test_a_deployment_with_memory_devices_defaults_to_the_published_link():
    deployment = Deployment(load_llm("llama3-8b"), parse_group("h100:1", "compute"),
                            parse_group("h20:2", "memory"))
    assert deployment.link == load_link("roce-400g")
    assert iteration(deployment, 4, 4096).link_s > 0


@pytest.mark.parametrize("call, fragment", [
    (lambda d: iteration(d, "8", 4096), "batch '8'"),
    (lambda d: iteration(d, 1.5, 4096), "batch 1.5"),
    (lambda d: iteration(d, None, 4096), "batch None"),
    (lambda d: iteration(d, 8, "4K"), "context '4K'"),
    (lambda d: iteration(d, 8, float("inf")), "context inf"),
    (lambda d: max_batch(d, 2 ** 63), "context 9223372036854775808"),
])
def test_api_misuse_is_a_typed_error_naming_the_argument(call, fragment):
    deployment = Deployment(load_llm("llama3-8b"), parse_group("h100:1", "compute"))
    with pytest.raises(EinsimError) as caught:
        call(deployment)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(memory_fraction=1.5), "memory_fraction 1.5"),
    (dict(memory_fraction=float("nan")), "memory_fraction nan"),
    (dict(mapping="flash-attention-3"), "runs cascade attention-1pass"),
    (dict(model="llama3-8b"), "model 'llama3-8b'"),
])
def test_deployment_arguments_are_checked(kwargs, fragment):
    arguments = dict(model=load_llm("llama3-8b"), compute=parse_group("h100:1", "compute"))
    arguments.update(kwargs)
    with pytest.raises(EinsimError, match=fragment.replace("(", r"\(")):
        Deployment(**arguments)


@pytest.mark.parametrize("text", ["h100:1.5", "h100:-1", "h100:x", "h100:99999999999"])
def test_device_counts_are_whole_and_bounded(text):
    with pytest.raises(SpecError, match="--compute"):
        parse_group(text, "compute")


def test_integral_float_batch_on_the_cli(capsys):
    status, out, _ = run_cli(capsys, "--model", "llama3-8b", "--compute", "h100:1",
                             "--memory", "h20:1", "--baseline", "h100:1", "--batch", "8e0",
                             "--context", "4K", "--json")
    assert status == 0 and json.loads(out)["batch"] == 8
    status, _, err = run_cli(capsys, "--batch", "2.5", "--context", "4K")
    assert status == 2 and "--batch '2.5'" in err


@pytest.mark.parametrize("text, fragment", [
    ("h100:2+", "expected COMPUTE:COUNT"), ("+h20:4", "expected COMPUTE:COUNT"),
    ("h100:2+h20:4+h20:1", "expected COMPUTE:COUNT"), ("h100:2+x:3", "unknown device 'x'"),
    ("h100:2+h20:0", "count must be from 1"), ("h100:2+h20:4@nope", "nope")])
def test_device_pairs_name_what_is_wrong(text, fragment):
    from hw_models.offload import load_device_group

    with pytest.raises(SpecError, match=fragment):
        load_device_group(text)


def test_a_device_pair_is_hardware_for_any_decode_layer_tree():
    """``einsim evaluate attention-offload`` runs on its pair like any mapping; a workload
    gives the layer's ranks (N key/value heads, I FFN width) and its batch is a rank of the
    cascade, so the evaluation holds one copy."""
    import einsim
    from hw_models.offload import DevicePair, load_device_group

    pair = load_device_group("h100:2+h20:4@roce-400g")
    assert isinstance(pair, DevicePair) and pair.name == "h100:2+h20:4@roce-400g"
    report = einsim.evaluate("attention-offload", workload="bert", seq_len=4096)
    layer = iteration(lamina("llama3-8b"), 2, 4096)
    assert report.latency_s > 0 and layer.iteration_s > 0
