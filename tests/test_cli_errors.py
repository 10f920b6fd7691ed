"""Bad invocations of every CLI command: exit status 2, one line ``einsim: error: ...`` on stderr.

Each case is a command line; ``{missing}``, ``{bad_yaml}``, ``{garbage}`` and
``{garbage_yaml}`` stand for a file that does not exist, a file of invalid YAML and a file of
bytes that are not UTF-8 (with a ``.bin`` and a ``.yaml`` name).
"""

from pathlib import Path

import pytest

from einsim.cli import main

GARBAGE = bytes(range(128, 256)) + b"\x00\xff\xfe" * 40  # no valid UTF-8 sequence

CASES = {
    "cascades": [
        ["cascades", "--bogus"],
        ["cascades", "extra-argument"],
        ["cascades", "--json=yes"],
    ],
    "show": [
        ["show"],
        ["show", "no-such-cascade"],
        ["show", "--bogus"],
        ["show", "--file"],
        ["show", "--file", "{missing}"],
        ["show", "--file", "{bad_yaml}"],
        ["show", "--file", "{bad_einsum}"],
        ["show", "fusemax", "--file", "{bad_einsum}"],
    ],
    "passes": [
        ["passes"],
        ["passes", "no-such-cascade"],
        ["passes", "fusemax", "--rank"],
        ["passes", "fusemax", "--rank", "zz"],
        ["passes", "fusemax", "--word-bytes", "two"],
        ["passes", "fusemax", "--word-bytes", "0"],
        ["passes", "fusemax", "--word-bytes", "-3"],
        ["passes", "--file", "{missing}"],
        ["passes", "--file", "{bad_yaml}"],
    ],
    "validate": [
        ["validate"],
        ["validate", "no-such-cascade"],
        ["validate", "--all", "fusemax"],
        ["validate", "fusemax", "--seq-len"],
        ["validate", "fusemax", "--seq-len", "0"],
        ["validate", "fusemax", "--seq-len", "-8"],
        ["validate", "fusemax", "--seq-len", "abc"],
        ["validate", "fusemax", "--dtype", "float8"],
        ["validate", "fusemax", "--tile", "zz"],
        ["validate", "fusemax", "--size", "M0"],
        ["validate", "fusemax", "--size", "M0=x"],
        ["validate", "fusemax", "--reference", "no-such-reference"],
        ["validate", "--file", "{missing}"],
        ["validate", "--file", "{bad_yaml}"],
        ["validate", "--file", "{bad_einsum}"],
    ],
    "evaluate": [
        ["evaluate", "--bogus"],
        ["evaluate", "--mapping"],
        ["evaluate", "--mapping", "no-such-mapping"],
        ["evaluate", "--mapping", "{missing}"],
        ["evaluate", "--mapping", "{bad_yaml}"],
        ["evaluate", "--mapping", "{garbage}"],
        ["evaluate", "--mapping", "{garbage_yaml}"],
        ["evaluate", "--seq-len", "abc"],
        ["evaluate", "--seq-len", "0"],
        ["evaluate", "--seq-len", "-5"],
        ["evaluate", "--seq-len", "1.5K"],
        ["evaluate", "--hw", "no-such-hardware"],
        ["evaluate", "--hw", "{missing}"],
        ["evaluate", "--hw", "{garbage}"],
        ["evaluate", "--hw", "h100"],
        ["evaluate", "--workload", "no-such-workload"],
        ["evaluate", "--workload", "{missing}"],
        ["evaluate", "--workload", "{bad_yaml}"],
        ["evaluate", "--workload", "{garbage_yaml}"],
        ["evaluate", "--param", "pe_dim"],
        ["evaluate", "--param", "pe_dim=abc"],
        ["evaluate", "--param", "no_such_field=3"],
        ["evaluate", "--param", "pe_dim=0"],
        ["evaluate", "--param", "pe_dim=-1"],
        ["evaluate", "--param", "pe_dim=1.5"],
        ["evaluate", "--param", "dram_bandwidth=nan"],
        ["evaluate", "--param", "clock_hz=-1e9"],
        ["evaluate", "--param", "global_buffer_bytes=1"],
        ["evaluate", "--mapping", "fusemax", "--param", "P1=abc"],
        ["evaluate", "--objective", "speed"],
        ["evaluate", "--scope", "everything"],
    ],
    "sweep": [
        ["sweep", "--bogus"],
        ["sweep", "--mapping", "no-such-mapping"],
        ["sweep", "--mapping", "{bad_yaml}"],
        ["sweep", "--seq-len", ""],
        ["sweep", "--seq-len", "1K,,2K"],
        ["sweep", "--seq-len", "1K,x"],
        ["sweep", "--param", "pe_dim="],
        ["sweep", "--param", "pe_dim=16,abc"],
        ["sweep", "--param", "no_such_field=1,2"],
        ["sweep", "--param", "pe_dim=16,0", "--seq-len", "1K"],
        ["sweep", "--workload", "{garbage_yaml}"],
        ["sweep", "--objective", "speed"],
        ["sweep", "--resume"],
    ],
    "map": [
        ["map", "--bogus"],
        ["map", "--mapping", "no-such-mapping"],
        ["map", "--mapping", "{missing}"],
        ["map", "--seq-len", "x"],
        ["map", "--objective", "speed"],
        ["map", "--param", "no_such_field=2"],
        ["map", "--mapping", "unfused", "--param", "P1=2"],
        ["map", "--hw", "{garbage}"],
        ["map", "--hw", "{bad_yaml}"],
        ["map", "--workload", "{bad_yaml}"],
    ],
    "gna": [
        ["gna"],
        ["gna", "--shape"],
        ["gna", "--shape", "100", "--window", "10"],
        ["gna", "--shape", "a", "--window", "10", "--q-tile", "8", "--kv-tile", "8"],
        ["gna", "--shape", "-100", "--window", "10", "--q-tile", "8", "--kv-tile", "8"],
        ["gna", "--shape", "100", "--window", "1000", "--q-tile", "8", "--kv-tile", "8"],
        ["gna", "--shape", "100", "--window", "0", "--q-tile", "8", "--kv-tile", "8"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "0", "--kv-tile", "8"],
        ["gna", "--shape", "100", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--stride", "20"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--dilation", "0"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--causal", "maybe"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--kv-tiling", "weird"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--attention-share", "2"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--steps", "0", "--attention-share", "0.5"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--hw", "no-such-gpu"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--hw", "fusemax-cloud"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--hw", "{garbage_yaml}"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--hw", "{bad_yaml}"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--hw", "h100"],
        ["gna", "--shape", "100", "--window", "10", "--find-tiles"],
        ["gna", "--shape", "100", "--window", "10", "--q-tile", "8", "--kv-tile", "8",
         "--heads", "x"],
    ],
    "decode": [
        ["decode", "--bogus"],
        ["decode", "--hw", "no-such-gpu"],
        ["decode", "--hw", "fusemax-cloud"],
        ["decode", "--hw", "{missing}"],
        ["decode", "--hw", "{garbage}"],
        ["decode", "--schedule", "magic"],
        ["decode", "--batch", "0"],
        ["decode", "--batch", "-1"],
        ["decode", "--batch", "x"],
        ["decode", "--heads", "0"],
        ["decode", "--kv-heads", "0"],
        ["decode", "--kv-heads", "5"],
        ["decode", "--head-dim", "0"],
        ["decode", "--context", "abc"],
        ["decode", "--context", "0"],
    ],
    "offload": [
        ["offload", "--bogus"],
        ["offload", "--model", "no-such-model"],
        ["offload", "--model", "{missing}"],
        ["offload", "--model", "{bad_yaml}"],
        ["offload", "--model", "{garbage_yaml}"],
        ["offload", "--compute", "h100:x"],
        ["offload", "--compute", "h100:0"],
        ["offload", "--compute", "no-such-gpu:2"],
        ["offload", "--compute", "roce-400g:2"],
        ["offload", "--memory", "h20:-1"],
        ["offload", "--memory", "b200:1"],
        ["offload", "--baseline", "a100"],
        ["offload", "--batch", "x"],
        ["offload", "--batch", "0"],
        ["offload", "--batch", "-3"],
        ["offload", "--batch", "100000000"],
        ["offload", "--link", "no-such-link"],
        ["offload", "--link", "h100"],
        ["offload", "--context", "x"],
        ["offload", "--schedule", "magic"],
    ],
    "report": [
        ["report", "no-such-report"],
        ["report", "evaluate"],
        ["report", "evaluate", "--out"],
        ["report", "evaluate", "--out", "{out_html}", "--seq-len", "abc"],
        ["report", "evaluate", "--out", "{out_html}", "--mapping", "no-such-mapping"],
        ["report", "evaluate", "--out", "{missing_dir}/report.html"],
        ["report", "sweep", "--out", "{out_html}", "--param", "no_such_field=1"],
        ["report", "gna", "--out", "{out_html}", "--shape", "100", "--window", "1000",
         "--q-tile", "8", "--kv-tile", "8"],
    ],
    "top level": [
        ["no-such-command"],
        ["--bogus"],
    ],
}
PARAMS = [pytest.param(command, argv, id=" ".join(argv))
          for command, table in CASES.items() for argv in table]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-files")
    paths = {"missing": folder / "missing.yaml", "bad_yaml": folder / "bad.yaml",
             "bad_einsum": folder / "bad.einsum", "garbage": folder / "garbage.bin",
             "garbage_yaml": folder / "garbage.yaml"}
    paths["bad_yaml"].write_text("name: [unclosed, list\nkind: {\n")
    paths["bad_einsum"].write_text("QK[m, p] = Q[e, p] *\n")
    paths["garbage"].write_bytes(GARBAGE)
    paths["garbage_yaml"].write_bytes(GARBAGE)
    paths["out_html"] = folder / "report.html"  # written only by a successful report
    paths["missing_dir"] = folder / "no-such-dir"
    return {name: str(path) for name, path in paths.items()}


def test_every_command_has_bad_invocations():
    commands = {argv[0] for table in CASES.values() for argv in table}
    assert {"cascades", "show", "passes", "validate", "evaluate", "sweep", "map", "gna",
            "decode", "offload", "report"} <= commands


@pytest.mark.parametrize("command, argv", PARAMS)
def test_bad_invocation_is_one_line_and_status_2(capsys, files, command, argv):
    args = [a.format(**files) if "{" in a else a for a in argv]
    status = main(args)
    assert not Path(files["out_html"]).exists()  # nothing written on a failed command
    err = capsys.readouterr().err
    assert status == 2, f"{args}: status {status}, stderr {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1, f"{args}: stderr has {len(lines)} lines: {err!r}"
    assert lines[0].startswith("einsim: error: ")
    assert len(lines[0]) > len("einsim: error: ") + 5  # says something
    assert "Traceback" not in err


def test_debug_flag_adds_the_traceback(capsys):
    status = main(["show", "no-such-cascade", "--debug"])
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("einsim: error: unknown cascade 'no-such-cascade'")


@pytest.mark.parametrize("argv, words", [
    (["show", "no-such-cascade"], ["no-such-cascade", "fusemax"]),
    (["evaluate", "--seq-len", "abc"], ["abc", "64K"]),
    (["evaluate", "--param", "no_such_field=3"], ["no_such_field", "pe_dim"]),
    (["evaluate", "--param", "pe_dim=0"], ["pe_dim"]),
    (["offload", "--compute", "h100:x"], ["--compute", "DEVICE:COUNT"]),
    (["decode", "--schedule", "magic"], ["magic", "flash-decoding"]),
    (["validate", "fusemax", "--dtype", "float8"], ["float8", "bfloat16"]),
])
def test_messages_name_the_bad_value_and_what_was_expected(capsys, argv, words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, f"{argv}: {word!r} not in {err!r}"


def test_file_errors_name_the_file(capsys, files):
    assert main(["evaluate", "--workload", files["bad_yaml"]]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "not valid YAML" in err and "line" in err
    assert main(["offload", "--model", files["garbage_yaml"]]) == 2
    assert "garbage.yaml" in capsys.readouterr().err
    assert main(["show", "--file", files["missing"]]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment", [
    (["show", "--file", "{garbage}"], "not UTF-8 text"),
    (["passes", "--file", "{garbage}"], "not UTF-8 text"),
    (["validate", "--file", "{garbage}"], "not UTF-8 text"),
    (["evaluate", "--hw", "{bad_yaml}"], "not valid YAML"),
    (["evaluate", "--hw", "{garbage_yaml}"], "cannot read file"),
    (["validate", "fusemax", "--size", "M0=0"], "tile size M0 = 0"),
    (["evaluate", "--mapping", "fusemax", "--param", "P1=0"], "P1"),
    (["evaluate", "--plot", "{missing_dir}/x.html"], "does not exist"),
    (["sweep", "--out", "{missing_dir}/x.csv"], "does not exist"),
    (["decode", "--dtype", "int3"], "dtype 'int3'"),
])
def test_formerly_crashing_invocations_are_one_line_errors(capsys, files, argv, fragment):
    status = main([part.format(**files) for part in argv])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and fragment in err and "Traceback" not in err


def test_resume_refuses_a_file_that_is_not_a_sweep(capsys, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    status = main(["sweep", "--out", str(notes), "--resume", "--seq-len", "1K"])
    assert status == 2 and "not a sweep file" in capsys.readouterr().err
    assert notes.read_text() == "my notes\n"
