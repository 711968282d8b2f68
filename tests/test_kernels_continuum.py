"""The batched Chebyshev continuum fit against numpy.polynomial in float64.

Runs under strict dtype promotion (tests/conftest.py, FLOAT64_REFERENCE_MODULES); the ``x64``
tests run the fit and the Cholesky themselves in float64, against the same references.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvac.kernels.continuum import cholesky_factor, cholesky_substitute, fit_continuum

SEGMENTS = ((0, 120), (140, 60))  # two fitted ranges of a 210-pixel row; 120..139 and 200.. unused
NPIX = 210
ORDER = 6
_fit = jax.jit(lambda y, w: fit_continuum(y, w, segments=SEGMENTS, order=ORDER, pivot_tol=2e-2))


def masked_rows(dtype):
    """Six noisy rows with random masks (row 0 unmasked, row 1 with a hole), in ``dtype``."""
    rng = np.random.default_rng(1)
    b = 6
    x = np.linspace(0, 1, NPIX)
    y = (100 + 30 * np.sin(3 * x)[None] + rng.normal(0, 2, (b, NPIX)) + 500 * rng.random((b, 1))).astype(dtype)
    w = (rng.random((b, NPIX)) > 0.3).astype(dtype)
    w[0, :] = 1.0
    w[1, 140:150] = 0.0  # a sixth of the second segment missing: extrapolated there
    return y, w


def assert_matches_chebfit(y, w, cont, rtol):
    for s, (off, n) in enumerate(SEGMENTS):
        t = np.linspace(-1, 1, n)
        for r in range(len(y)):
            use = w[r, off : off + n] > 0
            coef = np.polynomial.chebyshev.chebfit(t[use], y[r, off : off + n][use].astype(np.float64), ORDER)
            want = np.polynomial.chebyshev.chebval(t, coef)
            # where the fit extrapolates over a hole it is ill-determined in any precision:
            # compare on the fitted pixels (the only ones the pipeline divides)
            np.testing.assert_allclose(cont[r, off : off + n][use], want[use], rtol=rtol)
            if use.all():
                np.testing.assert_allclose(cont[r, off : off + n], want, rtol=rtol)
    assert np.all(cont[:, 120:140] == 0) and np.all(cont[:, 200:] == 0)


def test_fit_matches_chebfit_with_masks():
    y, w = masked_rows(np.float32)
    cont, ok = (np.asarray(a) for a in _fit(y, w))
    assert ok.all() and cont.dtype == np.float32
    assert_matches_chebfit(y, w, cont, rtol=1e-5)


@pytest.mark.x64
def test_float64_fit_matches_chebfit_to_1e10():
    """The same fit in float64: the Cholesky and the refinement step, not float32, set the error."""
    y, w = masked_rows(np.float64)
    cont, ok = (np.asarray(a) for a in _fit(y, w))
    assert ok.all() and cont.dtype == np.float64
    assert_matches_chebfit(y, w, cont, rtol=1e-10)


@pytest.mark.x64
def test_float32_stays_float32_with_x64_on():
    y, w = masked_rows(np.float32)
    cont, ok = _fit(y, w)
    assert (cont.dtype, ok.dtype) == (jnp.float32, jnp.bool_)


def test_empty_or_degenerate_segment_is_flagged_not_nan():
    y = np.ones((3, NPIX), np.float32)
    w = np.ones((3, NPIX), np.float32)
    w[0] = 0.0  # no pixel at all
    w[1, :] = 0.0
    w[1, 5] = 1.0  # one pixel cannot fix seven coefficients
    w[1, 150:] = 1.0
    cont, ok = (np.asarray(a) for a in _fit(y, w))
    np.testing.assert_array_equal(ok, [[False, False], [False, True], [True, True]])
    assert np.isfinite(cont).all()
    assert np.all(cont[0] == 0) and np.all(cont[1, :120] == 0)
    np.testing.assert_allclose(cont[2, :120], 1.0, rtol=1e-6)


def test_cholesky_solves_spd_systems():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(16, 40, 7))
    g = np.einsum("bij,bik->bjk", a, a)
    rhs = rng.normal(size=(16, 7))

    def solve(g, rhs):
        low, ok = cholesky_factor(g, pivot_tol=1e-6)
        return cholesky_substitute(low, rhs), ok

    c, ok = jax.jit(solve)(g.astype(np.float32), rhs.astype(np.float32))
    want = np.linalg.solve(g, rhs[..., None])[..., 0]
    assert np.asarray(ok).all()
    np.testing.assert_allclose(np.asarray(c), want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    with jax.enable_x64(True):  # the same elementwise Cholesky in float64
        c64, ok64 = jax.jit(solve)(g, rhs)
        assert c64.dtype == jnp.float64 and np.asarray(ok64).all()
        np.testing.assert_allclose(np.asarray(c64), want, rtol=1e-10, atol=1e-12 * np.abs(want).max())


def test_window_cut_to_half_is_flagged_ill_conditioned():
    """A segment whose weighted pixels cover only its first half: cond(G) ~ 4e8, beyond float32."""
    y = np.full((2, NPIX), 3.0, np.float32)
    w = np.ones((2, NPIX), np.float32)
    w[0, 60:120] = 0.0
    cont, ok = (np.asarray(a) for a in _fit(y, w))
    np.testing.assert_array_equal(ok, [[False, True], [True, True]])
    assert np.all(cont[0, :120] == 0) and np.isfinite(cont).all()
