"""The static geometry of the normalisation kernels: which input pixels make the output grid.

A :class:`Layout` is a small hashable NamedTuple passed to the jitted kernels as a static
argument, so the kernels need no global state and compile once per layout and batch shape.
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
        windows: ((j0, j1), ...) half-open input-pixel ranges of the output windows.
        margin: pixels resampled beyond each window edge for the median filter (width // 2).
        width: median-filter width in pixels (odd).
        order: polynomial order of the pseudo-continuum (Chebyshev basis, order + 1 terms).
        min_good_fraction: a window whose fraction of good resampled pixels is below this is
            not fitted: all its pixels are bad and the spectrum's status says so.
        pivot_tol: a Cholesky pivot of the 7x7 normal matrix below ``pivot_tol`` times its
            diagonal entry marks the fit ill-conditioned (same consequence as too few pixels).
            With the fixed Chebyshev basis, 2e-2 is passed when the weighted pixels span at
            least ~3/4 of the window; a window cut shorter at one end has cond(G) > 1e6 and a
            float32 fit then drifts from the float64 one by more than 1e-4 (docs/normalisation.md).
        continuum_floor: a pixel whose continuum is not above ``continuum_floor`` times its
            window's mean smoothed flux is bad (flux / continuum would blow up noise there).
        max_abs_rv: km/s; |rv| above this (no star moves that fast) is treated like an unknown
            rv: resampled at rv = 0 and flagged. ``check`` verifies the grid supports it.
        c_kms: speed of light in km/s (rv is in km/s).
    """

    npix_in: int
    log_step: float
    windows: tuple[tuple[int, int], ...]
    margin: int = 10
    width: int = 21
    order: int = 6
    min_good_fraction: float = 0.25
    pivot_tol: float = 2e-2
    continuum_floor: float = 0.01
    max_abs_rv: float = 4000.0  # km/s
    c_kms: float = 299792.458  # km/s

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
        shift = math.log10(1.0 + self.max_abs_rv / self.c_kms) / self.log_step  # pixels
        low, high = self.extended[0][0], max(j1 for _, j1 in self.extended)
        if low - shift - 1 < 0 or high + shift + 1 > self.npix_in:
            raise ValueError(
                f"Layout.max_abs_rv = {self.max_abs_rv} km/s shifts by up to {shift:.1f} pixels, "
                f"which takes the widened windows [{low}, {high}) off the input grid [0, {self.npix_in}); "
                f"lower max_abs_rv or narrow the windows."
            )
        for n in self.window_sizes:
            if n < self.order + 1:
                raise ValueError(f"Layout windows need at least order + 1 = {self.order + 1} pixels, got {n}.")
