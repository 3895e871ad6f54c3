"""Temporal workflows. Deterministic: they decide, activities do the I/O."""
