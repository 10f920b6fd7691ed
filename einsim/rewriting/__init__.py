"""Cascade rewriting: derive the 2-pass and 1-pass forms of a softmax-like cascade by rules.

A softmax-like cascade normalises an exponential by a max or min over a rank, sums it and
divides by the sum.  Two algebraic rules, applied to the IR (never to templates keyed on
names), reduce its passes over that rank:

* :mod:`~einsim.rewriting.deferral` moves the division past the sum over the rank that
  consumes it (3 passes → 2);
* :mod:`~einsim.rewriting.online` replaces the complete max/min by a running one and rescales
  every partial sum by a correction factor (2 passes → 1, FuseMax / online softmax).

:func:`~einsim.rewriting.front_door.rewrite` applies them and proves each result equal to the
input by execution (:mod:`~einsim.rewriting.validation`) before returning it.
"""

from einsim.rewriting.errors import (AlreadyRewrittenError, NotSoftmaxLikeError, RewriteError,
                                     RewriteValidationError)
from einsim.rewriting.front_door import RewriteResult, rewrite

__all__ = ["rewrite", "RewriteResult", "RewriteError", "NotSoftmaxLikeError",
           "AlreadyRewrittenError", "RewriteValidationError"]
