"""`jaxvac report`: PNG plots, a Markdown summary and one self-contained ``index.html`` of a catalogue.

Plots (matplotlib, Agg canvas; panel helpers in jaxvac/display/plots.py), modelled on the figures
of Wang et al. (2022): the Kiel diagram coloured by [Fe/H], [Fe/H] vs [alpha/M] and M_G vs BP - RP
as log densities, X-Y and X-Z maps (log density, equal aspect, the Sun and the Galactic centre
marked), a histogram per label, and the share of flagged estimates per parameter. The diagrams
show one row per star (uqflag = 1) with finite values and every flag of the plotted quantities 0;
their axes span the 0.5th-99.5th percentiles of what is plotted (``LIMIT_PERCENTILES``; a caption
says how many stars fall outside), the [Fe/H] colour scale the 2nd-98th. Each panel gives its
number of stars. Fractions always come with their denominators ("flagged 18 of 793 estimates").

``index.html`` embeds every plot as a base64 PNG data URI and holds the summary tables and the
run's provenance from the catalogue header (model, config, input digest, counts), with no
external resource: it reads offline in any browser.

Any catalogue of `jaxvac run` works, whatever labels its model predicts: the labels are the columns
that have Err_<name> and flag_<name>, their units those the file records (``read_units``; the
paper's table for a known name when the rows come without units). A diagram whose columns the
catalogue lacks is left out: the Kiel diagram needs Teff_<set>, logg_<set> and feh_<set> of one
set (PASTEL first), [Fe/H] vs [alpha/M] feh_APOGEE and AFE_APOGEE, the colour-magnitude diagram
a_bp, a_rp and a_gg, the maps X, Y, Z.
"""

from __future__ import annotations

import base64
import dataclasses
import html
from collections import Counter
from pathlib import Path

import numpy as np

from jaxvac.errors import JaxvacError
from jaxvac.display.plots import (colour_bar, colour_map, count_label, density_map, mark_sun_and_centre, new_figure,
                                  outside, robust_limits, save_figure)
from jaxvac.io.atomic import atomic_write
from jaxvac.labels import LABEL_NAMES, VMP
from jaxvac.run.catalog import UNITS

__all__ = ["write_report", "report_catalogue", "ReportError", "catalogue_provenance", "flag_counts", "flag_fractions",
           "label_summary", "catalogue_labels", "catalogue_parameters", "FlagCount", "LIMIT_PERCENTILES", "COLOUR_PERCENTILES"]

LIMIT_PERCENTILES = (0.5, 99.5)  # axis limits of every diagram and histogram: these percentiles of the plotted values
COLOUR_PERCENTILES = (2.0, 98.0)  # colour scale of [Fe/H] in the Kiel diagram
_DPI = 110
_PNG = b"\x89PNG\r\n\x1a\n"
_PROVENANCE_CARDS = (  # header cards written by jaxvac.run.merge (and the counts NROWS, NREJECT, NSKIPPED)
    ("JAXVAC", "jaxvac version"), ("MODEL", "model (checkpoint)"), ("MODELSHA", "model metadata sha256"),
    ("CONFIG", "config files, base first"), ("CONFSHA", "config sha256"), ("INPUTS", "input list sha256"),
    ("XMATCH", "cross-match sha256"), ("CLASSES", "CLASS values processed"), ("MINSNRG", "skipped snrg <="),
    ("ERRMODEL", "error model of the Err_ columns (docs/errors.md)"),
)


class ReportError(JaxvacError, ValueError):
    """The file given to `jaxvac report` is not a catalogue it can read; one line saying why."""


# ----------------------------------------------------------------------------------------------
# Numbers


@dataclasses.dataclass(frozen=True)
class FlagCount:
    """One parameter's flags over ``rows`` catalogue rows: ``estimates`` rows hold a finite value,
    ``flagged`` of them have a flag set (outside the training range, where the training stars are
    sparse, or an implausible distance),
    and ``missing`` rows have no value (their flag is 1 by definition)."""

    rows: int
    estimates: int
    flagged: int
    missing: int

    def flagged_text(self) -> str:
        """'18 of 793 estimates (2.3%)'."""
        return _of(self.flagged, self.estimates, "estimates")

    def missing_text(self) -> str:
        """'13,292 of 14,085 rows (94.4%)'."""
        return _of(self.missing, self.rows, "rows")


def _of(k: int, n: int, what: str) -> str:
    """'18 of 793 estimates (2.3%)'; no percentage of 0."""
    return f"{k:,} of {n:,} {what} ({100.0 * k / n:.1f}%)" if n else f"{k:,} of 0 {what}"


def _th(q: float) -> str:
    """0.5 -> '0.5th', 2 -> '2nd', 98 -> '98th'."""
    s = f"{q:g}"
    return s + ("th" if s.endswith(("11", "12", "13")) or "." in s else {"1": "st", "2": "nd", "3": "rd"}.get(s[-1], "th"))


def catalogue_parameters(rows: np.ndarray) -> list[str]:
    """The columns of ``rows`` that have a flag_<name> column (labels and dist_phot), in file order."""
    names = rows.dtype.names
    return [n[5:] for n in names if n.startswith("flag_") and n[5:] in names]


def catalogue_labels(rows: np.ndarray) -> list[str]:
    """The label columns of ``rows`` (a flag_ and an Err_, not dist_phot): the paper's in the
    order of jaxvac.labels (then feh_VMP), then the others in file order."""
    names = rows.dtype.names
    found = [p for p in catalogue_parameters(rows) if p != "dist_phot" and f"Err_{p}" in names]
    paper = [n for n in (*LABEL_NAMES, VMP.name) if n in found]
    return paper + [n for n in found if n not in paper]


def _unit_of(units: dict | None):
    table = {**UNITS, **(units or {})}
    return lambda name: table.get(name, "")


def flag_counts(rows: np.ndarray) -> dict[str, FlagCount]:
    """Per parameter: rows, finite estimates, flagged estimates and rows without an estimate."""
    out = {}
    for p in catalogue_parameters(rows):
        ok = np.isfinite(rows[p])
        flagged = np.count_nonzero(ok & (rows[f"flag_{p}"] != 0))
        out[p] = FlagCount(len(rows), int(ok.sum()), int(flagged), int(len(rows) - ok.sum()))
    return out


def flag_fractions(rows: np.ndarray) -> dict[str, float]:
    """Fraction of all rows with flag_<p> != 0, per parameter (rows without an estimate count as
    flagged). :func:`flag_counts` separates the two, as the report does."""
    n = max(len(rows), 1)
    return {p: float(np.count_nonzero(rows[f"flag_{p}"] != 0)) / n for p in catalogue_parameters(rows)}


def label_summary(rows: np.ndarray) -> list[tuple[str, int, float, float, float, float]]:
    """(label, n finite, median, 16th, 84th percentile, median error) per label of the catalogue
    (:func:`catalogue_labels`: the paper's 23 and feh_VMP for its model), then dist_phot if present."""
    out = []
    for name in (*catalogue_labels(rows), *(("dist_phot",) if "dist_phot" in rows.dtype.names else ())):
        v = rows[name].astype(np.float64)
        e = rows[f"Err_{name}"].astype(np.float64)
        ok = np.isfinite(v)
        if ok.any():
            p16, p50, p84 = np.percentile(v[ok], [16, 50, 84])
            out.append((name, int(ok.sum()), p50, p16, p84, float(np.nanmedian(e[ok])) if np.isfinite(e[ok]).any() else np.nan))
        else:
            out.append((name, 0, np.nan, np.nan, np.nan, np.nan))
    return out


# ----------------------------------------------------------------------------------------------
# Provenance from the catalogue file


def catalogue_provenance(path: str | Path) -> dict:
    """What the catalogue file says about its run: ``cards`` {KEYWORD: value as text} of the CATALOG
    header (FITS) or the schema metadata (Parquet), read by ``jaxvac.run.catalog.read_header``, and
    ``skip_reasons`` {reason: count} of its SKIPPED table (``read_skipped``), None when it has no
    skipped row. Cards a catalogue lacks (older catalogues have no NROWS, NSKIPPED...) are absent."""
    from jaxvac.run.catalog import read_header, read_skipped

    cards = {k: v for k, v in read_header(path).items() if not _structural(k)}
    skipped = read_skipped(path)
    reasons = Counter(_text(v) for v in skipped["reason"]) if len(skipped) else None
    return {"cards": cards, "skip_reasons": reasons}


def _structural(key: str) -> bool:
    return key in ("XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "TFIELDS", "EXTNAME",
                   "COMMENT", "HISTORY", "units", "ARROW:schema") or key.rstrip("0123456789") in (
        "TTYPE", "TFORM", "TUNIT", "TCOMM", "TZERO", "TSCAL")


def _text(v) -> str:
    return v.decode("utf-8", "replace").strip() if isinstance(v, bytes) else str(v).strip()


def _counts(n_rows: int, n_rejects: int, provenance: dict | None) -> list[tuple[str, str]]:
    """(what, how many) of the run: inputs, rows, rejected, skipped (and missing, for a partial
    merge); from the header cards when present (NINPUTS, NROWS, NREJECT, NSKIPPED, NMISSING,
    PARTIAL), else from the tables, else 'not recorded'; then whether they add up to the inputs."""
    cards = (provenance or {}).get("cards", {})
    reasons = (provenance or {}).get("skip_reasons")

    def card(key):
        try:
            v = int(float(cards[key]))
        except (KeyError, TypeError, ValueError):
            return None
        return v if v >= 0 else None

    n_in, skipped, missing = card("NINPUTS"), card("NSKIPPED"), card("NMISSING")
    if skipped is None and reasons is not None:
        skipped = sum(reasons.values())
    rows = card("NROWS") if card("NROWS") is not None else n_rows
    rejected = card("NREJECT") if card("NREJECT") is not None else n_rejects
    out = [("inputs", f"{n_in:,}" if n_in is not None else "not recorded"), ("rows", f"{rows:,}"),
           ("rejected inputs", f"{rejected:,}"),
           ("skipped inputs", f"{skipped:,}" if skipped is not None else "not recorded in this catalogue")]
    if str(cards.get("PARTIAL", "F")).strip() in ("T", "True", "1"):
        out.append(("PARTIAL merge", f"{missing:,} inputs missing" if missing is not None else "inputs missing"))
    if n_in is not None and skipped is not None:
        total = rows + rejected + skipped + (missing or 0)
        what = "rows + rejected + skipped" + (" + missing" if missing else "")
        out.append(("check", f"{what} = {total:,}" + (" = inputs" if total == n_in else
                                                      f", inputs {n_in:,}: {n_in - total:+,} unaccounted")))
    return out


# ----------------------------------------------------------------------------------------------
# Plots


@dataclasses.dataclass
class _Plot:
    name: str
    title: str
    caption: str
    path: Path


def _sun_xyz() -> np.ndarray:
    """The Sun in the Galactocentric frame of configs/dr8.toml [astrometry], kpc (distance 0)."""
    from jaxvac.run.astrometry import AstrometryConfig, galactocentric

    xyz, _ = galactocentric(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), AstrometryConfig())
    return xyz[0]


def _select(rows: np.ndarray, uq: np.ndarray, names: tuple[str, ...], flags: tuple[str, ...]) -> tuple[list[np.ndarray], int, int]:
    """Columns ``names`` (float64) of the rows with uqflag = 1, finite values and flag_<f> = 0 for
    each f of ``flags``; with the number of uqflag = 1 rows that are finite but flagged."""
    cols = [rows[n][uq].astype(np.float64) for n in names]
    finite = np.logical_and.reduce([np.isfinite(c) for c in cols])
    clean = finite.copy()
    for f in flags:
        clean &= rows[f"flag_{f}"][uq] == 0
    return [c[clean] for c in cols], int(clean.sum()), int(np.count_nonzero(finite & ~clean))


def _limits_text(n_out: int) -> str:
    lo, hi = LIMIT_PERCENTILES
    return f"Axes span the {_th(lo)}-{_th(hi)} percentiles of the plotted values" + (
        f" ({n_out:,} stars fall outside and are not drawn)." if n_out else ".")


def _flag_text(flags: tuple[str, ...], n_flagged: int) -> str:
    return (f"Stars with uqflag = 1 and flag = 0 for {', '.join(flags)}; {n_flagged:,} more have a value but a flag set "
            "(not shown).")


def _kiel_columns(names) -> tuple[str, str, str] | None:
    """(Teff_S, logg_S, feh_S) of the first set S that has all three (PASTEL first), or None."""
    for s in ["PASTEL"] + [n[5:] for n in names if n.startswith("Teff_")]:
        cols = (f"Teff_{s}", f"logg_{s}", f"feh_{s}")
        if all(c in names for c in cols):
            return cols
    return None


def _plots(rows: np.ndarray, out: Path, units: dict | None = None) -> list[_Plot]:
    uq = rows["uqflag"] == 1
    plots: list[_Plot] = []
    unit_of = _unit_of(units)
    have = set(rows.dtype.names)

    def save(fig, name, title, caption):
        p = out / f"{name}.png"
        save_figure(fig, p, format="png", dpi=_DPI)
        plots.append(_Plot(name, title, caption, p))

    # Kiel diagram coloured by [Fe/H]
    kiel = _kiel_columns(rows.dtype.names)
    if kiel:
        flags = kiel
        scale = kiel[2][4:]
        (t, g, z), n, nf = _select(rows, uq, flags, flags)
        fig = new_figure(6.0, 4.8)
        ax = fig.add_subplot()
        xl, yl = robust_limits(t, LIMIT_PERCENTILES), robust_limits(g, LIMIT_PERCENTILES)
        cl = robust_limits(z, COLOUR_PERCENTILES, pad=0.0)
        if n:
            m = colour_map(ax, t, g, z, xl, yl, cl, ((xl[1] - xl[0]) / 100, (yl[1] - yl[0]) / 100))
            colour_bar(fig, m, ax, f"[Fe/H] ({scale} scale) [{unit_of(kiel[2]) or 'dex'}]", extend="both")
        ax.set(xlim=xl[::-1], ylim=yl[::-1], xlabel=rf"$T_\mathrm{{eff}}$ [{unit_of(kiel[0]) or 'K'}]",
               ylabel=rf"$\log g$ [{unit_of(kiel[1]) or 'dex'}]")
        count_label(ax, n)
        ax.set_title("Kiel diagram", fontsize=11)
        save(fig, "kiel", "Kiel diagram coloured by [Fe/H]",
             f"{_flag_text(flags, nf)} Colour: [Fe/H], its {_th(COLOUR_PERCENTILES[0])}-{_th(COLOUR_PERCENTILES[1])} "
             f"percentiles ({cl[0]:.2f} to {cl[1]:.2f} dex); values beyond take the end colours. "
             + ("Points are coloured per star." if n <= 50_000 else "Colour is the mean [Fe/H] per bin (>= 3 stars).")
             + " " + _limits_text(outside(t, g, xl, yl)))

    # [Fe/H] vs [alpha/M] and the CMD: log densities
    for name, cols, flags, xlabel, ylabel, unit, invert, title, what in (
        ("feh_alpha", ("feh_APOGEE", "AFE_APOGEE"), ("feh_APOGEE", "AFE_APOGEE"), "[Fe/H] (APOGEE scale) [dex]",
         r"[$\alpha$/M] [dex]", "dex", False, "[Fe/H] vs [alpha/M]", "[alpha/M] against [Fe/H]"),
        ("cmd", ("a_bp", "a_rp", "a_gg"), ("a_bp", "a_rp", "a_gg"), r"$M_{BP} - M_{RP}$ [mag]", r"$M_G$ [mag]",
         "mag", True, "Colour-magnitude diagram", "absolute G magnitude against the BP - RP colour, both from the networks"),
    ):
        if not have.issuperset(cols):
            continue
        vals, n, nf = _select(rows, uq, cols, flags)
        x, y = (vals[0] - vals[1], vals[2]) if name == "cmd" else vals
        fig = new_figure(5.6, 4.6)
        ax = fig.add_subplot()
        xl, yl = robust_limits(x, LIMIT_PERCENTILES), robust_limits(y, LIMIT_PERCENTILES)
        dx, dy = _nice((xl[1] - xl[0]) / 70), _nice((yl[1] - yl[0]) / 70)
        if n:
            m = density_map(ax, x, y, xl, yl, (dx, dy))
            colour_bar(fig, m, ax, f"stars per bin ({dx:g} x {dy:g} {unit})")
        ax.set(xlim=xl, ylim=yl[::-1] if invert else yl, xlabel=xlabel, ylabel=ylabel)
        count_label(ax, n, loc="upper left" if name == "cmd" else "upper right")
        ax.set_title(title.replace("alpha", r"$\alpha$"), fontsize=11)
        save(fig, name, title, f"Density of {what} (log colour scale, empty bins blank). {_flag_text(flags, nf)} "
             + _limits_text(outside(x, y, xl, yl)))

    # X-Y and X-Z maps
    sun = _sun_xyz()
    for name, j in (("xy", 1), ("xz", 2)) if have.issuperset(("X", "Y", "Z", "flag_dist_phot")) else ():
        axis = "XYZ"[j]
        (x, y), n, nf = _select(rows, uq, ("X", axis), ("dist_phot",))
        fig = new_figure(6.0, 5.2)
        ax = fig.add_subplot()
        xl = robust_limits(x, LIMIT_PERCENTILES, include=(sun[0], 0.0))
        yl = robust_limits(y, LIMIT_PERCENTILES, include=(sun[j], 0.0))
        step = _nice(max(xl[1] - xl[0], yl[1] - yl[0]) / 90)
        if n:
            m = density_map(ax, x, y, xl, yl, (step, step), cmap="magma_r")
            colour_bar(fig, m, ax, f"stars per ({step:g} kpc)$^2$ bin", shrink=0.85)
        mark_sun_and_centre(ax, (sun[0], sun[j]))
        ax.set(xlim=xl, ylim=yl, xlabel="X [kpc] (from the Sun towards the Galactic centre)", ylabel=f"{axis} [kpc]")
        ax.set_aspect("equal", adjustable="box")
        count_label(ax, n)
        ax.set_title(f"Galactocentric {'X-Y' if j == 1 else 'X-Z'} map", fontsize=11)
        save(fig, name, f"X-{axis} map",
             f"Galactocentric X-{axis} density (log colour scale, equal aspect, {step:g} kpc bins) of the stars with "
             f"uqflag = 1 and flag_dist_phot = 0; {nf:,} more have a distance but a flag set (not shown). The Sun is at "
             f"X = {sun[0]:.2f}, {axis} = {sun[j]:.3f} kpc (configs/dr8.toml [astrometry]); + marks the Galactic centre. "
             + _limits_text(outside(x, y, xl, yl)).replace("plotted values", "plotted values, widened to show the Sun and the centre"))

    # a histogram per label
    names = catalogue_labels(rows)
    ncol = 6
    nrow = -(-len(names) // ncol)
    fig = new_figure(2.7 * ncol, 2.3 * nrow, layout=None)
    fig.subplots_adjust(left=0.035, right=0.99, bottom=0.04, top=0.9, wspace=0.28, hspace=0.62)
    n_out_total = 0
    for k, name in enumerate(names):
        ax = fig.add_subplot(nrow, ncol, k + 1)
        v = rows[name][uq].astype(np.float64)
        f = rows[f"flag_{name}"][uq]
        ok = np.isfinite(v)
        v, f = v[ok], f[ok]
        lim = robust_limits(v, LIMIT_PERCENTILES, pad=0.02)
        n_out_total += outside(v, np.zeros_like(v), lim, (-1, 1))
        if len(v):
            ax.hist([v[f == 0], v[f != 0]], bins=np.linspace(*lim, 41), stacked=True, color=["C0", "0.65"])
        ax.set_xlim(lim)
        ax.set_title(f"{name} [{unit_of(name)}]\nN = {len(v):,}, flagged {np.count_nonzero(f):,}", fontsize=7.5)
        ax.tick_params(labelsize=6.5)
    fig.suptitle("Estimates of the stars with uqflag = 1: blue flag 0, grey flag 1 (outside the training range), stacked",
                 fontsize=9)
    save(fig, "label_histograms", "Label histograms",
         "Every finite estimate of the stars with uqflag = 1, per label: flag 0 in blue, flag 1 (outside the training "
         f"range) stacked in grey; N and the flagged count in each panel. Each x axis spans the {_th(LIMIT_PERCENTILES[0])}-"
         f"{_th(LIMIT_PERCENTILES[1])} percentiles ({n_out_total:,} estimates outside, over all panels).")

    # flagged shares per parameter
    counts = flag_counts(rows)
    names = list(counts)[::-1]
    fig = new_figure(7.5, 0.26 * len(names) + 1.3)
    ax = fig.add_subplot()
    n_rows = max(len(rows), 1)
    good = np.array([(counts[p].estimates - counts[p].flagged) / n_rows for p in names])
    bad = np.array([counts[p].flagged / n_rows for p in names])
    miss = np.array([counts[p].missing / n_rows for p in names])
    ax.barh(names, good, color="C0", label="estimate, flag 0")
    ax.barh(names, bad, left=good, color="C3", label="estimate, flagged")
    ax.barh(names, miss, left=good + bad, color="0.8", label="no estimate (flag 1)")
    for i, p in enumerate(names):
        c = counts[p]
        ax.text(1.01, i, f"{c.flagged:,} / {c.estimates:,}" + (f" ({100 * c.flagged / c.estimates:.1f}%)" if c.estimates else ""),
                va="center", fontsize=7, transform=ax.get_yaxis_transform())
    ax.text(1.01, 1.0, "flagged / estimates", fontsize=7, va="bottom", transform=ax.transAxes, weight="bold")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(names) - 0.4)
    ax.set_xlabel(f"share of all {len(rows):,} catalogue rows")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=7, frameon=False)
    save(fig, "flag_fractions", "Flags per parameter",
         f"For each parameter, the {len(rows):,} catalogue rows split into estimates with flag 0 (blue), estimates with "
         "a flag set (red: outside the training range or where its training stars are sparse"
         + ("; for dist_phot also implausible or resting on a flagged M_Ks" if "dist_phot" in counts else "")
         + ") and rows without an estimate (grey, flag 1). The right column gives flagged estimates over estimates.")
    return plots


def _nice(step: float) -> float:
    """step rounded to 1, 2 or 5 times a power of ten (readable bin sizes)."""
    if not np.isfinite(step) or step <= 0:
        return 1.0
    e = np.floor(np.log10(step))
    m = step / 10**e
    return float((1 if m < 1.5 else 2 if m < 3.5 else 5 if m < 7.5 else 10) * 10**e)


# ----------------------------------------------------------------------------------------------
# The summary (Markdown) and the page (HTML)


def _summary_rows(rows: np.ndarray, units: dict | None = None) -> list[list[str]]:
    counts = flag_counts(rows)
    unit_of = _unit_of(units)
    out = []
    for name, n, med, lo, hi, err in label_summary(rows):
        c = counts.get(name)
        out.append([f"{name} [{unit_of(name)}]", f"{n:,}", f"{med:.4g}", f"{lo:.4g}", f"{hi:.4g}", f"{err:.3g}",
                    c.flagged_text() if c else "-", c.missing_text() if c else "-"])
    return out


_SUMMARY_HEAD = ["label", "estimates", "median", "p16", "p84", "median error", "flagged", "no estimate"]


def _provenance_rows(provenance: dict | None, catalogue: str | None) -> list[tuple[str, str]]:
    cards = (provenance or {}).get("cards", {})
    out = [("catalogue", catalogue)] if catalogue else []
    for key, what in _PROVENANCE_CARDS:
        if key in cards and str(cards[key]) != "":
            out.append((what, str(cards[key])))
    return out


def write_report(rows: np.ndarray, out_dir: str | Path, title: str = "jaxvac catalogue", n_rejects: int = 0,
                 provenance: dict | None = None, rejects: np.ndarray | None = None,
                 catalogue: str | None = None, units: dict | None = None) -> list[Path]:
    """Write the PNG plots, ``summary.md`` and ``index.html`` into out_dir; return the paths written.

    rows: catalogue rows (CATALOG_DTYPE, or the columns of any model: ``read_catalog``);
    provenance: :func:`catalogue_provenance` of the file (its header cards and skip reasons),
    optional; rejects: the REJECTS table, for the reasons; units: {column: unit} as the file
    records them (``jaxvac.run.catalog.read_units``; default: the paper's table, "" elsewhere).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(rows, out, units)
    n_uq = int(np.count_nonzero(rows["uqflag"] == 1))
    if rejects is not None:
        n_rejects = len(rejects)
    counts = _counts(len(rows), n_rejects, provenance)
    prov = _provenance_rows(provenance, catalogue)
    reasons = [("rejected", Counter(_text(r) for r in rejects["reason"]))] if rejects is not None and len(rejects) else []
    if (provenance or {}).get("skip_reasons"):
        reasons.append(("skipped", provenance["skip_reasons"]))
    table = _summary_rows(rows, units)

    lines = [f"# {title}", "", f"- rows: {len(rows)}", f"- unique stars (uqflag = 1): {n_uq}",
             f"- rejected inputs: {n_rejects}"]
    lines += [f"- {k}: {v}" for k, v in counts if k not in ("rows", "rejected inputs")]
    lines += [f"- {k}: {v}" for k, v in prov]
    lines += ["", "Per label over all rows: estimates (finite values), median and 16th/84th percentiles, median error; "
              "flagged = estimates with a flag set among the estimates; no estimate = rows without a value.", "",
              "| " + " | ".join(_SUMMARY_HEAD) + " |", "|" + "---|" * len(_SUMMARY_HEAD)]
    lines += ["| " + " | ".join(r) + " |" for r in table]
    lines += ["", "## Plots", ""] + [f"- [{p.title}]({p.path.name}): {p.caption}" for p in plots] + [""]
    md = atomic_write(out / "summary.md", "\n".join(lines))
    page = atomic_write(out / "index.html", _html(title, n_uq, counts, prov, reasons, table, plots))
    return [p.path for p in plots] + [md, page]


def report_catalogue(path: str | Path, out_dir: str | Path | None = None, title: str | None = None) -> list[Path]:
    """`jaxvac report`: read a catalogue written by `jaxvac run` (FITS or Parquet) and its
    provenance, and write the report into out_dir (default: next to it, ``<stem>_report``)."""
    from jaxvac.run.catalog import read_catalog, read_units

    path = Path(path)
    try:
        rows, rejects = read_catalog(path)[:2]
        units = read_units(path)
        provenance = catalogue_provenance(path)
    except (OSError, ValueError, KeyError, TypeError) as e:
        why = " ".join(str(e).split()) or type(e).__name__
        raise ReportError(f"{path}: cannot be read as a jaxvac catalogue ({why[:300]}); give a .fits or .parquet "
                          f"catalogue written by `jaxvac run` or `jaxvac merge`.") from e
    missing = [c for c in _REQUIRED if c not in (rows.dtype.names or ())]
    if missing:
        raise ReportError(f"{path}: its columns are not those of a jaxvac catalogue (no {', '.join(missing)}); give a "
                          f"catalogue written by `jaxvac run` or `jaxvac merge`.")
    out = Path(out_dir) if out_dir else path.with_name(path.stem + "_report")
    return write_report(rows, out, title=title or f"jaxvac report of {path.name}", provenance=provenance,
                        rejects=rejects, catalogue=str(path), units=units)


_REQUIRED = ("uqflag", "snrg", "gaiaid", "designation", "obsid")  # what the report itself needs


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.55em; text-align: right; vertical-align: top; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
td.text { text-align: left; font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-all; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 900px; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; } .grid figure { flex: 1 1 480px; }
"""


def _table(head: list[str] | None, rows: list, text_cols: tuple[int, ...] = ()) -> str:
    e = html.escape
    h = "<tr>" + "".join(f"<th>{e(c)}</th>" for c in head) + "</tr>" if head else ""
    body = "".join("<tr>" + "".join(f'<td class="text">{e(str(c))}</td>' if i in text_cols else f"<td>{e(str(c))}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>{h}{body}</table>"


def _figure(p: _Plot) -> str:
    data = p.path.read_bytes()
    if not data.startswith(_PNG):
        raise ValueError(f"{p.path} is not a PNG file; the report embeds PNGs only.")
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (f'<figure id="{p.name}"><img src="{uri}" alt="{html.escape(p.title)}">'
            f"<figcaption><b>{html.escape(p.title)}.</b> {html.escape(p.caption)}</figcaption></figure>")


def _html(title, n_uq, counts, prov, reasons, table, plots) -> str:
    e = html.escape
    by = {p.name: p for p in plots}
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{e(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>",
             f"<p>{e(counts[1][1])} catalogue rows, {n_uq:,} unique stars (uqflag = 1). Generated by jaxvac report; "
             "this page is self-contained (plots embedded) and reads offline.</p>",
             "<h2>Run</h2>", _table(["", "from the catalogue"], counts + prov, text_cols=(1,))]
    for what, c in reasons:
        parts.append(f"<p>Inputs {what}, by reason:</p>")
        parts.append(_table(["reason", "inputs"], [(r, f"{k:,}") for r, k in c.most_common(12)], text_cols=(0,)))
    parts.append("<h2>Diagrams</h2><div class=\"grid\">")
    parts += [_figure(by[n]) for n in ("kiel", "feh_alpha", "cmd") if n in by]
    parts.append("</div><h2>Positions</h2><div class=\"grid\">")
    parts += [_figure(by[n]) for n in ("xy", "xz") if n in by]
    parts.append("</div><h2>Labels</h2>")
    parts.append("<p>Over all catalogue rows: estimates (finite values), median, 16th and 84th percentiles, median "
                 "error; <i>flagged</i> counts estimates with a flag set among the estimates, <i>no estimate</i> the rows "
                 "without a value (their flag is 1 too).</p>")
    parts.append(_table(_SUMMARY_HEAD, table))
    parts += [_figure(by[n]) for n in ("label_histograms", "flag_fractions") if n in by]
    dist = ("flag_dist_phot = 1 where the distance is missing, beyond the configured limit, its relative error is "
            "above the configured limit, or flag_a_ks is set (the absolute magnitude M_Ks it rests on is flagged); "
            if any(r[0].startswith("dist_phot ") for r in table) else "")
    parts.append("<h2>Flags</h2><p>flag_&lt;label&gt; bit 1 (value 1) where the estimate lies outside the range of "
                 "the training labels of its network, or is missing; bit 2 (value 2) where the row's estimates lie "
                 f"where the training stars of its network's set are sparse. {dist}See docs/catalogue.md and "
                 "docs/errors.md.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
