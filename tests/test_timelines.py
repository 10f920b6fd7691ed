"""Schedules of one iteration from the loop tree (einsim.cost.timeline), their figures, the
roofline, Chrome / Perfetto traces and the --trace options.

Expected spans are computed here from the per-Einsum cycles a Report states (sum over a
sequence, max over a pipeline plus its fill share, max(chain, W x busiest unit) for
warpgroups) and the loops' trip counts by hand; totals are checked against the engine's own
compute cycles and GPU kernel facts.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml

from einsim.cli import main
from einsim.cost.engine import Problem
from einsim.cost.evaluate import compile_for
from einsim.cost.timeline import FILL, grid_waves, schedules, schedules_of
from einsim.cost.tree import load_mapping_tree, mapping_from_document
from einsim.errors import EinsimError, MappingError
from einsim.kernels.decode import estimate
from einsim.traces import chrome_trace, write_trace
from hw_models.gpu_sm import load_gpu

SPATIAL = ["fusemax", "flat", "fusemax-arch", "fusemax-cascade", "unfused"]
BERT = {"M": 16384, "P": 16384, "E": 64, "F": 64}  # one BERT head at 16K tokens
BERT_COPIES = 64 * 12


def evaluated(tree, sizes, copies, parameters=None, hardware=None):
    """(report, schedules, raw values) of a tree at fixed parameters."""
    if isinstance(tree, str):
        tree = load_mapping_tree(tree)
    if tree.structural:
        tree = tree.concrete({n: tree.choices(n)[0] for n in tree.structural})
    engine, _ = compile_for(tree, None, hardware)
    problem = Problem("bert", dict(sizes), copies, sizes["M"])
    report = engine.report(problem, parameters)
    values = engine.values(problem, parameters)
    return report, schedules(engine, values, copies), engine.raw(values, copies)


def per_leaf(report) -> dict[str, float]:
    """The report's cycles of each Einsum per (batch, head)."""
    return {e.name: e.cycles / BERT_COPIES for e in report.einsums}


def close(a, b):
    return a == pytest.approx(b, rel=1e-9, abs=1e-9)


def overlaps(a, b) -> bool:
    return min(a.end, b.end) - max(a.start, b.start) > 1e-9


def check_well_formed(schedule):
    """Every interval inside the iteration; no two on one lane at once."""
    for i in schedule.intervals:
        assert -1e-9 <= i.start <= i.end <= schedule.span * (1 + 1e-12) + 1e-9
    by_lane = {}
    for i in schedule.intervals:
        by_lane.setdefault(schedule.lane(i), []).append(i)
    for lane, rows in by_lane.items():
        rows.sort(key=lambda i: i.start)
        for a, b in zip(rows, rows[1:]):
            assert not overlaps(a, b), (schedule.mapping, lane, a, b)


# ------------------------------------------------------------------------ spatial arrays


@pytest.fixture(scope="module")
def spatial():
    return {name: evaluated(name, BERT, BERT_COPIES) for name in SPATIAL}


@pytest.mark.parametrize("name", SPATIAL)
def test_array_schedule_total_is_the_engines_compute_time(spatial, name):
    report, found, raw = spatial[name]
    (schedule,) = found
    assert close(schedule.total, float(raw[("compute_cycles",)]))
    # one iteration x its trips, plus what runs outside the loop, is the whole run
    assert close(schedule.span * schedule.trips + sum(schedule.outside.values()),
                 schedule.total)
    check_well_formed(schedule)


def test_fusemax_iteration_by_hand(spatial):
    """Scope: the P0 loop around the pipeline; I = P/(P1 P0) x M/M0 x P1 iterations."""
    report, (schedule,), _ = spatial["fusemax"]
    cycles = per_leaf(report)
    iterations = 16384 // 256 * (16384 // 256)
    array2d = sum(cycles[e] for e in ("BQK", "LM", "SLN", "SLD", "SLNV")) / iterations
    array1d = sum(cycles[e] for e in ("RM", "PRM", "SPD", "RD", "SPNV", "RNV")) / iterations
    slowest = max(array2d, array1d)
    assert schedule.variable == "p" and close(schedule.trips, iterations)
    assert close(schedule.span, slowest + (array2d + array1d - slowest) / iterations)
    assert close(schedule.fill, (array2d + array1d - slowest) / iterations)
    assert set(schedule.outside) == {"AV"}
    # the arrays overlap, each Einsum on a tile whose inputs are ready when it starts
    assert any(overlaps(a, b) for a in schedule.intervals if a.unit == "array2d"
               for b in schedule.intervals if b.unit == "array1d")
    stages = {i.einsum: i.stage for i in schedule.intervals if i.kind == "compute"}
    assert stages == {"BQK": 0, "LM": 0, "SLN": 1, "SLD": 1, "SLNV": 1, "RM": 1, "PRM": 1,
                      "SPD": 2, "RD": 2, "SPNV": 2, "RNV": 2}
    check_data_flow(schedule.intervals, report.cascade)


def check_data_flow(intervals, cascade_name):
    """Every read is done before its reader starts: the same tile of a producer ran in an
    earlier iteration (higher stage) or earlier in this one; a recurrence's previous step
    likewise one tile earlier."""
    from einsim import library
    from einsim.analysis.graph import dependency_graph

    graph = dependency_graph(library.load(cascade_name))
    at = {i.einsum: i for i in intervals if i.kind == "compute"}
    for e, reader in at.items():
        for p in graph.predecessors(e):
            if p == e or p not in at:
                continue
            needed = reader.stage + int(graph.edges[p, e]["loop_carried"])  # tiles behind
            writer = at[p]
            assert writer.stage < needed or (writer.stage == needed
                                              and writer.end <= reader.start + 1e-9), (p, e)


def test_flat_iteration_by_hand(spatial):
    """Pipeline of (QK; AV) on the 2D array and the softmax on the 1D array, per row block;
    loops inside the block are folded into each bar."""
    report, (schedule,), _ = spatial["flat"]
    cycles = per_leaf(report)
    blocks = 16384 // 256
    array2d = (cycles["QK"] + cycles["AV"]) / blocks
    array1d = sum(cycles[e] for e in ("GM", "SN", "SD", "A")) / blocks
    slowest = max(array2d, array1d)
    assert close(schedule.span, slowest + (array2d + array1d - slowest) / blocks)
    assert all(i.repeat > 1 for i in schedule.intervals if i.kind == "compute")
    # three tiles in flight: QK of tile t, the softmax of t - 1, AV of t - 2
    stages = {i.einsum: i.stage for i in schedule.intervals if i.kind == "compute"}
    assert stages == {"QK": 0, "GM": 1, "SN": 1, "SD": 1, "A": 1, "AV": 2}
    check_data_flow(schedule.intervals, report.cascade)


def test_sequential_trees_add_up(spatial):
    """No pipeline: fusemax-arch's tile runs its Einsums one after another; unfused is one
    sequence over the whole tree."""
    report, (schedule,), _ = spatial["fusemax-arch"]
    cycles = per_leaf(report)
    iterations = 64 * 64
    assert close(schedule.span, sum(c for e, c in cycles.items() if e != "AV") / iterations)
    assert not any(overlaps(a, b) for a in schedule.intervals for b in schedule.intervals
                   if a is not b)
    report, (schedule,), _ = spatial["unfused"]
    assert schedule.variable is None and schedule.trips == 1
    assert close(schedule.span, sum(per_leaf(report).values()))


# ------------------------------------------------------------------------ GPUs


CALIBRATION = {"M": 8448, "P": 8448, "E": 128, "F": 128}  # batch 4, 16 heads (reference)


@pytest.fixture(scope="module")
def gpus():
    return {name: evaluated(name, CALIBRATION, 64, parameters)
            for name, parameters in (("flash-attention-2", {"TQ": 128, "M0": 64}),
                                     ("flash-attention-3", {"TQ": 128, "M0": 176}),
                                     ("flash-attention-4", {"TQ": 128, "M0": 128}))}


def leaf_cycles(report, copies=64):
    return {e.name: e.cycles / copies for e in report.einsums}


@pytest.mark.parametrize("name", ["flash-attention-2", "flash-attention-3",
                                  "flash-attention-4"])
def test_gpu_cta_compute_is_the_kernels_chunk_time(gpus, name):
    report, (schedule,), raw = gpus[name]
    kernel = schedule.kernel
    assert close(schedule.total, kernel["chunk_cycles"]) and not schedule.memory_bound
    assert close(schedule.span * schedule.trips + sum(schedule.outside.values()),
                 schedule.total)
    waves = grid_waves(kernel, schedule.clock_hz)
    assert close(sum(w["count"] * w["cycles"] for w in waves), kernel["cycles"])
    assert sum(w["count"] * w["ctas"] for w in waves) == report.parameters["ctas"]
    assert close(kernel["cycles"] / schedule.clock_hz, report.latency_s)
    check_well_formed(schedule)


def test_fa2_iteration_is_the_sum_of_its_leaves(gpus):
    report, (schedule,), _ = gpus["flash-attention-2"]
    cycles = leaf_cycles(report)
    sms = load_gpu("a100").sms
    iterations = math.ceil(math.ceil(8448 / 128) / sms) * math.ceil(8448 / 64)
    assert schedule.variable == "m1" and close(schedule.trips, iterations)
    assert close(schedule.span, sum(c for e, c in cycles.items() if e != "AV") / iterations)
    # softmax serialized after the GEMMs: nothing overlaps, least of all the tensor cores
    # and the exponentials
    assert not any(overlaps(a, b) for a in schedule.intervals for b in schedule.intervals
                   if a is not b)


def test_fa3_iteration_by_hand(gpus):
    """Warpgroups: max(one chain, 2 x the tensor cores); a chain is S, then PV beside the
    softmax (plus the pipeline's fill share)."""
    report, (schedule,), _ = gpus["flash-attention-3"]
    iterations = math.ceil(8448 / 176)
    c = {e: v / iterations for e, v in leaf_cycles(report).items()}
    softmax = c["LM"] + c["RM"] + c["PS"] + c["C"] + c["LD"] + c["RD"] + c["RNV"]
    slowest = max(c["PV"], softmax)
    chain = c["S"] + slowest + (c["PV"] + softmax - slowest) / iterations
    assert schedule.positions == 2
    assert close(schedule.span, max(chain, 2 * (c["S"] + c["PV"])))
    # the exponentials of one tile run while the tensor cores compute: overlap on the SM
    tensor = [i for i in schedule.intervals if i.unit == "tensor_core"]
    exps = [i for i in schedule.intervals if i.unit == "exp_unit"]
    assert any(overlaps(a, b) for a in tensor for b in exps if a.position == b.position)
    # the tensor cores never idle: ping-pong fills the period
    assert close(sum(i.cycles for i in tensor), schedule.span)
    assert {i.stage for i in tensor if i.einsum == "PV"} == {1}  # the previous tile's PV
    # warpgroup 0 (nothing wrapped): the softmax of this tile, the rescale once PV is done
    first = [i for i in schedule.intervals if i.position == 0]
    stages = {i.einsum: i.stage for i in first if i.kind == "compute"}
    assert {e for e, stage in stages.items() if stage == 0} == {"S", "LM", "RM", "PS", "C",
                                                                "LD", "RD"}
    assert stages["PV"] == 1 and stages["RNV"] >= 1
    check_data_flow(first, report.cascade)


def test_fa3_without_intra_warpgroup_overlap_has_none(tmp_path):
    """The pipeline replaced by a sequence (and no ping-pong): the exponentials of a
    warpgroup wait for the tensor cores, as in FlashAttention-2."""
    document = yaml.safe_load(open("mappings/flash-attention-3.yaml"))
    loop = document["tree"][5]["sequence"][0]
    loop[:] = [node for node in loop if "spatial" not in node]
    body = loop[-1]["sequence"]
    pv, softmax = body[1][0]["pipeline"]
    steps = softmax[0]["sequence"]
    body[:] = [body[0], steps[0], steps[1], pv, steps[2]]  # PV before RNV, which reads it
    document["name"] = "fa3-sequential"
    _, (schedule,), _ = evaluated(mapping_from_document(document), CALIBRATION, 64,
                                  {"TQ": 128, "M0": 176})
    assert schedule.positions == 1 and schedule.fill == 0
    tensor = [i for i in schedule.intervals if i.unit == "tensor_core"]
    exps = [i for i in schedule.intervals if i.unit == "exp_unit"]
    assert tensor and exps and not any(overlaps(a, b) for a in tensor for b in exps)


def test_fa4_splits_the_exponentials_over_two_units(gpus):
    _, (schedule,), _ = gpus["flash-attention-4"]
    ps = [i for i in schedule.intervals if i.einsum == "PS" and i.position == 0]
    assert {i.unit for i in ps} == {"exp_unit", "fp32"}
    assert len({(i.start, i.end) for i in ps}) == 1  # both finish together


DECODE = [("decode-fa2", {"M0": 128}), ("flash-decoding", {"M0": 128, "M1": 16}),
          ("lean-attention", {"M0": 128, "M1": 1})]


@pytest.mark.parametrize("name, parameters", DECODE)
def test_decode_trees_kernels_add_up(name, parameters):
    """One schedule per kernel; its waves last the kernel's cycles; the kernels of the
    sequence add up to the latency; decode CTAs wait for memory."""
    report, found, raw = evaluated(name, {"M": 32768, "P": 1, "E": 128, "F": 128}, 32,
                                   parameters, "h100")
    assert len(found) == (1 if name == "decode-fa2" else 2)
    assert [s.kernel["index"] for s in found] == list(range(len(found)))
    clock = found[0].clock_hz
    assert close(sum(s.kernel["cycles"] for s in found) / clock, report.latency_s)
    for schedule in found:
        waves = grid_waves(schedule.kernel, clock)
        assert close(sum(w["count"] * w["cycles"] for w in waves), schedule.kernel["cycles"])
        assert schedule.total <= schedule.kernel["chunk_cycles"] * (1 + 1e-12)
        check_well_formed(schedule)
    assert found[0].memory_bound
    assert found[-1].kernel["persistent"] is False
    if name == "lean-attention":
        assert found[0].kernel["persistent"] and len(grid_waves(found[0].kernel)) == 1


def test_schedule_at_a_chosen_loop_and_errors(spatial):
    report, _, _ = spatial["fusemax"]
    (whole,) = schedules_of(report, at="tree")
    assert whole.variable is None and close(whole.span, whole.total)
    (outer,) = schedules_of(report, at="tree[3].sequence[0][0]")  # the M1 loop
    assert outer.variable == "m1" and close(outer.span * outer.trips
                                            + sum(outer.outside.values()), outer.total)
    with pytest.raises(MappingError, match="no such loop"):
        schedules_of(report, at="tree[9]")
    with pytest.raises(MappingError, match="expected a loop node"):
        schedules_of(report, at="tree[0]")


def test_schedule_of_a_report_needs_its_tree():
    report, _, _ = evaluated("fusemax", BERT, BERT_COPIES)
    renamed = report.model_copy(update={"mapping": "not-a-mapping"})
    with pytest.raises(EinsimError, match="not-a-mapping"):
        schedules_of(renamed)
    from einsim.plots.cost import pipeline_gantt_figure

    figure = pipeline_gantt_figure(renamed)  # a placeholder saying why, not a crash
    assert "not-a-mapping" in figure.layout.annotations[0].text


# ------------------------------------------------------------------------ figures


def test_pipeline_gantt_shows_staged_tiles(spatial):
    from einsim.plots.cost import pipeline_gantt_figure
    from einsim.plots.timelines import pipeline_gantt_figure as from_schedule

    report, (schedule,), _ = spatial["fusemax"]
    figure = pipeline_gantt_figure(report, tiles=3, workload=None)
    names = {trace.name for trace in figure.data}
    assert {"tile 0", "tile 1", "tile 2", "earlier tiles"} <= names  # 1D's tile -1 at first
    lanes = {y for trace in figure.data for y in trace.y}
    assert {"array2d", "array1d", "fill/drain"} == lanes
    assert figure.layout.xaxis.range[1] == pytest.approx(3 * schedule.span)
    assert len(from_schedule(schedule, iterations=1).data) == 2  # tile 0 and earlier tiles


def test_sm_timeline_has_warpgroup_lanes_and_waves(gpus):
    from einsim.plots.timelines import sm_timeline_figure

    _, found, _ = gpus["flash-attention-3"]
    figure = sm_timeline_figure(found)
    lanes = {y for trace in figure.data for y in trace.y}
    assert {"tensor_core wg0", "tensor_core wg1", "exp_unit wg1", "kernel 0"} <= lanes
    waves = [t for t in figure.data if t.name == "kernel 0"][0]
    assert len(waves.x) == sum(w["count"] for w in grid_waves(found[0].kernel))
    with pytest.raises(ValueError):
        sm_timeline_figure(evaluated("fusemax", BERT, BERT_COPIES)[1])


def test_roofline_points_stay_under_the_roofs():
    from einsim.plots.roofline import roofline_figure, roofline_points, roofs

    chosen = ["flash-attention-2", "flash-attention-3", "flash-attention-4", "decode-fa2",
              "fusemax"]
    points = roofline_points("h100", "bert", 4096, chosen)
    by = {p["mapping"]: p for p in points}
    assert "fusemax" not in by  # a spatial-array tree
    assert "tensor_memory" in by["flash-attention-4"]["skipped"]  # Blackwell only
    assert by["decode-fa2"]["shape"] == "decode" and by["flash-attention-3"]["shape"] == \
        "prefill"
    machine = roofs("h100")
    peak = sum(value for _, value in machine["compute"])
    bandwidth = machine["bandwidth"][0][1]
    for p in points:
        if "skipped" in p:
            continue
        attained = p["flops"] / p["seconds"]
        assert attained <= min(peak, bandwidth * p["flops"] / p["bytes"]) * (1 + 1e-9)
    assert by["flash-attention-3"]["flops"] / by["flash-attention-3"]["seconds"] > \
        by["flash-attention-2"]["flops"] / by["flash-attention-2"]["seconds"]
    extra = {"name": "mine", "flops": 1e12, "bytes": 1e9, "seconds": 1e-2}
    figure = roofline_figure("h100", [extra], variants=False)
    assert [t.name for t in figure.data][-1] == "mine"


# ------------------------------------------------------------------------ traces


def check_trace(document):
    """The Chrome trace-event structure Perfetto loads, and slices that nest per thread."""
    document = json.loads(json.dumps(document))
    events = document["traceEvents"]
    named = {(e["pid"], e["tid"]) for e in events
             if e["ph"] == "M" and e["name"] == "thread_name"}
    processes = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    slices = [e for e in events if e["ph"] == "X"]
    assert slices and {e["ph"] for e in events} <= {"X", "M"}
    by_thread = {}
    for e in slices:
        assert {"name", "ph", "ts", "dur", "pid", "tid"} <= set(e)
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert e["ts"] >= 0 and e["dur"] >= 0 and isinstance(e["name"], str)
        assert (e["pid"], e["tid"]) in named and e["pid"] in processes
        by_thread.setdefault((e["pid"], e["tid"]), []).append(e)
    for rows in by_thread.values():
        rows.sort(key=lambda e: e["ts"])
        for a, b in zip(rows, rows[1:]):
            assert b["ts"] >= a["ts"] + a["dur"] - 1e-6 * max(1.0, a["dur"])
    return document


def test_trace_of_schedules_decode_and_steps(spatial, gpus):
    _, fusemax, _ = spatial["fusemax"]
    _, fa3, _ = gpus["flash-attention-3"]
    decode = estimate(load_gpu("h100"), "flash-decoding", batch=2, heads=8, head_dim=128,
                      context=8192)
    document = check_trace(chrome_trace(fusemax + fa3, iterations=2, decode=decode,
                                        steps=[("gpu0", "prefill", 0.0, 1e-3),
                                               ("gpu1", "attention", 5e-4, 2e-3)],
                                        metadata={"why": "test"}))
    events = document["traceEvents"]
    names = [e["args"]["name"] for e in events if e["name"] == "process_name"]
    assert len(names) == 6 and any("grid" in n for n in names) and "gpu1" in names
    # microseconds: a slice lasts its cycles over the clock
    s = next(e for e in events if e["ph"] == "X" and e["name"] == "S")
    assert s["dur"] == pytest.approx(s["args"]["cycles"] / fa3[0].clock_hz * 1e6)
    # two iterations of FuseMax end at two spans (fill share included)
    pid = next(e["pid"] for e in events if e["name"] == "process_name"
               and e["args"]["name"].startswith("fusemax"))
    end = max(e["ts"] + e["dur"] for e in events if e["ph"] == "X" and e["pid"] == pid)
    assert end == pytest.approx(2 * fusemax[0].span / fusemax[0].clock_hz * 1e6)
    ctas = [e for e in events if e["ph"] == "X" and e["cat"] == "cta"]
    assert len(ctas) == decode.ctas and document["metadata"] == {"why": "test"}
    fills = [e for e in events if e["name"] == FILL]  # one share per iteration (and position)
    assert sum(e["pid"] == pid for e in fills) == 2 and len(fills) == 2 + 2 * 2


def test_trace_steps_are_checked(tmp_path):
    with pytest.raises(EinsimError, match="device step 0"):
        chrome_trace(steps=[("gpu0", "x", 2.0, 1.0)])
    with pytest.raises(EinsimError, match="device step 1"):
        chrome_trace(steps=[("gpu0", "x", 0.0, 1.0), ("gpu0",)])
    path = write_trace(tmp_path / "t.json", chrome_trace(steps=[("d", "s", 0, 1e-6)]))
    assert check_trace(json.loads(path.read_text()))["traceEvents"][-1]["dur"] == \
        pytest.approx(1.0)


# ------------------------------------------------------------------------ command line


def run_cli(capsys, *args):
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_evaluate_trace_writes_a_loadable_trace(capsys, tmp_path):
    path = tmp_path / "fa3.json"
    status, out, err = run_cli(capsys, "evaluate", "--mapping", "flash-attention-3",
                               "--seq-len", "4K", "--trace", str(path), "--json")
    assert status == 0, err
    document = check_trace(json.loads(path.read_text()))
    assert json.loads(out)["mapping"] == "flash-attention-3"
    assert document["metadata"]["mappings"] == ["flash-attention-3"]
    lanes = {e["args"]["name"] for e in document["traceEvents"] if e["name"] == "thread_name"}
    assert {"tensor_core wg0", "exp_unit wg1", "kernel 0 (tree[2])"} <= lanes


def test_evaluate_trace_of_both_default_mappings(capsys, tmp_path):
    path = tmp_path / "both.json"
    status, _, err = run_cli(capsys, "evaluate", "--seq-len", "4K", "--trace", str(path))
    assert status == 0 and f"wrote {path}" in err
    names = [e["args"]["name"] for e in check_trace(json.loads(path.read_text()))
             ["traceEvents"] if e["name"] == "process_name"]
    assert [n.split()[0] for n in names] == ["flat", "fusemax"]


@pytest.mark.parametrize("command", [["evaluate", "--mapping", "fusemax"],
                                     ["decode", "--schedule", "fa2"]])
def test_trace_to_an_unwritable_path_is_one_line(capsys, tmp_path, command):
    missing = tmp_path / "no" / "such" / "t.json"
    status, out, err = run_cli(capsys, *command, "--trace", str(missing))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("einsim: error: --trace")
    status, _, err = run_cli(capsys, *command, "--trace", str(tmp_path))  # a folder
    assert status == 2 and err.count("\n") == 1 and str(tmp_path) in err
    assert not missing.exists()


def test_decode_trace_lists_every_cta(capsys, tmp_path):
    path = tmp_path / "decode.json"
    status, _, err = run_cli(capsys, "decode", "--schedule", "flash-decoding", "--batch", "2",
                             "--trace", str(path), "--json")
    assert status == 0, err
    document = check_trace(json.loads(path.read_text()))
    ctas = [e for e in document["traceEvents"] if e["ph"] == "X" and e["cat"] == "cta"]
    assert len(ctas) == document["metadata"]["ctas"]
    assert any(e["name"] == "merge partial states" for e in document["traceEvents"])
    status, _, err = run_cli(capsys, "decode", "--batch", "1e6", "--trace", str(path) + "2")
    assert status == 2 and "SM timeline of 32,000,000 CTAs" in err
