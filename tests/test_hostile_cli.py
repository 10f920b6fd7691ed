"""Hostile command lines: every one is a single line on stderr, exit status 2, no traceback, and
no file written.

The cases are generated: numbers at the edges (0, -1, 1.5, inf, nan, 2**63, 400 digits) for
numeric options of several commands, and special files (/dev/null, /dev/full, a directory, a
FIFO, a non-UTF-8 file, an empty file, a missing file) for file options.  The tests run as
root, so "unreadable" is a directory, a FIFO or bytes that are not UTF-8 rather than chmod 000.
A few cases run as real processes: standard output on a full disk (/dev/full).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from einsim.cli import main

EDGE_NUMBERS = ["0", "-1", "1.5", "inf", "nan", str(2**63), "9" * 400]
NOT_POSITIVE_OR_WHOLE = EDGE_NUMBERS[:5]  # 2**63 and 400 digits are valid for some options


def _numeric_cases() -> list[tuple[str, list[str]]]:
    cases = []
    for n in EDGE_NUMBERS:
        cases += [
            ("validate --seq-len", ["validate", "fusemax", "--seq-len", n]),
            ("validate --tile --seq-len", ["validate", "fusemax", "--tile", "m1",
                                           "--seq-len", n]),
            ("validate --size M0", ["validate", "fusemax", "--size", f"M0={n}"]),
            ("validate --size E", ["validate", "attention-3pass", "--size", f"E={n}"]),
            ("validate --size W", ["validate", "gna", "--size", f"W={n}"]),
            ("passes --rank", ["passes", "fusemax", "--rank", n]),
            ("decode --batch", ["decode", "--batch", n]),
            ("decode --context", ["decode", "--context", n]),
            ("decode --heads", ["decode", "--heads", n]),
            ("offload --context", ["offload", "--model", "llama3-8b", "--context", n]),
            ("gna --shape", ["gna", "--shape", n, "--window", "3", "--q-tile", "8",
                             "--kv-tile", "8"]),
            ("gna --kv-tile", ["gna", "--shape", "64", "--window", "3", "--q-tile", "8",
                               "--kv-tile", n]),
        ]
    for n in NOT_POSITIVE_OR_WHOLE:
        cases.append(("passes --word-bytes", ["passes", "fusemax", "--word-bytes", n]))
    return cases


def _special_files(root: Path) -> dict[str, str]:
    """Name → path of files no command should accept as its input."""
    fifo = root / "fifo.einsum"
    os.mkfifo(fifo)
    binary = root / "binary.einsum"
    binary.write_bytes(b"\xff\xfe\x00\x80 not text")
    empty = root / "empty.einsum"
    empty.write_text("")
    folder = root / "folder.einsum"
    folder.mkdir()
    return {"/dev/null": "/dev/null", "/dev/full": "/dev/full", "directory": str(folder),
            "fifo": str(fifo), "non-UTF-8": str(binary), "empty": str(empty),
            "missing": str(root / "missing.einsum")}


FILE_OPTIONS = {
    "show --file": ["show", "--file", "{path}"],
    "passes --file": ["passes", "--file", "{path}"],
    "validate --file": ["validate", "--file", "{path}"],
    "validate --reference": ["validate", "fusemax", "--reference", "{path}"],
    "decode --hw": ["decode", "--hw", "{path}"],
    "gna --hw": ["gna", "--shape", "64", "--window", "3", "--q-tile", "8", "--kv-tile", "8",
                 "--hw", "{path}"],
}
SPECIAL = ["/dev/null", "/dev/full", "directory", "fifo", "non-UTF-8", "empty", "missing"]

OUT_TARGETS = {  # --out of a report: name → (path template, extra arguments)
    "/dev/full": ("/dev/full", []),
    "/dev/full --force": ("/dev/full", ["--force"]),
    "/dev/null": ("/dev/null", []),
    "directory": ("{root}", []),
    "missing folder": ("{root}/missing/page.html", []),
    "existing page": ("{root}/existing.html", []),
}


def _check_one_line_error(status: int, err: str) -> None:
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("einsim: error: "), err
    assert "Traceback" not in err


def _listing(root: Path) -> set:
    return {(p.relative_to(root), p.stat().st_size if p.is_file() else None)
            for p in root.rglob("*") if not p.is_fifo()}


@pytest.mark.parametrize("label, argv", _numeric_cases(),
                         ids=[f"{label} {argv[-1][:12]}" for label, argv in _numeric_cases()])
def test_numbers_at_the_edges(capsys, tmp_path, monkeypatch, label, argv):
    monkeypatch.chdir(tmp_path)
    status = main(argv)
    _check_one_line_error(status, capsys.readouterr().err)
    assert not any(tmp_path.iterdir()), "a file was written"


@pytest.mark.parametrize("option", list(FILE_OPTIONS))
@pytest.mark.parametrize("special", SPECIAL)
def test_special_files(capsys, tmp_path, monkeypatch, option, special):
    files = _special_files(tmp_path)
    before = _listing(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{path}", files[special]) for a in FILE_OPTIONS[option]]
    status = main(argv)
    _check_one_line_error(status, capsys.readouterr().err)
    assert _listing(tmp_path) == before, "a file was written or changed"


@pytest.mark.parametrize("target", list(OUT_TARGETS))
def test_report_out_targets(capsys, tmp_path, target):
    existing = tmp_path / "existing.html"
    existing.write_text("keep me")
    before = _listing(tmp_path)
    template, extra = OUT_TARGETS[target]
    out = template.replace("{root}", str(tmp_path))
    status = main(["report", "decode", "--hw", "a100", "--out", out, *extra])
    _check_one_line_error(status, capsys.readouterr().err)
    assert _listing(tmp_path) == before and existing.read_text() == "keep me"


def test_report_out_overwrites_only_with_force(capsys, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("old")
    status = main(["report", "decode", "--hw", "a100", "--out", str(page)])
    assert status == 2 and "--force" in capsys.readouterr().err and page.read_text() == "old"
    assert main(["report", "decode", "--hw", "a100", "--out", str(page), "--force"]) == 0
    assert page.read_text().startswith("<!DOCTYPE html") or "<html" in page.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["page.html"]  # no temporary left behind


@pytest.mark.parametrize("argv", [
    ["cascades", "--json"], ["cascades"], ["show", "fusemax", "--json"],
    ["validate", "attention-1pass", "--json"], ["decode", "--hw", "a100", "--json"],
], ids=lambda argv: " ".join(argv))
def test_stdout_on_a_full_disk(argv):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "einsim", *argv], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "no space left on device" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


def test_stdout_closed_early_is_quiet():
    """``einsim cascades --json | head -c 10``: the reader goes away; no traceback."""
    reader = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL)
    done = subprocess.run([sys.executable, "-m", "einsim", "cascades", "--json"],
                          stdout=reader.stdin, stderr=subprocess.PIPE, text=True, timeout=120)
    reader.stdin.close()
    reader.wait(timeout=30)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


@pytest.mark.parametrize("command", [["evaluate", "--mapping", "fusemax", "--seq-len", "1K"],
                                     ["sweep", "--seq-len", "1K"]], ids=["evaluate", "sweep"])
@pytest.mark.parametrize("target", ["/dev/full", "directory"])
def test_plot_to_a_full_disk_or_a_directory(capsys, tmp_path, monkeypatch, command, target):
    monkeypatch.chdir(tmp_path)
    plot = "/dev/full" if target == "/dev/full" else str(tmp_path)
    status = main([*command, "--plot", plot])
    err = capsys.readouterr().err
    _check_one_line_error(status, err)
    assert "--plot" in err or str(tmp_path) in err
    assert not any(tmp_path.iterdir())
