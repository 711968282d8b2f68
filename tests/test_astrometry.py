"""Astrometry against per-row astropy references and hand-computed distance moduli."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Galactocentric, SkyCoord

from jaxvac.run.astrometry import AstrometryConfig, galactic, galactocentric, photometric_distance, unique_flag

rng = np.random.default_rng(7)
N = 12
RA = rng.uniform(0, 360, N)
DEC = np.degrees(np.arcsin(rng.uniform(-1, 1, N)))
D = rng.uniform(0.05, 8.0, N)  # kpc


def test_galactic_matches_per_row_astropy():
    gl, gb = galactic(RA, DEC)
    for i in range(N):
        g = SkyCoord(ra=RA[i] * u.deg, dec=DEC[i] * u.deg, frame="icrs").galactic
        assert gl[i] == pytest.approx(g.l.deg, abs=1e-9)
        assert gb[i] == pytest.approx(g.b.deg, abs=1e-9)


def test_galactic_known_answer_and_nan():
    # The north Galactic pole (ICRS 192.85948, +27.12825) has b = +90 deg.
    gl, gb = galactic(np.array([192.85948, np.nan]), np.array([27.12825, 10.0]))
    assert gb[0] == pytest.approx(90.0, abs=1e-4)
    assert np.isnan(gl[1]) and np.isnan(gb[1])


def test_distance_equals_hand_computed_modulus():
    ks, m_ks, ebv = 11.3, 1.2, 0.15
    d, e = photometric_distance(ks, 0.02, m_ks, 0.1, ebv, 0.03, r_ks=0.306)
    mu = 11.3 - 1.2 - 0.306 * 0.15
    assert d == pytest.approx(10 ** (mu / 5 + 1) / 1000, rel=1e-12)
    sigma_mu = np.sqrt(0.02**2 + 0.1**2 + (0.306 * 0.03) ** 2)
    assert e == pytest.approx(d * np.log(10) / 5 * sigma_mu, rel=1e-12)
    # Finite difference check of the propagated error (linear regime).
    dd, _ = photometric_distance(ks + 1e-6, 0, m_ks, 0, ebv, 0)
    assert (dd - d) / 1e-6 * 0.02 == pytest.approx(d * np.log(10) / 5 * 0.02, rel=1e-4)


def test_galactocentric_matches_per_row_astropy_and_errors_by_finite_difference():
    cfg = AstrometryConfig()
    e_d = 0.1 * D
    xyz, err = galactocentric(RA, DEC, D, e_d, cfg)
    for i in range(N):
        c = SkyCoord(ra=RA[i] * u.deg, dec=DEC[i] * u.deg, distance=D[i] * u.kpc, frame="icrs")
        ref = c.transform_to(Galactocentric(galcen_distance=8.122 * u.kpc, z_sun=20.8 * u.pc))
        np.testing.assert_allclose(xyz[i], ref.cartesian.xyz.to_value(u.kpc), atol=1e-9)
        c2 = SkyCoord(ra=RA[i] * u.deg, dec=DEC[i] * u.deg, distance=(D[i] + e_d[i]) * u.kpc, frame="icrs")
        ref2 = c2.transform_to(Galactocentric(galcen_distance=8.122 * u.kpc, z_sun=20.8 * u.pc))
        np.testing.assert_allclose(err[i], np.abs(ref2.cartesian.xyz.to_value(u.kpc) - xyz[i]), atol=1e-9)


def test_galactocentric_axes_convention():
    # Towards the Galactic centre (l=0,b=0) X grows; towards l=90 Y grows; towards the NGP Z grows.
    l = np.array([0.0, 90.0, 0.0])
    b = np.array([0.0, 0.0, 90.0])
    icrs = SkyCoord(l=l * u.deg, b=b * u.deg, frame="galactic").icrs
    near, _ = galactocentric(icrs.ra.deg, icrs.dec.deg, np.full(3, 0.1), np.zeros(3))
    far, _ = galactocentric(icrs.ra.deg, icrs.dec.deg, np.full(3, 1.1), np.zeros(3))
    step = far - near
    assert step[0, 0] == pytest.approx(1.0, abs=2e-3)
    assert step[1, 1] == pytest.approx(1.0, abs=2e-3)
    assert step[2, 2] == pytest.approx(1.0, abs=2e-3)
    assert near[0, 0] == pytest.approx(-8.122 + 0.1, abs=1e-2)  # the Sun sits at X = -R0


def test_unique_flag_picks_highest_snr_per_star():
    star = np.array(["A", "B", "A", "C", "B", "A"])
    snr = np.array([10.0, 50.0, 30.0, np.nan, 50.0, 29.0])
    obsid = np.array([1, 2, 3, 4, 5, 6])
    flag = unique_flag(star, snr, obsid)
    np.testing.assert_array_equal(flag, [0, 1, 1, 1, 0, 0])  # B: tie -> lowest obsid (2)
    ids = np.array([7, 7, 9], dtype=np.int64)
    np.testing.assert_array_equal(unique_flag(ids, np.array([1.0, 2.0, 1.0]), np.array([1, 2, 3])), [0, 1, 1])
