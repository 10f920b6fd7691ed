"""The traffic–capacity lower bound of a cascade: :func:`traffic_bound` and its curve.

Per (batch, head), in words, for an on-chip capacity of S words (every on-chip word: buffer and
register files), the backing-store traffic T of any schedule of the cascade satisfies::

    T >= rest + max(Q + K,                                  compulsory
                    B_large(S), B_small(S),                 the score contraction
                    Q + K + sum_b spill_b(S),               passes: fibers round-trip
                    Q + max_b reread_b(S))                  passes: keys re-read

where Q and K are the query and key operands' input words, ``rest`` the other inputs and the
outputs (read / written once).  Each term bounds a disjoint class of I/Os (``docs/concepts/
bounds.md`` gives the arguments).  Batch × heads multiply the words, the word size makes bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from einsim.language import ir
from einsim.bounds import formulas
from einsim.bounds.masks import MaskNotAnalysed, profile
from einsim.bounds.structure import (USE_KEYS, USE_PAIRS, USE_QUERIES, BoundStructure,
                                     analyse)
from einsim.errors import MissingSizeError, SpecError, SizeError

COMPULSORY = "compulsory"
FLASH = "contraction N^2 d^2/S"
SAHA_YE = "contraction N^2 d/sqrt(S)"
SPILL = "pass spill"
REREAD = "pass re-read"


@dataclass(frozen=True)
class BoundProblem:
    """The numbers the formulas need, per (batch, head), in words."""

    compulsory: float
    query_words: float = 0.0
    key_words: float = 0.0
    pairs: float = 0.0
    d: float = 1.0
    fibers: float = 1.0
    lmin: float = 0.0
    lmax: float = 0.0
    value_words: float = 0.0               # the value contraction's input (V) words
    f: float = 0.0                         # value words per key (0: no value contraction)
    crossing: tuple[float, ...] = ()       # per boundary: words per pair live there
    spill_words: tuple[float, ...] = ()    # per boundary: words first crossing there
    values_after: tuple[bool, ...] = ()    # per boundary: V is used after the deadline
    contraction: bool = False
    fallback: str = ""                     # why only compulsory traffic is bounded

    def words(self, capacity) -> tuple[np.ndarray, list[str]]:
        """Lower bound (words) and binding regime at each capacity (words)."""
        s = np.atleast_1d(np.asarray(capacity, dtype=float))
        if self.contraction and (self.pairs <= 0 or self.d <= 0):  # no products to make
            return np.full(s.shape, self.compulsory), [COMPULSORY] * s.size
        if not self.contraction:
            label = f"{COMPULSORY} (fallback: {self.fallback})" if self.fallback else COMPULSORY
            return np.full(s.shape, self.compulsory), [label] * s.size
        v = self.value_words
        qk = self.query_words + self.key_words
        rest = self.compulsory - qk - v
        terms = {COMPULSORY: np.full(s.shape, qk + v),
                 FLASH: v + formulas.contraction_large(self.pairs, self.d, s),
                 SAHA_YE: v + formulas.contraction_small(self.pairs, self.d, s)}
        if self.crossing:
            spill = sum(formulas.fiber_spill(w, self.fibers, s) for w in self.spill_words)
            terms[SPILL] = qk + v + spill
            keys_only = np.max([formulas.fiber_reread(self.pairs, self.fibers, self.lmin,
                                                      self.lmax, c, self.d, s)
                                for c in self.crossing], axis=0)
            both = [formulas.fiber_reread_both(self.pairs, self.fibers, self.lmin, self.lmax,
                                               c, self.d, self.f, s)
                    for c, after in zip(self.crossing, self.values_after) if after and self.f]
            terms[REREAD] = self.query_words + np.maximum(
                keys_only + v, np.max(both, axis=0) if both else 0.0)
        names = list(terms)
        stack = np.stack([terms[n] for n in names])
        best = stack.max(axis=0)
        which = stack.argmax(axis=0)
        regimes = [COMPULSORY if best[i] <= (qk + v) * (1 + 1e-12) else names[which[i]]
                   for i in range(s.size)]
        return rest + best, regimes

    def fit_words(self) -> float:
        """The smallest capacity (words) at which the bound is compulsory traffic."""
        if not self.contraction:
            return 1.0
        high = 1.0
        while self.words(high)[0][0] > self.compulsory * (1 + 1e-12) and high < 1e30:
            high *= 2
        low = high / 2
        if high <= 1:
            return 1.0
        for _ in range(64):
            middle = math.sqrt(low * high)
            if self.words(middle)[0][0] > self.compulsory * (1 + 1e-12):
                low = middle
            else:
                high = middle
            if high / low < 1 + 1e-9:
                break
        return float(math.ceil(high))


@dataclass(frozen=True)
class BoundPoint:
    buffer_bytes: float
    traffic_lower_bound_bytes: float
    regime: str


@dataclass(frozen=True)
class BoundCurve:
    """The bound at a range of on-chip capacities (bytes), for all batch × heads."""

    cascade: str
    workload: str
    seq_len: int
    hardware: str
    word_bytes: int
    copies: float
    compulsory_bytes: float
    fit_bytes: float                 # smallest capacity at which the bound is compulsory
    points: tuple[BoundPoint, ...]
    problem: BoundProblem = field(repr=False)
    passes: int = 1
    rank: str | None = None
    notes: tuple[str, ...] = ()

    def at(self, buffer_bytes) -> np.ndarray:
        """The bound (bytes) at capacities ``buffer_bytes`` (bytes, scalar or array)."""
        words = np.floor(np.asarray(buffer_bytes, dtype=float) / self.word_bytes)
        return self.problem.words(words)[0] * self.word_bytes * self.copies

    def to_json(self) -> dict:
        return {"cascade": self.cascade, "workload": self.workload, "seq_len": self.seq_len,
                "hardware": self.hardware, "word_bytes": self.word_bytes,
                "copies": self.copies, "passes": self.passes,
                "compulsory_bytes": self.compulsory_bytes, "fit_bytes": self.fit_bytes,
                "notes": list(self.notes),
                "points": [{"buffer_bytes": p.buffer_bytes,
                            "traffic_lower_bound_bytes": p.traffic_lower_bound_bytes,
                            "regime": p.regime} for p in self.points]}


# ------------------------------------------------------------------------------ numbers


def _size(sizes: Mapping[str, float], rank: str | None, cascade: ir.Cascade,
          required: bool = True) -> float:
    if rank is None:
        return 1.0
    if rank in sizes:
        return float(sizes[rank])
    if not required:
        return 1.0  # a partition part's size is the mapping's choice: count the least, 1
    raise MissingSizeError(f"cascade {cascade.name or ''}: no size for rank {rank}; give it in "
                           "sizes= (the workload sets B, H, M, P, E, F)".replace("  ", " "))


def _elements(sizes, ranks, cascade) -> float:
    return math.prod(_size(sizes, r, cascade, required=False) for r in ranks)


def problem_of(cascade: ir.Cascade, sizes: Mapping[str, float],
               structure: BoundStructure | None = None) -> BoundProblem:
    """The bound's numbers for ``cascade`` at ``sizes`` (rank sizes and parameters)."""
    structure = structure or analyse(cascade)
    contraction = structure.contraction
    outputs = sum(_elements(sizes, t.ranks, cascade) for t in structure.outputs)
    if contraction is None:
        inputs = sum(_elements(sizes, t.ranks, cascade) for t in structure.inputs)
        return BoundProblem(inputs + outputs, fallback=structure.reason)
    for rank in contraction.reduced + contraction.query_ranks + contraction.key_ranks:
        _size(sizes, rank, cascade)
    try:
        mask = profile(cascade, contraction.condition, contraction.key_ranks,
                       contraction.query_ranks, sizes)
    except MaskNotAnalysed as why:
        inputs = sum(_elements(sizes, t.ranks, cascade) for t in structure.inputs
                     if t.use not in (USE_KEYS, USE_QUERIES, USE_PAIRS))
        return BoundProblem(inputs + outputs, fallback=f"{why}; masked inputs not counted")
    keys = math.prod(_size(sizes, r, cascade) for r in contraction.key_ranks)
    queries = math.prod(_size(sizes, r, cascade) for r in contraction.query_ranks)
    used = {}
    for tensor in structure.inputs:
        words = _elements(sizes, tensor.ranks, cascade)
        fraction = {USE_KEYS: mask.keys_used / keys if keys else 0.0,
                    USE_QUERIES: mask.queries_used / queries if queries else 0.0,
                    USE_PAIRS: mask.pairs / (keys * queries) if keys * queries else 0.0
                    }.get(tensor.use, 1.0 if mask.pairs else 0.0)
        used[tensor.name] = words * fraction
    d = math.prod(_size(sizes, r, cascade) for r in contraction.reduced)
    crossing, spill = [], []
    for boundary in structure.crossings:
        extra = [_elements(sizes, ranks, cascade) for ranks in boundary.extra_ranks]
        crossing.append(float(sum(extra)))
        spill.append(float(sum(e for e, first in zip(extra, boundary.first) if first))
                     * mask.pairs)
    values = structure.values
    value_words, f = 0.0, 0.0
    if values is not None and values.value_input in used:
        value_words = used[values.value_input]
        f = _elements(sizes, values.extra_ranks, cascade)
    return BoundProblem(sum(used.values()) + outputs, used[contraction.query_input],
                        used[contraction.key_input], mask.pairs, d, queries, mask.lmin,
                        mask.lmax, value_words, f, tuple(crossing), tuple(spill),
                        tuple(c.values_after for c in structure.crossings), True)


def _sizes(cascade: ir.Cascade, workload, extra: Mapping[str, float] | None) -> dict:
    params = {param.name for param in cascade.params}
    sizes: dict[str, float] = {k: float(v) for k, v in workload.sizes().items()
                               if k not in params}  # a workload's D is not GNA's dilation D
    for param in cascade.params:
        sizes[param.name] = param.value
    for rank in cascade.ranks:
        if rank.size is not None:
            sizes.setdefault(rank.name, rank.size)
    for name, value in dict(extra or {}).items():
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise SizeError(f"size {name}={value!r}: expected a finite number >= 0")
        sizes[name] = number
    return sizes


def _hardware(name: str):
    from einsim.cost.front_door import load_hardware

    machine = load_hardware(name)
    if machine.kind != "spatial_array":
        raise SpecError(f"hardware {machine.name} is a GPU; bounds take a spatial array's word "
                        "size (e.g. fusemax-cloud, flat-cloud)")
    return machine


def register_bytes(hardware: str = "fusemax-cloud", pe_dim: int | None = None) -> float:
    """Bytes of every register file of a spatial array (per-PE words × PEs)."""
    machine = _hardware(hardware)
    pe = float(pe_dim or machine.pe_dim)
    return (pe * pe * machine.array2d.register_file.words
            + pe * machine.array1d.register_file.words) * machine.word_bytes


def traffic_bound(cascade: str | ir.Cascade = "fusemax", workload: str = "bert",
                  seq_len: int | str | None = None, buffer_bytes: float | None = None,
                  hw: str = "fusemax-cloud", sizes: Mapping[str, float] | None = None,
                  points: int = 48) -> BoundCurve:
    """Minimum backing-store (DRAM) traffic of ``cascade`` against on-chip capacity.

    ``buffer_bytes`` is the on-chip capacity (every on-chip byte: buffer and register files);
    without it the curve covers a log-spaced range up to past the capacity at which the bound
    reaches compulsory traffic.  Bytes are the hardware's words × batch × heads, like a
    report's ``traffic_bytes``.  ``sizes`` adds or overrides rank sizes and parameters.
    """
    from einsim import library
    from einsim.workloads import load_workload

    chosen = library.load(cascade) if isinstance(cascade, str) else cascade
    name = cascade if isinstance(cascade, str) else (chosen.name or "cascade")
    problem_sizes = load_workload(workload, seq_len)
    machine = _hardware(hw)
    word = machine.word_bytes
    structure = analyse(chosen)
    problem = problem_of(chosen, _sizes(chosen, problem_sizes, sizes), structure)
    copies = float(problem_sizes.batch * problem_sizes.heads)
    fit = problem.fit_words()
    if buffer_bytes is not None:
        capacity = float(buffer_bytes)
        if not math.isfinite(capacity) or capacity < 0:
            raise SizeError(f"buffer bytes {buffer_bytes!r}: expected a finite number >= 0")
        grid = np.array([capacity])
    else:
        if points < 2:
            raise SizeError(f"points {points}: expected at least 2")
        low = 16.0 * word
        high = max(4 * fit * word, 256 * low)
        grid = np.unique(np.concatenate([np.geomspace(low, high, points), [fit * word]]))
    words, regimes = problem.words(np.floor(grid / word))
    scale = word * copies
    curve = tuple(BoundPoint(float(b), float(w * scale), r)
                  for b, w, r in zip(grid, words, regimes))
    notes = structure.notes + ((problem.fallback,) if problem.fallback and
                               problem.fallback not in structure.notes else ())
    return BoundCurve(name, problem_sizes.name, problem_sizes.seq_len, machine.name, word,
                      copies, problem.compulsory * scale, fit * word, curve, problem,
                      structure.passes, structure.rank, notes)
