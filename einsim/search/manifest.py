"""The experiment a sweep store holds: its manifest, and the check ``--resume`` makes.

A store's manifest names its mapping, hardware and workload (by their own ``name`` fields,
with a digest of their content, so ``--mapping fusemax`` and ``--mapping
mappings/fusemax.yaml`` are one experiment and an edited copy is another), the objective,
the swept parameter names and the engine version.  Sequence lengths and parameter values are
not part of it: a resumed sweep may add points.  A CSV store keeps it in
``<file>.manifest.json`` beside the file, a Parquet store in ``<dir>/_manifest.json`` (which
Arrow and pandas skip when reading the dataset).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from einsim.errors import EinsimError
from einsim.specfile import canonical

FORMAT = "einsim-sweep"
FIELDS = ("mapping", "mapping_spec", "hardware", "hardware_spec", "workload", "workload_spec",
          "objective", "parameters", "engine")
MAX_BYTES = 1 << 20  # a manifest is a few hundred bytes; anything much larger is not one


class NotAStoreError(EinsimError):
    """An ``--out`` that exists but is not a sweep store this program wrote."""


class ManifestMismatchError(EinsimError):
    """``--resume`` of a store that holds another experiment."""


@dataclass(frozen=True)
class Experiment:
    """What a sweep's rows are results of; ``names`` go into point keys and rows."""

    mapping: str
    hardware: str
    workload: str
    objective: str
    parameters: tuple[str, ...]
    digests: tuple[str, str, str]  # of the mapping, hardware and workload specs

    def manifest(self) -> dict:
        from einsim import __version__

        return {"format": FORMAT, "mapping": self.mapping, "mapping_spec": self.digests[0],
                "hardware": self.hardware, "hardware_spec": self.digests[1],
                "workload": self.workload, "workload_spec": self.digests[2],
                "objective": self.objective, "parameters": sorted(self.parameters),
                "engine": __version__}

    @property
    def key_names(self) -> tuple[str, str, str, str]:
        """``(mapping, workload, hardware, objective)`` as point keys hash them."""
        return self.mapping, self.workload.lower(), self.hardware, self.objective


def _digest(model) -> str:
    data = model.model_dump(mode="json") if hasattr(model, "model_dump") else model
    text = json.dumps(canonical(data), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mapping_facts(mapping: str) -> tuple[str, str, tuple[str, ...], str]:
    """``(name, hardware, parameter names, content digest)`` of a mapping, a loop tree or a
    spec, by name or path (loaded by its own loader first, so a bad file says why)."""
    from importlib import resources

    from einsim.specfile import read_spec

    from einsim.cost.tree import load_mapping_tree

    model = load_mapping_tree(mapping)
    document, _ = read_spec(mapping, resources.files("mappings"), "mapping")
    return model.name, model.hardware, tuple(model.parameters), _digest(document)


def experiment(mapping: str, workload: str, hardware: str | None, objective: str,
               parameters, cascade: str | None = None) -> Experiment:
    """The experiment of a sweep, from the names or paths the user gave; a cascade that
    replaces the mapping's own is part of the mapping's identity (name and content)."""
    from einsim.cost.front_door import load_hardware
    from einsim.workloads import load_workload

    name, native, _, digest = mapping_facts(mapping)
    if cascade is not None:
        from einsim import library

        chosen = library.load(cascade)
        name = f"{name} on {chosen.name or cascade}"
        digest = _digest([digest, str(chosen)])
    machine = load_hardware(hardware or native)
    problem = load_workload(workload, 1024)  # any length: lengths are not the experiment
    shape = {k: v for k, v in problem.model_dump(mode="json").items()
             if k not in ("seq_len", "kv_len")}  # lengths are swept, not the experiment
    return Experiment(name, machine.name, problem.name, objective, tuple(parameters),
                      (digest, _digest(machine), _digest(shape)))


def check(stored: dict, new: dict, store: Path) -> None:
    """Raise :class:`ManifestMismatchError` naming the first field that differs."""
    for field in FIELDS:
        old, now = stored.get(field), new.get(field)
        if old == now:
            continue
        if field.endswith("_spec"):
            name = field[:-len("_spec")]
            detail = (f"{name} {new.get(name)}: its specification differs from the one the "
                      f"store was made with ({old} vs {now})")
        elif field == "parameters":
            detail = (f"swept parameters differ (stored {', '.join(old or []) or 'none'} vs "
                      f"now {', '.join(now or []) or 'none'})")
        else:
            detail = f"{field} differs (stored {old} vs now {now})"
        raise ManifestMismatchError(f"--resume {store}: it holds another experiment: {detail}; "
                                    "choose another --out")


def read_manifest(path: Path, store: Path) -> dict | None:
    """The manifest at ``path`` (None if there is none); junk is :class:`NotAStoreError`."""
    try:
        if not path.is_file():
            return None
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        manifest = json.loads(data.decode()) if len(data) <= MAX_BYTES else None
    except (OSError, UnicodeDecodeError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotAStoreError(f"--out {store}: {path.name} is not an einsim sweep manifest; "
                             "choose another --out")
    return manifest


def write_manifest(path: Path, manifest: dict) -> None:
    """Write ``manifest`` atomically (a temporary file renamed into place) and durably."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w") as handle:
            json.dump(manifest, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
