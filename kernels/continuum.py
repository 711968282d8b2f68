"""Weighted least-squares Chebyshev pseudo-continuum, solved by a hand-unrolled Cholesky.

LAPACK-backed solvers (``jnp.linalg.solve``, ``cho_factor``) hung at random inside jitted code
on the project's CPUs (MEASURED.md), so the small normal equations are solved with an explicit
Cholesky written out over (B,) arrays: a few hundred fused elementwise operations.
No error checking is performed here.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32/bf16 passes on GPUs: the fit needs full float32


@functools.lru_cache(maxsize=None)
def chebyshev_basis(n: int, order: int) -> np.ndarray:
    """Chebyshev polynomials T_0..T_order at n points spread evenly over [-1, 1].

    .. math:: \\Phi_{ik} = T_k(x_i), \\quad x_i = -1 + 2 i / (n - 1)

    Returns float32 (n, order + 1), computed in float64 by the recurrence
    T_{k+1} = 2 x T_k - T_{k-1}.
    """
    x = np.linspace(-1.0, 1.0, n)
    t = [np.ones_like(x), x]
    for _ in range(order - 1):
        t.append(2.0 * x * t[-1] - t[-2])
    return np.stack(t[: order + 1], axis=1).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _gram_products(n: int, order: int) -> np.ndarray:
    """Columns Phi_k * Phi_l for k <= l (row-major upper triangle): float32 (n, p (p + 1) / 2)."""
    phi = chebyshev_basis(n, order).astype(np.float64)
    p = order + 1
    return np.stack([phi[:, k] * phi[:, l] for k in range(p) for l in range(k, p)], axis=1).astype(np.float32)


def cholesky_factor(gram: list[list[Array]], *, pivot_tol: float) -> tuple[list, list, Array]:
    """Cholesky factor G = L L^T of many small symmetric positive-definite matrices, unrolled.

    .. math::
        L_{jj} = \\sqrt{G_{jj} - \\sum_{k<j} L_{jk}^2}, \\qquad
        L_{ij} = \\Big(G_{ij} - \\sum_{k<j} L_{ik} L_{jk}\\Big) / L_{jj}

    Args:
        gram: p x p nested list of (B,) arrays; G[i][j] for i >= j is read.
        pivot_tol: a pivot G_jj - sum L_jk^2 <= pivot_tol * G_jj marks the matrix singular.

    Returns:
        low: p x p nested list, L[i][j] (B,) for i > j.
        inv_diag: p (B,) arrays 1 / L_jj (finite even where the matrix is singular).
        ok: bool (B,) False where a pivot failed the test (or G_jj <= 0).
    """
    p = len(gram)
    zero = jnp.zeros_like(gram[0][0])
    low = [[None] * p for _ in range(p)]
    inv_diag = [None] * p
    ok = jnp.ones(zero.shape, bool)
    for j in range(p):
        d = gram[j][j] - sum((low[j][k] ** 2 for k in range(j)), zero)
        ok = ok & (d > pivot_tol * gram[j][j]) & (gram[j][j] > 0)
        inv_diag[j] = jax.lax.rsqrt(jnp.where(ok, d, 1.0))
        for i in range(j + 1, p):
            low[i][j] = (gram[i][j] - sum((low[i][k] * low[j][k] for k in range(j)), zero)) * inv_diag[j]
    return low, inv_diag, ok


def cholesky_substitute(low: list, inv_diag: list[Array], rhs: list[Array]) -> list[Array]:
    """Solve L L^T c = b by forward (L y = b) then backward (L^T c = y) substitution.

    Args:
        low, inv_diag: from :func:`cholesky_factor`.
        rhs: p (B,) arrays b.

    Returns:
        c: p (B,) arrays.
    """
    p = len(rhs)
    zero = jnp.zeros_like(rhs[0])
    y = [None] * p
    for i in range(p):
        y[i] = (rhs[i] - sum((low[i][k] * y[k] for k in range(i)), zero)) * inv_diag[i]
    c = [None] * p
    for i in reversed(range(p)):
        c[i] = (y[i] - sum((low[k][i] * c[k] for k in range(i + 1, p)), zero)) * inv_diag[i]
    return c


def fit_continuum(
    y: Array, weight: Array, *, order: int, pivot_tol: float, refine: int = 1
) -> tuple[Array, Array]:
    """Weighted least-squares polynomial of one window, evaluated on that window.

    .. math::
        \\min_c \\sum_i w_i \\Big(y_i - \\sum_{k=0}^{K} c_k T_k(x_i)\\Big)^2
        \\;\\Rightarrow\\; (\\Phi^T W \\Phi)\\, c = \\Phi^T W y, \\qquad
        \\mathrm{cont} = \\Phi c

    with x the window's pixels rescaled to [-1, 1] (:func:`chebyshev_basis`), K = ``order``.
    Both products are float32 matmuls at ``Precision.HIGHEST``. The normal equations of float32
    sums carry relative errors ~cond(G) * 1e-7 into c; ``refine`` steps of iterative refinement
    (r = W (y - Phi c), c += G^-1 Phi^T r with the same factor) bring the fit to the accuracy of
    the float32 residual, which is what a float64 reference agrees with to ~1e-6.

    Args:
        y: float32 (B, n) values to fit (the median-filtered flux).
        weight: float32 (B, n) weights, 0 for pixels that must not count.
        order: polynomial order K (6 in the DR8 recipe).
        pivot_tol: see :func:`cholesky_factor`.
        refine: iterative-refinement steps (static).

    Returns:
        continuum: float32 (B, n), 0 where the fit failed.
        ok: bool (B,) False where the normal matrix was singular or ill-conditioned.
    """
    n = y.shape[-1]
    p = order + 1
    phi = jnp.asarray(chebyshev_basis(n, order))
    entries = jnp.dot(weight, jnp.asarray(_gram_products(n, order)), precision=_HIGHEST)
    rhs = jnp.dot(weight * y, phi, precision=_HIGHEST)
    gram = [[None] * p for _ in range(p)]
    col = 0
    for k in range(p):
        for l in range(k, p):
            gram[k][l] = gram[l][k] = entries[..., col]
            col += 1
    low, inv_diag, ok = cholesky_factor(gram, pivot_tol=pivot_tol)

    def solve(b):
        return jnp.stack(cholesky_substitute(low, inv_diag, [b[..., k] for k in range(p)]), axis=-1)

    coef = solve(rhs)
    for _ in range(refine):
        residual = weight * (y - jnp.dot(coef, phi.T, precision=_HIGHEST))
        coef = coef + solve(jnp.dot(residual, phi, precision=_HIGHEST))
    continuum = jnp.dot(coef, phi.T, precision=_HIGHEST)
    return jnp.where(ok[..., None], continuum, 0.0), ok
