"""``einsim.rewrite``: derive a 2-pass or 1-pass form of a softmax-like cascade, proven equal.

>>> import einsim
>>> result = einsim.rewrite(einsim.library.get("attention-3pass"), passes=1)
>>> einsim.passes(einsim.parse(result.text), "m"), result.validated.ok
(1, True)
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, Union

from einsim.analysis.passes import passes as count_passes
from einsim.errors import ArgumentError
from einsim.language import ir
from einsim.language.parser import parse
from einsim.rewriting.deferral import defer_divisions
from einsim.rewriting.errors import AlreadyRewrittenError, RewriteError, RewriteValidationError
from einsim.rewriting.naming import Names, taken_names
from einsim.rewriting.online import running_normaliser
from einsim.rewriting.pattern import RankView, exponentials, recognise
from einsim.rewriting.validation import Validation, compare


@dataclass(frozen=True)
class RewriteResult:
    """A rewritten cascade, its text, its passes and how it compared with the original."""

    cascade: ir.Cascade
    text: str
    passes: int
    rank: str
    original_passes: int
    steps: tuple[str, ...]
    """The rules applied, one line each."""
    validated: Validation

    def to_json(self) -> dict[str, Any]:
        """``{"cascade": text, "passes": n, "validated": {"ok", "max_abs_error"}}``."""
        return {"cascade": self.text, "passes": self.passes,
                "validated": {"ok": self.validated.ok,
                              "max_abs_error": self.validated.max_abs_error}}


def _plural(count: int) -> str:
    return f"{count} pass" + ("" if count == 1 else "es")


def _cascade(cascade_or_text: Union[ir.Cascade, str]) -> ir.Cascade:
    if isinstance(cascade_or_text, ir.Cascade):
        return cascade_or_text
    if isinstance(cascade_or_text, str):
        return parse(cascade_or_text)
    raise ArgumentError(f"cascade_or_text: expected a Cascade or cascade text (str), got "
                        f"{type(cascade_or_text).__name__}")


def rewrite(cascade_or_text: Union[ir.Cascade, str], passes: int, rank: str = "m", *,
            seed: int = 0) -> RewriteResult:
    """Rewrite a softmax-like cascade to need ``passes`` (2 or 1) passes over ``rank``.

    Parameters
    ----------
    cascade_or_text : Cascade or str
        A parsed cascade (``einsim.library.get(...)``) or cascade text.
    passes : int
        2 for the deferred-division form, 1 for the running-max (FuseMax / online softmax)
        form, tiled when the rank is partitioned, element by element otherwise.
    rank : str
        The rank to save passes over (``"m"`` with its partitions).
    seed : int
        Seed of the random inputs the rewrite is validated on.

    Raises
    ------
    RewriteError
        With the reason, when the cascade is not softmax-like over ``rank`` (no max or min
        normaliser, no exponential of ``x - max``...), already needs no more than ``passes``
        passes, or (:class:`RewriteValidationError`, a bug) when the result differs from the
        original on random inputs.
    """
    cascade = _cascade(cascade_or_text)
    if isinstance(passes, bool) or passes not in (1, 2):
        raise RewriteError(f"passes must be 1 or 2, got {passes!r}")
    if not isinstance(rank, str):
        raise ArgumentError(f"rank: expected a rank name such as 'm', got {type(rank).__name__}")
    ranks = RankView.of(cascade, rank)
    exponentials(cascade, ranks)
    name = cascade.name or "the cascade"
    before = count_passes(cascade, rank)
    if before <= passes:
        fewer = "" if before == passes else f", fewer than the {passes} asked for"
        raise AlreadyRewrittenError(f"{name} already needs {_plural(before)} over "
                                    f"{ranks.text}{fewer}; nothing to rewrite")
    names = Names(taken_names(cascade))
    softmax = recognise(cascade, rank)
    steps: list[str] = []
    current = cascade
    if softmax.divisions:
        deferred = defer_divisions(current, softmax, names)
        current, steps = deferred.cascade, [*steps, *deferred.steps]
    if passes == 1:
        online = running_normaliser(current, recognise(current, rank), names)
        current, steps = online.cascade, [*steps, *online.steps]
    text = _text(current, name, passes, ranks, steps)
    result = parse(text, name=f"{cascade.name or 'cascade'} ({passes}-pass rewrite)")
    if result != current:
        raise RewriteError(f"the rewrite of {name} does not print as cascade text it parses "
                           "back from")
    after = count_passes(result, rank)
    if after != passes:
        raise RewriteError(f"the rewrite of {name} still needs {_plural(after)} over "
                           f"{ranks.text}, not {passes}: something else in the cascade needs "
                           "the extra passes")
    tile = softmax.recurrence if passes == 1 else None
    validated = compare(cascade, result, ranks.rank, {ir.rank_of(v) for v in
                                                      softmax.normaliser.output.variables},
                        tile, seed)
    if not validated.ok:
        raise RewriteValidationError(
            f"the {passes}-pass rewrite of {name} differs from it on random inputs (max abs "
            f"error {validated.max_abs_error:.3g}, in {validated.worst}); not returned")
    return RewriteResult(result, text, passes, ranks.rank.lower(), before, tuple(steps),
                         validated)


def _text(cascade: ir.Cascade, name: str, passes: int, ranks: RankView, steps) -> str:
    """The cascade as text, headed by comments saying which rules made it."""
    lines = [f"# {name} rewritten by einsim to {_plural(passes)} over {ranks.text}:"]
    for step in steps:
        lines += textwrap.wrap(step, 96, initial_indent="# - ", subsequent_indent="#   ",
                               break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines) + "\n" + str(cascade)
