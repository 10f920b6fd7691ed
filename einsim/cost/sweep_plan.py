"""A cached sweep plan read back: the mapping's facts and, per concrete tree, the engine a
vectorized sweep runs (values, summary, reasons, the free parameters' domains) — interpreted
from the plan's data by whitelisted op-list programs, never executed (see
:mod:`einsim.cost.compiled_cache`)."""

from __future__ import annotations

import math

import numpy as np

from einsim.cost.expression_program import (InvalidProgram, Program, fields, list_of,
                                            mapping_of, number, pairs, small_program, text,
                                            texts)
from einsim.cost.summary import (capacity_reasons, cascade_copies, check_complete,
                                 summary_table)
from einsim.errors import MappingError

MAX_VARIANTS = 64
"""Concrete trees (level choices) one plan holds."""


class SweepPlan:
    """A checked plan: the mapping's facts and one :class:`PlanEngine` per concrete tree."""

    def __init__(self, body):
        body = fields(body, {"mapping", "cascade", "hardware", "symbolic_fields", "variants"})
        mapping = fields(body["mapping"], {"name", "hardware", "parameters", "structural"})
        self.name, self.native = text(mapping["name"]), text(mapping["hardware"])
        self.parameters, self.structural = texts(mapping["parameters"]), \
            texts(mapping["structural"])
        cascade = fields(body["cascade"], {"name", "text"})
        self.cascade_name, self.cascade_text = text(cascade["name"]), text(cascade["text"])
        hardware = fields(body["hardware"], {"name", "kind"})
        self.hardware_name, self.hardware_kind = text(hardware["name"]), text(hardware["kind"])
        self.symbolic_fields = {text(k): text(v) for k, v in
                                mapping_of(body["symbolic_fields"]).items()}
        variants = body["variants"]
        if not isinstance(variants, list) or not 1 <= len(variants) <= MAX_VARIANTS:
            raise InvalidProgram("variants")
        self.variants = [PlanEngine(v) for v in variants]
        self.machine = None  # the hardware model it was found or built for (not stored)


class PlanEngine:
    """One concrete tree, as :class:`einsim.cost.engine.CompiledMapping` serves a sweep:
    :meth:`values`, :meth:`summary`, :meth:`reasons`, and the free parameters' domains."""

    def __init__(self, data):
        data = fields(data, {"choice", "mapping", "hardware", "parameters", "defaults",
                             "domains", "hardware_values", "cascade_params", "rank_sizes",
                             "partitions", "tiles", "symbols", "word_bytes", "summary_keys",
                             "summary", "capacity_keys", "capacity"})
        self.choice = {text(k): text(v) for k, v in mapping_of(data["choice"]).items()}
        self.name, self.hardware_name = text(data["mapping"]), text(data["hardware"])
        self.parameters = texts(data["parameters"])
        self.defaults = []
        for entry in list_of(data["defaults"]):
            entry = fields(entry, {"name", "where", "text", "program"})
            self.defaults.append((text(entry.pop("name")), *small_program(entry)))
        self.domains = {text(k): _domain(v) for k, v in mapping_of(data["domains"]).items()}
        self.hardware_values = {text(k): number(v)
                                for k, v in mapping_of(data["hardware_values"]).items()}
        self.cascade_params, self.rank_sizes = pairs(data["cascade_params"]), \
            pairs(data["rank_sizes"])
        self.partitions = []
        for entry in list_of(data["partitions"]):
            entry = fields(entry, {"rank", "parts", "text", "sizes"})
            sizes = [s if isinstance(s, str) else number(s) for s in list_of(entry["sizes"])]
            self.partitions.append((text(entry["rank"]), texts(entry["parts"]),
                                    text(entry["text"]), sizes))
        self.tiles = [small_program(t) for t in list_of(data["tiles"])]
        self.symbols, self.summary_keys = texts(data["symbols"]), texts(data["summary_keys"])
        self.word_bytes = number(data["word_bytes"])
        self.program = Program.from_data(data["summary"])
        self.capacity_keys = [tuple(texts(k)) for k in list_of(data["capacity_keys"])]
        self.capacity = Program.from_data(data["capacity"])
        inputs = self.symbols + ["copies"]
        if self.program.inputs != inputs or self.capacity.inputs != inputs or \
                len(self.program.outputs) != len(self.summary_keys) or \
                len(self.capacity.outputs) != len(self.capacity_keys) or \
                not all(k and k[0] in ("capacity", "occupancy", "tile")
                        for k in self.capacity_keys):
            raise InvalidProgram("programs do not match their keys")

    # ---------------------------------------------------------------------------- inputs

    def values(self, problem, parameters=None, overrides=None) -> dict:
        """As :meth:`einsim.cost.engine.CompiledMapping.values`."""
        values = dict(self.hardware_values)
        values.update(overrides or {})
        values.update(problem.sizes)
        given = dict(parameters or {})
        for name, where, shown, program in self.defaults:
            values[name] = given.pop(name) if name in given else \
                _numeric(program, shown, values, where)
        if given:
            raise MappingError(f"mapping {self.name} has no parameter {sorted(given)[0]!r}; "
                               f"its parameters are {', '.join(self.parameters) or 'none'}")
        for name, *_ in self.defaults:
            check_size(f"parameter {name}", values[name])
        self._fill_partitions(values)
        for where, shown, program in self.tiles:
            check_size(where, _numeric(program, shown, values, where))
        check_complete(self.name, self.symbols, values)
        return values

    def _fill_partitions(self, values: dict) -> None:
        for name, value in self.cascade_params:
            values.setdefault(name, value)
        for name, size in self.rank_sizes:
            values.setdefault(name, size)
        for rank, parts, shown, sizes in self.partitions:
            inner = 1
            for part, given in zip(reversed(parts[1:]), reversed(sizes)):
                if type(given) is int:
                    values.setdefault(part, given)
                if part not in values:
                    raise MappingError(f"partition {shown}: size {part} is not set; declare it "
                                       f"as a mapping parameter (e.g. {part}: "
                                       "{default: pe_dim})")
                inner = inner * values[part]
            if rank in values:
                values[parts[0]] = np.ceil(np.asarray(values[rank]) / inner) \
                    if np.ndim(values[rank]) or np.ndim(inner) else \
                    math.ceil(values[rank] / inner)

    # ---------------------------------------------------------------------------- outputs

    def copies(self, values, copies):
        """As :meth:`einsim.cost.engine.CompiledMapping.copies`."""
        return cascade_copies(copies, values, self.symbols)

    def summary(self, values, copies, specialize: bool = False) -> dict:
        """As :meth:`einsim.cost.engine.CompiledMapping.summary`."""
        return summary_table(self.summary_keys, self.program(
            *(values[n] for n in self.symbols), self.copies(values, copies)))

    def reasons(self, values, copies) -> list[str]:
        """Per point, why it does not fit (as the engine's ``reasons(raw(values))``)."""
        raw = dict(zip(self.capacity_keys, self.capacity(
            *(values[n] for n in self.symbols), self.copies(values, copies))))
        return capacity_reasons(raw, self.name, self.hardware_name, lambda _: self.word_bytes)

    # ---------------------------------------------------------------------------- domains

    def domain_number(self, name: str, values):
        """As :func:`einsim.search.parameters.domain_number`."""
        domain = self.domains[name]
        if domain["kind"] not in ("divisors", "powers"):
            return None
        where, shown, program = domain["number"]
        return _numeric(program, shown, values, where)

    def has_number(self, name: str) -> bool:
        return self.domains[name]["kind"] in ("divisors", "powers")

    def candidates(self, name: str, number, values=None) -> list[int]:
        """As :func:`einsim.search.parameters.candidates`."""
        domain, where = self.domains[name], f"parameters.{name}.domain"
        if number is not None:
            value = float(number)
            if not math.isfinite(value) or value < 1:
                raise MappingError(f"{where}: evaluates to {value}; expected a number >= 1")
            if domain["kind"] == "divisors":
                return divisors(int(value))
            top = int(value)
            return [1 << k for k in range(top.bit_length()) if 1 << k <= top]
        if domain["kind"] == "range":
            return list(range(max(1, domain["low"]), domain["high"] + 1))
        found = set()
        for entry_where, shown, program in domain.get("entries", ()):
            value = float(_numeric(program, shown, values or {}, entry_where))
            if not math.isfinite(value) or value < 1 or not value.is_integer():
                raise MappingError(f"{where}: value {shown} is {value}; expected a whole number "
                                   ">= 1")
            found.add(int(value))
        return sorted(found)


def _domain(value) -> dict:
    kind = value.get("kind") if isinstance(value, dict) else None
    if kind in ("divisors", "powers"):
        fields(value, {"kind", "where", "text", "program"})
        return {"kind": kind, "number": small_program({k: value[k] for k in ("where", "text",
                                                                               "program")})}
    if kind == "range":
        fields(value, {"kind", "low", "high"})
        if type(value["low"]) is not int or type(value["high"]) is not int or \
                value["high"] - value["low"] > 10_000_000:
            raise InvalidProgram("range")
        return dict(value)
    if kind == "values":
        entries = fields(value, {"kind", "entries"})["entries"]
        if not isinstance(entries, list) or len(entries) > 100_000:
            raise InvalidProgram("values")
        return {"kind": kind, "entries": [small_program(entry) for entry in entries]}
    raise InvalidProgram("domain kind")


def _numeric(program: Program, shown: str, values, where: str):
    """As the engine's ``_numeric``: a small program at the numbers known so far."""
    missing = [n for n in program.inputs if n not in values]
    if missing:
        raise MappingError(f"{where}: {', '.join(missing)} is not known when it is evaluated")
    with np.errstate(all="ignore"):
        try:
            return program(*(values[n] for n in program.inputs))[0]
        except (ArithmeticError, ValueError) as error:
            raise MappingError(f"{where}: cannot evaluate {shown} ({error})") from None


def check_size(where: str, value) -> None:
    """A parameter or tile value must be a whole number of at least 1 (also over arrays)."""
    array = np.asarray(value, dtype=float)
    flat = array.reshape(-1)
    good = np.isfinite(flat) & (flat >= 1) & (flat == np.floor(flat))
    if not good.all():
        raise MappingError(f"{where} is {flat[~good][0]:g}; expected a whole number of at "
                           "least 1")


def divisors(n: int) -> list[int]:
    """Divisors of ``n`` in increasing order (by trial division below 2^32, else sympy's)."""
    if n < 1:
        return []
    if n >= 1 << 32:
        from einsim.search.parameters import divisors as large

        return large(n)
    factors, rest, p = {}, n, 2
    while p * p <= rest:
        while rest % p == 0:
            factors[p] = factors.get(p, 0) + 1
            rest //= p
        p += 1 if p == 2 else 2
    if rest > 1:
        factors[rest] = factors.get(rest, 0) + 1
    found = [1]
    for prime, power in factors.items():
        found = [d * prime ** k for d in found for k in range(power + 1)]
    return sorted(found)
