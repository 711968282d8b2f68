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


def input_mask(norm: Array, good: Array, mean: Array | None, std: Array | None, *, flux_min: float, flux_max: float,
               max_abs: float) -> Array:
    """Good pixels that are also inputs the networks were trained on.

    .. math:: g'_{bj} = g_{bj} \\wedge f_{min} \\le f_{bj} \\le f_{max} \\wedge |f_{bj} - \\mu_j| \\le z_{max} \\sigma_j

    The last term only when ``mean`` and ``std`` are given (the training statistics are computed
    from pixels that pass the first two). A pixel that fails is then filled as a bad one by
    :func:`standardize`, so one wild pixel (1e30, 0 in the continuum) cannot drive the networks.

    Args:
        norm: float32 (B, P) normalised flux. good: bool (B, P).
        mean, std: float32 (P,) training statistics, or None.
        flux_min, flux_max: relative flux bounds; max_abs: z_max in training standard deviations.

    Returns:
        bool (B, P).
    """
    out = good & (norm >= flux_min) & (norm <= flux_max)
    if mean is not None:
        out &= jnp.abs(norm - mean) <= max_abs * std
    return out


def bad_fraction(good: Array) -> Array:
    """Fraction of bad pixels per spectrum: float32 (B,) from bool (B, P)."""
    return jnp.mean((~good).astype(jnp.float32), axis=-1)
