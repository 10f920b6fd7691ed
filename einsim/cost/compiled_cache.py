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

from einsim.cost.expression_program import InvalidProgram, NotCompilable
from einsim.errors import EinsimError, MappingError
from einsim.cost.sweep_plan import PlanEngine, SweepPlan
from einsim.specfile import canonical

FORMAT = "einsim-sweep-plan"
VERSION = 1
MAX_BYTES = 16 << 20
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
                    "code": code_digest(), "mapping": canonical(document),
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
