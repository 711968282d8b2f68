"""An independent float64 NumPy implementation of the DR8 normalisation recipe, for tests only.

It shares no code with ``kernels/`` or ``jaxvac/``: it reads the recipe from SPEC.md and
docs/normalisation.md and implements it the plain way (``np.interp``-style interpolation by hand,
``np.nanmedian`` over sliding windows, ``numpy.polynomial.chebyshev.chebfit`` per spectrum).
The rules it follows, stated once more:

* rest-frame pixel j is read at observed pixel j + log10(1 + rv/c) / 1e-4 by linear
  interpolation; it is bad if an input pixel with weight > 0 is bad or off the grid;
  variance (1-t)^2 var_i + t^2 var_{i+1}; rv that is not finite or |rv| > 4000 km/s means
  rv = 0;
* median of the good pixels among the 21 real pixels centred on each window pixel (the window
  widened by 10 pixels each side); mean of the two middle values for an even count; no good
  pixel -> no value (weight 0 in the fit);
* Chebyshev fit of order 6 on the window pixels mapped to [-1, 1], unit weights on smoothed
  pixels that have a value; a window with fewer good pixels than max(7, ceil(0.25 n)) is not
  fitted (all its pixels bad);
* normalised = resampled flux / continuum where the pixel is good and the continuum is > 0 and
  > 1% of the mean of the window's smoothed values.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

C_KMS = 299792.458
MAX_ABS_RV = 4000.0  # km/s: beyond it rv is treated as unknown (0)
LOG_STEP = 1e-4
WINDOWS = ((229, 1953), (3587, 3837))  # global-grid pixels of 3900-5800 and 8450-8950 A
MARGIN, WIDTH, ORDER, MIN_GOOD_FRACTION, CONTINUUM_FLOOR = 10, 21, 6, 0.25, 0.01


def resample(flux, ivar, good, rv, lo, hi):
    """Rest-frame pixels lo..hi-1 of each spectrum: float64 flux, var, good (B, hi - lo)."""
    flux = np.asarray(flux, np.float64)
    ivar = np.asarray(ivar, np.float64)
    usable = np.asarray(good, bool) & np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    npix = flux.shape[1]
    rv = np.asarray(rv, np.float64)
    beta = np.where(np.isfinite(rv) & (np.abs(rv) <= MAX_ABS_RV), rv / C_KMS, 0.0)
    out_f = np.zeros((len(rv), hi - lo))
    out_v = np.zeros((len(rv), hi - lo))
    out_g = np.zeros((len(rv), hi - lo), bool)
    for b in range(len(rv)):
        pos = np.arange(lo, hi) + np.log10(1.0 + beta[b]) / LOG_STEP
        i = np.floor(pos).astype(int)
        t = pos - i
        for k in range(hi - lo):
            left, right = i[k], i[k] + 1
            ok = 0 <= left < npix and usable[b, left]
            if t[k] > 0:
                ok = ok and 0 <= right < npix and usable[b, right]
            if not ok:
                continue
            f_r = flux[b, right] if t[k] > 0 else 0.0
            v_r = 1.0 / ivar[b, right] if t[k] > 0 else 0.0
            out_f[b, k] = (1 - t[k]) * flux[b, left] + t[k] * f_r
            out_v[b, k] = (1 - t[k]) ** 2 / ivar[b, left] + t[k] ** 2 * v_r
            out_g[b, k] = True
    return out_f, out_v, out_g


def masked_running_median(values, good, width=WIDTH):
    """'valid'-mode running median of the good values: float64 (B, N - width + 1), NaN if none."""
    v = np.where(good, np.asarray(values, np.float64), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(sliding_window_view(v, width, axis=1), axis=-1)


def normalize_reference(flux, ivar, good, rv):
    """Float64 (norm, norm_good, norm_ivar, window_fitted) on the 1974 DR8 pixels.

    window_fitted: bool (B, 2), False where the window had too few good pixels.
    """
    norms, goods, ivars, fitted_all = [], [], [], []
    for lo, hi in WINDOWS:
        n = hi - lo
        f, v, g = resample(flux, ivar, good, rv, lo - MARGIN, hi + MARGIN)
        smooth = masked_running_median(f, g)
        f_w, v_w, g_w = f[:, MARGIN:-MARGIN], v[:, MARGIN:-MARGIN], g[:, MARGIN:-MARGIN]
        x = np.linspace(-1.0, 1.0, n)
        norm = np.ones((len(f), n))
        norm_good = np.zeros((len(f), n), bool)
        norm_ivar = np.zeros((len(f), n))
        fitted = np.zeros(len(f), bool)
        need = max(ORDER + 1, math.ceil(MIN_GOOD_FRACTION * n))
        for b in range(len(f)):
            has = np.isfinite(smooth[b])
            if g_w[b].sum() < need:
                continue
            coef = np.polynomial.chebyshev.chebfit(x[has], smooth[b, has], ORDER)
            cont = np.polynomial.chebyshev.chebval(x, coef)
            floor = CONTINUUM_FLOOR * np.mean(smooth[b, has])
            ok = g_w[b] & (cont > floor) & (cont > 0)
            norm[b, ok] = f_w[b, ok] / cont[ok]
            norm_ivar[b, ok] = cont[ok] ** 2 / v_w[b, ok]
            norm_good[b] = ok
            fitted[b] = True
        norms.append(norm)
        goods.append(norm_good)
        ivars.append(norm_ivar)
        fitted_all.append(fitted)
    return (np.concatenate(norms, 1), np.concatenate(goods, 1), np.concatenate(ivars, 1),
            np.stack(fitted_all, 1))
