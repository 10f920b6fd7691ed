"""The ``einsim cascades`` listing without parsing: passes over the sequence rank, precomputed.

Counting passes needs the parser and the dependency graph (lark, networkx); the listing only
needs the counts.  :data:`KNOWN_PASSES` holds them with a digest of each cascade's text, and
:func:`passes_over_sequence` uses a count only while the text is unchanged, computing it
otherwise, so an edited or added library cascade is never listed with a stale count.
Regenerate with ``python -m einsim.cascade_listing`` (tests check the table against the
computed counts).
"""

from __future__ import annotations

import hashlib

KNOWN_PASSES: dict[str, tuple[str, int]] = {
    "attention-3pass": ("9785393ca3f5ca4b", 3),
    "attention-2pass": ("539c025e713cc1f4", 2),
    "attention-2pass-tiled": ("cc728e56e908a7ac", 2),
    "attention-1pass": ("ffe50565d6d74e81", 1),
    "fusemax": ("d4d945c19ba25b70", 1),
    "causal-attention-3pass": ("29fe18510cafab64", 3),
    "causal-attention-2pass": ("3e63ae3ab11f04da", 2),
    "causal-attention-1pass": ("99e8febbb9164549", 1),
    "causal-fusemax": ("e249d9383b379746", 1),
    "attention-naive": ("0c40ae7ea16cefb7", 1),
    "gna": ("0525c72f558e6276", 1),
    "gna-2d": ("e1a40408810c295e", 1),
    "gna-3d": ("2b7be0dab1e57be0", 1),
    "decode-split": ("9dec6d9288539cea", 1),
    "linear-attention": ("07b334e1e5ec33ac", 1),
    "attention-scan": ("f24d5c94c9029fcc", 1),
}
"""Library name → (digest of its sequence rank and text, passes over the sequence rank)."""


def digest(sequence_rank: str, text: str) -> str:
    """Short digest of what the pass count depends on."""
    return hashlib.sha256(f"{sequence_rank}\0{text}".encode()).hexdigest()[:16]


def passes_over_sequence(name: str) -> int:
    """Passes of library cascade ``name`` over its sequence rank (precomputed when current)."""
    from einsim import library

    entry = library.entry(name)
    known = KNOWN_PASSES.get(name)
    if known is not None and known[0] == digest(entry.sequence_rank, entry.text):
        return known[1]
    from einsim.passes import passes

    return passes(library.get(name), entry.sequence_rank)


def computed_table() -> dict[str, tuple[str, int]]:
    """The table as it should read now (parses every library cascade)."""
    from einsim import library
    from einsim.passes import passes

    return {name: (digest(library.entry(name).sequence_rank, library.entry(name).text),
                   passes(library.get(name), library.entry(name).sequence_rank))
            for name in library.names()}


if __name__ == "__main__":  # print the table to paste above
    for name, (text_digest, count) in computed_table().items():
        print(f'    "{name}": ("{text_digest}", {count}),')
