"""Large sweeps: incremental crash-safe stores, resume after kill -9, vectorized dispatch, Dask."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest

from einsim.search import sweeps
from einsim.cli import main
from einsim.search.dask_sweep import SchedulerError
from einsim.search.store import StoreExistsError, open_store, point_key, read_rows
from einsim.search.sweeps import design_points, flat_row, pareto, run_sweep, sweep

ROOT = Path(__file__).resolve().parents[1]
MiB = 2 ** 20
SMALL = ("fusemax", "bert", [4096, 16384],
         {"pe_dim": [64, 128, 256], "global_buffer_bytes": [1024, 16 * MiB]})
# 6 x 8 x 8 = 384 points: a few seconds point by point
BIG_LENGTHS = ["1K", "4K", "16K", "64K", "256K", "1M"]
BIG = ("fusemax", "bert", [1024 * 4 ** k for k in range(6)],
       {"pe_dim": [2 ** k for k in range(4, 12)],
        "global_buffer_bytes": [2 ** k for k in range(14, 30, 2)]})
BIG_ARGS = ["sweep", "--mapping", "fusemax", "--workload", "bert",
            "--seq-len", ",".join(BIG_LENGTHS),
            "--param", "pe_dim=" + ",".join(str(v) for v in BIG[3]["pe_dim"]),
            "--param", "global_buffer_bytes=" + ",".join(
                str(v) for v in BIG[3]["global_buffer_bytes"])]


def key_of(point: dict, parameters: dict) -> str:
    return point_key("fusemax", "bert", "fusemax-cloud", "latency", point["seq_len"],
                     {name: point[name] for name in parameters})


def keyed_rows(points: list[dict], parameters: dict) -> list[dict]:
    return [{"point_key": key_of(p, parameters), **flat_row(p)} for p in points]


def assert_same_latency(stored: dict, fresh: dict) -> None:
    if fresh["feasible"]:
        assert stored["feasible"] is True
        assert stored["latency_s"] == pytest.approx(fresh["latency_s"], rel=1e-12)
    else:
        assert stored["feasible"] is False and stored.get("latency_s") is None


@pytest.fixture(scope="module")
def big_reference() -> dict[str, dict]:
    points = sweep(*BIG).points
    return {key_of(p, BIG[3]): p for p in points}


def run_cli(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- the store -------------------------------------------------------------------------------

def test_csv_rows_are_on_disk_after_each_batch(tmp_path):
    points = sweep(*SMALL).points
    rows = keyed_rows(points, SMALL[3])
    infeasible = [r for r in rows if not r["feasible"]]
    feasible = [r for r in rows if r["feasible"]]
    path = tmp_path / "s.csv"
    with open_store(path) as store:
        assert not path.exists()  # created by the first batch, not before
        # the first batch has no figure columns: a later batch adding them rewrites the header
        batches = [[{k: v for k, v in r.items() if k in ("point_key", "seq_len", "feasible")}
                    for r in infeasible[:3]], feasible[:4], infeasible[3:] + feasible[4:]]
        written = 0
        for batch in batches:
            store.append(batch)
            written += len(batch)
            frame = pd.read_csv(path)  # another reader, between batches
            assert len(frame) == written
            assert list(frame["point_key"]) == [r["point_key"] for b in batches for r in b][
                :written]
    assert path.read_text().count("point_key") == 1  # one header
    frame = pd.read_csv(path)
    assert {"pe_dim", "global_buffer_bytes", "seq_len", "latency_s", "energy_j",
            "utilization_array2d", "utilization_array1d", "P1"} <= set(frame.columns)
    stored = read_rows(path)
    for row in rows:
        back = stored[row["point_key"]]
        assert back["feasible"] == row["feasible"] and back["seq_len"] == row["seq_len"]
        assert back.get("latency_s") == row.get("latency_s")  # exact float round trip


def test_parquet_parts_appear_atomically_after_each_batch(tmp_path):
    rows = keyed_rows(sweep(*SMALL).points, SMALL[3])
    path = tmp_path / "s.parquet"
    with open_store(path) as store:
        assert not path.exists()
        for k in range(3):
            store.append(rows[4 * k:4 * k + 4])
            parts = sorted(p.name for p in path.iterdir())
            assert [re.sub(r"-\d+-[0-9a-f]{12}", "", p) for p in parts] == \
                [f"part-{i:05d}.parquet" for i in range(k + 1)]
            assert len(pd.read_parquet(path)) == 4 * (k + 1)
            assert ds.dataset(path, format="parquet").count_rows() == 4 * (k + 1)
    # a part a kill left half-written (temporary name) is invisible, and dropped on resume
    (path / ".part-00003.parquet.tmp").write_bytes(b"PAR1 half a part")
    assert len(read_rows(path)) == len(rows) == len(pd.read_parquet(path))
    result = run_sweep(*SMALL, out=path, resume=True, vectorize=False)
    assert not list(path.glob(".*.tmp"))
    assert result.points == sweep(*SMALL).points


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_resume_skips_completed_points(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"s{suffix}"
    run_sweep("fusemax", "bert", SMALL[2][:1], SMALL[3], out=path, vectorize=False)
    assert len(read_rows(path)) == 6
    evaluated, progress = [], []
    real = sweeps.evaluate_point
    monkeypatch.setattr(sweeps, "evaluate_point",
                        lambda *args: evaluated.append(args[2]) or real(*args))
    result = run_sweep(*SMALL, out=path, resume=True, vectorize=False,
                       progress=lambda done, total: progress.append((done, total)))
    assert evaluated == [16384] * 6  # only the points of the new sequence length
    assert progress[:2] == [(6, 12), (7, 12)] and progress[-1] == (12, 12)
    fresh = sweep(*SMALL)
    assert result.points == fresh.points and result.pareto == fresh.pareto
    assert len(read_rows(path)) == 12
    # resuming a complete store evaluates nothing and returns the same points
    evaluated.clear()
    assert run_sweep(*SMALL, out=path, resume=True, vectorize=False).points == fresh.points
    assert evaluated == []


def test_a_torn_csv_line_is_ignored_and_cut_on_resume(tmp_path):
    path = tmp_path / "s.csv"
    run_sweep("fusemax", "bert", SMALL[2][:1], SMALL[3], out=path, vectorize=False)
    whole = path.read_bytes()
    with open(path, "ab") as handle:  # a kill in the middle of writing a row
        handle.write(whole.splitlines(keepends=True)[-1][:37])
    assert len(read_rows(path)) == 6
    result = run_sweep(*SMALL, out=path, resume=True, vectorize=False)
    assert result.points == sweep(*SMALL).points
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 12 and path.read_bytes().startswith(whole)
    assert len(pd.read_csv(path)["point_key"].unique()) == 12


def test_existing_output_without_resume_is_an_error(tmp_path, capsys):
    path = tmp_path / "s.csv"
    args = ["sweep", "--seq-len", "4K", "--param", "pe_dim=64,128", "--out", str(path),
            "--json"]
    assert run_cli(capsys, *args)[0] == 0
    before = path.read_bytes()
    status, _, err = run_cli(capsys, *args)
    assert status == 2 and err.count("\n") == 1
    assert f"{path} exists; pass --resume to continue it or choose another --out" in err
    assert path.read_bytes() == before
    with pytest.raises(StoreExistsError):
        run_sweep("fusemax", "bert", [4096], {"pe_dim": [64]}, out=path)
    status, out, _ = run_cli(capsys, *args, "--resume")
    assert status == 0 and len(json.loads(out)["points"]) == 2
    assert path.read_bytes() == before  # nothing left to append
    status, _, err = run_cli(capsys, "sweep", "--seq-len", "4K", "--resume")
    assert status == 2 and "give --out" in err
    # a sweep that fails before its first point leaves no output to --resume
    status, _, err = run_cli(capsys, "sweep", "--seq-len", "4K", "--workload", "gpt9",
                             "--no-vectorize", "--out", str(tmp_path / "never.csv"))
    assert status == 2 and "gpt9" in err and not (tmp_path / "never.csv").exists()


# --- kill -9 and resume ----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["big.csv", "big.parquet"])
def test_kill_9_then_resume_stores_every_point_once(tmp_path, big_reference, name):
    path = tmp_path / name
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "einsim", *BIG_ARGS, "--out", str(path), "--no-vectorize"]
    process = subprocess.Popen(command + ["--json"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not read_rows(path) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert process.poll() is None, "the sweep finished (or failed) before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = len(read_rows(path))
    assert 0 < before < len(big_reference)

    resumed = subprocess.run(command + ["--resume", "--json"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    points = json.loads(resumed.stdout)["points"]
    assert [key_of(p, BIG[3]) for p in points] == list(big_reference)  # Cartesian order
    stored = read_rows(path)
    assert set(stored) == set(big_reference)
    # exactly once on disk, before any deduplication
    raw = pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)
    assert len(raw) == len(big_reference) and raw["point_key"].is_unique
    for key, fresh in big_reference.items():
        assert_same_latency(stored[key], fresh)


# --- vectorized dispatch ---------------------------------------------------------------------

def fake_vectorized(monkeypatch, refuse: bool = False) -> list:
    """A stand-in einsim.search.tree_sweep (same contract) that records its calls."""
    import einsim.search

    calls, evaluate_point = [], sweeps.evaluate_point
    module = types.ModuleType("einsim.search.tree_sweep")

    class NotVectorizable(Exception):
        pass

    def vectorized_points(mapping, workload, seq_lens, parameters, hardware=None,
                          objective="latency", cascade=None):
        calls.append((mapping, list(seq_lens), dict(parameters)))
        if refuse:
            raise NotVectorizable(mapping)
        return [evaluate_point(mapping, workload, n, swept, hardware, objective)
                for n, swept in design_points(seq_lens, parameters)]

    module.NotVectorizable, module.vectorized_points = NotVectorizable, vectorized_points
    monkeypatch.setitem(sys.modules, "einsim.search.tree_sweep", module)
    monkeypatch.setattr(einsim.search, "tree_sweep", module, raising=False)
    return calls


def test_a_vectorized_sweep_is_written_in_one_batch(tmp_path, monkeypatch):
    fresh = sweep(*SMALL).points
    calls = fake_vectorized(monkeypatch)
    evaluated = []
    monkeypatch.setattr(sweeps, "evaluate_point", lambda *a: evaluated.append(a))
    path = tmp_path / "v.parquet"
    result = run_sweep(*SMALL, out=path)
    assert len(calls) == 1 and evaluated == []  # no point evaluated one at a time
    assert result.engine == "vectorized"
    assert len(list(path.glob("part-*.parquet"))) == 1
    assert sorted(p.name for p in path.iterdir() if not p.name.startswith("part-")) == \
        ["_manifest.json"]
    assert result.points == fresh and len(read_rows(path)) == 12


def test_not_vectorizable_and_no_vectorize_fall_back_to_points(tmp_path, monkeypatch):
    fresh = sweep(*SMALL, vectorize=False).points
    calls = fake_vectorized(monkeypatch, refuse=True)
    assert run_sweep(*SMALL, out=tmp_path / "a.csv").points == fresh and len(calls) == 1
    calls = fake_vectorized(monkeypatch)
    assert run_sweep(*SMALL, vectorize=False).points == fresh and calls == []


def test_the_default_path_equals_the_point_path(tmp_path):
    """Vectorized when einsim.search.tree_sweep handles the sweep (else the fallback): same
    points."""
    fast = run_sweep(*SMALL, out=tmp_path / "v.csv")
    slow = {key_of(p, SMALL[3]): p for p in run_sweep(*SMALL, vectorize=False).points}
    assert [key_of(p, SMALL[3]) for p in fast.points] == list(slow)
    stored = read_rows(tmp_path / "v.csv")
    for point in fast.points:
        assert_same_latency(point, slow[key_of(point, SMALL[3])])
        assert_same_latency(stored[key_of(point, SMALL[3])], slow[key_of(point, SMALL[3])])


# --- Dask ------------------------------------------------------------------------------------

DASK = ("fusemax", "bert", [4096, 65536, 262144],
        {"pe_dim": [64, 128, 256, 512], "global_buffer_bytes": [1024, 4 * MiB, 64 * MiB]})


def assert_matches_local(points: list[dict], path: Path) -> None:
    fresh = {key_of(p, DASK[3]): p for p in sweep(*DASK).points}
    assert [key_of(p, DASK[3]) for p in points] == list(fresh)
    stored = read_rows(path)
    assert set(stored) == set(fresh) and len(pd.read_csv(path)) == len(fresh)
    for point in points:
        assert_same_latency(point, fresh[key_of(point, DASK[3])])
        assert_same_latency(stored[key_of(point, DASK[3])], fresh[key_of(point, DASK[3])])


def test_local_dask_cluster_gives_the_local_points(tmp_path):
    path = tmp_path / "d.csv"
    chunks = []
    result = run_sweep(*DASK, out=path, vectorize=False, scheduler="local:2",
                       progress=lambda done, total: chunks.append(done))
    assert chunks[0] == 0 and len(chunks) > 2 and chunks[-1] == 36  # chunk by chunk
    assert result.engine == "dask"
    assert_matches_local(result.points, path)


def test_dask_scheduler_address(tmp_path):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        path = tmp_path / "d.csv"
        result = run_sweep(*DASK, out=path, vectorize=False,
                           scheduler=cluster.scheduler_address)
        assert_matches_local(result.points, path)
        with Client(cluster) as client:  # a cluster we did not start is left running
            assert len(client.scheduler_info()["workers"]) == 2


def test_bad_scheduler_is_one_line_status_2(capsys, tmp_path):
    with pytest.raises(SchedulerError, match="local:N"):
        run_sweep(*SMALL, vectorize=False, scheduler="cluster-please")
    status, _, err = run_cli(capsys, "sweep", "--seq-len", "4K", "--no-vectorize",
                             "--scheduler", "tcp//nowhere")
    assert status == 2 and err.count("\n") == 1 and "tcp://HOST:PORT" in err


# --- Pareto front ----------------------------------------------------------------------------

def test_pareto_matches_the_all_pairs_definition():
    """The O(n log^2 n) front equals the definition, ties and duplicates included."""
    rng = random.Random(7)
    for trial in range(300):
        metrics = ("latency_s", "energy_j", "area_mm2")[:1 + trial % 3]
        values = [1.0, 2.0, 3.0] if trial % 2 else [rng.random() for _ in range(200)]
        points = [{"feasible": rng.random() > 0.1, **{m: rng.choice(values) for m in metrics}}
                  for _ in range(rng.randint(0, 80))]
        feasible = [p for p in points if p["feasible"]]
        expected = sorted((p for p in feasible if not any(
            all(q[m] <= p[m] for m in metrics) and any(q[m] < p[m] for m in metrics)
            for q in feasible)), key=lambda p: tuple(p[m] for m in metrics))
        assert [id(p) for p in pareto(points, metrics)] == [id(p) for p in expected]
