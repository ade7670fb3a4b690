"""Frozen pre-optimization copies of the merge modules (test reference only)."""
