"""Sweep stores cannot lose or mix data: the writer lock, the experiment manifest, collision-
free parts, validation before writing, kill -9 in every phase, full disks, repeated values."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einsim
from einsim.search import store as sweep_store
from einsim.search import sweeps
from einsim.cli import main
from einsim.search.dask_sweep import SchedulerError, connect
from einsim.search.store_lock import StoreLock, StoreLockedError
from einsim.search.manifest import ManifestMismatchError, NotAStoreError
from einsim.search.store import StoreWriteError, open_store, read_rows
from einsim.search.sweeps import blocks, pareto, run_sweep

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
MiB = 2 ** 20
# 2 x 2 x 4 = 16 points; the first four (1 KiB of buffer) are infeasible
GRID = {"global_buffer_bytes": [1024, 16 * MiB], "pe_dim": [32, 64, 128, 256]}
LENGTHS = [4096, 16384]
SUFFIXES = [".csv", ".parquet"]


def raw(path: Path) -> pd.DataFrame:
    """Every row on disk, before any deduplication."""
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def all_keys(parameters=GRID, lengths=LENGTHS, mapping="fusemax") -> set[str]:
    return {p["point_key"] for p in _keyed(mapping, lengths, parameters)}


def _keyed(mapping, lengths, parameters):
    from einsim.search.manifest import experiment
    exp = experiment(mapping, "bert", None, "latency", parameters)
    return [{"point_key": k} for k in sweep_store.point_keys(*exp.key_names, lengths,
                                                              parameters)]


def assert_each_point_once(path: Path, keys: set[str]) -> None:
    frame = raw(path)
    assert frame["point_key"].is_unique, "a point is stored twice"
    assert set(frame["point_key"]) == keys, "a point is missing or foreign"


def cli(capsys, *args) -> tuple[int, str, str]:
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: (p.read_bytes() if p.is_file() else b"<dir>") for p in folder.iterdir()}


# --- the writer lock -------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_second_writer_is_refused_naming_the_holder(tmp_path, suffix):
    path = tmp_path / f"s{suffix}"
    with open_store(path):
        with pytest.raises(StoreLockedError) as refused:
            open_store(path, resume=True)
        message = str(refused.value)
        assert str(path) in message and f"pid {os.getpid()} on {socket.gethostname()}" in message
    assert not Path(f"{path}.lock").exists()  # released and removed
    with open_store(path, resume=True):  # free again
        pass


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    path = tmp_path / "s.csv"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from einsim.search.store_lock import StoreLock
        StoreLock(__import__('pathlib').Path({str(path)!r})).acquire()
        print('locked', flush=True)
        time.sleep(60)""")], env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(StoreLockedError, match=f"pid {holder.pid}"):
        StoreLock(path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert Path(f"{path}.lock").exists()  # the file stays; the kernel dropped the flock
    with StoreLock(path):
        pass
    Path(f"{path}.lock").write_text("garbage, not a holder")  # a stale, unreadable lock file
    with StoreLock(path):
        pass


def test_a_lock_file_removed_under_a_waiting_writer_is_not_shared(tmp_path):
    """The writer that locked a file its holder then removed retries on the new one."""
    path = tmp_path / "s.csv"
    first = StoreLock(path).acquire()
    stale = os.open(f"{path}.lock", os.O_RDWR)  # opened before the holder releases
    first.release()
    fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the old, unlinked inode: not the lock
    try:
        with StoreLock(path):
            with pytest.raises(StoreLockedError):
                StoreLock(path).acquire()
    finally:
        os.close(stale)


SLOW_SWEEP = ["sweep", "--mapping", "fusemax", "--workload", "bert", "--no-vectorize",
              "--seq-len", "1K,4K,16K", "--json"]


def _sweep_process(path: Path, pe_dims: list[int], resume: bool,
                   extra: tuple[str, ...] = ()) -> subprocess.Popen:
    args = [*SLOW_SWEEP, "--param", "pe_dim=" + ",".join(map(str, pe_dims)),
            "--param", "global_buffer_bytes=65536,16777216,67108864", "--out", str(path),
            *extra]
    return subprocess.Popen([sys.executable, "-m", "einsim", *args]
                            + (["--resume"] if resume else []), env=ENV, cwd=path.parent,
                            stdout=subprocess.DEVNULL if extra else subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_two_writers_started_together(tmp_path, suffix):
    """Disjoint points into one store, both with --resume, started at once: each point of a
    sweep that succeeded is stored exactly once; a sweep that did not was clearly refused."""
    path = tmp_path / f"s{suffix}"
    dims = {"a": [16, 32, 64], "b": [128, 256, 512]}
    runs = {name: _sweep_process(path, d, resume=True) for name, d in dims.items()}
    results = {name: (p.wait(120), *p.communicate()) for name, p in runs.items()}
    done = [name for name, (status, _, _) in results.items() if status == 0]
    assert done, results
    for name, (status, out, err) in results.items():
        if status:
            assert status == 2 and err.count("\n") == 1 and "being written by another sweep" \
                in err and "pid " in err, err
    expected = set()
    for name in done:
        params = {"pe_dim": dims[name], "global_buffer_bytes": [65536, 16 * MiB, 64 * MiB]}
        expected |= all_keys(params, [1024, 4096, 16384])
    assert_each_point_once(path, expected)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_staggered_second_writer_is_refused_and_the_first_finishes(capsys, tmp_path, suffix):
    path = tmp_path / f"s{suffix}"
    dims = [16, 32, 64, 128, 256, 512, 1024, 2048]
    first = _sweep_process(path, dims, False, ("--param", "clock_hz=5e8,1e9,2e9,4e9"))
    deadline = time.monotonic() + 60
    lock = Path(f"{path}.lock")  # there while the first sweep holds it (removed after)
    while not lock.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.005)
    status, _, err = cli(capsys, *SLOW_SWEEP, "--param", "pe_dim=4096", "--param",
                         "global_buffer_bytes=65536", "--param", "clock_hz=1e9", "--out", path,
                         "--resume")
    still_running = first.poll() is None
    assert first.wait(120) == 0, first.communicate()[1]
    assert still_running, "the first sweep finished before the second could try"
    assert status == 2 and err.count("\n") == 1, err
    assert f"pid {first.pid}" in err and str(path) in err
    assert_each_point_once(path, all_keys(
        {"pe_dim": dims, "global_buffer_bytes": [65536, 16 * MiB, 64 * MiB],
         "clock_hz": [5e8, 1e9, 2e9, 4e9]}, [1024, 4096, 16384]))
    assert not Path(f"{path}.lock").exists()


def test_parquet_part_names_cannot_collide(tmp_path):
    path = tmp_path / "s.parquet"
    rows = [{"point_key": f"k{i}", "seq_len": i, "feasible": True} for i in range(6)]
    with open_store(path) as store:
        for i in range(3):
            store.append(rows[2 * i:2 * i + 2])
    names = [p.name for p in path.glob("part-*.parquet")]
    assert len(names) == 3 and all(f"-{os.getpid()}-" in n for n in names)
    with open_store(path, resume=True) as store:  # a later writer continues the numbering
        store.append([{"point_key": "k9", "seq_len": 9, "feasible": True}])
    assert len(set(p.name for p in path.glob("part-*.parquet"))) == 4
    assert len(read_rows(path)) == 7 and len(raw(path)) == 7


# --- the manifest ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stores")
    paths = {s: folder / f"s{s}" for s in SUFFIXES}
    for path in paths.values():
        run_sweep("fusemax", "bert", LENGTHS, GRID, out=path)
    return paths


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("change, field", [
    ({"mapping": "fusemax-arch"}, "mapping"),
    ({"workload": "xlm"}, "workload"),
    ({"objective": "energy"}, "objective"),
    ({"parameters": {"pe_dim": [64], "clock_hz": [1e9]}}, "swept parameters differ"),
    ({"parameters": {"pe_dim": [64]}}, "swept parameters differ"),
    ({"hardware": "flat-cloud"}, "hardware"),
])
def test_resume_of_another_experiment_is_refused_naming_the_field(stored, suffix, change,
                                                                  field):
    path = stored[suffix]
    before = snapshot(path) if path.is_dir() else path.read_bytes()
    args = {"mapping": "fusemax", "workload": "bert", "seq_lens": LENGTHS,
            "parameters": GRID, **change}
    with pytest.raises(ManifestMismatchError, match=field) as refused:
        run_sweep(**args, out=path, resume=True)
    assert "stored" in str(refused.value) or "specification" in str(refused.value)
    assert (snapshot(path) if path.is_dir() else path.read_bytes()) == before


def test_the_manifest_records_the_experiment(stored):
    manifest = json.loads(Path(f"{stored['.csv']}.manifest.json").read_text())
    assert manifest["mapping"] == "fusemax" and manifest["workload"] == "BERT"
    assert manifest["hardware"] == "fusemax-cloud" and manifest["objective"] == "latency"
    assert manifest["parameters"] == ["global_buffer_bytes", "pe_dim"]
    assert manifest["engine"] == einsim.__version__
    assert json.loads((stored[".parquet"] / "_manifest.json").read_text()) == manifest
    frame = raw(stored[".csv"])
    assert set(frame["objective"]) == {"latency"}
    assert frame["hardware"].notna().all() and frame["workload"].notna().all()
    assert (~frame["feasible"]).sum() == 8  # infeasible rows name hardware and workload too


def test_a_mapping_by_name_or_by_path_is_one_experiment(tmp_path, monkeypatch):
    path = tmp_path / "s.csv"
    run_sweep("fusemax", "bert", LENGTHS[:1], GRID, out=path, vectorize=False)
    before = path.read_bytes()
    evaluated = []
    monkeypatch.setattr(sweeps, "evaluate_point", lambda *a: evaluated.append(a))
    spec = ROOT / "mappings" / "fusemax.yaml"
    result = run_sweep(str(spec), "bert", LENGTHS[:1], GRID, out=path, resume=True,
                       vectorize=False)
    assert evaluated == [] and path.read_bytes() == before and len(result.points) == 8
    edited = tmp_path / "fusemax.yaml"  # same name, different content: another experiment
    document = yaml.safe_load(spec.read_text())
    edited.write_text(yaml.safe_dump({**document, "description": "edited"}))
    with pytest.raises(ManifestMismatchError, match="specification differs"):
        run_sweep(str(edited), "bert", LENGTHS[:1], GRID, out=path, resume=True)
    assert path.read_bytes() == before


# --- never write to what is not ours ---------------------------------------------------------

USER_FILES = [b"my notes\n", b"one line without a newline", b"a,b,c\n1,2,3\n4,5",
              b"\xff\xfe\x00binary\n\x00", b"", b"x" * 100_000, b"point_key\n",
              b"seq_len,feasible,point_key\n1,True,k\n"]


@pytest.mark.parametrize("content", USER_FILES, ids=range(len(USER_FILES)))
def test_resume_onto_a_user_file_leaves_it_byte_identical(capsys, tmp_path, content):
    path = tmp_path / "notes.csv"
    path.write_bytes(content)
    status, _, err = cli(capsys, "sweep", "--seq-len", "1K", "--out", path, "--resume")
    assert status == 2 and err.count("\n") == 1 and "not a sweep file" in err, err
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.csv"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=300),
                         st.text(max_size=300).map(lambda t: t.encode("utf-8", "replace"))))
def test_hostile_file_contents_are_refused_untouched(tmp_path, content):
    path = tmp_path / "hostile.csv"
    path.write_bytes(content)
    try:
        with pytest.raises(NotAStoreError):
            run_sweep("fusemax", "bert", [1024], {"pe_dim": [64]}, out=path, resume=True)
        assert path.read_bytes() == content
        assert not Path(f"{path}.lock").exists()
        assert not Path(f"{path}.manifest.json").exists()
    finally:
        path.unlink()


def test_special_outputs_are_one_line_errors_with_nothing_written(capsys, tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 not really")
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    parts = tmp_path / "parts.parquet"
    parts.mkdir()
    (parts / "part-00000.parquet").write_bytes(b"PAR1\x00\x00junk")
    other = tmp_path / "other.parquet"
    other.mkdir()
    (other / "photo.jpg").write_bytes(b"\xff\xd8")
    before = snapshot(tmp_path)
    for out, fragment in [("/dev/full", "not a regular file"), (folder, "is a directory"),
                          (junk, "not a directory"), (parts, "not a sweep part file"),
                          (other, "not a part of a sweep")]:
        start = time.monotonic()
        status, _, err = cli(capsys, "sweep", "--seq-len", "1K", "--out", out, "--resume")
        assert status == 2 and err.count("\n") == 1 and fragment in err, err
        assert time.monotonic() - start < 10
    assert snapshot(tmp_path) == before
    assert snapshot(parts) == {"part-00000.parquet": b"PAR1\x00\x00junk"}


# --- kill -9 in every phase, then resume -----------------------------------------------------

KILL = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import einsim.search.store as store, einsim.search.manifest as manifest
    from einsim.search.sweeps import run_sweep

    phase, out = sys.argv[1], Path(sys.argv[2])
    calls = {"n": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def nth(n):
        calls["n"] += 1
        return calls["n"] == n

    if phase == "before-first-row":
        real = store.CsvStore.append if out.suffix == ".csv" else store.ParquetStore.append
        def append(self, rows):
            die()
        setattr(store.CsvStore if out.suffix == ".csv" else store.ParquetStore, "append", append)
    elif phase == "manifest-rename":
        real_replace = os.replace
        def replace(a, b):
            if str(b).endswith("manifest.json"):
                die()
            return real_replace(a, b)
        manifest.os.replace = replace
    elif phase == "torn-row":
        real_write = store.CsvStore._write
        def write(self, data, created):
            if nth(3):
                with open(self.path, "ab") as handle:
                    handle.write(data[:len(data) // 2 + 7])
                die()
            return real_write(self, data, created)
        store.CsvStore._write = write
    elif phase == "rewrite-rename":
        real_replace = os.replace
        def replace(a, b):
            if str(a).endswith(".tmp") and str(b) == str(out):
                die()
            return real_replace(a, b)
        store.os.replace = replace
    elif phase in ("part-rename", "part-fsync"):
        real_replace, real_sync = os.replace, store.fsync_directory
        def replace(a, b):
            if phase == "part-rename" and str(a).endswith(".tmp") and nth(3):
                die()
            return real_replace(a, b)
        def sync(path):
            real_sync(path)
            if phase == "part-fsync" and Path(path) == out and nth(4):
                die()
        store.os.replace, store.fsync_directory = replace, sync
    run_sweep("fusemax", "bert", [4096, 16384],
              {"global_buffer_bytes": [1024, 16 * 2**20], "pe_dim": [32, 64, 128, 256]},
              out=out, vectorize=False, batch_size=4, flush_seconds=60)
    sys.exit(3)  # not killed: the phase was never reached
""")


@pytest.mark.parametrize("phase, suffix", [
    ("before-first-row", ".csv"), ("before-first-row", ".parquet"),
    ("manifest-rename", ".csv"), ("manifest-rename", ".parquet"),
    ("torn-row", ".csv"), ("rewrite-rename", ".csv"),
    ("part-rename", ".parquet"), ("part-fsync", ".parquet"),
])
def test_kill_9_in_each_phase_then_resume_stores_each_point_once(tmp_path, phase, suffix):
    path = tmp_path / f"s{suffix}"
    killed = subprocess.run([sys.executable, "-c", KILL, phase, str(path)], env=ENV,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    result = run_sweep("fusemax", "bert", LENGTHS, GRID, out=path, resume=True,
                       vectorize=False)
    assert len(result.points) == 16
    assert_each_point_once(path, all_keys())
    assert not list(tmp_path.glob(".*.tmp")) and not list(path.parent.glob("**/.*.tmp"))
    fresh = run_sweep("fusemax", "bert", LENGTHS, GRID, vectorize=False)
    assert result.points == fresh.points


# --- a full disk -----------------------------------------------------------------------------

class _FullAfter:
    """``open`` whose files take ``budget`` bytes in all, then fail with ENOSPC."""

    def __init__(self, budget: int):
        self.budget = budget

    def __call__(self, file, mode="r", *args, **kwargs):
        handle = open(file, mode, *args, **kwargs)
        if "b" not in mode or "r" in mode:
            return handle
        disk, write = self, handle.write

        def limited(data):
            room = max(0, disk.budget)
            write(data[:room])
            disk.budget -= len(data)
            if disk.budget < 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            return len(data)

        handle.write = limited
        return handle


@pytest.mark.parametrize("budget", [0, 300, 1500, 3500])
def test_a_full_disk_loses_nothing_and_resumes(tmp_path, monkeypatch, capsys, budget):
    path = tmp_path / "s.csv"
    monkeypatch.setattr(sweep_store, "open", _FullAfter(budget), raising=False)
    with pytest.raises(StoreWriteError, match="No space left on device.*--resume"):
        run_sweep("fusemax", "bert", LENGTHS, GRID, out=path, vectorize=False, batch_size=3,
                  flush_seconds=60)
    if path.exists():  # whole rows only: the failed batch was cut back off
        data = path.read_bytes()
        assert data.endswith(b"\n") and raw(path)["point_key"].is_unique
    monkeypatch.undo()
    run_sweep("fusemax", "bert", LENGTHS, GRID, out=path, resume=True, vectorize=False)
    assert_each_point_once(path, all_keys())
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_full_disk_under_parquet_and_the_cli(tmp_path, monkeypatch, capsys):
    import pyarrow.parquet as pq

    path, real, calls = tmp_path / "s.parquet", pq.write_table, []
    fail_at = {"call": 3}

    def write_table(table, where, **kwargs):
        calls.append(where)
        if len(calls) == fail_at["call"]:
            Path(where).write_bytes(b"PAR1 half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", write_table)
    with pytest.raises(StoreWriteError, match="No space left"):
        run_sweep("fusemax", "bert", LENGTHS, GRID, out=path, vectorize=False, batch_size=4)
    assert not list(path.glob(".*.tmp")) and len(list(path.glob("part-*"))) == 2
    calls.clear()
    fail_at["call"] = 1
    args = ["sweep", "--seq-len", "4K,16K", "--param", "pe_dim=32,64,128,256", "--param",
            "global_buffer_bytes=1024,16777216", "--out", path, "--resume"]
    status, _, err = cli(capsys, *args)
    assert status == 2 and err.count("\n") == 1 and "No space left" in err
    assert not list(path.glob(".*.tmp")) and len(list(path.glob("part-*"))) == 2
    monkeypatch.undo()
    status, out, _ = cli(capsys, *args, "--json")
    assert status == 0 and len(json.loads(out)["points"]) == 16
    assert_each_point_once(path, all_keys())


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KiB tmpfs (skipped where mounting is not allowed)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                          capture_output=True)
    if done.returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)


def test_a_real_full_disk(tiny_disk, tmp_path):
    path = tiny_disk / "s.csv"
    parameters = {"pe_dim": [16, 32, 64, 128, 256, 512],
                  "global_buffer_bytes": [2 ** k for k in range(14, 30)],
                  "clock_hz": [5e8, 1e9, 1.5e9]}
    with pytest.raises(StoreWriteError, match="No space left"):
        run_sweep("fusemax", "bert", LENGTHS, parameters, out=path, chunk_size=64)
    assert path.read_bytes().endswith(b"\n") and raw(path)["point_key"].is_unique
    moved = tmp_path / "s.csv"  # more room: the store moves (with its manifest) and resumes
    for name in ("s.csv", "s.csv.manifest.json"):
        (tmp_path / name).write_bytes((tiny_disk / name).read_bytes())
    run_sweep("fusemax", "bert", LENGTHS, parameters, out=moved, resume=True)
    assert_each_point_once(moved, all_keys(parameters))


# --- points: repeated values, GPUs, streaming, the public API --------------------------------

def test_repeated_values_are_evaluated_and_stored_once(capsys, tmp_path):
    path = tmp_path / "s.csv"
    status, out, _ = cli(capsys, "sweep", "--seq-len", "64K,65536,64K", "--param",
                         "pe_dim=64,64,64.0", "--param", "clock_hz=1e9,1000000000",
                         "--out", path, "--json")
    assert status == 0 and len(json.loads(out)["points"]) == 1
    assert len(raw(path)) == 1
    result = run_sweep("fusemax", "bert", [4096, 4096], {"pe_dim": [64, 128, 64]})
    assert [p["pe_dim"] for p in result.points] == [64, 128] and result.count == 2


def test_gpu_sweeps_run(capsys, tmp_path):
    path = tmp_path / "gpu.parquet"
    status, out, err = cli(capsys, "sweep", "--mapping", "flash-attention-2", "--seq-len",
                           "4K,16K", "--out", path, "--json")
    assert status == 0, err
    data = json.loads(out)
    assert len(data["points"]) == 2 and data["pareto"]
    assert all(p["area_mm2"] is None for p in data["points"])
    assert len(raw(path)) == 2
    status, out, _ = cli(capsys, "sweep", "--mapping", "flash-attention-2", "--seq-len", "4K")
    assert status == 0 and "flash-attention-2" in out
    points = [{"feasible": True, "latency_s": 2.0, "energy_j": 1.0, "area_mm2": None},
              {"feasible": True, "latency_s": 1.0, "energy_j": 2.0, "area_mm2": None},
              {"feasible": True, "latency_s": 3.0, "energy_j": 3.0, "area_mm2": None},
              {"feasible": True, "latency_s": float("nan"), "energy_j": 0.0, "area_mm2": None}]
    assert pareto(points) == [points[1], points[0]]


def test_bad_mapping_parameters_and_non_finite_output(capsys, monkeypatch):
    for value in ("0", "-2", "1.5"):
        status, _, err = cli(capsys, "sweep", "--mapping", "flat", "--seq-len", "4K",
                             "--param", f"rows={value}")
        assert status == 2 and err.count("\n") == 1 and "positive integer" in err
    real = sweeps.evaluate_point

    def overflowing(*args):
        point = real(*args)
        if point["feasible"] and point.get("clock_hz") == 1e9:
            point.update(latency_s=float("inf"), energy_j=float("nan"))
        return point

    monkeypatch.setattr(sweeps, "evaluate_point", overflowing)
    status, out, _ = cli(capsys, "sweep", "--seq-len", "4K", "--param", "clock_hz=1e9,2e9",
                         "--no-vectorize", "--json")

    def refuse(constant):
        raise ValueError(constant)

    data = json.loads(out, parse_constant=refuse)  # no NaN, no Infinity
    assert status == 0 and data["points"][0]["latency_s"] is None
    assert [p["clock_hz"] for p in data["pareto"]] == [2e9]  # NaN is on no front

    def failing(*args, **kwargs):
        raise OverflowError(34, "Numerical result out of range")

    monkeypatch.setattr(sweeps, "evaluate", failing)
    monkeypatch.setattr(sweeps, "evaluate_point", real)
    status, _, err = cli(capsys, "sweep", "--seq-len", "4K", "--param", "clock_hz=1.5e9",
                         "--no-vectorize")
    assert status == 2 and err.count("\n") == 1 and "sweep point" in err
    assert "clock_hz=1500000000" in err and "OverflowError" in err
    status, _, err = cli(capsys, "sweep", "--seq-len", "4K", "--param", "clock_hz=1e-310")
    assert status == 2 and err.count("\n") == 1 and "clock_hz" in err and "1e-310" in err


def test_a_mismatched_hardware_preset_is_not_a_crash(capsys):
    status, out, err = cli(capsys, "sweep", "--mapping", "fusemax", "--hw", "flat-cloud",
                           "--seq-len", "4K", "--json")
    assert "Traceback" not in err and "KeyError" not in err
    if status == 0:  # evaluated (feasible or not) on the hardware asked for
        assert json.loads(out)["points"][0]["hardware"] == "flat-cloud"
    else:  # or refused in one line, naming what the hardware lacks
        assert status == 2 and err.count("\n") == 1


@settings(max_examples=60, deadline=None)
@given(axes=st.lists(st.lists(st.integers(), min_size=0, max_size=5), min_size=1, max_size=4),
       size=st.integers(1, 40))
def test_blocks_cover_the_product_in_order(axes, size):
    import itertools

    points = []
    for offset, block in blocks(axes, size):
        assert offset == len(points)
        chunk = list(itertools.product(*block))
        assert len(chunk) <= size or all(len(a) <= 1 for a in block)
        points += chunk
    assert points == list(itertools.product(*axes))


def test_a_sweep_streams_in_blocks(tmp_path, monkeypatch):
    """Blocks of at most chunk_size points; without keep_points only the front is kept."""
    sizes, real = [], sweeps._vectorized

    def recording(*args):
        rows = real(*args)
        sizes.append(len(rows))
        return rows

    monkeypatch.setattr(sweeps, "_vectorized", recording)
    parameters = {"pe_dim": [16, 32, 64, 128, 256], "global_buffer_bytes": [2 ** 16, 2 ** 24],
                  "clock_hz": [5e8, 1e9, 2e9]}
    lengths = [1024, 4096, 16384, 65536]
    full = run_sweep("fusemax", "bert", lengths, parameters)
    path = tmp_path / "s.parquet"
    sizes.clear()
    lean = run_sweep("fusemax", "bert", lengths, parameters, out=path, keep_points=False,
                     chunk_size=7)
    assert max(sizes) <= 7 and sum(sizes) == 120 and lean.points == [] and lean.count == 120
    assert lean.pareto and [(p["seq_len"], p["pe_dim"]) for p in lean.pareto] == \
        [(p["seq_len"], p["pe_dim"]) for p in full.pareto]
    assert_each_point_once(path, all_keys(parameters, lengths))
    resumed = run_sweep("fusemax", "bert", lengths, parameters, out=path, resume=True,
                        keep_points=False, chunk_size=11)  # the front of stored points
    assert [(p["seq_len"], p["pe_dim"]) for p in resumed.pareto] == \
        [(p["seq_len"], p["pe_dim"]) for p in full.pareto]


def test_the_public_sweep_is_vectorized(monkeypatch):
    def refuse(*args):
        raise AssertionError("evaluated point by point")

    monkeypatch.setattr(sweeps, "evaluate_point", refuse)
    result = einsim.sweep("fusemax", "bert", LENGTHS, GRID)
    assert result.engine == "vectorized" and len(result.points) == 16
    assert all(p["objective"] == "latency" and p["hardware"] for p in result.points)


# --- a scheduler that is not one -------------------------------------------------------------

@pytest.mark.parametrize("reply", [b"", b"HTTP/1.1 200 OK\r\n\r\n" * 50])
def test_a_scheduler_that_is_not_dask_times_out_in_one_line(reply):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    accepted = []

    def serve():
        while True:
            try:
                peer, _ = server.accept()
            except OSError:
                return
            accepted.append(peer)
            if reply:
                peer.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    start = time.monotonic()
    try:
        with pytest.raises(SchedulerError, match="not a Dask scheduler"):
            connect(f"tcp://127.0.0.1:{server.getsockname()[1]}", timeout=1.0)
    finally:
        server.close()
        for peer in accepted:
            peer.close()
    assert time.monotonic() - start < 8
