"""`jaxvac report`: PNG plots and a Markdown summary of a catalogue.

Plots (matplotlib, Agg): the Kiel diagram coloured by [Fe/H], [Fe/H] vs [alpha/M], M_G vs
BP - RP, X-Y and X-Z density, a histogram per label, and the fraction of flagged rows per
parameter. Only rows with uqflag = 1 (one per star) and finite values enter the diagrams.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxvac.display.plots import save_figure
from jaxvac.io.atomic import atomic_write
from jaxvac.labels import LABEL_NAMES
from jaxvac.run.catalog import PARAMETERS, UNITS


def flag_fractions(rows: np.ndarray) -> dict[str, float]:
    """Fraction of rows with flag_<p> = 1, per parameter."""
    n = max(len(rows), 1)
    return {p: float(np.count_nonzero(rows[f"flag_{p}"] == 1)) / n for p in PARAMETERS}


def label_summary(rows: np.ndarray) -> list[tuple[str, int, float, float, float, float]]:
    """(label, n finite, median, 16th, 84th percentile, median error) per label and feh_VMP."""
    out = []
    for name in (*LABEL_NAMES, "feh_VMP", "dist_phot"):
        v = rows[name].astype(np.float64)
        e = rows[f"Err_{name}"].astype(np.float64)
        ok = np.isfinite(v)
        if ok.any():
            p16, p50, p84 = np.percentile(v[ok], [16, 50, 84])
            out.append((name, int(ok.sum()), p50, p16, p84, float(np.nanmedian(e[ok])) if np.isfinite(e[ok]).any() else np.nan))
        else:
            out.append((name, 0, np.nan, np.nan, np.nan, np.nan))
    return out


def _save(fig, path: Path) -> None:
    save_figure(fig, path, dpi=110, bbox_inches="tight")


def write_report(rows: np.ndarray, out_dir: str | Path, title: str = "jaxvac catalogue", n_rejects: int = 0) -> list[Path]:
    """Write the PNG plots and ``summary.md`` into out_dir; return the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    uq = rows[rows["uqflag"] == 1] if len(rows) else rows
    written: list[Path] = []

    def scatter(x, y, c, xl, yl, cl, name, invert=(False, False)):
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        ok = np.isfinite(x) & np.isfinite(y) & (np.isfinite(c) if c is not None else True)
        if c is None:
            ax.hist2d(x[ok], y[ok], bins=80, cmap="viridis", cmin=1) if ok.sum() > 1 else None
        else:
            sc = ax.scatter(x[ok], y[ok], c=c[ok], s=3, cmap="viridis", rasterized=True)
            fig.colorbar(sc, ax=ax, label=cl)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        if invert[0]:
            ax.invert_xaxis()
        if invert[1]:
            ax.invert_yaxis()
        ax.set_title(f"{name} ({int(ok.sum())} stars)")
        p = out / f"{name}.png"
        _save(fig, p)
        plt.close(fig)
        written.append(p)

    f = lambda n: uq[n].astype(np.float64)  # noqa: E731
    scatter(f("Teff_PASTEL"), f("logg_PASTEL"), f("feh_PASTEL"), "Teff [K]", "log g [dex]", "[Fe/H]", "kiel", (True, True))
    scatter(f("feh_APOGEE"), f("AFE_APOGEE"), None, "[Fe/H] (APOGEE) [dex]", "[alpha/M] [dex]", "", "feh_alpha")
    scatter(f("a_bp") - f("a_rp"), f("a_gg"), None, "BP - RP [mag]", "M_G [mag]", "", "cmd", (False, True))
    scatter(f("X"), f("Y"), None, "X [kpc]", "Y [kpc]", "", "xy")
    scatter(f("X"), f("Z"), None, "X [kpc]", "Z [kpc]", "", "xz")

    names = (*LABEL_NAMES, "feh_VMP")
    ncol = 6
    nrow = -(-len(names) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.1 * nrow))
    for ax, name in zip(axes.flat, names):
        v = uq[name].astype(np.float64)
        v = v[np.isfinite(v)]
        if len(v):
            ax.hist(v, bins=40, color="C0")
        ax.set_title(f"{name} [{UNITS[name]}]", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    p = out / "label_histograms.png"
    _save(fig, p)
    plt.close(fig)
    written.append(p)

    frac = flag_fractions(rows)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.barh(list(frac), list(frac.values()), color="C3")
    ax.set_xlabel("fraction of rows flagged (outside training range or missing)")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlim(0, 1)
    p = out / "flag_fractions.png"
    _save(fig, p)
    plt.close(fig)
    written.append(p)

    lines = [f"# {title}", "", f"- rows: {len(rows)}", f"- unique stars (uqflag = 1): {len(uq)}",
             f"- rejected inputs: {n_rejects}", "", "| label | n | median | p16 | p84 | median error | flagged |",
             "|---|---|---|---|---|---|---|"]
    for name, n, med, lo, hi, err in label_summary(rows):
        fl = frac.get(name, float("nan"))
        lines.append(f"| {name} [{UNITS[name]}] | {n} | {med:.4g} | {lo:.4g} | {hi:.4g} | {err:.3g} | {fl:.3f} |")
    lines += ["", "Plots: " + ", ".join(f"[{p.stem}]({p.name})" for p in written), ""]
    md = atomic_write(out / "summary.md", "\n".join(lines))
    return written + [md]
