"""Physics sanity of the simulator, measured on its spectra and magnitudes.

Known answers and independent measurements: equivalent widths integrated from the noise-free
normalised spectra, centroids, S/N measured from two noise realisations, the Sun's absolute
magnitudes (Willmer 2018; Casagrande & VandenBerg 2018), speclite's own synthetic photometry.
"""

import numpy as np
import pytest

from jaxvac.constants import C_KMS, WINDOWS, global_wavelength
from jaxvac.simulate import photometry, population, spectra, survey

LAM = global_wavelength()


def normalised(teff, logg, feh, afe=0.0, cfe=0.0, nfe=0.0, rv=0.0):
    """Noise-free F / C on the global grid for broadcast label arrays: (n, 3909)."""
    teff, logg, feh, afe, cfe, nfe, rv = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float))
                                                               for v in (teff, logg, feh, afe, cfe, nfe, rv)))
    n = teff.size
    z = np.zeros(n)
    model, cont = spectra.stellar_model(teff, logg, feh, afe, cfe, nfe, rv, z, np.zeros((n, 3)), z, z)
    return model / cont


def ew(norm, lo, hi):
    """Equivalent width (Angstrom) over [lo, hi]: integral of 1 - F/C (trapezoid on the grid)."""
    sel = (LAM >= lo) & (LAM <= hi)
    return np.trapezoid(1.0 - norm[:, sel], LAM[sel], axis=1)


def test_ca_triplet_grows_with_metallicity():
    feh = np.array([-2.5, -1.5, -0.5, 0.0, 0.4])
    for teff, logg in ((4800.0, 2.5), (5800.0, 4.4)):
        norm = normalised(teff, logg, feh)
        w = sum(ew(norm, c - 12.0, c + 12.0) for c, _ in spectra.CA_TRIPLET)
        assert np.all(np.diff(w) > 0.05), (teff, logg, w)
        assert 1.0 < w[-1] < 20.0  # a few Angstrom, as the real triplet at these metallicities


def lick_index(norm, blue, band, red):
    """Lick-style equivalent width (Angstrom): band integral of 1 - F / P, with P the straight
    line through the mean fluxes of the blue and red pseudo-continua (vacuum Angstrom)."""
    def mean(lo, hi):
        sel = (LAM >= lo) & (LAM <= hi)
        return norm[:, sel].mean(axis=1), 0.5 * (lo + hi)

    (fb, lb), (fr, lr) = mean(*blue), mean(*red)
    sel = (LAM >= band[0]) & (LAM <= band[1])
    p = fb[:, None] + (fr - fb)[:, None] * (LAM[sel] - lb) / (lr - lb)
    return np.trapezoid(1.0 - norm[:, sel] / p, LAM[sel], axis=1)


def test_balmer_strength_peaks_near_9000_to_10000_k():
    teff = np.arange(5000.0, 15001.0, 250.0)
    norm = normalised(teff, 4.0, 0.0)
    # Lick H beta and H delta_A (Worthey & Ottaviani 1997), shifted to vacuum.
    w = (lick_index(norm, (4829.2, 4849.2), (4849.2, 4878.0), (4878.0, 4893.0))
         + lick_index(norm, (4042.7, 4080.9), (4084.6, 4123.4), (4129.7, 4162.2)))
    peak = teff[np.argmax(w)]
    assert 8750.0 <= peak <= 10250.0, peak
    assert w.max() > 3 * w[0]  # much stronger in A stars than in G stars
    assert w[-1] < 0.7 * w.max()  # and weaker again in B stars


def test_cn_4215_grows_with_nitrogen():
    nfe = np.array([-0.3, 0.0, 0.3, 0.6, 1.0])
    norm = normalised(4500.0, 2.0, -0.5, nfe=nfe)
    band = ew(norm, 4150.0, 4214.0)
    assert np.all(np.diff(band) > 0.02), band


def test_g_band_grows_with_carbon_and_tio_appears_below_4000_k():
    norm = normalised(4800.0, 2.5, -1.0, cfe=np.array([-0.5, 0.0, 0.5]))
    g_band = ew(norm, 4285.0, 4318.0)
    assert np.all(np.diff(g_band) > 0.05), g_band
    norm = normalised(np.array([4400.0, 3900.0, 3500.0]), 4.7, 0.0)
    tio = ew(norm, 7055.0, 7150.0)  # the TiO 7055 band
    assert tio[1] > 5 * tio[0] and tio[2] > 1.5 * tio[1], tio  # the band switches on below ~4,000 K


def test_every_label_leaves_a_trace_inside_the_network_windows():
    """Each of Teff, logg, [Fe/H], [alpha/M], [C/Fe], [N/Fe] changes F/C in 3900-5800 or
    8450-8950 A for a giant and a dwarf (absolute magnitudes follow from Teff, logg, [Fe/H])."""
    win = np.zeros(LAM.size, bool)
    for lo, hi in WINDOWS:
        win |= (LAM >= lo) & (LAM <= hi)
    steps = {"teff": 100.0, "logg": 0.2, "feh": 0.1, "afe": 0.05, "cfe": 0.1, "nfe": 0.1}
    for base in ({"teff": 4700.0, "logg": 2.5, "feh": -0.5, "afe": 0.1, "cfe": 0.0, "nfe": 0.2},
                 {"teff": 5600.0, "logg": 4.4, "feh": -0.2, "afe": 0.05, "cfe": 0.0, "nfe": 0.0}):
        ref = normalised(**base)[0]
        for name, step in steps.items():
            moved = normalised(**(base | {name: base[name] + step}))[0]
            assert np.abs(moved - ref)[win].max() > 0.003, (base, name)


def test_doppler_shift_moves_lines_by_rv():
    """Cross-correlating the line-depth spectra (4,000-5,600 A) recovers the shift to 3 km/s."""
    rv_true = np.array([0.0, 137.0, -251.0, 33.3])
    norm = normalised(5200.0, 4.2, 0.0, rv=rv_true)
    sel = np.nonzero((LAM > 4000.0) & (LAM < 5600.0))[0]
    depth = 1.0 - norm
    lags = np.arange(-12, 13)
    for k in range(1, rv_true.size):
        cc = np.array([np.dot(depth[0, sel], depth[k, sel + lag]) for lag in lags])
        i = int(np.argmax(cc))
        frac = 0.5 * (cc[i - 1] - cc[i + 1]) / (cc[i - 1] - 2 * cc[i] + cc[i + 1])
        rv = (10 ** ((lags[i] + frac) * 1e-4) - 1.0) * C_KMS
        assert rv == pytest.approx(rv_true[k], abs=3.0)


def test_measured_snr_of_a_flat_region_matches_the_header():
    """S/N measured like a pipeline from two exposures (the mean over the scatter of their
    difference) in 4,600-4,800 A agrees with the header SNRG within 10 %."""
    rng = np.random.default_rng(3)
    teff = np.array([4200.0, 5200.0, 6200.0, 7500.0, 9000.0])
    snrg = np.array([12.0, 30.0, 60.0, 120.0, 25.0])
    n = teff.size
    z = np.zeros(n)
    model, cont = spectra.stellar_model(teff, np.full(n, 4.3), np.full(n, -0.3), z, z, z, z, z,
                                        np.zeros((n, 3)), z, z)
    bands = survey._band_snr(snrg, teff, z).astype(float)
    f1, _ = spectra.observe(500 * model, 500 * cont, bands, np.ones(n), rng)
    f2, _ = spectra.observe(500 * model, 500 * cont, bands, np.ones(n), rng)
    sel = (LAM > 4600.0) & (LAM < 4800.0)
    signal = np.median(0.5 * (f1 + f2)[:, sel], axis=1)
    noise = np.std((f1 - f2)[:, sel], axis=1) / np.sqrt(2.0)
    np.testing.assert_allclose(signal / noise, bands[:, 1], rtol=0.10)


def test_band_snr_follow_the_colour():
    s = survey._band_snr(np.array([50.0, 50.0]), np.array([4000.0, 9000.0]), np.zeros(2))
    assert s[0, 1] == pytest.approx(50.0) and s[1, 1] == pytest.approx(50.0)
    assert s[0, 0] < 0.3 * s[0, 1]  # a cool star is faint in u
    assert s[0, 3] > s[1, 3]  # and relatively bright in i


def test_dwarf_sequence_and_giants():
    teff = np.arange(4000.0, 7001.0, 250.0)
    logg, mass = population.main_sequence_logg(teff, np.zeros_like(teff))
    m = photometry.absolute_magnitudes(teff, logg, np.zeros_like(teff), mass)
    m_g = m[:, photometry.BANDS.index("a_gg")]
    assert np.all(np.diff(m_g) < 0), m_g  # M_G rises (fainter) as Teff falls on the dwarf sequence
    giant = photometry.absolute_magnitudes(np.array([4700.0]), np.array([2.4]), np.array([0.0]), np.array([1.3]))
    dwarf = photometry.absolute_magnitudes(np.array([4700.0]), np.array([4.6]), np.array([0.0]), np.array([0.75]))
    assert (dwarf - giant)[0, 0] > 4.0  # a red-clump giant is ~5 mag brighter than a K dwarf
    assert np.all(np.diff(m[:, photometry.BANDS.index("a_bp")] - m[:, photometry.BANDS.index("a_rp")]) < 0)


def test_the_sun():
    m = photometry.absolute_magnitudes(np.array([5772.0]), np.array([4.438]), np.array([0.0]), np.array([1.0]))[0]
    b = photometry.BANDS
    assert m[b.index("a_gg")] == pytest.approx(4.67, abs=0.15)  # Casagrande & VandenBerg 2018
    assert m[b.index("a_vap")] == pytest.approx(4.81, abs=0.15)  # Willmer 2018
    assert m[b.index("a_bap")] == pytest.approx(5.44, abs=0.15)
    assert m[b.index("a_rsd")] == pytest.approx(4.65, abs=0.15)  # AB
    assert m[b.index("a_ks")] == pytest.approx(3.27, abs=0.35)  # blackbody-like IR: documented
    assert photometry.bolometric_magnitude(5772.0, 4.438, 1.0) == pytest.approx(4.74, abs=0.01)


def test_synthetic_photometry_matches_speclite():
    import astropy.units as u
    import speclite.filters

    flux = photometry.surface_flux([4000.0, 6500.0, 10000.0], [4.6, 4.2, 4.0], [0.0, -1.0, 0.0]) * 1e-20
    seq = speclite.filters.load_filters(*sorted(set(photometry.FILTERS)))
    tab = seq.get_ab_magnitudes(flux * (u.erg / u.s / u.cm**2 / u.Angstrom), photometry.sed_wavelength() * u.Angstrom)
    ref = np.stack([np.asarray(tab[f]) for f in photometry.FILTERS], axis=1)
    np.testing.assert_allclose(photometry.ab_magnitudes(flux), ref, atol=2e-3)


def test_galactic_coordinates_known_points():
    l, b = population.icrs_to_galactic(np.array([266.40499, 192.85948]), np.array([-28.93617, 27.12825]))
    np.testing.assert_allclose((l[0] + 180.0) % 360.0 - 180.0, 0.0, atol=1e-3)  # the Galactic centre
    np.testing.assert_allclose(b[0], 0.0, atol=1e-3)
    np.testing.assert_allclose(b[1], 90.0, atol=0.01)  # north Galactic pole


def test_population_covers_what_the_training_sets_need():
    rng = np.random.default_rng(0)
    gb = rng.uniform(-90, 90, 20000)
    s = population.draw_stars(rng, gb)
    assert (s["feh"] < -3.0).sum() > 30 and s["feh"].min() >= -4.0  # VMP tail down to -4
    thick = s["component"] == 1
    thin = s["component"] == 0
    assert np.median(s["afe"][thick & (s["feh"] < -0.8)]) > np.median(s["afe"][thin]) + 0.2
    giants = (s["logg"] < 3.0) & (s["phase"] == 2)
    dwarfs = s["phase"] == 0
    assert np.median(s["nfe"][giants]) > np.median(s["nfe"][dwarfs]) + 0.1  # first dredge-up
    assert np.median(s["cfe"][giants]) < np.median(s["cfe"][dwarfs]) - 0.1
    assert ((s["teff"] > 7000) & dwarfs).sum() > 200 and (s["teff"] < 3900).sum() > 200
    rc = s["phase"] == 3
    assert abs(np.median(s["logg"][rc]) - 2.45) < 0.05
