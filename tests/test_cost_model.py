"""Tests of the spatial-array cost model (einsim.cost) through the mapping strategies.

Expected latencies, utilizations, traffic and energies are derived by hand in this file from the
published hardware parameters (FuseMax, MICRO 2024) and the workload shapes, never by calling the
code under test a second time.
"""

from __future__ import annotations

import re

import pytest

from einsim.cost import Report, evaluate_mapping
from einsim.evaluator import evaluate
from einsim.mapping import MappingError, load_mapping_spec, mapping_names
from einsim.workload import load_workload
from hw_models.spatial_array import load_spatial_array
from mappings import STRATEGY_NAMES, strategy as load_strategy

CLOCK_HZ = 940e6
PE = 256
WORD_BYTES = 2
MiB = 2 ** 20
DRAM_BW = 400 * 2 ** 30
DRAM_PJ_PER_64_BITS = 249.6
WORKLOADS = {  # name: (heads, E = F); batch 64 for all
    "bert": (12, 64), "trxl": (16, 64), "t5": (8, 64), "xlm": (16, 128)}
BATCH = 64
ORDER = ["unfused", "flat", "fusemax-cascade", "fusemax-arch", "fusemax"]

# Published per-action energies (pJ) and register files of the FuseMax PEs.
MAC_PJ, ADD_PJ, MAX_PJ, DIV_PJ = 17.1645, 8.3395, 0.028036, 36.251153
FUSEMAX_RF = {"array2d": (0.653431, 0.56957), "array1d": (0.653431, 0.56957)}  # read, write


def fusemax_stage_cycles(E: int, F: int, P: int, M: int, pe: int = PE) -> list[float]:
    """Cycles per (batch, head) of each of FuseMax's four pipeline stages, by hand.

    A tile is pe (m0) x pe (p).  Per tile, on the 2D array (pe^2 PEs, one point per PE):
    BQK E MACs, LM 1 max, SLN 8 (exp = 6 MAC + 1 add, plus the subtraction, all on the MAC),
    SLD 1 add, SLNV F MACs.  On the 1D array (pe PEs, one p each) per tile: RM 1 max,
    PRM 8 (exp + subtraction), SPD 1 mul, RD 1 add, SPNV F muls, RNV F adds; AV divides F * P
    once in all.  Stage latency = max over the two arrays of the work bound in it:
      [BQK, LM, RD, RNV, AV], [RM], [SLN, SLD, PRM, SPD], [SLNV, SPNV].
    """
    tiles = (M / pe) * (P / pe)
    av = F * P / pe
    return [max((E + 1) * tiles, (1 + F) * tiles + av),
            1 * tiles,
            max((8 + 1) * tiles, (8 + 1) * tiles),
            max(F * tiles, F * tiles)]


def fusemax_latency_s(workload: str, seq_len: int, pe: int = PE) -> float:
    heads, E = WORKLOADS[workload]
    return sum(fusemax_stage_cycles(E, E, seq_len, seq_len, pe)) * BATCH * heads / CLOCK_HZ


def build_report(spec, hardware, workload, parameters) -> Report:
    strategy = load_strategy(spec.strategy)
    return evaluate_mapping(strategy.build(spec, hardware, workload, parameters), hardware,
                            workload)


def test_mapping_names():
    assert set(ORDER) <= set(mapping_names())
    for name in ORDER:
        spec = load_mapping_spec(name)
        assert spec.name == name and spec.strategy in STRATEGY_NAMES


# --- utilization ---------------------------------------------------------------------------

@pytest.mark.parametrize("workload, expected", [("bert", 64 / 256 / 2), ("xlm", 128 / 256 / 2)])
def test_flat_2d_utilization_is_e_over_512_at_16k(workload, expected):
    report = evaluate("flat", workload=workload, seq_len=16384)
    assert report.utilization["array2d"] == pytest.approx(expected, abs=1e-6)
    assert report.utilization["array1d"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("seq_len", [16384, 65536, 1 << 20])
def test_fusemax_keeps_both_arrays_busy(workload, seq_len):
    report = evaluate("fusemax", workload=workload, seq_len=seq_len)
    assert report.utilization["array2d"] > 0.95
    assert report.utilization["array1d"] > 0.95
    assert report.utilization["array1d"] <= 1.0 + 1e-9
    assert report.utilization["array2d"] <= 1.0 + 1e-9


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("seq_len", [16384, 262144])
def test_fusemax_arch_without_interleaving_uses_each_array_half_the_time(workload, seq_len):
    report = evaluate("fusemax-arch", workload=workload, seq_len=seq_len)
    assert report.utilization["array2d"] == pytest.approx(0.5, abs=0.05)
    assert report.utilization["array1d"] == pytest.approx(0.5, abs=0.05)


# --- latency -----------------------------------------------------------------------------

def test_fusemax_compute_latency_matches_hand_calculation_bert_64k():
    report = evaluate("fusemax", workload="bert", seq_len=65536)
    heads, E = WORKLOADS["bert"]
    P = M = 65536
    tiles = (M // PE) * (P // PE)
    # Coarse form: 2D cycles per tile E + 1 + 8 + 1 + F, plus the 1-cycle RM stage.
    coarse = (E + 1 + 8 + 1 + E + 1) * tiles * BATCH * heads / CLOCK_HZ
    assert report.compute_latency_s == pytest.approx(coarse, rel=0.01)
    # Stage by stage (stage latency = max over the arrays bound in it).
    assert report.compute_latency_s == pytest.approx(fusemax_latency_s("bert", 65536), rel=1e-9)
    assert report.latency_s == pytest.approx(report.compute_latency_s)
    assert report.memory_latency_s < report.compute_latency_s


def test_fusemax_per_einsum_cycles_and_stages_bert_64k():
    report = evaluate("fusemax", workload="bert", seq_len=65536)
    heads, E = WORKLOADS["bert"]
    copies = BATCH * heads
    tiles = (65536 // PE) ** 2
    per_tile = {"BQK": E, "LM": 1, "SLN": 8, "SLD": 1, "SLNV": E,
                "RM": 1, "PRM": 8, "SPD": 1, "RD": 1, "SPNV": E, "RNV": E}
    stage = {"BQK": 0, "LM": 0, "RD": 0, "RNV": 0, "AV": 0, "RM": 1,
             "SLN": 2, "SLD": 2, "PRM": 2, "SPD": 2, "SLNV": 3, "SPNV": 3}
    by_name = {e.name: e for e in report.einsums}
    assert set(by_name) == set(stage)  # BK / BV are copies, not computed
    for name, cycles in per_tile.items():
        assert by_name[name].cycles == pytest.approx(cycles * tiles * copies), name
        assert by_name[name].stage == stage[name], name
    assert by_name["AV"].cycles == pytest.approx(E * 65536 / PE * copies)
    assert by_name["BQK"].unit == "array2d" and by_name["AV"].unit == "array1d"
    assert by_name["BQK"].ops == {"mac": pytest.approx(E * 65536 * 65536 * copies)}


@pytest.mark.parametrize("workload", ["xlm", "t5"])
def test_fusemax_latency_matches_hand_calculation_other_workloads(workload):
    report = evaluate("fusemax", workload=workload, seq_len=16384)
    assert report.latency_s == pytest.approx(fusemax_latency_s(workload, 16384), rel=1e-9)


def test_flat_spills_and_is_memory_bound_at_1m_not_at_16k():
    long = evaluate("flat", workload="bert", seq_len=1 << 20)
    assert long.parameters["spills"] == "yes"
    assert long.memory_latency_s > long.compute_latency_s
    assert long.latency_s == pytest.approx(long.memory_latency_s)
    short = evaluate("flat", workload="bert", seq_len=16384)
    assert short.parameters["spills"] == "no"
    assert short.memory_latency_s < short.compute_latency_s
    assert short.latency_s == pytest.approx(short.compute_latency_s)


@pytest.mark.parametrize("workload", ["bert", "trxl", "t5"])
def test_speedup_ordering_at_64k(workload):
    latency = {m: evaluate(m, workload=workload, seq_len=65536).latency_s for m in ORDER}
    for slower, faster in zip(ORDER, ORDER[1:]):
        assert latency[slower] > latency[faster], (slower, faster, latency)


def test_speedup_ordering_at_64k_xlm():
    """XLM (E = F = 128): the ordering holds except FLAT vs +Cascade, which are a near tie.

    Both are bound by the 1D array (M = P = 64K, M1 = M / 256, per (batch, head), 256 PEs):
    FLAT does GM, SN, SD, A: 4 M P points; +Cascade does LM, SLN, SLD (3 M P) plus SPNV and
    RNV (2 F M1 P = M P for F = 128) plus RM, PRM, SPD, RD (4 M1 P) and AV (F P).  The 2D
    array is never the bottleneck for +Cascade ((E + F) M P / 256^2 = M P / 256 cycles), and
    FLAT's 1D array work does not depend on its row block, so FLAT's best is at least 4 M P / 256.
    """
    latency = {m: evaluate(m, workload="xlm", seq_len=65536).latency_s for m in ORDER}
    assert latency["unfused"] > latency["flat"]
    assert latency["fusemax-cascade"] > latency["fusemax-arch"] > latency["fusemax"]
    heads, F = WORKLOADS["xlm"]
    P = M = 65536
    M1 = M // PE
    copies = BATCH * heads
    flat = 4 * M * P / PE * copies / CLOCK_HZ
    cascade = (3 * M * P + (4 + 2 * F) * M1 * P + F * P) / PE * copies / CLOCK_HZ
    assert latency["flat"] == pytest.approx(flat, rel=1e-9)
    assert latency["fusemax-cascade"] == pytest.approx(cascade, rel=1e-9)


def test_pe_dim_scaling_is_quadratic():
    pe_dims = [16, 32, 64, 128, 256, 512]
    latency = [evaluate("fusemax", workload="bert", seq_len=262144,
                        parameters={"pe_dim": pe}).latency_s for pe in pe_dims]
    for pe, slower, faster in zip(pe_dims[1:], latency, latency[1:]):
        assert slower / faster == pytest.approx(4.0, rel=0.05), pe
    assert latency[-1] == pytest.approx(fusemax_latency_s("bert", 262144, pe=512), rel=1e-6)


# --- capacity and the mapper's choice of P1 -------------------------------------------------

def fusemax_buffer_bytes(E: int, F: int, p1: int, pe: int = PE) -> int:
    """Q, RM, RD, RNV for pe * P1 queries plus one K and one V tile, in bytes."""
    return ((E + 2 + F) * pe * p1 + pe * (E + F)) * WORD_BYTES


def test_mapper_p1_is_the_largest_divisor_that_fits():
    E = F = 64
    P = 65536
    blocks = P // PE
    fits = [d for d in range(1, blocks + 1)
            if blocks % d == 0 and fusemax_buffer_bytes(E, F, d) <= 16 * MiB]
    expected = max(fits)
    report = evaluate("fusemax", workload="bert", seq_len=P)
    assert report.parameters["P1"] == expected
    assert report.parameters["P2"] == blocks // expected
    assert report.buffer_bytes == pytest.approx(fusemax_buffer_bytes(E, F, expected))
    assert report.buffer_capacity_bytes == 16 * MiB
    assert report.buffer_bytes <= report.buffer_capacity_bytes


def test_forcing_a_p1_that_does_not_fit_raises():
    E = F = 64
    with pytest.raises(MappingError) as info:
        evaluate("fusemax", workload="bert", seq_len=65536, parameters={"P1": 256})
    message = str(info.value)
    digits = message.replace(",", "")
    assert "global buffer" in message
    assert re.search(r"\b(Q|RNV)\b", message)  # the largest resident tensors (E * 256 * P1 words)
    assert str(fusemax_buffer_bytes(E, F, 256)) in digits  # bytes needed in all
    assert str(16 * MiB) in digits  # bytes available


# --- errors ----------------------------------------------------------------------------------

def test_too_few_passes_raises():
    spec = load_mapping_spec("flat").model_copy(update={"passes": {"m": 1}})
    hw = load_spatial_array("flat-cloud")
    workload = load_workload("bert", 16384)
    with pytest.raises(MappingError, match="needs 3"):
        build_report(spec, hw, workload, {"rows": 512})


def _with_binding(name: str, einsum: str, binding: dict):
    spec = load_mapping_spec(name)
    bindings = {**spec.binding,
                einsum: spec.binding[einsum].model_copy(update=binding)}
    return spec.model_copy(update={"binding": bindings})


def test_divide_on_the_flat_2d_array_raises():
    hw = load_spatial_array("flat-cloud")
    workload = load_workload("bert", 16384)
    # A = SN / SD of the 3-pass cascade on FLAT's 2D array (mac and add only)
    spec = _with_binding("flat", "A", {"unit": "array2d", "spatial": {"rows": "m", "cols": "p"}})
    with pytest.raises(MappingError, match="divide"):
        build_report(spec, hw, workload, {"rows": 512})
    # AV = RNV / RD of the 1-pass cascade likewise
    spec = _with_binding("fusemax-cascade", "AV",
                         {"unit": "array2d", "spatial": {"rows": "f", "cols": "p"}})
    with pytest.raises(MappingError, match="divide"):
        build_report(spec, hw, workload, {"P1": 1})


def test_unbound_einsum_raises():
    spec = load_mapping_spec("flat")
    spec = spec.model_copy(update={"binding": {k: v for k, v in spec.binding.items()
                                               if k != "SD"}})
    with pytest.raises(MappingError, match="SD"):
        build_report(spec, load_spatial_array("flat-cloud"), load_workload("bert", 4096),
                     {"rows": 64})


# --- traffic and energy ----------------------------------------------------------------------

@pytest.mark.parametrize("mapping, workload, seq_len", [
    ("fusemax", "bert", 65536), ("fusemax", "xlm", 1 << 20), ("fusemax-cascade", "t5", 16384)])
def test_fusemax_traffic_and_dram_energy(mapping, workload, seq_len):
    report = evaluate(mapping, workload=workload, seq_len=seq_len)
    heads, E = WORKLOADS[workload]
    F, P, M = E, seq_len, seq_len
    p2 = report.parameters["P2"]
    assert p2 == (P // PE) // report.parameters["P1"]
    words = E * P + F * P + p2 * (E * M + F * M)  # Q, AV, and K, V once per P2 block
    traffic = words * WORD_BYTES * BATCH * heads
    assert report.traffic_bytes == pytest.approx(traffic, rel=1e-12)
    assert report.memory_latency_s == pytest.approx(traffic / DRAM_BW, rel=1e-12)
    dram_j = traffic / 8 * DRAM_PJ_PER_64_BITS * 1e-12  # 64-bit accesses
    assert report.energy_breakdown_j["dram"] == pytest.approx(dram_j, rel=1e-9)


@pytest.mark.parametrize("mapping", ORDER)
def test_energy_is_sum_of_breakdown(mapping):
    report = evaluate(mapping, workload="bert", seq_len=16384)
    assert set(report.energy_breakdown_j) == {"array2d", "array1d", "register_files",
                                              "global_buffer", "dram"}
    assert all(v >= 0 for v in report.energy_breakdown_j.values())
    assert report.energy_j == pytest.approx(sum(report.energy_breakdown_j.values()), rel=1e-12)
    assert report.energy_breakdown_j["dram"] == pytest.approx(
        report.traffic_bytes / 8 * DRAM_PJ_PER_64_BITS * 1e-12, rel=1e-9)


def test_fusemax_array_energy_by_hand():
    """Actions on each array (per (batch, head), M1 = M / 256):
    2D: MACs (E + 6 + F) M P (BQK, exp in SLN, SLNV), adds 3 M P (SLN's exp and subtraction,
    SLD), max M P (LM).  1D: MACs (6 + 1 + F) M1 P (exp in PRM, SPD, SPNV), adds (2 + 1 + F) M1 P
    (PRM's exp and subtraction, RD, RNV), max M1 P (RM), divides F P (AV).
    Each action also reads two register-file operands and writes one result."""
    report = evaluate("fusemax", workload="bert", seq_len=16384)
    heads, E = WORKLOADS["bert"]
    F, P = E, 16384
    M, M1 = P, P // PE
    copies = BATCH * heads
    actions2d = {"mac": (E + 6 + F) * M * P, "add": 3 * M * P, "max": M * P}
    actions1d = {"mac": (6 + 1 + F) * M1 * P, "add": (2 + 1 + F) * M1 * P, "max": M1 * P,
                 "divide": F * P}
    pj = {"mac": MAC_PJ, "add": ADD_PJ, "max": MAX_PJ, "divide": DIV_PJ}
    e2d = sum(n * pj[a] for a, n in actions2d.items()) * copies * 1e-12
    e1d = sum(n * pj[a] for a, n in actions1d.items()) * copies * 1e-12
    rf = sum((2 * FUSEMAX_RF[unit][0] + FUSEMAX_RF[unit][1]) * sum(actions.values())
             for unit, actions in (("array2d", actions2d), ("array1d", actions1d))) \
        * copies * 1e-12
    assert report.energy_breakdown_j["array2d"] == pytest.approx(e2d, rel=1e-9)
    assert report.energy_breakdown_j["array1d"] == pytest.approx(e1d, rel=1e-9)
    assert report.energy_breakdown_j["register_files"] == pytest.approx(rf, rel=1e-9)


def test_report_json_keys():
    report = evaluate("fusemax", workload="bert", seq_len=16384)
    data = report.model_dump()
    for key in ("cascade", "mapping", "hardware", "workload", "passes", "buffer_bytes",
                "buffer_capacity_bytes", "traffic_bytes", "compute_latency_s",
                "memory_latency_s", "latency_s", "utilization", "energy_j",
                "energy_breakdown_j", "area_mm2", "einsums"):
        assert key in data, key
    assert set(data["utilization"]) >= {"array2d", "array1d"}
    assert data["einsums"]
    for einsum in data["einsums"]:
        assert {"name", "unit", "ops", "cycles", "stage"} <= set(einsum)
    assert data["cascade"] == "fusemax" and data["mapping"] == "fusemax"
    assert data["hardware"] == "fusemax-cloud" and data["workload"] == "BERT"
    assert data["passes"] == 1
    assert evaluate("flat", workload="bert", seq_len=4096).passes == 3
    fusemax_area = (256 ** 2 * (1545 + 49.29 + 4255.93) + 256 * (1545 + 49.29 + 23740.94
                                                                  + 4255.93) + 94176256) / 1e6
    assert data["area_mm2"] == pytest.approx(fusemax_area)


# --- other workloads -----------------------------------------------------------------------

def test_custom_workload_yaml(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nbatch: 2\nheads: 4\nhead_dim: 32\nmodel_dim: 128\n"
                    "ffn_dim: 512\nseq_len: 4K\n")
    report = evaluate("fusemax", workload=str(path), seq_len=None)
    assert report.workload == "mine" and report.seq_len == 4096
    E = 32
    expected = sum(fusemax_stage_cycles(E, E, 4096, 4096)) * 2 * 4 / CLOCK_HZ
    assert report.latency_s == pytest.approx(expected, rel=1e-9)
    # traffic: Q, AV, K, V (P2 passes) for 2 x 4 (batch, head)
    p2 = report.parameters["P2"]
    assert report.traffic_bytes == pytest.approx(
        (2 * E * 4096 + p2 * 2 * E * 4096) * WORD_BYTES * 2 * 4)


def test_xlm_evaluates_with_every_mapping():
    for mapping in ORDER:
        report = evaluate(mapping, workload="xlm", seq_len=4096)
        assert report.workload == "XLM" and report.seq_len == 4096
        assert report.latency_s > 0 and report.energy_j > 0
        assert report.latency_s == pytest.approx(max(report.compute_latency_s,
                                                     report.memory_latency_s))
