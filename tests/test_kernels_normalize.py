"""The whole normalisation against the independent float64 reference, on synthetic and real spectra.

Agreement rule: |norm - norm_ref| <= 1e-4 * max(1, |norm_ref|), i.e. 1e-4 relative to the
normalised flux, counted in units of the continuum where the flux is below it.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxvac import kernels
from jaxvac import preprocess as pp
from jaxvac.constants import NPIX_GLOBAL, global_wavelength
from reference_normalize import normalize_reference

B = 32  # every batch of this module has this shape: one compilation
TOL = 1e-4


def synthetic_batch(seed=0):
    """Stars with lines, noise, masks, NaNs, gaps, bad edges and the status cases."""
    rng = np.random.default_rng(seed)
    wl = global_wavelength()
    cont = 100 * (wl / 5000.0) ** rng.uniform(-3, 1, (B, 1)) * (1 + 0.2 * np.sin(wl / rng.uniform(500, 900, (B, 1))))
    lines = np.zeros((B, NPIX_GLOBAL))
    for _ in range(60):
        centre = rng.uniform(3700, 9000, (B, 1))
        lines += rng.uniform(0, 0.5, (B, 1)) * np.exp(-0.5 * ((wl - centre) / rng.uniform(1, 6, (B, 1))) ** 2)
    sigma = cont * rng.uniform(0.005, 0.05, (B, 1))
    flux = (cont * (1 - np.clip(lines, 0, 0.9)) + sigma * rng.normal(size=(B, NPIX_GLOBAL))).astype(np.float32)
    ivar = (1 / sigma**2).astype(np.float32)
    good = rng.random((B, NPIX_GLOBAL)) > 0.03
    rv = rng.uniform(-500, 500, B).astype(np.float32)
    flux[1, 500:520] = np.nan  # NaN flux on pixels marked good
    ivar[2, 800:805] = np.inf
    good[3, 1000:1100] = False  # a gap wider than the filter: smoothed values missing there
    good[4, 200:240] = False  # the window edge (229) and its whole margin bad
    good[4, 3830:3850] = False  # the red edge of window 2 bad
    good[5, 3587:3837] = False  # window 2 empty -> few good
    good[6, 3587:3800] = False  # window 2 with 37 good pixels (< 63) -> few good
    rv[7] = np.nan  # unknown rv -> 0, flagged
    rv[8] = 6000.0  # not a star's rv -> 0, flagged
    good[9] = False  # nothing at all
    flux[10, :1500] -= 1.2 * cont[10, :1500]  # negative flux at the blue end: continuum too low
    good[11, 200:920] = False  # window 1 (and its margin) with its first 40% missing: ill-conditioned
    flux[12] = 0.0  # zero flux everywhere: continuum 0 -> every pixel bad
    rv[13:16] = [0.0, 3999.0, -3999.0]  # exact grid, and the largest shifts
    return flux, ivar, good, rv


@pytest.fixture(scope="module")
def synthetic():
    flux, ivar, good, rv = synthetic_batch()
    out = [np.asarray(a) for a in pp.normalize(flux, ivar, good, rv)]
    return (flux, ivar, good, rv), out, normalize_reference(flux, ivar, good, rv)


def assert_agrees(out, ref, skip_ill=True):
    norm, ngood, nivar, status = out
    rnorm, rgood, rivar, rfitted = ref
    ill = (status & (pp.STATUS_W1_ILL_CONDITIONED | pp.STATUS_W2_ILL_CONDITIONED)) != 0
    # a window flagged ill-conditioned is bad in the kernel only; everything else must match
    cols = np.zeros((len(status), pp.NPIX), bool)
    cols[:, :1724] = (status & pp.STATUS_W1_ILL_CONDITIONED)[:, None] != 0
    cols[:, 1724:] = (status & pp.STATUS_W2_ILL_CONDITIONED)[:, None] != 0
    np.testing.assert_array_equal(ngood[~cols], rgood[~cols])
    assert not ngood[cols].any()
    both = ngood & rgood
    err = np.abs(norm - rnorm) / np.maximum(1.0, np.abs(rnorm))
    assert err[both].max() <= TOL, f"max error {err[both].max():.2e} in spectra {np.unique(np.nonzero(both & (err > TOL))[0])}"
    np.testing.assert_allclose(nivar[both], rivar[both], rtol=1e-3)
    assert np.all(norm[~ngood] == 1) and np.all(nivar[~ngood] == 0)
    few = np.stack([(status & pp.STATUS_W1_FEW_GOOD) != 0, (status & pp.STATUS_W2_FEW_GOOD) != 0], 1)
    np.testing.assert_array_equal(few, ~rfitted)
    assert np.isfinite(norm).all() and np.isfinite(nivar).all()
    return ill


def test_synthetic_batch_matches_reference(synthetic):
    _, out, ref = synthetic
    ill = assert_agrees(out, ref)
    assert ill[11] and ill.sum() == 1


def test_status_bits(synthetic):
    (_, _, _, rv), (norm, ngood, _, status), _ = synthetic
    names = [pp.describe_status(s) for s in status]
    assert names[0] == [] and names[13] == []
    assert "rv_invalid" in names[7] and "rv_invalid" in names[8]
    assert "window2_few_good" in names[5] and "window2_few_good" in names[6]
    assert names[9] == ["window1_few_good", "window2_few_good"]
    assert "continuum_low" in names[10]
    assert names[11] == ["window1_ill_conditioned"]
    assert "continuum_low" in names[12] and not ngood[12].any()
    assert not ngood[5, 1724:].any() and ngood[5, :1724].mean() > 0.9


def test_real_spectra_match_reference(lamost_dir):
    """Every readable real file, in batches of B padded with empty rows (one compilation)."""
    from jaxvac.io.lamost import read_spectrum
    from jaxvac.io.records import Spectrum

    spectra = [read_spectrum(str(p)) for p in sorted(lamost_dir.iterdir()) if p.name != "MANIFEST.tsv"]
    spectra = [s for s in spectra if isinstance(s, Spectrum)]
    assert len(spectra) >= 20
    for start in range(0, len(spectra), B):
        chunk = spectra[start : start + B]
        flux = np.zeros((B, NPIX_GLOBAL), np.float32)
        ivar = np.zeros((B, NPIX_GLOBAL), np.float32)
        good = np.zeros((B, NPIX_GLOBAL), bool)
        rv = np.zeros(B, np.float32)
        for i, s in enumerate(chunk):
            flux[i], ivar[i], good[i], rv[i] = s.flux, s.ivar, s.good, s.meta["rv"]
        out = [np.asarray(a) for a in pp.normalize(flux, ivar, good, rv)]
        assert_agrees(out, normalize_reference(flux, ivar, good, rv))
        n = len(chunk)
        assert (out[1][:n].mean(axis=1) > 0.5).sum() >= n - 2  # real stars are mostly usable
        np.testing.assert_array_equal(out[3][n:], pp.STATUS_W1_FEW_GOOD | pp.STATUS_W2_FEW_GOOD)


def test_second_batch_does_not_recompile(synthetic):
    before = kernels.normalize._cache_size()
    flux, ivar, good, rv = synthetic_batch(seed=1)
    pp.normalize(flux, ivar, good, rv)
    assert kernels.normalize._cache_size() == before


def test_chunked_batch_matches_one_pass(synthetic):
    """chunk=12 on 32 spectra: three lax.map steps over a batch padded to 36."""
    (flux, ivar, good, rv), (norm, ngood, nivar, status), _ = synthetic
    out = [np.asarray(a) for a in kernels.normalize(flux, ivar, good, rv, layout=pp.LAYOUT, chunk=12)]
    np.testing.assert_array_equal(out[1], ngood)
    np.testing.assert_array_equal(out[3], status)
    np.testing.assert_allclose(out[0], norm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[2], nivar, rtol=1e-4)


@settings(max_examples=15, deadline=None)
@given(
    cheb=st.lists(st.floats(-1, 1), min_size=6, max_size=6),
    level=st.floats(1e-2, 1e4),
    sign=st.sampled_from([-1.0, 1.0]),
    rv=st.sampled_from([0.0, 123.4]),
)
def test_monotone_sixth_order_polynomial_normalises_to_one(cheb, level, sign, rv):
    """flux = P(x), P of order 6 monotone over each window (so the running median is P itself)."""
    # |sum b_k T_k| <= 0.2 * |T_5(1.08)| < 0.75 out to the 10-pixel margins of window 2 (x = +-1.08)
    cheb = 0.2 * np.asarray(cheb) / max(1.0, np.abs(cheb).sum())
    deriv = np.concatenate([[1.0], cheb[:5]])
    poly = np.polynomial.chebyshev.chebint(sign * deriv)  # order 6, P' = sign (1 + ...) != 0
    poly[0] += 4.0  # |P - P(0)| <= 1.75 * 1.08 out to the margins, so P > 2
    flux = np.zeros((B, NPIX_GLOBAL), np.float32)
    for j0, j1 in pp.LAYOUT.windows:
        n = j1 - j0
        x = -1 + 2 * (np.arange(j0 - 30, j1 + 30) - j0) / (n - 1)
        flux[:, j0 - 30 : j1 + 30] = level * np.polynomial.chebyshev.chebval(x, poly)
    good = np.ones((B, NPIX_GLOBAL), bool)
    norm, ngood, _, status = (np.asarray(a) for a in pp.normalize(flux, np.ones_like(flux), good, np.full(B, rv, np.float32)))
    assert (status == 0).all() and ngood.all()
    tol = 1e-5 if rv == 0 else 1e-4  # interpolating a polynomial linearly is exact only at rv = 0
    np.testing.assert_allclose(norm, 1.0, atol=tol)


def test_standardize_and_bad_fraction(synthetic):
    _, (norm, ngood, _, _), _ = synthetic
    rng = np.random.default_rng(5)
    mean = rng.uniform(0.5, 1.0, pp.NPIX).astype(np.float32)
    std = rng.uniform(0.01, 0.2, pp.NPIX).astype(np.float32)
    x = np.asarray(pp.standardize(norm, ngood, mean, std))
    np.testing.assert_allclose(x, np.where(ngood, (norm - mean) / std, 0.0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pp.bad_fraction(ngood)), 1 - ngood.mean(axis=1), rtol=1e-6)


def test_standardization_stats_ignore_bad_pixels():
    rng = np.random.default_rng(6)
    norm = rng.normal(1.0, 0.1, (50, pp.NPIX))
    good = rng.random((50, pp.NPIX)) > 0.2
    norm[~good] = 1e6  # must not leak into the statistics
    good[:, 0] = False  # no good value: mean 1, std 1
    good[:, 1] = False
    good[3, 1] = True  # one good value: std 1
    norm[:, 2] = 0.7  # constant: std floored
    good[:, 2] = True
    mean, std = pp.standardization_stats(norm, good)
    m = np.ma.masked_array(norm, ~good)
    np.testing.assert_allclose(mean[3:], m.mean(axis=0)[3:], rtol=1e-6)
    np.testing.assert_allclose(std[3:], m.std(axis=0, ddof=1)[3:], rtol=1e-5)
    assert (mean[0], std[0], mean[1], std[1]) == (1.0, 1.0, np.float32(norm[3, 1]), 1.0)
    assert mean[2] == np.float32(0.7) and std[2] == np.float32(1e-3)


def test_front_door_rejects_bad_inputs():
    f = np.zeros((2, NPIX_GLOBAL), np.float32)
    g = np.ones((2, NPIX_GLOBAL), bool)
    rv = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match=r"flux must have shape \(B, 3909\).*got \(2, 3900\)"):
        pp.normalize(f[:, :3900], f[:, :3900], g[:, :3900], rv)
    with pytest.raises(ValueError, match=r"ivar must have the shape of flux \(2, 3909\), got \(1, 3909\)"):
        pp.normalize(f, f[:1], g, rv)
    with pytest.raises(ValueError, match=r"rv must have shape \(2,\).*got \(3,\)"):
        pp.normalize(f, f, g, np.zeros(3))
    with pytest.raises(TypeError, match="good must be a bool array.*got dtype int64"):
        pp.normalize(f, f, g.astype(np.int64), rv)
    with pytest.raises(TypeError, match="flux must be a floating-point array.*int32"):
        pp.normalize(f.astype(np.int32), f, g, rv)
    with pytest.raises(ValueError, match=r"mean must have shape \(1974,\).*got \(1973,\)"):
        pp.preprocess(f, f, g, rv, np.zeros(1973), np.ones(1974))


def test_layout_has_no_silent_defaults_and_pp_layout_takes_every_number_from_constants():
    from jaxvac import constants

    with pytest.raises(TypeError, match="missing"):
        kernels.Layout(npix_in=NPIX_GLOBAL, log_step=constants.LOG_STEP, windows=((229, 1953),))
    assert pp.LAYOUT == kernels.Layout(
        npix_in=3909, log_step=1e-4, windows=((229, 1953), (3587, 3837)), margin=10, width=21, order=6,
        min_good_fraction=0.25, pivot_tol=2e-2, continuum_floor=0.01, max_abs_rv=4000.0, c_kms=299792.458,
        norm_flux_min=-0.5, norm_flux_max=3.0, max_abs_standardized=10.0)
    assert (pp.LAYOUT.max_abs_rv, pp.LAYOUT.min_good_fraction, pp.LAYOUT.pivot_tol, pp.LAYOUT.continuum_floor) == (
        constants.MAX_ABS_RV, constants.MIN_GOOD_FRACTION, constants.PIVOT_TOL, constants.CONTINUUM_FLOOR)
    # S = ceil(log10(1 + 4000/c) / 1e-4) + 1 = ceil(57.56) + 1
    assert pp.LAYOUT.rv_room == 59 and pp.LAYOUT.reach == ((160, 2022), (3518, 3906))


_SHARDING_SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    sys.path.insert(0, "tests")
    from test_kernels_normalize import STATS, synthetic_batch
    from jaxvac import preprocess as pp
    assert len(jax.devices()) == 4, jax.devices()
    flux, ivar, good, rv = synthetic_batch()
    mean, std = STATS
    split = lambda a: a.reshape(4, -1, *a.shape[1:])
    vm = jax.vmap(pp.preprocess, in_axes=(0, 0, 0, 0, None, None))(*map(split, (flux, ivar, good, rv)), mean, std)
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    rows, rep = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
    args = [jax.device_put(a, rows) for a in (flux, ivar, good, rv)] + [jax.device_put(a, rep) for a in (mean, std)]
    sh = jax.jit(pp.preprocess, out_shardings=(rows, rows, rows))(*args)
    assert len(sh[0].sharding.device_set) == 4
    pm = jax.pmap(pp.preprocess, in_axes=(0, 0, 0, 0, None, None))(*map(split, (flux, ivar, good, rv)), mean, std)
    out = {f"{name}_{i}": np.asarray(a) for name, res in (("vmap", vm), ("sharded", sh), ("pmap", pm)) for i, a in enumerate(res)}
    np.savez(sys.argv[1], **out)
    """
)
STATS = (np.linspace(0.8, 1.0, 1974).astype(np.float32), np.linspace(0.05, 0.2, 1974).astype(np.float32))


def test_entry_point_under_vmap_sharding_and_pmap(synthetic, tmp_path):
    """preprocess under vmap, jit with a NamedSharding over 4 CPU devices, and pmap: same bits."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = tmp_path / "out.npz"
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDING_SCRIPT, str(result)], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, (norm, ngood, _, status), _ = synthetic
    want = (np.asarray(pp.standardize(norm, ngood, *STATS)), np.asarray(pp.bad_fraction(ngood)), status)
    got = np.load(result)
    for name in ("vmap", "sharded", "pmap"):
        for i, w in enumerate(want):
            np.testing.assert_array_equal(got[f"{name}_{i}"].reshape(w.shape), w, err_msg=name)
