"""The cross-match table: photometry and a Gaia source id per LAMOST OBSID (SPEC.md "Distances").

The user supplies it (FITS, CSV or Parquet, read by :func:`jaxvac.io.tables.read_table`) with
obsid, a Gaia source id, Ks and its error, E(B-V) and its error; column names are matched
case-insensitively against common aliases. A missing id becomes -1, a missing value NaN.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from jaxvac.io.tables import column_names, read_table, require_columns

_XM_ALIASES = {
    "obsid": ("obsid",),
    "gaiaid": ("gaia_source_id", "gaiaid", "source_id", "gaia_id"),
    "ks": ("ks", "kmag", "k", "ks_mag"),
    "e_ks": ("e_ks", "ks_err", "e_kmag", "err_ks"),
    "ebv": ("ebv", "e_bv", "e(b-v)"),
    "e_ebv": ("e_ebv", "ebv_err", "err_ebv"),
}
_XM_REQUIRED = ("obsid", "ks")  # the others may be absent (NaN, gaiaid -1)


@dataclasses.dataclass(frozen=True)
class CrossMatch:
    """Photometry per OBSID, sorted by obsid for vectorised look-up."""

    obsid: np.ndarray
    gaiaid: np.ndarray
    ks: np.ndarray
    e_ks: np.ndarray
    ebv: np.ndarray
    e_ebv: np.ndarray

    @classmethod
    def read(cls, path: str | Path) -> CrossMatch:
        """Read a FITS, CSV or Parquet table with obsid, a Gaia source id, Ks, e_Ks, E(B-V) (and e_E(B-V))."""
        hint = "check the cross-match path (--crossmatch)"
        present = require_columns(column_names(path, hint=hint), [_XM_ALIASES[k] for k in _XM_REQUIRED],
                                  what="cross-match table", path=path,
                                  fix="rename the column(s) to one of the names shown (case ignored).")
        picked = {key: next((present[n] for n in names if n in present), None) for key, names in _XM_ALIASES.items()}
        table = read_table(path, [n for n in picked.values() if n is not None], hint=hint)
        cols = {key: table[n] if n is not None else None for key, n in picked.items()}
        n = len(cols["obsid"])
        f = lambda k: np.asarray(cols[k], np.float64) if cols[k] is not None else np.full(n, np.nan)  # noqa: E731
        gaia = _ids(cols["gaiaid"]) if cols["gaiaid"] is not None else np.full(n, -1, np.int64)
        obsid = _ids(cols["obsid"])
        order = np.argsort(obsid, kind="stable")
        return cls(obsid[order], gaia[order], f("ks")[order], f("e_ks")[order], f("ebv")[order], f("e_ebv")[order])

    def lookup(self, obsid: np.ndarray) -> dict[str, np.ndarray]:
        """Columns for each obsid (missing: NaN, gaiaid -1)."""
        i = np.clip(np.searchsorted(self.obsid, obsid), 0, max(len(self.obsid) - 1, 0))
        hit = (len(self.obsid) > 0) & (self.obsid[i] == obsid) if len(self.obsid) else np.zeros(len(obsid), bool)
        pick = lambda a, fill: np.where(hit, a[i], fill) if len(a) else np.full(len(obsid), fill)  # noqa: E731
        return {"gaiaid": pick(self.gaiaid, -1), "ks": pick(self.ks, np.nan), "e_ks": pick(self.e_ks, np.nan),
                "ebv": pick(self.ebv, np.nan), "e_ebv": pick(self.e_ebv, np.nan)}


def _ids(a: np.ndarray) -> np.ndarray:
    """An id column as int64, -1 where missing (masked, or NaN in a float column)."""
    if isinstance(a, np.ma.MaskedArray):
        return a.filled(-1).astype(np.int64)
    if a.dtype.kind == "f":
        return np.where(np.isfinite(a), a, -1).astype(np.int64)
    return np.asarray(a, np.int64)
