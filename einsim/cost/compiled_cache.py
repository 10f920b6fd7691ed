"""A persistent cache of what a vectorized sweep needs from a compiled loop tree, as plain data.

Compiling a (mapping, cascade, hardware) means deriving its expressions with sympy; that and
importing sympy and the cascade parser take most of a short sweep.  A :class:`SweepPlan` holds
the result as JSON: per concrete tree, the summary and capacity expressions as op-list
programs (:mod:`einsim.cost.expression_program`), the parameter defaults, domains and tile
sizes as small programs, the hardware numbers and the cascade's partitions, which is all
:meth:`PlanEngine.values`, :meth:`PlanEngine.summary` and :meth:`PlanEngine.reasons` need.

Entries live in ``$EINSIM_CACHE_DIR`` (else ``$XDG_CACHE_HOME/einsim``, else
``~/.cache/einsim``; an empty ``EINSIM_CACHE_DIR`` turns the cache off), one file per key: a
digest of the format version, the einsim version, the cost model's source code, the mapping
document, the cascade text and the hardware model.  Files are written atomically (a temporary
file renamed into place).  A file that is not a regular file, too large, not JSON, of another
key or version, or whose structure or checksum does not check out is ignored (and rebuilt):
nothing read is ever executed, only interpreted by the programs' whitelisted operations.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from einsim.cost.expression_program import (InvalidProgram, NotCompilable, Program, fields,
                                            list_of, mapping_of, number, pairs, small_program,
                                            text, texts)
from einsim.errors import EinsimError, MappingError

FORMAT = "einsim-sweep-plan"
VERSION = 1
MAX_BYTES = 16 << 20
MAX_VARIANTS = 64
_SOURCE_PACKAGES = (("einsim", ("cost", "language", "analysis")), ("hw_models", ("",)))


class NotPlannable(EinsimError):
    """A compiled tree whose evaluation needs more than a plan holds (masks, densities...)."""


@dataclass(frozen=True)
class Problem:
    """As :class:`einsim.cost.engine.Problem` (without importing the engine)."""

    name: str
    sizes: dict
    copies: float
    seq_len: int


def problem_of(workload) -> Problem:
    return Problem(workload.name, workload.sizes(), workload.batch * workload.heads,
                   workload.seq_len)


# ------------------------------------------------------------------------------ location, keys

def cache_dir() -> Path | None:
    """Where entries live (None: the cache is off)."""
    configured = os.environ.get("EINSIM_CACHE_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "einsim"


_CODE: list[str] = []


def code_digest() -> str:
    """A digest of the cost model's sources: an edited engine never reads an old entry."""
    if not _CODE:
        from importlib.util import find_spec

        digest = hashlib.sha256()
        for package, folders in _SOURCE_PACKAGES:
            spec = find_spec(package)
            for root in (spec.submodule_search_locations or []) if spec else []:
                for folder in folders:
                    where = Path(root, folder)
                    for path in sorted(where.glob("*.py")):
                        digest.update(f"{package}/{folder}/{path.name}\0".encode())
                        digest.update(path.read_bytes())
        _CODE.append(digest.hexdigest())
    return _CODE[0]


@dataclass
class Sources:
    """What a plan is computed from, read without parsing or compiling anything."""

    mapping: str
    document: dict
    cascade: str
    cascade_kind: str
    cascade_text: str
    hardware: str
    machine: object
    key: str


def _canonical(value):
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _library_text(name: str) -> str | None:
    """A library cascade's text (found without importing the library and its parser)."""
    from importlib.util import find_spec

    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    spec = find_spec("einsim.library")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root, f"{name}.einsum")
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return None


def _machine(name: str):
    """The hardware model, loaded as :func:`einsim.cost.front_door.load_hardware` does."""
    from hw_models.gpu_sm import gpu_presets, load_gpu
    from hw_models.spatial_array import load_spatial_array

    if name in gpu_presets():
        return load_gpu(name)
    try:
        return load_spatial_array(name)
    except EinsimError:
        return load_gpu(name)


def sources(mapping, cascade: str | None = None, hardware: str | None = None
            ) -> Sources | None:
    """The key of a sweep's plan and what it is made of; None when any part cannot be read
    cheaply (the caller then compiles, and any error is reported from there)."""
    if not isinstance(mapping, str) or cache_dir() is None:
        return None
    try:
        from importlib import resources

        from einsim import __version__
        from einsim.specfile import read_spec

        document, _ = read_spec(mapping, resources.files("mappings"), "mapping")
        reference = cascade if cascade is not None else document.get("cascade")
        name = hardware or document.get("hardware")
        if "tree" not in document or not isinstance(reference, str) or \
                not isinstance(name, str):
            return None
        source, kind = _library_text(reference), "library"
        if source is None:
            path = Path(reference)
            source, kind = path.read_text(encoding="utf-8"), path.suffix or "einsum"
            reference = path.stem if kind not in (".yaml", ".yml") else str(path)
        machine = _machine(name)
        material = {"format": FORMAT, "version": VERSION, "einsim": __version__,
                    "code": code_digest(), "mapping": _canonical(document),
                    "cascade": [kind, reference, source],
                    "hardware": machine.model_dump(mode="json")}
        key = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()
                             ).hexdigest()
        return Sources(mapping, document, reference, kind, source, name, machine, key)
    except (EinsimError, OSError, UnicodeDecodeError, ValueError, TypeError, RecursionError):
        return None


# ------------------------------------------------------------------------------ reading, writing

def _path(key: str) -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / f"plan-{key}.json"


def read_entry(key: str) -> dict | None:
    """The body stored under ``key``, or None (missing, unreadable or invalid: never trusted)."""
    path = _path(key)
    if path is None:
        return None
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_BYTES:
            return None
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(descriptor)
    if len(data) > MAX_BYTES:
        return None
    try:
        envelope = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(envelope, dict) or set(envelope) != {"format", "version", "key",
                                                           "checksum", "body"}:
        return None
    if envelope["format"] != FORMAT or envelope["version"] != VERSION or \
            envelope["key"] != key or envelope["checksum"] != _checksum(envelope["body"]):
        return None
    return envelope["body"]


def _checksum(body) -> str:
    try:
        canonical = json.dumps(body, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return ""
    return hashlib.sha256(canonical.encode()).hexdigest()


def write_entry(key: str, body: dict) -> bool:
    """Store ``body`` under ``key`` atomically; False when the cache cannot be written."""
    import tempfile

    path = _path(key)
    if path is None:
        return False
    envelope = {"format": FORMAT, "version": VERSION, "key": key, "checksum": _checksum(body),
                "body": body}
    try:
        data = json.dumps(envelope, allow_nan=False)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".plan-",
                                                 suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except (OSError, ValueError, TypeError):
        return False
    return True


# ------------------------------------------------------------------------------ plans

_PLANS: dict[str, "SweepPlan"] = {}


def cached_plan(mapping, cascade: str | None = None, hardware: str | None = None
                ) -> tuple["SweepPlan | None", Sources | None]:
    """The plan of a sweep if this process or the disk has it (nothing is compiled)."""
    found = sources(mapping, cascade, hardware)
    if found is None:
        return None, None
    body = read_entry(found.key) if found.key not in _PLANS else None
    if body is not None:
        try:
            plan = SweepPlan(body)
        except (InvalidProgram, KeyError, TypeError, ValueError, RecursionError):
            plan = None
        if plan is not None:
            _remember(found.key, plan)
    plan = _PLANS.get(found.key)
    if plan is not None:
        plan.machine = found.machine
    return plan, found


def _remember(key: str, plan: "SweepPlan") -> None:
    if len(_PLANS) > 32:
        _PLANS.clear()
    _PLANS[key] = plan


def build_plan(tree, cascade: str | None = None, hardware: str | None = None,
               found: Sources | None = None, problem=None) -> "SweepPlan":
    """Compile ``tree`` (with sympy) into a plan, store it under ``found``'s key if given.
    ``problem`` (optional) is used to check the plan's inputs against the engine's.  Raises
    :class:`NotPlannable` when a plan cannot reproduce the engine."""
    from einsim.cost.evaluate import SYMBOLIC_FIELDS, compile_for, concrete_trees

    variants, engines = [], []
    for choice, concrete in concrete_trees(tree, {})[0]:
        engine, machine = compile_for(concrete, cascade, hardware)
        variants.append(_variant(engine, choice))
        engines.append(engine)
    if found is not None and found.cascade_kind == "library":
        from einsim import library

        if found.cascade not in library.ENTRIES:  # not how library.load reads that name
            found = None
    body = {"mapping": {"name": tree.name, "hardware": tree.hardware,
                        "parameters": list(tree.parameters), "structural": list(tree.structural)},
            "cascade": {"name": engines[0].cascade.name or "", "text": str(engines[0].cascade)},
            "hardware": {"name": machine.name, "kind": machine.kind},
            "symbolic_fields": dict(SYMBOLIC_FIELDS), "variants": variants}
    try:
        body = json.loads(json.dumps(body, allow_nan=False))  # exactly what a reader sees
        plan = SweepPlan(body)
    except (InvalidProgram, TypeError, ValueError) as error:
        raise NotPlannable(f"the plan does not check out: {error}") from None
    plan.machine = machine
    if problem is not None:
        for engine, variant in zip(engines, plan.variants):
            _verify(engine, variant, problem)
    if found is not None:
        write_entry(found.key, body)
        _remember(found.key, plan)
    return plan


def _verify(engine, variant: "PlanEngine", problem) -> None:
    """The plan's inputs must be the engine's (same names, same numbers), errors included."""
    try:
        expected = engine.values(problem)
    except MappingError as error:
        try:
            variant.values(problem)
        except MappingError as again:
            if str(again) == str(error):
                return
        raise NotPlannable("the plan's inputs differ from the engine's") from None
    got = variant.values(problem)
    if set(got) != set(expected) or any(
            not np.array_equal(np.asarray(got[k], float), np.asarray(expected[k], float))
            for k in expected):
        raise NotPlannable("the plan's inputs differ from the engine's")


def _small(expression, where: str) -> dict:
    from einsim.cost.expression_program import compile_expressions

    names = sorted(str(s) for s in expression.free_symbols)
    return {"where": where, "text": str(expression),
            "program": compile_expressions([expression], names).to_data()}


def _number_or_fail(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or (isinstance(value, int) and abs(value) >= 2 ** 63):
        raise NotPlannable(f"value {value!r} is not a plain number")
    return value


def _variant(engine, choice: dict) -> dict:
    """One concrete tree's part of a plan (see :class:`PlanEngine`)."""
    from einsim.cost.expression_program import compile_expressions
    from einsim.cost.expressions import parse_size
    from einsim.cost.tree import Loop, nodes

    counts, mapping = engine.counts, engine.mapping
    if counts.densities or getattr(counts, "tile_masks", None):
        raise NotPlannable("masked cascades are evaluated by the engine itself")
    if engine.summary_program is None:
        raise NotPlannable("the summary uses a function the op list lacks")
    raw = [(k, e) for k, e in zip(engine.keys, engine._expressions)
           if k[0] in ("capacity", "occupancy", "tile")]
    if not all(isinstance(part, str) for k, _ in raw for part in k):
        raise NotPlannable("raw keys must be text")
    try:
        capacity = compile_expressions([e for _, e in raw], engine.symbol_names + ["copies"])
        defaults = [{"name": n, **_small(e, f"parameters.{n}.default")}
                    for n, e in mapping.parameter_defaults().items()]
        domains = {}
        for name, parameter in mapping.parameters.items():
            domain, where = parameter.domain, f"parameters.{name}.domain"
            if domain is None:
                continue
            if domain.divisors_of is not None or domain.powers_of_two_up_to is not None:
                bound = domain.divisors_of if domain.divisors_of is not None \
                    else domain.powers_of_two_up_to
                domains[name] = {"kind": "divisors" if domain.divisors_of is not None
                                 else "powers", **_small(parse_size(bound, where), where)}
            elif domain.range is not None:
                domains[name] = {"kind": "range", "low": int(domain.range[0]),
                                 "high": int(domain.range[1])}
            else:
                domains[name] = {"kind": "values", "entries": [
                    {**_small(parse_size(entry, where), where), "text": str(entry)}
                    for entry in domain.values or ()]}
        tiles = [_small(node.tile, f"{node.path}.tile") for node in nodes(mapping.root)
                 if isinstance(node, Loop) and node.tile.free_symbols]
    except (NotCompilable, InvalidProgram, EinsimError) as error:
        raise NotPlannable(str(error)) from None
    cascade = engine.cascade
    return {
        "choice": {str(k): str(v) for k, v in choice.items()},
        "mapping": mapping.name, "hardware": engine.hardware.name,
        "parameters": list(mapping.parameters), "defaults": defaults, "domains": domains,
        "hardware_values": {k: _number_or_fail(v) for k, v in engine.hardware.values.items()},
        "cascade_params": [[p.name, _number_or_fail(p.value)] for p in cascade.params],
        "rank_sizes": [[r.name, _number_or_fail(r.size)] for r in cascade.ranks
                       if r.size is not None],
        "partitions": [{"rank": p.rank, "parts": list(p.parts), "text": str(p),
                        "sizes": [s if isinstance(s, str) else _number_or_fail(s)
                                  for s in p.sizes]} for p in cascade.partitions],
        "tiles": tiles, "symbols": list(engine.symbol_names),
        "word_bytes": _number_or_fail(engine.hardware.word_bytes),
        "summary_keys": list(engine.summary_keys),
        "summary": engine.summary_program.to_data(),
        "capacity_keys": [list(k) for k, _ in raw], "capacity": capacity.to_data()}


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
        missing = [n for n in self.symbols if n not in values]
        if missing:
            raise MappingError(f"mapping {self.name}: no value for {', '.join(missing)} "
                               "(a rank size the workload lacks, or a tile parameter the "
                               "mapping does not declare)")
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

    def summary(self, values, copies, specialize: bool = False) -> dict:
        """As :meth:`einsim.cost.engine.CompiledMapping.summary`."""
        table = dict(zip(self.summary_keys,
                         self.program(*(values[n] for n in self.symbols), copies)))
        feasible = True
        for key, slack in table.items():
            if key.startswith("slack:"):
                feasible = feasible & (np.asarray(slack) >= 0)
        table["feasible"] = feasible
        table["utilization"] = {k.split(":", 1)[1]: v for k, v in table.items()
                                if k.startswith("utilization:")}
        table.setdefault("area_mm2", None)
        return table

    def reasons(self, values, copies) -> list[str]:
        """Per point, why it does not fit (as the engine's ``reasons(raw(values))``)."""
        raw = dict(zip(self.capacity_keys,
                       self.capacity(*(values[n] for n in self.symbols), copies)))
        size = max((np.size(v) for v in raw.values()), default=1)
        out = [""] * size

        def column(value):
            return np.broadcast_to(np.asarray(value, dtype=float), (size,))

        for (kind, *key), capacity in raw.items():
            if kind != "capacity":
                continue
            level = key[0]
            used, available = column(raw.get(("occupancy", level), 0.0)), column(capacity)
            fails = np.nonzero(used > available * (1 + 1e-12))[0]
            if not len(fails):
                continue
            tiles = {k[3]: v for k, v in raw.items() if k[0] == "tile" and len(k) > 3
                     and k[2] == level}
            names = list(tiles)
            stack = np.stack([column(tiles[n]) for n in names])
            largest = stack.argmax(axis=0)
            word = self.word_bytes
            for i in fails:
                if not out[i]:
                    name = names[largest[i]]
                    out[i] = (f"mapping {self.name} does not fit: tensor {name} needs "
                              f"{stack[largest[i], i] * word:,.0f} bytes in the {level}, "
                              f"{used[i] * word:,.0f} bytes in all, but {self.hardware_name} "
                              f"has {available[i] * word:,.0f} bytes available")
        return out

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
