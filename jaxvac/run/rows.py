"""Catalogue rows from the device step's outputs: errors, flags, rv, gl/gb, distance, X/Y/Z, uqflag;
and why a spectrum is skipped or rejected instead.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxvac.io.crossmatch import CrossMatch
from jaxvac.labels import LABEL_NAMES
from jaxvac.run.astrometry import AstrometryConfig, galactic, galactocentric, photometric_distance, unique_flag
from jaxvac.run.catalog import CATALOG_DTYPE, empty_catalog
from jaxvac.run.uncertainties import ErrorModel, label_errors, range_flags, vmp_error


def assemble_rows(meta: np.ndarray, y: np.ndarray, vmp: np.ndarray, *, ranges: np.ndarray, vmp_range,
                  errors: ErrorModel, crossmatch: CrossMatch | None, astrometry: AstrometryConfig) -> np.ndarray:
    """Catalogue rows from reader metadata (N,) META_DTYPE, labels y (N, 23) and feh_VMP (N,).

    ranges: (23, 2) training ranges from the checkpoint (flag = 1 outside or NaN).
    """
    n = len(meta)
    rows = empty_catalog(n)
    rows["obsid"] = meta["obsid"]
    try:  # LAMOST designations are ASCII; the slow per-element encoding only for odd ones
        rows["designation"] = meta["designation"].astype(CATALOG_DTYPE["designation"])
    except UnicodeEncodeError:
        rows["designation"] = np.char.encode(meta["designation"], "ascii", "replace")
    rows["ra_obs"], rows["dec_obs"] = meta["ra_obs"], meta["dec_obs"]
    ra = np.where(np.isfinite(meta["ra"]), meta["ra"], meta["ra_obs"])
    dec = np.where(np.isfinite(meta["dec"]), meta["dec"], meta["dec_obs"])
    rows["gl"], rows["gb"] = galactic(ra, dec)
    snrg = meta["snrg"].astype(np.float64)
    rows["snrg"], rows["rv"], rows["Err_rv"] = snrg, meta["rv"], meta["rv_err"]
    err = label_errors(y, snrg, errors)
    flags = range_flags(y, ranges)
    for k, name in enumerate(LABEL_NAMES):
        rows[name], rows[f"Err_{name}"], rows[f"flag_{name}"] = y[:, k], err[:, k], flags[:, k]
    rows["feh_VMP"] = vmp
    rows["Err_feh_VMP"] = vmp_error(vmp, snrg, errors)
    rows["flag_feh_VMP"] = range_flags(vmp, np.asarray(vmp_range, np.float64))
    if crossmatch is not None:
        xm = crossmatch.lookup(meta["obsid"])
        rows["gaiaid"], rows["EBV"] = xm["gaiaid"], xm["ebv"]
        k = LABEL_NAMES.index("a_ks")
        d, e_d = photometric_distance(xm["ks"], xm["e_ks"], y[:, k], err[:, k], xm["ebv"], xm["e_ebv"], astrometry.r_ks)
        rows["dist_phot"], rows["Err_dist_phot"] = d, e_d
        xyz, e_xyz = galactocentric(ra, dec, d, e_d, astrometry)
        for j, axis in enumerate("XYZ"):
            rows[axis], rows[f"Err_{axis}"] = xyz[:, j], e_xyz[:, j]
    rows["flag_dist_phot"] = (~np.isfinite(rows["dist_phot"])).astype(np.int8)
    return rows


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
