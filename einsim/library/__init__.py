"""The cascade library: named attention cascades, each with a description, a citation and the
plain-NumPy reference it must match.

The cascade texts are data (``*.einsum`` files beside this module); this module only says what
each one is.

>>> import einsim
>>> "fusemax" in einsim.library.names()
True
>>> einsim.passes(einsim.library.get("fusemax"), "m")
1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Callable

from einsim.errors import EinsimError
from einsim.language.ir import Cascade
from einsim.library import references

_FUSEMAX = "Nayak et al., FuseMax: Leveraging Extended Einsums to Optimize Attention " \
           "Accelerator Design, MICRO 2024"
_FLASH2 = "Dao, FlashAttention-2: Faster Attention with Better Parallelism and Work " \
          "Partitioning, ICLR 2024"
_NATTEN = "Hassani et al., Generalized Neighborhood Attention: Multi-dimensional Sparse " \
          "Attention at the Speed of Light, 2025"

_DENSE = {"E": 16, "F": 16, "M0": 32}
_SEQUENCE = {"M": 100, "P": 100}


@dataclass(frozen=True)
class LibraryEntry:
    """One library cascade: what it is, where it comes from, and how to check it."""

    name: str
    description: str
    citation: str
    reference: Callable
    sizes: dict = field(default_factory=dict)
    sequence_rank: str = "m"

    def sizes_for(self, sequence_length: int | None = None) -> dict:
        """Default validation sizes; ``sequence_length`` sets every sequence rank."""
        sizes = dict(self.sizes)
        if sequence_length is not None:
            for rank in ("M", "P", "MX", "PX"):
                if rank in sizes:
                    sizes[rank] = sequence_length
        return sizes

    @property
    def text(self) -> str:
        return resources.files(__name__).joinpath(f"{self.name}.einsum").read_text()


def _entry(name, description, citation, reference, sizes=None, sequence_rank="m"):
    return LibraryEntry(name, description, citation, reference,
                        {**_DENSE, **_SEQUENCE, **(sizes or {})}, sequence_rank)


_ENTRIES = [
    _entry("attention-3pass", "Numerically stable softmax attention: global max, exp, sum, "
           "divide, AV — three passes over M (unfused and FLAT)", _FUSEMAX, references.attention),
    _entry("attention-2pass", "Deferred division: the numerator is multiplied by V before "
           "dividing — two passes over M", _FUSEMAX, references.attention),
    _entry("attention-2pass-tiled", "Tile-local maxima with a correction factor exp(LM - GM); "
           "two passes over M", _FUSEMAX, references.attention),
    _entry("attention-1pass", "Online softmax with running max, denominator and numerator over "
           "KV tiles (FlashAttention-2 style) — one pass", _FLASH2, references.attention),
    _entry("fusemax", "The FuseMax 1-pass cascade: BK, BV, BQK, LM, RM, SLN, SLD, SLNV, PRM, SPD, "
           "RD, SPNV, RNV, AV — one pass over M, two over the tile rank M0", _FUSEMAX,
           references.attention),
    _entry("gqa-attention-1pass", "attention-1pass for grouped-query attention: the G query "
           "heads of a group share one K and V head", "Ainslie et al., GQA, EMNLP 2023",
           references.grouped_attention, {"G": 3}),
    _entry("causal-attention-3pass", "attention-3pass with a causal filter m <= p", _FUSEMAX,
           references.causal_attention),
    _entry("causal-attention-2pass", "attention-2pass with a causal filter m <= p", _FUSEMAX,
           references.causal_attention),
    _entry("causal-attention-1pass", "attention-1pass with a causal filter m <= p", _FLASH2,
           references.causal_attention),
    _entry("causal-fusemax", "fusemax with a causal filter m1*M0 + m0 <= p", _FUSEMAX,
           references.causal_attention),
    _entry("attention-naive", "Softmax without subtracting the maximum: one pass, overflows in "
           "float16 for logits above ~11", "Milakov and Gimelshein, Online normalizer "
           "calculation for softmax, 2018", references.attention),
    _entry("gna", "Generalized neighborhood attention in 1-D (window W, stride S, dilation D, "
           "causal C), 1-pass over KV tiles", _NATTEN, references.gna_attention,
           {"M": 64, "P": 64, "M0": 16, "W": 9, "S": 2, "D": 2, "C": 0}),
    _entry("gna-2d", "Generalized neighborhood attention in 2-D, per-axis window, stride, "
           "dilation and causality", _NATTEN, references.gna_attention_2d,
           {"MX": 12, "PX": 12, "MY": 10, "PY": 10, "MX0": 5, "WX": 5, "WY": 3, "SX": 2,
            "DY": 2, "CX": 0, "CY": 1}, sequence_rank="mx"),
    _entry("gna-3d", "Generalized neighborhood attention in 3-D (video tokens), per-axis "
           "window, stride, dilation and causality", _NATTEN, references.gna_attention_3d,
           {"MX": 6, "PX": 6, "MY": 6, "PY": 6, "MZ": 8, "PZ": 8, "MX0": 4, "WX": 3, "WY": 5,
            "WZ": 3, "SY": 2, "DZ": 2, "CX": 1}, sequence_rank="mx"),
    _entry("gna-2d-tiles", "gna-2d over 2-D KV tiles as fused neighborhood attention walks "
           "them: an online softmax along each row of tiles, merged into a running state over "
           "rows", _NATTEN, references.gna_attention_2d,
           {"MX": 12, "PX": 12, "MY": 10, "PY": 10, "MX0": 5, "MY0": 4, "WX": 5, "WY": 3,
            "SX": 2, "DY": 2, "CX": 0, "CY": 1}, sequence_rank="mx"),
    _entry("gna-3d-tiles", "gna-3d over 3-D KV tiles as fused neighborhood attention walks "
           "them: online softmax along z, merged per plane, then over planes", _NATTEN,
           references.gna_attention_3d,
           {"MX": 6, "PX": 6, "MY": 6, "PY": 6, "MZ": 8, "PZ": 8, "MX0": 4, "MY0": 3, "MZ0": 3,
            "WX": 3, "WY": 5, "WZ": 3, "SY": 2, "DZ": 2, "CX": 1}, sequence_rank="mx"),
    _entry("token-permute", "The token permute around fused neighborhood attention: Q, K, V "
           "copied into tile order and the output back (a layout change: the values are the "
           "identity, the cost is the data moved)", _NATTEN, references.token_permute),
    _entry("decode-split", "Split-KV decode: partial (max, sum, numerator) states per KV split "
           "merged associatively (FlashDecoding, LeanAttention)", "Dao et al., Flash-Decoding "
           "for long-context inference, 2023; Sanovar et al., Lean Attention, 2024",
           references.attention, {"P": 4, "M": 1000, "M0": 96}),
    _entry("decode-split-online", "Split-KV decode as FlashDecoding's kernel runs it: online "
           "softmax over the KV tiles of each split, then an associative merge of the splits' "
           "states", "Dao et al., Flash-Decoding for long-context inference, 2023",
           references.attention, {"P": 4, "M": 1000, "M1": 3, "M0": 32}),
    _entry("decode-layer", "One decoder layer at a decode step for B sequences: Q/K/V "
           "projections, grouped-query attention over M cached tokens (online softmax over KV "
           "tiles), output projection and a SwiGLU FFN with residuals (what attention "
           "offloading splits between devices)", "Chen et al., Efficient and Economic Large "
           "Language Model Inference with Attention Offloading (Lamina), 2024",
           references.decode_layer,
           {"D": 12, "N": 2, "G": 3, "E": 4, "F": 4, "I": 10, "B": 3, "M": 50, "P": 1,
            "M0": 16}),
    _entry("linear-attention", "Causal kernelized linear attention, phi = elu + 1, computed as "
           "intra-block masked products plus an inter-block running state (Lightning "
           "Attention-2)", "Qin et al., Lightning Attention-2, 2024; Katharopoulos et al., "
           "Transformers are RNNs, ICML 2020", references.causal_linear_attention),
    _entry("linear-attention-lasp2", "Causal linear attention as LASP-2 computes it over "
           "devices: chunks reduced to d x d memory states, a prefix over the gathered states, "
           "a running state and masked products inside a chunk", "Sun et al., LASP-2, 2025",
           references.causal_linear_attention,
           {"M": 48, "P": 48, "P1": 2, "P0": 8, "M1": 2, "M0": 8}),
    _entry("attention-scan", "Attention of every query over every key prefix as a scan of "
           "(max, sum, numerator) states (Aaren)", "Feng et al., Attention as an RNN, 2024",
           references.attention_scan, {"M": 48, "P": 8}),
]

ENTRIES: dict[str, LibraryEntry] = {e.name: e for e in _ENTRIES}


def names() -> list[str]:
    """Names of every library cascade."""
    return list(ENTRIES)


def entry(name: str) -> LibraryEntry:
    """The :class:`LibraryEntry` (description, citation, reference) of a library cascade."""
    if name not in ENTRIES:
        raise EinsimError(f"unknown cascade {name!r}; expected one of {', '.join(ENTRIES)}")
    return ENTRIES[name]


@lru_cache(maxsize=None)
def get(name: str) -> Cascade:
    """The parsed library cascade ``name``."""
    from einsim.language.parser import parse

    return parse(entry(name).text, name=name, source=f"{name}.einsum")


def load(name_or_path: str) -> Cascade:
    """A library cascade by name, or a cascade file (``.einsum`` text or YAML) by path."""
    from pathlib import Path

    from einsim.errors import SpecError

    if name_or_path in ENTRIES:
        return get(name_or_path)
    path = Path(name_or_path)
    if not path.exists():
        raise SpecError(f"unknown cascade {name_or_path!r}: not a library name "
                        f"({', '.join(ENTRIES)}) nor an existing file")
    if not path.is_file():
        raise SpecError(f"cascade {name_or_path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"cascade {name_or_path}: not UTF-8 text") from None
    except OSError as error:
        raise SpecError(f"cascade {name_or_path}: {error.strerror or error}") from None
    if path.suffix in (".yaml", ".yml"):
        from einsim.language.yaml_form import load_yaml

        return load_yaml(text, source=str(path))
    from einsim.language.parser import parse

    return parse(text, name=path.stem, source=str(path))
