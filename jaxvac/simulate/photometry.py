"""Absolute magnitudes in the 14 LGMWAS bands from Teff, logg, [Fe/H] and an assumed mass.

M_X = m_X(surface flux of a 1 Rsun star seen from 10 pc) - 5 log10(R / Rsun), with
R = sqrt(G M / g) (M the population's assumed mass, g = 10^logg cm s^-2).

The surface flux is the simulator's own spectral model extended to 2,500-60,000 A:
pi B_lambda(Teff) x smooth blanketing x exp(-tau_lines) (tau only inside the LAMOST range, the
templates of ``spectra``), rescaled so that the integral equals that of pi B_lambda (blanketed
flux is put back uniformly: a crude stand-in for backwarming). Synthetic photometry through the
real filter curves shipped with speclite: Gaia EDR3 G/BP/RP, 2MASS J/H/Ks, WISE W1/W2, Bessell
B/V (for APASS B/V), SDSS g/r/i (SDSS and APASS r). Vega-system bands are zero-pointed on a
model Vega (Teff 9,550 K, logg 3.95, [Fe/H] -0.5, scaled to 3.44e-9 erg/s/cm2/A at 5,556 A,
Hayes 1985) with m = 0.03 (Gaia, B, V) or 0 (2MASS, WISE); SDSS and APASS r are AB.

What this is not: no molecular opacity beyond the TiO/MgH templates, no H2O in the near-IR of
M dwarfs, no model-atmosphere flux redistribution; expect errors of order 0.1-0.3 mag against
real stars in the bluest and reddest bands of cool stars.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxvac.constants import LOG_LAMBDA0, LOG_STEP
from jaxvac.labels import LABELS
from jaxvac.simulate import spectra

BANDS = ("a_gg", "a_bp", "a_rp", "a_j", "a_h", "a_ks", "a_w1", "a_w2", "a_bap", "a_vap", "a_rap",
         "a_gsd", "a_rsd", "a_isd")  # label names, in LABELS order
FILTERS = ("gaiadr3-G", "gaiadr3-BP", "gaiadr3-RP", "twomass-J", "twomass-H", "twomass-Ks",
           "wise2010-W1", "wise2010-W2", "bessell-B", "bessell-V", "sdss2010-r", "sdss2010-g",
           "sdss2010-r", "sdss2010-i")
VEGA_REFERENCE = (0.03, 0.03, 0.03, 0.0, 0.0, 0.0, 0.0, 0.0, 0.03, 0.03, None, None, None, None)
# None: AB magnitudes. Otherwise the magnitude of Vega in that system.

G_CGS = 6.674e-8  # cm3 g-1 s-2
M_SUN = 1.98841e33  # g (IAU 2015 nominal GM_sun / G)
R_SUN = 6.957e10  # cm (IAU 2015 nominal)
TEN_PC = 3.0856775814913673e19  # cm
SIGMA_SB = 5.670374419e-5  # erg cm-2 s-1 K-4
VEGA = (9550.0, 3.95, -0.5, 3.44e-9, 5556.0)  # Teff, logg, [Fe/H], F_lambda(5556 A), lambda
GRID_TEFF = np.concatenate([np.arange(3000.0, 5000.0, 100.0), np.arange(5000.0, 12001.0, 250.0)])
GRID_LOGG = np.array([0.0, 2.0, 3.5, 5.0])
GRID_FEH = np.arange(-4.0, 0.51, 0.5)

if BANDS != tuple(l.name for l in LABELS if l.training_set == "LGMWAS"):  # pragma: no cover
    raise RuntimeError("photometry.BANDS disagrees with jaxvac.labels")


def sed_wavelength() -> np.ndarray:
    """Wavelengths of the photometric SED, Angstrom: 2,500 log-spaced points, 2,500-60,000 A."""
    return np.geomspace(2500.0, 60000.0, 2500)


def surface_flux(teff, logg, feh) -> np.ndarray:
    """Surface flux F_lambda (erg s^-1 cm^-2 A^-1) on sed_wavelength(): (n, 2500) float64."""
    teff, logg, feh = (np.atleast_1d(np.asarray(v, float)) for v in (teff, logg, feh))
    lam = sed_wavelength()
    bb = np.pi * spectra.planck_lambda(lam[None, :], teff[:, None])
    shape = spectra.blanketing(lam[None, :], teff[:, None], feh[:, None])
    afe = np.clip(-0.3 * feh, 0.0, 0.35)
    zero = np.zeros_like(teff)
    tau = spectra.render_tau(spectra.strengths(teff, logg, feh, afe, zero, zero), zero)
    x = (np.log10(lam) - LOG_LAMBDA0) / LOG_STEP
    inside = (x >= 0) & (x <= tau.shape[1] - 1)
    j = np.clip(np.floor(x).astype(int), 0, tau.shape[1] - 2)
    f = x - j
    t_lam = np.where(inside[None, :], tau[:, j] * (1 - f) + tau[:, j + 1] * f, 0.0)
    flux = bb * shape * np.exp(-t_lam)
    return flux * (np.trapezoid(bb, lam, axis=1) / np.trapezoid(flux, lam, axis=1))[:, None]


@functools.lru_cache(maxsize=1)
def filter_responses() -> np.ndarray:
    """The 14 filter curves (speclite's tables) on sed_wavelength(): (14, n_wave), 0 outside."""
    import speclite.filters

    lam = sed_wavelength()
    out = np.zeros((len(FILTERS), lam.size))
    for k, name in enumerate(FILTERS):
        f = speclite.filters.load_filter(name)
        out[k] = np.interp(lam, np.asarray(f.wavelength, float), np.asarray(f.response, float), left=0.0, right=0.0)
    return out


def ab_magnitudes(flux: np.ndarray) -> np.ndarray:
    """AB magnitudes (n, 14) of F_lambda (erg/s/cm2/A, (n, n_wave) on sed_wavelength()).

    Photon-counting synthetic photometry (as speclite does):
    m = -2.5 log10( int F_lambda R lambda dlambda / int (3631 Jy) c / lambda^2 R lambda dlambda ).
    """
    lam = sed_wavelength()
    resp = filter_responses()
    dl = np.zeros_like(lam)  # trapezoid-rule weights
    dl[1:] += 0.5 * np.diff(lam)
    dl[:-1] += 0.5 * np.diff(lam)
    w = resp * (lam * dl)[None, :]
    num = np.einsum("nk,bk->nb", np.asarray(flux, float), w, optimize=False)
    ref = (3.631e-20 * 2.99792458e18 / lam**2 * w).sum(axis=1)
    return -2.5 * np.log10(num / ref[None, :])


@functools.lru_cache(maxsize=1)
def _grid():
    """Vega-or-AB magnitudes of a 1 Rsun star at 10 pc on (GRID_TEFF, GRID_LOGG, GRID_FEH, 14)."""
    tt, gg, ff = np.meshgrid(GRID_TEFF, GRID_LOGG, GRID_FEH, indexing="ij")
    flux = surface_flux(tt.ravel(), gg.ravel(), ff.ravel()) * (R_SUN / TEN_PC) ** 2
    mags = ab_magnitudes(flux)
    vt, vg, vf, f0, l0 = VEGA
    vflux = surface_flux([vt], [vg], [vf])
    vflux *= f0 / np.interp(l0, sed_wavelength(), vflux[0])
    vega_ab = ab_magnitudes(vflux)[0]
    for k, ref in enumerate(VEGA_REFERENCE):
        if ref is not None:
            mags[:, k] += ref - vega_ab[k]
    return mags.reshape(tt.shape + (len(BANDS),))


def radius_rsun(logg, mass):
    """Stellar radius in Rsun from logg (cgs) and mass (Msun): R = sqrt(G M / g)."""
    return np.sqrt(G_CGS * np.asarray(mass, float) * M_SUN / 10 ** np.asarray(logg, float)) / R_SUN


def absolute_magnitudes(teff, logg, feh, mass) -> np.ndarray:
    """Absolute magnitudes (n, 14) in BANDS order from Teff (K), logg, [Fe/H] and mass (Msun).

    Trilinear interpolation in the (Teff, logg, [Fe/H]) grid of 1-Rsun magnitudes (inputs
    clipped to the grid: 3,000-12,000 K, logg 0-5, [Fe/H] -4..0.5), minus 5 log10(R / Rsun).
    """
    from scipy.interpolate import RegularGridInterpolator

    grid = _grid()
    pts = np.stack([np.clip(teff, GRID_TEFF[0], GRID_TEFF[-1]), np.clip(logg, GRID_LOGG[0], GRID_LOGG[-1]),
                    np.clip(feh, GRID_FEH[0], GRID_FEH[-1])], axis=-1)
    interp = RegularGridInterpolator((GRID_TEFF, GRID_LOGG, GRID_FEH), grid)
    m1 = interp(pts)
    return m1 - 5.0 * np.log10(radius_rsun(logg, mass))[:, None]


def bolometric_magnitude(teff, logg, mass):
    """M_bol = 4.74 - 2.5 log10(L / Lsun), L = 4 pi R^2 sigma Teff^4 (IAU 2015 B2)."""
    r = radius_rsun(logg, mass) * R_SUN
    lum = 4 * np.pi * r**2 * SIGMA_SB * np.asarray(teff, float) ** 4
    return 4.74 - 2.5 * np.log10(lum / 3.828e33)
