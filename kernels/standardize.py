"""Per-pixel standardisation of normalised spectra with stored training statistics.

No error checking is performed here.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array


def standardize(norm: Array, good: Array, mean: Array, std: Array) -> Array:
    """Standardise normalised flux per pixel; bad pixels take the training mean (0).

    .. math:: x_{bj} = (f_{bj} - \\mu_j) / \\sigma_j \\text{ if good, else } 0

    Args:
        norm: float32 (B, P) normalised flux.
        good: bool (B, P).
        mean, std: float32 (P,) training-set mean and (floored, positive) std per pixel.

    Returns:
        x: float32 (B, P).
    """
    return jnp.where(good, (norm - mean) / std, 0.0).astype(jnp.float32)


def bad_fraction(good: Array) -> Array:
    """Fraction of bad pixels per spectrum: float32 (B,) from bool (B, P)."""
    return jnp.mean((~good).astype(jnp.float32), axis=-1)
