"""The optimisation engine: pure numpy/pandas/cvxpy, no Django imports (a test enforces it).

Entry points: `rebalance(request, snapshot=...)`, `MarketSnapshot`, `result_to_document(result)`;
see engine.types for the inputs and outputs, engine.profiles for the limits, engine.views for the
dated views, engine.exposures.snapshot for look-through exposures of any weights.

Names load lazily (PEP 562): `import engine.types` or `import engine.profiles` costs no cvxpy; the
first use of `engine.rebalance` imports the pipeline. No public name is also a module's name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.document import result_to_document
    from engine.errors import DataError, EngineError, OptimizationError, ViewsError
    from engine.exposures import snapshot
    from engine.fallback import ProblemCache
    from engine.market import MarketSnapshot
    from engine.menu import default_menu
    from engine.pipeline import rebalance
    from engine.profiles import PROFILES, Profile
    from engine.views import load_views

_WHERE = {
    "PROFILES": "engine.profiles",
    "DataError": "engine.errors",
    "EngineError": "engine.errors",
    "MarketSnapshot": "engine.market",
    "OptimizationError": "engine.errors",
    "ProblemCache": "engine.fallback",
    "Profile": "engine.profiles",
    "ViewsError": "engine.errors",
    "default_menu": "engine.menu",
    "load_views": "engine.views",
    "rebalance": "engine.pipeline",
    "result_to_document": "engine.document",
    "snapshot": "engine.exposures",
}

__all__ = [
    "PROFILES",
    "DataError",
    "EngineError",
    "MarketSnapshot",
    "OptimizationError",
    "ProblemCache",
    "Profile",
    "ViewsError",
    "default_menu",
    "load_views",
    "rebalance",
    "result_to_document",
    "snapshot",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
