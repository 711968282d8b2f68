"""Fit the random-error coefficients a, b, c from repeat observations (``jaxvac calibrate-errors``).

The maths only, on arrays: reading the catalogue and writing the tables is
:mod:`jaxvac.train.calibrate_job`, the figure :func:`jaxvac.display.plots.plot_calibration`.

The recipe of Wang et al. (2022, Sect. 4; SPEC.md "Uncertainties"), with the choices it leaves
open written down:

1. Rows without a star id (empty string, negative integer such as the -1 / -9999 sentinels,
   NaN, masked) or without a usable snrg
   (not finite or <= 0) are dropped and counted.
2. Pairs: the spectra of one star are sorted by snrg and neighbours are paired greedily from the
   lowest SNR up, each spectrum in at most one pair (pairs are independent: a star observed ten
   times does not give 45 correlated differences). Two spectra pair only if
   ``|snr1 - snr2| / ((snr1 + snr2) / 2) < pair_snr_tolerance`` (0.10). A pair's SNR is that mean.
3. Residual of label k in a pair: ``(x1 - x2) / sqrt(2) / scale_k``, the error of one spectrum
   when both have the same error (scale_k = 100 for Teff, as the paper). Pairs where either value
   is NaN are left out of that label only.
4. Bins of pair SNR (``snr_bin_edges``); bins with fewer than ``min_pairs_per_bin`` pairs are not
   used. Per bin: the median pair SNR and the scatter of the residuals, either the sample standard
   deviation (``scatter = "std"``, the paper; error s / sqrt(2 (n - 1))) or 1.4826 * MAD about the
   median (``"mad"``, robust; error s * sqrt(1.3605 / n), from the 37% efficiency of the MAD).
5. Fit ``sigma(snr) = a + c / snr**b``, a, b, c >= 0 (b <= 4), by weighted least squares
   (``fit_power_law``). Weights use the per-bin errors scaled to the fitted curve (a second pass),
   so a bin that scatters low by chance does not get a larger weight.

The error model of a checkpoint (``jaxvac train``; docs/errors.md "The error model of a
checkpoint") uses the same binning and fit on held-out residuals (prediction - truth of stars the
networks were not trained on) instead of pair differences: :func:`heldout_error_rows` bins them
with :func:`bin_scatter` and fits the total ``sqrt((a + c / snr**b)**2 + sigma_m**2)`` with
:func:`fit_total_error`, whose random part is :func:`fit_power_law`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import chi2 as _chi2

from jaxvac.run.uncertainties import ErrorCoefficients, ErrorModel, ErrorsConfig, value_bin

__all__ = [
    "PowerLawFit",
    "BinStats",
    "LabelCalibration",
    "Calibration",
    "fit_power_law",
    "pair_repeats",
    "bin_scatter",
    "calibrate",
    "B_MAX",
    "TotalErrorFit",
    "fit_total_error",
    "heldout_error_rows",
]

B_MAX = 4.0  # upper bound of the exponent b; Table 2 has 0.99..1.23
_MAD_TO_SIGMA = 1.482602218505602  # 1 / Phi^-1(3/4), Gaussian
_MAD_VAR = 1.3605  # Var(1.4826 MAD) * n / sigma^2 for Gaussian data (1 / (2 * 0.3675))


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """sigma(snr) = a + c / snr**b. cov: (3, 3) covariance of (a, b, c) from the inverse
    Gauss-Newton matrix with the given absolute errors. chi2 over dof = M - 3 points."""

    a: float
    b: float
    c: float
    cov: np.ndarray
    chi2: float
    dof: int

    @property
    def errors(self) -> tuple[float, float, float]:
        d = np.sqrt(np.clip(np.diag(self.cov), 0, None))
        return float(d[0]), float(d[1]), float(d[2])

    def __call__(self, snr) -> np.ndarray:
        return self.a + self.c / np.asarray(snr, dtype=np.float64) ** self.b


def _nnls_ac(x, y, w):
    """min over a, c >= 0 of sum w (y - a - c x)**2 for fixed x = snr**-b; exact (2 unknowns).

    x: (M,) or (G, M), one row per b of a grid; y, w: (M,). Returns (a, c, chi2), scalars or (G,)
    arrays. Candidates in order: the unconstrained solution (where a, c >= 0), c = 0, a = 0; the
    first with the least chi2 wins."""
    x2 = np.atleast_2d(x)
    sw, sy = w.sum(), (w * y).sum()
    sx, sxx, sxy = (w * x2).sum(1), (w * x2 * x2).sum(1), (w * x2 * y).sum(1)
    det = sw * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        a0, c0 = (sxx * sy - sx * sxy) / det, (sw * sxy - sx * sy) / det
        ok0 = (det > 1e-12 * sw * sxx) & (a0 >= 0) & (c0 >= 0)
        cands = [(np.where(ok0, a0, 0.0), np.where(ok0, c0, 0.0)),
                 (np.full_like(sx, max(sy / sw, 0.0)), np.zeros_like(sx)),  # c = 0
                 (np.zeros_like(sx), np.maximum(sxy / sxx, 0.0))]  # a = 0
    chi = np.stack([(w * (y - a[:, None] - c[:, None] * x2) ** 2).sum(1) for a, c in cands])  # (3, G)
    chi[0, ~ok0] = np.inf
    k = np.argmin(chi, axis=0)
    g = np.arange(x2.shape[0])
    a = np.stack([c_[0] for c_ in cands])[k, g]
    c = np.stack([c_[1] for c_ in cands])[k, g]
    best = chi[k, g]
    if np.ndim(x) == 1:
        return float(a[0]), float(c[0]), float(best[0])
    return a, c, best


def fit_power_law(snr, sigma, sigma_err, b_min: float = 0.0) -> PowerLawFit:
    """Weighted least squares of ``sigma = a + c / snr**b`` with a, c >= 0 and b_min <= b <= B_MAX.

    snr, sigma, sigma_err: (M,) with M >= 3, sigma_err > 0. Variable projection: for a fixed b
    the model is linear in (a, c) and solved exactly under the bounds; chi2(b) is scanned on a
    grid of 0.01 and refined by bounded Brent, so no starting values are needed. b_min < 0 lets
    the curve rise with snr (held-out residuals of a label whose bright stars are harder).
    """
    snr, y, e = (np.asarray(v, dtype=np.float64) for v in (snr, sigma, sigma_err))
    if not (snr.ndim == 1 and snr.shape == y.shape == e.shape and snr.size >= 3):
        raise ValueError(f"fit_power_law needs three (M,) arrays with M >= 3, got {snr.shape}, {y.shape}, {e.shape}.")
    if not (np.all(np.isfinite(snr) & (snr > 0)) and np.all(np.isfinite(y)) and np.all(np.isfinite(e) & (e > 0))):
        raise ValueError("fit_power_law needs finite snr > 0, finite sigma and finite sigma_err > 0; drop bad points first.")
    w = 1.0 / e**2
    lsnr = np.log(snr)

    def profile(b):
        return _nnls_ac(np.exp(-b * lsnr), y, w)[2]

    grid = np.linspace(b_min, B_MAX, int(round((B_MAX - b_min) * 100)) + 1)
    chis = _nnls_ac(np.exp(-grid[:, None] * lsnr[None, :]), y, w)[2]  # the whole grid at once
    k = int(np.argmin(chis))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    res = minimize_scalar(profile, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
    b = float(res.x) if res.fun <= chis[k] else float(grid[k])
    x = np.exp(-b * lsnr)
    a, c, chi2 = _nnls_ac(x, y, w)
    jac = np.stack([np.ones_like(x), -c * lsnr * x, x], axis=1)  # d/da, d/db, d/dc
    cov = np.linalg.pinv(jac.T @ (w[:, None] * jac))
    return PowerLawFit(a=float(a), b=b, c=float(c), cov=cov, chi2=float(chi2), dof=int(snr.size - 3))


def pair_repeats(star_id, snrg, tolerance: float = 0.10) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint pairs of spectra of one star with similar SNR (module docstring, step 2).

    star_id: (N,) any sortable ids; snrg: (N,) finite > 0 (filter first). Returns (i, j), (P,)
    row indices with snrg[i] <= snrg[j].
    """
    sid = np.asarray(star_id)
    snr = np.asarray(snrg, dtype=np.float64)
    if sid.shape != snr.shape or snr.ndim != 1:
        raise ValueError(f"pair_repeats needs star_id and snrg of one shape (N,), got {sid.shape} and {snr.shape}.")
    if snr.size < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, code = np.unique(sid, return_inverse=True)
    order = np.lexsort((snr, code.reshape(-1)))
    c, s = code.reshape(-1)[order], snr[order]
    link = (c[1:] == c[:-1]) & (np.abs(s[1:] - s[:-1]) < tolerance * 0.5 * (s[1:] + s[:-1]))
    # Greedy from the low-SNR end: in a run of consecutive links take the 1st, 3rd, 5th, ...
    idx = np.arange(link.size)
    run_start = np.maximum.accumulate(np.where(~link, idx + 1, 0))
    take = link & ((idx - run_start) % 2 == 0)
    k = np.flatnonzero(take)
    return order[k], order[k + 1]


@dataclasses.dataclass(frozen=True)
class BinStats:
    """Per-SNR-bin scatter of one label's pair residuals, in the label's unit (not divided by
    scale). Arrays (B,) over the bins that have at least min_pairs_per_bin pairs."""

    lo: np.ndarray
    hi: np.ndarray
    snr: np.ndarray  # median pair SNR in the bin
    n: np.ndarray
    scatter: np.ndarray
    scatter_err: np.ndarray


def bin_scatter(pair_snr, resid, edges: Sequence[float], min_pairs: int = 20, method: str = "std") -> BinStats:
    """Scatter of ``resid`` (P,) in bins of ``pair_snr`` (P,) (module docstring, step 4)."""
    pair_snr, resid = np.asarray(pair_snr, np.float64), np.asarray(resid, np.float64)
    edges = np.asarray(edges, np.float64)
    if method not in ("std", "mad"):
        raise ValueError(f"bin_scatter method must be 'std' or 'mad', got {method!r}.")
    which = np.searchsorted(edges, pair_snr, side="right") - 1
    rows = []
    for k in range(edges.size - 1):
        r = resid[which == k]
        if r.size < max(min_pairs, 2):
            continue
        if method == "std":
            s = float(np.std(r, ddof=1))
            se = s / math.sqrt(2.0 * (r.size - 1))
        else:
            s = _MAD_TO_SIGMA * float(np.median(np.abs(r - np.median(r))))
            se = s * math.sqrt(_MAD_VAR / r.size)
        rows.append((edges[k], edges[k + 1], float(np.median(pair_snr[which == k])), r.size, s, se))
    cols = list(zip(*rows)) if rows else [()] * 6
    lo, hi, snr, n, s, se = (np.asarray(c, dtype=np.int64 if i == 3 else np.float64) for i, c in enumerate(cols))
    return BinStats(lo=lo, hi=hi, snr=snr, n=n, scatter=s, scatter_err=se)


@dataclasses.dataclass(frozen=True)
class LabelCalibration:
    """The fitted row of one label: sigma_r = scale * (a + c / snrg**b), as Table 2.

    status: "ok", or why no fit was made (then a, b, c are NaN). fit: None unless ok.
    """

    name: str
    scale: float
    n_pairs: int
    bins: BinStats
    status: str
    fit: PowerLawFit | None = None

    @property
    def abc(self) -> tuple[float, float, float]:
        return (self.fit.a, self.fit.b, self.fit.c) if self.fit else (math.nan,) * 3


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Result of ``calibrate``. counts: rows read, rows dropped by reason, pairs made."""

    labels: tuple[LabelCalibration, ...]
    counts: dict[str, int]
    settings: ErrorsConfig

    def label(self, name: str) -> LabelCalibration:
        for lc in self.labels:
            if lc.name == name:
                return lc
        raise KeyError(f"No calibration for {name!r}; calibrated labels are {[l.name for l in self.labels]}.")


def _usable_ids(star_id) -> np.ndarray:
    """True where a star id is present: not masked, not empty/blank, not NaN, not negative."""
    mask = np.ma.getmaskarray(star_id)
    ids = np.ma.getdata(star_id)
    if ids.dtype.kind in "US":
        ok = np.char.strip(ids.astype(str)) != ""
    elif ids.dtype.kind in "iu":
        ok = ids >= 0
    elif ids.dtype.kind == "f":
        ok = np.isfinite(ids) & (ids >= 0)
    elif ids.dtype.kind == "O":
        ok = np.array([v is not None and str(v).strip() not in ("", "nan") for v in ids], dtype=bool)
    else:
        raise ValueError(f"Star ids must be integers or strings, got dtype {ids.dtype}.")
    return ok & ~mask


def calibrate(
    star_id,
    snrg,
    values: Mapping[str, np.ndarray],
    settings: ErrorsConfig | None = None,
    scales: Mapping[str, float] | ErrorModel | None = None,
) -> Calibration:
    """Fit a, b, c of every label in ``values`` from repeat observations (module docstring).

    star_id: (N,) ints or strings (one per spectrum); snrg: (N,); values: label name -> (N,)
    estimates (NaN = none). settings: the [errors] table (default: ErrorsConfig defaults).
    scales: label -> scale (or an ErrorModel whose rows give them); default 100 for
    Teff_PASTEL, 1 otherwise. Never raises on bad rows: they are counted in ``counts``.
    """
    settings = ErrorsConfig() if settings is None else settings
    if isinstance(scales, ErrorModel):
        scales = {r.name: r.scale for r in scales.rows}
    scales = {"Teff_PASTEL": 100.0} if scales is None else dict(scales)
    snr = np.ma.filled(np.ma.asarray(snrg, dtype=np.float64), np.nan)
    n = snr.shape[0]
    ok_id = _usable_ids(star_id)
    ok_snr = np.isfinite(snr) & (snr > 0)
    keep = np.flatnonzero(ok_id & ok_snr)
    ids = np.ma.getdata(star_id)[keep]
    i, j = pair_repeats(ids, snr[keep], settings.pair_snr_tolerance)
    i, j = keep[i], keep[j]
    _, per_star = np.unique(ids, return_counts=True)
    pair_snr = 0.5 * (snr[i] + snr[j])
    edges = np.asarray(settings.snr_bin_edges, np.float64)
    in_bins = (pair_snr >= edges[0]) & (pair_snr < edges[-1])
    counts = {
        "rows": int(n),
        "dropped: no star id": int(np.sum(~ok_id)),
        "dropped: snrg not finite or <= 0": int(np.sum(ok_id & ~ok_snr)),
        "stars with >= 2 usable spectra": int(np.sum(per_star >= 2)),
        "unpaired spectra of repeated stars": int(np.sum(per_star[per_star >= 2]) - 2 * i.size),
        "pairs": int(i.size),
        f"pairs outside snrg {edges[0]:g}..{edges[-1]:g}": int(np.sum(~in_bins)),
    }
    i, j, pair_snr = i[in_bins], j[in_bins], pair_snr[in_bins]
    out = []
    for name, col in values.items():
        x = np.ma.filled(np.ma.asarray(col, dtype=np.float64), np.nan)
        if x.shape != snr.shape:
            raise ValueError(f"Label {name!r} has shape {x.shape}, snrg has {snr.shape}; every column needs one value per spectrum.")
        scale = float(scales.get(name, 1.0))
        good = np.isfinite(x[i]) & np.isfinite(x[j])
        resid = (x[j][good] - x[i][good]) / math.sqrt(2.0)
        bins = bin_scatter(pair_snr[good], resid, edges, settings.min_pairs_per_bin, settings.scatter)
        if bins.n.size < 3:
            status = (
                f"only {bins.n.size} SNR bin(s) with >= {settings.min_pairs_per_bin} pairs "
                f"({int(good.sum())} pairs); 3 are needed to fit a, b, c"
            )
            out.append(LabelCalibration(name, scale, int(good.sum()), bins, status))
            continue
        y, e = bins.scatter / scale, bins.scatter_err / scale
        if np.any(e <= 0):
            status = "a bin has zero scatter (identical values in every pair); nothing to fit"
            out.append(LabelCalibration(name, scale, int(good.sum()), bins, status))
            continue
        fit = fit_power_law(bins.snr, y, e)
        rel = e / y
        fit = fit_power_law(bins.snr, y, np.maximum(fit(bins.snr), 1e-300) * rel)  # model-based weights
        out.append(LabelCalibration(name, scale, int(good.sum()), bins, "ok", fit))
    return Calibration(labels=tuple(out), counts=counts, settings=settings)


# ----------------------------------------------------------------------------------------------
# Held-out residuals: the error model of a checkpoint (jaxvac train) and its cross-check.


@dataclasses.dataclass(frozen=True)
class TotalErrorFit:
    """sigma(snr) = sqrt(power(snr)**2 + sigma_m**2), power = a + c / snr**b (a PowerLawFit).
    chi2 of the total over dof = M - 4 points (M - 3 when sigma_m was fixed at 0)."""

    power: PowerLawFit
    sigma_m: float
    chi2: float
    dof: int

    def __call__(self, snr) -> np.ndarray:
        return np.hypot(self.power(snr), self.sigma_m)


def fit_total_error(snr, sigma, sigma_err, n_grid: int = 25, b_min: float = 0.0) -> TotalErrorFit:
    """Weighted least squares of ``sigma = sqrt((a + c / snr**b)**2 + sigma_m**2)``.

    snr, sigma, sigma_err: (M,), M >= 3, as :func:`fit_power_law`. sigma_m is profiled: for each
    of ``n_grid`` values f * min(sigma), f = 0 .. 0.98, the random part sqrt(sigma**2 - sigma_m**2)
    (errors sigma * sigma_err / that) is fitted by :func:`fit_power_law` and the chi2 of the total
    against ``sigma`` computed; the smallest chi2 wins (f = 0 on ties, i.e. no method floor beyond
    a). With M = 3 points sigma_m = 0 (three points fix a, b, c only). A floor ``a`` and
    ``sigma_m`` are nearly degenerate, so read the pair together: the total is what is fitted.
    """
    snr, y, e = (np.asarray(v, dtype=np.float64) for v in (snr, sigma, sigma_err))
    base = fit_power_law(snr, y, e, b_min)  # validates the inputs; sigma_m = 0
    best = TotalErrorFit(base, 0.0, base.chi2, base.dof)
    if snr.size < 4:
        return best
    best = dataclasses.replace(best, dof=int(snr.size - 4))
    for f in np.linspace(0.0, 0.98, n_grid)[1:]:
        sm = f * float(y.min())
        r = np.sqrt(y**2 - sm**2)
        fit = fit_power_law(snr, r, e * y / r, b_min)
        chi2 = float((((np.hypot(fit(snr), sm) - y) / e) ** 2).sum())
        if chi2 < best.chi2:
            best = TotalErrorFit(fit, sm, chi2, int(snr.size - 4))
    return best


def heldout_error_rows(snrg, residuals: Mapping[str, np.ndarray], settings: ErrorsConfig | None = None,
                       values: Mapping[str, np.ndarray] | None = None, weights=None,
                       value_labels: Mapping[str, str] | None = None,
                       values2: Mapping[str, np.ndarray] | None = None,
                       value2_labels: Mapping[str, str] | None = None) -> dict[str, dict]:
    """Error-model rows of every label from held-out residuals (prediction - truth).

    snrg: (N,); residuals: label -> (N,) in the label's unit, NaN where a star has no truth or no
    prediction; values: label -> (N,) the predictions themselves (optional: the value factors).
    Per label, the stars with a residual and snrg >= ``settings.snr_bin_edges[0]`` (``jaxvac run``
    skips the others) give the SNR curve (:func:`_snr_row`). With ``values`` and
    ``settings.heldout_value_bins`` = M >= 2 (and >= M * ``settings.min_pairs_per_bin`` stars),
    the error is modelled as curve(snrg) * g_j, g_j one factor per bin j of M equal-count bins
    of the prediction: alternately, g_j = rms of residual / curve over bin j (normalised to rms 1
    over all stars) and the curve refitted to residual / g, three rounds. Below and above
    hi = ``settings.heldout_renoise[1]`` (the range of the re-noised copies) the factors are
    fitted apart (:func:`_value_table`), each range normalised to rms 1 over its stars, when both
    hold M * min_pairs_per_bin rows: at low snrg a giant's spectrum can pass for a dwarf's, so the
    kinds of star mix in the bins otherwise than above. The rows get value_edges (M - 1) and
    value_factors (M; or two lists of M and value_snr_edges [hi]); value_labels: label -> the
    label whose estimate ``values[label]`` is, where that is not the label's own (recorded as
    value_label: ``jaxvac run`` bins that label's estimate). values2: label -> (N,) the estimate of
    value2_labels[label] (with value factors only): second factors h_i over bins of it cut at the
    quantiles ``settings.heldout_value2_quantiles`` (:func:`_quantile_edges`), fitted in the same
    rounds, g_j of residual / (curve x h), h_i = rms of residual / (curve x g) over bin i
    (normalised to rms 1 over the rows with an estimate), the curve of residual / (g x h): the
    magnitudes' error follows the luminosity class (g) and the metallicity (h) at once; the row
    gets value2_label, value2_edges, value2_factors. With ``settings.heldout_snr_factors``,
    the scatter of residual / (curve * g) in each snrg bin of the curve's fit (:func:`_snr_factors`)
    gives snr_knots and snr_factors: where the curve's monotone form cannot follow the residuals
    (an error that falls with snrg, then rises as the mix of stars changes), the factors do. They
    are dropped when they do not differ from 1 beyond chance (:func:`_snr_factors_needed`,
    ``settings.heldout_snr_factors_p``): factors of a few stars per bin would add their own noise.
    Last, :func:`_err_uncertainty` says how well the stars pin the finished model down in each
    of those snrg bins (err_snrg, err_rel, err_n); weights: (N,) each row's share of a star in
    err_n (1 by default; a re-noised copy 1 / copies), used nowhere else.

    Returns {label: {a, b, c, sigma_m, scale (1), n, status[, snr_max][, value_edges,
    value_factors][, snr_knots, snr_factors][, err_snrg, err_rel, err_n]}} (JSON-able): the rows
    of :meth:`jaxvac.run.uncertainties.ErrorModel.from_rows` (which ignores n, status and the
    err_ lists: they describe the fit, not Err); no row for a label with fewer than 2 residuals
    (the caller keeps the config's).
    """
    settings = ErrorsConfig() if settings is None else settings
    snr = np.asarray(snrg, np.float64)
    wts = np.ones(snr.shape) if weights is None else np.asarray(weights, np.float64)
    if wts.shape != snr.shape:
        raise ValueError(f"weights have shape {wts.shape}, snrg has {snr.shape}; one weight per star is needed.")
    lowest = float(settings.snr_bin_edges[0])
    m_bins = int(settings.heldout_value_bins)
    out: dict[str, dict] = {}
    for name, res in residuals.items():
        r = np.asarray(res, np.float64)
        if r.shape != snr.shape:
            raise ValueError(f"residuals of {name!r} have shape {r.shape}, snrg has {snr.shape}; one value per star is needed.")
        ok = np.isfinite(r) & np.isfinite(snr) & (snr >= lowest)
        v = None if values is None or name not in values else np.asarray(values[name], np.float64)
        if v is not None:
            ok &= np.isfinite(v)
        n = int(ok.sum())
        if n < 2:
            continue
        s_ok, r_ok = snr[ok], r[ok]
        row = _snr_row(s_ok, r_ok, settings)
        if v is not None and m_bins >= 2 and n >= m_bins * int(settings.min_pairs_per_bin):
            v_ok = v[ok]
            edges = np.unique(np.quantile(v_ok, np.linspace(0.0, 1.0, m_bins + 1))[1:-1])
            j = value_bin(edges, v_ok)
            hi = float(settings.heldout_renoise[1])
            above = (s_ok >= hi).astype(int)
            v2 = np.full(n, np.nan) if values2 is None or name not in values2 else np.asarray(values2[name], np.float64)[ok]
            has2 = np.isfinite(v2)
            edges2 = _quantile_edges(v2[has2], settings.heldout_value2_quantiles, int(settings.min_pairs_per_bin))
            has2 &= edges2.size > 0
            i2 = value_bin(edges2, v2)
            h, h_of = np.ones(edges2.size + 1), np.ones(n)  # the second factors, and each row's
            for _ in range(3):
                g = _value_table(r_ok / (_row_curve(row, s_ok) * h_of), j, above, edges.size + 1,
                                 m_bins * int(settings.min_pairs_per_bin))
                if has2.any():
                    h = _rms_factors((r_ok / (_row_curve(row, s_ok) * g[above, j]))[has2], i2[has2], edges2.size + 1)
                    h_of = np.where(has2, h[i2], 1.0)
                row = _snr_row(s_ok, r_ok / (g[above, j] * h_of), settings)
            of = (value_labels or {}).get(name, name)
            apart = not np.array_equal(g[0], g[1])
            row |= {"value_edges": [float(e) for e in edges],
                    "value_factors": [[float(x) for x in f] for f in g] if apart else [float(x) for x in g[0]],
                    "status": f"{row['status']}; x value factors over {edges.size + 1} bins of "
                              + ("the estimate" if of == name else f"the estimate of {of}")
                              + (f", below and above snrg {hi:g}" if apart else "")}
            if apart:
                row["value_snr_edges"] = [hi]
            if of != name:
                row["value_label"] = of
            if has2.any():
                by = (value2_labels or {})[name]
                row |= {"value2_label": by, "value2_edges": [float(e) for e in edges2],
                        "value2_factors": [float(x) for x in h],
                        "status": f"{row['status']}; x second factors over {edges2.size + 1} bins of the estimate of {by}"}
            r_ok = r_ok / (g[above, j] * h_of)
        z = r_ok / _row_curve(row, s_ok)  # residual / (curve x g): what the SNR factors and err_rel read
        sf = _snr_factors(s_ok, z, settings) if settings.heldout_snr_factors else {}
        known = _err_uncertainty(s_ok, z, wts[ok], settings)
        if sf:
            chi2, k, needed = _snr_factors_needed(known, sf, settings)
            if needed:
                row |= sf | {"status": f"{row['status']}; x SNR factors at {len(sf['snr_knots'])} snrg"}
                z = z / ErrorCoefficients("row", 0.0, 0.0, 0.0, 0.0, **{k: tuple(v) for k, v in sf.items()}).snr_factor(s_ok)
                known = _err_uncertainty(s_ok, z, wts[ok], settings)  # of the finished model
            else:
                row["status"] += f"; no SNR factors (within chance of 1: chi2 {chi2:.1f} / {k})"
        row |= known
        out[name] = {k_: (float(x) if not isinstance(x, (str, list)) else x) for k_, x in row.items()} \
            | {"scale": 1.0, "n": n}
    return out


def _row_curve(row: Mapping, snr: np.ndarray) -> np.ndarray:
    """The total error of a row {a, b, c, sigma_m[, snr_max]} at snr (N,): ErrorModel.sigma."""
    coef = ErrorCoefficients("row", row["a"], row["b"], row["c"], row["sigma_m"], snr_max=row.get("snr_max", math.inf))
    return np.maximum(ErrorModel(rows=(coef,), vmp_name=None).sigma(snr, ["row"])[:, 0], 1e-300)


def _quantile_edges(v: np.ndarray, quantiles, least: int) -> np.ndarray:
    """Increasing bin edges of values v (n,) at its ``quantiles``; where a bin would hold fewer
    than ``least`` values it is merged with the next one up (the last with the one below), so
    every bin holds ``least`` or more; (0,) when v has fewer than 2 * least values."""
    edges = np.unique(np.quantile(v, np.asarray(quantiles, np.float64))) if v.size else np.zeros(0)
    while edges.size:
        counts = np.bincount(value_bin(edges, v), minlength=edges.size + 1)
        small = np.flatnonzero(counts < least)
        if not small.size:
            break
        edges = np.delete(edges, min(int(small[0]), edges.size - 1))
    return edges


def _rms_factors(z: np.ndarray, j: np.ndarray, m: int) -> np.ndarray:
    """(m,) factors of z = residual / model error (n,) in bins j (n,) of 0..m - 1: the rms of z
    over each bin (1 for an empty bin), normalised to rms 1 over the n rows, so the model keeps
    the typical star's level."""
    g = np.array([np.sqrt(np.mean(z[j == k] ** 2)) if np.any(j == k) else 1.0 for k in range(m)])
    g = np.where(np.isfinite(g) & (g > 0), g, 1.0)
    return g / np.sqrt(np.mean(g[j] ** 2))


def _value_table(z: np.ndarray, j: np.ndarray, above: np.ndarray, m: int, need: int) -> np.ndarray:
    """(2, m) value factors of z = residual / curve (n,) in value bins j (n,) below (above = 0)
    and above (1) snrg hi: per range, :func:`_rms_factors` of its rows (the curve and the SNR
    factors carry each range's level); both rows the factors of all stars when a range has fewer
    than ``need`` rows."""
    if min(int((above == 0).sum()), int((above == 1).sum())) < need:
        return np.stack([_rms_factors(z, j, m)] * 2)
    return np.stack([_rms_factors(z[above == r], j[above == r], m) for r in (0, 1)])


def _snr_factors_needed(u: Mapping, sf: Mapping, settings: ErrorsConfig) -> tuple[float, int, bool]:
    """(chi2, k, needed): whether SNR factors ``sf`` differ from 1 beyond chance, given ``u`` =
    :func:`_err_uncertainty` of the z they were taken from. chi2 = sum over its k bins of
    (ln f / err_rel)**2, f the factors at the bins' snrg; needed when chi2 exceeds the 1 - p
    quantile of chi2 with k degrees of freedom (p = ``settings.heldout_snr_factors_p``; p = 0:
    always needed)."""
    p = float(settings.heldout_snr_factors_p)
    if p <= 0 or not u:
        return math.nan, 0, True
    rel = np.asarray(u["err_rel"])
    use = rel > 0
    f = np.interp(np.log(np.asarray(u["err_snrg"])[use]), np.log(sf["snr_knots"]), sf["snr_factors"])
    chi2, k = float(np.sum((np.log(f) / rel[use]) ** 2)), int(use.sum())
    return chi2, k, k == 0 or chi2 > float(_chi2.ppf(1.0 - p, k))


def _snr_edges(snr: np.ndarray, settings: ErrorsConfig) -> np.ndarray | None:
    """Edges (k + 1,) of k = min(``settings.heldout_bins``, n // ``settings.min_pairs_per_bin``)
    snrg bins of snr (n,), half-open [lo, hi); None when k < 3. Below hi =
    ``settings.heldout_renoise[1]`` (the re-noised copies' range) one bin, when it holds
    min_pairs_per_bin values and the rest at least 2 bins of them; elsewhere equal counts."""
    m = int(settings.min_pairs_per_bin)
    k = min(int(settings.heldout_bins), snr.size // m)
    if k < 3:
        return None
    hi = float(settings.heldout_renoise[1])
    low, up = snr[snr < hi], snr[snr >= hi]
    k_up = min(k - 1, up.size // m)
    if low.size >= m and k_up >= 2:
        edges = np.concatenate([[low.min()], np.quantile(up, np.linspace(0.0, 1.0, k_up + 1))])
        edges[1] = hi
    else:
        edges = np.quantile(snr, np.linspace(0.0, 1.0, k + 1))
    edges[-1] = np.nextafter(edges[-1], np.inf)  # bin_scatter's bins are half-open
    return edges


def _snr_bins(snr: np.ndarray, r: np.ndarray, settings: ErrorsConfig) -> BinStats | None:
    """:func:`bin_scatter` of r (n,) in the bins of :func:`_snr_edges`, only its bins with a
    scatter error > 0; None when fewer than 3 such bins."""
    edges = _snr_edges(snr, settings)
    if edges is None:
        return None
    bins = bin_scatter(snr, r, edges, 2, settings.scatter)
    usable = bins.scatter_err > 0
    if usable.sum() < 3:
        return None
    return BinStats(*(np.asarray(getattr(bins, f.name))[usable] for f in dataclasses.fields(BinStats)))


def _snr_factors(snr: np.ndarray, z: np.ndarray, settings: ErrorsConfig) -> dict:
    """{snr_knots, snr_factors} of z = residual / fitted error (n,) at snr (n,): the
    scatter of z in each bin of :func:`_snr_bins` at the bin's median snrg (where two bins share a
    median, the first one's); {} with fewer than 2 knots."""
    bins = _snr_bins(snr, z, settings)
    if bins is None:
        return {}
    knots, at = np.unique(bins.snr, return_index=True)
    if knots.size < 2 or knots[0] <= 0:
        return {}
    f = bins.scatter[at]
    return {"snr_knots": [float(x) for x in knots], "snr_factors": [float(x) for x in f]}


def _err_uncertainty(snr: np.ndarray, z: np.ndarray, weight: np.ndarray, settings: ErrorsConfig) -> dict:
    """{err_snrg, err_rel, err_n}: how well held-out stars pin a finished error model down.

    z: (n,) residual / the model's Err at snr (n,); weight: (n,) each row's share of a star. In
    each bin of :func:`_snr_edges` (none with fewer than 3 bins: {}), Err is as uncertain as the
    scatter of z there: relative standard error of a standard deviation of n stars with
    kurtosis kappa = <z^4> / <z^2>^2 (moments about the weighted mean),

        err_rel = 0.5 * sqrt((kappa - (n - 3) / (n - 1)) / n),     n = sum of the weights,

    sqrt(1 / (2 n)) for Gaussian z, more for heavy tails (a few giants among dwarfs). err_snrg:
    the bin's median snrg; err_n: n. A lower bound where stars cluster (repeats of one star, a
    rare kind of star), and only the sampling part (the curve and the factors are taken as
    given): docs/errors.md "How well the held-out stars pin Err down"."""
    edges = _snr_edges(snr, settings)
    if edges is None:
        return {}
    which = np.searchsorted(edges, snr, side="right") - 1
    at, rel, count = [], [], []
    for b in range(edges.size - 1):
        sel = which == b
        w, zb = weight[sel], z[sel]
        n = float(w.sum())
        if sel.sum() < 3 or n <= 1:
            continue
        d = zb - np.average(zb, weights=w)
        m2, m4 = np.average(d**2, weights=w), np.average(d**4, weights=w)
        kappa = m4 / m2**2 if m2 > 0 else 3.0
        at.append(float(np.median(snr[sel])))
        rel.append(0.5 * math.sqrt(max(kappa - (n - 3.0) / (n - 1.0), 0.0) / n))
        count.append(round(n, 1))
    return {"err_snrg": at, "err_rel": rel, "err_n": count} if at else {}


def _snr_row(snr: np.ndarray, r: np.ndarray, settings: ErrorsConfig) -> dict:
    """{a, b, c, sigma_m[, snr_max], status} of residuals r (n,) >= 2 at snr (n,).

    Cut into k = min(``settings.heldout_bins``, n // ``settings.min_pairs_per_bin``) snrg bins of
    equal counts (a held-out set has far fewer stars than a repeat catalogue has pairs, so fixed
    edges would leave the ends nearly empty); :func:`bin_scatter` gives each bin's scatter
    (``settings.scatter``), then:

    - k >= 3: :func:`fit_total_error` (b >= ``settings.heldout_b_min``), then again with weights
      from the fitted curve (as :func:`calibrate`); snr_max = the last bin's median snrg: the curve
      is held constant above it (a rising curve is not extrapolated);
    - k < 3: a constant, a = the std of r (ddof 1), b = c = sigma_m = 0.
    """
    n = r.size
    bins = _snr_bins(snr, r, settings)
    if bins is not None:
        bs, sc, se = bins.snr, bins.scatter, bins.scatter_err
        fit = fit_total_error(bs, sc, se, b_min=settings.heldout_b_min)
        # model-based weights (a second pass, as calibrate does): a bin that scatters low by
        # chance, or one without the outliers of its neighbours, does not pull the curve down
        fit = fit_total_error(bs, sc, np.maximum(fit(bs), 1e-300) * se / sc, b_min=settings.heldout_b_min)
        return {"a": fit.power.a, "b": fit.power.b, "c": fit.power.c, "sigma_m": fit.sigma_m,
                "snr_max": float(bs[-1]), "status": f"fit ({bs.size} bins, chi2 {fit.chi2:.1f}/{fit.dof})"}
    return {"a": float(np.std(r, ddof=1)), "b": 0.0, "c": 0.0, "sigma_m": 0.0,
            "status": f"constant: {n} stars make fewer than 3 bins of >= {settings.min_pairs_per_bin}"}
