"""Fit the random-error coefficients a, b, c from repeat observations (``jaxvac calibrate-errors``).

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
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.optimize import minimize_scalar

from jaxvac.run.uncertainties import ErrorModel, ErrorsConfig

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
    """min over a, c >= 0 of sum w (y - a - c x)**2 for fixed x = snr**-b; exact (2 unknowns)."""
    sw, sx, sy = w.sum(), (w * x).sum(), (w * y).sum()
    sxx, sxy = (w * x * x).sum(), (w * x * y).sum()
    cands = []
    det = sw * sxx - sx * sx
    if det > 1e-12 * sw * sxx:
        a, c = (sxx * sy - sx * sxy) / det, (sw * sxy - sx * sy) / det
        if a >= 0 and c >= 0:
            cands.append((a, c))
    cands.append((max(sy / sw, 0.0), 0.0))  # c = 0
    cands.append((0.0, max(sxy / sxx, 0.0)))  # a = 0
    chi = [float((w * (y - a - c * x) ** 2).sum()) for a, c in cands]
    k = int(np.argmin(chi))
    return cands[k][0], cands[k][1], chi[k]


def fit_power_law(snr, sigma, sigma_err) -> PowerLawFit:
    """Weighted least squares of ``sigma = a + c / snr**b`` with a, c >= 0 and 0 <= b <= B_MAX.

    snr, sigma, sigma_err: (M,) with M >= 3, sigma_err > 0. Variable projection: for a fixed b
    the model is linear in (a, c) and solved exactly under the bounds; chi2(b) is scanned on a
    grid of 0.01 and refined by bounded Brent, so no starting values are needed.
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

    grid = np.linspace(0.0, B_MAX, 401)
    chis = np.array([profile(b) for b in grid])
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


# ---------------------------------------------------------------------------------------------
# Catalogue in, tables and figure out.

STAR_COLUMNS = ("star_id", "gaiaid", "gaia_source_id", "source_id", "designation", "desig")
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
_CSV_SUFFIXES = (".csv", ".csv.gz")


@dataclasses.dataclass(frozen=True)
class Repeats:
    """Columns of a catalogue read for calibration: one row per spectrum."""

    star_id: np.ndarray  # (N,) ints or strings, possibly masked
    snrg: np.ndarray  # (N,) float64, NaN where missing
    values: dict[str, np.ndarray]  # label -> (N,) float64, NaN where missing
    star_column: str
    source: str


def _format_of(path: str) -> str:
    low = path.lower()
    if low.endswith(_FITS_SUFFIXES):
        return "fits"
    if low.endswith(_CSV_SUFFIXES):
        return "ascii.csv"
    raise ValueError(
        f"Catalogue {path!r}: unknown format; name it *.fits (first table HDU) or *.csv "
        f"with one row per spectrum."
    )


def read_repeats(
    path,
    star_column: str | None = None,
    snr_column: str = "snrg",
    labels: Sequence[str] | None = None,
) -> Repeats:
    """Read star id, snrg and label columns (any of the 23 names and feh_VMP, matched without
    regard to case) from a FITS or CSV catalogue. The star column is ``star_column`` or the first
    of STAR_COLUMNS present. Missing values (masked, empty) become NaN / masked ids."""
    from astropy.table import Table

    from jaxvac.labels import LABEL_NAMES, VMP

    path = str(path)
    fmt = _format_of(path)
    try:
        tab = Table.read(path, format=fmt)
    except FileNotFoundError:
        raise ValueError(f"Catalogue {path!r} not found; give a FITS or CSV file with one row per spectrum.") from None
    except Exception as e:  # astropy raises many kinds for a damaged file
        raise ValueError(f"Catalogue {path!r} could not be read as {fmt}: {e}.") from e
    by_lower = {c.lower(): c for c in tab.colnames}

    def col(name, what):
        if name.lower() not in by_lower:
            raise ValueError(f"Catalogue {path!r} has no {what} column {name!r}; its columns are {tab.colnames}.")
        return tab[by_lower[name.lower()]]

    if star_column is None:
        star_column = next((c for c in STAR_COLUMNS if c in by_lower), None)
        if star_column is None:
            raise ValueError(
                f"Catalogue {path!r} has none of the star id columns {list(STAR_COLUMNS)}; "
                f"name the column that identifies a star with --star-column (columns: {tab.colnames})."
            )
    sid = col(star_column, "star id")
    sid = np.ma.asarray(sid) if getattr(sid, "mask", None) is not None else np.asarray(sid)
    wanted = labels if labels is not None else [n for n in LABEL_NAMES + (VMP.name,) if n.lower() in by_lower]
    if not wanted:
        raise ValueError(
            f"Catalogue {path!r} has no label column; expected any of {list(LABEL_NAMES + (VMP.name,))} "
            f"(columns: {tab.colnames})."
        )

    def numeric(name, what):
        c = col(name, what)
        if c.dtype.kind not in "iuf":
            raise ValueError(f"Catalogue {path!r}: column {c.name!r} ({what}) must be numeric, got dtype {c.dtype}.")
        return np.ma.filled(np.ma.asarray(c, dtype=np.float64), np.nan)

    values = {n: numeric(n, "label") for n in wanted}
    return Repeats(star_id=sid, snrg=numeric(snr_column, "SNR"), values=values, star_column=by_lower[star_column.lower()], source=path)


def _atomic(path, write) -> str:
    """Call write(tmp) on a temporary name beside ``path``, then rename it to ``path``."""
    import os
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return str(path)


def coefficient_table(cal: Calibration, reference: ErrorModel | None = None):
    """astropy Table, one row per label: a, b, c with errors, chi2, pairs, status and, if given,
    the reference (e.g. Table 2) coefficients a_ref, b_ref, c_ref."""
    from astropy.table import Table

    rows = []
    for lc in cal.labels:
        a, b, c = lc.abc
        ea, eb, ec = lc.fit.errors if lc.fit else (math.nan,) * 3
        ref = reference.row(lc.name) if reference is not None and lc.name in reference.names else None
        rows.append({
            "label": lc.name, "scale": lc.scale, "a": a, "a_err": ea, "b": b, "b_err": eb, "c": c, "c_err": ec,
            "chi2": lc.fit.chi2 if lc.fit else math.nan, "dof": lc.fit.dof if lc.fit else 0,
            "n_pairs": lc.n_pairs, "n_bins": int(lc.bins.n.size),
            "a_ref": ref.a if ref else math.nan, "b_ref": ref.b if ref else math.nan, "c_ref": ref.c if ref else math.nan,
            "status": lc.status,
        })
    names = list(rows[0]) if rows else ["label"]
    return Table(rows=[[r[k] for k in names] for r in rows], names=names) if rows else Table(names=names, dtype=[str])


def bin_table(cal: Calibration):
    """astropy Table, one row per label and SNR bin: scatter and fitted sigma_r in label units."""
    from astropy.table import Table

    cols = {k: [] for k in ("label", "snr_lo", "snr_hi", "snr", "n_pairs", "scatter", "scatter_err", "fitted")}
    for lc in cal.labels:
        bs = lc.bins
        fitted = lc.scale * lc.fit(bs.snr) if lc.fit else np.full(bs.snr.shape, np.nan)
        for k in range(bs.n.size):
            for key, v in zip(cols, (lc.name, bs.lo[k], bs.hi[k], bs.snr[k], int(bs.n[k]), bs.scatter[k], bs.scatter_err[k], fitted[k])):
                cols[key].append(v)
    dtypes = ["U24", "f8", "f8", "f8", "i8", "f8", "f8", "f8"]
    return Table([np.asarray(v, dtype=d) for v, d in zip(cols.values(), dtypes)], names=list(cols))


def _markdown(tab) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)

    head = "| " + " | ".join(tab.colnames) + " |\n|" + "---|" * len(tab.colnames) + "\n"
    return head + "".join("| " + " | ".join(fmt(row[c]) for c in tab.colnames) + " |\n" for row in tab)


def _toml(cal: Calibration, reference: ErrorModel | None, source: str) -> str:
    lines = [
        f"# Random-error coefficients fitted by `jaxvac calibrate-errors` from {source}",
        "# (sigma_r = scale * (a + c / snrg**b)). sigma_m is not measured by repeats: it is copied",
        "# from the reference config. Merge into a config that starts with base = \"dr8.toml\".",
        "[errors.coefficients]",
    ]
    for lc in cal.labels:
        if lc.fit is None:
            lines.append(f"# {lc.name}: not fitted ({lc.status})")
            continue
        if reference is not None and lc.name in reference.names:
            sm = reference.row(lc.name).sigma_m
        else:
            sm = reference.feh_vmp_sigma if reference is not None else 0.0
        lines.append(
            f"{lc.name} = {{ a = {lc.fit.a:.6g}, b = {lc.fit.b:.6g}, c = {lc.fit.c:.6g}, "
            f"sigma_m = {sm:.6g}, scale = {lc.scale:g} }}"
        )
    return "\n".join(lines) + "\n"


def plot_calibration(cal: Calibration, path, reference: ErrorModel | None = None, dpi: int = 80) -> str:
    """PNG like Fig. 5 of Wang et al. (2022): one panel per label, binned scatter of the pair
    residuals (label units) against snrg, the fitted a + c / snr**b, and the reference curve."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from jaxvac.labels import LABELS, VMP

    n = max(len(cal.labels), 1)
    ncol = min(5, n)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(3.0 * ncol, 2.3 * nrow), layout="constrained")
    FigureCanvasAgg(fig)
    edges = np.asarray(cal.settings.snr_bin_edges, np.float64)
    grid = np.geomspace(edges[0], edges[-1], 200)
    units = {l.name: l.unit for l in LABELS + (VMP,)}
    for k, lc in enumerate(cal.labels):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        bs = lc.bins
        ax.errorbar(bs.snr, bs.scatter, yerr=bs.scatter_err, fmt="o", ms=3, color="k", lw=0.8)
        if reference is not None and lc.name in reference.names:
            ax.plot(grid, reference.random(grid, [lc.name])[:, 0], "--", color="0.6", lw=1, label="reference")
        if lc.fit is not None:
            ax.plot(grid, lc.scale * lc.fit(grid), color="C3", lw=1.2, label="fit")
            a, b, c = lc.abc
            ax.text(0.97, 0.95, f"a={a:.3g}\nb={b:.3g}\nc={c:.3g}", transform=ax.transAxes, ha="right", va="top", fontsize=7)
        else:
            ax.text(0.5, 0.5, "not fitted", transform=ax.transAxes, ha="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_title(f"{lc.name} ({units.get(lc.name, '?')})", fontsize=9)
        if k == 0:
            ax.legend(fontsize=7, loc="center right", frameon=False)
        ax.tick_params(labelsize=7)
        if k % ncol == 0:
            ax.set_ylabel("sigma_r", fontsize=8)
        if k + ncol >= n:
            ax.set_xlabel("snrg", fontsize=8)
    return _atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def write_calibration(cal: Calibration, out_dir, reference: ErrorModel | None = None, source: str = "", dpi: int = 80) -> list[str]:
    """Write coefficients.{fits,csv,md}, bins.csv, errors.toml and calibrate_errors.png into
    out_dir (created), each to a temporary name then renamed. Returns the paths written."""
    from pathlib import Path

    from astropy.io import fits

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    coef, bins = coefficient_table(cal, reference), bin_table(cal)
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.table_to_hdu(coef), fits.table_to_hdu(bins)])
    hdus[1].name, hdus[2].name = "COEFFS", "BINS"
    hdus[0].header["SOURCE"] = source  # the catalogue calibrated (long paths use CONTINUE cards)
    paths = [
        _atomic(out / "coefficients.fits", lambda t: hdus.writeto(t)),
        _atomic(out / "coefficients.csv", lambda t: coef.write(t, format="ascii.csv")),
        _atomic(out / "coefficients.md", lambda t: Path(t).write_text(_markdown(coef))),
        _atomic(out / "bins.csv", lambda t: bins.write(t, format="ascii.csv")),
        _atomic(out / "errors.toml", lambda t: Path(t).write_text(_toml(cal, reference, source))),
        plot_calibration(cal, out / "calibrate_errors.png", reference, dpi),
    ]
    return paths


def run_calibration(
    catalogue,
    out_dir,
    config="dr8.toml",
    star_column: str | None = None,
    snr_column: str = "snrg",
    labels: Sequence[str] | None = None,
    dpi: int = 80,
) -> tuple[Calibration, list[str]]:
    """Read a catalogue, fit every label's a, b, c with the [errors] settings of ``config`` and
    write the tables and figure into ``out_dir``; the config's coefficients are the reference
    (and give each label's scale). Returns the calibration and the paths written."""
    from jaxvac.config import load_config, section

    cfg = load_config(config)
    settings = section(cfg, "errors", ErrorsConfig)
    reference = ErrorModel.from_config(cfg)
    rep = read_repeats(catalogue, star_column, snr_column, labels)
    cal = calibrate(rep.star_id, rep.snrg, rep.values, settings, reference)
    return cal, write_calibration(cal, out_dir, reference, source=rep.source, dpi=dpi)
