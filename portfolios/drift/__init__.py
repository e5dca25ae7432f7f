"""Drift: measure every portfolio against its target after each price refresh, record it, mail owners."""
