"""Attention workloads: the rank sizes of one attention layer problem.

A :class:`Workload` gives batch ``B``, heads ``H``, query length ``P``, key length ``M``,
head dims ``E`` (queries/keys) and ``F`` (values), model dim ``D`` and the FFN dim.
Presets for the FuseMax evaluation (BERT, TrXL, T5, XLM; MICRO 2024) are YAML files in
``einsim/workloads/``; :func:`load_workload` reads a preset by name or any YAML file with
the same keys.  Every user mistake raises :class:`~einsim.errors.SpecError` in one line.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pydantic
from pydantic import ConfigDict
from pydantic_core import PydanticCustomError

from einsim.errors import SpecError
from einsim.spec_types import Count, count, spec_name
from einsim.specfile import describe_validation_error, preset_names, read_spec

__all__ = ["GemmLayer", "Workload", "linear_layers", "load_workload", "parse_seq_len",
           "parse_seq_lens", "workload_names"]

LONGEST_SEQUENCE = 2 ** 32
"""Longest query or key sequence a workload may give (4,294,967,296 tokens)."""

Length = count(high=LONGEST_SEQUENCE)
"""A sequence length (the file may also write ``64K``)."""

_SUFFIXES = {"": 1, "K": 1024, "M": 1024 * 1024}
_SEQ_LEN = re.compile(r"(\d+)([KM]?)", re.IGNORECASE)
_SEQ_FORMS = ("expected a positive integer or one with suffix K (x1024) or M (x1048576), "
              "e.g. 4096, 64K, 1M")


class Workload(pydantic.BaseModel):
    """Rank sizes of one attention layer (immutable).

    ``value_dim`` (F) defaults to ``head_dim`` (E) and ``kv_len`` (M) to ``seq_len`` (P);
    ``kv_heads`` (grouped-query attention) gives ``G = heads / kv_heads`` query heads per
    key/value head, which a cascade with a rank G (``gqa-attention-1pass``) iterates.
    Every size is a positive integer, checked where it is declared (``1.5``, ``inf``, ``True``
    and ``2**63`` are refused naming the field).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    batch: count(high=2 ** 32) = 64
    heads: count(high=2 ** 20)
    kv_heads: count(high=2 ** 20) | None = None
    head_dim: count(high=2 ** 20)
    value_dim: count(high=2 ** 20) | None = None
    model_dim: count(high=2 ** 24)
    ffn_dim: count(high=2 ** 30)
    seq_len: Length
    kv_len: Length | None = None
    dtype_bytes: count(high=16) = 2
    token_grid: tuple[Length, ...] | None = pydantic.Field(
        default=None, min_length=2, max_length=3,
        description="the tokens as a 2-D or 3-D grid (image, video: x, y[, z]) for "
                    "multi-dimensional attention; seq_len must be its product")

    @property
    def B(self) -> int:
        """Batch size."""
        return self.batch

    @property
    def H(self) -> int:
        """Number of heads."""
        return self.heads

    @property
    def G(self) -> int:
        """Query heads per key/value head (grouped-query attention; 1 unless ``kv_heads``)."""
        return self.heads // (self.kv_heads or self.heads)

    @pydantic.model_validator(mode="after")
    def _groups_divide(self):
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"kv_heads {self.kv_heads} must divide heads {self.heads}")
        return self

    @pydantic.field_validator("token_grid")
    @classmethod
    def _grid_holds_the_sequence(cls, grid, info: pydantic.ValidationInfo):
        tokens = 1
        for extent in grid or ():
            tokens *= extent
        lengths = {info.data.get("seq_len"), info.data.get("kv_len") or info.data.get("seq_len")}
        if grid is not None and None not in lengths and lengths != {tokens}:
            raise PydanticCustomError(
                "token_grid", "{grid} holds {tokens} tokens: expected seq_len (and kv_len, if "
                "given) to be that, not {lengths}",
                {"grid": list(grid), "tokens": f"{tokens:,}",
                 "lengths": " and ".join(f"{n:,}" for n in sorted(lengths))})
        return grid

    @property
    def E(self) -> int:
        """Query/key head dimension."""
        return self.head_dim

    @property
    def F(self) -> int:
        """Value head dimension (``head_dim`` unless given)."""
        return self.head_dim if self.value_dim is None else self.value_dim

    @property
    def P(self) -> int:
        """Query sequence length."""
        return self.seq_len

    @property
    def M(self) -> int:
        """Key/value sequence length (``seq_len`` unless given)."""
        return self.seq_len if self.kv_len is None else self.kv_len

    @property
    def D(self) -> int:
        """Model dimension."""
        return self.model_dim

    def sizes(self) -> dict[str, int]:
        """Return the rank sizes ``{"B", "H", "G", "N", "M", "P", "E", "F", "D", "I"}`` (``N``
        key/value heads, ``I`` the FFN width), and with a ``token_grid`` the key and query
        extents per axis (``MX = PX``, ``MY = PY``, ...)."""
        sizes = {"B": self.B, "H": self.H, "G": self.G, "N": self.H // self.G, "M": self.M,
                 "P": self.P, "E": self.E, "F": self.F, "D": self.D, "I": self.ffn_dim}
        for axis, extent in zip("XYZ", self.token_grid or ()):
            sizes[f"M{axis}"] = sizes[f"P{axis}"] = extent
        return sizes

    def with_seq_len(self, n: int | str, kv_len: int | str | None = None) -> Workload:
        """Return a copy with ``seq_len = n`` (``"64K"`` accepted).

        ``kv_len`` is kept (cross attention keeps its key length; self attention, with no
        ``kv_len``, follows ``n``) unless given.
        """
        update = {"seq_len": parse_seq_len(n, "seq_len")}
        if kv_len is not None:
            update["kv_len"] = parse_seq_len(kv_len, "kv_len")
        return _validated({**self.model_dump(exclude_unset=False), **update}, self.name)


class GemmLayer(pydantic.BaseModel):
    """``count`` GEMMs ``C[m, n] = A[m, k] * B[k, n]`` (immutable)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    m: Count
    n: Count
    k: Count
    count: Count = 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates of all ``count`` GEMMs: ``m * n * k * count``."""
        return self.m * self.n * self.k * self.count


def linear_layers(workload: Workload) -> list[GemmLayer]:
    """Return the projection and FFN GEMMs of one transformer layer.

    Queries use ``T = B * P`` tokens and keys/values ``B * M`` (equal for self-attention):
    ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``, ``ffn1``, ``ffn2``.
    """
    w = workload
    tokens_q, tokens_kv = w.B * w.P, w.B * w.M
    return [
        GemmLayer(name="q_proj", m=tokens_q, k=w.D, n=w.H * w.E),
        GemmLayer(name="k_proj", m=tokens_kv, k=w.D, n=w.H * w.E),
        GemmLayer(name="v_proj", m=tokens_kv, k=w.D, n=w.H * w.F),
        GemmLayer(name="out_proj", m=tokens_q, k=w.H * w.F, n=w.D),
        GemmLayer(name="ffn1", m=tokens_q, k=w.D, n=w.ffn_dim),
        GemmLayer(name="ffn2", m=tokens_q, k=w.ffn_dim, n=w.D),
    ]


def parse_seq_len(text: str | int, what: str = "sequence length") -> int:
    """Parse a sequence length: ``4096``, ``"4096"``, ``"1K"`` (1024), ``"64k"``, ``"1M"``.

    At most :data:`LONGEST_SEQUENCE`; ``what`` names the argument in errors.
    """
    value = 0
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    elif isinstance(text, str) and len(text) <= 64:
        match = _SEQ_LEN.fullmatch(text.strip())
        if match:
            value = int(match.group(1)) * _SUFFIXES[match.group(2).upper()]
    if 0 < value <= LONGEST_SEQUENCE:
        return value
    shown = repr(text) if len(repr(text)) <= 40 else f"{repr(text)[:16]}... ({len(repr(text))} " \
        "characters)"
    if value > LONGEST_SEQUENCE:
        raise SpecError(f"{what} {shown}: longer than {LONGEST_SEQUENCE:,} tokens (2^32)")
    raise SpecError(f"{what} {shown}: {_SEQ_FORMS}")


def parse_seq_lens(text: str) -> list[int]:
    """Parse a comma-separated list of sequence lengths, e.g. ``"1K,4K,16K"``."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"sequence lengths {text!r}: expected a comma-separated list, "
                        "e.g. 1K,4K,16K")
    return [parse_seq_len(item) for item in text.split(",")]


def _preset_dir() -> Any:
    return resources.files("einsim.workloads")


def workload_names() -> list[str]:
    """Return the preset names (lower case, sorted), e.g. ``["bert", "t5", "trxl", "xlm"]``."""
    return preset_names(_preset_dir())


def load_workload(name_or_path: str, seq_len: int | str | None = None,
                  kv_len: int | str | None = None) -> Workload:
    """Load a preset (case-insensitive name) or a YAML file.

    The file's own ``seq_len`` and ``kv_len`` are used unless overridden: pass ``None`` (the
    default) when the user gave no length.  An explicit ``seq_len`` sets the query length P
    and keeps the file's ``kv_len`` (cross attention stays cross attention; a self-attention
    file, without ``kv_len``, has M follow P); ``kv_len`` sets M.  Raises :class:`SpecError`
    naming the field for an unknown preset, a missing or invalid file, or a wrong, missing or
    extra field.
    """
    data, source = read_spec(spec_name("workload", name_or_path), _preset_dir(), "workload")
    for field in ("seq_len", "kv_len"):  # "64K" is allowed for lengths inside the file too
        if isinstance(data.get(field), str):
            data[field] = parse_seq_len(data[field],
                                        f"workload {source}: {field}: sequence length")
    if seq_len is not None:
        data["seq_len"] = parse_seq_len(seq_len, "seq_len")
    if kv_len is not None:
        data["kv_len"] = parse_seq_len(kv_len, "kv_len")
    return _validated(data, source)


def _validated(data: dict, source: str) -> Workload:
    try:
        return Workload.model_validate(data)
    except pydantic.ValidationError as error:
        raise SpecError(f"workload {source}: "
                        f"{describe_validation_error(error, Workload.model_fields)}") from None

