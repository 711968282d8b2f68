"""Non-stellar spectra for the survey's GALAXY, QSO and Unknown classes.

Deliberately simple (they exist so that the pipeline meets them, not to be analysed):

* GALAXY: an old stellar population at redshift z (the simulator's K-giant model, [Fe/H] 0,
  velocity dispersion folded into the instrument profile) plus, for 60 % of them, nebular
  emission ([O II] 3727, H beta, [O III] 4960/5008, H alpha, [N II] 6550/6585, [S II]
  6718/6733) with random equivalent widths. 0.02 < z < 0.3.
* QSO: a power law F_lambda ~ lambda^-1.5 with broad (FWHM 3,000-6,000 km/s) Ly alpha, C IV,
  C III], Mg II, H beta, H alpha and narrow [O III], and a Ly alpha forest blueward of Ly alpha.
  0.3 < z < 3.5.
* Unknown: a featureless red continuum at very low S/N (what the LAMOST pipeline fails on).
"""

from __future__ import annotations

import numpy as np

from jaxvac.constants import C_KMS, global_wavelength
from jaxvac.simulate import spectra

GALAXY_EMISSION = ((3727.1, 1.0), (3729.9, 1.2), (4862.7, 1.0), (4960.3, 0.6), (5008.2, 1.8),
                   (6549.9, 0.35), (6564.6, 3.0), (6585.3, 1.1), (6718.3, 0.5), (6732.7, 0.4))
QSO_LINES = ((1215.7, 8.0, 1.0), (1549.1, 3.0, 1.0), (1908.7, 1.5, 1.0), (2798.8, 1.6, 1.0),
             (4862.7, 1.3, 1.0), (6564.6, 4.0, 1.0), (5008.2, 0.5, 0.15))  # (lambda, EW/100 A, width scale)


def _gauss(lam, centre, sigma):
    return np.exp(-0.5 * ((lam - centre) / sigma) ** 2)


def galaxy(z, rng):
    """Noise-free galaxy spectra and continua on the global grid: two (n, NPIX) float64."""
    n = z.size
    lam = global_wavelength()
    v = C_KMS * ((1 + z) ** 2 - 1) / ((1 + z) ** 2 + 1)  # relativistic velocity of redshift z
    teff = rng.uniform(4600.0, 5200.0, n)
    zero = np.zeros(n)
    rest = lam[None, :] / (1 + z[:, None])
    cont = spectra.planck_lambda(rest, teff[:, None]) * spectra.blanketing(rest, teff[:, None], 0.0)
    cont /= np.median(cont, axis=1, keepdims=True)
    # Absorption: the stellar model is limited to |v| <= MAX_ABS_RV, so lines are placed by hand.
    a = spectra.strengths(teff, np.full(n, 2.5), zero, zero + 0.1, zero, zero)
    tau = np.zeros((n, lam.size))
    for (l0, s), name in (((3934.78, 1.0), "cahk"), ((3969.59, 0.8), "cahk"), ((5175.0, 0.8), "mgb"),
                          ((5894.0, 0.6), "nad"), ((4305.0, 0.5), "ch"), ((4102.9, 0.3), "balmer")):
        amp = 0.5 * s * a[:, spectra.TEMPLATES.index(name)]
        sig = l0 * (1 + z) * 250.0 / C_KMS
        tau += amp[:, None] * _gauss(lam[None, :], l0 * (1 + z[:, None]), sig[:, None])
    model = cont * np.exp(-tau)
    emit = rng.random(n) < 0.6
    strength = rng.lognormal(np.log(8.0), 0.7, n) * emit  # EW scale, Angstrom
    for l0, s in GALAXY_EMISSION:
        centre = l0 * (1 + z)
        sig = np.sqrt((centre * 120.0 / C_KMS) ** 2 + (centre / spectra.RESOLUTION / 2.3548) ** 2)
        model += (strength * s / (np.sqrt(2 * np.pi) * sig))[:, None] * _gauss(lam[None, :], centre[:, None], sig[:, None]) * cont
    return model, cont, v


def qso(z, rng):
    """Noise-free QSO spectra and continua on the global grid: two (n, NPIX) float64."""
    n = z.size
    lam = global_wavelength()
    alpha = rng.normal(-1.5, 0.3, n)
    cont = (lam[None, :] / 5000.0) ** alpha[:, None]
    model = cont.copy()
    fwhm = rng.uniform(3000.0, 6000.0, n)
    for l0, ew, wscale in QSO_LINES:
        centre = l0 * (1 + z)
        sig = centre * fwhm * wscale / C_KMS / 2.3548
        sig = np.sqrt(sig**2 + (centre / spectra.RESOLUTION / 2.3548) ** 2)
        amp = 100.0 * ew * rng.lognormal(0.0, 0.3, n) / (np.sqrt(2 * np.pi) * sig)
        model += amp[:, None] * _gauss(lam[None, :], centre[:, None], sig[:, None]) * cont
    lya = 1215.67 * (1 + z)
    forest = lam[None, :] < lya[:, None]
    depth = np.clip(0.0025 * (1 + z) ** 3.7, 0, 3)
    model = np.where(forest, model * np.exp(-depth[:, None] * rng.uniform(0.3, 1.7, (n, lam.size))), model)
    v = C_KMS * ((1 + z) ** 2 - 1) / ((1 + z) ** 2 + 1)
    return model, cont, v


def unknown(n, rng):
    """Featureless red continua (the Unknown class): two (n, NPIX) float64 arrays."""
    lam = global_wavelength()
    t = rng.uniform(2500.0, 4000.0, n)
    cont = spectra.planck_lambda(lam[None, :], t[:, None])
    cont /= np.median(cont, axis=1, keepdims=True)
    return cont.copy(), cont
