"""Sequence parallelism on device groups (``einsim seqpar``): Ring Attention, LASP-2, LASP-2H.

Expected values are computed here from the published numbers, not from the library: H100
(132 SMs at 1.83 GHz, 4096 dense FP16 FLOP/clk/SM at the preset's 75% attention efficiency,
NVLink 900 GB/s per device), RoCE 400 Gbit/s (50 GB/s per device, 33 µs round trip), BERT
(batch 64, 12 heads, head dimension 64), FP16 words.  LASP-2's cascade and tree are read from
the how-to guide, which shows them to users.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from einsim.cli import main
from einsim.cost.device_hierarchy import group_step
from einsim.workloads import load_workload
from hw_models.gpu_sm import load_gpu
from hw_models.offload import load_link

# the figures the hand calculations use, from the presets (BERT, H100, 400 Gb/s RoCE)
BERT, H100, ROCE = load_workload("bert"), load_gpu("h100"), load_link("roce-400g")
COPIES, E, F = BERT.batch * BERT.heads, BERT.E, BERT.F
WORD = 2  # FP16
MACS_PER_S = H100.sms * H100.tensor_rate("fp16") / 2 * H100.calibration.tensor_efficiency \
    * H100.clock_hz
ROCE_BW, ROCE_RTT = ROCE.bandwidth_bytes_per_s, ROCE.round_trip_s
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "howto" / "sequence_parallelism.md"


@pytest.fixture(scope="module")
def lasp2():
    """(strategy, cascade) of LASP-2: mappings/seqpar-lasp2.yaml on the library's chunked form."""
    return "lasp2", "linear-attention-lasp2"


def ring_bytes_per_device(n: int, g: int) -> float:
    """Each device receives every other device's block of K and V."""
    return COPIES * n * (E + F) * (g - 1) / g * WORD


def lasp2_bytes_per_device(g: int) -> float:
    """Each device's d x d state (and its d normaliser) leaves home ((g - 1)/g of it moves) and
    the g - 1 other devices' states come back (the all-gather)."""
    state = E * F + E
    return COPIES * state * ((g - 1) / g + (g - 1)) * WORD


def run_cli(capsys, *args):
    status = main(["seqpar", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ----------------------------------------------------------------------------- communication


def test_ring_moves_the_other_devices_kv_blocks_linear_in_n():
    small = group_step("ring", "h100", 4, 16384)
    large = group_step("ring", "h100", 4, 32768)
    assert small.communication_bytes_per_device == pytest.approx(ring_bytes_per_device(16384, 4))
    assert large.communication_bytes_per_device == pytest.approx(
        2 * small.communication_bytes_per_device)
    # NVLink: the bytes over the group's bandwidth, no latency figure
    assert small.communication_s == pytest.approx(
        4 * ring_bytes_per_device(16384, 4) / (H100.nvlink_bytes_per_s * 4))


def test_lasp2_all_gathers_states_whose_size_does_not_depend_on_n(lasp2):
    tree, cascade = lasp2
    steps = [group_step(tree, "h100", 8, n, cascade=cascade) for n in (16384, 65536)]
    for step in steps:
        assert step.communication_bytes_per_device == pytest.approx(lasp2_bytes_per_device(8))
    assert steps[1].compute_s == pytest.approx(4 * steps[0].compute_s, rel=0.05)  # linear in N
    # while the ring's bytes at the same N are orders of magnitude more
    assert ring_bytes_per_device(65536, 8) > 100 * steps[1].communication_bytes_per_device


def test_lasp2h_moves_the_ring_bytes_in_one_message():
    n, g = 16384, 4
    ring = group_step("ring", "h100", g, n, link="roce-400g")
    gather = group_step("lasp2h", "h100", g, n, link="roce-400g")
    for step in (ring, gather):
        assert step.communication_bytes_per_device == pytest.approx(ring_bytes_per_device(n, g))
    link_s = ring_bytes_per_device(n, g) * g / (ROCE_BW * g)
    assert ring.communication_s == pytest.approx(link_s + (g - 1) * ROCE_RTT)  # g - 1 steps
    assert gather.communication_s == pytest.approx(link_s + (g - 1) / g * ROCE_RTT)
    for step in (ring, gather):  # never faster than the link or the units
        assert step.step_time_s >= max(step.communication_s, step.compute_s) * (1 - 1e-9)
        assert 0 <= step.overlap <= 1


def test_one_device_communicates_nothing(lasp2):
    tree, cascade = lasp2
    for step in (group_step("ring", "h100", 1, 8192), group_step("lasp2h", "h100", 1, 8192),
                 group_step(tree, "h100", 1, 8192, cascade=cascade),
                 group_step("ring", "h100", 1, 8192, link="roce-400g")):
        assert step.communication_bytes_per_device == 0 and step.communication_s == 0
        assert step.overlap is None and step.scaling_efficiency == pytest.approx(1)
        assert step.report.traffic_by_level["link"] == {
            t: {"reads": 0.0, "writes": 0.0} for t in step.report.traffic_by_level["link"]}


# ----------------------------------------------------------------------------- time and scaling


def test_one_device_ring_is_the_tensor_core_time():
    """Two GEMMs of N x N x 64 per copy on the tensor cores (softmax overlapped with them)."""
    n = 16384
    step = group_step("ring", "h100", 1, n)
    tensor_s = COPIES * n * n * (E + F) / MACS_PER_S
    assert tensor_s <= step.compute_s <= 1.02 * tensor_s
    assert step.step_time_s == pytest.approx(step.compute_s, rel=0.02)


@pytest.mark.parametrize("link", ["nvlink", "roce-400g"])
def test_scaling_efficiency_is_at_most_one(lasp2, link):
    tree, cascade = lasp2
    for devices in (2, 8, 32):
        for step in (group_step("ring", "h100", devices, 32768, link=link),
                     group_step(tree, "h100", devices, 32768, link=link, cascade=cascade)):
            assert 0 < step.scaling_efficiency <= 1 + 1e-9
            assert step.scaling_efficiency == pytest.approx(
                step.single_device_s / (devices * step.step_time_s))


def test_ring_over_roce_is_link_bound_with_many_devices():
    step = group_step("ring", "h100", 32, 16384, link="roce-400g")
    expected = ring_bytes_per_device(16384, 32) / ROCE_BW + 31 * ROCE_RTT
    assert step.communication_s == pytest.approx(expected)
    assert step.step_time_s == pytest.approx(expected, rel=1e-6)
    assert step.overlap < 0.5 and step.scaling_efficiency < 0.5


# ----------------------------------------------------------------------------- CLI

KEYS = {"step_time_s", "compute_s", "communication_s", "communication_bytes_per_device",
        "overlap", "scaling_efficiency"}


def test_cli_json_and_plot(capsys, tmp_path):
    plot = tmp_path / "scaling.html"
    status, out, err = run_cli(capsys, "--strategy", "ring", "--cascade", "attention-1pass",
                               "--devices", "4", "--seq-len", "16K", "--hw", "h100",
                               "--link", "nvlink", "--workload", "bert", "--json",
                               "--plot", str(plot))
    assert status == 0, err
    data = json.loads(out)
    assert KEYS <= set(data)
    assert data["devices"] == 4 and data["seq_len"] == 16384 and data["hardware"] == "h100:4"
    assert data["communication_bytes_per_device"] == pytest.approx(
        ring_bytes_per_device(16384, 4))
    page = plot.read_text()
    assert "scaling efficiency" in page and "plotly" in page


def test_cli_table_of_lasp2(capsys, lasp2):
    tree, cascade = lasp2
    status, out, _ = run_cli(capsys, "--strategy", tree, "--cascade", cascade, "--devices", "8",
                             "--seq-len", "64K")
    assert status == 0
    assert "scaling efficiency" in out and "communication per device" in out


@pytest.mark.parametrize("args, needle", [
    (("--strategy", "zigzag"), "strategy 'zigzag'"),
    (("--strategy", "ring", "--devices", "0"), "--devices '0'"),
    (("--strategy", "ring", "--devices", "eight"), "--devices 'eight'"),
    (("--strategy", "ring", "--seq-len", "1.5K"), "--seq-len"),
    (("--strategy", "ring", "--hw", "tpu"), "hw 'tpu'"),
    (("--strategy", "ring", "--link", "carrier-pigeon"), "link 'carrier-pigeon'"),
    (("--strategy", "ring", "--workload", "nope"), "workload 'nope'"),
    (("--strategy", "ring", "--cascade", "linear-attention"), "unknown Einsum"),
    (("--strategy", str(GUIDE.parents[2] / "mappings" / "flash-attention-3.yaml")),
     "not on a device group"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, needle):
    status, out, err = run_cli(capsys, *args)
    assert status == 2 and out == ""
    assert err.startswith("einsim: error: ") and err.count("\n") == 1
    assert needle in err


# ----------------------------------------------------------------------------- the cascade


def test_lasp2_cascade_is_causal_linear_attention(lasp2):
    from einsim import library
    from einsim.execution.validate import validate

    cascade = library.load(lasp2[1])
    for sizes in ({"M": 96, "P": 96, "E": 8, "F": 8, "M1": 4, "M0": 8, "P1": 4, "P0": 8},
                  {"M": 100, "P": 100, "E": 8, "F": 8, "M1": 3, "M0": 8, "P1": 3, "P0": 8}):
        result = validate(cascade, sizes=sizes, reference="causal-linear-attention")
        assert result.ok and result.max_abs_error < 1e-12


def test_a_device_group_is_hardware_for_evaluate():
    from einsim.cost.front_door import evaluate

    report = evaluate("seqpar-ring", hardware="h100:4@roce-400g", workload="bert",
                      seq_len=16384)
    assert report.hardware == "h100:4@roce-400g"
    link = sum(t["reads"] + t["writes"] for t in report.traffic_by_level["link"].values())
    assert link * WORD / 4 == pytest.approx(ring_bytes_per_device(16384, 4))
