"""The cost engine: loop-tree mappings (:mod:`.tree`), their derivation into per-level traffic,
capacity, latency and energy (:mod:`.derivation`, :mod:`.engine`), and the Report.

The residency-table model (:mod:`.residency_model`) is the previous engine, kept while the
ladder moves onto trees.
"""

from einsim.cost.residency_model import (EinsumCost, Report, _compiled, _energy,  # noqa: F401
                                         evaluate_mapping)
