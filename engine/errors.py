"""The engine's error hierarchy.

- `EngineError`: base class; callers that only want "the engine could not answer" catch this.
- `DataError`: unusable inputs (no priced positions and no cash, negative shares, a bad views file...).
  The message names the offending ticker/account/field.
- `ViewsError`: a views file that cannot be used (a `DataError`).
- `OptimizationError`: no solver certified any solution (never raised for conflicting limits:
  those are relaxed and reported).
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class DataError(EngineError, ValueError):
    """The inputs cannot be used as given; `field` names what is wrong when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ViewsError(DataError):
    """A views file is missing, is not JSON, or does not have the expected shape."""


class OptimizationError(EngineError):
    """No solver returned a certified (optimal) solution."""
