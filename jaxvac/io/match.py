"""Find the spectra of a catalogue's rows: by obsid, or by sky position within a radius.

A row of a reference catalogue (APOGEE, PASTEL, Gaia, ...) finds its LAMOST spectra in an index
of the spectra (:mod:`jaxvac.io.spectra_index`: built from the headers by ``jaxvac index``, or
from the official LAMOST LRS catalogue) either by ``obsid`` or by position. Both matches are
vectorised (no loop over rows) and return a :class:`Match`: the (row, index row) pairs, sorted
by row, and the rows that found nothing.

Sky matching (:func:`match_sky`). Positions become unit vectors on the sphere; two points lie
within angle r of each other exactly when their chord |u - v| <= 2 sin(r / 2), so a k-d tree
(scipy.spatial.cKDTree) of the index's unit vectors answers "everything within r" for all rows
at once with no special case at RA = 0/360 or at the poles. Measured for 10^5 rows against 10^6
index rows (bench/bench_match.py): see docs/training.md "Training on your own catalogues".

Rules, in this order:

1. A spectrum belongs to one star: a spectrum within the radius of several rows goes to the
   nearest row (ties: the lower row); ``Match.n_shared`` counts such spectra.
2. Repeat spectra of one star (``repeats``): "all" keeps every spectrum within the radius;
   "best" keeps the one with the highest snrg (ties: the nearer, then the lower index row).

:class:`MatchConfig` (configs/dr8.toml ``[match]``) holds the radius, the repeat rule and the
classes a training star's spectrum may have.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxvac.config import ConfigError, recipe_defaults
from jaxvac.errors import JaxvacError

__all__ = ["Match", "MatchConfig", "MatchError", "as_ids", "match_obsid", "match_sky", "separation_arcsec",
           "sky_pairs", "unit_vectors"]

REPEAT_RULES = ("all", "best")
ARCSEC = np.pi / (180.0 * 3600.0)  # radians per arcsec


class MatchError(ValueError, JaxvacError):
    """Inputs that cannot be matched; the message names them and says what to do."""


@dataclasses.dataclass(frozen=True)
@recipe_defaults("match")
class MatchConfig:
    """How reference-catalogue rows find their spectra (configs/dr8.toml ``[match]``).

    radius_arcsec: sky-match radius (arcsec). repeats: "best" (the highest-snrg spectrum of each
    star) or "all" (every spectrum within the radius). classes: CLASS values a matched spectrum
    may have (others are not matched); require_rv: match only spectra whose header has a
    redshift (Z not -9999): a spectrum without one cannot be moved to the rest frame.
    """

    radius_arcsec: float
    repeats: str
    classes: tuple[str, ...]
    require_rv: bool

    def __post_init__(self):
        if not self.radius_arcsec > 0:
            raise ConfigError(f"match.radius_arcsec must be > 0 arcsec, got {self.radius_arcsec}; the default is 3.0.")
        if self.repeats not in REPEAT_RULES:
            raise ConfigError(f"match.repeats must be one of {list(REPEAT_RULES)}, got {self.repeats!r}.")


@dataclasses.dataclass(frozen=True)
class Match:
    """The result of a match of ``n_rows`` catalogue rows against an index.

    row, index: int64 (M,) pairs (catalogue row, index row), sorted by row then index row.
    sep_arcsec: float64 (M,) separation of each pair (0 for obsid matches).
    unmatched: int64 rows that found no spectrum. n_shared: spectra that lay within the radius
    of more than one row (each went to the nearest). tried: what was tried, for messages.
    """

    n_rows: int
    row: np.ndarray
    index: np.ndarray
    sep_arcsec: np.ndarray
    unmatched: np.ndarray
    n_shared: int = 0
    tried: str = ""

    @property
    def n_matched_rows(self) -> int:
        return self.n_rows - len(self.unmatched)

    def examples(self, names=None, k: int = 3) -> str:
        """Up to k unmatched rows, as 'row 3, row 17' or by ``names`` (an array per row)."""
        rows = self.unmatched[:k]
        shown = [f"row {r}" if names is None else str(names[r]) for r in rows]
        return ", ".join(shown) + (", ..." if len(self.unmatched) > k else "")

    def summary(self, names=None) -> str:
        """One line: how many rows matched, how many spectra, what stayed unmatched."""
        text = (f"{self.n_matched_rows:,} of {self.n_rows:,} rows matched {len(self.row):,} spectra "
                f"({self.tried})")
        if len(self.unmatched):
            text += f"; {len(self.unmatched):,} unmatched, e.g. {self.examples(names)}"
        if self.n_shared:
            text += f"; {self.n_shared:,} spectra lay near several rows and went to the nearest"
        return text


# ----------------------------------------------------------------------------------------------
# Geometry


def unit_vectors(ra_deg, dec_deg) -> np.ndarray:
    """(N, 3) float64 unit vectors of (ra, dec) in degrees (ICRS; any RA, Dec in [-90, 90])."""
    ra = np.radians(np.asarray(ra_deg, np.float64))
    dec = np.radians(np.asarray(dec_deg, np.float64))
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Angular separation (arcsec) of two sets of positions in degrees, elementwise.

    Vincenty's formula (atan2 of the cross and dot products): accurate at every angle, 0 and
    180 deg included, unlike the arccos of the dot product.
    """
    u, v = unit_vectors(ra1, dec1), unit_vectors(ra2, dec2)
    cross = np.linalg.norm(np.cross(u, v), axis=-1)
    dot = np.sum(u * v, axis=-1)
    return np.arctan2(cross, dot) / ARCSEC


def _chord(radius_arcsec: float) -> float:
    """Chord length on the unit sphere of an angle: 2 sin(r / 2)."""
    return 2.0 * np.sin(0.5 * radius_arcsec * ARCSEC)


# ----------------------------------------------------------------------------------------------
# Matching


def match_sky(ra, dec, index_ra, index_dec, *, radius_arcsec: float, repeats: str = "all",
              snrg=None, usable=None) -> Match:
    """Rows (ra, dec, degrees) -> index spectra (index_ra, index_dec) within ``radius_arcsec``.

    ra, dec: (N,) catalogue positions; index_ra, index_dec: (K,) spectra positions; snrg: (K,)
    needed for repeats="best"; usable: (K,) bool, index rows that may be matched (None: all).
    NaN positions never match. Returns a Match (rules in the module docstring).
    """
    if repeats not in REPEAT_RULES:
        raise MatchError(f"repeats must be one of {list(REPEAT_RULES)}, got {repeats!r}.")
    if not radius_arcsec > 0:
        raise MatchError(f"the match radius must be > 0 arcsec, got {radius_arcsec}.")
    ra, dec = np.asarray(ra, np.float64), np.asarray(dec, np.float64)
    ira, idec = np.asarray(index_ra, np.float64), np.asarray(index_dec, np.float64)
    n = len(ra)
    ok_rows = np.nonzero(np.isfinite(ra) & np.isfinite(dec))[0]
    ok_index = np.isfinite(ira) & np.isfinite(idec)
    if usable is not None:
        ok_index &= np.asarray(usable, bool)
    ok_index = np.nonzero(ok_index)[0]
    tried = f"RA/Dec within {radius_arcsec:g} arcsec of {len(ok_index):,} usable index rows"
    if not len(ok_rows) or not len(ok_index):
        return _result(n, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 0, tried)
    r, i = sky_pairs(ra[ok_rows], dec[ok_rows], ira[ok_index], idec[ok_index], radius_arcsec)
    row, index = ok_rows[r], ok_index[i]
    sep = separation_arcsec(ra[row], dec[row], ira[index], idec[index])
    keep = sep <= radius_arcsec  # the chord test is exact; this drops rounding at the edge
    row, index, sep = row[keep], index[keep], sep[keep]
    row, index, sep, n_shared = _nearest_row_per_spectrum(row, index, sep)
    if repeats == "best":
        row, index, sep = _best(row, index, sep, _snrg(snrg, len(ira)))
    return _result(n, row, index, sep, n_shared, tried)


def sky_pairs(ra, dec, index_ra, index_dec, radius_arcsec: float) -> tuple[np.ndarray, np.ndarray]:
    """All (row, index row) pairs with chord <= 2 sin(r / 2), i.e. within ``radius_arcsec``.

    Positions must be finite. Two k-d trees of unit vectors and one ``query_ball_tree``; the
    index's tree is built unbalanced and not compacted: for 10^6 index and 10^5 row positions,
    0.20 s instead of 0.44 s CPU to build and 0.19 s instead of 0.36 s to query (measured beside
    bench/bench_match.py on the shared 2-core machine).
    """
    from scipy.spatial import cKDTree

    index_tree = cKDTree(unit_vectors(index_ra, index_dec), balanced_tree=False, compact_nodes=False)
    found = cKDTree(unit_vectors(ra, dec)).query_ball_tree(index_tree, _chord(radius_arcsec))
    counts = np.fromiter((len(f) for f in found), np.int64, len(found))
    row = np.repeat(np.arange(len(found), dtype=np.int64), counts)
    index = np.fromiter((j for f in found for j in f), np.int64, int(counts.sum()))
    return row, index


def match_obsid(obsid, index_obsid, *, repeats: str = "all", snrg=None, usable=None) -> Match:
    """Rows with ``obsid`` (N,) -> index rows with that obsid (index_obsid (K,)).

    obsid may be a masked or float array (missing: masked, NaN or negative never match). An index
    normally holds each obsid once; a copy of a file under two names gives two rows, both kept
    by repeats="all", the higher-snrg one by "best".
    """
    if repeats not in REPEAT_RULES:
        raise MatchError(f"repeats must be one of {list(REPEAT_RULES)}, got {repeats!r}.")
    ids = as_ids(obsid)
    iids = as_ids(index_obsid)
    ok = iids >= 0
    if usable is not None:
        ok &= np.asarray(usable, bool)
    cand = np.nonzero(ok)[0]
    order = cand[np.argsort(iids[cand], kind="stable")]
    sorted_ids = iids[order]
    lo = np.searchsorted(sorted_ids, ids, side="left")
    hi = np.searchsorted(sorted_ids, ids, side="right")
    counts = np.where(ids >= 0, hi - lo, 0)
    row = np.repeat(np.arange(len(ids)), counts)
    starts = np.repeat(lo, counts)
    offset = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    index = order[starts + offset]
    sep = np.zeros(len(row))
    if repeats == "best":
        row, index, sep = _best(row, index, sep, _snrg(snrg, len(iids)))
    tried = f"obsid against {len(cand):,} usable index rows"
    return _result(len(ids), row, index, sep, 0, tried)


def as_ids(a) -> np.ndarray:
    """An id column as int64, -1 where missing (masked, NaN, or not a number)."""
    if isinstance(a, np.ma.MaskedArray):
        return a.filled(-1).astype(np.int64)
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return np.where(np.isfinite(a), a, -1).astype(np.int64)
    if a.dtype.kind in "iub":
        return a.astype(np.int64)
    out = np.full(len(a), -1, np.int64)
    for i, v in enumerate(a.tolist()):
        s = str(v).strip()
        if s.isdigit():
            out[i] = int(s)
    return out


def _snrg(snrg, k: int) -> np.ndarray:
    if snrg is None:
        raise MatchError('repeats = "best" needs the snrg of the index rows; give snrg= or use repeats = "all".')
    s = np.asarray(snrg, np.float64)
    if s.shape != (k,):
        raise MatchError(f"snrg must have one value per index row ({k}), got shape {s.shape}.")
    return np.where(np.isfinite(s), s, -np.inf)


def _nearest_row_per_spectrum(row, index, sep):
    """Keep, for each index row, only its nearest catalogue row (ties: the lower row)."""
    order = np.lexsort((row, sep, index))
    row, index, sep = row[order], index[order], sep[order]
    first = np.ones(len(index), bool)
    first[1:] = index[1:] != index[:-1]
    shared = np.zeros(len(index), bool)
    shared[:-1] = ~first[1:]  # an index row that appears again right after
    n_shared = int(np.count_nonzero(shared & first))
    return row[first], index[first], sep[first], n_shared


def _best(row, index, sep, snrg):
    """Per catalogue row, the pair with the highest snrg (ties: smaller sep, then lower index row)."""
    order = np.lexsort((index, sep, -snrg[index], row))
    row, index, sep = row[order], index[order], sep[order]
    first = np.ones(len(row), bool)
    first[1:] = row[1:] != row[:-1]
    return row[first], index[first], sep[first]


def _result(n, row, index, sep, n_shared, tried) -> Match:
    order = np.lexsort((index, row))
    row, index, sep = row[order].astype(np.int64), index[order].astype(np.int64), np.asarray(sep, np.float64)[order]
    hit = np.zeros(n, bool)
    hit[row] = True
    return Match(n, row, index, sep, np.nonzero(~hit)[0].astype(np.int64), n_shared, tried)
