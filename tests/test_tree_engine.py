"""The loop-tree engine against hand calculations (reference/looptree.md §5 worked examples),
brute-force mask counts, structural errors, and the mapper's acceptance bars."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import einsim
from einsim.cost.engine import Problem
from hw_models.spatial_array import load_spatial_array
from einsim.cost.evaluate import compile_for, evaluate_tree
from einsim.cost.masks import density
from einsim.cost.tree import mapping_from_document
from einsim.errors import EinsimError
from einsim.errors import MappingError
from einsim.search.mapper import map_cascade
from einsim.workloads import load_workload

N = 65536
BERT = load_workload("bert", N)
COPIES = BERT.batch * BERT.heads


def report(mapping, **kwargs):
    return evaluate_tree(mapping, workload="bert", seq_len=N, **kwargs).best


def per_copy(value):
    return value / COPIES


# ----------------------------------------------------------------- FuseMax, by hand (§5)

def test_fusemax_dram_traffic_is_q_k_v_per_query_block_and_av():
    r = report("fusemax", parameters={"P1": 64})
    E = F = 64
    P2 = N // (64 * 256)
    words = N * E + P2 * N * (E + F) + N * F          # Q once, K and V per P2 block, AV once
    assert r.traffic_bytes == words * 2 * COPIES
    dram = r.traffic_by_level["dram"]
    assert per_copy(dram["K"]["reads"]) == P2 * N * E
    assert per_copy(dram["AV"]["writes"]) == N * F


def test_fusemax_buffer_does_not_grow_with_m():
    sizes = [report("fusemax", parameters={"P1": 8}).buffer_bytes]
    sizes.append(evaluate_tree("fusemax", workload="bert", seq_len=4 * N,
                               parameters={"P1": 8}).best.buffer_bytes)
    assert sizes[0] == sizes[1]
    P1, P0, M0, E, F = 8, 256, 256, 64, 64
    # outer: Q, RM, RD, RNV per query block; inner: a K and a V tile, and the per-tile
    # values crossing from the 2D to the 1D array (LM, SLD, PRM, SPD: 1 each; SLNV, SPNV: F)
    words = P1 * P0 * (E + F + 2) + M0 * (E + F) + P0 * (4 + 2 * F)
    assert sizes[0] == words * 2


def test_fusemax_compute_is_the_pipelined_max_of_the_two_arrays():
    r = report("fusemax", parameters={"P1": 64})
    machine = load_spatial_array("fusemax-cloud")
    pe = machine.pe_dim                                # 256: the arrays' side, from the preset
    X = N * N / pe ** 2                                # one pe x pe tile step per (m1, p0)
    two_d = (64 + 64 + 9) * X                          # BQK E, LM 1, SLN 7, SLD 1, SLNV F
    one_d = (2 * 64 + 10) * X                          # RM 1, PRM 7, SPD 1, RD 1, SPNV, RNV F
    iterations = (N // (64 * pe)) * (N // pe) * 64     # p2 x m1 x p1: fill and drain once
    av = N * 64 / pe                                   # the final division, pe queries a step
    cycles = max(two_d, one_d) + min(two_d, one_d) / iterations + av
    assert r.compute_latency_s == pytest.approx(cycles * COPIES / machine.clock_hz, rel=1e-12)


def test_the_ladder_orders_as_published():
    latency = {m: report(m).latency_s for m in
               ["unfused", "flat", "fusemax-cascade", "fusemax-arch", "fusemax"]}
    assert latency["fusemax"] < latency["fusemax-arch"] < latency["fusemax-cascade"] \
        < latency["flat"] < latency["unfused"]
    flat = report("flat")
    pe = load_spatial_array("flat-cloud").pe_dim
    assert flat.utilization["array2d"] == pytest.approx(64 / pe / 2, rel=0.01)  # E/pe_dim/2


def test_flat_fills_and_row_buffer_by_hand():
    r = report("flat", parameters={"rows": 64})
    P2 = N // 64
    glb = r.traffic_by_level["global_buffer"]
    assert per_copy(r.traffic_by_level["dram"]["K"]["reads"]) == P2 * N * 64
    assert per_copy(glb["QK"]["writes"]) == N * N          # E reduced across the array rows
    assert per_copy(glb["QK"]["reads"]) == 2 * N * N       # by GM and SN
    assert per_copy(glb["SN"]["reads"]) == 2 * N * N       # by SD and A
    with pytest.raises(MappingError, match="does not fit.*global_buffer"):
        report("flat", parameters={"rows": 256, "row_buffer": "global_buffer"})  # > 32 MiB
    spilled = report("flat", parameters={"rows": 256, "row_buffer": "dram"})
    dram = spilled.traffic_by_level["dram"]
    assert per_copy(dram["QK"]["writes"] + dram["QK"]["reads"]) == 3 * N * N
    assert spilled.parameters["row_buffer"] == "dram"


def test_unfused_round_trips_every_intermediate():
    r = report("unfused")
    dram = {t: per_copy(v["reads"] + v["writes"]) for t, v in r.traffic_by_level["dram"].items()}
    assert dram["QK"] == 3 * N * N                         # written once, read by GM and SN
    assert dram["SN"] == 3 * N * N and dram["A"] == 2 * N * N


# --------------------------------------------------------------------- masks, any cascade

def test_causal_cascade_counts_about_half_the_operations():
    dense = report("fusemax")
    causal = report("fusemax", cascade="causal-fusemax")
    dense_macs = sum(e.ops.get("mac", 0) for e in dense.einsums)
    causal_macs = sum(e.ops.get("mac", 0) for e in causal.einsums)
    assert causal_macs / dense_macs == pytest.approx(0.5, abs=0.01)
    assert causal.traffic_bytes == dense.traffic_bytes     # tiles still move whole


def test_a_bias_input_costs_its_traffic():
    cascade = "examples/biased_softmax.einsum"
    with pytest.raises(MappingError, match="SB of the cascade are bound to no leaf"):
        report("fusemax", cascade=cascade)
    document = yaml.safe_load(open("mappings/fusemax.yaml"))
    document["tree"][0] = {"keep": {"dram": ["Q", "K", "V", "BIAS", "AV"]}}
    main = document["tree"][3]["sequence"][0]
    main.insert(1, {"keep": {"global_buffer": ["BB"]}})
    two_d = main[-1]["pipeline"][0]
    two_d[1]["keep"]["array2d.registers"].append("SB")
    two_d[2]["sequence"].insert(1, [{"run": "SB", "on": "array2d"}])
    mapping = mapping_from_document(document)
    r = evaluate_tree(mapping, workload="bert", seq_len=N, cascade=cascade,
                      parameters={"P1": 64}).best
    plain = report("fusemax", parameters={"P1": 64})
    assert r.traffic_bytes - plain.traffic_bytes == pytest.approx(N * N * 2 * COPIES, rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), p=st.integers(1, 40), tile=st.integers(1, 8),
       op=st.sampled_from(["<=", "<", ">=", ">", "==", "!="]), shift=st.integers(-5, 5))
def test_mask_density_equals_brute_force(m, p, tile, op, shift):
    text = f"""partition M -> M1, M0 by M0
input Q[E, P], K[E, M]
S[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0] where m1*M0 + m0 {op} p + {shift}
"""
    if shift < 0:
        text = text.replace(f"p + {shift}", f"p - {-shift}")
    cascade = einsim.parse(text)
    m1 = math.ceil(m / tile)
    sizes = {"M": m, "P": p, "M0": tile, "M1": m1, "E": 2}
    keys = np.arange(m1 * tile)[:, None]
    queries = np.arange(p)[None, :] + shift
    compare = {"<=": np.less_equal, "<": np.less, ">=": np.greater_equal, ">": np.greater,
               "==": np.equal, "!=": np.not_equal}[op]
    expected = np.count_nonzero(compare(keys, queries)) / (m1 * tile * p)
    assert density(cascade, "S", sizes) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(length=st.integers(4, 48), window=st.integers(1, 9), stride=st.integers(1, 4),
       dilation=st.integers(1, 3), causal=st.booleans())
def test_neighborhood_density_equals_brute_force(length, window, stride, dilation, causal):
    from einsim.language.functions import neighborhood

    if stride > window or window * dilation > length:
        return
    text = f"""param W = {window}
param S = {stride}
param D = {dilation}
param C = {int(causal)}
input Q[E, P], K[E, M]
S2[m, p] = Q[e, p] * K[e, m] where neighborhood(p, m, M, W, S, D, C)
"""
    cascade = einsim.parse(text)
    sizes = {"M": length, "P": length, "E": 2, "W": window, "S": stride, "D": dilation,
             "C": int(causal)}
    q, k = np.meshgrid(np.arange(length), np.arange(length), indexing="ij")
    mask = neighborhood(q, k, length, window, stride, dilation, int(causal))
    assert density(cascade, "S2", sizes) == pytest.approx(mask.mean(), abs=1e-12)


# ----------------------------------------------------------------------- errors name the node

FUSEMAX = yaml.safe_load(open("mappings/fusemax.yaml"))


def _broken(edit) -> dict:
    document = yaml.safe_load(yaml.safe_dump(FUSEMAX))
    edit(document)
    return document


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["tree"][3]["sequence"][1].__setitem__(2, {"run": "NOPE", "on": "array1d"}),
     r"tree\[3\]\.sequence\[1\]\[2\]: unknown Einsum 'NOPE'"),
    (lambda d: d["tree"][3]["sequence"][1].__setitem__(2, {"run": "RM", "on": "array1d"}),
     "RM is bound twice"),
    (lambda d: d["tree"][3]["sequence"][1].__setitem__(2, {"run": "AV", "on": "gpu"}),
     "unknown unit 'gpu'"),
    (lambda d: d["tree"].__setitem__(0, {"keep": {"sram": ["Q", "K", "V", "AV"]}}),
     "unknown level 'sram'"),
    (lambda d: d["tree"].__setitem__(0, {"keep": {"dram": ["Q", "K", "V", "AV", "ZZ"]}}),
     "unknown tensor 'ZZ'"),
    (lambda d: d["tree"][3]["sequence"][1].__setitem__(1, {"spatial": {"rows": "p"}}),
     "axis 'rows', but Einsum AV runs on array1d"),
    (lambda d: d["tree"][3]["sequence"][1].insert(0, {"loop": "m0"}),
     "loop over 'm0' above Einsum AV"),
    (lambda d: d["tree"].__setitem__(2, {"keep": {"global_buffer": ["Q", "RD", "RNV"]}}),
     "RM, which has no keep on its path"),
    (lambda d: d["tree"][3]["sequence"][0][4].__setitem__("sequence",
                                                          d["tree"][3]["sequence"][0][4]
                                                          .pop("pipeline")),
     "reads RM, which branch 1 of this sequence produces later"),
    (lambda d: d["tree"][3]["sequence"][0][4]["pipeline"][1].__setitem__(
        0, {"spatial": {"rows": "m0", "cols": "p"}}), "pes|axis"),
    (lambda d: d["tree"][1].__setitem__("tile", "__import__('os')"), "tile"),
    (lambda d: d["tree"].__setitem__(1, {"loop": "p", "tile": "P1 ** 9"}), "operator Pow"),
])
def test_bad_trees_are_one_clear_error(edit, message):
    with pytest.raises(EinsimError, match=message):
        mapping = mapping_from_document(_broken(edit))
        compile_for(mapping)


def test_a_reader_sharing_the_reduction_loop_is_a_pass_violation():
    flat = yaml.safe_load(open("mappings/flat.yaml"))
    one_d = flat["tree"][4]["pipeline"][1][1]["sequence"]
    # run SN inside GM's loop over m: it would read the maximum before it is complete
    one_d[0][-1] = {"sequence": [[{"run": "GM", "on": "array1d"}],
                                 [{"run": "SN", "on": "array1d"}]]}
    del one_d[1]
    with pytest.raises(MappingError, match="complete reduction of GM over m"):
        compile_for(mapping_from_document(flat))


# ------------------------------------------------------------------------------ the mapper

def test_mapper_finds_trees_at_least_as_fast_as_the_hand_written_ones():
    found = map_cascade(None, "fusemax", "fusemax-cloud", "bert", N)
    assert found.result.best.latency_s <= report("fusemax").latency_s
    found = map_cascade(None, "attention-3pass", "flat-cloud", "bert", N)
    assert found.result.best.latency_s <= report("flat").latency_s
    again = evaluate_tree(mapping_from_document(yaml.safe_load(found.mapping_yaml)),
                          workload="bert", seq_len=N).best
    assert again.latency_s == found.result.best.latency_s
    assert again.energy_j == found.result.best.energy_j


def test_mapper_maps_a_cascade_it_has_never_seen():
    found = map_cascade(None, "examples/sigmoid_attention.einsum", "fusemax-cloud", "bert", N)
    assert found.trees >= 1 and found.result.best.latency_s > 0
    assert "SA" in found.mapping_yaml


def test_divisors_are_found_without_a_linear_scan():
    from einsim.search.parameters import divisors

    assert divisors(2 ** 62) == [2 ** k for k in range(63)]
    assert divisors(36) == [1, 2, 3, 4, 6, 9, 12, 18, 36]


# ------------------------------------------------------------------ vectorized sweeps agree

def test_vectorized_sweep_rows_equal_the_point_path():
    from einsim.search.tree_sweep import vectorized_points

    parameters = {"pe_dim": [32, 256], "global_buffer_bytes": [2 ** 16, 2 ** 24]}
    rows = vectorized_points("fusemax", "bert", [4096], parameters)
    for row in rows:
        swept = {k: row[k] for k in parameters}
        try:
            point = evaluate_tree("fusemax", workload="bert", seq_len=4096,
                                  parameters=swept).best
        except MappingError as error:
            assert not row["feasible"] and row["error"] == str(error)
            continue
        assert row["feasible"]
        assert row["latency_s"] == point.latency_s and row["energy_j"] == point.energy_j
        assert row["area_mm2"] == point.area_mm2 and row["P1"] == point.parameters["P1"]
    assert any(not r["feasible"] for r in rows) and any(r["feasible"] for r in rows)


def test_report_keeps_its_keys_and_adds_levels():
    r = report("fusemax")
    for key in ("passes", "buffer_bytes", "traffic_bytes", "latency_s", "utilization",
                "energy_breakdown_j", "area_mm2", "einsums", "traffic_by_level",
                "accesses_by_level"):
        assert key in r.model_dump()
    assert r.accesses_by_level["dram"]["reads"] == pytest.approx(
        sum(v["reads"] for v in r.traffic_by_level["dram"].values()) / 4)
    assert isinstance(Problem("x", {}, 1, 1), Problem)


def test_static_power_is_charged_over_the_latency(tmp_path):
    document = yaml.safe_load(open("hw_models/presets/fusemax-cloud.yaml"))
    document.update(name="leaky", static_power_w=10.0)
    path = tmp_path / "leaky.yaml"
    path.write_text(yaml.safe_dump(document))
    plain = report("fusemax")
    leaky = evaluate_tree("fusemax", hardware=str(path), workload="bert", seq_len=N).best
    assert leaky.latency_s == plain.latency_s
    assert leaky.energy_j - plain.energy_j == pytest.approx(10.0 * plain.latency_s, rel=1e-12)
    assert leaky.energy_breakdown_j["static"] == pytest.approx(10.0 * plain.latency_s)


def test_sweep_takes_a_cascade_and_keeps_it_in_the_experiment(tmp_path):
    from einsim.search.manifest import ManifestMismatchError
    from einsim.search.sweeps import run_sweep

    out = tmp_path / "causal.csv"
    args = ("fusemax", "bert", [4096, 16384], {"pe_dim": [64, 256]})
    fast = run_sweep(*args, cascade="causal-fusemax", out=out)
    slow = run_sweep(*args, cascade="causal-fusemax", vectorize=False)
    dense = run_sweep(*args)
    assert [p["energy_j"] for p in fast.points] == [p["energy_j"] for p in slow.points]
    assert all(c["energy_j"] < 0.6 * d["energy_j"] for c, d in zip(fast.points, dense.points))
    before = out.read_bytes()
    with pytest.raises(ManifestMismatchError, match="mapping differs"):
        run_sweep(*args, out=out, resume=True)          # the dense cascade: another experiment
    assert out.read_bytes() == before


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


HOSTILE = [None, 1.5, True, [], {}, [1], {1: 2}, "x y", "", float("nan"), float("inf"),
           10 ** 400, 10 ** 30, -1, 0, "0", "-P", "P0/0", "1/2", "P0 - 256", "P - P",
           "__import__('os')", "ceil()", "M0 ** 2"]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hostile_tree_edits_give_a_report_or_one_clear_error(data):
    """Any field of a library tree replaced by a hostile value: a finite report, or an
    EinsimError — never another exception, never NaN or infinity."""
    import copy

    name = data.draw(st.sampled_from(["fusemax", "flat", "unfused"]))
    document = yaml.safe_load(open(f"mappings/{name}.yaml"))
    path = data.draw(st.sampled_from([p for p in _paths(document) if p]))
    value = data.draw(st.sampled_from(HOSTILE))
    edited = copy.deepcopy(document)
    node = edited
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        result = evaluate_tree(mapping_from_document(edited), workload="bert", seq_len=4096)
    except EinsimError:
        return
    best = result.best
    assert all(math.isfinite(x) and x >= 0 for x in
               (best.latency_s, best.energy_j, best.traffic_bytes, best.buffer_bytes))


def test_an_edited_tree_file_is_read_again(tmp_path):
    """Loading is cached per file content stamp: editing a tree between two evaluations (as
    in a notebook) changes the result."""
    import os

    document = yaml.safe_load(open("mappings/fusemax.yaml"))
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(document))
    first = evaluate_tree(str(path), workload="bert", seq_len=N, parameters={"P1": 64}).best
    document["tree"][1]["tile"] = "P0"   # one query block per K/V sweep: K and V read more
    path.write_text(yaml.safe_dump(document))
    os.utime(path, ns=(1, 1))           # even with the old modification time, the size differs
    second = evaluate_tree(str(path), workload="bert", seq_len=N, parameters={"P1": 64}).best
    assert second.traffic_bytes > first.traffic_bytes
