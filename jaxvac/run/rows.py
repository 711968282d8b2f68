"""Catalogue rows from the device step's outputs: errors, flags, rv, gl/gb, distance, X/Y/Z, uqflag;
and why a spectrum is skipped or rejected instead.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxvac.io.crossmatch import CrossMatch
from jaxvac.labels import PAPER, LabelSchema
from jaxvac.run.astrometry import AstrometryConfig, galactic, galactocentric, photometric_distance, unique_flag
from jaxvac.run.catalog import catalog_dtype, empty_catalog
from jaxvac.run.uncertainties import ErrorModel, label_errors, range_flags, vmp_error


def assemble_rows(meta: np.ndarray, y: np.ndarray, vmp: np.ndarray, *, ranges: np.ndarray, vmp_range,
                  errors: ErrorModel, crossmatch: CrossMatch | None, astrometry: AstrometryConfig,
                  ood: np.ndarray | None = None, ood_threshold: float = float("nan"),
                  masked: np.ndarray | None = None, sparse: dict | None = None, schema: LabelSchema = PAPER,
                  dtype: np.dtype | None = None) -> np.ndarray:
    """Catalogue rows from reader metadata (N,) META_DTYPE, labels y (N, M) and the VMP estimate (N,).

    schema: the model's labels (``LabelSchema.from_metadata(checkpoint metadata)``; default the
    paper's 23 and feh_VMP): y's columns in ``schema.names`` order; vmp is ignored for a schema
    without a VMP rule. dtype: the catalogue dtype (default ``catalog_dtype(schema,
    astrometry.ks_label)``): exactly its columns are filled; the distance and X/Y/Z columns only
    when the model predicts ``astrometry.ks_label``. ranges: (M, 2) flag ranges (flag bit 1
    outside or NaN), vmp_range the VMP label's (lo, hi) (None without VMP), errors the Err_ model, all as
    ``jaxvac.run.uncertainties.run_ranges`` / ``run_error_model`` chose them. ood: (N,) ood_score
    (None: the checkpoint has no basis; NaN column, bit 1 never set); ood_threshold: the
    checkpoint's. masked: (N,) bool, the device step masked pixels outside the input range.
    sparse: set -> (N,) bool, the estimates lie where the set's training stars are sparse
    (``jaxvac.kernels.neighbours.sparse_rows``): FLAG_SPARSE in flag_ of the set's labels.
    """
    n = len(meta)
    names = schema.names
    dtype = catalog_dtype(schema, astrometry.ks_label) if dtype is None else np.dtype(dtype)
    y = np.asarray(y)
    if y.ndim != 2 or y.shape != (n, len(names)):
        raise ValueError(f"assemble_rows needs y ({n}, {len(names)}) for the labels {list(names)}, got {y.shape}.")
    rows = empty_catalog(n, dtype)
    rows["obsid"] = meta["obsid"]
    try:  # LAMOST designations are ASCII; the slow per-element encoding only for odd ones
        rows["designation"] = meta["designation"].astype(dtype["designation"])
    except UnicodeEncodeError:
        rows["designation"] = np.char.encode(meta["designation"], "ascii", "replace")
    rows["ra_obs"], rows["dec_obs"] = meta["ra_obs"], meta["dec_obs"]
    ra = np.where(np.isfinite(meta["ra"]), meta["ra"], meta["ra_obs"])
    dec = np.where(np.isfinite(meta["dec"]), meta["dec"], meta["dec_obs"])
    rows["gl"], rows["gb"] = galactic(ra, dec)
    snrg = meta["snrg"].astype(np.float64)
    rows["snrg"], rows["rv"], rows["Err_rv"] = snrg, meta["rv"], meta["rv_err"]
    err = label_errors(y, snrg, errors, names)
    flags = range_flags(y, ranges)
    for set_name, where in (sparse or {}).items():
        flags[:, schema.of_set(set_name)] |= np.where(np.asarray(where, bool), FLAG_SPARSE, 0)[:, None].astype(flags.dtype)
    for k, name in enumerate(names):
        rows[name], rows[f"Err_{name}"], rows[f"flag_{name}"] = y[:, k], err[:, k], flags[:, k]
    if schema.vmp is not None:
        v = schema.vmp.label.name
        rows[v] = vmp
        rows[f"Err_{v}"] = vmp_error(vmp, snrg, errors)
        rows[f"flag_{v}"] = range_flags(vmp, np.asarray(vmp_range, np.float64))
    rows["qflag"] = quality_flags(n, ood, ood_threshold, masked)
    if ood is not None:
        rows["ood_score"] = ood
    distance = "dist_phot" in dtype.names
    if distance and astrometry.ks_label not in names:
        raise ValueError(f"assemble_rows: the catalogue dtype has dist_phot but the labels {list(names)} lack "
                         f"[astrometry] ks_label = {astrometry.ks_label!r}; build it with catalog_dtype(schema, ks_label).")
    if crossmatch is not None:
        xm = crossmatch.lookup(meta["obsid"])
        rows["gaiaid"], rows["EBV"] = xm["gaiaid"], xm["ebv"]
        if distance:
            k = names.index(astrometry.ks_label)
            d, e_d = photometric_distance(xm["ks"], xm["e_ks"], y[:, k], err[:, k], xm["ebv"], xm["e_ebv"],
                                          astrometry.r_ks)
            rows["dist_phot"], rows["Err_dist_phot"] = d, e_d
            xyz, e_xyz = galactocentric(ra, dec, d, e_d, astrometry)
            for j, axis in enumerate("XYZ"):
                rows[axis], rows[f"Err_{axis}"] = xyz[:, j], e_xyz[:, j]
    if distance:
        rows["flag_dist_phot"] = distance_flag(rows["dist_phot"], rows["Err_dist_phot"],
                                               rows[f"flag_{astrometry.ks_label}"], astrometry)
    return rows


def distance_flag(d_kpc: np.ndarray, e_d_kpc: np.ndarray, flag_a_ks: np.ndarray, astrometry: AstrometryConfig) -> np.ndarray:
    """flag_dist_phot, (N,) uint8: 1 where the distance is missing (NaN, inf), beyond
    ``astrometry.dist_max_kpc``, its relative error Err / d above ``astrometry.dist_max_frac_err``,
    or flag_a_ks != 0 (the flag of the M_Ks label ``astrometry.ks_label`` it rests on: outside the
    training range, or where its training stars are sparse); else 0. A NaN error
    alone (e_Ks or e_E(B-V) missing in the cross-match) does not flag. docs/catalogue.md."""
    d = np.asarray(d_kpc, np.float64)
    e = np.asarray(e_d_kpc, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bad = ~np.isfinite(d) | (d > astrometry.dist_max_kpc) | (e > astrometry.dist_max_frac_err * d)
    return (bad | (np.asarray(flag_a_ks) != 0)).astype(np.uint8)


FLAG_SPARSE = 2  # flag_<label> bit (bit 1: outside the flag range): where the label's training set has few stars (train/guard.py)
QFLAG_OOD = 1  # qflag bit: ood_score above the checkpoint's threshold, or not computable (snrg unusable)
QFLAG_INPUT_MASKED = 2  # qflag bit: pixels outside the networks' input range were masked (Layout, docs/errors.md)


def quality_flags(n: int, ood=None, ood_threshold: float = float("nan"), masked=None) -> np.ndarray:
    """qflag (N,) uint8: QFLAG_OOD where ``not ood <= ood_threshold`` (ood given), QFLAG_INPUT_MASKED
    where ``masked``."""
    q = np.zeros(n, np.uint8)
    if ood is not None:
        q |= np.where(np.asarray(ood, np.float64) <= ood_threshold, 0, QFLAG_OOD).astype(np.uint8)
    if masked is not None:
        q |= np.where(np.asarray(masked, bool), QFLAG_INPUT_MASKED, 0).astype(np.uint8)
    return q


def finalize(rows: np.ndarray) -> np.ndarray:
    """Whole-catalogue columns: uqflag per star (Gaia source id, else the LAMOST designation)."""
    star = np.where(rows["gaiaid"] >= 0, np.char.add(b"G", rows["gaiaid"].astype("S20")),
                    np.char.add(b"D", rows["designation"]))
    rows = rows.copy()
    rows["uqflag"] = unique_flag(star, rows["snrg"], rows["obsid"])
    return rows


def skip_reasons(cls: np.ndarray, snrg: np.ndarray, classes: tuple[str, ...], min_snrg: float) -> np.ndarray:
    """Why each spectrum is skipped ("" when it is processed): its CLASS is not in ``classes``,
    or snrg <= min_snrg (or missing) when min_snrg > 0. Work is per distinct value, not per row."""
    out = np.full(len(cls), "", dtype="U64")
    names, inv = np.unique(cls, return_inverse=True)
    for k, c in enumerate(names):
        c = str(c).strip()
        if c not in classes:
            out[inv == k] = f"class {c or 'missing'}"
    if min_snrg > 0:
        snrg = np.asarray(snrg, np.float64)
        low = (out == "") & ~(snrg > min_snrg)
        out[low & np.isfinite(snrg)] = f"snrg <= {min_snrg:g}"
        out[low & ~np.isfinite(snrg)] = "snrg missing"
    return out


def reject_reasons(status: np.ndarray, bits: dict[str, int]) -> np.ndarray:
    """A reject reason per spectrum when normalisation left it unusable (a window not fitted),
    else "". status: int (N,) OR of the kernel's status bits."""
    window = {name: bit for name, bit in bits.items() if "window" in name}
    mask = functools.reduce(lambda a, b: a | b, window.values(), 0)
    out = np.full(len(status), "", dtype="U200")
    hit = np.asarray(status) & mask
    for s in np.unique(hit[hit != 0]):
        out[hit == s] = "normalisation failed: " + ", ".join(name for name, bit in window.items() if s & bit)
    return out
