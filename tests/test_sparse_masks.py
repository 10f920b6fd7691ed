"""``einsim sparse`` / :func:`einsim.sparse_bounds`: tile counts of any mask against brute force.

The oracle materializes the mask on small shapes: the Einsum's own ``where`` evaluated with the
language's comparison and predicate functions on a full (p, m) grid (partition parts taken from
m and p), then counted per (Q tile, KV tile).  Hypothesis draws the predicates (affine
comparisons under and / or / not, over m and p or over partition parts), the lengths (M != P),
and ragged tiles.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einsim
from einsim.cli import main
from einsim.gna import gna
from einsim.language import ir
from einsim.sparsity import SparseMaskError, sparse_bounds, sparse_tile_map
from einsim.sparsity.mask import (Feature, atom, cascade_mask, materialized_mask,
                                  materialized_tile_counts, resolve_sizes)
from einsim.sparsity.tiles import tile_counts
from hw_models.gpu_sm import load_gpu

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "masks"
MASKS = ["prefix_lm", "causal_sliding_window", "document", "dilated_window", "strided_window"]
SMALL_PARAMS = {"prefix_lm": {"PREFIX": 13}, "causal_sliding_window": {"W": 9},
                "document": {"DOC": 7}, "dilated_window": {"DIL": 3, "W": 4},
                "strided_window": {"STRIDE": 5}}
JSON_KEYS = {"cascade", "q_tile", "kv_tile", "seq_len", "kv_len", "batch", "heads",
             "dense_tiles", "visited_tiles", "partial_tiles", "worst_q_tile_kv_tiles",
             "attended_pairs", "tile_speedup_bound", "flop_speedup_bound"}
FAST = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------ oracle


def check_against_oracle(cascade: ir.Cascade, P: int, M: int, q_tile: int, kv_tile: int,
                         params: dict | None = None) -> None:
    result = sparse_tile_map(cascade, q_tile=q_tile, kv_tile=kv_tile, seq_len=P, kv_len=M,
                             sizes=params)
    sizes = resolve_sizes(cascade, M, P, q_tile, kv_tile, params)
    expected = materialized_tile_counts(materialized_mask(cascade, sizes), q_tile, kv_tile)
    bounds = result.bounds
    for key in ("visited_tiles", "partial_tiles", "worst_q_tile_kv_tiles", "attended_pairs",
                "dense_tiles"):
        assert getattr(bounds, key) == expected[key], (key, str(cascade))
    np.testing.assert_array_equal(result.grid, expected["grid"])
    assert bounds.flop_speedup_bound == (P * M / expected["attended_pairs"]
                                         if expected["attended_pairs"] else math.inf)


# ------------------------------------------------------------------------- random predicates

PLAIN = "input Q[E, P], K[E, M]\nQK[m, p] = Q[e, p] * K[e, m] where {}\n"
PARTS = ("partition M -> M1, M0 by T0\npartition P -> P1, P0 by T1\ninput Q[E, P], K[E, M]\n"
         "QK[m1, m0, p1, p0] = Q[e, p1*P0 + p0] * K[e, m1*M0 + m0] where {}\n")


@st.composite
def index(draw, names):
    terms = []
    for name in names:
        coefficient = draw(st.integers(-3, 3))
        if coefficient:
            terms.append(f"{coefficient}*{name}")
    terms.append(str(draw(st.integers(-12, 12))))
    return " + ".join(terms).replace("+ -", "- ")


def condition(names):
    comparison = st.builds(lambda a, op, b: f"{a} {op} {b}", index(names),
                           st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), index(names))
    return st.recursive(comparison, lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner)), max_leaves=5)


@FAST
@given(condition(["m", "p"]), st.integers(1, 48), st.integers(1, 48), st.integers(1, 13),
       st.integers(1, 13))
def test_random_affine_masks_match_brute_force(text, P, M, q_tile, kv_tile):
    check_against_oracle(einsim.parse(PLAIN.format(text)), P, M, q_tile, kv_tile)


@FAST
@given(condition(["m1", "m0", "p1", "p0", "m1*M0 + m0", "p1*P0 + p0"]), st.integers(1, 40),
       st.integers(1, 40), st.integers(1, 9), st.integers(1, 9), st.integers(1, 12),
       st.integers(1, 12))
def test_random_masks_over_partition_parts_match_brute_force(text, P, M, t0, t1, q_tile,
                                                             kv_tile):
    """Modulo parts (m0 = m mod T0) make the mask periodic in m, including periods longer
    than the KV tile."""
    check_against_oracle(einsim.parse(PARTS.format(text)), P, M, q_tile, kv_tile,
                         {"T0": t0, "T1": t1})


@st.composite
def separable_comparison(draw):
    """A comparison whose key side is monotone (m or m1) or periodic (m0) only."""
    key = draw(st.sampled_from(["m1*M0 + m0", "m1", "m0", ""]))
    query = draw(index(["p1", "p0", "p1*P0 + p0"]))
    coefficient = draw(st.integers(-3, 3))
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
    left = f"{coefficient}*{key}" if key and coefficient else "0"
    if key == "m1*M0 + m0" and coefficient:
        left = f"{coefficient}*m1*M0 + {coefficient}*m0".replace("+ -", "- ")
    return f"{left} {op} {query}"


SEPARABLE = st.recursive(separable_comparison(), lambda inner: st.one_of(
    st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
    st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
    st.builds(lambda a: f"not ({a})", inner)), max_leaves=5)


@FAST
@given(SEPARABLE, st.integers(1, 40), st.integers(1, 40), st.integers(1, 6), st.integers(1, 9),
       st.integers(1, 12), st.integers(0, 8))
def test_random_separable_periodic_masks_match_brute_force(text, P, M, t0, t1, q_tile,
                                                           extra):
    """Comparisons on m (or m1) and on m0 = m mod T0 alone, KV tile at least T0: the
    separable sweep (m-pieces x x-pieces)."""
    check_against_oracle(einsim.parse(PARTS.format(text)), P, M, q_tile, t0 + extra,
                         {"T0": t0, "T1": t1})


# ------------------------------------------------------------------- example and library masks


@pytest.mark.parametrize("name", MASKS)
@pytest.mark.parametrize("P, M, q_tile, kv_tile", [(40, 40, 8, 8), (37, 45, 6, 4),
                                                   (23, 50, 16, 3)])
def test_example_masks_match_brute_force(name, P, M, q_tile, kv_tile):
    cascade = einsim.library.load(str(EXAMPLES / f"{name}.einsum"))
    check_against_oracle(cascade, P, M, q_tile, kv_tile, SMALL_PARAMS[name])


@pytest.mark.parametrize("name", MASKS)
def test_example_cascades_compute_masked_attention(name):
    """Each example is a real cascade: executed, it equals softmax attention under its mask."""
    cascade = einsim.library.load(str(EXAMPLES / f"{name}.einsum"))
    P = M = 17
    params = SMALL_PARAMS[name]
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(4, P)), rng.normal(size=(4, M)), rng.normal(size=(3, M))
    out = einsim.execute(cascade, {"Q": q, "K": k, "V": v}, sizes={"M": M, "P": P, **params})
    mask = materialized_mask(cascade, resolve_sizes(cascade, M, P, 1, 1, params))
    scores = np.where(mask, q.T @ k, -np.inf)
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected = ((weights / weights.sum(axis=1, keepdims=True)) @ v.T).T
    np.testing.assert_allclose(out["AV"], expected, atol=1e-12)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 48), st.integers(1, 48), st.integers(1, 10), st.integers(1, 4),
       st.data())
def test_neighborhood_masks_match_brute_force(P, M, window, dilation, data):
    stride = data.draw(st.integers(1, window))
    causal = data.draw(st.integers(0, 1))
    q_tile, kv_tile = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))
    check_against_oracle(einsim.library.get("gna"), P, M, q_tile, kv_tile,
                         {"W": window, "S": stride, "D": dilation, "C": causal})


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 200), st.data())
def test_gna_cascade_counts_equal_einsim_gna_static_tiling(length, data):
    """Without dilation (NATTEN permutes dilated tokens, the cascade does not) the cascade's
    counts are einsim.gna's; gna also masks the padding of a ragged last KV tile."""
    window = data.draw(st.integers(1, length))
    stride = data.draw(st.integers(1, window))
    causal = data.draw(st.booleans())
    q_tile, kv_tile = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 40))
    cascade = einsim.library.get("gna")
    bounds = sparse_bounds(cascade, q_tile=q_tile, kv_tile=kv_tile, seq_len=length,
                           sizes={"W": window, "S": stride, "D": 1, "C": int(causal)})
    natten = gna((length,), window, q_tile, kv_tile, stride=stride, causal=causal)
    assert bounds.visited_tiles == natten.visited_kv_tiles
    assert bounds.worst_q_tile_kv_tiles == natten.worst_kv_tiles
    assert bounds.flop_speedup_bound == pytest.approx(natten.flop_upper_bound)
    assert bounds.dense_tiles == natten.q_tiles * natten.dense_kv_tiles
    mask = cascade_mask(cascade, resolve_sizes(cascade, length, length, q_tile, kv_tile,
                                               {"W": window, "S": stride, "D": 1,
                                                "C": int(causal)}))
    counts = tile_counts(mask, length, length, q_tile, kv_tile)
    padded = int(counts.last_full.sum()) if length % kv_tile else 0
    assert natten.masked_tiles == bounds.partial_tiles + padded


@pytest.mark.parametrize("name", ["causal-attention-3pass", "causal-attention-1pass",
                                  "causal-fusemax"])
def test_causal_library_cascades(name):
    bounds = sparse_bounds(name, q_tile=128, kv_tile=64, seq_len=4096)
    assert bounds.visited_tiles == sum(2 * (i + 1) for i in range(32))
    assert bounds.partial_tiles == 64 and bounds.worst_q_tile_kv_tiles == 64  # 2 per Q tile
    assert bounds.attended_pairs == 4096 * 4097 // 2


def test_no_mask_visits_every_tile_with_bound_one():
    bounds = sparse_bounds("fusemax", q_tile=100, kv_tile=70, seq_len=1000, kv_len=333)
    assert bounds.visited_tiles == bounds.dense_tiles == 10 * 5
    assert bounds.partial_tiles == 0 and bounds.mask is None
    assert bounds.tile_speedup_bound == bounds.flop_speedup_bound == 1.0


def test_million_tokens_closed_forms():
    """Large cases against closed forms (a materialized mask would need 2^40 points)."""
    n = 1 << 20
    document = sparse_bounds(str(EXAMPLES / "document.einsum"), q_tile=128, kv_tile=128,
                             seq_len=n, sizes={"DOC": 2048})
    assert (document.visited_tiles, document.partial_tiles) == (8192 * 16, 0)
    assert document.attended_pairs == n * 2048 and document.tile_speedup_bound == 512
    window = sparse_bounds(str(EXAMPLES / "causal_sliding_window.einsum"), q_tile=128,
                           kv_tile=128, seq_len=n, sizes={"W": 512})
    # Q tile i visits KV tiles i-4 .. i; the first four Q tiles fewer
    assert window.visited_tiles == 8192 * 5 - (4 + 3 + 2 + 1)
    assert window.partial_tiles == 2 * 8192 - 4 and window.worst_q_tile_kv_tiles == 5
    assert window.attended_pairs == sum(min(p + 1, 512) for p in range(512)) + (n - 512) * 512


def test_fully_masked_rows_and_empty_masks():
    empty = einsim.parse(PLAIN.format("m < 0"))
    bounds = sparse_bounds(empty, q_tile=8, kv_tile=8, seq_len=64)
    assert bounds.visited_tiles == 0 and bounds.attended_pairs == 0
    assert bounds.tile_speedup_bound == math.inf == bounds.flop_speedup_bound


# ------------------------------------------------------------------------------ GPU runtime


def test_predicted_runtime_charges_partial_tiles():
    dense = sparse_bounds("attention-1pass", q_tile=128, kv_tile=128, seq_len="16K", hw="h100")
    assert dense.predicted_speedup == pytest.approx(1.0)
    assert dense.predicted_runtime_s == pytest.approx(dense.dense_runtime_s)
    causal = sparse_bounds("causal-attention-1pass", q_tile=128, kv_tile=128, seq_len="16K",
                           hw="h100")
    assert causal.dense_runtime_s == pytest.approx(dense.dense_runtime_s)
    assert 1.5 < causal.predicted_speedup < causal.tile_speedup_bound
    window = sparse_bounds(str(EXAMPLES / "causal_sliding_window.einsum"), q_tile=128,
                           kv_tile=128, seq_len="16K", hw="a100", sizes={"W": 1000})
    assert 1 < window.predicted_speedup < window.tile_speedup_bound
    assert set(window.to_dict()) == JSON_KEYS | {"mask", "q_tiles", "kv_tiles", "hw",
                                                 "predicted_runtime_s", "dense_runtime_s",
                                                 "predicted_speedup"}


def test_partial_tiles_pay_element_masking(tmp_path):
    """Causal masks m <= p and m1*M0 <= p visit the same 8,256 of 16,384 tiles at 16K with
    128 x 128 tiles; only the first leaves the 128 diagonal tiles partial.  Hand calculation of
    the difference on H100 (BERT: head dim 64): a partial tile's 128·128 scores pay 2
    operations (a compare, a select) on 128 FP32 lanes; per Q tile (one CTA) the GEMMs take
    4·64 / (4096·0.75) tensor-core cycles per score over its visited tiles, plus the CTA's
    calibrated overhead.  Summed over the 128 Q tiles of a head, the masking adds
    128·(128·128·2/128) cycles to 8256·128·128·(4·64/3072) + 128·overhead."""
    text = einsim.library.entry("attention-1pass").text
    scores = "S[m1, m0, p] = Q[e, p] * K[e, m1*M0 + m0]"
    runtimes = {}
    for condition in ("m1*M0 + m0 <= p", "m1*M0 <= p"):
        path = tmp_path / f"mask{len(condition)}.einsum"
        path.write_text(text.replace(scores, f"{scores} where {condition}"))
        result = sparse_bounds(str(path), q_tile=128, kv_tile=128, seq_len="16K", hw="h100")
        assert result.visited_tiles == 8256
        runtimes[condition] = result.predicted_runtime_s, result.partial_tiles
    (masked, partial), (clean, none) = runtimes.values()
    assert (partial, none) == (128, 0)
    h100 = load_gpu("h100")
    tensor = 4 * 64 / (h100.tensor_rate("fp16") * h100.calibration.tensor_efficiency)
    lanes = h100.fp32_per_clock_per_sm
    added = 128 * 128 * 128 * 2 / lanes
    base = 8256 * 128 * 128 * tensor + 128 * h100.calibration.cta_overhead_cycles
    assert clean < masked
    assert (masked - clean) / clean == pytest.approx(added / base, rel=0.02)


def test_masks_on_partition_digits_are_priced_with_the_analysis_counts():
    """A document mask (md == pd) cannot be written over the kernel's own KV tiles, so the
    kernel carries a stand-in of the same structure and the sparse analysis supplies the
    counts.  On a mask both ways can price (a causal sliding window), the two agree: the
    engine's own counts and the analysis' are two independent counters."""
    from einsim.kernels.tree_runs import run_tree
    from einsim.sparsity.kernel import masked_attention

    document = sparse_bounds(str(EXAMPLES / "document.einsum"), q_tile=128, kv_tile=128,
                             seq_len="16K", hw="h100")
    assert 1 < document.predicted_speedup < document.tile_speedup_bound
    with pytest.raises(SparseMaskError, match="uses md apart from the index"):
        masked_attention(einsim.library.load(str(EXAMPLES / "document.einsum")))
    window = einsim.library.load(str(EXAMPLES / "causal_sliding_window.einsum"))
    sizes = resolve_sizes(window, 16384, 16384, 128, 128, {})
    counts = tile_counts(cascade_mask(window, sizes), 16384, 16384, 128, 128)
    attended = sparse_bounds(window, q_tile=128, kv_tile=128, seq_len="16K").attended_pairs
    supplied = {"S": (attended / 16384 ** 2, counts.visited.sum() / 128 ** 2,
                      counts.partial.sum() / 128 ** 2, counts.visited.max() / 128)}
    shape = dict(sizes={"M": 16384, "P": 16384, "E": 64, "F": 64}, copies=768,
                 parameters={"TQ": 128, "M0": 128}, cascade_params={"W": sizes["W"]})
    h100 = load_gpu("h100")
    own = run_tree(h100, "flash-attention-3", cascade=masked_attention(window), **shape)
    given = run_tree(h100, "flash-attention-3", cascade=masked_attention(window, stand_in=True),
                     mask_counts=supplied, **shape)
    assert given["latency_s"] == pytest.approx(own["latency_s"], rel=1e-9)
    # a stand-in costs what its mask costs per score
    from einsim.cost.masks import mask_operations
    from einsim.sparsity.kernel import _stand_in

    for path in sorted(EXAMPLES.glob("*.einsum")):
        condition = next(e.condition for e in einsim.library.load(str(path)).einsums
                         if e.condition is not None)
        assert mask_operations(_stand_in(condition)) == mask_operations(condition), path.name


# ------------------------------------------------------------------------------ API and errors


def test_api_is_exported_lazily():
    assert einsim.sparse_bounds is sparse_bounds
    cascade = einsim.library.get("causal-attention-3pass")
    assert einsim.sparse_bounds(cascade, q_tile=4, kv_tile=4, seq_len=16).visited_tiles == 10


@pytest.mark.parametrize("q_tile", [0, -4, 1.5, True, "8", None, math.inf])
def test_bad_tiles_are_refused(q_tile):
    with pytest.raises(SparseMaskError, match="q_tile"):
        sparse_bounds("causal-fusemax", q_tile=q_tile, kv_tile=8, seq_len=64)


@pytest.mark.parametrize("name, message", [
    ("gna-2d", "does not iterate the key index m"),
    ("linear-attention", "not all of m"),
])
def test_masks_not_over_m_and_p_are_refused(name, message):
    with pytest.raises(SparseMaskError, match=message):
        sparse_bounds(name, q_tile=4, kv_tile=4, seq_len=16)


@pytest.mark.parametrize("text, message", [
    ("input Q[E, P], K[E, M]\nQK[m, p, e] = Q[e, p] * K[e, m] where e <= p\n", "uses e"),
    ("input Q[E, P], K[E, M]\nQK[m, p] = Q[e, p] * K[e, m] where within(m, p, p)\n",
     "must not depend"),
    ("input Q[E, P], K[E, M]\nQK[m, p] = Q[e, p] * K[e, m] where m <= p\n"
     "R[m, p] = QK[m, p] where m < p\n", "different masks"),
    ("input Q[E, P], K[E, M]\nQK[m, p] = Q[e, p] * K[e, m] where m <= p + W\n", "size W"),
    ("input Q[E, P], K[E, M]\nQK[m, p] = Q[e, p] * K[e, m] "
     "where neighborhood(p, m + 1, M, 3)\n", "key argument"),
])
def test_unsupported_masks_say_why(text, message):
    with pytest.raises(SparseMaskError, match=message):
        sparse_bounds(einsim.parse(text), q_tile=4, kv_tile=4, seq_len=16)


def test_sizes_are_checked_where_the_mask_uses_them():
    scaled = einsim.parse("param SCALE = 0.125\nparam W = 4\ninput Q[E, P], K[E, M]\n"
                          "QK[m, p] = Q[e, p] * K[e, m] * SCALE where p - m < W and m <= p\n")
    assert sparse_bounds(scaled, q_tile=4, kv_tile=4, seq_len=16).attended_pairs == \
        sum(min(p + 1, 4) for p in range(16))  # a fractional parameter outside the mask is fine
    with pytest.raises(SparseMaskError, match="size W = 2.5"):
        sparse_bounds(scaled, q_tile=4, kv_tile=4, seq_len=16, sizes={"W": 2.5})
    with pytest.raises(SparseMaskError, match="no parameter or tile size X"):
        sparse_bounds(scaled, q_tile=4, kv_tile=4, seq_len=16, sizes={"X": 2})
    with pytest.raises(SparseMaskError, match="workload"):
        sparse_bounds(scaled, q_tile=4, kv_tile=4, seq_len=16, sizes={"M": 2})


def test_an_atom_may_hold_one_monotone_key_feature():
    with pytest.raises(SparseMaskError, match="several key terms"):
        atom([(1, Feature("m")), (1, Feature("m", 4))], 0, "<=", 100, 100, "test")


# ------------------------------------------------------------------------------------- CLI


def run(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_json_keys_and_values(capsys):
    status, out, err = run(capsys, "sparse", "--file", str(EXAMPLES / "prefix_lm.einsum"),
                           "--seq-len", "2K", "--q-tile", "128", "--kv-tile", "64",
                           "--size", "PREFIX=300", "--json")
    assert status == 0, err
    data = json.loads(out)
    assert JSON_KEYS <= set(data) and "predicted_runtime_s" not in data
    expected = sparse_bounds(str(EXAMPLES / "prefix_lm.einsum"), q_tile=128, kv_tile=64,
                             seq_len=2048, sizes={"PREFIX": 300}).to_dict()
    assert data == json.loads(json.dumps(expected))
    assert data["dense_tiles"] == 16 * 32 and data["batch"] == 64 and data["heads"] == 12


def test_cli_table_hw_and_plot(capsys, tmp_path):
    plot = tmp_path / "tiles.html"
    status, out, err = run(capsys, "sparse", "causal-fusemax", "--seq-len", "1024",
                           "--q-tile", "64", "--kv-tile", "64", "--hw", "h100",
                           "--plot", str(plot))
    assert status == 0, err
    assert "visited_tiles" in out and "predicted_speedup" in out
    text = plot.read_text()
    assert "plotly" in text.lower() and "partial" in text


@pytest.mark.parametrize("args, message", [
    (["nope"], "unknown cascade"),
    (["gna", "--q-tile", "0"], "--q-tile"),
    (["gna", "--kv-tile", "1.5"], "--kv-tile"),
    (["gna", "--kv-tile", "x"], "--kv-tile"),
    (["gna", "--size", "W"], "--size"),
    (["gna", "--size", "W=0"], "window"),
    (["gna", "--size", "NOPE=3"], "NOPE"),
    (["gna-2d"], "key index"),
    (["gna", "--hw", "no-such-gpu"], "no-such-gpu"),
    (["gna", "--seq-len", "-3"], "seq_len"),
    (["gna", "--plot", "/no/such/folder/x.html"], "does not exist"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, args, message):
    full = ["sparse", *args]
    for option, value in (("--q-tile", "16"), ("--kv-tile", "16")):
        if option not in full:
            full += [option, value]
    status, out, err = run(capsys, *full)
    assert status == 2
    assert message in err and err.count("\n") == 1
