"""einsim: a design-space explorer for attention written as cascades of extended Einsums."""

from einsim.errors import EinsimError
from einsim.parser import parse

__version__ = "0.1.0"
__all__ = ["parse", "EinsimError", "__version__"]
