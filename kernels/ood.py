"""How unlike the training spectra a spectrum is: the residual of its standardised flux outside a
low-dimensional PCA basis of the training spectra, in units of what noise and the basis explain.

No error checking is performed here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array


def pca_residual_score(x: Array, good: Array, basis: Array, std: Array, snrg: Array, floor: Array) -> Array:
    """Mean squared residual of x outside the span of ``basis``, per pixel noise-weighted.

    .. math::
        r_b = x_b - V^T V x_b, \\quad
        s_b = \\frac{1}{n_b} \\sum_{j\\,\\mathrm{good}} \\frac{r_{bj}^2}{s_0^2 + 1 / (\\mathrm{snr}_b^2 \\sigma_j^2)}

    x is standardised flux ((f - mean) / sigma, 0 at bad pixels), so the noise of pixel j in x is
    about 1 / (snr sigma_j) (the g-band SNR stands for every pixel's); s_0 is the residual the
    basis leaves on the training spectra themselves (standardised units). A spectrum like the
    training ones scores about 1 or less at any SNR; a spectrum with features the training spectra
    lack scores higher the better its SNR shows them.

    Args:
        x: float32 (B, P) standardised flux. good: bool (B, P) its input pixels.
        basis: float32 (K, P) orthonormal rows (the leading principal axes of the training x).
        std: float32 (P,) training std of the normalised flux (sigma_j).
        snrg: float (B,) g-band SNR. floor: float32 scalar s_0.

    Returns:
        float32 (B,): s_b; NaN where snrg is not finite or <= 0, or no pixel is good.
    """
    hi = jax.lax.Precision.HIGHEST  # K is small: exact float32 products cost little and agree across devices
    coef = jnp.matmul(x, basis.T, precision=hi)
    r = x - jnp.matmul(coef, basis, precision=hi)
    snr = jnp.asarray(snrg, jnp.float32)
    ok = jnp.isfinite(snr) & (snr > 0)
    snr = jnp.where(ok, snr, 1.0)[:, None]
    var = jnp.square(floor) + 1.0 / jnp.square(snr * std)
    n = jnp.sum(good, axis=-1)
    s = jnp.sum(jnp.where(good, jnp.square(r) / var, 0.0), axis=-1) / jnp.maximum(n, 1)
    return jnp.where(ok & (n > 0), s, jnp.nan).astype(jnp.float32)
