"""The ``einsim cascades`` listing without importing the library: precomputed, checked current.

Listing the library needs each cascade's passes over its sequence rank, which needs the parser
and the dependency graph (lark, networkx), and the library module itself imports NumPy for its
references.  :data:`LISTING` holds the rows with a digest of everything they are derived from
(``einsim/library/__init__.py`` and every ``*.einsum`` text); :func:`listing` returns them
while the digest matches and computes them otherwise, so an edited library is never listed
stale.  Regenerate with ``python -m einsim.cli.cascade_listing --write`` (a test checks it is
current).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

_LIBRARY = Path(__file__).resolve().parent.parent / "library"

# BEGIN GENERATED (python -m einsim.cli.cascade_listing --write)
LISTING: dict = {'digest': '1bc5d06c299d19a11e2b',
 'rows': [{'name': 'attention-3pass',
           'description': 'Numerically stable softmax attention: global max, exp, sum, divide, '
                          'AV — three passes over M (unfused and FLAT)',
           'passes_over_m': 3,
           'sequence_rank': 'm',
           'citation': 'Nayak et al., FuseMax: Leveraging Extended Einsums to Optimize '
                       'Attention Accelerator Design, MICRO 2024'},
          {'name': 'attention-2pass',
           'description': 'Deferred division: the numerator is multiplied by V before dividing '
                          '— two passes over M',
           'passes_over_m': 2,
           'sequence_rank': 'm',
           'citation': 'Nayak et al., FuseMax: Leveraging Extended Einsums to Optimize '
                       'Attention Accelerator Design, MICRO 2024'},
          {'name': 'attention-2pass-tiled',
           'description': 'Tile-local maxima with a correction factor exp(LM - GM); two passes '
                          'over M',
           'passes_over_m': 2,
           'sequence_rank': 'm',
           'citation': 'Nayak et al., FuseMax: Leveraging Extended Einsums to Optimize '
                       'Attention Accelerator Design, MICRO 2024'},
          {'name': 'attention-1pass',
           'description': 'Online softmax with running max, denominator and numerator over KV '
                          'tiles (FlashAttention-2 style) — one pass',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Dao, FlashAttention-2: Faster Attention with Better Parallelism and '
                       'Work Partitioning, ICLR 2024'},
          {'name': 'fusemax',
           'description': 'The FuseMax 1-pass cascade: BK, BV, BQK, LM, RM, SLN, SLD, SLNV, '
                          'PRM, SPD, RD, SPNV, RNV, AV — one pass over M, two over the tile '
                          'rank M0',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Nayak et al., FuseMax: Leveraging Extended Einsums to Optimize '
                       'Attention Accelerator Design, MICRO 2024'},
          {'name': 'gqa-attention-1pass',
           'description': 'attention-1pass for grouped-query attention: the G query heads of a '
                          'group share one K and V head',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Ainslie et al., GQA, EMNLP 2023'},
          {'name': 'causal-attention-3pass',
           'description': 'attention-3pass with a causal filter m <= p',
           'passes_over_m': 3,
           'sequence_rank': 'm',
           'citation': 'Nayak et al., FuseMax: Leveraging Extended Einsums to Optimize '
                       'Attention Accelerator Design, MICRO 2024'},
          {'name': 'causal-attention-2pass',
           'description': 'attention-2pass with a causal filter m <= p',
           'passes_over_m': 2,
           'sequence_rank': 'm',
           'citation': 'Nayak et al., FuseMax: Leveraging Extended Einsums to Optimize '
                       'Attention Accelerator Design, MICRO 2024'},
          {'name': 'causal-attention-1pass',
           'description': 'attention-1pass with a causal filter m <= p',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Dao, FlashAttention-2: Faster Attention with Better Parallelism and '
                       'Work Partitioning, ICLR 2024'},
          {'name': 'causal-fusemax',
           'description': 'fusemax with a causal filter m1*M0 + m0 <= p',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Nayak et al., FuseMax: Leveraging Extended Einsums to Optimize '
                       'Attention Accelerator Design, MICRO 2024'},
          {'name': 'attention-naive',
           'description': 'Softmax without subtracting the maximum: one pass, overflows in '
                          'float16 for logits above ~11',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Milakov and Gimelshein, Online normalizer calculation for softmax, '
                       '2018'},
          {'name': 'gna',
           'description': 'Generalized neighborhood attention in 1-D (window W, stride S, '
                          'dilation D, causal C), 1-pass over KV tiles',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Hassani et al., Generalized Neighborhood Attention: Multi-dimensional '
                       'Sparse Attention at the Speed of Light, 2025'},
          {'name': 'gna-2d',
           'description': 'Generalized neighborhood attention in 2-D, per-axis window, stride, '
                          'dilation and causality',
           'passes_over_m': 1,
           'sequence_rank': 'mx',
           'citation': 'Hassani et al., Generalized Neighborhood Attention: Multi-dimensional '
                       'Sparse Attention at the Speed of Light, 2025'},
          {'name': 'gna-3d',
           'description': 'Generalized neighborhood attention in 3-D (video tokens), per-axis '
                          'window, stride, dilation and causality',
           'passes_over_m': 1,
           'sequence_rank': 'mx',
           'citation': 'Hassani et al., Generalized Neighborhood Attention: Multi-dimensional '
                       'Sparse Attention at the Speed of Light, 2025'},
          {'name': 'gna-2d-tiles',
           'description': 'gna-2d over 2-D KV tiles as fused neighborhood attention walks '
                          'them: an online softmax along each row of tiles, merged into a '
                          'running state over rows',
           'passes_over_m': 1,
           'sequence_rank': 'mx',
           'citation': 'Hassani et al., Generalized Neighborhood Attention: Multi-dimensional '
                       'Sparse Attention at the Speed of Light, 2025'},
          {'name': 'gna-3d-tiles',
           'description': 'gna-3d over 3-D KV tiles as fused neighborhood attention walks '
                          'them: online softmax along z, merged per plane, then over planes',
           'passes_over_m': 1,
           'sequence_rank': 'mx',
           'citation': 'Hassani et al., Generalized Neighborhood Attention: Multi-dimensional '
                       'Sparse Attention at the Speed of Light, 2025'},
          {'name': 'token-permute',
           'description': 'The token permute around fused neighborhood attention: Q, K, V '
                          'copied into tile order and the output back (a layout change: the '
                          'values are the identity, the cost is the data moved)',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Hassani et al., Generalized Neighborhood Attention: Multi-dimensional '
                       'Sparse Attention at the Speed of Light, 2025'},
          {'name': 'decode-split',
           'description': 'Split-KV decode: partial (max, sum, numerator) states per KV split '
                          'merged associatively (FlashDecoding, LeanAttention)',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Dao et al., Flash-Decoding for long-context inference, 2023; Sanovar '
                       'et al., Lean Attention, 2024'},
          {'name': 'decode-split-online',
           'description': "Split-KV decode as FlashDecoding's kernel runs it: online softmax "
                          'over the KV tiles of each split, then an associative merge of the '
                          "splits' states",
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Dao et al., Flash-Decoding for long-context inference, 2023'},
          {'name': 'decode-layer',
           'description': 'One decoder layer at a decode step for B sequences: Q/K/V '
                          'projections, grouped-query attention over M cached tokens (online '
                          'softmax over KV tiles), output projection and a SwiGLU FFN with '
                          'residuals (what attention offloading splits between devices)',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Chen et al., Efficient and Economic Large Language Model Inference '
                       'with Attention Offloading (Lamina), 2024'},
          {'name': 'linear-attention',
           'description': 'Causal kernelized linear attention, phi = elu + 1, computed as '
                          'intra-block masked products plus an inter-block running state '
                          '(Lightning Attention-2)',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Qin et al., Lightning Attention-2, 2024; Katharopoulos et al., '
                       'Transformers are RNNs, ICML 2020'},
          {'name': 'linear-attention-lasp2',
           'description': 'Causal linear attention as LASP-2 computes it over devices: chunks '
                          'reduced to d x d memory states, a prefix over the gathered states, '
                          'a running state and masked products inside a chunk',
           'passes_over_m': 0,
           'sequence_rank': 'm',
           'citation': 'Sun et al., LASP-2, 2025'},
          {'name': 'attention-scan',
           'description': 'Attention of every query over every key prefix as a scan of (max, '
                          'sum, numerator) states (Aaren)',
           'passes_over_m': 1,
           'sequence_rank': 'm',
           'citation': 'Feng et al., Attention as an RNN, 2024'}]}
# END GENERATED


def digest() -> str:
    """Digest of the library's definitions: its module source and every cascade text."""
    hasher = hashlib.sha256()
    for path in [_LIBRARY / "__init__.py", *sorted(_LIBRARY.glob("*.einsum"))]:
        hasher.update(path.name.encode() + b"\0")
        try:
            hasher.update(path.read_bytes())
        except OSError:
            hasher.update(b"unreadable")
        hasher.update(b"\0")
    return hasher.hexdigest()[:20]


def computed() -> list[dict]:
    """The rows computed from the library (parses every cascade)."""
    from einsim import library
    from einsim.analysis.passes import passes

    rows = []
    for name in library.names():
        entry = library.entry(name)
        rows.append({"name": name, "description": entry.description,
                     "passes_over_m": passes(library.get(name), entry.sequence_rank),
                     "sequence_rank": entry.sequence_rank, "citation": entry.citation})
    return rows


def listing() -> list[dict]:
    """One row per library cascade: name, description, passes_over_m, sequence_rank, citation."""
    if LISTING.get("digest") == digest():
        return [dict(row) for row in LISTING["rows"]]
    return computed()


def is_current() -> bool:
    """Whether :data:`LISTING` matches the library as it is now."""
    return LISTING.get("digest") == digest() and LISTING.get("rows") == computed()


def write() -> None:
    """Rewrite the generated block of this file from the library."""
    import pprint

    path = Path(__file__).resolve()
    text = path.read_text(encoding="utf-8")
    head, rest = text.split("# BEGIN GENERATED", 1)
    _, tail = rest.split("# END GENERATED", 1)
    data = {"digest": digest(), "rows": computed()}
    body = "LISTING: dict = " + pprint.pformat(data, width=96, sort_dicts=False) + "\n"
    path.write_text(f"{head}# BEGIN GENERATED (python -m einsim.cli.cascade_listing --write)\n"
                    f"{body}# END GENERATED{tail}", encoding="utf-8")


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write()
        print(f"wrote {Path(__file__).resolve()}")
    else:
        print("current" if is_current() else "stale: run python -m einsim.cli.cascade_listing --write")
