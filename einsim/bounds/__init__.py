"""Traffic–capacity lower bounds of cascades (DESIGN.md §12; ``docs/concepts/bounds.md``).

>>> import einsim
>>> curve = einsim.traffic_bound("attention-3pass", workload="bert", seq_len=4096)
>>> curve.passes, curve.compulsory_bytes / 2**30
(3, 1.5)
>>> bool(curve.at(2**15)[0] > 30 * curve.compulsory_bytes)    # 32 KiB on chip
True

Modules: :mod:`~einsim.bounds.structure` reads the score contraction and the pass crossings
from the IR, :mod:`~einsim.bounds.masks` counts masked pairs per query,
:mod:`~einsim.bounds.formulas` holds the bounds, :mod:`~einsim.bounds.curve` puts them
together per capacity.
"""

from __future__ import annotations

from einsim.bounds.curve import (BoundCurve, BoundPoint, BoundProblem, problem_of,
                                 register_bytes, traffic_bound)

__all__ = ["traffic_bound", "BoundCurve", "BoundPoint", "BoundProblem", "problem_of",
           "register_bytes"]
