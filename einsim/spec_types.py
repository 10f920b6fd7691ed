"""Numeric field types of the YAML specifications (hardware, LLMs, workloads).

Every number a specification gives is checked once, where its field is declared: finite,
in range, and integral where a count is meant (``1.5`` is refused, never truncated; ``64.0``
is 64).  Booleans, ``None``, lists and mappings are refused; so is text for counts, while
text is read as a number for quantities only because YAML 1.1 reads ``3.35e12`` (no dot) as
text.  Messages say what was expected and what
was given; pydantic adds the field's dotted path.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from einsim.errors import SpecError

LARGEST_COUNT = 2 ** 53
"""Counts stay exact as floats up to here."""

LARGEST_QUANTITY = 1e30
"""Bytes, bandwidths, clocks and prices beyond this are typos, and overflow products."""


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:16]}... ({len(text)} characters)"


def _number(value, expected: str):
    """An int or float from ``value``; anything else is a validation error."""
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        try:
            return int(text) if text.lstrip("+-").isdigit() else float(text)
        except ValueError:
            pass
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        return value
    kind = "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) \
        else _shown(value)
    raise PydanticCustomError("number", "expected {expected}, got {got}",
                              {"expected": expected, "got": kind})


def _count_validator(low: int, high: int):
    bound = "greater than 0" if low == 1 else f"of at least {low:,}"
    expected = f"an integer {bound} and at most {high:,}"

    def check(value) -> int:
        if isinstance(value, str):  # a quoted "64" is text: counts are written as numbers
            raise PydanticCustomError("integer", "expected {expected}, got text {got}",
                                      {"expected": expected, "got": _shown(value)})
        number = _number(value, expected)
        if isinstance(number, numbers.Integral):
            number = int(number)
        elif not math.isfinite(number) or number != math.floor(number):
            raise PydanticCustomError("integer", "expected {expected}, got {got} (fractional "
                                      "or non-finite values are refused, never truncated)",
                                      {"expected": expected, "got": _shown(value)})
        else:
            number = int(number)
        if not low <= number <= high:
            raise PydanticCustomError("range", "expected {expected}, got {got}",
                                      {"expected": expected, "got": _shown(number)})
        return number

    return check


def _quantity_validator(low: float, strict_low: bool, high: float):
    bound = f"greater than {low:g}" if strict_low else f"at least {low:g}"
    expected = f"a finite number {bound} and at most {high:g}"

    def check(value) -> float:
        number = _number(value, expected)
        try:
            number = float(number)
        except OverflowError:
            number = math.inf
        if not (math.isfinite(number) and (number > low if strict_low else number >= low)
                and number <= high):
            raise PydanticCustomError("quantity", "expected {expected}, got {got}",
                                      {"expected": expected, "got": _shown(value)})
        return number

    return check


def count(high: int = LARGEST_COUNT, low: int = 1):
    """An integer field in ``[low, high]`` (default: positive, at most 2^53)."""
    return Annotated[int, BeforeValidator(_count_validator(low, high))]


Count = count()
"""A positive integer (sizes, counts, capacities in bytes)."""

NonNegativeCount = count(low=0)
"""A non-negative integer."""

Positive = Annotated[float, BeforeValidator(_quantity_validator(0.0, True, LARGEST_QUANTITY))]
"""A finite number greater than 0 (bandwidths, clocks, capacities, power)."""

NonNegative = Annotated[float, BeforeValidator(_quantity_validator(0.0, False,
                                                                   LARGEST_QUANTITY))]
"""A finite number of at least 0 (energies, areas, latencies)."""

Fraction = Annotated[float, BeforeValidator(_quantity_validator(0.0, True, 1.0))]
"""A finite number in (0, 1] (efficiencies)."""

Frequency = Annotated[float, BeforeValidator(_quantity_validator(1e3, False, 1e12))]
"""A clock in Hz between 1 kHz and 1 THz (anything outside is a unit mistake, and a clock near
0 turns every latency into infinity)."""


def spec_name(argument: str, value) -> str:
    """A loader's preset-name-or-path argument as text; anything else is a :class:`SpecError`
    naming the argument."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{argument} {_shown(value)}: expected a preset name or the path of a "
                        "YAML file")
    return value
