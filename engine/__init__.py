"""The optimisation engine: pure numpy/pandas/cvxpy, no Django imports (a test enforces it).

Entry points: `rebalance(request, cache=...)`, `ProblemCache`, `result_to_document(result)`;
see engine.types for the inputs and outputs, engine.profiles for the limits, engine.views for the
dated views, engine.exposures.snapshot for look-through exposures of any weights.
"""

from engine.document import result_to_document
from engine.errors import DataError, EngineError, OptimizationError, ViewsError
from engine.exposures import snapshot
from engine.menu import default_menu
from engine.problem import ProblemCache
from engine.profiles import PROFILES, Profile
from engine.rebalance import rebalance
from engine.views import load_views

__all__ = [
    "PROFILES",
    "DataError",
    "EngineError",
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
