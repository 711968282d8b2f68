"""The value-added catalogue: its columns (SPEC.md "The catalogue"), and atomic FITS/Parquet I/O.

One row per spectrum. Column names, units (FITS TUNIT) and meanings are defined once here;
the pipeline fills a structured array of ``CATALOG_DTYPE`` and hands it to ``write_catalog``.
Missing values: NaN for floats, -1 for integer ids, flags set to 1 where the value is missing.
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
    cols.append(("uqflag", "i1", "", "1 for the highest-snrg spectrum of each star, else 0"))
    for p in PARAMETERS:
        cols.append((f"flag_{p}", "i1", "", f"1 if {p} is outside its training range or missing, else 0"))
    return cols


COLUMNS = _columns()
CATALOG_DTYPE = np.dtype([(n, t) for n, t, _, _ in COLUMNS])
UNITS = {n: unit for n, _, unit, _ in COLUMNS}

REJECT_DTYPE = np.dtype([("path", "S512"), ("reason", "S256")])


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
                  fmt: str | None = None) -> Path:
    """Write the catalogue atomically (jaxvac.io.atomic: temporary name, then rename); return its path.

    header: {KEYWORD: value or (value, comment)}, the provenance cards (model, config, version...).
    FITS: HDU 1 ``CATALOG`` (TUNIT per column, the ``header`` cards),
    HDU 2 ``REJECTS`` (path, reason). Parquet (``fmt="parquet"`` or a .parquet suffix): the
    catalogue with units in the schema metadata, rejects in ``<name>.rejects.parquet``.
    """
    path = Path(path)
    fmt = fmt or ("parquet" if path.suffix == ".parquet" else "fits")
    if rows.dtype != CATALOG_DTYPE:
        raise ValueError(f"catalogue rows must have CATALOG_DTYPE; got fields {rows.dtype.names[:5]}...")
    rej = rejects if isinstance(rejects, np.ndarray) else rejects_table(list(rejects))
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "fits":
        from jaxvac.io.fitstable import write_tables

        cards = {k[:8].upper(): v for k, v in (header or {}).items()}
        write_tables(path, [("CATALOG", rows, UNITS, cards), ("REJECTS", rej.astype(REJECT_DTYPE), None, None)])
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        value = lambda v: str(v[0] if isinstance(v, tuple) else v)  # noqa: E731  (drop the FITS comment)
        meta = {"units": repr(UNITS), **{str(k): value(v) for k, v in (header or {}).items()}}
        table = pa.table({n: _arrow_col(rows[n]) for n in CATALOG_DTYPE.names}).replace_schema_metadata(meta)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        with atomic_path(path.with_name(path.stem + ".rejects.parquet")) as tmp:
            pq.write_table(pa.table({n: _arrow_col(rej[n]) for n in REJECT_DTYPE.names}), tmp)
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
