"""Why a cascade cannot be rewritten: one exception per kind of refusal, each one line."""

from __future__ import annotations

from einsim.errors import EinsimError


class RewriteError(EinsimError):
    """A cascade (or a request) the rewriting rules do not apply to; the message says why."""


class NotSoftmaxLikeError(RewriteError):
    """No max- or min-normalised exponential, summed and divided, over the rank."""


class AlreadyRewrittenError(RewriteError):
    """The cascade already needs no more passes over the rank than were asked for."""


class RewriteValidationError(RewriteError):
    """A rewrite that executed differently from its original (a bug in a rule: never returned)."""
