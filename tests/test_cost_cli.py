"""The cost-model commands (evaluate, sweep, map), end-to-end scope and mapped execution."""

import csv
import json

import pytest
import yaml

from einsim.cli import main
from einsim.cost.front_door import evaluate, execute_mapping
from einsim.cost.tree import mapping_names
from einsim.errors import MappingError
from einsim.workloads import linear_layers, load_workload
from hw_models.spatial_array import load_spatial_array

REPORT_KEYS = {"cascade", "mapping", "hardware", "workload", "passes", "buffer_bytes",
               "buffer_capacity_bytes", "traffic_bytes", "compute_latency_s",
               "memory_latency_s", "latency_s", "utilization", "energy_j", "energy_breakdown_j",
               "area_mm2", "einsums"}


def run_cli(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_evaluate_without_arguments_compares_fusemax_with_flat(capsys):
    status, out, _ = run_cli(capsys, "evaluate")
    assert status == 0
    assert "flat" in out and "fusemax" in out and "faster than FLAT" in out


def test_evaluate_json_keys_and_einsum_rows(capsys):
    status, out, _ = run_cli(capsys, "evaluate", "--hw", "fusemax-cloud", "--mapping", "fusemax",
                             "--workload", "bert", "--seq-len", "16K", "--json")
    data = json.loads(out)
    assert status == 0 and REPORT_KEYS <= set(data)
    assert set(data["utilization"]) == {"array2d", "array1d"} and data["passes"] == 1
    assert {"name", "unit", "ops", "cycles", "stage"} <= set(data["einsums"][0])
    assert data["seq_len"] == 16384


def test_evaluate_param_overrides_hardware_and_mapping(capsys):
    _, out, _ = run_cli(capsys, "evaluate", "--mapping", "fusemax", "--param", "pe_dim=128",
                        "--param", "P1=4", "--json")
    data = json.loads(out)
    assert data["parameters"]["P1"] == 4
    assert data["area_mm2"] == pytest.approx(load_spatial_array("fusemax-cloud",
                                                                {"pe_dim": 128}).area_mm2)


def test_evaluate_plot_writes_the_figures(capsys, tmp_path):
    page = tmp_path / "report.html"
    status, _, _ = run_cli(capsys, "evaluate", "--plot", str(page))
    text = page.read_text()
    assert status == 0 and text.count("plotly-graph-div") == 5  # energy + 2 x (Einsums, Gantt)


def test_evaluate_check_runs_the_mapped_execution(capsys):
    status, out, _ = run_cli(capsys, "evaluate", "--mapping", "fusemax", "--check", "--json")
    assert status == 0 and json.loads(out)["mapped_execution"]["ok"]


@pytest.mark.parametrize("args, fragment", [
    (["evaluate", "--param", "foo=3"], "unknown parameter 'foo'"),
    (["evaluate", "--seq-len", "3Q"], "sequence length '3Q'"),
    (["evaluate", "--mapping", "fusemax", "--param", "P1=256"], "does not fit"),
    (["evaluate", "--mapping", "nope"], "mapping 'nope': unknown preset"),
    (["evaluate", "--hw", "tpu"], "hardware 'tpu': unknown preset"),
    (["evaluate", "--workload", "gpt9"], "gpt9"),
    (["evaluate", "--param", "pe_dim"], "expected name=value"),
    (["map", "--objective", "speed"], "unknown objective 'speed'"),
    (["evaluate", "--scope", "all"], "unknown scope 'all'"),
])
def test_bad_input_one_line_status_2(capsys, args, fragment):
    status, _, err = run_cli(capsys, *args)
    assert status == 2 and err.count("\n") == 1 and fragment in err


def test_sweep_json_csv_and_plot(capsys, tmp_path):
    out_csv, plot = tmp_path / "s.csv", tmp_path / "p.html"
    status, out, _ = run_cli(capsys, "sweep", "--mapping", "fusemax", "--seq-len", "64K,256K",
                             "--param", "pe_dim=64,128,256", "--out", str(out_csv),
                             "--plot", str(plot), "--json")
    data = json.loads(out)
    assert status == 0 and len(data["points"]) == 6
    assert [(p["seq_len"], p["pe_dim"]) for p in data["points"]] == \
        [(n, d) for n in (65536, 262144) for d in (64, 128, 256)]
    for p in data["points"]:
        assert {"pe_dim", "seq_len", "latency_s", "energy_j", "area_mm2", "utilization"} <= set(p)
    assert data["pareto"] and all(p in data["points"] for p in data["pareto"])
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 6 and "utilization_array2d" in rows[0]
    assert plot.read_text().count("plotly") > 0


def test_map_returns_best_and_pareto(capsys):
    status, out, _ = run_cli(capsys, "map", "--mapping", "flat", "--seq-len", "256K",
                             "--objective", "edp", "--json")
    data = json.loads(out)
    assert status == 0 and data["objective"] == "edp" and data["evaluated"] >= len(data["pareto"])
    best = data["best"]["latency_s"] * data["best"]["energy_j"]
    assert all(best <= row["edp_js"] * (1 + 1e-12) for row in data["pareto"])


def test_end_to_end_adds_the_linear_layers():
    attention = evaluate("fusemax", workload="bert", seq_len=4096)
    whole = evaluate("fusemax", workload="bert", seq_len=4096, scope="end-to-end")
    hardware = load_spatial_array("fusemax-cloud")
    macs = sum(layer.macs for layer in linear_layers(load_workload("bert", 4096)))
    gemm_seconds = macs / hardware.pe_count("array2d") / hardware.clock_hz
    assert whole.latency_s == pytest.approx(attention.latency_s + gemm_seconds, rel=1e-6)
    assert whole.energy_j > attention.energy_j and whole.scope == "end-to-end"
    assert {e.name for e in whole.einsums} >= {"q_proj", "ffn1", "ffn2"}


@pytest.mark.parametrize("name", mapping_names())
def test_every_mapping_tiling_executes_correctly(name):
    result = execute_mapping(name, seq_len=100, tile=32)
    assert result.ok and result.max_rel_error < 1e-9


def test_a_tree_with_too_few_passes_is_rejected(tmp_path):
    """The unfused tree with SN moved into GM's loop over m: SN would read the row maximum
    before GM's reduction over m completes (the 3-pass cascade needs GM in a pass of its
    own), so evaluating it is a one-line error naming that loop's node."""
    document = yaml.safe_load(open("mappings/unfused.yaml"))
    branches = document["tree"][1]["sequence"]
    gm = branches[1]                                   # loop p, keep GM, loop m, keep QK, ...
    gm[3] = {"keep": {"global_buffer": ["QK", "SN"]}}
    gm[-1] = {"sequence": [[{"run": "GM", "on": "array1d"}], [{"run": "SN", "on": "array1d"}]]}
    del branches[2]                                    # SN's own pass
    document["name"] = "unfused-one-pass"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(MappingError,
                       match=r"tree\[1\]\.sequence\[1\]\[2\]: SN reads the complete reduction of "
                             r"GM over m"):
        evaluate(str(path))
    # the untouched tree is legal
    assert evaluate("unfused", workload="bert", seq_len=4096).passes == 3


def test_packages_import_in_any_order():
    import subprocess
    import sys
    for order in ("mappings, hw_models, einsim", "hw_models, einsim, mappings",
                  "hw_models.spatial_array", "hw_models.gpu_sm", "einsim.kernels.decode",
                  "einsim.cost", "einsim.cost.evaluate", "einsim.search.mapper",
                  "einsim.search.tree_sweep", "mappings, einsim.search.parameters"):
        done = subprocess.run([sys.executable, "-c", f"import {order}"], capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, done.stderr
