"""The command line: JSON shapes, exit statuses and one-line errors."""

import json
import subprocess
import sys

import pytest

import einsim
from einsim.cli import main


def run_cli(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cascades_json_lists_every_library_cascade_with_its_passes(capsys):
    status, out, _ = run_cli(capsys, "cascades", "--json")
    assert status == 0
    rows = {row["name"]: row for row in json.loads(out)["cascades"]}
    assert set(rows) == set(einsim.library.names())
    assert rows["attention-3pass"]["passes_over_m"] == 3
    assert rows["fusemax"]["passes_over_m"] == 1
    assert all(row["description"] for row in rows.values())


@pytest.mark.parametrize("name, rank, passes, growth", [
    ("attention-3pass", "m", 3, "O(M)"), ("fusemax", "m", 1, "O(1)"), ("fusemax", "m0", 2, "O(1)"),
])
def test_passes_json(capsys, name, rank, passes, growth):
    status, out, _ = run_cli(capsys, "passes", name, "--rank", rank, "--json")
    data = json.loads(out)
    assert status == 0
    assert {"cascade", "rank", "passes", "buffer_bytes_expr", "buffer_growth"} <= set(data)
    assert (data["cascade"], data["rank"], data["passes"], data["buffer_growth"]) == \
        (name, rank, passes, growth)


def test_passes_buffer_expression_scales_with_word_bytes(capsys):
    _, two, _ = run_cli(capsys, "passes", "attention-3pass", "--json")
    _, four, _ = run_cli(capsys, "passes", "attention-3pass", "--word-bytes", "4", "--json")
    assert json.loads(two)["buffer_bytes_expr"] == "2*M*P + 2*P"
    assert json.loads(four)["buffer_bytes_expr"] == "4*M*P + 4*P"


def test_validate_all_json_is_within_1e9_relative(capsys):
    status, out, _ = run_cli(capsys, "validate", "--all", "--json")
    results = json.loads(out)["results"]
    assert status == 0
    assert {r["cascade"] for r in results} == set(einsim.library.names())
    for r in results:
        assert {"cascade", "ok", "max_abs_error", "dtype", "seconds"} <= set(r)
        assert r["ok"] and r["dtype"] == "float64" and r["max_rel_error"] <= 1e-9


def test_validate_file_with_reference_and_failure_status(capsys, tmp_path):
    good = tmp_path / "causal.einsum"
    good.write_text("QK[m,p] = Q[e,p]*K[e,m] where m <= p\nGM[p] = max[m] QK[m,p]\n"
                    "SN[m,p] = exp(QK[m,p] - GM[p])\nSD[p] = SN[m,p]\n"
                    "SNV[f,p] = SN[m,p]*V[f,m]\nAV[f,p] = SNV[f,p]/SD[p]\n")
    status, out, _ = run_cli(capsys, "validate", "--file", str(good), "--reference",
                             "causal-attention", "--seq-len", "40", "--json")
    assert status == 0 and json.loads(out)["results"][0]["ok"]
    status, out, _ = run_cli(capsys, "validate", "--file", str(good), "--json")
    assert status == 1 and not json.loads(out)["results"][0]["ok"]  # not plain attention


def test_validate_reports_float16_overflow(capsys):
    status, out, _ = run_cli(capsys, "validate", "attention-naive", "--dtype", "float16",
                             "--size", "E=64", "--json")
    result = json.loads(out)["results"][0]
    assert status == 1 and "SN" in result["overflow"]


def test_show_json_and_yaml_file(capsys, tmp_path):
    spec = tmp_path / "c.yaml"
    spec.write_text(einsim.to_yaml(einsim.library.get("fusemax")))
    status, out, _ = run_cli(capsys, "show", "--file", str(spec), "--json")
    data = json.loads(out)
    assert status == 0 and data["passes"]["m"] == 1 and data["passes"]["m0"] == 2
    assert data["outputs"] == ["AV"]


@pytest.mark.parametrize("args, fragment", [
    (["validate", "no-such-cascade"], "unknown cascade 'no-such-cascade'"),
    (["passes", "fusemax", "--rank", "q"], "rank 'q' does not occur"),
    (["validate", "--frobnicate"], "No such option"),
    (["show"], "give a library cascade NAME or --file F"),
    (["validate", "fusemax", "--dtype", "float7"], "unknown dtype 'float7'"),
    (["validate", "fusemax", "--size", "M0"], "expected NAME=INTEGER"),
])
def test_bad_input_is_one_line_with_status_2(capsys, args, fragment):
    status, _, err = run_cli(capsys, *args)
    assert status == 2
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err


def test_cascade_errors_name_file_line_and_column(capsys, tmp_path):
    bad = tmp_path / "bad.einsum"
    bad.write_text("A[m] = B[m]\nC[m] = exq(A[m])\n")
    status, _, err = run_cli(capsys, "show", "--file", str(bad))
    assert status == 2 and "line 2, column 8" in err and "exq" in err


def test_debug_shows_the_traceback(capsys):
    status, _, err = run_cli(capsys, "validate", "no-such-cascade", "--debug")
    assert status == 2 and "Traceback" in err


def test_version_and_module_entry_point():
    done = subprocess.run([sys.executable, "-m", "einsim.cli", "--version"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and einsim.__version__ in done.stdout
