"""The value-added catalogue: its columns (SPEC.md "The catalogue"), and atomic FITS/Parquet I/O.

One row per spectrum. Column names, units (FITS TUNIT) and meanings are defined once here;
the pipeline fills a structured array of ``CATALOG_DTYPE`` and hands it to ``write_catalog``.
Missing values: NaN for floats, -1 for integer ids, flags set to 1 where the value is missing.
Flags and uqflag are unsigned bytes (uint8; FITS 'B' without TZERO), so every reader gets integers.
Units: TUNIT strings of the FITS standard ("K", "deg", "km/s", "kpc", "mag"), and "dex" for the
logarithmic labels, which FITS has no unit for: the FITS writer (jaxvac.io.fitstable) writes that
one as TCOMMn = 'unit: dex' instead of TUNITn, so astropy reads the file without UnitsWarning
(docs/catalogue.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxvac.io.atomic import atomic_path
from jaxvac.labels import LABELS, VMP

_BAND_LABELS = [l for l in LABELS if l.unit == "mag"]
_DEX_ORDER = ["logg_PASTEL", "logg_APOGEE", "feh_PASTEL", "feh_APOGEE", "feh_VMP", "MH_APOGEE",
              "AFE_APOGEE", "CFE_APOGEE", "NFE_APOGEE"]
_UNITS = {l.name: l.unit for l in LABELS + (VMP,)}
PARAMETERS: tuple[str, ...] = ("Teff_PASTEL", *_DEX_ORDER, "dist_phot", *(l.name for l in _BAND_LABELS))


_FLAG_MEANING = {"dist_phot": "1 if dist_phot is missing or implausible (Err_dist_phot / dist_phot or dist_phot "
                              "above the [astrometry] limits) or flag_a_ks = 1, else 0 (docs/catalogue.md)"}


def _columns() -> list[tuple[str, str, str, str]]:
    """(name, numpy dtype, TUNIT, description) of every catalogue column, in order."""
    cols = [
        ("gaiaid", "i8", "", "Gaia EDR3 source_id from the cross-match, -1 if none"),
        ("obsid", "i8", "", "LAMOST OBSID, -1 if absent (DR1)"),
        ("designation", "S20", "", "LAMOST DESIG"),
        ("ra_obs", "f8", "deg", "fibre right ascension, ICRS"),
        ("dec_obs", "f8", "deg", "fibre declination, ICRS"),
        ("gl", "f8", "deg", "Galactic longitude"),
        ("gb", "f8", "deg", "Galactic latitude"),
        ("snrg", "f4", "", "signal-to-noise ratio in the g band (SNRG)"),
        ("rv", "f4", "km/s", "radial velocity, Z * c"),
        ("Err_rv", "f4", "km/s", "radial velocity error, Z_ERR * c"),
    ]
    for name in ("Teff_PASTEL", *_DEX_ORDER):
        cols.append((name, "f4", _UNITS[name], f"{name} from its network"))
        cols.append((f"Err_{name}", "f4", _UNITS[name], f"error of {name}: sqrt(sigma_r^2 + sigma_m^2)"))
    cols.append(("dist_phot", "f4", "kpc", "spectro-photometric distance from Ks and a_ks"))
    cols.append(("Err_dist_phot", "f4", "kpc", "error of dist_phot"))
    for l in _BAND_LABELS:
        cols.append((l.name, "f4", "mag", l.description))
        cols.append((f"Err_{l.name}", "f4", "mag", f"error of {l.name}"))
    for axis in "XYZ":
        cols.append((axis, "f4", "kpc", f"Galactocentric {axis} (X away from the Sun, Y rotation, Z to NGP)"))
    for axis in "XYZ":
        cols.append((f"Err_{axis}", "f4", "kpc", f"error of {axis}"))
    cols.append(("EBV", "f4", "mag", "E(B-V) from the cross-match"))
    cols.append(("uqflag", "u1", "", "1 for the highest-snrg spectrum of each star, else 0"))
    for p in PARAMETERS:
        cols.append((f"flag_{p}", "u1", "", _FLAG_MEANING.get(p, f"1 if {p} is outside its training range or missing, else 0")))
    # --- issue 12 (errors, flags, inputs unlike the training set; jaxvac.run.rows.quality_flags) ---
    cols.append(("ood_score", "f4", "", "unlike the training spectra: PCA residual over noise (docs/errors.md), NaN if not computed"))
    cols.append(("qflag", "u1", "", "quality bits: 1 ood_score above the checkpoint's threshold, 2 input pixels "
                                    "outside the training range were masked"))
    # --- end issue 12 ---
    return cols


COLUMNS = _columns()
CATALOG_DTYPE = np.dtype([(n, t) for n, t, _, _ in COLUMNS])
UNITS = {n: unit for n, _, unit, _ in COLUMNS}

REJECT_DTYPE = np.dtype([("path", "S512"), ("reason", "S256")])
# Inputs read but not processed (CLASS not wanted, snrg too low): every input is a row, a reject
# or one of these, so NINPUTS = NROWS + NREJECT + NSKIPPED in the header (+ NMISSING if PARTIAL).
SKIPPED_DTYPE = np.dtype([("path", "S512"), ("obsid", "i8"), ("reason", "S64")])


def _missing_row() -> np.ndarray:
    row = np.zeros((), dtype=CATALOG_DTYPE)
    for name, t, _, _ in COLUMNS:
        if t.startswith("f"):
            row[name] = np.nan
        elif name in ("gaiaid", "obsid"):
            row[name] = -1
        elif name.startswith("flag_"):
            row[name] = 1
    return row


_MISSING_ROW = _missing_row()


def empty_catalog(n: int) -> np.ndarray:
    """n rows holding every column's missing value: NaN, -1 for the ids, flag 1."""
    rows = np.empty(n, dtype=CATALOG_DTYPE)
    rows[...] = _MISSING_ROW  # one row broadcast: a copy per row, not a pass per column
    return rows


def rejects_table(rejects) -> np.ndarray:
    """Structured array (path, reason) from Reject objects or (path, reason) pairs."""
    out = np.zeros(len(rejects), dtype=REJECT_DTYPE)
    for i, r in enumerate(rejects):
        path, reason = (r.path, r.reason) if hasattr(r, "path") else r
        out[i] = (str(path).encode("utf-8", "replace")[:512], str(reason).encode("utf-8", "replace")[:256])
    return out


def write_catalog(path: str | Path, rows: np.ndarray, rejects=(), header: dict | None = None,
                  fmt: str | None = None, skipped: np.ndarray | None = None) -> Path:
    """Write the catalogue atomically (jaxvac.io.atomic: temporary name, then rename); return its path.

    header: {KEYWORD: value or (value, comment)}, the provenance cards (model, config, version...).
    skipped: SKIPPED_DTYPE rows (path, obsid, reason) of the inputs skipped by class or snrg.
    FITS: HDU 1 ``CATALOG`` (TUNIT per column, the ``header`` cards), HDU 2 ``REJECTS`` (path,
    reason), HDU 3 ``SKIPPED`` (path, obsid, reason). Parquet (``fmt="parquet"`` or a .parquet
    suffix): the catalogue with units and the cards in the schema metadata, the others in
    ``<name>.rejects.parquet`` and ``<name>.skipped.parquet`` (written first: the catalogue
    itself is renamed into place last).
    """
    path = Path(path)
    fmt = fmt or ("parquet" if path.suffix == ".parquet" else "fits")
    if rows.dtype != CATALOG_DTYPE:
        raise ValueError(f"catalogue rows must have CATALOG_DTYPE; got fields {rows.dtype.names[:5]}...")
    rej = rejects if isinstance(rejects, np.ndarray) else rejects_table(list(rejects))
    skip = np.zeros(0, SKIPPED_DTYPE) if skipped is None else np.asarray(skipped).astype(SKIPPED_DTYPE)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "fits":
        from jaxvac.io.fitstable import write_tables

        cards = {k[:8].upper(): v for k, v in (header or {}).items()}
        write_tables(path, [("CATALOG", rows, UNITS, cards), ("REJECTS", rej.astype(REJECT_DTYPE), None, None),
                            ("SKIPPED", skip, None, None)])
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        value = lambda v: str(v[0] if isinstance(v, tuple) else v)  # noqa: E731  (drop the FITS comment)
        meta = {"units": repr(UNITS), **{str(k): value(v) for k, v in (header or {}).items()}}
        table = pa.table({n: _arrow_col(rows[n]) for n in CATALOG_DTYPE.names}).replace_schema_metadata(meta)
        for suffix, t, dtype in ((".rejects.parquet", rej, REJECT_DTYPE), (".skipped.parquet", skip, SKIPPED_DTYPE)):
            with atomic_path(path.with_name(path.stem + suffix)) as tmp:
                pq.write_table(pa.table({n: _arrow_col(t[n]) for n in dtype.names}), tmp)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
    else:
        raise ValueError(f"unknown catalogue format {fmt!r}; use 'fits' or 'parquet'.")
    return path


def _arrow_col(a: np.ndarray):
    return np.char.decode(a, "utf-8") if a.dtype.kind == "S" else a


def read_catalog(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read (rows, rejects) from a catalogue written by write_catalog (FITS or .parquet)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        def table(p, dtype):
            t = pq.read_table(p)
            out = np.zeros(t.num_rows, dtype=dtype)
            for name in dtype.names:
                col = t.column(name).to_numpy(zero_copy_only=False)
                out[name] = np.char.encode(col.astype(str), "utf-8") if dtype[name].kind == "S" else col
            return out

        rej = path.with_name(path.stem + ".rejects.parquet")
        return table(path, CATALOG_DTYPE), table(rej, REJECT_DTYPE) if rej.is_file() else np.zeros(0, REJECT_DTYPE)
    import fitsio

    with fitsio.FITS(str(path)) as f:
        rows = f["CATALOG"].read()
        rej = f["REJECTS"].read() if f["REJECTS"].get_nrows() else np.zeros(0, REJECT_DTYPE)
    return rows.astype(CATALOG_DTYPE), rej.astype(REJECT_DTYPE)


def read_skipped(path: str | Path) -> np.ndarray:
    """The SKIPPED table (path, obsid, reason) of a catalogue; empty for catalogues without one."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        side = path.with_name(path.stem + ".skipped.parquet")
        if not side.is_file():
            return np.zeros(0, SKIPPED_DTYPE)
        t = pq.read_table(side)
        out = np.zeros(t.num_rows, SKIPPED_DTYPE)
        for name in SKIPPED_DTYPE.names:
            col = t.column(name).to_numpy(zero_copy_only=False)
            out[name] = np.char.encode(col.astype(str), "utf-8") if SKIPPED_DTYPE[name].kind == "S" else col
        return out
    import fitsio

    with fitsio.FITS(str(path)) as f:
        if "SKIPPED" not in f or not f["SKIPPED"].get_nrows():
            return np.zeros(0, SKIPPED_DTYPE)
        return f["SKIPPED"].read().astype(SKIPPED_DTYPE)


def read_header(path: str | Path) -> dict[str, str]:
    """The provenance cards of a catalogue as strings ({KEYWORD: value}; FITS: the CATALOG HDU's
    header, Parquet: the schema metadata)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        return {k.decode(): v.decode() for k, v in meta.items()}
    import fitsio

    h = fitsio.read_header(str(path), "CATALOG")
    return {k: str(h[k]) for k in h.keys() if k}
