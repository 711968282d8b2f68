"""Figures that are not part of a report page: the error calibration (Fig. 5 of Wang et al. 2022),
and :func:`save_figure`, the one way jaxvac writes a matplotlib figure to disk (atomically).

Plots take results (arrays, dataclasses) and a path; they read no files and fit nothing.
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

__all__ = ["save_figure", "plot_calibration"]


def save_figure(fig, path: str | os.PathLike, **savefig) -> Path:
    """``fig.savefig(path, **savefig)`` through a temporary name, then renamed (jaxvac.io.atomic).

    The format follows path's suffix (the temporary name keeps it). Returns the path.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **savefig)
    return path


def plot_calibration(cal: Calibration, path, reference: ErrorModel | None = None, dpi: int = 80) -> str:
    """PNG like Fig. 5 of Wang et al. (2022): one panel per label, binned scatter of the pair
    residuals (label units) against snrg, the fitted a + c / snr**b, and the reference curve.

    Returns the path written, as a str."""
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
    return str(save_figure(fig, path, format="png", dpi=dpi))
