"""Tests of the mapper over a loop tree's free parameters (einsim.search.parameters.search,
einsim.cost.evaluate.evaluate_tree, einsim.search.mapper.map_cascade) and of sweeps
(einsim.search.sweeps)."""

from __future__ import annotations

import csv
import itertools

import pytest
import yaml

from einsim.cost.evaluate import compile_for, concrete_trees, evaluate_tree, problem_of
from einsim.cost.tree import load_mapping_tree, mapping_from_document
from einsim.errors import EinsimError
from einsim.errors import MappingError
from einsim.search.mapper import map_cascade
from einsim.search.parameters import OBJECTIVES, SearchResult, divisors, search
from einsim.search.sweeps import SweepResult, pareto, sweep, write_csv
from einsim.workloads import load_workload

MiB = 2 ** 20
KEYS = {"latency": lambda r: r.latency_s, "energy": lambda r: r.energy_j,
        "edp": lambda r: r.latency_s * r.energy_j}


def domain(parameter, sizes: dict) -> list[int]:
    """A free parameter's candidates, by hand from the mapping file's domain."""
    spec = parameter.domain
    if spec.divisors_of is not None:
        assert spec.divisors_of == "ceil(P / P0)"
        n = -(-sizes["P"] // sizes["P0"])
        return [d for d in range(1, n + 1) if n % d == 0]
    assert spec.powers_of_two_up_to == "P"
    return [2 ** k for k in range(sizes["P"].bit_length()) if 2 ** k <= sizes["P"]]


def concrete(mapping: str, workload: str, seq_len: int, overrides: dict):
    """Each concrete tree (one per level choice): (choice, compiled tree, problem, candidates),
    the candidates being every point of its space as (parameters, report or None)."""
    tree = load_mapping_tree(mapping)
    problem = problem_of(load_workload(workload, seq_len))
    pe = overrides.get("pe_dim", 256)
    out = []
    for choice, one in concrete_trees(tree, {})[0]:
        engine, _ = compile_for(one)
        sizes = {"P": seq_len, "P0": pe}
        free = {n: domain(p, sizes) for n, p in one.parameters.items() if p.domain is not None}
        points = []
        for values in itertools.product(*free.values()):
            parameters = dict(zip(free, values))
            try:
                report = engine.report(problem, parameters, overrides)
            except MappingError:
                report = None
            points.append((parameters, report))
        out.append((choice, engine, problem, points))
    return out


# Cases where the objectives disagree (found by enumerating the spaces): FLAT on an 8 MiB
# buffer at 64K (spilling the row buffer to DRAM wins latency, a small on-chip row block wins
# energy), and FLAT on a fast DRAM at 256K (latency, energy and EDP each pick another point).
CASES = [
    ("flat", "bert", 65536, {"global_buffer_bytes": 8 * MiB}),
    ("flat", "bert", 262144, {"dram_bandwidth": 1600 * 2 ** 30}),
    ("fusemax", "bert", 1 << 20, {}),
    ("fusemax-cascade", "xlm", 65536, {}),
]


@pytest.mark.parametrize("mapping, workload, seq_len, overrides", CASES)
def test_search_best_is_minimal_for_each_objective(mapping, workload, seq_len, overrides):
    trees = concrete(mapping, workload, seq_len, overrides)
    everything = [(choice, parameters, report) for choice, _, _, points in trees
                  for parameters, report in points]
    feasible = [r for _, _, r in everything if r is not None]
    assert feasible
    for objective, key in KEYS.items():
        for choice, engine, problem, points in trees:  # each tree's own search
            mine = [r for _, r in points if r is not None]
            if not mine:
                with pytest.raises(MappingError):
                    search(engine, problem, objective, {}, overrides)
                continue
            result = search(engine, problem, objective, {}, overrides)
            assert isinstance(result, SearchResult)
            assert result.evaluated == len(points)
            assert result.infeasible == len(points) - len(mine)
            lowest = min(key(r) for r in mine)
            assert key(result.best) == pytest.approx(lowest, rel=1e-12), (objective, choice)
            # ties on the objective go to the lower energy
            tied = [r for r in mine if key(r) <= lowest * (1 + 1e-12)]
            assert result.best.energy_j == pytest.approx(min(r.energy_j for r in tied),
                                                         rel=1e-12)
        # over every level choice
        best = evaluate_tree(mapping, workload=workload, seq_len=seq_len,
                             parameters=overrides, objective=objective).best
        assert key(best) == pytest.approx(min(key(r) for r in feasible), rel=1e-12), objective


def test_objectives_choose_different_points_when_they_disagree():
    def best(objective, seq_len, overrides):
        return evaluate_tree("flat", workload="bert", seq_len=seq_len, parameters=overrides,
                             objective=objective).best

    fast = best("latency", 65536, {"global_buffer_bytes": 8 * MiB})
    frugal = best("energy", 65536, {"global_buffer_bytes": 8 * MiB})
    assert fast.latency_s < frugal.latency_s
    assert frugal.energy_j < fast.energy_j
    assert fast.parameters["row_buffer"] == "dram"
    assert frugal.parameters["row_buffer"] == "global_buffer"

    overrides = {"dram_bandwidth": 1600 * 2 ** 30}
    fast, frugal, edp = (best(o, 262144, overrides) for o in ("latency", "energy", "edp"))
    assert len({(r.parameters["rows"], r.parameters["row_buffer"])
                for r in (fast, frugal, edp)}) == 3
    assert edp.latency_s * edp.energy_j < fast.latency_s * fast.energy_j
    assert edp.latency_s * edp.energy_j < frugal.latency_s * frugal.energy_j


def fusemax_buffer_bytes(E: int, F: int, p1: int, pe: int = 256) -> int:
    """Q, RM, RD, RNV for pe * P1 queries, a K and a V tile, and the 2D-to-1D values of a
    tile (LM, SLD, PRM, SPD: 1 per query; SLNV, SPNV: F per query), 2 bytes a word."""
    return ((E + 2 + F) * pe * p1 + pe * (E + F) + pe * (4 + 2 * F)) * 2


def test_search_counts_infeasible_points():
    tree = load_mapping_tree("fusemax")
    engine, _ = compile_for(tree)
    problem = problem_of(load_workload("bert", 65536))
    result = search(engine, problem)
    # P1 ranges over the 9 divisors of 256; only P1 = 256 overflows the 16 MiB buffer
    assert [d for d in divisors(256) if fusemax_buffer_bytes(64, 64, d) > 16 * MiB] == [256]
    assert result.evaluated == 9 and result.infeasible == 1
    assert result.best.parameters["P1"] == 128


def test_search_with_fixed_parameter():
    engine, _ = compile_for(load_mapping_tree("fusemax"))
    problem = problem_of(load_workload("bert", 65536))
    result = search(engine, problem, fixed={"P1": 4})
    assert result.evaluated == 1 and result.infeasible == 0
    assert result.best.parameters == {"M0": 256, "P0": 256, "P1": 4}
    # through the front door too: a fixed parameter is not searched
    assert evaluate_tree("fusemax", workload="bert", seq_len=65536,
                         parameters={"P1": 4}).evaluated == 1


def test_search_errors():
    engine, _ = compile_for(load_mapping_tree("fusemax"))
    problem = problem_of(load_workload("bert", 16384))
    with pytest.raises(EinsimError, match="throughput"):
        search(engine, problem, "throughput")
    with pytest.raises(EinsimError, match="rows"):
        search(engine, problem, fixed={"rows": 4})
    with pytest.raises(MappingError, match="does not fit.*global_buffer"):
        search(engine, problem, overrides={"global_buffer_bytes": 1024})
    with pytest.raises(EinsimError, match="rows"):
        evaluate_tree("fusemax", workload="bert", seq_len=16384, parameters={"rows": 4})
    with pytest.raises(EinsimError, match="row_buffer.*sram"):
        evaluate_tree("flat", workload="bert", seq_len=16384,
                      parameters={"row_buffer": "sram"})
    assert set(OBJECTIVES) == {"latency", "energy", "edp"}


def _dominated(p, others, x, y):
    return any(x(q) <= x(p) and y(q) <= y(p) and (x(q) < x(p) or y(q) < y(p)) for q in others)


@pytest.mark.parametrize("mapping, workload, seq_len, overrides", CASES[:2])
def test_pareto_front_is_non_dominated_and_holds_the_extremes(mapping, workload, seq_len,
                                                                overrides):
    x, y = (lambda r: r.latency_s), (lambda r: r.energy_j)
    everything, fronts = [], []
    for choice, engine, problem, points in concrete(mapping, workload, seq_len, overrides):
        feasible = [r for _, r in points if r is not None]
        everything += feasible
        result = search(engine, problem, "latency", {}, overrides)
        front = result.pareto
        assert front
        for report in front:
            assert not _dominated(report, feasible, x, y)
        # every non-dominated point (up to duplicates) is on the front, in latency order
        expected = {(x(r), y(r)) for r in feasible if not _dominated(r, feasible, x, y)}
        assert {(x(r), y(r)) for r in front} == expected
        assert [x(r) for r in front] == sorted(x(r) for r in front)
        best_latency = result.best
        best_energy = search(engine, problem, "energy", {}, overrides).best
        points_on_front = [(x(r), y(r)) for r in front]
        assert (x(best_latency), y(best_latency)) in points_on_front
        assert (x(best_energy), y(best_energy)) in points_on_front
        fronts += front
    # over both row_buffer choices: the trees' fronts merged are the whole space's front,
    # which holds each objective's best over every level choice
    merged = {(x(r), y(r)) for r in fronts if not _dominated(r, fronts, x, y)}
    assert merged == {(x(r), y(r)) for r in everything if not _dominated(r, everything, x, y)}
    for objective in ("latency", "energy"):
        best = evaluate_tree(mapping, workload=workload, seq_len=seq_len, parameters=overrides,
                             objective=objective).best
        assert (x(best), y(best)) in merged
    assert len(merged) >= 2  # the two objectives disagree in these cases


def test_map_cascade_returns_the_best_tree_as_yaml():
    found = map_cascade("flat", None, None, "bert", 65536, "latency",
                        {"global_buffer_bytes": 8 * MiB})
    best = evaluate_tree("flat", workload="bert", seq_len=65536,
                         parameters={"global_buffer_bytes": 8 * MiB}).best
    assert found.result.best.latency_s == best.latency_s
    assert found.trees == 2  # one concrete tree per row_buffer choice
    assert found.points == found.result.evaluated and found.seconds > 0
    document = yaml.safe_load(found.mapping_yaml)
    assert document["parameters"]["rows"]["default"] == best.parameters["rows"]
    assert "row_buffer" not in document["parameters"]  # the chosen level is in the tree
    again = evaluate_tree(mapping_from_document(document), workload="bert", seq_len=65536,
                          parameters={"global_buffer_bytes": 8 * MiB,
                                      "rows": best.parameters["rows"]}).best
    assert again.latency_s == best.latency_s and again.energy_j == best.energy_j


# --- sweeps ----------------------------------------------------------------------------------

def test_sweep_cartesian_order_and_infeasible_points():
    seq_lens = [4096, 16384]
    parameters = {"pe_dim": [128, 256], "global_buffer_bytes": [1024, 16 * MiB]}
    result = sweep("fusemax", "bert", seq_lens, parameters)
    assert isinstance(result, SweepResult)
    assert len(result.points) == len(seq_lens) * 2 * 2
    expected_order = [(s, pe, gb) for s in seq_lens for pe in [128, 256]
                      for gb in [1024, 16 * MiB]]
    assert [(p["seq_len"], p["pe_dim"], p["global_buffer_bytes"])
            for p in result.points] == expected_order
    for point in result.points:
        assert point["mapping"] == "fusemax"
        if point["global_buffer_bytes"] == 1024:
            assert point["feasible"] is False
            assert "does not fit" in point["error"] and "global_buffer" in point["error"]
        else:
            assert point["feasible"] is True and point["error"] == ""
            assert point["latency_s"] > 0 and point["energy_j"] > 0
            assert set(point["utilization"]) == {"array2d", "array1d"}
            assert {"M0", "P0", "P1"} <= set(point)  # chosen by the mapper
            assert point["M0"] == point["P0"] == point["pe_dim"]
    # points agree with a direct hand check (pe_dim 128 has a quarter of the PEs of 256)
    feasible = {(p["seq_len"], p["pe_dim"]): p for p in result.points if p["feasible"]}
    for s in seq_lens:
        for pe in (128, 256):
            assert feasible[(s, pe)]["latency_s"] == pytest.approx(
                fusemax_latency_s(s, pe), rel=1e-12)
        ratio = feasible[(s, 128)]["latency_s"] / feasible[(s, 256)]["latency_s"]
        assert ratio == pytest.approx(4.0, rel=0.05)


def fusemax_latency_s(N: int, pe: int, E: int = 64, copies: int = 64 * 12) -> float:
    """FuseMax on fusemax-cloud, BERT, by hand: per pe x pe tile the 2D array takes
    E + 1 + 7 + 1 + F cycles (BQK, LM, SLN, SLD, SLNV) and the 1D array 2F + 10 (RM, PRM, SPD,
    RD, SPNV, RNV), pipelined across tiles (the slower array, plus the faster one once); then
    AV, the longer of its F N / pe divisions and its F N words written to DRAM."""
    F, clock, bandwidth = E, 940e6, 400 * 2 ** 30
    tiles = (-(-N // pe)) ** 2
    two_d, one_d = 2 * E + 9, 2 * F + 10
    main = (max(two_d, one_d) * tiles + min(two_d, one_d)) / clock
    return (main + max(F * -(-N // pe) / clock, F * N * 2 / bandwidth)) * copies


def test_sweep_mapping_parameter_and_pareto():
    result = sweep("fusemax", "bert", [65536], {"P1": [1, 2, 4, 128, 256]})
    assert [p["P1"] for p in result.points] == [1, 2, 4, 128, 256]
    assert [p["feasible"] for p in result.points] == [True, True, True, True, False]
    feasible = [p for p in result.points if p["feasible"]]
    # K and V are read once per block of P1 x 256 queries: 256 / P1 times
    E = F = 64
    N = 65536
    for p in feasible:
        words = E * N + F * N + (N // 256 // p["P1"]) * (E + F) * N
        assert p["traffic_bytes"] == pytest.approx(words * 2 * 64 * 12, rel=1e-12)
    metrics = ("latency_s", "energy_j")
    front = pareto(result.points, metrics)
    assert front
    for p in front:
        assert p["feasible"]
        assert not any(all(q[m] <= p[m] for m in metrics) and any(q[m] < p[m] for m in metrics)
                       for q in feasible)
    # P1 does not change the compute; P1 = 128 re-reads K and V least, so it has the least
    # energy and (with 2..128, not memory-bound) the least latency: it dominates the rest
    assert [p["P1"] for p in front] == [128]
    assert [p["P1"] for p in result.pareto] == [128]


def test_sweep_pareto_over_hardware_keeps_trade_offs():
    result = sweep("fusemax", "bert", [16384], {"pe_dim": [64, 128, 256]})
    # more PEs: faster but larger; nothing dominates anything on (latency, energy, area)
    assert len(result.pareto) == 3
    by_pe = {p["pe_dim"]: p for p in result.points}
    assert by_pe[64]["latency_s"] > by_pe[128]["latency_s"] > by_pe[256]["latency_s"]
    assert by_pe[64]["area_mm2"] < by_pe[128]["area_mm2"] < by_pe[256]["area_mm2"]


def test_write_csv(tmp_path):
    result = sweep("fusemax", "bert", [4096, 8192], {"global_buffer_bytes": [1024, 16 * MiB]})
    path = tmp_path / "sweep.csv"
    write_csv(result.points, path)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = reader.fieldnames
    assert "utilization_array2d" in header and "utilization_array1d" in header
    assert "utilization" not in header
    assert {"seq_len", "global_buffer_bytes", "feasible", "latency_s", "energy_j"} <= set(header)
    assert len(rows) == len(result.points) == 4
    for row, point in zip(rows, result.points):
        assert int(row["seq_len"]) == point["seq_len"]
        assert row["feasible"] == str(point["feasible"])
        if point["feasible"]:
            assert float(row["utilization_array2d"]) == pytest.approx(
                point["utilization"]["array2d"])
            assert float(row["latency_s"]) == pytest.approx(point["latency_s"])
        else:
            assert row["utilization_array2d"] == ""


@pytest.mark.parametrize("name", ["bogus", "rows", "pe_dimension"])
def test_sweep_unknown_parameter_raises_naming_it(name):
    with pytest.raises(EinsimError, match=name):
        sweep("fusemax", "bert", [4096], {name: [1, 2]})


def test_sweep_unknown_dotted_hardware_field_raises_naming_it():
    """A misspelt dotted hardware path is an unknown parameter, not an infeasible point."""
    with pytest.raises(EinsimError, match="bandwith"):
        sweep("fusemax", "bert", [4096], {"dram.bandwith_bytes_per_s": [1e9]})


def test_sweep_with_dotted_hardware_field():
    result = sweep("fusemax", "bert", [4096], {"dram.energy_pj_per_access": [249.6, 499.2]})
    low, high = result.points
    assert low["feasible"] and high["feasible"]
    # doubling the DRAM access energy adds exactly the DRAM energy once more
    dram_j = low["traffic_bytes"] / 8 * 249.6e-12
    assert high["energy_j"] - low["energy_j"] == pytest.approx(dram_j, rel=1e-6)


def test_sweep_other_workloads(tmp_path):
    result = sweep("flat", "xlm", [4096, 16384])
    assert [p["seq_len"] for p in result.points] == [4096, 16384]
    assert all(p["feasible"] and p["workload"] == "XLM" for p in result.points)
    path = tmp_path / "tiny.yaml"
    path.write_text("name: tiny\nbatch: 1\nheads: 2\nhead_dim: 64\nmodel_dim: 128\n"
                    "ffn_dim: 256\nseq_len: 1024\n")
    result = sweep("fusemax", str(path), [1024, 2048], {"pe_dim": [64]})
    assert all(p["feasible"] and p["workload"] == "tiny" for p in result.points)
    assert [p["seq_len"] for p in result.points] == [1024, 2048]
