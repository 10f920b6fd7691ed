"""Exception types: one per kind of mistake, each naming where it happened and what was expected.

Every error a user can cause derives from :class:`EinsimError`, so callers (and the CLI) can
catch one type and print one line.  Errors about cascade text carry ``line`` and ``column``.
"""

from __future__ import annotations


class EinsimError(Exception):
    """Base class of every error caused by user input."""


class MappingError(EinsimError):
    """A mapping that cannot run on its cascade or hardware: infeasible capacity, a missing
    unit operation, a pass violation; the message names the node or the tensor."""


class CascadeError(EinsimError):
    """An error located in cascade text (line and column are 1-based; 0 means unknown)."""

    def __init__(self, message: str, line: int = 0, column: int = 0, source: str = ""):
        self.message = message
        self.line = line
        self.column = column
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.source:
            where.append(self.source)
        if self.line:
            where.append(f"line {self.line}, column {self.column}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class CascadeSyntaxError(CascadeError):
    """The text does not follow the grammar (malformed statement, unexpected character)."""


class UnknownTensorError(CascadeError):
    """A tensor is read or initialised but never declared or written."""


class UnknownFunctionError(CascadeError):
    """A map function, predicate or reduction operator that does not exist."""


class ArityError(CascadeError):
    """A tensor accessed with a different number of indices, or a function with wrong arguments."""


class IndexExpressionError(CascadeError):
    """An index that is not affine in the rank variables, or uses an unknown variable."""


class ReductionError(CascadeError):
    """An explicit reduction whose variable list disagrees with the variables actually reduced."""


class RankSizeConflictError(CascadeError):
    """A rank given two different sizes (declarations, partitions, inputs or ``sizes``)."""


class IndexRangeError(CascadeError):
    """An access or write outside the extent of a tensor."""


class MissingInitError(CascadeError):
    """A recurrence (output at ``v+1`` reading ``v``) without an ``init`` statement."""


class DuplicateDefinitionError(CascadeError):
    """A tensor written by two Einsums, or a rank declared or partitioned twice."""


class ScheduleError(CascadeError):
    """A cascade (or a requested tiling) whose dependencies cannot be executed in any order."""


class MissingSizeError(EinsimError):
    """A rank size or parameter needed for execution that no input, declaration or ``sizes`` gives."""


class UnknownRankError(EinsimError):
    """A rank (for passes, footprints or tiling) that the cascade does not use."""


class InputError(EinsimError):
    """A missing input array or one whose shape disagrees with the cascade."""


class ArgumentError(EinsimError, TypeError):
    """A Python API argument of the wrong type; the message names the argument."""


class SizeError(EinsimError, ValueError):
    """A size or parameter that is not finite, not an integer where one is needed, or out of range;
    the message names it."""


class LimitError(CascadeError):
    """Input beyond a stated limit (nesting depth, literal size); the message states the limit."""


class SpecError(EinsimError):
    """A YAML specification with a wrong or missing field; the message names the field path."""


class PrecisionOverflowWarning(RuntimeWarning):
    """Finite values overflowed to infinity in an emulated low-precision format."""
