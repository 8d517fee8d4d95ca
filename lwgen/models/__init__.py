"""Flax linen model definitions (no losses, no training logic)."""
