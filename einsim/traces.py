"""Export schedules as Chrome / Perfetto trace files (the JSON ``traceEvents`` format).

Open the file at https://ui.perfetto.dev (or ``chrome://tracing``).  Every slice is a
complete event (``"ph": "X"``) with a start ``ts`` and a duration ``dur`` in microseconds;
each schedule is a process (``pid``) and each unit, SM slot or device a thread (``tid``),
named by metadata events (``"ph": "M"``).  What can be exported:

* a mapping's schedule (:mod:`einsim.cost.timeline`): a few iterations of its scope loop on
  each unit — the spatial-array pipeline or one CTA's iteration on an SM — and, on a GPU, the
  waves of CTAs of each kernel;
* a decode estimate's CTAs on their SM slots (``einsim.kernels.decode.estimate(...)``);
* device steps: ``(device, name, start_s, end_s)`` tuples (offloading, sequence parallelism).

>>> trace = chrome_trace(steps=[("gpu0", "attention", 0.0, 1e-3)])
>>> [e["ph"] for e in trace["traceEvents"]]
['M', 'M', 'X']
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from einsim.cost.timeline import Schedule, grid_waves
from einsim.errors import EinsimError

WAVE_EVENTS = 10_000
"""Waves of one kernel written one by one; beyond, each run of equal waves is one slice."""


class _Trace:
    """Events with process and thread ids given out by name."""

    def __init__(self):
        self.events: list[dict] = []
        self.processes: dict[str, int] = {}
        self.threads: dict[tuple[int, str], int] = {}

    def pid(self, name: str) -> int:
        if name not in self.processes:
            self.processes[name] = pid = len(self.processes) + 1
            self.events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                                "args": {"name": name}})
            self.events.append({"name": "process_sort_index", "ph": "M", "pid": pid,
                                "tid": 0, "args": {"sort_index": pid}})
        return self.processes[name]

    def tid(self, pid: int, name: str) -> int:
        key = (pid, name)
        if key not in self.threads:
            self.threads[key] = tid = 1 + sum(1 for p, _ in self.threads if p == pid)
            self.events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                                "args": {"name": name}})
            self.events.append({"name": "thread_sort_index", "ph": "M", "pid": pid,
                                "tid": tid, "args": {"sort_index": tid}})
        return self.threads[key]

    def slice(self, pid: int, tid: int, name: str, start_s: float, seconds: float,
              category: str, args: dict | None = None) -> None:
        self.events.append({"name": name, "cat": category, "ph": "X", "pid": pid, "tid": tid,
                            "ts": start_s * 1e6, "dur": max(seconds, 0.0) * 1e6,
                            "args": args or {}})


def _add_schedule(trace: _Trace, schedule: Schedule, iterations: int) -> None:
    what = f"loop {schedule.variable}" if schedule.variable else \
        ("a CTA" if schedule.kernel else "the tree")
    kernel = f" kernel {schedule.kernel['index']}" if schedule.kernel else ""
    pid = trace.pid(f"{schedule.mapping} on {schedule.hardware}{kernel}: {iterations} "
                    f"iteration(s) of {what}" + (" (one CTA)" if schedule.kernel else ""))
    for lane in schedule.lanes:  # threads in lane order
        trace.tid(pid, lane)
    clock = schedule.clock_hz
    for k in range(iterations):
        for interval in schedule.intervals:
            args = {"unit": interval.unit, "tile": k - interval.stage, "stage": interval.stage,
                    "cycles": interval.cycles, "path": interval.path}
            if interval.repeat > 1:
                args["iterations folded"] = interval.repeat
            if schedule.positions > 1:
                args["warpgroup"] = interval.position
            trace.slice(pid, trace.tid(pid, schedule.lane(interval)), interval.einsum,
                        (k * schedule.span + interval.start) / clock, interval.cycles / clock,
                        interval.kind, args)


def _add_grids(trace: _Trace, chosen: Sequence[Schedule]) -> None:
    """The waves of every kernel of one GPU mapping, kernels one after another."""
    first = chosen[0]
    pid = trace.pid(f"{first.mapping} on {first.hardware}: grid (waves of CTAs)")
    start = 0.0
    for schedule in chosen:
        kernel, clock = schedule.kernel, schedule.clock_hz
        tid = trace.tid(pid, f"kernel {kernel['index']} ({kernel['path']})")
        waves = grid_waves(kernel, clock)
        single = sum(w["count"] for w in waves) <= WAVE_EVENTS
        for wave in waves:
            for r in (range(wave["count"]) if single else [0]):
                length = wave["seconds"] * (1 if single else wave["count"])
                index = wave["first"] + r
                name = f"wave {index}" if single or wave["count"] == 1 else \
                    f"waves {wave['first']} to {wave['first'] + wave['count'] - 1}"
                trace.slice(pid, tid, name, start + wave["start_s"] + r * wave["seconds"],
                            length, "wave", {"ctas": wave["ctas"], "slots": wave["capacity"],
                                             "chunks": wave["chunks"]})
        start += kernel["cycles"] / clock


def _add_decode(trace: _Trace, estimate, name: str) -> None:
    pid = trace.pid(name)
    for row in sorted(estimate.timeline, key=lambda r: (r["slot"], r["start_s"])):
        tid = trace.tid(pid, f"slot {row['slot']}")
        trace.slice(pid, tid, f"CTA {row['cta']}", row["start_s"],
                    row["end_s"] - row["start_s"], "cta", {"cta": row["cta"]})
    end = max((r["end_s"] for r in estimate.timeline), default=0.0)
    if estimate.merge_s > 0:
        trace.slice(pid, trace.tid(pid, "merge kernel"), "merge partial states", end,
                    estimate.merge_s, "kernel")


def _add_steps(trace: _Trace, steps: Iterable) -> None:
    for number, step in enumerate(steps):
        try:
            device, name, start, end = step
            start, end = float(start), float(end)
        except (TypeError, ValueError):
            raise EinsimError(f"device step {number}: expected (device, name, start_s, end_s), "
                              f"got {step!r:.80}") from None
        if not (end >= start >= 0):
            raise EinsimError(f"device step {number} ({name}): expected 0 <= start <= end, got "
                              f"{start:g} to {end:g} s")
        pid = trace.pid(str(device))
        trace.slice(pid, trace.tid(pid, "steps"), str(name), start, end - start, "step")


def chrome_trace(schedules: Sequence[Schedule] = (), iterations: int = 3, decode=None,
                 decode_name: str = "decode CTAs on SM slots", steps: Iterable = (),
                 metadata: dict | None = None) -> dict:
    """A Chrome / Perfetto trace (a dict ready for :func:`json.dump`).

    Parameters
    ----------
    schedules : list of Schedule
        One mapping's schedules (:func:`einsim.cost.timeline.schedules`), or several
        mappings' in turn: each is a process with a thread per unit, drawn for
        ``iterations`` iterations; a GPU mapping's kernels add one process of their waves.
    decode : DecodeEstimate, optional
        Its CTAs, one thread per SM slot (raises beyond the timeline limit).
    steps : iterable of (device, name, start_s, end_s)
        Device steps, one process per device.
    metadata : dict, optional
        Written under ``metadata`` (command line, inputs).
    """
    trace = _Trace()
    groups: list[list[Schedule]] = []
    for schedule in schedules:
        if groups and schedule.kernel is not None and groups[-1][0].kernel is not None and \
                groups[-1][0].mapping == schedule.mapping and \
                schedule.kernel["index"] > groups[-1][-1].kernel["index"]:
            groups[-1].append(schedule)
        else:
            groups.append([schedule])
    for group in groups:
        for schedule in group:
            _add_schedule(trace, schedule, max(1, int(iterations)))
        if group[0].kernel is not None:
            _add_grids(trace, group)
    if decode is not None:
        _add_decode(trace, decode, decode_name)
    _add_steps(trace, steps)
    document = {"traceEvents": trace.events, "displayTimeUnit": "ns"}
    if metadata:
        document["metadata"] = metadata
    return document


def write_trace(path: str | Path, trace: dict) -> Path:
    """Write a trace atomically (a temporary file renamed into place)."""
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.resolve().parent, prefix=".trace-",
                                             suffix=".json")
    except OSError as error:  # name the file asked for, not the temporary one
        raise OSError(error.errno, error.strerror, str(path)) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(trace, stream, separators=(",", ":"))
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)  # as an ordinary new file, not mkstemp's 0600
        try:
            os.replace(temporary, path)
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from None
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    return path


__all__ = ["chrome_trace", "write_trace", "WAVE_EVENTS"]
