"""Tests for the pass analysis, footprints, op counts and the dependency graph."""

from __future__ import annotations

import networkx as nx
import pytest
import sympy

import einsim
from einsim import library
from einsim.errors import EinsimError
from einsim.analysis.footprint import size_symbol
from einsim.errors import UnknownRankError
from einsim.analysis.passes import pass_assignment

PASS_TABLE = [
    ("attention-3pass", "m", 3),
    ("attention-2pass", "m", 2),
    ("attention-2pass-tiled", "m", 2),
    ("attention-1pass", "m", 1),
    ("attention-1pass", "m0", 2),
    ("fusemax", "m", 1),
    ("fusemax", "m0", 2),
    ("fusemax", "m1", 1),
    ("causal-attention-3pass", "m", 3),
    ("causal-attention-2pass", "m", 2),
    ("causal-attention-1pass", "m", 1),
    ("causal-fusemax", "m", 1),
    ("causal-fusemax", "m0", 2),
    ("attention-naive", "m", 1),
    ("decode-split", "m", 1),
    ("decode-split", "m1", 2),
    ("gna", "m", 1),
    ("gna-2d", "mx", 1),
    ("gna-3d", "mx", 1),
    ("linear-attention", "m", 1),
    ("attention-scan", "m", 1),
]


@pytest.mark.parametrize("name, rank, expected", PASS_TABLE)
def test_pass_table(name, rank, expected):
    assert einsim.passes(library.get(name), rank) == expected


@pytest.mark.parametrize("name", ["attention-3pass", "attention-2pass", "attention-1pass",
                                  "fusemax"])
@pytest.mark.parametrize("rank", ["m", "m0", "m1", "p", "e", "f"])
def test_causal_variants_have_the_same_passes(name, rank):
    plain = library.get(name)
    causal = library.get(f"causal-{name}")
    try:
        expected = einsim.passes(plain, rank)
    except UnknownRankError:
        with pytest.raises(UnknownRankError):
            einsim.passes(causal, rank)
        return
    assert einsim.passes(causal, rank) == expected


def test_rank_names_are_case_insensitive():
    cascade = library.get("attention-3pass")
    assert einsim.passes(cascade, "M") == einsim.passes(cascade, "m") == 3


def test_non_streamed_ranks_take_one_pass():
    cascade = library.get("attention-3pass")
    assert einsim.passes(cascade, "p") == 1
    assert einsim.passes(cascade, "e") == 1


USER_THREE_PASS = """
input Query[D, T], Key[D, S], Value[H, S]
Score[s, t] = Query[d, t] * Key[d, s]
Top[t] = max[s] Score[s, t]
Num[s, t] = exp(Score[s, t] - Top[t])
Den[t] = Num[s, t]
Prob[s, t] = Num[s, t] / Den[t]
Out[h, t] = Prob[s, t] * Value[h, s]
"""


def test_user_written_three_pass_with_renamed_tensors():
    cascade = einsim.parse(USER_THREE_PASS)
    assert einsim.passes(cascade, "s") == 3
    assert einsim.passes(cascade, "t") == 1
    assert einsim.buffer_growth(cascade, "s") == "O(S)"
    S, T = size_symbol("S"), size_symbol("T")
    assert sympy.simplify(einsim.footprint(cascade, "s").words - (S * T + T)) == 0


def test_user_written_deferred_division_is_two_passes():
    text = USER_THREE_PASS.replace("Prob[s, t] = Num[s, t] / Den[t]\n", "").replace(
        "Out[h, t] = Prob[s, t] * Value[h, s]",
        "NV[h, t] = Num[s, t] * Value[h, s]\nOut[h, t] = NV[h, t] / Den[t]")
    assert einsim.passes(einsim.parse(text), "s") == 2


def test_reading_the_final_iterate_starts_a_new_pass():
    text = library.entry("fusemax").text + (
        "A[m1, m0, p] = exp(BQK[m1, m0, p] - RM[M1, p]) / RD[M1, p]\n"
        "OUT[f, p] = A[m1, m0, p] * BV[f, m1, m0]\n")
    cascade = einsim.parse(text)
    assert einsim.passes(cascade, "m") == 2
    assert einsim.buffer_growth(cascade, "m") == "O(M)"


def test_chained_normalisations():
    cascade = einsim.parse("A[p] = X[m, p]\nB[m, p] = X[m, p] / A[p]\nC[p] = B[m, p]\n"
                           "D[m, p] = B[m, p] - C[p]")
    assert einsim.passes(cascade, "m") == 3
    assert einsim.passes(einsim.parse("A[m] = X[m]"), "m") == 1


def test_pass_assignment_of_three_pass():
    assignment = pass_assignment(library.get("attention-3pass"), "m")
    assert {name: info.pass_number for name, info in assignment.items() if info.traversal} == {
        "QK": 1, "GM": 1, "SN": 2, "SD": 2, "A": 3, "AV": 3}


@pytest.mark.parametrize("rank", ["m", "zz", "q"])
def test_unknown_rank(rank):
    cascade = einsim.parse(USER_THREE_PASS)
    with pytest.raises(EinsimError) as caught:
        einsim.passes(cascade, rank)
    assert isinstance(caught.value, UnknownRankError)
    assert repr(rank) in str(caught.value)
    with pytest.raises(UnknownRankError):
        einsim.footprint(cascade, rank)
    with pytest.raises(UnknownRankError):
        einsim.buffer_growth(cascade, rank)


def test_unknown_partition_part():
    with pytest.raises(UnknownRankError):
        einsim.passes(library.get("attention-3pass"), "m0")
    with pytest.raises(UnknownRankError):
        einsim.passes(library.get("gna-2d"), "m")


# ---------------------------------------------------------------------------- footprints


@pytest.mark.parametrize("name, growth", [
    ("attention-3pass", "O(M)"), ("attention-2pass", "O(M)"), ("attention-2pass-tiled", "O(M)"),
    ("attention-1pass", "O(1)"), ("fusemax", "O(1)"), ("causal-fusemax", "O(1)"),
    ("gna", "O(1)"), ("attention-scan", "O(1)"), ("attention-naive", "O(1)"),
])
def test_buffer_growth(name, growth):
    assert einsim.buffer_growth(library.get(name), "m") == growth


def test_fusemax_footprint():
    F, P, M0, E = (size_symbol(s) for s in ("F", "P", "M0", "E"))
    footprint = einsim.footprint(library.get("fusemax"), "m")
    assert footprint.passes == 1
    assert sympy.simplify(footprint.words - (F + 2) * P) == 0
    assert sympy.simplify(footprint.bytes(2) - 2 * (F + 2) * P) == 0
    assert sympy.simplify(footprint.bytes(4) - 4 * (F + 2) * P) == 0
    assert footprint.buffered == {}
    assert set(footprint.recurrence_state) == {"RM", "RD", "RNV"}
    assert E not in footprint.words.free_symbols


def test_fusemax_footprint_over_the_tile_rank():
    F, P, M0 = (size_symbol(s) for s in ("F", "P", "M0"))
    footprint = einsim.footprint(library.get("fusemax"), "m0")
    assert footprint.passes == 2
    assert "BQK" in footprint.buffered
    assert sympy.simplify(footprint.buffered["BQK"] - M0 * P) == 0
    assert size_symbol("M1") not in footprint.words.free_symbols
    assert einsim.buffer_growth(library.get("fusemax"), "m0") == "O(1)"


def test_three_pass_footprint_holds_the_score_matrix():
    M, P = size_symbol("M"), size_symbol("P")
    footprint = einsim.footprint(library.get("attention-3pass"), "m")
    assert footprint.passes == 3
    assert sympy.simplify(footprint.words - (M * P + P)) == 0


# ----------------------------------------------------------------------------- op counts


def test_fusemax_op_counts():
    E, F, M0, M1, P = (size_symbol(s) for s in ("E", "F", "M0", "M1", "P"))
    cascade = library.get("fusemax")
    assert einsim.op_counts(cascade.einsum("BQK")) == {"mac": E * M0 * M1 * P}
    assert einsim.op_counts(cascade.einsum("SLNV")) == {"mac": F * M0 * M1 * P}
    assert einsim.op_counts(cascade.einsum("LM")) == {"max": M0 * M1 * P}
    assert einsim.op_counts(cascade.einsum("SLN")) == {"exp": M0 * M1 * P, "add": M0 * M1 * P}
    assert einsim.op_counts(cascade.einsum("AV")) == {"div": F * P}
    assert einsim.op_counts(cascade.einsum("BK")) == {}
    counts = einsim.op_counts(cascade.einsum("RD"))
    assert sympy.simplify(counts["add"] - M1 * P) == 0


def test_op_counts_of_other_forms():
    M, P = size_symbol("M"), size_symbol("P")
    c = einsim.parse("A[p] = max[m] exp(X[m, p]) * 2\nB[m, p] = where(X[m, p] > 0, X[m, p], 0)")
    assert einsim.op_counts(c.einsum("A")) == {"exp": M * P, "mul": M * P, "max": M * P}
    assert einsim.op_counts(c.einsum("B")) == {"select": M * P, "compare": M * P}


# --------------------------------------------------------------------- the dependency graph


def test_fusemax_dependency_graph():
    graph = einsim.dependency_graph(library.get("fusemax"))
    assert isinstance(graph, nx.DiGraph)
    assert {"Q", "K", "V", "BQK", "RD", "SPD", "RNV", "AV"} <= set(graph.nodes)
    assert graph.nodes["Q"]["kind"] == "input"
    assert graph.nodes["AV"]["kind"] == "einsum"
    assert graph.edges["RD", "SPD"]["loop_carried"] is True
    assert graph.edges["RD", "SPD"]["final"] is False
    assert graph.edges["RNV", "AV"]["final"] is True
    assert graph.edges["RNV", "AV"]["loop_carried"] is False
    assert graph.edges["RD", "AV"]["final"] is True
    assert graph.edges["BQK", "LM"]["loop_carried"] is False
    assert graph.edges["BQK", "LM"]["final"] is False
    assert graph.has_edge("K", "BK") and not graph.has_edge("AV", "RNV")
    assert graph.nodes["RD"]["recurrence"].variable == "m1"
    # SLN reads RM at m1 + 1 (the iterate just written): not loop-carried
    assert graph.edges["RM", "SLN"]["loop_carried"] is False
    assert graph.edges["RM", "PRM"]["kinds"] == frozenset({"carried", "element"})


def test_three_pass_dependency_graph_is_acyclic():
    graph = einsim.dependency_graph(library.get("attention-3pass"))
    assert nx.is_directed_acyclic_graph(graph)
    assert not any(data["loop_carried"] or data["final"] for _, _, data in graph.edges(data=True))
    assert list(nx.topological_sort(graph.subgraph(["QK", "GM", "SN", "SD", "A", "AV"]))) == [
        "QK", "GM", "SN", "SD", "A", "AV"]
