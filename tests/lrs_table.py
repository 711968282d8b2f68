"""The official LAMOST LRS catalogue's layout, written from a spectra index (tests only)."""

from __future__ import annotations

import csv

import numpy as np


def write_lrs_catalogue(idx: np.ndarray, path) -> None:
    """A CSV with the LRS catalogue's columns (obsid, lmjd, planid, spid, fiberid, ra, dec, snrg,
    class, z) for every row of ``idx`` (``jaxvac.io.spectra_index.read_index``): its rows find
    spec-<lmjd>-<planid>_sp<spid>-<fiberid>.fits[.gz] (or <obsid>.fits[.gz]) under --data."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["obsid", "lmjd", "planid", "spid", "fiberid", "ra", "dec", "snrg", "class", "z"])
        for i in range(len(idx)):
            z = idx["rv"][i] / 299792.458 if np.isfinite(idx["rv"][i]) else -9999
            w.writerow([idx["obsid"][i], idx["lmjd"][i], idx["planid"][i], idx["spid"][i], idx["fiberid"][i],
                        idx["ra"][i], idx["dec"][i], f"{idx['snrg'][i]:.2f}", idx["class"][i], z])
