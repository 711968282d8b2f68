"""Figures and their helpers: :func:`save_figure`, the one way jaxvac writes a matplotlib figure to
disk (atomically); the error calibration (Fig. 5 of Wang et al. 2022); and the panel helpers of
`jaxvac report` (robust axis limits from percentiles, log-density and binned-colour maps with
colour bars, the Sun and the Galactic centre, the number of stars in a panel).

Plots take results (arrays, dataclasses) and a path or an Axes; they read no files and fit
nothing. Figures are ``matplotlib.figure.Figure`` objects drawn by the Agg canvas: no pyplot, so
no global backend is changed and nothing is left open.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from jaxvac.io.atomic import atomic_path

if TYPE_CHECKING:
    from jaxvac.run.uncertainties import ErrorModel
    from jaxvac.train.calibrate import Calibration

__all__ = ["save_figure", "plot_calibration", "new_figure", "robust_limits", "outside", "density_map",
           "colour_map", "colour_bar", "mark_sun_and_centre", "count_label"]


def save_figure(fig, path: str | os.PathLike, **savefig) -> Path:
    """``fig.savefig(path, **savefig)`` through a temporary name, then renamed (jaxvac.io.atomic).

    The format follows path's suffix (the temporary name keeps it). Returns the path.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig)
    return path


def plot_calibration(cal: Calibration, path, reference: ErrorModel | None = None, dpi: int = 80,
                     units: dict[str, str] | None = None) -> str:
    """PNG like Fig. 5 of Wang et al. (2022): one panel per label, binned scatter of the pair
    residuals (label units) against snrg, the fitted a + c / snr**b, and the reference curve.

    units: {label: unit} of the panel titles (the model's ``LabelSchema.units``); the paper's
    table for a label not in it. Returns the path written, as a str."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from jaxvac.labels import PAPER

    n = max(len(cal.labels), 1)
    ncol = min(5, n)
    nrow = math.ceil(n / ncol)
    fig = Figure(figsize=(3.0 * ncol, 2.3 * nrow), layout="constrained")
    FigureCanvasAgg(fig)
    edges = np.asarray(cal.settings.snr_bin_edges, np.float64)
    grid = np.geomspace(edges[0], edges[-1], 200)
    units = {**PAPER.units, **(units or {})}
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
    return str(save_figure(fig, path, format="png", dpi=dpi))


# ----------------------------------------------------------------------------------------------
# Panel helpers of `jaxvac report`


def new_figure(width: float, height: float, layout: str | None = "constrained"):
    """A Figure on an Agg canvas (no pyplot state); constrained layout unless ``layout=None``
    (a grid of many panels places them faster with ``fig.subplots_adjust``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def robust_limits(values: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5), pad: float = 0.04,
                  include: tuple[float, ...] = ()) -> tuple[float, float]:
    """Axis limits spanning the given percentiles of the finite values, widened by ``pad`` of
    the span on each side and to cover every value of ``include`` (e.g. the Sun's X).

    A few outliers thus cannot stretch an axis: with 1% of values at +-1000 the limits stay
    near the bulk. No finite value gives (0, 1); a zero span is widened to +-0.5."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0 and not include:
        return 0.0, 1.0
    lo, hi = (float(q) for q in np.percentile(v, percentiles)) if v.size else (np.inf, -np.inf)
    lo, hi = min((lo, *include)), max((hi, *include))
    span = hi - lo
    if span <= 0:
        return float(lo - 0.5), float(hi + 0.5)
    return float(lo - pad * span), float(hi + pad * span)


def outside(x: np.ndarray, y: np.ndarray, xlim, ylim) -> int:
    """How many of the points (x, y) fall outside the axes xlim x ylim."""
    inx = (x >= min(xlim)) & (x <= max(xlim))
    iny = (y >= min(ylim)) & (y <= max(ylim))
    return int(np.count_nonzero(~(inx & iny)))


def density_map(ax, x: np.ndarray, y: np.ndarray, xlim, ylim, bin_size: tuple[float, float], cmap: str = "viridis"):
    """Stars per bin on a log colour scale (empty bins blank). Returns the mappable for a colour bar.

    bin_size: (dx, dy) in the axes' units; the bins tile xlim x ylim."""
    from matplotlib.colors import LogNorm

    xe = _edges(xlim, bin_size[0])
    ye = _edges(ylim, bin_size[1])
    h, _, _ = np.histogram2d(x, y, bins=(xe, ye))
    h = np.where(h > 0, h, np.nan).T
    vmax = max(np.nanmax(h) if np.isfinite(h).any() else 1.0, 2.0)
    return ax.pcolormesh(xe, ye, h, cmap=cmap, norm=LogNorm(vmin=1, vmax=vmax), rasterized=True)


def colour_map(ax, x: np.ndarray, y: np.ndarray, c: np.ndarray, xlim, ylim, clim, bin_size: tuple[float, float],
               max_points: int = 50_000, cmap: str = "viridis"):
    """Points coloured by c (up to ``max_points`` stars), else the mean of c per bin (bins of at
    least 3 stars). c beyond clim takes the end colours. Returns the mappable for a colour bar."""
    if len(x) <= max_points:
        size = float(np.clip(3000.0 / max(len(x), 1), 0.5, 12.0))
        order = np.argsort(c)[::-1]  # metal-poor stars (low c) drawn last, on top: the rare ones stay visible
        return ax.scatter(x[order], y[order], c=c[order], s=size, cmap=cmap, vmin=clim[0], vmax=clim[1],
                          linewidths=0, rasterized=True)
    xe = _edges(xlim, bin_size[0])
    ye = _edges(ylim, bin_size[1])
    n, _, _ = np.histogram2d(x, y, bins=(xe, ye))
    s, _, _ = np.histogram2d(x, y, bins=(xe, ye), weights=c)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n >= 3, s / n, np.nan).T
    return ax.pcolormesh(xe, ye, mean, cmap=cmap, vmin=clim[0], vmax=clim[1], rasterized=True)


def _edges(lim, step: float) -> np.ndarray:
    lo, hi = min(lim), max(lim)
    n = max(1, min(2000, int(np.ceil((hi - lo) / step))))
    return np.linspace(lo, lo + n * step, n + 1)


def colour_bar(fig, mappable, ax, label: str, **kw):
    """A colour bar with its label (quantity and unit); a log scale gets plain numbers (1, 2, 5,
    10, 20 ...) instead of 2x10^0."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import FuncFormatter, LogLocator

    cb = fig.colorbar(mappable, ax=ax, label=label, **kw)
    if isinstance(mappable.norm, LogNorm):
        cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        cb.ax.yaxis.set_minor_locator(LogLocator(subs="auto"))
        cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
        cb.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    return cb


def mark_sun_and_centre(ax, sun_xy: tuple[float, float], centre_xy: tuple[float, float] = (0.0, 0.0)) -> None:
    """The Sun (a dotted circle, white with a red rim, visible on any density) and the Galactic
    centre (a plus), with a legend."""
    ax.plot(*sun_xy, marker="o", ms=11, mfc="white", mec="red", mew=2, ls="none", label="Sun", zorder=5)
    ax.plot(*sun_xy, marker="o", ms=3, color="red", ls="none", zorder=6)
    ax.plot(*centre_xy, marker="P", ms=11, mfc="white", mec="black", mew=1.5, ls="none", label="Galactic centre", zorder=5)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.85)


def count_label(ax, n: int, what: str = "stars", loc: str = "upper left") -> None:
    """'N = 1,234 stars' in a corner of the panel, on a white box."""
    x, ha = (0.03, "left") if "left" in loc else (0.97, "right")
    y, va = (0.97, "top") if "upper" in loc else (0.03, "bottom")
    ax.text(x, y, f"N = {n:,} {what}", transform=ax.transAxes, ha=ha, va=va, fontsize=9,
            bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="0.7", alpha=0.85))
