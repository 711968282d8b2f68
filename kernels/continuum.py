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
def block_bases(segments: tuple[tuple[int, int], ...], npix: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Block-diagonal Chebyshev bases of several segments of one row of ``npix`` pixels.

    Segment s = (offset, n) has its own basis T_k(x), x over its n pixels mapped to [-1, 1].

    Returns:
        phi: float32 (npix, S p), p = order + 1; column s p + k is T_k on segment s, 0 elsewhere.
        products: float32 (npix, S q), q = p (p + 1) / 2; column s q + c is Phi_k Phi_l on
            segment s for the c-th pair k <= l (row-major upper triangle), 0 elsewhere.
    """
    p = order + 1
    pairs = [(k, l) for k in range(p) for l in range(k, p)]
    phi = np.zeros((npix, len(segments) * p))
    products = np.zeros((npix, len(segments) * len(pairs)))
    for s, (offset, n) in enumerate(segments):
        t = chebyshev_basis(n, order).astype(np.float64)
        phi[offset : offset + n, s * p : (s + 1) * p] = t
        for c, (k, l) in enumerate(pairs):
            products[offset : offset + n, s * len(pairs) + c] = t[:, k] * t[:, l]
    return phi.astype(np.float32), products.astype(np.float32)


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
    y: Array,
    weight: Array,
    *,
    segments: tuple[tuple[int, int], ...],
    order: int,
    pivot_tol: float,
    refine: int = 1,
) -> tuple[Array, Array]:
    """Weighted least-squares polynomial of each segment of a row, evaluated on that segment.

    For every segment s (its own pixels only):

    .. math::
        \\min_c \\sum_i w_i \\Big(y_i - \\sum_{k=0}^{K} c_k T_k(x_i)\\Big)^2
        \\;\\Rightarrow\\; (\\Phi^T W \\Phi)\\, c = \\Phi^T W y, \\qquad
        \\mathrm{cont} = \\Phi c

    with x the segment's pixels rescaled to [-1, 1] (:func:`chebyshev_basis`), K = ``order``.
    All segments go through the same matmuls with block-diagonal bases (:func:`block_bases`),
    float32 at ``Precision.HIGHEST``, and one unrolled Cholesky over (B, S) arrays. The normal
    equations of float32 sums carry relative errors ~cond(G) * 1e-7 into c; ``refine`` steps
    of iterative refinement (r = W (y - Phi c), c += G^-1 Phi^T r with the same factor) bring
    the fit to the accuracy of the float32 residual (a float64 fit agrees to ~1e-6).

    Args:
        y: float32 (B, M) values to fit (the median-filtered flux).
        weight: float32 (B, M) weights, 0 for pixels that must not count.
        segments: ((offset, n), ...) static pixel ranges of the row, fitted separately.
        order: polynomial order K (6 in the DR8 recipe).
        pivot_tol: see :func:`cholesky_factor`.
        refine: iterative-refinement steps (static).

    Returns:
        continuum: float32 (B, M), 0 outside the segments and on segments whose fit failed.
        ok: bool (B, S) False where a segment's normal matrix was singular or ill-conditioned.
    """
    p = order + 1
    nseg = len(segments)
    phi, products = (jnp.asarray(a) for a in block_bases(segments, y.shape[-1], order))
    lead = y.shape[:-1]
    entries = jnp.dot(weight, products, precision=_HIGHEST).reshape(*lead, nseg, -1)
    rhs = jnp.dot(weight * y, phi, precision=_HIGHEST).reshape(*lead, nseg, p)
    gram = [[None] * p for _ in range(p)]
    col = 0
    for k in range(p):
        for l in range(k, p):
            gram[k][l] = gram[l][k] = entries[..., col]
            col += 1
    low, inv_diag, ok = cholesky_factor(gram, pivot_tol=pivot_tol)

    def solve(b):
        c = cholesky_substitute(low, inv_diag, [b[..., k] for k in range(p)])
        return jnp.stack(c, axis=-1)  # (B, S, p)

    def evaluate(coef):
        return jnp.dot(coef.reshape(*lead, nseg * p), phi.T, precision=_HIGHEST)

    coef = solve(rhs)
    for _ in range(refine):
        residual = weight * (y - evaluate(coef))
        coef = coef + solve(jnp.dot(residual, phi, precision=_HIGHEST).reshape(*lead, nseg, p))
    coef = jnp.where(ok[..., None], coef, 0.0)
    return evaluate(coef), ok
