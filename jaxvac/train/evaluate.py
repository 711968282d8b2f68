"""Accuracy of trained networks on held-out stars: residual tables and residual plots.

For each label, residual = prediction - truth over the test stars that have a true value; the
table gives the mean (bias) and standard deviation (ddof 1) overall and per SNR (snrg) bin, as in
the appendix of Wang et al. (2022), beside the paper's precision (SPEC.md "Networks").
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from jaxvac.display.plots import save_figure

# Std of test residuals reached by Wang et al. (2022), as restated in SPEC.md "Networks".
# PASTEL numbers are for the SNR 20-50 test stars; magnitudes are quoted as a range.
PAPER_STD = {
    "Teff_PASTEL": "156 K (SNR 20-50)",
    "logg_PASTEL": "0.29 (SNR 20-50)",
    "feh_PASTEL": "0.15 (SNR 20-50)",
    "logg_APOGEE": "0.067",
    "feh_APOGEE": "0.033",
    "MH_APOGEE": "0.032",
    "AFE_APOGEE": "0.018",
    "CFE_APOGEE": "0.044",
    "NFE_APOGEE": "0.07",
    "feh_VMP": "0.176 (training stars)",
}
PAPER_MAG_STD = "0.13-0.23"


def snr_bin_names(edges) -> list[str]:
    """Names of the bins cut by ascending SNR edges: ['<20', '20-50', '>50'] for (20, 50)."""
    e = [f"{x:g}" for x in edges]
    return [f"<{e[0]}"] + [f"{a}-{b}" for a, b in zip(e[:-1], e[1:])] + [f">{e[-1]}"]


def residual_stats(truth: np.ndarray, pred: np.ndarray, snr: np.ndarray, names, edges) -> list[dict]:
    """Rows {label, bin, n, bias, std} per label for 'all' and each SNR bin.

    truth, pred: (N, K) with NaN where unknown (truth) or not predicted (pred); snr: (N,).
    bias = mean(pred - truth), std = sample std (ddof 1; NaN with fewer than 2 stars).
    """
    truth, pred, snr = np.asarray(truth, float), np.asarray(pred, float), np.asarray(snr, float)
    bins = np.digitize(snr, np.asarray(edges, float))  # 0: < edges[0] ... len(edges): >= last
    labels = snr_bin_names(edges)
    rows = []
    for k, name in enumerate(names):
        r = pred[:, k] - truth[:, k]
        have = np.isfinite(r)
        for bname, sel in [("all", have)] + [(labels[b], have & (bins == b)) for b in range(len(labels))]:
            v = r[sel]
            rows.append({
                "label": name, "bin": bname, "n": int(v.size),
                "bias": float(v.mean()) if v.size else math.nan,
                "std": float(v.std(ddof=1)) if v.size > 1 else math.nan,
            })
    return rows


def calibration_bins(edges) -> list[tuple[str, float, float]]:
    """(name, lo, hi) of the snrg bins of :func:`error_calibration` for ascending edges: '10-20',
    '20-50', ..., then the open last bin '>100' (hi = inf)."""
    e = [float(x) for x in edges]
    return [(f"{a:g}-{b:g}", a, b) for a, b in zip(e[:-1], e[1:])] + [(f">{e[-1]:g}", e[-1], math.inf)]


def error_calibration(resid: np.ndarray, err: np.ndarray, snr: np.ndarray, names, edges,
                      n_boot: int = 200, seed: int = 0) -> list[dict]:
    """Rows {label, bin, n, z_std, z_std_lo, z_std_hi, z_mad, tail3} per label and snrg bin: the
    spread of z = resid / err.

    resid, err: (N, K), NaN where unknown; snr: (N,); edges: ascending snrg bin edges (stars below
    edges[0] are left out: ``jaxvac run`` skips them). z_std = sample std of z (ddof 1; 1 for a
    calibrated error); z_std_lo, z_std_hi: the 16th and 84th percentiles of z_std over ``n_boot``
    bootstrap resamples of the bin's stars (how far chance alone moves it: a bin of 5 stars says
    little); z_mad = 1.4826 * MAD of z about its median (the same for Gaussian z, but blind to a
    few outliers); tail3 = fraction of |z| > 3 (0.0027 for Gaussian z). NaN with fewer than 2 stars.
    """
    resid, err, snr = np.asarray(resid, float), np.asarray(err, float), np.asarray(snr, float)
    edges = np.asarray(edges, float)
    which = np.digitize(snr, edges) - 1  # -1: below the first edge; len(edges) - 1: the open last bin
    labels = [name for name, _, _ in calibration_bins(edges)]
    rng = np.random.default_rng(seed)
    rows = []
    with np.errstate(invalid="ignore", divide="ignore"):
        z = resid / err
    for k, name in enumerate(names):
        for b, bname in enumerate(labels):
            v = z[(which == b) & np.isfinite(z[:, k]), k]
            row = {"label": name, "bin": bname, "n": int(v.size), "z_std": math.nan, "z_std_lo": math.nan,
                   "z_std_hi": math.nan, "z_mad": math.nan, "tail3": math.nan}
            if v.size > 1:
                boot = v[rng.integers(0, v.size, size=(n_boot, v.size))].std(axis=1, ddof=1)
                lo, hi = np.percentile(boot, [16, 84])
                row.update(z_std=float(v.std(ddof=1)), z_std_lo=float(lo), z_std_hi=float(hi),
                           z_mad=float(1.482602218505602 * np.median(np.abs(v - np.median(v)))),
                           tail3=float(np.mean(np.abs(v) > 3)))
            rows.append(row)
    return rows


def estimate_calibration(resid: np.ndarray, err: np.ndarray, values: np.ndarray, names, n_bins: int = 3) -> list[dict]:
    """Rows {label, bin, n, z_std} of z = resid / err per label in ``n_bins`` bins of equal counts of
    the label's own estimate (values, (N, K)): is Err honest for each kind of star, not only on
    average? bin: "1/3", "2/3", "3/3" (lowest estimates first). NaN with fewer than 2 stars."""
    resid, err, values = (np.asarray(a, float) for a in (resid, err, values))
    rows = []
    with np.errstate(invalid="ignore", divide="ignore"):
        z = resid / err
    for k, name in enumerate(names):
        ok = np.isfinite(z[:, k]) & np.isfinite(values[:, k])
        v = values[ok, k]
        edges = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1]) if v.size else np.zeros(n_bins - 1)
        j = np.searchsorted(edges, v, side="right")
        for b in range(n_bins):
            zb = z[ok, k][j == b]
            rows.append({"label": name, "bin": f"{b + 1}/{n_bins}", "n": int(zb.size),
                         "z_std": float(zb.std(ddof=1)) if zb.size > 1 else math.nan})
    return rows


def catalogue_residuals(rows: np.ndarray, test, schema) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(resid, err, snrg, names) of a catalogue's rows against the true labels of a test catalogue.

    rows: a ``jaxvac run`` catalogue (structured array with obsid, snrg, <label>, Err_<label>);
    test: the simulator's catalogs/test.fits columns (obsid, in_<set>, the true labels); schema:
    the checkpoint's LabelSchema. Rows are matched on obsid. Each label is scored on the rows of
    its own training set's pool (``in_<set>``, as the paper's test sets were), the VMP label
    wherever the catalogue has it. Returns resid = catalogue - truth and the catalogue's own Err_
    ((N, K) float64, NaN where unscored), snrg (N,) and the K label names (labels, then VMP).
    """
    t_id = np.asarray(test["obsid"], np.int64)
    order = np.argsort(t_id)
    at = np.searchsorted(t_id[order], np.asarray(rows["obsid"], np.int64))
    at = np.clip(at, 0, t_id.size - 1)
    found = t_id[order][at] == np.asarray(rows["obsid"], np.int64)
    idx = order[at]
    names = list(schema.names) + ([schema.vmp.label.name] if schema.vmp else [])
    resid = np.full((rows.size, len(names)), np.nan)
    err = np.full_like(resid, np.nan)
    for k, lab in enumerate(schema.with_vmp):
        if lab.name not in rows.dtype.names or lab.name not in test:
            continue
        pool = np.asarray(test[f"in_{lab.training_set.lower()}"], bool)[idx] & found
        truth = np.asarray(test[lab.name], np.float64)[idx]
        resid[:, k] = np.where(pool, np.asarray(rows[lab.name], np.float64) - truth, np.nan)
        err[:, k] = np.asarray(rows[f"Err_{lab.name}"], np.float64)
    return resid, err, np.asarray(rows["snrg"], np.float64), names


def calibration_markdown(rows: list[dict]) -> str:
    """A Markdown table of :func:`error_calibration` rows: std(z) [16-84 % bootstrap] (n) per
    label and bin."""
    bins = list(dict.fromkeys(r["bin"] for r in rows))
    by = {(r["label"], r["bin"]): r for r in rows}
    lines = ["| label | " + " | ".join(f"snrg {b}: std(z) [16-84 %] (n)" for b in bins) + " |",
             "|" + "---|" * (len(bins) + 1)]

    def cell(r):
        if r["n"] < 2:
            return "-"
        ci = f" [{r['z_std_lo']:.2f}, {r['z_std_hi']:.2f}]" if math.isfinite(r.get("z_std_lo", math.nan)) else ""
        return f"{r['z_std']:.2f}{ci} ({r['n']})"

    for lab in dict.fromkeys(r["label"] for r in rows):
        cells = [cell(by[(lab, b)]) for b in bins]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def vmp_comparison(truth_feh: np.ndarray, feh_vmp: np.ndarray, feh_pastel: np.ndarray, snr: np.ndarray, edges) -> list[dict]:
    """feh_VMP against feh_PASTEL on the VMP candidates (stars with a feh_VMP estimate and a true
    [Fe/H]): rows {bin, n, vmp_bias, vmp_std, pastel_bias, pastel_std} for 'all' and each snrg bin
    of ``edges`` (residual = estimate - truth; std with ddof 1, NaN under 2 stars)."""
    truth_feh, feh_vmp, feh_pastel, snr = (np.asarray(a, float) for a in (truth_feh, feh_vmp, feh_pastel, snr))
    cand = np.isfinite(feh_vmp) & np.isfinite(truth_feh) & np.isfinite(feh_pastel)
    bins = np.digitize(snr, np.asarray(edges, float))
    names = snr_bin_names(edges)
    rows = []
    for bname, sel in [("all", cand)] + [(names[b], cand & (bins == b)) for b in range(len(names))]:
        rv, rp = feh_vmp[sel] - truth_feh[sel], feh_pastel[sel] - truth_feh[sel]
        stat = lambda r, f: float(f(r)) if r.size > 1 else math.nan  # noqa: E731
        rows.append({"bin": bname, "n": int(sel.sum()), "vmp_bias": stat(rv, np.mean),
                     "vmp_std": stat(rv, lambda r: r.std(ddof=1)), "pastel_bias": stat(rp, np.mean),
                     "pastel_std": stat(rp, lambda r: r.std(ddof=1))})
    return rows


def vmp_markdown(rows: list[dict]) -> str:
    """A Markdown table of :func:`vmp_comparison` rows."""
    lines = ["| snrg | candidates | feh_VMP bias / std | feh_PASTEL bias / std |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['bin']} | {r['n']} | {_fmt(r['vmp_bias'])} / {_fmt(r['vmp_std'])} | "
                     f"{_fmt(r['pastel_bias'])} / {_fmt(r['pastel_std'])} |")
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[dict], units: dict[str, str], bins: list[str]) -> str:
    """A Markdown table: one line per label, bias / std (n) per SNR bin, the paper's std."""
    by = {(r["label"], r["bin"]): r for r in rows}
    labels = list(dict.fromkeys(r["label"] for r in rows))
    head = "| label | unit | " + " | ".join(f"{b}: bias / std (n)" for b in bins) + " | paper std |"
    lines = [head, "|" + "---|" * (len(bins) + 3)]
    for lab in labels:
        cells = []
        for b in bins:
            r = by.get((lab, b))
            cells.append("-" if r is None or r["n"] == 0 else f"{_fmt(r['bias'])} / {_fmt(r['std'])} ({r['n']})")
        paper = PAPER_STD.get(lab, PAPER_MAG_STD if lab.startswith("a_") else "")
        lines.append(f"| {lab} | {units.get(lab, '')} | " + " | ".join(cells) + f" | {paper} |")
    return "\n".join(lines) + "\n"


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "nan"
    return f"{x:.1f}" if abs(x) >= 10 or (x != 0 and abs(x) >= 5) else f"{x:.3f}"


def plot_residuals(truth: np.ndarray, pred: np.ndarray, names, units: dict[str, str], path: str | Path,
                   ncols: int = 4) -> Path:
    """One PNG of residual (pred - truth) against truth, one panel per label; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(names)
    nrows = -(-k // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.6 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= k:
            ax.set_axis_off()
            continue
        t, r = truth[:, i], pred[:, i] - truth[:, i]
        ok = np.isfinite(r)
        ax.scatter(t[ok], r[ok], s=2, alpha=0.5, color="k", rasterized=True)
        ax.axhline(0, color="C3", lw=0.8)
        if ok.sum() > 1:
            ax.set_title(f"{names[i]}: {r[ok].mean():+.3g} ± {r[ok].std(ddof=1):.3g}", fontsize=8)
        else:
            ax.set_title(f"{names[i]}: {ok.sum()} stars", fontsize=8)
        ax.set_xlabel(f"true [{units.get(names[i], '')}]", fontsize=7)
        ax.set_ylabel("pred - true", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path
