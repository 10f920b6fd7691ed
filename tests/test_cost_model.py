"""Tests of the spatial-array cost model (einsim.cost, the loop-tree engine) through the ladder's
mapping trees (mappings/*.yaml).

Expected latencies, utilizations, traffic and energies are derived by hand in this file from the
published hardware parameters (FuseMax, MICRO 2024), the workload shapes and the derivation
rules of docs/concepts/loop_trees.md, never by calling the code under test a second time.
"""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from einsim.cost.evaluate import compile_for, evaluate_tree
from einsim.cost.tree import MappingTree, load_mapping_tree, mapping_from_document
from einsim.cost.front_door import evaluate
from einsim.cost.tree import mapping_names
from einsim.errors import MappingError

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

# Published per-action energies (pJ) and the register file of the FuseMax PEs.
MAC_PJ, ADD_PJ, MAX_PJ, DIV_PJ = 17.1645, 8.3395, 0.028036, 36.251153
RF_READ_PJ, RF_WRITE_PJ = 0.653431, 0.56957


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def fusemax_main_cycles(E: int, F: int, P: int, M: int, pe: int = PE) -> float:
    """Cycles per (batch, head) of the FuseMax tree's first branch (everything but AV), by hand.

    A tile is pe keys (m0, the 2D array's rows) x pe queries (p, its columns); per tile the 2D
    array takes BQK E, LM 1, SLN 7 (exp = 6 MAC, plus the subtraction of the max on the same
    MAC), SLD 1, SLNV F cycles, and the 1D array (one query per PE) RM 1, PRM 7, SPD 1, RD 1,
    SPNV F, RNV F.  The two arrays are pipelined across tiles: the slower array's time, plus
    the faster one's time for one tile (the fill and drain of the pipeline).
    """
    tiles = ceil_div(M, pe) * ceil_div(P, pe)
    two_d, one_d = E + 1 + 7 + 1 + F, 1 + 7 + 1 + 1 + F + F
    return max(two_d, one_d) * tiles + min(two_d, one_d)


def fusemax_av_cycles(F: int, P: int, pe: int = PE) -> float:
    """AV = RNV / RD: F divides per query, pe queries a cycle on the 1D array."""
    return F * ceil_div(P, pe)


def fusemax_compute_s(workload: str, seq_len: int, pe: int = PE) -> float:
    heads, E = WORKLOADS[workload]
    cycles = fusemax_main_cycles(E, E, seq_len, seq_len, pe) + fusemax_av_cycles(E, seq_len, pe)
    return cycles * BATCH * heads / CLOCK_HZ


def fusemax_latency_s(workload: str, seq_len: int, pe: int = PE, batch: int = BATCH,
                      heads: int | None = None, E: int | None = None) -> float:
    """The two branches of the tree's top sequence one after the other, each lasting as long
    as its compute or its own DRAM traffic: the first is compute-bound, the AV branch writes
    F x P words to DRAM, which takes longer than its F x P / pe divisions."""
    if heads is None:
        heads, E = WORKLOADS[workload]
    F = E
    main = fusemax_main_cycles(E, F, seq_len, seq_len, pe) / CLOCK_HZ
    av = max(fusemax_av_cycles(F, seq_len, pe) / CLOCK_HZ, F * seq_len * WORD_BYTES / DRAM_BW)
    return (main + av) * batch * heads


def flat_cycles(M: int, P: int, pe: int = PE) -> float:
    """FLAT with a row block of at most pe queries (E, F <= pe): the 1D array takes GM, SN
    (exp on its own unit, the subtraction on the MAC), SD and A, one key per PE per cycle:
    4 M P / pe; the 2D array takes QK and AV for a row block in M cycles each (E or F on the
    rows, the block's queries on the columns), overlapped with the 1D array across row blocks,
    so one row block's 2 M cycles are not hidden (the pipeline's fill and drain)."""
    return 4 * M * P / pe + 2 * M


# --- the ladder's mapping files ----------------------------------------------------------

def test_mapping_names_are_loop_trees():
    assert set(ORDER) <= set(mapping_names())
    for name in ORDER:
        tree = load_mapping_tree(name)
        assert isinstance(tree, MappingTree) and tree.name == name
    assert set(load_mapping_tree("fusemax").parameters) == {"M0", "P0", "P1"}
    assert set(load_mapping_tree("flat").parameters) == {"rows", "row_buffer"}
    assert load_mapping_tree("flat").structural == ("row_buffer",)
    assert load_mapping_tree("unfused").parameters == {}


# --- utilization ---------------------------------------------------------------------------

@pytest.mark.parametrize("workload", ["bert", "xlm"])
def test_flat_utilization_at_16k(workload):
    """2D array: 2 E M P MACs on pe^2 PEs; 1D array: 4 M P / pe cycles; both over FLAT's
    latency (E / 512 and 1 but for the row block the pipeline does not hide)."""
    report = evaluate("flat", workload=workload, seq_len=16384)
    _, E = WORKLOADS[workload]
    M = P = 16384
    cycles = flat_cycles(M, P)
    assert report.parameters["row_buffer"] == "global_buffer"
    assert report.parameters["rows"] in (128, 256)
    assert report.utilization["array2d"] == pytest.approx(2 * E * M * P / PE ** 2 / cycles,
                                                          rel=1e-9)
    assert report.utilization["array1d"] == pytest.approx(4 * M * P / PE / cycles, rel=1e-9)
    assert report.utilization["array2d"] == pytest.approx(E / 512, rel=0.01)


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
    # Coarse form: the 1D array's 2F + 10 cycles per tile (it is the slower array)
    coarse = (2 * E + 10) * tiles * BATCH * heads / CLOCK_HZ
    assert report.compute_latency_s == pytest.approx(coarse, rel=0.01)
    assert report.compute_latency_s == pytest.approx(fusemax_compute_s("bert", 65536), rel=1e-12)
    assert report.latency_s == pytest.approx(fusemax_latency_s("bert", 65536), rel=1e-12)
    assert report.latency_s == pytest.approx(report.compute_latency_s, rel=1e-3)
    assert report.memory_latency_s < report.compute_latency_s


def test_fusemax_per_einsum_cycles_and_units_bert_64k():
    report = evaluate("fusemax", workload="bert", seq_len=65536)
    heads, E = WORKLOADS["bert"]
    copies = BATCH * heads
    tiles = (65536 // PE) ** 2
    per_tile = {"BQK": E, "LM": 1, "SLN": 7, "SLD": 1, "SLNV": E,
                "RM": 1, "PRM": 7, "SPD": 1, "RD": 1, "SPNV": E, "RNV": E}
    unit = {"BQK": "array2d", "LM": "array2d", "SLN": "array2d", "SLD": "array2d",
            "SLNV": "array2d", "RM": "array1d", "PRM": "array1d", "SPD": "array1d",
            "RD": "array1d", "SPNV": "array1d", "RNV": "array1d", "AV": "array1d"}
    by_name = {e.name: e for e in report.einsums}
    assert set(by_name) == set(unit)  # BK / BV are views, not computed
    for name, cycles in per_tile.items():
        assert by_name[name].cycles == pytest.approx(cycles * tiles * copies), name
    for name, where in unit.items():
        assert by_name[name].unit == where, name
    # stages number the leaves in tree order
    assert [e.stage for e in report.einsums] == list(range(len(unit)))
    assert [e.name for e in report.einsums][:5] == ["BQK", "LM", "SLN", "SLD", "SLNV"]
    assert by_name["AV"].cycles == pytest.approx(E * 65536 / PE * copies)
    assert by_name["BQK"].ops == {"mac": pytest.approx(E * 65536 * 65536 * copies)}
    assert by_name["SLN"].ops == {"exp": pytest.approx(65536 * 65536 * copies),
                                  "add": pytest.approx(65536 * 65536 * copies)}


@pytest.mark.parametrize("workload", ["xlm", "t5"])
def test_fusemax_latency_matches_hand_calculation_other_workloads(workload):
    report = evaluate("fusemax", workload=workload, seq_len=16384)
    assert report.compute_latency_s == pytest.approx(fusemax_compute_s(workload, 16384),
                                                     rel=1e-12)
    assert report.latency_s == pytest.approx(fusemax_latency_s(workload, 16384), rel=1e-12)


def test_flat_spills_and_is_memory_bound_at_1m_not_at_16k():
    """FLAT spills by putting its row buffer (QK / SN / A) in DRAM: the mapper does at 1M,
    where a row block of logits leaves room for 8 rows in the 32 MiB buffer."""
    N = 1 << 20
    long = evaluate("flat", workload="bert", seq_len=N)
    assert long.parameters["row_buffer"] == "dram"
    assert long.memory_latency_s > long.compute_latency_s
    assert long.latency_s == pytest.approx(long.memory_latency_s)
    # DRAM words: QK written once and read by GM and SN, SN written once and read by SD and A,
    # A written once and read by AV; Q and AV once; K and V once per row block
    heads, E = WORKLOADS["bert"]
    rows = long.parameters["rows"]
    words = 3 * N * N + 3 * N * N + 2 * N * N + 2 * E * N + 2 * E * N * (N // rows)
    traffic = words * WORD_BYTES * BATCH * heads
    assert long.traffic_bytes == pytest.approx(traffic, rel=1e-12)
    assert long.memory_latency_s == pytest.approx(traffic / DRAM_BW, rel=1e-12)
    # kept on chip, the buffer holds per row the row's logits (N), Q and AV (E, F) and GM, SD
    # (1 each), and one K or V tile (pe x E; QK and AV run one after the other): the largest
    # row block that fits 32 MiB is 8 rows, and it is slower
    def on_chip_bytes(rows):
        return (rows * (N + E + E + 2) + PE * E) * WORD_BYTES

    fits = max(r for r in (2 ** k for k in range(21)) if on_chip_bytes(r) <= 32 * MiB)
    assert fits == 8
    on_chip = evaluate("flat", workload="bert", seq_len=N,
                       parameters={"row_buffer": "global_buffer"})
    assert on_chip.parameters["rows"] == fits
    assert on_chip.buffer_bytes == on_chip_bytes(fits)
    assert on_chip.latency_s > long.latency_s
    short = evaluate("flat", workload="bert", seq_len=16384)
    assert short.parameters["row_buffer"] == "global_buffer"
    assert short.memory_latency_s < short.compute_latency_s
    assert short.latency_s == pytest.approx(short.compute_latency_s)
    assert short.latency_s == pytest.approx(
        flat_cycles(16384, 16384) * BATCH * heads / CLOCK_HZ, rel=1e-12)


@pytest.mark.parametrize("workload", ["bert", "trxl", "t5"])
def test_speedup_ordering_at_64k(workload):
    latency = {m: evaluate(m, workload=workload, seq_len=65536).latency_s for m in ORDER}
    for slower, faster in zip(ORDER, ORDER[1:]):
        assert latency[slower] > latency[faster], (slower, faster, latency)


def test_speedup_ordering_at_64k_xlm():
    """XLM (E = F = 128): the ordering holds except FLAT vs +Cascade, which are a near tie
    (FLAT ahead by 0.25%).

    Both are bound by the 1D array (M = P = 64K, M1 = M / 256, per (batch, head), 256 PEs):
    FLAT does GM, SN, SD, A: 4 M P / 256 cycles, plus one row block's QK and AV on the 2D
    array (2 M) that its pipeline does not hide.  +Cascade does LM, SLN, SLD (3 M0 cycles per
    tile) and RM, PRM, SPD, RD (1 each), SPNV, RNV (F each): (3 M P + (4 + 2 F) M1 P) / 256,
    plus one tile on the 2D array (E + F cycles: BQK, SLNV) the pipeline does not hide, plus
    its AV branch, which takes the longer of F P / 256 divisions and writing F P words to DRAM.
    """
    latency = {m: evaluate(m, workload="xlm", seq_len=65536).latency_s for m in ORDER}
    assert latency["unfused"] > latency["flat"]
    assert latency["fusemax-cascade"] > latency["fusemax-arch"] > latency["fusemax"]
    heads, F = WORKLOADS["xlm"]
    E = F
    P = M = 65536
    M1 = M // PE
    copies = BATCH * heads
    flat = flat_cycles(M, P) * copies / CLOCK_HZ
    main = ((3 * M * P + (4 + 2 * F) * M1 * P) / PE + E + F) / CLOCK_HZ
    av = max(F * P / PE / CLOCK_HZ, F * P * WORD_BYTES / DRAM_BW)
    cascade = (main + av) * copies
    assert latency["flat"] == pytest.approx(flat, rel=1e-12)
    assert latency["fusemax-cascade"] == pytest.approx(cascade, rel=1e-12)
    assert latency["flat"] == pytest.approx(latency["fusemax-cascade"], rel=0.005)


def test_pe_dim_scaling_is_quadratic():
    pe_dims = [16, 32, 64, 128, 256, 512]
    latency = [evaluate("fusemax", workload="bert", seq_len=262144,
                        parameters={"pe_dim": pe}).latency_s for pe in pe_dims]
    for pe, slower, faster in zip(pe_dims[1:], latency, latency[1:]):
        assert slower / faster == pytest.approx(4.0, rel=0.05), pe
    for pe, value in zip(pe_dims, latency):
        assert value == pytest.approx(fusemax_latency_s("bert", 262144, pe=pe), rel=1e-12), pe


# --- capacity and the mapper's choice of P1 -------------------------------------------------

def fusemax_buffer_bytes(E: int, F: int, p1: int, pe: int = PE) -> int:
    """The global buffer's peak, in bytes (M0 = P0 = pe): Q, RM, RD, RNV for pe * P1 queries;
    one K and one V tile (BK, BV); and the per-tile values crossing from the 2D to the 1D
    array for pe queries: LM, SLD, PRM, SPD (1 each), SLNV, SPNV (F each)."""
    return ((E + 1 + 1 + F) * pe * p1 + pe * (E + F) + pe * (4 + 2 * F)) * WORD_BYTES


def test_mapper_p1_is_the_largest_divisor_that_fits():
    """P1 does not change FuseMax's compute; a larger P1 re-reads K and V fewer times, so the
    mapper (latency, ties to less energy) takes the largest P1 whose tiles fit."""
    E = F = 64
    P = 65536
    blocks = P // PE
    fits = [d for d in range(1, blocks + 1)
            if blocks % d == 0 and fusemax_buffer_bytes(E, F, d) <= 16 * MiB]
    expected = max(fits)
    assert expected == 128
    report = evaluate("fusemax", workload="bert", seq_len=P)
    assert report.parameters == {"M0": PE, "P0": PE, "P1": expected}
    assert report.buffer_bytes == pytest.approx(fusemax_buffer_bytes(E, F, expected))
    assert report.buffer_capacity_bytes == 16 * MiB
    assert report.buffer_bytes <= report.buffer_capacity_bytes


def test_forcing_a_p1_that_does_not_fit_raises():
    E = F = 64
    with pytest.raises(MappingError) as info:
        evaluate("fusemax", workload="bert", seq_len=65536, parameters={"P1": 256})
    message = str(info.value)
    digits = message.replace(",", "")
    assert "global_buffer" in message and "does not fit" in message
    assert re.search(r"tensor (Q|RNV) needs", message)  # the largest tiles: E * 256 * P1 words
    assert str(E * PE * 256 * WORD_BYTES) in digits      # that tile's bytes
    assert str(fusemax_buffer_bytes(E, F, 256)) in digits  # bytes needed in all
    assert str(16 * MiB) in digits  # bytes available


# --- errors ----------------------------------------------------------------------------------

FLAT = yaml.safe_load(open("mappings/flat.yaml"))
ONE_D = (4, "pipeline", 1, 1, "sequence")  # FLAT's softmax branches: GM, SN, SD, A


def _flat_softmax_branches(document):
    node = document["tree"]
    for key in ONE_D:
        node = node[key]
    return node


def _compile(document, **choice):
    mapping = mapping_from_document(document)
    if mapping.structural:
        mapping = mapping.concrete(choice or {"row_buffer": "global_buffer"})
    return compile_for(mapping)


def test_the_ladder_trees_compile():
    for name in ORDER:
        tree = load_mapping_tree(name)
        _compile(yaml.safe_load(open(f"mappings/{name}.yaml")))
        assert tree.name == name


def test_too_few_passes_raises_naming_the_loop():
    """A reads the complete reduction SD over m: under one loop over m with SD it would read
    the denominator before it is complete (the 3-pass cascade needs SD and A in separate
    passes over m)."""
    document = copy.deepcopy(FLAT)
    branches = _flat_softmax_branches(document)
    sd, a = branches[2], branches[3]
    assert sd[-1]["run"] == "SD" and a[-1]["run"] == "A"
    sd[-1] = {"sequence": [[{"run": "SD", "on": "array1d"}], [{"run": "A", "on": "array1d"}]]}
    del branches[3]
    with pytest.raises(MappingError, match=r"tree\[4\]\.pipeline\[1\]\[1\]\.sequence\[2\]\[1\]: "
                                           r"A reads the complete reduction of SD over m"):
        _compile(document)


def test_divide_on_the_flat_2d_array_raises():
    # A = SN / SD of the 3-pass cascade on FLAT's 2D array (mac and add only)
    document = copy.deepcopy(FLAT)
    a = _flat_softmax_branches(document)[3]
    a[-2] = {"spatial": {"rows": "m", "cols": "p"}}
    a[-1] = {"run": "A", "on": "array2d"}
    document["tree"][4]["pipeline"][0][0]["sequence"].insert(1, a)  # between QK and AV
    del _flat_softmax_branches(document)[3]
    with pytest.raises(MappingError, match="Einsum A: operation 'divide' has no cost on unit "
                                           "array2d"):
        _compile(document)
    # AV = RNV / RD of the 1-pass cascade likewise
    document = yaml.safe_load(open("mappings/fusemax-cascade.yaml"))
    av = document["tree"][3]["sequence"][1]
    av[1], av[2] = {"spatial": {"rows": "f", "cols": "p"}}, {"run": "AV", "on": "array2d"}
    with pytest.raises(MappingError, match=r"tree\[3\]\.sequence\[1\]\[2\]: Einsum AV: "
                                           r"operation 'divide'"):
        evaluate_tree(mapping_from_document(document), workload="bert", seq_len=16384,
                      parameters={"P1": 1})


def test_unbound_einsum_raises():
    """A tree without a run leaf for SD leaves an Einsum of the cascade unbound."""
    document = copy.deepcopy(FLAT)
    branches = _flat_softmax_branches(document)
    assert branches[2][-1]["run"] == "SD"
    del branches[2]
    with pytest.raises(MappingError, match="SD of the cascade are bound to no leaf"):
        _compile(document)


# --- traffic and energy ----------------------------------------------------------------------

@pytest.mark.parametrize("mapping, workload, seq_len", [
    ("fusemax", "bert", 65536), ("fusemax", "xlm", 1 << 20), ("fusemax-cascade", "t5", 16384)])
def test_fusemax_traffic_and_dram_energy(mapping, workload, seq_len):
    report = evaluate(mapping, workload=workload, seq_len=seq_len)
    heads, E = WORKLOADS[workload]
    F, P, M = E, seq_len, seq_len
    p2 = (P // PE) // report.parameters["P1"]  # query blocks of P1 x P0 queries
    words = E * P + F * P + p2 * (E * M + F * M)  # Q, AV, and K, V once per P2 block
    traffic = words * WORD_BYTES * BATCH * heads
    assert report.traffic_bytes == pytest.approx(traffic, rel=1e-12)
    assert report.memory_latency_s == pytest.approx(traffic / DRAM_BW, rel=1e-12)
    dram_j = traffic / 8 * DRAM_PJ_PER_64_BITS * 1e-12  # 64-bit accesses
    assert report.energy_breakdown_j["dram"] == pytest.approx(dram_j, rel=1e-9)
    assert report.accesses_by_level["dram"]["reads"] + report.accesses_by_level["dram"][
        "writes"] == pytest.approx(traffic / 8, rel=1e-12)


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
    2D: MACs (E + 6 + F) M P (BQK, exp in SLN, SLNV), adds 2 M P (SLN's subtraction, SLD),
    max M P (LM).  1D: MACs (6 + 1 + F) M1 P (exp in PRM, SPD, SPNV), adds (1 + 1 + F) M1 P
    (PRM's subtraction, RD, RNV), max M1 P (RM), divides F P (AV).

    Register files: the tree keeps BQK and SLN in the 2D array's registers (nothing in the
    1D array's).  BQK: E M P updates (writes), each but the first per element reading the
    partial sum ((E - 1) M P), and read once by LM and once by SLN; SLN: M P writes, read by
    SLD once and by SLNV F times."""
    report = evaluate("fusemax", workload="bert", seq_len=16384)
    heads, E = WORKLOADS["bert"]
    F, P = E, 16384
    M, M1 = P, P // PE
    copies = BATCH * heads
    actions2d = {"mac": (E + 6 + F) * M * P, "add": 2 * M * P, "max": M * P}
    actions1d = {"mac": (6 + 1 + F) * M1 * P, "add": (1 + 1 + F) * M1 * P, "max": M1 * P,
                 "divide": F * P}
    pj = {"mac": MAC_PJ, "add": ADD_PJ, "max": MAX_PJ, "divide": DIV_PJ}
    e2d = sum(n * pj[a] for a, n in actions2d.items()) * copies * 1e-12
    e1d = sum(n * pj[a] for a, n in actions1d.items()) * copies * 1e-12
    reads = ((E - 1) + 1 + 1) * M * P + (1 + F) * M * P
    writes = E * M * P + M * P
    rf = (reads * RF_READ_PJ + writes * RF_WRITE_PJ) * copies * 1e-12
    assert report.energy_breakdown_j["array2d"] == pytest.approx(e2d, rel=1e-9)
    assert report.energy_breakdown_j["array1d"] == pytest.approx(e1d, rel=1e-9)
    assert report.energy_breakdown_j["register_files"] == pytest.approx(rf, rel=1e-9)
    registers = report.traffic_by_level["array2d.registers"]
    assert set(registers) == {"BQK", "SLN"}
    assert report.accesses_by_level["array1d.registers"] == {"reads": 0.0, "writes": 0.0}


def test_report_json_keys():
    report = evaluate("fusemax", workload="bert", seq_len=16384)
    data = report.model_dump()
    for key in ("cascade", "mapping", "hardware", "workload", "passes", "buffer_bytes",
                "buffer_capacity_bytes", "traffic_bytes", "compute_latency_s",
                "memory_latency_s", "latency_s", "utilization", "energy_j",
                "energy_breakdown_j", "area_mm2", "einsums", "traffic_by_level",
                "accesses_by_level"):
        assert key in data, key
    assert set(data["utilization"]) >= {"array2d", "array1d"}
    assert data["einsums"]
    for einsum in data["einsums"]:
        assert {"name", "unit", "ops", "cycles", "stage"} <= set(einsum)
    assert data["cascade"] == "fusemax" and data["mapping"] == "fusemax"
    assert data["hardware"] == "fusemax-cloud" and data["workload"] == "BERT"
    assert data["passes"] == 1
    assert evaluate("flat", workload="bert", seq_len=4096).passes == 3
    assert evaluate("unfused", workload="bert", seq_len=4096).passes == 3
    assert set(data["traffic_by_level"]) == {"dram", "global_buffer", "array2d.registers"}
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
    expected = fusemax_latency_s("", 4096, batch=2, heads=4, E=E)
    assert report.latency_s == pytest.approx(expected, rel=1e-12)
    # traffic: Q, AV, K, V (P2 passes) for 2 x 4 (batch, head)
    p2 = (4096 // PE) // report.parameters["P1"]
    assert report.traffic_bytes == pytest.approx(
        (2 * E * 4096 + p2 * 2 * E * 4096) * WORD_BYTES * 2 * 4)


def test_xlm_evaluates_with_every_mapping():
    for mapping in ORDER:
        report = evaluate(mapping, workload="xlm", seq_len=4096)
        assert report.workload == "XLM" and report.seq_len == 4096
        assert report.latency_s > 0 and report.energy_j > 0
        # compute and memory overlap within each branch of the tree, not across branches
        bound = max(report.compute_latency_s, report.memory_latency_s)
        assert bound * (1 - 1e-12) <= report.latency_s
        assert report.latency_s <= (report.compute_latency_s + report.memory_latency_s) \
            * (1 + 1e-12)
