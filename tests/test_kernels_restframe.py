"""Rest-frame resampling against the float64 reference (tests/reference_normalize.py).

Runs under strict dtype promotion (tests/conftest.py, FLOAT64_REFERENCE_MODULES); the ``x64``
tests run the resampling itself in float64, and check float32 stays float32 with x64 on.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxvac.kernels.restframe import resample_restframe, restframe_shift
from reference_normalize import resample

NPIX, B = 3909, 8
SEGMENTS = ((219, 1963), (3577, 3847))
KW = dict(segments=SEGMENTS, log_step=1e-4, c_kms=299792.458, max_abs_rv=4000.0)
_resample = jax.jit(lambda f, i, g, rv: resample_restframe(f, i, g, rv, **KW))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(3)
    flux = (50 + 10 * rng.normal(size=(B, NPIX))).astype(np.float32)
    ivar = rng.uniform(0.1, 2.0, (B, NPIX)).astype(np.float32)
    good = rng.random((B, NPIX)) > 0.05
    flux[1, 300:340] = np.nan  # NaNs inside a good run: must become bad, not spread
    ivar[2, 1000:1010] = 0.0  # ivar 0 marked good: bad
    good[3, 200:260] = False  # a gap across the window edge and its margin
    rv = np.array([0.0, 37.5, -221.3, 812.0, np.nan, 3999.0, -3999.0, 4500.0], np.float32)
    return flux, ivar, good, rv


def test_matches_reference(batch):
    flux, ivar, good, rv = batch
    fr, ir, gr, valid = (np.asarray(a) for a in _resample(*batch))
    np.testing.assert_array_equal(valid, np.isfinite(rv) & (np.abs(rv) <= 4000))
    start = 0
    for lo, hi in SEGMENTS:
        f, v, g = resample(flux, ivar, good, rv, lo, hi)
        sl = slice(start, start + hi - lo)
        start += hi - lo
        np.testing.assert_array_equal(gr[:, sl], g)
        np.testing.assert_allclose(fr[:, sl][g], f[g], rtol=2e-6, atol=1e-4)
        # float32 shift of up to 58 px: t is good to ~4e-6, var to ~1e-5
        np.testing.assert_allclose(ir[:, sl][g], 1.0 / v[g], rtol=5e-5)
        assert np.all(fr[:, sl][~g] == 0) and np.all(ir[:, sl][~g] == 0)


def test_zero_velocity_is_an_exact_copy(batch):
    flux, ivar, good, rv = batch
    fr, ir, gr, _ = (np.asarray(a) for a in _resample(flux, ivar, good, np.zeros(B, np.float32)))
    usable = good & np.isfinite(flux) & (ivar > 0)
    cols = np.r_[219:1963, 3577:3847]
    np.testing.assert_array_equal(gr, usable[:, cols])
    np.testing.assert_array_equal(fr, np.where(usable, flux, 0)[:, cols])
    np.testing.assert_array_equal(ir, np.where(usable, ivar, 0)[:, cols])


def test_shift_in_pixels():
    rv = np.array([0.0, 100.0, -100.0, np.inf, 5000.0], np.float32)
    s, valid = jax.jit(lambda v: restframe_shift(v, log_step=1e-4, c_kms=299792.458, max_abs_rv=4000.0))(rv)
    want = np.log10(1 + np.array([0, 100, -100, 0, 0]) / 299792.458) / 1e-4
    np.testing.assert_allclose(np.asarray(s), want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(valid), [True, True, True, False, False])


@pytest.mark.x64
def test_float64_matches_reference_to_rounding(batch):
    """In float64 (shift, weights and variance too) the kernel is the reference up to rounding.

    The reference's t = (j + s) - floor(j + s) carries ~4e-13 of rounding at j ~ 3800, which
    the variance, (1-t)^2 var_i + t^2 var_i+1 with var up to 20x apart, turns into ~2e-12.
    """
    flux, ivar, good, rv = (a.astype(np.float64) if a.dtype == np.float32 else a for a in batch)
    fr, ir, gr, valid = _resample(flux, ivar, good, rv)
    assert (fr.dtype, ir.dtype, gr.dtype) == (jnp.float64, jnp.float64, jnp.bool_)
    fr, ir, gr, valid = (np.asarray(a) for a in (fr, ir, gr, valid))
    np.testing.assert_array_equal(valid, np.isfinite(rv) & (np.abs(rv) <= 4000))
    start = 0
    for lo, hi in SEGMENTS:
        f, v, g = resample(flux, ivar, good, rv, lo, hi)
        sl = slice(start, start + hi - lo)
        start += hi - lo
        np.testing.assert_array_equal(gr[:, sl], g)
        np.testing.assert_allclose(fr[:, sl][g], f[g], rtol=1e-12)
        np.testing.assert_allclose(ir[:, sl][g], 1.0 / v[g], rtol=1e-10)
        assert np.all(fr[:, sl][~g] == 0) and np.all(ir[:, sl][~g] == 0)


@pytest.mark.x64
def test_float32_is_unchanged_by_x64(batch):
    """float32 in, float32 out with x64 on, bit for bit the result without x64."""
    with jax.enable_x64(False):
        want = [np.asarray(a) for a in _resample(*batch)]
    got = _resample(*batch)
    assert [a.dtype for a in got] == [jnp.float32, jnp.float32, jnp.bool_, jnp.bool_]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g), w)
