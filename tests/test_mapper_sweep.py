"""Tests of the mapper (einsim.mapper) and of sweeps (einsim.sweeps)."""

from __future__ import annotations

import csv
import itertools

import pytest

from einsim.cost import evaluate_mapping
from einsim.errors import EinsimError
from einsim.mapper import OBJECTIVES, SearchResult, pareto_front, search
from einsim.mapping import MappingError, load_mapping_spec
from einsim.sweeps import SweepResult, pareto, sweep, write_csv
from einsim.workload import load_workload
from hw_models.spatial_array import load_spatial_array
from mappings import strategy as load_strategy

MiB = 2 ** 20
KEYS = {"latency": lambda r: r.latency_s, "energy": lambda r: r.energy_j,
        "edp": lambda r: r.latency_s * r.energy_j}


def candidates(spec, hw, workload):
    """Every point of the strategy's space: (parameters, report or None if infeasible)."""
    strategy = load_strategy(spec.strategy)
    space = strategy.parameter_space(spec, hw, workload)
    out = []
    for values in itertools.product(*space.values()):
        parameters = dict(zip(space, values))
        try:
            report = evaluate_mapping(strategy.build(spec, hw, workload, parameters), hw,
                                      workload)
        except MappingError:
            report = None
        out.append((parameters, report))
    return out


# Cases where the objectives disagree (found by enumerating the spaces): FLAT on a 16 MiB buffer
# at 64K (spilling wins latency, a small row block wins energy), and FLAT on a slow DRAM at 256K.
CASES = [
    ("flat", "bert", 65536, {"global_buffer_bytes": 16 * MiB}),
    ("flat", "bert", 262144, {"dram_bandwidth": 50 * 2 ** 30}),
    ("fusemax", "bert", 1 << 20, {}),
    ("fusemax-cascade", "xlm", 65536, {}),
]


@pytest.mark.parametrize("mapping, workload, seq_len, overrides", CASES)
def test_search_best_is_minimal_for_each_objective(mapping, workload, seq_len, overrides):
    spec = load_mapping_spec(mapping)
    hw = load_spatial_array(spec.hardware, overrides)
    problem = load_workload(workload, seq_len)
    everything = candidates(spec, hw, problem)
    feasible = [r for _, r in everything if r is not None]
    assert feasible
    for objective, key in KEYS.items():
        result = search(spec, hw, problem, objective)
        assert isinstance(result, SearchResult)
        assert result.evaluated == len(everything)
        assert result.infeasible == len(everything) - len(feasible)
        assert len(result.reasons) == result.infeasible
        lowest = min(key(r) for r in feasible)
        assert key(result.best) == pytest.approx(lowest, rel=1e-12), objective
        # ties on the objective go to the lower energy
        tied = [r for r in feasible if key(r) <= lowest * (1 + 1e-12)]
        assert result.best.energy_j == pytest.approx(min(r.energy_j for r in tied), rel=1e-12)


def test_objectives_choose_different_points_when_they_disagree():
    spec = load_mapping_spec("flat")
    hw = load_spatial_array("flat-cloud", {"global_buffer_bytes": 16 * MiB})
    problem = load_workload("bert", 65536)
    fast = search(spec, hw, problem, "latency").best
    frugal = search(spec, hw, problem, "energy").best
    assert fast.latency_s < frugal.latency_s
    assert frugal.energy_j < fast.energy_j
    assert fast.parameters["rows"] != frugal.parameters["rows"]

    hw = load_spatial_array("flat-cloud", {"dram_bandwidth": 50 * 2 ** 30})
    problem = load_workload("bert", 262144)
    fast = search(spec, hw, problem, "latency").best
    edp = search(spec, hw, problem, "edp").best
    assert fast.parameters["rows"] != edp.parameters["rows"]
    assert edp.latency_s * edp.energy_j < fast.latency_s * fast.energy_j


def test_search_counts_infeasible_points():
    spec = load_mapping_spec("fusemax")
    hw = load_spatial_array("fusemax-cloud")
    result = search(spec, hw, load_workload("bert", 65536))
    # P1 ranges over the 9 divisors of 256; P1 = 256 needs 17,104,896 bytes > 16 MiB
    assert result.evaluated == 9 and result.infeasible == 1
    assert "global buffer" in result.reasons[0]
    assert result.best.parameters["P1"] == 128


def test_search_with_fixed_parameter():
    spec = load_mapping_spec("fusemax")
    hw = load_spatial_array("fusemax-cloud")
    result = search(spec, hw, load_workload("bert", 65536), fixed={"P1": 4})
    assert result.evaluated == 1
    assert result.best.parameters == {"P1": 4, "P2": 64}


def test_search_errors():
    spec = load_mapping_spec("fusemax")
    hw = load_spatial_array("fusemax-cloud")
    problem = load_workload("bert", 16384)
    with pytest.raises(EinsimError, match="throughput"):
        search(spec, hw, problem, "throughput")
    with pytest.raises(EinsimError, match="rows"):
        search(spec, hw, problem, fixed={"rows": 4})
    tiny = load_spatial_array("fusemax-cloud", {"global_buffer_bytes": 1024})
    with pytest.raises(MappingError, match="global buffer"):
        search(spec, tiny, problem)
    assert set(OBJECTIVES) == {"latency", "energy", "edp"}


def _dominated(p, others, x, y):
    return any(x(q) <= x(p) and y(q) <= y(p) and (x(q) < x(p) or y(q) < y(p)) for q in others)


@pytest.mark.parametrize("mapping, workload, seq_len, overrides", CASES[:2])
def test_pareto_front_is_non_dominated_and_holds_the_extremes(mapping, workload, seq_len,
                                                                overrides):
    spec = load_mapping_spec(mapping)
    hw = load_spatial_array(spec.hardware, overrides)
    problem = load_workload(workload, seq_len)
    feasible = [r for _, r in candidates(spec, hw, problem) if r is not None]
    x, y = (lambda r: r.latency_s), (lambda r: r.energy_j)
    front = pareto_front(feasible)
    assert front
    for report in front:
        assert not _dominated(report, feasible, x, y)
    # every non-dominated point (up to duplicates) is on the front
    expected = {(x(r), y(r)) for r in feasible if not _dominated(r, feasible, x, y)}
    assert {(x(r), y(r)) for r in front} == expected
    assert [x(r) for r in front] == sorted(x(r) for r in front)
    result = search(spec, hw, problem, "latency")
    assert [(x(r), y(r)) for r in result.pareto] == [(x(r), y(r)) for r in front]
    best_latency = search(spec, hw, problem, "latency").best
    best_energy = search(spec, hw, problem, "energy").best
    points = [(x(r), y(r)) for r in front]
    assert (x(best_latency), y(best_latency)) in points
    assert (x(best_energy), y(best_energy)) in points
    assert len(front) >= 2  # the two objectives disagree in these cases


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
            assert "global buffer" in point["error"]
        else:
            assert point["feasible"] is True and point["error"] == ""
            assert point["latency_s"] > 0 and point["energy_j"] > 0
            assert set(point["utilization"]) == {"array2d", "array1d"}
            assert "P1" in point and "P2" in point  # chosen by the mapper
    # a point agrees with a direct hand check: pe_dim 128 has a quarter of the PEs of 256
    feasible = {(p["seq_len"], p["pe_dim"]): p for p in result.points if p["feasible"]}
    for s in seq_lens:
        ratio = feasible[(s, 128)]["latency_s"] / feasible[(s, 256)]["latency_s"]
        assert ratio == pytest.approx(4.0, rel=0.05)


def test_sweep_mapping_parameter_and_pareto():
    result = sweep("fusemax", "bert", [65536], {"P1": [1, 2, 4, 128, 256]})
    assert [p["P1"] for p in result.points] == [1, 2, 4, 128, 256]
    assert [p["feasible"] for p in result.points] == [True, True, True, True, False]
    feasible = [p for p in result.points if p["feasible"]]
    assert [p["P2"] for p in feasible] == [256, 128, 64, 2]
    metrics = ("latency_s", "energy_j")
    front = pareto(result.points, metrics)
    assert front
    for p in front:
        assert p["feasible"]
        assert not any(all(q[m] <= p[m] for m in metrics) and any(q[m] < p[m] for m in metrics)
                       for q in feasible)
    # P1 = 128 re-reads K and V least, so it has the least energy and (with 2..128) the
    # least latency: it dominates the rest
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
