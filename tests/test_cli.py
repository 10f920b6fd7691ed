"""The command line: JSON shapes, exit statuses and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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


# ------------------------------------------------------------------ start-up, help and JSON

def test_short_commands_do_not_import_the_heavy_modules():
    """``--version`` and ``cascades`` stay fast: no sympy, networkx, lark, pydantic or scipy
    (the start-up time itself is measured in benchmarks/run.py, not here)."""
    probe = ("import sys\nfrom einsim.cli import main\n"
             "for argv in (['--version'], ['cascades'], ['cascades', '--json']):\n"
             "    assert main(argv) == 0\n"
             "heavy = {'sympy', 'networkx', 'lark', 'pydantic', 'scipy', 'plotly', 'pandas'}\n"
             "print(sorted(heavy & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_import_einsim_is_lazy_and_complete():
    probe = ("import sys, einsim\nassert 'sympy' not in sys.modules and 'networkx' not in "
             "sys.modules\nnames = [getattr(einsim, n) for n in einsim.__all__]\n"
             "import einsim.analysis.passes, einsim.gna\n"
             "assert callable(einsim.passes) and callable(einsim.gna)\nprint('ok')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_cascade_listing_is_current():
    from einsim.cli import cascade_listing

    assert cascade_listing.is_current(), "run: python -m einsim.cli.cascade_listing --write"
    assert cascade_listing.listing() == cascade_listing.computed()


@pytest.mark.parametrize("argv", [["cascades", "--help"], ["validate", "--help"],
                                  ["report", "decode", "--help"], ["--help"]])
def test_help_shows_flags_without_a_type(capsys, argv):
    status, out, _ = run_cli(capsys, *argv)
    assert status == 0 and "--help" in out and "<bool>" not in out


def test_json_writer_never_writes_non_finite_numbers(capsys):
    from einsim.cli import emit
    from einsim.cli.json_output import dumps

    data = {"inf": float("inf"), "nan": np.float64("nan"), "rows": [1.5, -np.inf],
            "array": np.array([1.0, np.nan]), "big": 2**70, "path": Path("x"), 3: "key"}
    for text in (dumps(data), dumps(data, indent=None)):
        assert "Infinity" not in text and "NaN" not in text
        assert json.loads(text) == {"inf": None, "nan": None, "rows": [1.5, None],
                                    "array": [1.0, None], "big": 2**70, "path": "x",
                                    "3": "key"}
    emit({"x": float("-inf")})
    assert json.loads(capsys.readouterr().out) == {"x": None}


def test_json_writer_without_orjson_gives_the_same_text(monkeypatch):
    from einsim.cli import json_output

    data = {"a": [1, 2.5, float("nan")], "b": {"c": np.float32(0.5), "d": np.int64(3)}}
    fast = json_output.dumps(data)
    monkeypatch.setattr(json_output, "_orjson", None)
    assert json_output.dumps(data) == fast


# ---------------------------------------------------------------------------------- validate

def test_validate_seq_len_accepts_suffixes(capsys):
    status, out, _ = run_cli(capsys, "validate", "attention-1pass", "--seq-len", "1K", "--json")
    assert status == 0 and json.loads(out)["results"][0]["ok"]


@pytest.mark.parametrize("args, fragment", [
    (["validate", "fusemax", "--size", "ZZ=3"], "fusemax has no size ZZ"),
    (["validate", "fusemax", "--size", "M0"], "expected NAME=INTEGER"),
    (["validate", "fusemax", "--seq-len", "1M"], "would need about"),
    (["validate", "fusemax", "--seq-len", "1M"], "try --tile m1"),
    (["validate", "fusemax", "--seq-len", "64Q"], "--seq-len"),
    (["validate", "fusemax", "--seq-len", "1M", "--tile", "m1"], "visits about 4.0e+13 points"),
    (["validate", "attention-3pass", "--seq-len", "1M"], "a 1-pass cascade such as fusemax"),
    (["validate", "fusemax", "--reference", "no-such-reference"], "or a cascade file"),
    (["validate", "fusemax", "--reference", "missing.einsum"], "no such file"),
])
def test_validate_refusals(capsys, args, fragment):
    status, _, err = run_cli(capsys, *args)
    assert status == 2 and err.count("\n") == 1 and fragment in err


def test_validate_file_without_qkv_is_a_clear_error(capsys, tmp_path):
    path = tmp_path / "double.einsum"
    path.write_text("A[i] = X[i] * 2\n")
    status, _, err = run_cli(capsys, "validate", "--file", str(path), "--size", "I=4")
    assert status == 2 and "needs input 'Q'" in err and "KeyError" not in err


def test_validate_with_a_reference_cascade_file_and_its_title(capsys):
    reference = str(Path(einsim.library.__file__).parent / "attention-3pass.einsum")
    status, out, _ = run_cli(capsys, "validate", "fusemax", "--reference", reference, "--json")
    result = json.loads(out)["results"][0]
    assert status == 0 and result["ok"] and result["reference"] == "cascade attention-3pass"
    status, out, _ = run_cli(capsys, "validate", "fusemax", "--reference", reference)
    assert "validation against cascade attention-3pass" in out
    status, out, _ = run_cli(capsys, "validate", "causal-fusemax")
    assert "validation against NumPy causal-attention" in out
    assert "plain NumPy attention" not in out
