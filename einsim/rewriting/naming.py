"""Names for the tensors a rewrite adds, derived from the names it starts from, never taken."""

from __future__ import annotations

from dataclasses import dataclass, field

from einsim.language import ir
from einsim.language.parser import NAME


def taken_names(cascade: ir.Cascade) -> set[str]:
    """Every upper-case name the cascade uses: tensors, ranks, sizes and parameters."""
    names = {e.name for e in cascade.einsums} | set(cascade.input_names)
    names |= {r.name for r in cascade.ranks} | {p.name for p in cascade.params}
    for partition in cascade.partitions:
        names |= {partition.rank, *partition.parts}
        names |= {s for s in partition.sizes if isinstance(s, str)}
    names |= {ir.rank_of(v) for v in cascade.rank_variables}
    for einsum in cascade.einsums:
        for node in ir.walk(einsum.expression):
            if isinstance(node, ir.Symbol) and node.name[0].isupper():
                names.add(node.name)
            if isinstance(node, ir.Access):
                for index in node.indices:
                    names |= set(index.size_symbols)
    return names


@dataclass
class Names:
    """Hands out fresh tensor names: ``base`` if free, else ``base_2``, ``base_3``..."""

    taken: set[str] = field(default_factory=set)

    def fresh(self, base: str, fallback: str = "") -> str:
        """``base`` (or ``fallback`` when ``base`` is not a valid name), made unique."""
        if not NAME.fullmatch(base):
            base = fallback or "T"
        name, number = base, 2
        while name in self.taken:
            name, number = f"{base}_{number}", number + 1
        self.taken.add(name)
        return name
