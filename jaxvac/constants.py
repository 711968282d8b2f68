"""Physical constants and the fixed numbers of the LAMOST LRS data and the DR8 VAC recipe.

Every number carries its unit and source. The recipe's tunable numbers (error-model
coefficients, network sizes, training settings, ...) live in ``configs/dr8.toml``; what is here
is fixed by the data format, by physics, or by the pre-processing the networks are trained on:
the numbers of ``jaxvac.preprocess.LAYOUT`` are here because a trained checkpoint and a packed
store are bound to them (the checkpoint records the whole Layout and a run with another one is
refused), so they are not per-run settings.
"""

import numpy as np

C_KMS = 299792.458  # km/s, speed of light (CODATA, exact)

# The global LAMOST LRS wavelength grid (SPEC.md "Inputs"): vacuum, heliocentric, log-linear,
# lambda_j = 10**(LOG_LAMBDA0 + LOG_STEP * j) Angstrom, j = 0 .. NPIX_GLOBAL - 1.
LOG_LAMBDA0 = 3.5682  # log10(Angstrom) of global pixel 0
LOG_STEP = 1e-4  # log10(Angstrom) per pixel (header COEFF1)
NPIX_GLOBAL = 3909  # pixels on the global grid (3638.3 .. 9099.1 Angstrom)

# Rest-frame windows used by the networks (SPEC.md "Pre-processing", step 1), vacuum Angstrom.
WINDOWS = ((3900.0, 5800.0), (8450.0, 8950.0))
VMP_WINDOW = (3900.0, 4400.0)  # the very-metal-poor network's input (SPEC.md "Networks")
MEDFILT_WIDTH = 21  # pixels, pseudo-continuum median filter (SPEC.md step 2)
POLY_ORDER = 6  # pseudo-continuum polynomial order per window (SPEC.md step 2)

# Thresholds of the normalisation that SPEC.md leaves open: jaxvac's choices, argued in
# docs/normalisation.md ("The rest-frame grid", "Continuum", "Normalise and standardise").
MAX_ABS_RV = 4000.0  # km/s; a larger |rv| is no star's: resampled at rv = 0 and flagged (jaxvac)
MIN_GOOD_FRACTION = 0.25  # a window with a smaller fraction of good pixels is not fitted (jaxvac)
# A float32 fit of a window cut to < 3/4 of its span (cond > 1e6) drifts > 1e-4 from the float64
# one; the pivot test flags such fits instead:
PIVOT_TOL = 2e-2  # Cholesky pivot / its diagonal entry below which a window fit is ill-conditioned (jaxvac)
CONTINUUM_FLOOR = 0.01  # a continuum below this fraction of its window's mean smoothed flux is bad (jaxvac)
# Inputs the networks never saw (issue 12; docs/normalisation.md "Inputs outside the training range"):
# a normalised pixel outside [NORM_FLUX_MIN, NORM_FLUX_MAX], or farther than MAX_ABS_STANDARDIZED
# training standard deviations from the training mean, is masked (filled as a bad pixel) before the
# networks. A star's flux / continuum lies in ~[0, 1.2] (emission cores of active M dwarfs reach ~3);
# on the simulated training set |x| reaches 7.2 at its 99.99th percentile (17.7 at most) and legitimate
# test pixels with snrg > 10 exceed 10 at a rate of 1.3e-5, while one zero pixel in the continuum is
# -10 to -30 (training std 0.03-0.1 there).
NORM_FLUX_MIN = -0.5  # relative flux (flux / continuum); below it no star's flux (jaxvac)
NORM_FLUX_MAX = 3.0  # relative flux; above it a cosmic ray, a hot pixel or a sky residual (jaxvac)
MAX_ABS_STANDARDIZED = 10.0  # training standard deviations, |norm - x_mean| / x_std (jaxvac)

SENTINEL = -9999.0  # failed-pipeline value in LAMOST headers and arrays


def global_wavelength() -> np.ndarray:
    """Wavelengths of the global grid, float64 vacuum Angstrom, shape (NPIX_GLOBAL,)."""
    return 10.0 ** (LOG_LAMBDA0 + LOG_STEP * np.arange(NPIX_GLOBAL))


def window_pixels(lo: float, hi: float) -> tuple[int, int]:
    """Global-grid pixel range [j0, j1) whose wavelengths lie inside [lo, hi] Angstrom.

    The rest-frame grid of jaxvac is made of global-grid pixels, so a spectrum at rv = 0 is
    resampled exactly (no interpolation). For WINDOWS this gives (229, 1953) -> 1724 pixels and
    (3587, 3837) -> 250 pixels: 1974 network inputs.
    """
    j0 = int(np.ceil((np.log10(lo) - LOG_LAMBDA0) / LOG_STEP - 1e-9))
    j1 = int(np.floor((np.log10(hi) - LOG_LAMBDA0) / LOG_STEP + 1e-9)) + 1
    return j0, j1
