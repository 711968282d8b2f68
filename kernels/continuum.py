"""Weighted least-squares Chebyshev pseudo-continuum, solved by an explicit batched Cholesky.

LAPACK-backed solvers (``jnp.linalg.solve``, ``cho_factor``) hung at random inside jitted code
on the project's CPUs (MEASURED.md), so the small normal equations are solved with a Cholesky
written in elementwise operations over (..., 7, 7) arrays, one column per loop step.
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
def chebyshev_basis(n: int, order: int, dtype=np.float32) -> np.ndarray:
    """Chebyshev polynomials T_0..T_order at n points spread evenly over [-1, 1].

    .. math:: \\Phi_{ik} = T_k(x_i), \\quad x_i = -1 + 2 i / (n - 1)

    Returns (n, order + 1) in ``dtype`` (float32 by default), computed in float64 by the
    recurrence T_{k+1} = 2 x T_k - T_{k-1}.
    """
    x = np.linspace(-1.0, 1.0, n)
    t = [np.ones_like(x), x]
    for _ in range(order - 1):
        t.append(2.0 * x * t[-1] - t[-2])
    return np.stack(t[: order + 1], axis=1).astype(dtype)


@functools.lru_cache(maxsize=None)
def block_bases(
    segments: tuple[tuple[int, int], ...], npix: int, order: int, dtype=np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """Block-diagonal Chebyshev bases of several segments of one row of ``npix`` pixels.

    Segment s = (offset, n) has its own basis T_k(x), x over its n pixels mapped to [-1, 1].

    Returns (in ``dtype``, float32 by default; the fit's dtype, so no operand is promoted):
        phi: (npix, S p), p = order + 1; column s p + k is T_k on segment s, 0 elsewhere.
        products: (npix, S q), q = p (p + 1) / 2; column s q + c is Phi_k Phi_l on
            segment s for the c-th pair k <= l (row-major upper triangle), 0 elsewhere.
    """
    p = order + 1
    pairs = [(k, l) for k in range(p) for l in range(k, p)]
    phi = np.zeros((npix, len(segments) * p))
    products = np.zeros((npix, len(segments) * len(pairs)))
    for s, (offset, n) in enumerate(segments):
        t = chebyshev_basis(n, order, dtype).astype(np.float64)
        phi[offset : offset + n, s * p : (s + 1) * p] = t
        for c, (k, l) in enumerate(pairs):
            products[offset : offset + n, s * len(pairs) + c] = t[:, k] * t[:, l]
    return phi.astype(dtype), products.astype(dtype)


def cholesky_factor(gram: Array, *, pivot_tol: float) -> tuple[Array, Array]:
    """Cholesky factor G = L L^T of many small symmetric positive-definite matrices.

    .. math::
        L_{jj} = \\sqrt{G_{jj} - \\sum_{k<j} L_{jk}^2}, \\qquad
        L_{ij} = \\Big(G_{ij} - \\sum_{k<j} L_{ik} L_{jk}\\Big) / L_{jj}

    One column per step of a ``fori_loop`` over (..., p, p) arrays: elementwise operations only
    (LAPACK-backed solvers hung at random inside jit on these CPUs), and the loop body compiles
    once, where a Python-unrolled version made XLA compile ~150 small kernels.

    Args:
        gram: float32 (..., p, p) symmetric; the lower triangle is read.
        pivot_tol: a pivot G_jj - sum_k L_jk^2 <= pivot_tol * G_jj marks the matrix singular.

    Returns:
        low: float32 (..., p, p) lower-triangular L, with 1 on the diagonal of singular ones.
        ok: bool (...) False where a pivot failed the test (or G_jj <= 0).
    """
    p = gram.shape[-1]
    idx = jnp.arange(p)

    def column(j, carry):
        low, ok = carry
        row_j = jnp.where(idx < j, jax.lax.dynamic_index_in_dim(low, j, axis=-2, keepdims=False), 0.0)
        g_j = jax.lax.dynamic_index_in_dim(gram, j, axis=-1, keepdims=False)  # column j, (..., p)
        v = g_j - jnp.sum(low * row_j[..., None, :], axis=-1)
        pivot = jnp.sum(jnp.where(idx == j, v, 0.0), axis=-1)
        g_jj = jnp.sum(jnp.where(idx == j, g_j, 0.0), axis=-1)
        ok = ok & (pivot > pivot_tol * g_jj) & (g_jj > 0)
        col = jnp.where(idx >= j, v * jax.lax.rsqrt(jnp.where(ok, pivot, 1.0))[..., None], 0.0)
        return jnp.where(idx == j, col[..., :, None], low), ok  # set column j

    return jax.lax.fori_loop(0, p, column, (jnp.zeros_like(gram), jnp.ones(gram.shape[:-2], bool)))


def cholesky_substitute(low: Array, rhs: Array) -> Array:
    """Solve L L^T c = b by forward (L y = b) then backward (L^T c = y) substitution.

    Args:
        low: float32 (..., p, p) from :func:`cholesky_factor`.
        rhs: float32 (..., p) right-hand sides b.

    Returns:
        c: float32 (..., p).
    """
    p = low.shape[-1]
    idx = jnp.arange(p)
    diag = jnp.diagonal(low, axis1=-2, axis2=-1)

    def pick(a, i):
        return jnp.sum(jnp.where(idx == i, a, 0.0), axis=-1)

    def forward(i, y):
        row = jax.lax.dynamic_index_in_dim(low, i, axis=-2, keepdims=False)
        r = pick(rhs, i) - jnp.sum(jnp.where(idx < i, row * y, 0.0), axis=-1)
        return jnp.where(idx == i, (r / pick(diag, i))[..., None], y)

    def backward(k, c):
        i = p - 1 - k
        col = jax.lax.dynamic_index_in_dim(low, i, axis=-1, keepdims=False)
        r = pick(y, i) - jnp.sum(jnp.where(idx > i, col * c, 0.0), axis=-1)
        return jnp.where(idx == i, (r / pick(diag, i))[..., None], c)

    y = jax.lax.fori_loop(0, p, forward, jnp.zeros_like(rhs))
    return jax.lax.fori_loop(0, p, backward, jnp.zeros_like(rhs))


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
    float32 at ``Precision.HIGHEST``, and one explicit Cholesky over (B, S, p, p) arrays. The normal
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
    # bases in y's dtype: float32 for the pipeline, float64 for a reference run under x64
    phi, products = (jnp.asarray(a) for a in block_bases(segments, y.shape[-1], order, jnp.result_type(y)))
    lead = y.shape[:-1]
    entries = jnp.dot(weight, products, precision=_HIGHEST).reshape(*lead, nseg, -1)
    rhs = jnp.dot(weight * y, phi, precision=_HIGHEST).reshape(*lead, nseg, p)
    pairs = [(k, l) for k in range(p) for l in range(k, p)]
    full = np.array([[pairs.index((min(i, j), max(i, j))) for j in range(p)] for i in range(p)])
    gram = entries[..., full]  # (B, S, p, p) from the upper triangle
    low, ok = cholesky_factor(gram, pivot_tol=pivot_tol)
    low = jnp.where(ok[..., None, None], low, jnp.eye(p, dtype=low.dtype))

    def solve(b):
        return cholesky_substitute(low, b)  # (B, S, p)

    def evaluate(coef):
        return jnp.dot(coef.reshape(*lead, nseg * p), phi.T, precision=_HIGHEST)

    coef = solve(rhs)
    for _ in range(refine):
        residual = weight * (y - evaluate(coef))
        coef = coef + solve(jnp.dot(residual, phi, precision=_HIGHEST).reshape(*lead, nseg, p))
    coef = jnp.where(ok[..., None], coef, 0.0)
    return evaluate(coef), ok
