"""The static geometry of the normalisation kernels: which input pixels make the output grid.

A :class:`Layout` is a small hashable NamedTuple passed to the jitted kernels as a static
argument, so the kernels need no global state and compile once per layout and batch shape.
It has no defaults: its numbers live in ``jaxvac.constants`` and ``jaxvac.preprocess.LAYOUT``
builds the DR8 one from them. :func:`pack_ranges` and :func:`packed_layout` are the geometry of
a packed store (``jaxvac.io.store``): the input pixels a layout can read, laid end to end.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Layout(NamedTuple):
    """Geometry of the rest-frame grid and of the pseudo-continuum recipe.

    The input spectra lie on a log-linear grid, log10(lambda_j / A) = log10(lambda_0) +
    ``log_step`` * j, j = 0 .. ``npix_in`` - 1. The rest-frame output grid is made of pixels of
    that same grid: window w is the input pixel range ``windows[w] = (j0, j1)``, so a spectrum at
    rv = 0 is resampled exactly. Each window is resampled with ``margin`` extra pixels on both
    sides, so the median filter at the window edges draws on real pixels instead of padding.

    Attributes:
        npix_in: pixels of the input grid (3909 for the LAMOST global grid).
        log_step: log10(Angstrom) per pixel (1e-4 for LAMOST LRS).
        windows: ((j0, j1), ...) half-open input-pixel ranges of the output windows, ascending.
        margin: pixels resampled beyond each window edge for the median filter (width // 2).
        width: median-filter width in pixels (odd).
        order: polynomial order of the pseudo-continuum (Chebyshev basis, order + 1 terms).
        min_good_fraction: a window whose fraction of good resampled pixels is below this is
            not fitted: all its pixels are bad and the spectrum's status says so.
        pivot_tol: a Cholesky pivot of the normal matrix below ``pivot_tol`` times its diagonal
            entry marks the fit ill-conditioned (same consequence as too few pixels).
        continuum_floor: a pixel whose continuum is not above ``continuum_floor`` times its
            window's mean smoothed flux is bad (flux / continuum would blow up noise there).
        max_abs_rv: km/s; |rv| above this is treated like an unknown rv: resampled at rv = 0
            and flagged. ``check`` verifies the grid has room for the shift (:attr:`rv_room`).
        c_kms: speed of light in km/s (rv is in km/s).
        norm_flux_min, norm_flux_max: relative flux; a normalised pixel outside this range is not
            an input the networks were trained on: masked before standardisation
            (:func:`jaxvac.kernels.standardize.input_mask`).
        max_abs_standardized: training standard deviations; a normalised pixel farther than this
            from the training mean (abs(norm - mean) > max_abs_standardized * std) is masked too.
    """

    npix_in: int
    log_step: float
    windows: tuple[tuple[int, int], ...]
    margin: int
    width: int
    order: int
    min_good_fraction: float
    pivot_tol: float
    continuum_floor: float
    max_abs_rv: float  # km/s
    c_kms: float  # km/s
    norm_flux_min: float  # relative flux
    norm_flux_max: float  # relative flux
    max_abs_standardized: float  # training standard deviations

    @property
    def window_sizes(self) -> tuple[int, ...]:
        """Output pixels of each window: j1 - j0."""
        return tuple(j1 - j0 for j0, j1 in self.windows)

    @property
    def npix_out(self) -> int:
        """Output pixels of all windows together (1974 for the DR8 layout)."""
        return sum(self.window_sizes)

    @property
    def extended(self) -> tuple[tuple[int, int], ...]:
        """Input-pixel ranges of the windows widened by ``margin`` on both sides."""
        return tuple((j0 - self.margin, j1 + self.margin) for j0, j1 in self.windows)

    @property
    def min_good(self) -> tuple[int, ...]:
        """Least number of good resampled pixels each window needs to be fitted."""
        return tuple(max(self.order + 1, math.ceil(self.min_good_fraction * n)) for n in self.window_sizes)

    @property
    def rv_room(self) -> int:
        """S, input pixels beyond each widened window that a shift of up to ``max_abs_rv`` reads.

        .. math:: S = \\lceil \\log_{10}(1 + v_{max}/c) / \\Delta \\rceil + 1

        Linear interpolation at a shift s, |s| <= S - 1, reads pixels floor(j + s) and
        floor(j + s) + 1 (``jaxvac.kernels.restframe``); S = 59 for DR8 (57.6 px at 4000 km/s).
        """
        return math.ceil(math.log10(1.0 + self.max_abs_rv / self.c_kms) / self.log_step) + 1

    @property
    def reach(self) -> tuple[tuple[int, int], ...]:
        """Input-pixel ranges [a, b) the kernels can read, one per window: ``extended`` +- ``rv_room``."""
        s = self.rv_room
        return tuple((j0 - s, j1 + s) for j0, j1 in self.extended)

    def check(self) -> None:
        """Raise ValueError when the geometry is inconsistent (called by the jaxvac front door)."""
        if self.width % 2 != 1 or self.width < 1:
            raise ValueError(f"Layout.width must be a positive odd number of pixels, got {self.width}.")
        if self.margin != self.width // 2:
            raise ValueError(
                f"Layout.margin must be width // 2 = {self.width // 2} so every window pixel has a "
                f"full filter window, got margin={self.margin}."
            )
        for j0, j1 in self.extended:
            if not (0 <= j0 < j1 <= self.npix_in):
                raise ValueError(
                    f"Layout window {(j0 + self.margin, j1 - self.margin)} widened by the margin "
                    f"{self.margin} must lie inside the input grid [0, {self.npix_in}), got [{j0}, {j1})."
                )
        for a, b in self.reach:
            if a < 0 or b > self.npix_in:
                raise ValueError(
                    f"Layout.max_abs_rv = {self.max_abs_rv} km/s needs {self.rv_room} pixels of room beyond "
                    f"each widened window, which takes [{a}, {b}) off the input grid [0, {self.npix_in}); "
                    f"lower max_abs_rv or narrow the windows."
                )
        for n in self.window_sizes:
            if n < self.order + 1:
                raise ValueError(f"Layout windows need at least order + 1 = {self.order + 1} pixels, got {n}.")
        if not self.norm_flux_min < 1.0 < self.norm_flux_max:
            raise ValueError(
                f"Layout.norm_flux_min < 1 < Layout.norm_flux_max is needed (the continuum, 1, must be an input), "
                f"got [{self.norm_flux_min}, {self.norm_flux_max}]."
            )
        if not self.max_abs_standardized > 0:
            raise ValueError(f"Layout.max_abs_standardized must be > 0 standard deviations, got {self.max_abs_standardized}.")


def pack_ranges(layout: Layout) -> tuple[tuple[int, int], ...]:
    """Input-pixel ranges [a, b) a packed store keeps for ``layout``: its :attr:`~Layout.reach`.

    a = j0 - margin - S, b = j1 + margin + S with S = :attr:`Layout.rv_room`. Raises ValueError
    unless the ranges lie on the input grid, ascending and without overlap (so that they can be
    laid end to end).
    """
    ranges = layout.reach
    if ranges[0][0] < 0 or ranges[-1][1] > layout.npix_in or any(b > a for (_, b), (a, _) in zip(ranges, ranges[1:])):
        raise ValueError(
            f"a packed store keeps each window widened by the margin {layout.margin} and the rv room "
            f"{layout.rv_room} px; these ranges must lie on the input grid [0, {layout.npix_in}), ascending and "
            f"without overlap, got {ranges} for the windows {layout.windows}; lower max_abs_rv or move the windows apart."
        )
    return ranges


def packed_layout(layout: Layout) -> Layout:
    """``layout`` on the packed pixels: same recipe, windows moved into the concatenated :func:`pack_ranges`."""
    ranges = pack_ranges(layout)
    starts = [0]
    for a, b in ranges:
        starts.append(starts[-1] + b - a)
    windows = tuple((s + j0 - a, s + j1 - a) for s, (a, _), (j0, j1) in zip(starts, ranges, layout.windows))
    out = layout._replace(npix_in=starts[-1], windows=windows)
    out.check()
    return out
