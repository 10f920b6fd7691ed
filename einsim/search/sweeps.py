"""Sweeps: evaluate the Cartesian product of sequence lengths and named parameters.

Parameters are hardware fields by name (``pe_dim``, ``global_buffer_bytes``, ``dram_bandwidth``,
``clock_hz``) or mapping parameters (``P1``, ``rows``); mapping parameters not swept are chosen
by the mapper at every point.  Each point is a flat dict (one CSV row); infeasible points are
kept with ``feasible = False`` and the reason.

:func:`run_sweep` is the scalable front door: vectorized over whole arrays when the mapping
allows it, else point by point (locally or on Dask), writing every point to an append-only
store (:mod:`einsim.search.store`) as it finishes, so an interrupted sweep can be resumed.
Repeated values are evaluated once.  Design points stream: the sweep is cut into blocks of
at most ``chunk_size`` points (each a smaller Cartesian product, so the vectorized engine
takes them whole), and with ``keep_points=False`` only the running Pareto front is kept, so
memory is bounded whatever the sweep's size.
"""

from __future__ import annotations

import csv
import gc
import itertools
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from einsim.errors import EinsimError, MappingError, SpecError
from einsim.search.pareto import METRICS, pareto  # noqa: F401  (part of this module's API)

if TYPE_CHECKING:  # pragma: no cover
    from einsim.cost import Report

CHUNK = 1 << 14  # design points a block: what is held in memory at once


@dataclass(frozen=True)
class SweepResult:
    points: list[dict]  # every point in Cartesian order (empty unless kept)
    pareto: list[dict]
    engine: str = "points"  # how the missing points were computed: points, vectorized, dask
    count: int = field(default=-1)  # points in the sweep (after removing repeated values)

    def __post_init__(self) -> None:
        if self.count < 0:
            object.__setattr__(self, "count", len(self.points))


def point_of(report: Report, swept: dict) -> dict:
    """One sweep row: the swept values, ``seq_len`` and the report's figures."""
    row = {**swept, "seq_len": report.seq_len, "mapping": report.mapping,
           "hardware": report.hardware, "workload": report.workload, "feasible": True,
           "error": "", "latency_s": report.latency_s, "energy_j": report.energy_j,
           "area_mm2": report.area_mm2, "compute_latency_s": report.compute_latency_s,
           "memory_latency_s": report.memory_latency_s, "traffic_bytes": report.traffic_bytes,
           "buffer_bytes": report.buffer_bytes, "utilization": dict(report.utilization)}
    for name, value in report.parameters.items():
        row.setdefault(name, value)
    return row


def iterate(mapping: str, workload: str, seq_lens: Iterable[int],
            parameters: dict[str, list] | None = None, hardware: str | None = None,
            objective: str = "latency", cascade: str | None = None) -> Iterator[dict]:
    """Yield one row per design point, in Cartesian order (sequence length outermost)."""
    seq_lens, parameters = distinct(seq_lens, parameters)
    _check_names(mapping, hardware, parameters)
    for seq_len, swept in design_points(seq_lens, parameters):
        yield evaluate_point(mapping, workload, seq_len, swept, hardware, objective, cascade)


def design_points(seq_lens: Iterable[int], parameters: dict[str, list] | None = None
                  ) -> Iterator[tuple[int, dict]]:
    """``(seq_len, swept values)`` of every point, in Cartesian order (seq_len outermost)."""
    names = list(parameters or {})
    for seq_len in seq_lens:
        for values in itertools.product(*(parameters or {}).values()):
            yield seq_len, dict(zip(names, values))


def __getattr__(name: str):
    """``evaluate`` (the point path) is imported on first use: it imports sympy, which a
    vectorized sweep of a cached tree does without."""
    if name == "evaluate":
        from einsim.cost.front_door import evaluate

        return evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SweepPointError(EinsimError):
    """The cost model failed on one design point (an overflow, a division by zero)."""


def evaluate_point(mapping: str, workload: str, seq_len: int, swept: dict,
                   hardware: str | None = None, objective: str = "latency",
                   cascade: str | None = None) -> dict:
    """The row of one design point (an infeasible point is kept, with the reason)."""
    evaluate = globals().get("evaluate") or __getattr__("evaluate")
    try:
        report = evaluate(mapping, hardware, workload, seq_len, swept, objective,
                          cascade=cascade)
    except ArithmeticError as error:  # one line naming the point, not a traceback
        values = ", ".join(f"{k}={v}" for k, v in {"seq_len": seq_len, **swept}.items())
        raise SweepPointError(f"sweep point {values}: the cost model failed "
                              f"({type(error).__name__}: {error}); these values are out of "
                              "its range") from None
    except MappingError as error:
        return {**swept, "seq_len": seq_len, "mapping": mapping, "feasible": False,
                "error": str(error)}
    return point_of(report, swept)


def distinct(seq_lens: Iterable[int], parameters: dict[str, list] | None = None
             ) -> tuple[list[int], dict[str, list]]:
    """The sweep's values with repeats removed (``64, 64.0`` and ``64K, 65536`` are one)."""
    from einsim.search.store import _token

    def once(name: str, values: Iterable) -> list:
        first: dict[str, object] = {}
        for value in values:
            first.setdefault(_token(name, value), value)
        return list(first.values())

    return once("seq_len", seq_lens), {k: once(k, v) for k, v in (parameters or {}).items()}


def _check_names(mapping: str, hardware: str | None, parameters: dict[str, list],
                 cached=None) -> None:
    """Fail before the first point on a misspelt parameter or a mapping parameter that is not
    a positive integer (not as N infeasible points or a crash).  ``cached`` is the sweep's
    compiled plan, if cached (:func:`_cached`): its facts replace loading the tree."""
    from hw_models.spatial_array import SHORT_NAMES

    if cached is not None:
        plan = cached[0]
        name, native, own = plan.name, plan.native, tuple(plan.parameters)
    else:
        from einsim.search.manifest import mapping_facts

        name, native, own, _ = mapping_facts(mapping)

    def load_hardware(name: str, overrides: dict):
        if cached is not None and cached[0].hardware_kind == "spatial_array":
            from hw_models.spatial_array import load_spatial_array

            return load_spatial_array(name, overrides)  # what load_hardware does for it
        from einsim.cost.front_door import load_hardware as load

        return load(name, overrides)
    for key, values in parameters.items():
        if key not in own and key not in SHORT_NAMES and "." not in key:
            raise SpecError(f"unknown parameter {key!r}: not a parameter of mapping {name} "
                            f"({', '.join(own) or 'none'}) nor a hardware field "
                            f"({', '.join(SHORT_NAMES)})")
        for value in values if key in own else []:
            number = value.item() if hasattr(value, "item") else value
            if isinstance(number, str):
                continue  # a named choice (a GPU tile): the mapping checks it
            if isinstance(number, bool) or not isinstance(number, (int, float)) \
                    or not math.isfinite(number) or number < 1 or number != int(number):
                raise SpecError(f"--param {key}={value}: {key} is a parameter of mapping "
                                f"{name} and must be a positive integer")
        if key not in own and values:  # a hardware field: checked against the hardware
            load_hardware(hardware or native, {key: values[0]})


@contextmanager
def paused_gc():
    """No cyclic garbage collection inside: sweep columns and their thousands of row dicts make
    no cycles, and a collection pass would walk every object the imports made."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _cached(mapping, hardware: str | None, cascade: str | None):
    """``(plan, sources)`` of the sweep's compiled tree when it is cached, else None (then
    the tree is loaded and compiled as usual)."""
    from einsim.cost.compiled_cache import cached_plan

    plan, found = cached_plan(mapping, cascade, hardware)
    return (plan, found) if plan is not None else None


def _experiment(mapping: str, workload: str, hardware: str | None, objective: str,
                parameters, cascade: str | None, cached):
    """:func:`einsim.search.manifest.experiment`, from the cached plan's facts when there is
    one (the same names and digests: tested)."""
    from einsim.search.manifest import Experiment, _digest, experiment

    if cached is None:
        return experiment(mapping, workload, hardware, objective, parameters, cascade)
    from einsim.workloads import load_workload

    plan, found = cached
    name, digest = plan.name, _digest(found.document)
    if cascade is not None:
        name = f"{name} on {plan.cascade_name or cascade}"
        digest = _digest([digest, plan.cascade_text])
    machine = found.machine
    problem = load_workload(workload, 1024)
    shape = {k: v for k, v in problem.model_dump(mode="json").items()
             if k not in ("seq_len", "kv_len")}
    return Experiment(name, machine.name, problem.name, objective, tuple(parameters),
                      (digest, _digest(machine), _digest(shape)))


def sweep(mapping: str, workload: str, seq_lens: Iterable[int],
          parameters: dict[str, list] | None = None, hardware: str | None = None,
          objective: str = "latency", vectorize: bool = True,
          cascade: str | None = None) -> SweepResult:
    """Evaluate every point (vectorized when the sweep allows it, as :func:`run_sweep`);
    return all rows and the (latency, energy, area) Pareto set.  ``cascade`` replaces a
    loop-tree mapping's own cascade."""
    return run_sweep(mapping, workload, seq_lens, parameters, hardware, objective,
                     vectorize=vectorize, cascade=cascade)


def flat_row(point: dict) -> dict:
    """A CSV-friendly row: the utilization object becomes ``utilization_<unit>`` columns."""
    row = {k: v for k, v in point.items() if k != "utilization"}
    for unit, value in (point.get("utilization") or {}).items():
        row[f"utilization_{unit}"] = value
    return row


def write_csv(points: list[dict], path: str | Path) -> None:
    rows = [flat_row(p) for p in points]
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)




# --- large sweeps: streamed, vectorized, resumable, distributed -------------------------------

FIGURES = ("latency_s", "energy_j", "area_mm2", "compute_latency_s", "memory_latency_s",
           "traffic_bytes", "buffer_bytes")


def restore_point(row: dict, seq_len: int, swept: dict) -> dict:
    """A point as :func:`iterate` yields it, from a stored (flat) row of that point."""
    head = {**swept, "seq_len": seq_len, "mapping": row.get("mapping")}
    if not row.get("feasible"):
        return {**head, "feasible": False, "error": row.get("error") or ""}
    point = {**head, "hardware": row.get("hardware"), "workload": row.get("workload"),
             "feasible": True, "error": row.get("error") or "",
             **{name: row.get(name) for name in FIGURES},
             "utilization": {k[len("utilization_"):]: v for k, v in row.items()
                             if k.startswith("utilization_") and v is not None}}
    for name, value in row.items():  # the parameters the mapper chose
        if name != "point_key" and not name.startswith("utilization_") and value is not None:
            point.setdefault(name, value)
    return point


def blocks(axes: list[list], size: int) -> Iterator[tuple[int, list[list]]]:
    """``(offset, sub-axes)``: the Cartesian product of ``axes`` cut, in order, into smaller
    Cartesian products of at most ``size`` points (outer axes fixed one value at a time, the
    axis where the product first fits in ``size`` cut into slices)."""
    size, inner, split = max(1, size), 1, len(axes)
    while split > 0 and inner * len(axes[split - 1]) <= size:
        split -= 1
        inner *= len(axes[split])
    if split == 0 or inner == 0:
        yield 0, [list(a) for a in axes]
        return
    step = max(1, size // inner)
    offset, cut = 0, axes[split - 1]
    for outer in itertools.product(*axes[:split - 1]):
        for start in range(0, len(cut), step):
            piece = list(cut[start:start + step])
            yield offset, [[v] for v in outer] + [piece] + [list(a) for a in axes[split:]]
            offset += len(piece) * inner


class _Sink:
    """Stamps finished points with the experiment and writes them to the store in batches."""

    def __init__(self, store, stamp: dict, progress, total: int, done: int, batch_size: int,
                 flush_seconds: float):
        self.store, self.stamp, self.progress, self.total = store, stamp, progress, total
        self.done, self.batch_size, self.flush_seconds = done, batch_size, flush_seconds
        self.pending: list[dict] = []
        self.flushed = time.monotonic()

    def add(self, key: str | None, point: dict, single: bool = True) -> dict:
        point.update(self.stamp)
        self.done += 1
        if self.store is not None:
            self.pending.append({"point_key": key, **flat_row(point)})
            if single and (len(self.pending) >= self.batch_size
                           or time.monotonic() - self.flushed >= self.flush_seconds):
                self.flush()
        if single and self.progress is not None:
            self.progress(self.done, self.total)
        return point

    def add_all(self, keys: list, points: list[dict]) -> list[dict]:
        """:meth:`add` of a whole vectorized block, then :meth:`chunk_done`."""
        stamp = self.stamp
        for point in points:
            point.update(stamp)
        self.done += len(points)
        if self.store is not None:
            self.pending += [{"point_key": key, **flat_row(point)}
                             for key, point in zip(keys, points)]
        self.chunk_done()
        return points

    def chunk_done(self) -> None:
        self.flush()
        if self.progress is not None:
            self.progress(self.done, self.total)

    def flush(self) -> None:
        if self.pending and not getattr(self.store, "failed", None):
            self.store.append(self.pending)
        self.pending = []
        self.flushed = time.monotonic()


def _vectorized(mapping, workload, seq_lens, parameters, hardware, objective, cascade=None):
    """Every row from the loop-tree engine over arrays (:mod:`einsim.search.tree_sweep`), or
    None when it cannot handle this sweep (the point path then names any failing point)."""
    from einsim.search import tree_sweep

    try:
        return tree_sweep.vectorized_points(mapping, workload, seq_lens, parameters, hardware,
                                            objective, cascade)
    except (tree_sweep.NotVectorizable, MappingError, ArithmeticError):
        return None


def _stored_count(stored, key_names, seq_lens, parameters, total: int) -> int:
    """How many of the sweep's points ``stored`` holds (a bound on a huge sweep)."""
    if not stored:
        return 0
    if total > 1_000_000:
        return min(len(stored), total)
    from einsim.search.store import point_keys

    return sum(k in stored for k in point_keys(*key_names, seq_lens, parameters))


def _stored_front(store, stamp: dict, seq_lens: list, parameters: dict) -> list[dict]:
    """The Pareto front of the stored points of this sweep (a stored row is of the sweep when
    its seq_len and swept values are), streamed in blocks."""
    from einsim.search.store import _token

    axes = {"seq_len": seq_lens, **parameters}
    tokens = {name: {_token(name, v) for v in values} for name, values in axes.items()}
    front: list[dict] = []
    batch: list[dict] = []
    for row in store.iter_rows(store.path):
        if row.get("feasible") and all(_token(n, row.get(n)) in t for n, t in tokens.items()):
            point = restore_point(row, row["seq_len"], {n: row[n] for n in parameters})
            batch.append({**point, **stamp})
            if len(batch) >= CHUNK:
                front, batch = pareto(front + batch), []
    return pareto(front + batch)


class _Blocks:
    """Evaluates the missing points of one block after another: vectorized while the engine
    takes them, else on Dask (one session for the whole sweep) or point by point."""

    def __init__(self, mapping: str, workload: str, hardware: str | None, objective: str,
                 vectorize: bool, scheduler: str | None, sink: _Sink,
                 cascade: str | None = None):
        self.mapping, self.workload, self.hardware = mapping, workload, hardware
        self.cascade = cascade
        self.objective, self.vectorize, self.scheduler = objective, vectorize, scheduler
        self.sink, self.session, self.engines = sink, None, set()

    def run(self, lengths: list, values: dict, keys: list, stored,
            restore: bool) -> list[dict | None]:
        """The block's points in Cartesian order: stored ones restored (if ``restore``, else
        None), the others evaluated and handed to the sink."""
        size = len(lengths) * math.prod(len(v) for v in values.values())
        found: list[dict | None] = [None] * size
        design: list = []  # (seq_len, swept) of each point, made only when needed

        def point(j: int) -> tuple:
            if not design:
                design.extend(design_points(lengths, values))
            return design[j]

        if stored:
            missing = []
            for j, key in enumerate(keys):
                if key not in stored:
                    missing.append(j)
                elif restore:
                    found[j] = {**restore_point(stored[key], *point(j)), **self.sink.stamp}
        else:
            missing = list(range(size))
        if not missing:
            return found
        rows = _vectorized(self.mapping, self.workload, lengths, values, self.hardware,
                           self.objective, self.cascade) if self.vectorize else None
        self.vectorize = rows is not None  # not vectorizable: the next blocks neither
        add = self.sink.add
        if rows is not None:
            if len(rows) != size:
                raise RuntimeError(f"vectorized sweep returned {len(rows)} points, "
                                   f"expected {size}")
            self.engines.add("vectorized")
            for j, point in zip(missing, self.sink.add_all([keys[j] for j in missing],
                                                          [rows[j] for j in missing])):
                found[j] = point
        elif self.scheduler:
            from einsim.search.dask_sweep import DaskSession

            self.engines.add("dask")
            self.session = self.session or DaskSession(
                self.scheduler, self.mapping, self.workload, self.hardware, self.objective,
                cascade=self.cascade)

            def finished(chunk) -> None:
                for j, point in chunk:
                    found[j] = add(keys[j], point, single=False)
                self.sink.chunk_done()

            self.session.run([(j, *point(j)) for j in missing], finished)
        else:
            for j in missing:
                found[j] = add(keys[j], evaluate_point(self.mapping, self.workload, *point(j),
                                                       self.hardware, self.objective,
                                                       self.cascade))
        self.sink.flush()
        return found

    @property
    def engine(self) -> str:
        return "vectorized" if "vectorized" in self.engines else "dask" if self.engines \
            else "points"

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


def run_sweep(mapping: str, workload: str, seq_lens: Iterable[int],
              parameters: dict[str, list] | None = None, hardware: str | None = None,
              objective: str = "latency", out: str | Path | None = None, resume: bool = False,
              vectorize: bool = True, scheduler: str | None = None,
              progress: Callable[[int, int], None] | None = None, batch_size: int = 256,
              flush_seconds: float = 1.0, keep_points: bool = True,
              chunk_size: int = CHUNK, cascade: str | None = None) -> SweepResult:
    """Evaluate every point (as :func:`sweep`), writing each to ``out`` as it finishes.

    ``out`` is a ``.csv`` file or a ``.parquet`` dataset directory, locked while the sweep
    writes it; an existing one is an error unless ``resume``, which checks that it holds the
    same experiment and skips the points already stored (by ``point_key``).  The sweep runs
    block by block (``chunk_size`` points); each block is vectorized when ``vectorize`` and
    the mapping's vectorized engine handles it, else evaluated point by point: on the Dask
    ``scheduler`` (``local:N`` or ``tcp://host:port``) if given, else in this process.
    Point-by-point rows are written every ``batch_size`` points or ``flush_seconds``.
    ``progress(done, total)`` is called once at the start (with the points already stored)
    and then as points finish.  With ``keep_points`` the result holds every point in
    Cartesian order (those stored before included); without, only the Pareto front and
    the count, in memory bounded by the block size and the front.
    """
    from einsim.search.store import open_store, point_keys

    seq_lens, parameters = distinct(seq_lens, parameters)
    cached = _cached(mapping, hardware, cascade)
    _check_names(mapping, hardware, parameters, cached)
    exp = _experiment(mapping, workload, hardware, objective, parameters, cascade, cached)
    stamp = {"mapping": exp.mapping, "hardware": exp.hardware, "workload": exp.workload,
             "objective": objective}
    names, axes = list(parameters), [seq_lens] + list(parameters.values())
    total = math.prod(len(a) for a in axes)
    store = open_store(out, resume, exp.manifest()) if out is not None else None
    sink = _Sink(store, stamp, progress, total, 0, batch_size, flush_seconds)
    runner = _Blocks(mapping, workload, hardware, objective, vectorize, scheduler, sink, cascade)
    try:
        stored = store.stored(keys_only=not keep_points) if store is not None and resume \
            else {}
        sink.done = _stored_count(stored, exp.key_names, seq_lens, parameters, total)
        front = _stored_front(store, stamp, seq_lens, parameters) if stored and \
            not keep_points else []
        if progress is not None:  # the total, and the points stored before
            progress(sink.done, total)
        points: list[dict] = []
        for _, block in blocks(axes, chunk_size):
            lengths, values = block[0], dict(zip(names, block[1:]))
            keys = list(point_keys(*exp.key_names, lengths, values)) if store is not None \
                else [None] * math.prod(len(a) for a in block)
            found = runner.run(lengths, values, keys, stored, keep_points)
            if keep_points:
                points += found
            else:  # only the points that may still be on the front
                front = pareto(front + [p for p in found if p is not None])
    finally:  # keep every finished point, also on an error or Ctrl-C
        try:
            sink.flush()
        finally:
            runner.close()
            if store is not None:
                store.close()
    if keep_points:
        with paused_gc():
            return SweepResult(points, pareto(points), runner.engine, total)
    return SweepResult([], front, runner.engine, total)
