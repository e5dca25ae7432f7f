"""The optimisation engine: pure numpy/pandas/cvxpy, no Django imports (a test enforces it)."""
