"""einsim: a design-space explorer for attention written as cascades of extended Einsums.

The core API::

    cascade = einsim.parse(text)               # or einsim.library.get("fusemax")
    outputs = einsim.execute(cascade, {"Q": q, "K": k, "V": v}, sizes={"M0": 64})
    einsim.passes(cascade, "m")                 # 1 for FuseMax, 3 for the unfused softmax
    einsim.validate(cascade)                    # against plain NumPy attention
    einsim.evaluate("fusemax", workload="bert", seq_len="64K")   # cost report on an array
    einsim.gna((256, 256), (80, 80), (16, 8), (16, 8))           # sparse-attention bounds
"""

from einsim import library
from einsim.errors import CascadeError, CascadeSyntaxError, EinsimError
from einsim.execute import execute
from einsim.footprint import buffer_growth, footprint, op_counts
from einsim.gna import gna
from einsim.graph import dependency_graph
from einsim.ir import Cascade
from einsim.parser import parse
from einsim.passes import passes
from einsim.validate import ValidationResult, validate
from einsim.yaml_form import load_yaml, to_yaml

__version__ = "0.1.0"
__all__ = ["parse", "load_yaml", "to_yaml", "execute", "validate", "passes", "footprint",
           "evaluate", "sweep", "gna",
           "buffer_growth", "op_counts", "dependency_graph", "library", "Cascade",
           "ValidationResult", "EinsimError", "CascadeError", "CascadeSyntaxError",
           "__version__"]


def __getattr__(name: str):
    """``einsim.evaluate`` and ``einsim.sweep`` load the cost model on first use, so that the
    hardware models (which import ``einsim.errors``) can be imported first."""
    if name == "evaluate":
        from einsim.evaluator import evaluate
        return evaluate
    if name == "sweep":
        from einsim.sweeps import sweep
        return sweep
    raise AttributeError(f"module 'einsim' has no attribute {name!r}")
