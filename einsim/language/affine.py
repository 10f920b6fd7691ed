"""Affine index expressions such as ``m1*M0 + m0``, ``m1 + 1`` or the final coordinate ``M1``.

An index is a sum of terms; each term is an integer coefficient times a product of size
symbols (upper case) and at most one rank variable (lower case).  The representation keeps
source order (so printing reproduces what was written) and merges like terms.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Mapping

from einsim.errors import SizeError

MAX_INDEX = 2**63 - 1
"""Largest index, coefficient or size (NumPy's int64 indexing)."""


@dataclass(frozen=True)
class Term:
    """``coefficient * sizes[0] * sizes[1] * ... * variable`` (variable may be absent)."""

    coefficient: int
    sizes: tuple[str, ...] = ()
    variable: str | None = None

    def key(self) -> tuple[tuple[str, ...], str | None]:
        return (tuple(sorted(self.sizes)), self.variable)

    def factors_text(self) -> str:
        factors = ([self.variable] if self.variable else []) + list(self.sizes)
        magnitude = abs(self.coefficient)
        if not factors:
            return str(magnitude)
        body = "*".join(factors)
        return body if magnitude == 1 else f"{magnitude}*{body}"


@dataclass(frozen=True)
class Affine:
    """An affine index: ``sum(terms)``.  ``Affine(())`` is the constant 0."""

    terms: tuple[Term, ...] = ()

    @staticmethod
    def of(terms: list[Term]) -> "Affine":
        """Merge like terms (keeping first-occurrence order) and drop zero terms."""
        merged: dict[tuple, Term] = {}
        for term in terms:
            key = term.key()
            if key in merged:
                old = merged[key]
                merged[key] = Term(old.coefficient + term.coefficient, old.sizes, old.variable)
            else:
                merged[key] = term
        return Affine(tuple(t for t in merged.values() if t.coefficient != 0))

    @staticmethod
    def variable(name: str) -> "Affine":
        return Affine((Term(1, (), name),))

    @staticmethod
    def constant(value: int) -> "Affine":
        return Affine.of([Term(value)])

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(t.variable for t in self.terms if t.variable is not None)

    @property
    def size_symbols(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for term in self.terms:
            for size in term.sizes:
                seen.setdefault(size, None)
        return tuple(seen)

    def plain_variable(self) -> str | None:
        """The variable if this index is exactly one variable (``m``), else None."""
        if len(self.terms) == 1 and self.terms[0].coefficient == 1 and not self.terms[0].sizes:
            return self.terms[0].variable
        return None

    def offset(self, sizes: Mapping[str, float]) -> int:
        """The value of the variable-free part, given the size symbols."""
        return sum(_term_scale(t, sizes) for t in self.terms if t.variable is None)

    def split_variable(self, variable: str) -> tuple[int, "Affine"]:
        """Return (coefficient of ``variable`` if it is a bare unit term, the rest)."""
        rest = [t for t in self.terms if t.variable != variable]
        mine = [t for t in self.terms if t.variable == variable]
        coefficient = sum(t.coefficient for t in mine if not t.sizes)
        if any(t.sizes for t in mine):
            coefficient = 0
        return coefficient, Affine(tuple(rest))

    def substitute(self, values: Mapping[str, int]) -> "Affine":
        """Replace variables by integer constants."""
        out = []
        for term in self.terms:
            if term.variable is not None and term.variable in values:
                out.append(Term(term.coefficient * values[term.variable], term.sizes, None))
            else:
                out.append(term)
        return Affine.of(out)

    def evaluate(self, sizes: Mapping[str, float], variables: Mapping[str, object]):
        """Value of the index with sizes and variables bound (variables may be NumPy arrays)."""
        total = 0
        for term in self.terms:
            value = _term_scale(term, sizes)
            if term.variable is not None:
                value = value * variables[term.variable]
            total = total + value
        return total

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for position, term in enumerate(self.terms):
            text = term.factors_text()
            if position == 0:
                parts.append(("-" if term.coefficient < 0 else "") + text)
            else:
                parts.append((" - " if term.coefficient < 0 else " + ") + text)
        return "".join(parts)


def _term_scale(term: Term, sizes: Mapping[str, float]) -> int:
    value = term.coefficient
    for size in term.sizes:
        value *= index_size(size, sizes[size])
    return value


def index_size(name: str, value) -> int:
    """``value`` of size ``name`` as an int if it is a finite integer that fits an index; else
    :class:`~einsim.errors.SizeError` naming it (``1.5`` is refused, never truncated)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SizeError(f"size {name}: expected an integer, got {type(value).__name__} "
                        f"{value!r:.40}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    else:
        real = float(value)
        if not math.isfinite(real) or not real.is_integer():
            raise SizeError(f"size {name} = {real!r} is used in an index; expected a finite "
                            "integer")
        number = int(real)
    if abs(number) > MAX_INDEX:
        raise SizeError(f"size {name} is too large (about 2**{abs(number).bit_length() - 1}); "
                        "expected at most 2**63 - 1")
    return number
