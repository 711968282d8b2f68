"""Synthetic LAMOST LRS stellar spectra whose every feature follows the labels.

The model is *parametric*, not a radiative-transfer synthesis (docs/simulator.md says what that
costs). A spectrum on the global grid (vacuum, heliocentric, log-linear, 3909 pixels) is

    F(lambda) = C(lambda) * exp(-tau(lambda)) * telluric(lambda)

* C: Planck(Teff) x smooth line blanketing(Teff, [Fe/H]) x interstellar reddening (CCM89,
  R_V = 3.1) x a smooth instrument response with a small random distortion x a flux scale.
* tau = sum_g a_g(labels) T_g(lambda / (1 + v/c)): a few dozen fixed *templates* T_g (the Balmer
  and Paschen series, Ca II H&K and the triplet, Mg b, Na D, Ca I 4227, Fe I blends, ionised-line
  blends, a forest of ~800 weak lines in four groups, and the molecular bands CN 3883/4215,
  CH G band, C2 Swan, MgH and TiO), each already convolved with the instrument profile
  (Gaussian, R = 1800, times the 1-pixel box). Strengths a_g are smooth functions of Teff, logg,
  [Fe/H], [alpha/M], [C/Fe] and [N/Fe] passed through a curve of growth,
  cog(s) = sqrt(1 + 2 s) - 1 (linear for weak lines, square-root for saturated ones).
* Pressure-broadened wings (Ca II, Mg b, Na D, Ca I 4227, Balmer Stark wings) are separate
  Lorentzian templates (Voigt after the instrument profile) whose strength grows with logg, so
  the wing-to-core ratio carries the gravity.
* The Doppler shift is applied exactly in log-lambda: templates are tabulated at 1/20-pixel phase
  steps and linearly interpolated between adjacent phases (error < 1e-3 of the line depth).

Noise: sigma_j = sqrt(F_j C_j) / SNR(lambda_j) plus a sky term at night-sky lines, where
SNR(lambda) interpolates (in log lambda) the header SNRU..SNRZ between their band centres, so the
continuum S/N near 4700 A is the header SNRG.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import expit

from jaxvac.constants import C_KMS, LOG_LAMBDA0, LOG_STEP, NPIX_GLOBAL, global_wavelength

RESOLUTION = 1800.0  # lambda / FWHM of the LAMOST LRS (Cui et al. 2012), constant here
PHASES = 20  # template sub-pixel phases: Doppler shifts resolved to 1/20 px (3.5 km/s)
MARGIN = 20  # pixels of rest-frame grid beyond each end: |rv| <= 1380 km/s
MAX_ABS_RV = 1000.0  # km/s, largest stellar |rv| the model accepts
SIGMA_LSF_PX = np.sqrt((1.0 / (RESOLUTION * np.log(10.0) * LOG_STEP) / 2.3548) ** 2 + 1.0 / 12.0)
BAND_CENTRES = {"u": 3750.0, "g": 4700.0, "r": 6200.0, "i": 7600.0, "z": 8800.0}  # Angstrom

H_PLANCK, K_BOLTZ, C_CGS = 6.62607015e-27, 1.380649e-16, 2.99792458e10  # cgs (CODATA, exact)


# ----------------------------------------------------------------------------------------------
# Line lists (vacuum Angstrom). Relative strengths are within a template.
BALMER = ((6564.61, 1.0), (4862.68, 0.85), (4341.68, 0.72), (4102.89, 0.62), (3971.20, 0.52),
          (3890.16, 0.45), (3836.47, 0.38), (3798.98, 0.32), (3771.70, 0.27), (3751.22, 0.23),
          (3735.43, 0.2), (3723.00, 0.17), (3713.03, 0.15))
PASCHEN = ((8504.8, 0.55), (8547.7, 0.6), (8600.8, 0.66), (8667.4, 0.73), (8752.9, 0.82),
           (8865.2, 0.92), (9017.4, 1.0))
CA_HK = ((3934.78, 1.0), (3969.59, 0.75))
CA_TRIPLET = ((8500.36, 0.6), (8544.44, 1.0), (8664.52, 0.85))
MG_B = ((5168.76, 0.75), (5174.12, 0.9), (5185.04, 1.0))
NA_D = ((5891.58, 1.0), (5897.56, 0.8))
CA_4227 = ((4227.92, 1.0),)
FE_STRONG = ((4046.96, 0.6), (4064.60, 0.45), (4072.92, 0.4), (4144.97, 0.45), (4251.0, 0.35),
             (4261.4, 0.5), (4272.9, 0.45), (4326.8, 0.5), (4384.8, 0.65), (4405.9, 0.5),
             (4416.0, 0.3), (4529.5, 0.35), (4669.0, 0.35), (4958.3, 0.3), (5016.5, 0.3),
             (5042.0, 0.3), (5082.7, 0.3), (5228.9, 0.35), (5271.5, 0.55), (5329.5, 0.4),
             (5336.0, 0.35), (5372.0, 0.45), (5398.7, 0.35), (5407.0, 0.35), (5431.0, 0.3),
             (5447.9, 0.4), (5456.9, 0.25), (5498.0, 0.25), (5507.0, 0.25), (5616.0, 0.25),
             (8516.4, 0.3), (8691.0, 0.35), (8826.6, 0.25))
ALPHA_LINES = ((3906.5, 0.5), (4535.5, 0.3), (4572.0, 0.3), (5529.9, 0.5), (5713.5, 0.3),
               (8809.2, 0.7), (8738.8, 0.25), (8925.0, 0.25))  # Si, Ti, Mg I, Ca I
ION_LINES = ((4078.86, 0.8), (4216.70, 0.6), (4555.28, 0.7), (4935.7, 0.5), (4925.3, 0.6),
             (5019.8, 0.65), (5170.5, 0.5), (4444.9, 0.4), (4550.0, 0.3), (5318.0, 0.3))
MG_II = ((4482.6, 1.0),)
HE_I = ((4472.7, 1.0), (4923.3, 0.5), (5017.1, 0.6), (5877.3, 0.9))
# Molecular bands: (head, far end, relative strength). Far end < head: degraded to the violet.
CN_BANDS = ((4216.0, 4125.0, 1.0), (3884.0, 3780.0, 1.2))
CH_BANDS = ((4315.0, 4270.0, 1.0),)
C2_BANDS = ((5166.0, 5080.0, 1.0), (4738.0, 4680.0, 0.8), (5636.0, 5560.0, 0.6))
MGH_BANDS = ((5213.0, 4950.0, 1.0), (4782.0, 4720.0, 0.4))
TIO_BANDS = ((4762.0, 4840.0, 0.5), (4956.0, 5040.0, 0.7), (5168.0, 5260.0, 0.9),
             (5449.0, 5560.0, 0.9), (5598.0, 5680.0, 0.6), (5848.0, 5960.0, 0.8),
             (6160.0, 6280.0, 0.9), (7055.0, 7200.0, 1.0), (7668.0, 7800.0, 0.6),
             (8434.0, 8520.0, 0.12), (8861.0, 8950.0, 0.1))
SKY_LINES = ((5578.9, 1.0), (5891.9, 0.4), (5897.9, 0.4), (6302.0, 0.5), (6365.5, 0.2),
             (7246.0, 0.3), (7316.0, 0.3), (7341.0, 0.3), (7750.0, 0.3), (7821.0, 0.3),
             (7913.0, 0.3), (7993.0, 0.4), (8344.6, 0.5), (8399.0, 0.5), (8430.0, 0.5),
             (8465.0, 0.5), (8505.0, 0.4), (8548.0, 0.4), (8762.0, 0.5), (8886.0, 0.6),
             (8920.0, 0.5), (8943.0, 0.5), (8988.0, 0.6), (9041.0, 0.5))
TELLURIC_BANDS = ((6869.0, 6920.0, 0.35), (7596.0, 7660.0, 0.9), (8130.0, 8350.0, 0.08),
                  (8950.0, 9100.0, 0.15), (7170.0, 7330.0, 0.08))

# Template names in a fixed order: the strength matrix columns.
TEMPLATES = ("balmer", "balmer_stark", "paschen", "cahk", "cahk_wing", "cat", "cat_wing",
             "mgb", "mgb_wing", "nad", "nad_wing", "ca4227", "ca4227_wing", "fe_strong",
             "alpha", "ion", "mg2", "hei", "forest_fe", "forest_alpha", "forest_ion",
             "forest_cool", "cn", "ch", "c2", "mgh", "tio")


def _x_of(lam):
    """Global-grid pixel coordinate of vacuum wavelength lam (Angstrom)."""
    return (np.log10(lam) - LOG_LAMBDA0) / LOG_STEP


def _px_per_angstrom(lam):
    return 1.0 / (lam * np.log(10.0) * LOG_STEP)


@functools.lru_cache(maxsize=1)
def template_bank() -> np.ndarray:
    """Templates at every phase: float32 (PHASES + 1, n_templates, NPIX_GLOBAL + 2 MARGIN).

    bank[k, g, m] = T_g(x = m - MARGIN - k / PHASES), the instrument-convolved optical-depth
    profile of template g at rest-frame pixel x (peak of the strongest line about 1).
    """
    m0 = -MARGIN - 1  # fine grid origin (pixel), one pixel of pad for the phases
    next_ = NPIX_GLOBAL + 2 * MARGIN
    nfine = (next_ + 2) * PHASES
    xf = m0 + np.arange(nfine) / PHASES
    lamf = 10.0 ** (LOG_LAMBDA0 + LOG_STEP * xf)
    fine = np.zeros((len(TEMPLATES), nfine))

    def put_lines(g, lines, gamma=None):
        row = fine[TEMPLATES.index(g)]
        for lam, s in lines:
            x = _x_of(lam)
            if gamma is None:
                i = int(round((x - m0) * PHASES))
                if 0 <= i < nfine:
                    row[i] += s
            else:  # Lorentzian wing, gamma in Angstrom, unit peak before the LSF
                gpx = gamma * _px_per_angstrom(lam)
                lo = max(0, int((x - 60 * gpx - m0) * PHASES))
                hi = min(nfine, int((x + 60 * gpx - m0) * PHASES) + 1)
                d = xf[lo:hi] - x
                row[lo:hi] += s * gpx**2 / (d**2 + gpx**2)

    def put_bands(g, bands):
        row = fine[TEMPLATES.index(g)]
        for head, end, s in bands:
            a, b = sorted((head, end))
            sel = (lamf >= a) & (lamf <= b)
            frac = (lamf[sel] - end) / (head - end)  # 0 at the far end, 1 at the head
            row[sel] += s * (0.25 + 0.75 * frac**1.5)

    put_lines("balmer", BALMER)
    for lam, s in BALMER:
        put_lines("balmer_stark", [(lam, s)], gamma=12.0 * (lam / 4862.68) ** 1.5)
    for lam, s in PASCHEN:
        put_lines("balmer_stark", [(lam, 0.25 * s)], gamma=5.0)
    put_lines("paschen", PASCHEN)
    put_lines("cahk", CA_HK)
    put_lines("cahk_wing", CA_HK, gamma=6.0)
    put_lines("cat", CA_TRIPLET)
    put_lines("cat_wing", CA_TRIPLET, gamma=3.0)
    put_lines("mgb", MG_B)
    put_lines("mgb_wing", MG_B, gamma=3.0)
    put_lines("nad", NA_D)
    put_lines("nad_wing", NA_D, gamma=2.5)
    put_lines("ca4227", CA_4227)
    put_lines("ca4227_wing", CA_4227, gamma=3.0)
    put_lines("fe_strong", FE_STRONG)
    put_lines("alpha", ALPHA_LINES)
    put_lines("ion", ION_LINES)
    put_lines("mg2", MG_II)
    put_lines("hei", HE_I)
    for name, lines in _forest().items():
        put_lines(name, lines)
    put_bands("cn", CN_BANDS)
    put_bands("ch", CH_BANDS)
    put_bands("c2", C2_BANDS)
    put_bands("mgh", MGH_BANDS)
    put_bands("tio", TIO_BANDS)

    fine = gaussian_filter1d(fine, SIGMA_LSF_PX * PHASES, axis=1, mode="constant", truncate=6.0)
    # Unit peak for line templates (the delta functions spread into a Gaussian of this peak).
    peak_delta = 1.0 / (np.sqrt(2 * np.pi) * SIGMA_LSF_PX * PHASES)
    for g in TEMPLATES:
        if g not in ("cn", "ch", "c2", "mgh", "tio") and not g.endswith("_wing") and g != "balmer_stark":
            fine[TEMPLATES.index(g)] /= peak_delta
    fine[np.abs(fine) < 1e-9] = 0.0  # far tails: denormals would slow every product 100-fold
    bank = np.empty((PHASES + 1, len(TEMPLATES), next_), np.float32)
    for k in range(PHASES + 1):
        idx = np.arange(next_) * PHASES + PHASES - k  # fine index of x = m - k/PHASES
        bank[k] = fine[:, idx]
    return bank


def _forest() -> dict[str, list[tuple[float, float]]]:
    """The weak-line forest: fixed random lines (seed 1, part of the model, not of a survey).

    Line density falls as lambda^-2.5 (blue spectra are crowded); strengths are log-uniform.
    """
    rng = np.random.default_rng(1)
    out = {}
    for name, n, smax in (("forest_fe", 500, 0.6), ("forest_alpha", 120, 0.5),
                          ("forest_ion", 90, 0.5), ("forest_cool", 300, 0.5)):
        u = rng.random(n)
        lo, hi = 3640.0 ** -1.5, 9100.0 ** -1.5
        lam = (lo + u * (hi - lo)) ** (-1 / 1.5)
        s = smax * 10 ** rng.uniform(-1.5, 0.0, n) * (lam / 4500.0) ** -1.5  # fewer strong red lines
        out[name] = list(zip(lam.tolist(), s.tolist()))
    return out


# ----------------------------------------------------------------------------------------------
def _sig(x):
    return expit(x)


def cog(s):
    """Curve of growth: central optical depth at LAMOST resolution from a linear strength s."""
    return np.sqrt(1.0 + 2.0 * np.maximum(s, 0.0)) - 1.0


def balmer_temperature(teff):
    """Relative Balmer strength vs Teff: n=2 population rising, ionisation above ~9,500 K.

    A log-normal in Teff peaking at 9,500 K (width 0.2 dex below, 0.13 dex above).
    """
    r = np.log10(np.asarray(teff, float) / 9500.0)
    w = np.where(r < 0, 0.2, 0.13)
    return np.exp(-((r / w) ** 2))


def strengths(teff, logg, feh, afe, cfe, nfe):
    """Template amplitudes: float64 (n, n_templates), columns in TEMPLATES order.

    Inputs are 1-D arrays (K, dex). Each amplitude is the central optical depth of the strongest
    line of its template. Abundance scalings: Fe-peak 10^[Fe/H]; alpha 10^([Fe/H]+[a/M]); CH and
    C2 10^([Fe/H]+[C/Fe]) (C2 as its square); CN 10^([Fe/H]+0.25[C/Fe]+0.85[N/Fe]).
    """
    t = np.asarray(teff, float)
    g = np.asarray(logg, float)
    fe = np.asarray(feh, float)
    al = fe + np.asarray(afe, float)
    c = fe + np.asarray(cfe, float)
    cn_ab = fe + 0.25 * np.asarray(cfe, float) + 0.85 * np.asarray(nfe, float)
    neutral = np.exp(-(t - 5000.0) / 1000.0)  # low-excitation neutral lines strengthen when cool
    ion = np.exp(-(((t - 6800.0) / 2500.0) ** 2))  # Fe II, Ti II, Sr II: peak in F stars
    press = 10 ** (0.3 * (g - 4.4))  # pressure (collisional) wings: dwarfs
    lum = 10 ** (-0.25 * (g - 4.4))  # ionised lines: giants
    cool = _sig(-(t - 4300.0) / 250.0)
    hot = _sig((t - 7000.0) / 500.0)
    bal = balmer_temperature(t)
    n = t.size
    a = np.zeros((n, len(TEMPLATES)))

    def put(name, val):
        a[:, TEMPLATES.index(name)] = val

    put("balmer", 1.2 * cog(1.5 * bal) * (1.0 + 0.15 * (g - 4.0) * hot))
    put("balmer_stark", 0.9 * bal * (0.15 + hot * 10 ** (0.35 * (g - 4.0))))
    put("paschen", 0.35 * cog(1.5 * bal * hot) * 10 ** (0.15 * (g - 4.0)))
    put("cahk", 0.8 * cog(8.0 * 10 ** (0.35 * al) * np.minimum(neutral, 4.0) ** 0.7 * _sig(-(t - 9500) / 900)))
    put("cahk_wing", 0.9 * cog(10 ** (0.6 * al) * np.minimum(neutral, 4.0) ** 0.5 * press) * _sig(-(t - 8500) / 800))
    cat_t = _sig(-(t - 7200.0) / 700.0) * (0.6 + 0.4 * np.exp(-(((t - 4800) / 1200) ** 2)))
    put("cat", 0.45 * cog(1.0 * 10 ** (0.35 * al) * cat_t * lum**0.6))
    put("cat_wing", 0.3 * cog(10 ** (0.4 * al) * cat_t * press**0.8))
    put("mgb", 0.55 * cog(1.4 * 10 ** (0.45 * al) * np.minimum(neutral, 3.0) ** 0.8))
    put("mgb_wing", 0.3 * cog(10 ** (0.5 * al) * np.minimum(neutral, 4.0) * press))
    put("nad", 0.8 * cog(1.5 * 10 ** (0.5 * fe) * np.minimum(neutral, 6.0) ** 1.3))
    put("nad_wing", 0.3 * cog(10 ** (0.7 * fe) * np.minimum(neutral, 6.0) * press))
    put("ca4227", 0.7 * cog(0.9 * 10 ** (0.5 * al) * np.minimum(neutral, 6.0) ** 1.6))
    put("ca4227_wing", 0.3 * cog(10 ** (0.7 * al) * np.minimum(neutral, 6.0) ** 1.5 * press))
    put("fe_strong", 1.0 * cog(1.5 * 10 ** (0.5 * fe) * np.minimum(neutral, 4.0) ** 0.8))
    put("alpha", 0.6 * cog(1.0 * 10 ** (0.6 * al) * np.minimum(neutral, 5.0) ** 0.8))
    put("ion", 0.5 * cog(1.2 * 10 ** (0.8 * fe) * ion * lum**1.5))
    put("mg2", 0.5 * cog(1.5 * 10 ** (0.8 * al) * np.exp(-(((t - 10000.0) / 3500.0) ** 2))))
    put("hei", 0.3 * _sig((t - 11500.0) / 700.0))
    put("forest_fe", 0.9 * cog(2.0 * 10 ** (0.9 * fe) * np.minimum(neutral, 1.6) ** 0.6))
    put("forest_alpha", 0.7 * cog(2.0 * 10 ** (0.9 * al) * np.minimum(neutral, 5.0) ** 0.6))
    put("forest_ion", 0.6 * cog(1.5 * 10 ** (0.9 * fe) * ion * lum))
    put("forest_cool", 0.3 * cog(1.0 * 10 ** (0.6 * fe) * cool))
    cn_t = _sig(-(t - 5100.0) / 350.0)
    put("cn", 0.35 * cog(1.5 * 10 ** (0.9 * cn_ab) * cn_t * lum**0.8))
    ch_t = _sig(-(t - 5900.0) / 400.0)
    put("ch", 0.6 * cog(1.5 * 10 ** (0.8 * c) * ch_t))
    put("c2", 0.3 * cog(0.5 * 10 ** (fe + 2.0 * (c - fe)) * _sig(-(t - 5200.0) / 300.0) * 10 ** (0.3 * fe)))
    put("mgh", 0.15 * cog(10 ** (0.6 * al) * _sig(-(t - 4700.0) / 250.0) * 10 ** (0.6 * (g - 4.4))))
    tio_t = np.log1p(np.exp(-(t - 4000.0) / 140.0))
    put("tio", 0.45 * cog(0.8 * tio_t * 10 ** (0.5 * al)))
    return a


# ----------------------------------------------------------------------------------------------
def _mm(a, b):
    """a @ b without BLAS: these products are tiny (k <= 27), where multithreaded OpenBLAS
    spends 50x more CPU spinning than computing, and a fixed summation order keeps the output
    bit-identical whatever the machine's thread settings."""
    return np.einsum("nk,km->nm", a, b, optimize=False)


def render_tau(a: np.ndarray, rv: np.ndarray) -> np.ndarray:
    """Optical depth on the observed global grid: float32 (n, NPIX_GLOBAL).

    a: (n, n_templates) strengths; rv: (n,) km/s, |rv| <= MAX_ABS_RV. The rest-frame profile is
    evaluated at x = j - delta, delta = log10(1 + rv / c) / LOG_STEP pixels (exact Doppler
    shift in log lambda), by linear interpolation between the two nearest template phases.
    """
    bank = template_bank()
    n = a.shape[0]
    delta = np.log10(1.0 + np.asarray(rv, float) / C_KMS) / LOG_STEP
    ishift = np.floor(delta).astype(np.int64)
    kreal = (delta - ishift) * PHASES
    k = np.minimum(np.floor(kreal).astype(np.int64), PHASES - 1)
    w = kreal - k
    rest = np.zeros((n, bank.shape[2]), np.float32)
    a32 = np.asarray(a, np.float32)
    w32 = w.astype(np.float32)[:, None]
    for kk in range(PHASES + 1):
        lo = np.nonzero(k == kk)[0]  # stars whose lower phase is kk
        hi = np.nonzero(k + 1 == kk)[0]  # stars whose upper phase is kk
        if lo.size:
            rest[lo] += _mm((1.0 - w32[lo]) * a32[lo], bank[kk])
        if hi.size:
            rest[hi] += _mm(w32[hi] * a32[hi], bank[kk])
    idx = np.arange(NPIX_GLOBAL)[None, :] + MARGIN - ishift[:, None]
    return np.take_along_axis(rest, idx, axis=1)


def planck_lambda(lam_angstrom, teff):
    """B_lambda(T) in erg s^-1 cm^-2 A^-1 sr^-1; lam (...,) or broadcastable with teff."""
    lam = np.asarray(lam_angstrom, float) * 1e-8
    x = H_PLANCK * C_CGS / (lam * K_BOLTZ * np.asarray(teff, float))
    return 2 * H_PLANCK * C_CGS**2 / lam**5 / np.expm1(np.minimum(x, 700.0)) * 1e-8


def blanketing(lam_angstrom, teff, feh):
    """Smooth line-blanketing transmission of the continuum (UV/blue metal-line haze), in (0, 1].

    exp(-b (lam / 4000 A)^-4), b = 0.12 10^(0.5 [Fe/H]) exp(-(Teff - 5800 K) / 1500 K), capped.
    """
    b = 0.12 * 10 ** (0.5 * np.asarray(feh, float)) * np.exp(-(np.asarray(teff, float) - 5800.0) / 1500.0)
    b = np.minimum(b, 1.5)
    return np.exp(-b * (np.asarray(lam_angstrom, float) / 4000.0) ** -4)


def ccm_extinction(lam_angstrom, r_v=3.1):
    """A_lambda / E(B-V) of Cardelli, Clayton & Mathis (1989), optical and near-IR branches."""
    x = 1e4 / np.asarray(lam_angstrom, float)  # inverse micron
    a = np.zeros_like(x)
    b = np.zeros_like(x)
    ir = x < 1.1
    a[ir] = 0.574 * x[ir] ** 1.61
    b[ir] = -0.527 * x[ir] ** 1.61
    op = ~ir
    y = x[op] - 1.82
    a[op] = (1 + 0.17699 * y - 0.50447 * y**2 - 0.02427 * y**3 + 0.72085 * y**4 + 0.01979 * y**5
             - 0.77530 * y**6 + 0.32999 * y**7)
    b[op] = (1.41338 * y + 2.28305 * y**2 + 1.07233 * y**3 - 5.38434 * y**4 - 0.62251 * y**5
             + 5.30260 * y**6 - 2.09002 * y**7)
    return r_v * (a + b / r_v)


@functools.lru_cache(maxsize=1)
def _fixed_curves():
    lam = global_wavelength()
    x = (lam - 6400.0) / 2800.0  # [-1, 1] across the grid
    # Mean relative response of a flux-calibrated LAMOST spectrum: mild blue and red roll-off.
    response = (1.0 - 0.35 * _sig(-(lam - 3900.0) / 60.0)) * (1.0 - 0.15 * _sig((lam - 8900.0) / 80.0))
    sky = np.zeros_like(lam)
    for l0, s in SKY_LINES:
        sky += s * np.exp(-0.5 * ((lam - l0) / (l0 / RESOLUTION / 2.3548)) ** 2)
    tell = np.zeros_like(lam)
    for lo, hi, s in TELLURIC_BANDS:
        tell += s * _sig((lam - lo) / 3.0) * _sig(-(lam - hi) / 10.0)
    ext = ccm_extinction(lam)
    legendre = np.stack([np.ones_like(x), x, 0.5 * (3 * x**2 - 1), 0.5 * (5 * x**3 - 3 * x)])
    return lam, response, sky, tell, ext, legendre


def continuum(teff, feh, rv, ebv, response_coeffs, dichroic_step) -> np.ndarray:
    """Unscaled continuum on the observed grid: float64 (n, NPIX_GLOBAL).

    Planck x blanketing evaluated at the rest wavelength, times 10^(-0.4 A_lambda) (CCM,
    R_V = 3.1) and the instrument response (mean curve x (1 + sum_k c_k P_k(x)) x a step of
    dichroic_step redward of 5,880 A where the blue and red arms are joined).
    """
    lam, response, _, _, ext, legendre = _fixed_curves()
    t = np.asarray(teff, float)[:, None]
    # Smooth in lambda: evaluate on every 16th pixel, interpolate linearly (error < 1e-5).
    coarse = np.unique(np.append(np.arange(0, lam.size, 16), lam.size - 1))
    rest = lam[coarse][None, :] / (1.0 + np.asarray(rv, float)[:, None] / C_KMS)
    cc = planck_lambda(rest, t) * blanketing(rest, t, np.asarray(feh, float)[:, None])
    j = np.minimum(np.searchsorted(coarse, np.arange(lam.size), side="right") - 1, coarse.size - 2)
    f = (np.arange(lam.size) - coarse[j]) / (coarse[j + 1] - coarse[j])
    c = cc[:, j] * (1.0 - f) + cc[:, j + 1] * f
    c = c / np.median(cc, axis=1, keepdims=True)
    c *= 10 ** (-0.4 * np.asarray(ebv, float)[:, None] * ext[None, :])
    resp = response[None, :] * (1.0 + _mm(np.asarray(response_coeffs, float), legendre[1:]))
    resp *= 1.0 + np.asarray(dichroic_step, float)[:, None] * _sig((lam[None, :] - 5880.0) / 8.0)
    return c * resp


def snr_curve(snr_bands: np.ndarray) -> np.ndarray:
    """S/N per pixel along the grid from the five band values: (n, 5) u,g,r,i,z -> (n, NPIX).

    Linear interpolation in log10 lambda between the band centres, constant beyond them.
    """
    lam = global_wavelength()
    centres = np.log10(np.array(list(BAND_CENTRES.values())))
    ll = np.log10(lam)
    j = np.clip(np.searchsorted(centres, ll) - 1, 0, len(centres) - 2)
    f = np.clip((ll - centres[j]) / (centres[j + 1] - centres[j]), 0.0, 1.0)
    s = np.asarray(snr_bands, float)
    return s[:, j] * (1.0 - f)[None, :] + s[:, j + 1] * f[None, :]


def observe(model, cont, snr_bands, sky_level, rng):
    """Add noise: returns (flux, sigma), float64 (n, NPIX_GLOBAL).

    sigma_j^2 = F_j C_j / SNR_j^2 (photon noise of the source, S/N fixed on the continuum)
              + (sky_level * sky_j * C_g / SNRG)^2 (night-sky lines: extra noise only).
    """
    _, _, sky, _, _, _ = _fixed_curves()
    snr = snr_curve(snr_bands)
    var = np.maximum(model, 0.0) * cont / snr**2
    cg = cont[:, np.argmin(np.abs(global_wavelength() - BAND_CENTRES["g"]))]
    var += (np.asarray(sky_level, float)[:, None] * sky[None, :] * (cg / snr_bands[:, 1])[:, None]) ** 2
    sigma = np.sqrt(np.maximum(var, 1e-30))
    return model + sigma * rng.standard_normal(model.shape), sigma


def telluric(strength) -> np.ndarray:
    """Telluric transmission in the observed frame: (n, NPIX_GLOBAL), O2 A/B bands and H2O."""
    _, _, _, tell, _, _ = _fixed_curves()
    return np.exp(-np.asarray(strength, float)[:, None] * tell[None, :])


def stellar_model(teff, logg, feh, afe, cfe, nfe, rv, ebv, response_coeffs, dichroic_step,
                  telluric_strength):
    """Noise-free stellar spectra and their continua: two float64 (n, NPIX_GLOBAL) arrays.

    Relative flux (continuum median ~1 before reddening and response).
    """
    rv = np.asarray(rv, float)
    if np.any(np.abs(rv) > MAX_ABS_RV):
        raise ValueError(f"stellar rv must satisfy |rv| <= {MAX_ABS_RV} km/s, got max |rv| = "
                         f"{np.abs(rv).max():.1f}; clip the population's velocities.")
    a = strengths(teff, logg, feh, afe, cfe, nfe)
    tau = render_tau(a, rv)
    cont = continuum(teff, feh, rv, ebv, response_coeffs, dichroic_step)
    model = cont * np.exp(-tau) * telluric(telluric_strength)
    return model, cont
