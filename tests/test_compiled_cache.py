"""The on-disk cache of compiled sweep plans (einsim.cost.compiled_cache).

* the op-list programs equal sympy's own lambdified expressions (an independent evaluation)
  on every library mapping and a few hardware presets, and a plan's inputs and infeasibility
  reasons equal the engine's;
* a sweep from a cached plan equals the compiled sweep, and the cached path imports neither
  sympy nor the cascade parser;
* hostile or broken cache files (truncated, unknown operation, index out of range, huge,
  wrong version or key, deep nesting, a symlink to /dev/zero, a FIFO, a folder) are ignored
  and rebuilt, never trusted; two processes writing one entry at once are fine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import sympy

from einsim.cost import compiled_cache as cc
from einsim.cost.expression_program import InvalidProgram, Program, compile_expressions
from einsim.search import sweeps, tree_sweep

ROOT = Path(__file__).resolve().parents[1]
GRID = {"pe_dim": [32, 256], "global_buffer_bytes": [2 ** 16, 2 ** 24],
        "dram_bandwidth": [1e11, 8e11]}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache folder and no plans remembered in the process."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("EINSIM_CACHE_DIR", str(folder))
    cc._PLANS.clear()
    cc._CODE.clear()  # the sources may change while the tests run (a shared working tree)
    yield folder
    cc._PLANS.clear()


def entry_file(folder: Path) -> Path:
    files = list(folder.glob("plan-*.json"))
    assert len(files) == 1, files
    return files[0]


# --- the programs against sympy ---------------------------------------------------------------

def _cases() -> list[tuple[str, str | None]]:
    """Every library mapping on its own hardware and on another preset of the same kind."""
    from einsim.cost.tree import load_mapping_tree, mapping_names

    others = {"flat-cloud": "fusemax-cloud", "a100": "h100", "h100": "h200"}
    cases = []
    for name in mapping_names():
        native = load_mapping_tree(name).hardware
        cases += [(name, None)] + ([(name, others[native])] if native in others else [])
    return cases


CASES = _cases()


def _engines(mapping: str, hardware):
    from einsim.cost.evaluate import compile_for, concrete_trees
    from einsim.cost.tree import load_mapping_tree

    tree = load_mapping_tree(mapping)
    return [compile_for(concrete, None, hardware)[0] for _, concrete in concrete_trees(tree, {})[0]]


@pytest.mark.parametrize("mapping, hardware", CASES)
def test_plans_equal_sympy_on_every_library_mapping(mapping, hardware):
    from einsim.cost.tree import load_mapping_tree
    from einsim.workloads import load_workload

    from einsim.errors import EinsimError

    problem = cc.problem_of(load_workload("bert", 16384))
    try:
        engines = _engines(mapping, hardware)
    except EinsimError as error:  # work in progress elsewhere: nothing for a cache to hold
        pytest.skip(f"the engine cannot compile {mapping}: {error}")
    try:
        plan = cc.build_plan(load_mapping_tree(mapping), None, hardware,
                             cc.sources(mapping, None, hardware), problem)
    except cc.NotPlannable:  # a masked cascade: the sweep runs on the engine itself
        assert isinstance(tree_sweep.prepare(mapping, hardware=hardware).plan,
                          tree_sweep._EnginePlan)
        return
    rng = np.random.default_rng(7)
    n = 64
    for engine, variant in zip(engines, plan.variants):
        given = {}
        for name in variant.parameters:  # a few whole values per parameter
            given[name] = rng.choice([1.0, 2.0, 16.0, 64.0, 128.0], n)
        overrides = {k: rng.choice(v, n).astype(float) for k, v in GRID.items()
                     if k in engine.hardware.values}
        expected_values = engine.values(problem, given, overrides)
        values = variant.values(problem, given, overrides)
        assert set(values) == set(expected_values)
        for key in values:
            np.testing.assert_array_equal(np.asarray(values[key], float),
                                          np.asarray(expected_values[key], float))
        # sympy's own evaluation of the same expressions, independently of the op list
        function = sympy.lambdify(engine.symbols + [sympy.Symbol("copies", positive=True)],
                                  engine._summary_expressions_list, "numpy")
        with np.errstate(all="ignore"):
            reference = function(*(values[k] for k in engine.symbol_names),
                                 engine.copies(values, problem.copies))
            summary = variant.summary(values, problem.copies)
        assert variant.summary_keys == engine.summary_keys
        for key, want in zip(engine.summary_keys, reference):
            got = np.broadcast_to(np.asarray(summary[key], float), (n,))
            want = np.broadcast_to(np.asarray(want, float), (n,))
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=key)
        engine_summary = engine.summary(values, problem.copies)
        np.testing.assert_array_equal(np.broadcast_to(summary["feasible"], (n,)),
                                      np.broadcast_to(engine_summary["feasible"], (n,)))
        assert variant.reasons(values, problem.copies) == \
            engine.reasons(engine.raw(values, problem.copies))


def test_the_engine_summary_is_the_program():
    engine = _engines("fusemax", None)[0]
    assert isinstance(engine.summary_program, Program)
    data = json.loads(json.dumps(engine.summary_program.to_data()))
    assert Program.from_data(data).to_data() == engine.summary_program.to_data()


def test_programs_follow_lambdify_on_each_operation():
    x, y = sympy.symbols("x y", positive=True)
    expressions = [sympy.Max(x, y, 3, evaluate=False), sympy.Min(x, 2 * y),
                   sympy.ceiling(x / y), sympy.floor(x * y / 7),
                   sympy.Piecewise((x, x > y), (y, True)), 1 / x, sympy.sqrt(x),
                   x ** sympy.Rational(3, 2), sympy.Rational(1, 3) * x, x ** 2 - y,
                   sympy.Mod(x, y), 2 ** x, x / (y * (x + 1)), -x * y, sympy.Abs(x - y),
                   sympy.exp(-x / 100), sympy.log(x + y), sympy.Float(1e-12) * x]
    program = compile_expressions(expressions, ["x", "y"])
    reference = sympy.lambdify([x, y], expressions, "numpy")
    values = (np.array([1.0, 3.0, 48.0, 96.0]), np.array([2.0, 3.0, 7.0, 48.0]))
    for got, want in zip(program(*values), reference(*values)):
        np.testing.assert_allclose(np.broadcast_to(got, (4,)), np.broadcast_to(want, (4,)),
                                   rtol=1e-14)
    assert program(96, 48)[2] == 2  # a quotient rounded up stays exact


def test_a_deep_expression_compiles():
    x = sympy.Symbol("x", positive=True)
    expression = x
    for k in range(300):
        expression = sympy.Max(expression + 1, x, evaluate=False)
    assert compile_expressions([expression], ["x"])(1.0)[0] == 301.0


@pytest.mark.parametrize("data", [
    None, [], {"inputs": [], "constants": [], "ops": []},
    {"inputs": ["x"], "constants": [], "ops": [["__import__", 0]], "outputs": [1]},
    {"inputs": ["x"], "constants": [], "ops": [["add", 0, 5]], "outputs": [1]},
    {"inputs": ["x"], "constants": [], "ops": [[["add"], 0, 0]], "outputs": [1]},
    {"inputs": ["x"], "constants": [], "ops": [["add", 0, 0.0]], "outputs": [1]},
    {"inputs": [["x"]], "constants": [], "ops": [], "outputs": [0]},
    {"inputs": ["x"], "constants": [], "ops": [["add", 0, 1]], "outputs": [1]},  # itself
    {"inputs": ["x"], "constants": [], "ops": [["add", 0, -1]], "outputs": [1]},
    {"inputs": ["x"], "constants": [], "ops": [["add", 0, True]], "outputs": [1]},
    {"inputs": ["x"], "constants": [], "ops": [["div", 0, 0, 0]], "outputs": [1]},
    {"inputs": ["x"], "constants": [], "ops": [["select", 0, 0, 0]], "outputs": [1]},
    {"inputs": ["x"], "constants": [], "ops": [], "outputs": [3]},
    {"inputs": ["x", "x"], "constants": [], "ops": [], "outputs": [0]},
    {"inputs": ["x"], "constants": ["os.system('x')"], "ops": [], "outputs": [0]},
    {"inputs": ["x"], "constants": [float("inf")], "ops": [], "outputs": [0]},
    {"inputs": ["x"], "constants": [10 ** 30], "ops": [], "outputs": [0]},
    {"inputs": ["x"], "constants": [0] * 200_000, "ops": [], "outputs": [0]},
    {"inputs": ["x"], "constants": [], "ops": [["add"] + [0] * 5_000_000], "outputs": [1]},
])
def test_malformed_programs_are_refused(data):
    with pytest.raises(InvalidProgram):
        Program.from_data(data)


# --- sweeps from the cache ---------------------------------------------------------------------

def test_a_cached_sweep_equals_the_compiled_one(cache):
    lengths = [4096, 65536]
    fresh = tree_sweep.vectorized_points("flat", "bert", lengths, GRID)
    assert len(list(cache.glob("plan-*.json"))) == 1
    cc._PLANS.clear()
    plan, found = cc.cached_plan("flat")
    assert plan is not None and found is not None and len(plan.variants) == 2
    assert tree_sweep.vectorized_points("flat", "bert", lengths, GRID) == fresh
    # and the engine itself (no plan) gives the same rows to ~1e-12
    from einsim.cost.tree import load_mapping_tree

    prepared = tree_sweep._Prepared(tree_sweep._EnginePlan(load_mapping_tree("flat"), None,
                                                           None), "flat", None, None)
    for seq_len in lengths:
        columns = tree_sweep.columns_of(prepared, "bert", seq_len, GRID)
        cached = tree_sweep.columns_of(tree_sweep.prepare("flat", GRID), "bert", seq_len, GRID)
        for key in ("latency_s", "energy_j", "buffer_bytes", "parameter:rows"):
            np.testing.assert_allclose(cached[key], columns[key], rtol=1e-12)
        assert list(cached["error"]) == list(columns["error"])
        assert list(cached["parameter:row_buffer"]) == list(columns["parameter:row_buffer"])


@pytest.mark.parametrize("mapping, cascade", [("fusemax", None), ("flat", None),
                                              ("unfused", None), ("fusemax", "causal-fusemax")])
def test_lengths_evaluated_together_equal_one_at_a_time(mapping, cascade):
    lengths = [1024, 4096, 65536]
    together = tree_sweep.vectorized_points(mapping, "bert", lengths, GRID, cascade=cascade)
    alone = [row for n in lengths
             for row in tree_sweep.vectorized_points(mapping, "bert", [n], GRID,
                                                     cascade=cascade)]
    assert together == alone


def test_the_cached_run_sweep_equals_the_point_path():
    small = ("fusemax", "bert", [4096, 16384], {"pe_dim": [64, 256],
                                                  "global_buffer_bytes": [1024, 2 ** 24]})
    sweeps.run_sweep(*small)  # compiles and caches
    cc._PLANS.clear()
    fast = sweeps.run_sweep(*small)
    slow = sweeps.run_sweep(*small, vectorize=False)
    assert fast.engine == "vectorized" and len(fast.points) == len(slow.points) == 8
    for a, b in zip(fast.points, slow.points):
        assert a["feasible"] == b["feasible"]
        if a["feasible"]:
            assert a["latency_s"] == pytest.approx(b["latency_s"], rel=1e-12)
            assert a["P1"] == b["P1"]
        else:
            assert a["error"] == b["error"]


@pytest.mark.parametrize("mapping, hardware, cascade", [
    ("fusemax", None, None), ("flat", "fusemax-cloud", None), ("flash-attention-2", None, None),
    ("fusemax-arch", None, "fusemax"), (str(ROOT / "mappings" / "unfused.yaml"), None, None)])
def test_the_cached_experiment_and_checks_equal_the_loaded_ones(mapping, hardware, cascade):
    from einsim.search.manifest import experiment

    parameters = {"pe_dim": [64], "global_buffer_bytes": [2 ** 20]}
    tree_sweep.prepare(mapping, parameters, hardware, cascade=cascade)  # compiles and caches
    cached = sweeps._cached(mapping, hardware, cascade)
    assert cached is not None
    assert sweeps._experiment(mapping, "bert", hardware, "latency", parameters, cascade,
                              cached) == experiment(mapping, "bert", hardware, "latency",
                                                    parameters, cascade)
    for bad in ({"pe_dimm": [4]}, {"pe_dim": [0]}, {"P1": [1.5]}, {"rows": [0]},
                {"TQ": [0]}, {"clock_hz": [-1]}):
        errors = []
        for facts in (cached, None):
            try:
                sweeps._check_names(mapping, hardware, bad, facts)
                errors.append(None)
            except Exception as error:  # noqa: BLE001 - the two must fail alike
                errors.append((type(error), str(error)))
        assert errors[0] == errors[1]


def test_an_edited_mapping_or_hardware_file_is_another_entry(tmp_path):
    mapping = tmp_path / "mine.yaml"
    mapping.write_text((ROOT / "mappings" / "fusemax.yaml").read_text())
    hardware = tmp_path / "hw.yaml"
    hardware.write_text((ROOT / "hw_models" / "presets" / "fusemax-cloud.yaml").read_text())
    first = cc.sources(str(mapping), None, str(hardware)).key
    mapping.write_text(mapping.read_text().replace("default: 1\n", "default: 2\n"))
    second = cc.sources(str(mapping), None, str(hardware)).key
    hardware.write_text(hardware.read_text().replace("read_pj_per_row: 484.97",
                                                     "read_pj_per_row: 500"))
    third = cc.sources(str(mapping), None, str(hardware)).key
    assert len({first, second, third}) == 3


def test_an_empty_cache_dir_setting_turns_the_cache_off(monkeypatch, cache):
    monkeypatch.setenv("EINSIM_CACHE_DIR", "")
    assert cc.sources("fusemax") is None
    rows = tree_sweep.vectorized_points("unfused", "bert", [4096], {"pe_dim": [64]})
    assert rows[0]["feasible"] and not cache.exists()


CHECK = """
import json, sys
from einsim.cli import main
status = main(sys.argv[1:])
heavy = sorted(m for m in ("sympy", "lark", "networkx", "einsim.cost.engine",
                           "einsim.language.parser") if m in sys.modules)
sys.stderr.write("HEAVY " + json.dumps(heavy) + "\\n")
sys.exit(status)
"""
SWEEP = ["sweep", "--mapping", "fusemax", "--seq-len", "1K,64K", "--param", "pe_dim=32,256",
         "--param", "global_buffer_bytes=65536,16777216", "--param", "clock_hz=5e8,1e9",
         "--json"]


def run_cli(cache: Path, *args: str) -> tuple[dict, list[str]]:
    env = {**os.environ, "EINSIM_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHECK, *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    heavy = json.loads(done.stderr.split("HEAVY ", 1)[1].splitlines()[0])
    return json.loads(done.stdout), heavy


def test_a_cache_hit_imports_neither_sympy_nor_the_parser(cache):
    cold, heavy = run_cli(cache, *SWEEP)
    assert "sympy" in heavy
    for attempt in range(2):  # once more if the sources were edited in between (a new key)
        warm, heavy = run_cli(cache, *SWEEP)
        if not heavy:
            break
    assert heavy == [] and warm == cold and len(warm["points"]) == 16


# --- hostile and broken files -----------------------------------------------------------------

def _tamper(path: Path, change) -> None:
    """Rewrite the entry's body with ``change`` and a matching checksum (a hostile writer)."""
    envelope = json.loads(path.read_text())
    change(envelope["body"])
    envelope["checksum"] = cc._checksum(envelope["body"])
    path.write_text(json.dumps(envelope))


def _corrupt(path: Path) -> None:
    """Change one number and keep the old checksum (a flipped bit on disk)."""
    envelope = json.loads(path.read_text())
    constants = envelope["body"]["variants"][0]["summary"]["constants"]
    index = next(k for k, c in enumerate(constants) if type(c) is float)
    constants[index] *= 2
    path.write_text(json.dumps(envelope))


def _program(body):
    return body["variants"][0]["summary"]


HOSTILE = {
    "truncated": lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]),
    "empty": lambda p: p.write_text(""),
    "not json": lambda p: p.write_bytes(b"\x00\xff garbage"),
    "a list": lambda p: p.write_text("[1, 2, 3]"),
    "deep nesting": lambda p: p.write_text("[" * 200_000 + "]" * 200_000),
    "too large": lambda p: p.write_bytes(b" " * (cc.MAX_BYTES + 10)),
    "wrong version": lambda p: p.write_text(p.read_text().replace(
        f'"version": {cc.VERSION}', '"version": 999')),
    "wrong key": lambda p: p.write_text(p.read_text().replace(p.stem[5:], "0" * 64)),
    "changed number": lambda p: _corrupt(p),
    "unknown op": lambda p: _tamper(p, lambda b: _program(b)["ops"][0].__setitem__(0, "eval")),
    "index out of range": lambda p: _tamper(
        p, lambda b: _program(b)["ops"][-1].__setitem__(1, 10 ** 6)),
    "forward reference": lambda p: _tamper(
        p, lambda b: _program(b)["ops"][0].__setitem__(1, len(_program(b)["inputs"]) + 10 ** 4)),
    "huge constants": lambda p: _tamper(
        p, lambda b: _program(b)["constants"].extend([1.5] * 200_000)),
    "code as a constant": lambda p: _tamper(
        p, lambda b: _program(b)["constants"].append("__import__('os').system('true')")),
    "extra field": lambda p: _tamper(p, lambda b: b["variants"][0].__setitem__("exec", "x")),
    "outputs mismatch": lambda p: _tamper(p, lambda b: _program(b)["outputs"].pop()),
    "no variants": lambda p: _tamper(p, lambda b: b.__setitem__("variants", [])),
    "symlink to /dev/zero": lambda p: (p.unlink(), os.symlink("/dev/zero", p)),
    "a fifo": lambda p: (p.unlink(), os.mkfifo(p)),
    "a folder": lambda p: (p.unlink(), p.mkdir()),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_or_broken_entry_is_ignored_and_rebuilt(cache, kind):
    parameters = {"pe_dim": [64, 256], "global_buffer_bytes": [2 ** 16, 2 ** 24]}
    fresh = tree_sweep.vectorized_points("unfused", "bert", [4096], parameters)
    path = entry_file(cache)
    HOSTILE[kind](path)
    cc._PLANS.clear()
    assert cc.cached_plan("unfused")[0] is None  # ignored, never trusted
    assert tree_sweep.vectorized_points("unfused", "bert", [4096], parameters) == fresh
    if kind != "a folder":  # rebuilt: a valid entry again (a folder in the way stays)
        cc._PLANS.clear()
        assert cc.cached_plan("unfused")[0] is not None
        assert not path.is_symlink()
    assert not list(cache.glob(".plan-*"))  # no temporary file left behind


def test_an_unwritable_cache_is_no_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EINSIM_CACHE_DIR", str(blocker / "cache"))
    rows = tree_sweep.vectorized_points("unfused", "bert", [4096], {"pe_dim": [64]})
    assert rows[0]["feasible"]


def test_concurrent_writers_leave_one_valid_entry(cache):
    found = cc.sources("unfused")
    tree_sweep.prepare("unfused")
    body = cc.read_entry(found.key)
    assert body is not None
    threads = [threading.Thread(target=cc.write_entry, args=(found.key, body))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cc.read_entry(found.key) == body
    assert [p.name for p in cache.iterdir()] == [f"plan-{found.key}.json"]


def test_two_processes_building_one_entry_at_once(cache):
    env = {**os.environ, "EINSIM_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "einsim", *SWEEP]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env, cwd=ROOT, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    assert json.loads(outputs[0][0]) == json.loads(outputs[1][0])
    path = entry_file(cache)
    assert not list(cache.glob(".plan-*"))
    body = cc.read_entry(path.stem[len("plan-"):])  # valid under its own key
    assert body is not None and cc.SweepPlan(body).name == "fusemax"
