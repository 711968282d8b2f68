"""The reader's output types: one spectrum on the global grid, its metadata, or a reject.

Missing values (absent keys, -9999 sentinels): NaN for floats, -1 for integers, "" for strings.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxvac.constants import NPIX_GLOBAL

# One row of the metadata table; a batch's metadata is a structured array of this dtype.
META_DTYPE = np.dtype(
    [
        ("path", "U512"),
        ("obsid", "i8"),  # LAMOST OBSID, -1 when absent (DR1)
        ("designation", "U32"),  # DESIG, e.g. "J220848.54-020324.0"
        ("ra", "f8"), ("dec", "f8"),  # deg, ICRS (RA, DEC)
        ("ra_obs", "f8"), ("dec_obs", "f8"),  # deg, fibre position (RA_OBS, DEC_OBS)
        ("snru", "f4"), ("snrg", "f4"), ("snrr", "f4"), ("snri", "f4"), ("snrz", "f4"),
        ("z", "f8"), ("z_err", "f8"),  # redshift (Z, Z_ERR)
        ("rv", "f8"), ("rv_err", "f8"),  # km/s, Z * c and Z_ERR * c
        ("class", "U16"), ("subclass", "U16"),
        ("lmjd", "i4"), ("planid", "U40"), ("spid", "i2"), ("fiberid", "i2"),
        ("release", "U24"),  # DATA_V, e.g. "LAMOST DR8"; "" for DR1
        ("verspipe", "U16"),  # VERSPIPE, e.g. "v2.9.8"
        ("layout", "U8"),  # "image" or "table"
        ("npix", "i4"),  # pixels in the file
        ("offset", "i4"),  # global-grid pixel of the file's first pixel: round((COEFF0-3.5682)/1e-4)
        ("bad_fraction", "f4"),  # fraction of the 3909 global pixels that are bad or absent
        ("note", "U200"),  # what the reader tolerated ("; "-joined: -9999 keys, extra HDUs, ...)
    ]
)


def empty_meta(n: int = 1) -> np.ndarray:
    """A metadata array of n rows holding the missing value of every field."""
    m = np.zeros(n, dtype=META_DTYPE)
    for name in META_DTYPE.names:
        kind = META_DTYPE[name].kind
        if kind == "f":
            m[name] = np.nan
        elif kind == "i":
            m[name] = -1
    return m


@dataclasses.dataclass(frozen=True)
class Spectrum:
    """One spectrum on the global grid.

    flux, ivar: float32 (NPIX_GLOBAL,), flux in the file's units (1e-17 erg/s/cm2/A), ivar its
    inverse variance. good: bool (NPIX_GLOBAL,), False where ivar == 0, a mask bit is set, a value
    is non-finite, or the file does not cover the pixel (flux and ivar are 0 there).
    meta: a 0-d structured array of META_DTYPE.
    """

    flux: np.ndarray
    ivar: np.ndarray
    good: np.ndarray
    meta: np.ndarray

    def __post_init__(self):
        for name in ("flux", "ivar", "good"):
            a = getattr(self, name)
            if a.shape != (NPIX_GLOBAL,):
                raise ValueError(f"Spectrum.{name} must have shape ({NPIX_GLOBAL},), got {a.shape}.")


@dataclasses.dataclass(frozen=True)
class Reject:
    """A file that could not be used: its path and a human-readable reason."""

    path: str
    reason: str
