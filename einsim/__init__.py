"""einsim: a design-space explorer for attention written as cascades of extended Einsums.

The core API::

    cascade = einsim.parse(text)               # or einsim.library.get("fusemax")
    outputs = einsim.execute(cascade, {"Q": q, "K": k, "V": v}, sizes={"M0": 64})
    einsim.passes(cascade, "m")                 # 1 for FuseMax, 3 for the unfused softmax
    einsim.validate(cascade)                    # against plain NumPy attention
    einsim.evaluate("fusemax", workload="bert", seq_len="64K")   # cost report on an array
    einsim.gna((256, 256), (80, 80), (16, 8), (16, 8))           # sparse-attention bounds
    einsim.rewrite(einsim.library.get("attention-3pass"), passes=1)  # derive FuseMax's form

Every name is loaded on first use (module ``__getattr__``), so ``import einsim`` and the
command line's start-up do not pay for sympy, networkx, lark or pydantic until they are needed.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "library": ("einsim.library", None),
    "CascadeError": ("einsim.errors", "CascadeError"),
    "CascadeSyntaxError": ("einsim.errors", "CascadeSyntaxError"),
    "EinsimError": ("einsim.errors", "EinsimError"),
    "execute": ("einsim.execution.execute", "execute"),
    "buffer_growth": ("einsim.analysis.footprint", "buffer_growth"),
    "footprint": ("einsim.analysis.footprint", "footprint"),
    "op_counts": ("einsim.analysis.footprint", "op_counts"),
    "gna": ("einsim.gna", "gna"),
    "sparse_bounds": ("einsim.sparsity", "sparse_bounds"),
    "dependency_graph": ("einsim.analysis.graph", "dependency_graph"),
    "Cascade": ("einsim.language.ir", "Cascade"),
    "parse": ("einsim.language.parser", "parse"),
    "passes": ("einsim.analysis.passes", "passes"),
    "ValidationResult": ("einsim.execution.validate", "ValidationResult"),
    "validate": ("einsim.execution.validate", "validate"),
    "load_yaml": ("einsim.language.yaml_form", "load_yaml"),
    "to_yaml": ("einsim.language.yaml_form", "to_yaml"),
    "evaluate": ("einsim.cost.front_door", "evaluate"),
    "traffic_bound": ("einsim.bounds", "traffic_bound"),
    "sweep": ("einsim.search.sweeps", "sweep"),
    "rewrite": ("einsim.rewriting.front_door", "rewrite"),
}

__all__ = ["parse", "load_yaml", "to_yaml", "execute", "validate", "passes", "footprint",
           "evaluate", "sweep", "gna", "rewrite",
           "buffer_growth", "op_counts", "dependency_graph", "library", "Cascade",
           "ValidationResult", "EinsimError", "CascadeError", "CascadeSyntaxError",
           "__version__"]

if TYPE_CHECKING:  # pragma: no cover  (static checkers see the real names)
    from einsim import library
    from einsim.errors import CascadeError, CascadeSyntaxError, EinsimError
    from einsim.cost.front_door import evaluate
    from einsim.execution.execute import execute
    from einsim.analysis.footprint import buffer_growth, footprint, op_counts
    from einsim.gna import gna
    from einsim.analysis.graph import dependency_graph
    from einsim.language.ir import Cascade
    from einsim.language.parser import parse
    from einsim.analysis.passes import passes
    from einsim.search.sweeps import sweep
    from einsim.rewriting.front_door import rewrite
    from einsim.execution.validate import ValidationResult, validate
    from einsim.language.yaml_form import load_yaml, to_yaml


_SAME_NAME = {"gna"}
"""Public functions named like the module that defines them: ``einsim.gna`` is the function."""


class _Package(types.ModuleType):
    """The ``einsim`` module: importing ``einsim.gna`` must not replace the function."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SAME_NAME and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first use and cache the name here."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'einsim' has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
