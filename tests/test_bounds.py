"""Traffic–capacity lower bounds (``einsim.bounds``, ``einsim bound``): real behaviour.

* no mapping the engine evaluates, nor any tree the mapper finds, moves less DRAM traffic than
  the bound at the on-chip bytes it occupies (global buffer + every register file);
* an exhaustive search over a tree's tile sizes, counted by the independent loop-nest
  simulator, comes within a stated factor of the bound at every capacity (and never below);
* the bound never increases with capacity and is compulsory traffic once everything fits;
* the command line: JSON keys, the plot, one-line errors with status 2.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

import einsim
from einsim.bounds import problem_of, register_bytes, traffic_bound
from einsim.bounds import formulas
from einsim.bounds.masks import profile
from einsim.bounds.structure import analyse
from einsim.cli import main
from einsim.errors import EinsimError

ROOT = Path(__file__).resolve().parents[1]
MAPPABLE = ["attention-3pass", "attention-2pass", "attention-1pass", "fusemax",
            "causal-attention-3pass", "causal-attention-2pass", "causal-attention-1pass",
            "causal-fusemax", "attention-naive", "gna"]
"""Library cascades the tree mapper maps (the others have no tree template yet)."""

FUSEMAX_ORACLE_FACTOR = 6.0
"""Exhaustive FuseMax-tree tiles (M0, P0, P1) at M=P=8, E=F=2 on a 2x2 array: best traffic at
every capacity within this factor of the bound (measured 4.5)."""

FLAT_ORACLE_FACTOR = 16.0
"""Exhaustive FLAT-tree tiles (row block, row buffer on chip or in DRAM, 1x1 to 4x4 array) at
M=P=8, E=F=2: within this factor (measured 12.5: the tree cannot keep K on chip while
streaming V, which the bound allows)."""


def _at(curve, on_chip_bytes: float) -> float:
    return float(curve.at(on_chip_bytes)[0])


# ------------------------------------------------------------------ shape of the curve


@pytest.mark.parametrize("name", einsim.library.names())
def test_monotone_and_compulsory_once_everything_fits(name):
    sizes = {"MX": 16, "MY": 16, "PX": 16, "PY": 16, "MZ": 4, "PZ": 4}
    for seq_len in (256, 4096):
        curve = traffic_bound(name, "bert", seq_len, sizes=sizes, points=40)
        bounds = [p.traffic_lower_bound_bytes for p in curve.points]
        assert all(b >= a * (1 - 1e-12) for a, b in zip(bounds[1:], bounds[:-1])), name
        assert all(b >= curve.compulsory_bytes * (1 - 1e-12) for b in bounds)
        # past the fit capacity, and with every tensor on chip, it is compulsory traffic
        assert _at(curve, curve.fit_bytes) == pytest.approx(curve.compulsory_bytes)
        assert curve.points[-1].regime.startswith("compulsory")
        assert _at(curve, 1e15) == pytest.approx(curve.compulsory_bytes)
        grid = np.geomspace(2, 1e12, 200)
        dense = curve.at(grid)
        assert np.all(np.diff(dense) <= dense[:-1] * 1e-12)


def test_compulsory_is_inputs_read_once_and_outputs_written_once():
    from einsim.workloads import load_workload

    w = load_workload("bert", 4096)
    words = w.P * w.E + w.M * w.E + w.M * w.F + w.P * w.F
    for name in ("attention-3pass", "attention-2pass", "attention-1pass", "fusemax",
                 "causal-fusemax"):
        curve = traffic_bound(name, "bert", 4096)
        assert curve.compulsory_bytes == words * 2 * w.batch * w.heads
        assert curve.copies == w.batch * w.heads and curve.word_bytes == 2


def test_pass_count_orders_the_curves_and_names_the_regimes():
    curves = {n: traffic_bound(n, "bert", 4096, points=60)
              for n in ("attention-3pass", "attention-2pass", "attention-1pass")}
    grid = np.geomspace(64, 2 ** 22, 300)
    three, two, one = (curves[n].at(grid) for n in curves)
    assert np.all(three >= two * (1 - 1e-12)) and np.all(two >= one * (1 - 1e-12))
    assert np.any(three > two * 1.2) and np.any(two > one * 2)
    regimes = {n: {p.regime for p in c.points} for n, c in curves.items()}
    assert {"pass spill", "pass re-read"} <= regimes["attention-3pass"]
    assert "pass re-read" in regimes["attention-2pass"]
    assert {"contraction N^2 d/sqrt(S)", "contraction N^2 d^2/S", "compulsory"} <= \
        regimes["attention-1pass"]
    assert curves["attention-3pass"].passes == 3 and curves["attention-1pass"].passes == 1


def test_regime_formulas_have_their_stated_constants():
    pairs, d = 1e12, 64.0
    # FlashAttention regime: (pairs d^2 - S^2) / (S + 1.5 d^2), about pairs d^2 / S
    s = np.array([1e5, 1e6, 1e7])
    assert np.all(formulas.contraction_large(pairs, d, s) >= (pairs * d * d - s * s)
                  / (s + 1.5 * d * d) * (1 - 1e-12))
    assert np.all(formulas.contraction_large(pairs, d, s[1:]) >= 0.95 * pairs * d * d / s[1:])
    # Saha & Ye regime: pairs d / sqrt(3 S + S^2 / d^2) - S, about pairs d / sqrt(3 S)
    s = np.array([4.0, 16.0, 256.0])
    assert np.all(formulas.contraction_small(pairs, d, s) >= (pairs * d / np.sqrt(
        3 * s + s * s / d / d) - s) * (1 - 1e-12))
    assert np.all(formulas.contraction_small(pairs, d, s[:2]) >= 0.99 * pairs * d
                  / np.sqrt(3 * s[:2]))
    # a fiber that cannot stay on chip round-trips: 2 (words - fibers * S)
    assert formulas.fiber_spill(1000.0, 10.0, 40.0) == 2 * (1000 - 400)
    assert formulas.fiber_spill(1000.0, 10.0, 400.0) == 0


def test_bound_is_generic_over_tensor_names():
    text = einsim.library.entry("attention-3pass").text
    renamed = text
    for old, new in (("QK", "LOGIT"), ("GM", "TOP"), ("SN", "NUM"), ("SD", "DEN"),
                     ("AV", "OUT"), ("Q[", "X["), ("K[", "Y["), ("V[", "Z["),
                     ("A[", "PROB[")):
        renamed = renamed.replace(old, new)
    other = einsim.parse(renamed, name="renamed")
    assert {t.name for t in analyse(other).inputs} == {"X", "Y", "Z"}
    a = traffic_bound("attention-3pass", "bert", 2048)
    b = traffic_bound(other, "bert", 2048)
    assert [p.traffic_lower_bound_bytes for p in a.points] == \
        [p.traffic_lower_bound_bytes for p in b.points]
    assert [p.regime for p in a.points] == [p.regime for p in b.points]


def test_causal_mask_counts_pairs_per_query():
    cascade = einsim.library.get("causal-attention-3pass")
    contraction = analyse(cascade).contraction
    mask = profile(cascade, contraction.condition, contraction.key_ranks,
                   contraction.query_ranks, {"M": 100, "P": 60})
    assert (mask.pairs, mask.lmin, mask.lmax) == (sum(p + 1 for p in range(60)), 1, 60)
    assert mask.keys_used == 60 and mask.queries_used == 60   # keys past the last query: unread
    dense = traffic_bound("attention-3pass", "bert", 4096).at(2 ** 14)
    causal = traffic_bound("causal-attention-3pass", "bert", 4096).at(2 ** 14)
    assert causal[0] < dense[0]


def _brute_mask(condition, keys: int, queries: int):
    """(pairs, lmin, lmax, keys used, queries used) of a mask, materialized by the
    language's condition evaluator (the executor's)."""
    from einsim.language.functions import condition_mask

    cascade = einsim.parse("input Q[E, P], K[E, M]\n"
                           f"S[m, p] = Q[e, p] * K[e, m] where {condition}\n"
                           "C[p] = S[m, p]\n")
    grids = {"m": np.arange(keys)[:, None], "p": np.arange(queries)[None, :]}
    truth = np.broadcast_to(condition_mask(cascade.producers["S"].condition,
                                           {"M": keys, "P": queries}, grids), (keys, queries))
    counts = truth.sum(axis=0)
    if not truth.any():
        return cascade, (0.0,) * 5
    return cascade, tuple(float(x) for x in (truth.sum(), counts.min(), counts.max(),
                                             truth.any(axis=1).sum(),
                                             np.count_nonzero(counts)))


@pytest.mark.parametrize("condition", [
    "m <= p", "m < p - 2", "m >= p", "m == p", "m != p", "p - m < 3 and m <= p",
    "M - 1 - m <= p", "p + m >= 7", "2 - p > 0 and m < 5", "m != p or m < 3",
    "not (m > p)", "within(m, p, 2)", "within(p, m + 1, 3) and m <= p", "m + 1 == 0",
    "neighborhood(p, m, 11, 5)", "neighborhood(p, m, 11, 4, 2, 2, 1)",
    "neighborhood(p, m, 11, 3, 1, 3) and m <= p"])
def test_mask_profile_equals_the_materialized_mask(condition):
    cascade, expected = _brute_mask(condition, 11, 11)
    contraction = analyse(cascade).contraction
    mask = profile(cascade, contraction.condition, contraction.key_ranks,
                   contraction.query_ranks, {"M": 11, "P": 11})
    assert (mask.pairs, mask.lmin, mask.lmax, mask.keys_used, mask.queries_used) == expected


def test_cascade_parameters_win_over_workload_sizes():
    """GNA's dilation D is its own parameter, not the workload's model width D."""
    curve = traffic_bound("gna", "bert", 4096)
    assert (curve.problem.pairs, curve.problem.lmin, curve.problem.lmax) == (7 * 4096, 7, 7)
    wider = traffic_bound("gna", "bert", 4096, sizes={"W": 33, "D": 2})
    assert wider.problem.lmax == 33


def test_cascades_outside_the_patterns_fall_back_to_compulsory_and_say_so():
    curve = traffic_bound("linear-attention", "bert", 4096)
    assert all(p.regime.startswith("compulsory (fallback:") for p in curve.points)
    assert all(p.traffic_lower_bound_bytes == curve.compulsory_bytes for p in curve.points)
    assert curve.notes


# ------------------------------------------------------------ soundness against the engine

_GRIDS = {"unfused": {},
          "flat": {"rows": [1, 4, 16, 64, 256], "row_buffer": ["global_buffer", "dram"]},
          "fusemax-cascade": {"P1": [1, 2, 4, 16]},
          "fusemax-arch": {"P1": [1, 2, 4, 16]},
          "fusemax": {"P1": [1, 2, 4, 16], "M0": [4, 16]}}


@pytest.mark.parametrize("mapping", list(_GRIDS))
def test_no_library_mapping_beats_the_bound(mapping):
    """Every tile choice of the library trees, at several buffer sizes, array sizes (the
    register files count as on-chip capacity) and sequence lengths."""
    from einsim.cost.tree import load_mapping_tree

    tree = load_mapping_tree(mapping)
    grid = _GRIDS[mapping]
    checked = above_compulsory = 0
    for seq_len, pe_dim in itertools.product((256, 1024), (4, 16)):
        curve = traffic_bound(tree.cascade, "bert", seq_len, hw=tree.hardware)
        registers = register_bytes(tree.hardware, pe_dim)
        for combo in itertools.product(*grid.values()):
            for capacity in (2 ** 12, 2 ** 15, 2 ** 18, 2 ** 21, 2 ** 24):
                parameters = {**dict(zip(grid, combo)), "global_buffer_bytes": capacity,
                              "pe_dim": pe_dim}
                try:
                    report = einsim.evaluate(mapping, workload="bert", seq_len=seq_len,
                                             parameters=parameters)
                except EinsimError:
                    continue  # does not fit
                bound = _at(curve, report.buffer_bytes + registers)
                assert report.traffic_bytes >= bound * (1 - 1e-9), (mapping, parameters,
                                                                    report.traffic_bytes, bound)
                checked += 1
                above_compulsory += bound > curve.compulsory_bytes * 1.001
    assert checked >= 8 and (above_compulsory or mapping.startswith("fusemax-"))


@pytest.mark.parametrize("name", MAPPABLE)
def test_no_tree_the_mapper_finds_beats_the_bound(name):
    from einsim.search.mapper import map_cascade

    cases = [(512, 16, 2 ** 14), (512, 16, 2 ** 20)]
    if not name.startswith(("causal", "gna", "attention-naive")):
        cases += [(256, 4, 2 ** 13), (256, 4, 2 ** 17)]
    for seq_len, pe_dim, capacity in cases:
        curve = traffic_bound(name, "bert", seq_len)
        registers = register_bytes("fusemax-cloud", pe_dim)
        found = map_cascade(None, name, None, "bert", seq_len,
                            parameters={"global_buffer_bytes": capacity, "pe_dim": pe_dim})
        for report in [found.result.best] + list(found.result.pareto):
            bound = _at(curve, report.buffer_bytes + registers)
            assert report.traffic_bytes >= bound * (1 - 1e-9), (name, seq_len, capacity)


def test_plotted_mapping_points_sit_on_or_above_their_curves():
    from einsim.plots.bounds import mapping_points

    points = mapping_points(("fusemax", "flat"), "bert", 1024, [2 ** 16, 2 ** 19, 2 ** 22])
    assert {p.mapping for p in points} == {"fusemax", "flat"}
    for point in points:
        curve = traffic_bound(point.cascade, "bert", 1024, hw=point.hardware)
        assert point.register_bytes > 0
        assert point.traffic_bytes >= _at(curve, point.on_chip_bytes) * (1 - 1e-9)


# --------------------------------------------------- tightness: the loop-nest oracle


def _oracle_points(document: dict, cascade, sizes: dict, pe_dims, parameter_grid):
    """(on-chip words, DRAM words) of every tile choice, counted by the simulator."""
    from loop_nest_oracle import simulate

    from einsim.cost.engine import CompiledMapping, Problem
    from einsim.cost.hierarchy import spatial_array_hierarchy
    from einsim.cost.tree import mapping_from_document
    from hw_models.spatial_array import load_spatial_array

    tree = mapping_from_document(document)
    found = []
    for pe_dim in pe_dims:
        hierarchy = spatial_array_hierarchy(load_spatial_array(document["hardware"],
                                                               {"pe_dim": pe_dim}))
        compiled = CompiledMapping(cascade, tree, hierarchy)
        for parameters in parameter_grid:
            values = compiled.values(Problem("oracle", dict(sizes), 1, sizes["P"]), parameters)
            result = simulate(cascade, tree, hierarchy, values)
            traffic = sum(v for (level, _), v in result.reads.items() if level == "dram") \
                + sum(v for (level, _), v in result.writes.items() if level == "dram")
            on_chip = result.occupancy.get("global_buffer", 0) \
                + result.occupancy.get("array2d.registers", 0) * pe_dim * pe_dim \
                + result.occupancy.get("array1d.registers", 0) * pe_dim
            found.append((on_chip, traffic))
    return found


def _best_against_bound(points, problem) -> float:
    """Largest (best traffic within S) / bound(S) over the capacities the tiles reach;
    asserts the bound holds at each."""
    worst = 0.0
    for capacity in sorted({s for s, _ in points}):
        best = min(t for s, t in points if s <= capacity)
        bound = float(problem.words(capacity)[0][0])
        assert best >= bound, (capacity, best, bound)
        worst = max(worst, best / bound)
    return worst


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def test_exhaustive_fusemax_tiles_come_within_the_stated_factor():
    sizes = {"M": 8, "P": 8, "E": 2, "F": 2}
    document = yaml.safe_load((ROOT / "mappings" / "fusemax.yaml").read_text())
    cascade = einsim.library.get("fusemax")
    grid = [{"M0": m0, "P0": p0, "P1": p1} for m0 in _divisors(8) for p0 in _divisors(8)
            for p1 in _divisors(8 // p0)]
    points = _oracle_points(document, cascade, sizes, (2,), grid)
    worst = _best_against_bound(points, problem_of(cascade, sizes))
    assert 1.0 <= worst <= FUSEMAX_ORACLE_FACTOR


def test_exhaustive_flat_tiles_come_within_the_stated_factor():
    sizes = {"M": 8, "P": 8, "E": 2, "F": 2}
    base = yaml.safe_load((ROOT / "mappings" / "flat.yaml").read_text())
    cascade = einsim.library.get("attention-3pass")
    points = []
    for placement in ("global_buffer", "dram"):
        document = copy.deepcopy(base)
        document["tree"] = yaml.safe_load(yaml.safe_dump(base["tree"]).replace(
            "$row_buffer", placement))
        document["parameters"] = {"rows": base["parameters"]["rows"]}
        points += _oracle_points(document, cascade, sizes, (1, 2, 4),
                                 [{"rows": r} for r in (1, 2, 4, 8)])
    worst = _best_against_bound(points, problem_of(cascade, sizes))
    assert 1.0 <= worst <= FLAT_ORACLE_FACTOR


# ------------------------------------------------------------------------ command line


def _run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_keys(capsys):
    code, out, _ = _run(["bound", "attention-3pass", "--workload", "bert", "--seq-len", "4K",
                         "--json", "--points", "12"], capsys)
    assert code == 0
    data = json.loads(out)
    assert {"cascade", "compulsory_bytes", "points"} <= set(data)
    assert data["cascade"] == "attention-3pass"
    assert len(data["points"]) >= 12
    for point in data["points"]:
        assert set(point) == {"buffer_bytes", "traffic_lower_bound_bytes", "regime"}
    code, out, _ = _run(["bound", "fusemax", "-n", "1M", "--buffer-bytes", "16MiB", "--json"],
                        capsys)
    data = json.loads(out)
    assert code == 0 and len(data["points"]) == 1
    assert data["points"][0]["buffer_bytes"] == 16 * 2 ** 20
    assert data["points"][0]["traffic_lower_bound_bytes"] > data["compulsory_bytes"]


def test_cli_table_and_file(tmp_path, capsys):
    cascade = tmp_path / "mine.einsum"
    cascade.write_text(einsim.library.entry("attention-2pass").text)
    code, out, _ = _run(["bound", "--file", str(cascade), "-n", "2048", "--points", "6"],
                        capsys)
    assert code == 0 and "mine" in out and "pass re-read" in out


def test_cli_plot(tmp_path, capsys):
    target = tmp_path / "ski.html"
    code, out, err = _run(["bound", "fusemax", "-n", "256", "--plot", str(target), "--json"],
                          capsys)
    assert code == 0 and "wrote" in err
    html = target.read_text()
    assert "plotly" in html.lower() and "attention-3pass bound" in html \
        and "fusemax bound" in html and "flat (attention-3pass)" in html
    assert json.loads(out)["cascade"] == "fusemax"


@pytest.mark.parametrize("args", [
    ["bound"],
    ["bound", "fusemax", "--file", "x.einsum"],
    ["bound", "no-such-cascade"],
    ["bound", "fusemax", "--buffer-bytes", "12 parsecs"],
    ["bound", "fusemax", "--buffer-bytes", "-5"],
    ["bound", "fusemax", "--hw", "h100"],
    ["bound", "fusemax", "--seq-len", "0"],
    ["bound", "fusemax", "--workload", "no-such-workload"],
    ["bound", "fusemax", "--size", "MX"],
    ["bound", "fusemax", "--points", "1"],
    ["bound", "fusemax", "--plot", "/no/such/folder/x.html"],
    ["bound", "gna-2d"],
])
def test_cli_bad_input_exits_2_with_one_line(args, capsys):
    code, _, err = _run(args, capsys)
    assert code == 2, err
    assert err.startswith("einsim: error:") and err.count("\n") == 1


@pytest.mark.parametrize("args,regime", [
    (["causal-fusemax", "--size", "M=1000000000000", "--size", "P=1000000000000"],
     "compulsory (fallback:"),
    (["fusemax", "--size", "P=0"], "compulsory"),
    (["attention-3pass", "--size", "E=0"], "compulsory")])
def test_cli_extreme_sizes_answer_without_crashing(args, regime, capsys):
    code, out, err = _run(["bound", *args, "--points", "3", "--json"], capsys)
    assert code == 0, err
    assert all(p["regime"].startswith(regime) for p in json.loads(out)["points"])


def test_python_api_is_exported_lazily():
    assert einsim.traffic_bound is traffic_bound
    curve = einsim.traffic_bound("fusemax", seq_len=4096, buffer_bytes=2 ** 20)
    assert len(curve.points) == 1 and math.isfinite(curve.points[0].traffic_lower_bound_bytes)
