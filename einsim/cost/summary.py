"""Reading a compiled mapping's outputs, shared by the engine and the cached sweep plans:
the summary's columns with feasibility and utilization per unit, and why a point does not
fit.  Light on purpose (NumPy only): a cached sweep reads these without sympy."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from einsim.errors import MappingError


ITERATED_COPIES = ("B", "N", "G")
"""Ranks that, when a cascade iterates them, are its own and not the workload's copies: the
batch, key/value heads and query heads sharing one (grouped-query attention)."""


def cascade_copies(copies, values: Mapping[str, object], symbols) -> object:
    """Independent copies of a cascade: the workload's batch × heads, less what the cascade
    iterates itself (its ranks in :data:`ITERATED_COPIES` among ``symbols``)."""
    for rank in ITERATED_COPIES:
        if rank in symbols:
            copies = copies / values[rank]
    return copies


def check_complete(mapping: str, symbols: Sequence[str], values: Mapping[str, object]) -> None:
    """Every symbol of a compiled mapping has a value, else an error naming the missing."""
    missing = [n for n in symbols if n not in values]
    if missing:
        raise MappingError(f"mapping {mapping}: no value for {', '.join(missing)} (a rank "
                           "size the workload lacks, or a tile parameter the mapping does not "
                           "declare)")


def summary_table(keys: Sequence[str], results) -> dict[str, object]:
    """The summary's columns by key; ``feasible`` where every ``slack:<level>`` is at least 0,
    ``utilization`` per unit from the ``utilization:<unit>`` columns, ``area_mm2`` or None."""
    table = dict(zip(keys, results))
    feasible = True
    for key, slack in table.items():
        if key.startswith("slack:"):
            feasible = feasible & (np.asarray(slack) >= 0)
    table["feasible"] = feasible
    table["utilization"] = {k.split(":", 1)[1]: v for k, v in table.items()
                            if k.startswith("utilization:")}
    table.setdefault("area_mm2", None)
    return table


def capacity_reasons(raw: Mapping[tuple, object], mapping: str, hardware: str,
                     word_bytes: Callable[[str], float]) -> list[str]:
    """Per point (of scalar or array values), why it does not fit, or ``""``: the level whose
    occupancy exceeds its capacity and the largest tile kept there.  ``raw`` holds
    ``("capacity", level)``, ``("occupancy", level)`` and ``("tile", node, level, tensor)``;
    ``word_bytes(level)`` converts its words to bytes."""
    size = max((np.size(v) for v in raw.values()), default=1)
    out = [""] * size

    def column(value):
        return np.broadcast_to(np.asarray(value, dtype=float), (size,))

    for (kind, *key), capacity in raw.items():
        if kind != "capacity":
            continue
        level = key[0]
        word = word_bytes(level)
        used, available = column(raw.get(("occupancy", level), 0.0)), column(capacity)
        fails = np.nonzero(used > available * (1 + 1e-12))[0]
        if not len(fails):
            continue
        tiles = {k[3]: v for k, v in raw.items() if k[0] == "tile" and len(k) > 3
                 and k[2] == level}
        names = list(tiles)
        stack = np.stack([column(tiles[n]) for n in names])
        largest = stack.argmax(axis=0)
        for i in fails:
            if not out[i]:
                name = names[largest[i]]
                out[i] = (f"mapping {mapping} does not fit: tensor {name} needs "
                          f"{stack[largest[i], i] * word:,.0f} bytes in the {level}, "
                          f"{used[i] * word:,.0f} bytes in all, but {hardware} "
                          f"has {available[i] * word:,.0f} bytes available")
    return out
