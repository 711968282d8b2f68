"""The value-added catalogue: its columns (SPEC.md "The catalogue"), and atomic FITS/Parquet I/O.

One row per spectrum. The columns follow the labels of the model that made them
(:class:`jaxvac.labels.LabelSchema`, stored in the checkpoint): :func:`catalog_columns` gives
(name, dtype, unit, description) of every column for a schema, :func:`catalog_dtype` the
structured dtype the pipeline fills and hands to ``write_catalog``. ``COLUMNS``,
``CATALOG_DTYPE``, ``UNITS`` and ``PARAMETERS`` are those of the paper's schema
(``jaxvac.labels.PAPER``, configs/dr8.toml), exactly SPEC.md's list.

Column order (docs/catalogue.md): the ids and positions; the non-magnitude labels (unit other
than "mag"), those of the paper in the paper's order, then the others in the checkpoint's order,
the VMP label where the paper puts feh_VMP (else after them), each followed by Err_<name>; the
distance dist_phot, Err_dist_phot; the magnitude labels (the paper's bands in its order, then the
others) with Err_; X, Y, Z, Err_X, Err_Y, Err_Z; EBV, uqflag; flag_<parameter> in the order of
the parameters; ood_score, qflag. The distance and position columns exist only when the model
predicts the label ``[astrometry] ks_label`` (M_Ks; "a_ks" in dr8.toml).

Missing values: NaN for floats, -1 for integer ids, flags set to 1 where the value is missing.
Flags and uqflag are unsigned bytes (uint8; FITS 'B' without TZERO), so every reader gets integers.
Units: TUNIT strings of the FITS standard ("K", "deg", "km/s", "kpc", "mag"), and "dex" for the
logarithmic labels, which FITS has no unit for: the FITS writer (jaxvac.io.fitstable) writes that
one as TCOMMn = 'unit: dex' instead of TUNITn, so astropy reads the file without UnitsWarning
(docs/catalogue.md). Parquet keeps every column's unit in the schema metadata ``units``.
:func:`read_units` reads them back from either.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from jaxvac.config import recipe
from jaxvac.io.atomic import atomic_path
from jaxvac.labels import PAPER, LabelSchema

__all__ = ["CATALOG_DTYPE", "COLUMNS", "UNITS", "PARAMETERS", "KS_LABEL", "REJECT_DTYPE", "SKIPPED_DTYPE",
           "catalog_columns", "catalog_dtype", "catalog_parameters", "catalog_units", "catalog_labels",
           "has_distance", "empty_catalog", "rejects_table", "write_catalog", "read_catalog", "read_units",
           "read_skipped", "read_header"]

KS_LABEL: str = recipe()["astrometry"]["ks_label"]  # dr8.toml: the label M_Ks the distance rests on
# The paper's order of its non-magnitude labels, feh_VMP among them (SPEC.md "The catalogue")
_PAPER_ORDER = ("Teff_PASTEL", "logg_PASTEL", "logg_APOGEE", "feh_PASTEL", "feh_APOGEE", "feh_VMP", "MH_APOGEE",
                "AFE_APOGEE", "CFE_APOGEE", "NFE_APOGEE")
_PAPER_BANDS = tuple(lab.name for lab in PAPER.labels if lab.unit == "mag")
_HEAD = [
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
_DISTANCE = ("dist_phot", "Err_dist_phot", "flag_dist_phot", "X", "Y", "Z", "Err_X", "Err_Y", "Err_Z")
_TAIL_UNITS = {"dist_phot": "kpc", "X": "kpc", "Y": "kpc", "Z": "kpc", "EBV": "mag", "uqflag": "", "ood_score": "",
               "qflag": ""}


def has_distance(schema: LabelSchema, ks_label: str | None = KS_LABEL) -> bool:
    """True when the catalogue of ``schema`` has the distance and position columns: the model
    predicts the label ``ks_label`` (M_Ks)."""
    return ks_label is not None and ks_label in schema.names


def catalog_labels(schema: LabelSchema = PAPER) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(non-magnitude labels, magnitude labels) of ``schema`` in catalogue order (module docstring);
    the VMP label is among the first."""
    vmp = schema.vmp.label.name if schema.vmp else None
    body_names = [lab.name for lab in schema.labels if lab.unit != "mag"] + ([vmp] if vmp else [])
    body = [n for n in _PAPER_ORDER if n in body_names]
    body += [n for n in body_names if n not in body and n != vmp]
    if vmp and vmp not in body:
        body.append(vmp)
    mags = [lab.name for lab in schema.labels if lab.unit == "mag"]
    bands = [n for n in _PAPER_BANDS if n in mags] + [n for n in mags if n not in _PAPER_BANDS]
    return tuple(body), tuple(bands)


def catalog_parameters(schema: LabelSchema = PAPER, ks_label: str | None = KS_LABEL) -> tuple[str, ...]:
    """The columns that have a flag_<name>, in catalogue order: the non-magnitude labels (with the
    VMP label), dist_phot (when :func:`has_distance`), the magnitude labels."""
    body, bands = catalog_labels(schema)
    return (*body, *(("dist_phot",) if has_distance(schema, ks_label) else ()), *bands)


@functools.lru_cache(maxsize=32)
def catalog_columns(schema: LabelSchema = PAPER, ks_label: str | None = KS_LABEL) -> tuple[tuple[str, str, str, str], ...]:
    """(name, numpy dtype, unit, description) of every catalogue column of a model with labels
    ``schema``, in order (module docstring). ks_label: the label M_Ks of the distance
    (``[astrometry] ks_label``); None or a label the schema lacks: no distance/position columns."""
    units = schema.units
    desc = {lab.name: lab.description for lab in schema.with_vmp}
    body, bands = catalog_labels(schema)
    dist = has_distance(schema, ks_label)
    cols = list(_HEAD)
    for name in body:
        cols.append((name, "f4", units[name], f"{name} from its network"))
        cols.append((f"Err_{name}", "f4", units[name], f"error of {name}: sqrt(sigma_r^2 + sigma_m^2)"))
    if dist:
        cols.append(("dist_phot", "f4", "kpc", f"spectro-photometric distance from Ks and {ks_label}"))
        cols.append(("Err_dist_phot", "f4", "kpc", "error of dist_phot"))
    for name in bands:
        cols.append((name, "f4", units[name], desc[name] or f"{name} from its network"))
        cols.append((f"Err_{name}", "f4", units[name], f"error of {name}"))
    if dist:
        for axis in "XYZ":
            cols.append((axis, "f4", "kpc", f"Galactocentric {axis} (X away from the Sun, Y rotation, Z to NGP)"))
        for axis in "XYZ":
            cols.append((f"Err_{axis}", "f4", "kpc", f"error of {axis}"))
    cols.append(("EBV", "f4", "mag", "E(B-V) from the cross-match"))
    cols.append(("uqflag", "u1", "", "1 for the highest-snrg spectrum of each star, else 0"))
    for p in catalog_parameters(schema, ks_label):
        meaning = (f"1 if dist_phot is missing or implausible (Err_dist_phot / dist_phot or dist_phot above the "
                   f"[astrometry] limits) or flag_{ks_label} != 0, else 0 (docs/catalogue.md)" if p == "dist_phot" else
                   f"bits: 1 {p} outside its training range or missing, 2 where its training set has few stars "
                   f"(docs/errors.md); 0 neither")
        cols.append((f"flag_{p}", "u1", "", meaning))
    # --- issue 12 (errors, flags, inputs unlike the training set; jaxvac.run.rows.quality_flags) ---
    cols.append(("ood_score", "f4", "", "unlike the training spectra: PCA residual over noise (docs/errors.md), NaN if not computed"))
    cols.append(("qflag", "u1", "", "quality bits: 1 ood_score above the checkpoint's threshold, 2 input pixels "
                                    "outside the training range were masked"))
    # --- end issue 12 ---
    return tuple(cols)


def catalog_dtype(schema: LabelSchema = PAPER, ks_label: str | None = KS_LABEL) -> np.dtype:
    """The structured dtype of the catalogue rows of a model with labels ``schema``."""
    return np.dtype([(n, t) for n, t, _, _ in catalog_columns(schema, ks_label)])


COLUMNS = list(catalog_columns(PAPER, KS_LABEL))
CATALOG_DTYPE = catalog_dtype(PAPER, KS_LABEL)
UNITS = {n: unit for n, _, unit, _ in COLUMNS}
PARAMETERS: tuple[str, ...] = catalog_parameters(PAPER, KS_LABEL)
_FIXED = tuple(n for n, _, _, _ in _HEAD) + ("EBV", "uqflag", "ood_score", "qflag")


def catalog_units(dtype: np.dtype, units: Mapping[str, str] | None = None) -> dict[str, str]:
    """{column: unit} of every column of a catalogue ``dtype``: from ``units`` (labels' units,
    ``schema.units``, or whole columns), else the paper's table (``UNITS``); Err_<x> takes x's
    unit, flag_<x> none. Raises ValueError naming a column whose unit is known from neither."""
    given = dict(units or {})
    out = {}
    for name in dtype.names:
        if name in given:
            out[name] = given[name]
        elif name.startswith("flag_"):
            out[name] = ""
        elif name.startswith("Err_") and name[4:] in given:
            out[name] = given[name[4:]]
        elif name in UNITS:
            out[name] = UNITS[name]
        else:
            raise ValueError(f"catalogue column {name!r} has no known unit; pass units={{'{name}': ...}} "
                             f"(the schema's units, LabelSchema.units) to write_catalog.")
    return out


def _check_dtype(dtype: np.dtype) -> None:
    names = dtype.names or ()
    missing = [n for n in _FIXED if n not in names]
    unflagged = [n for n in names if not n.startswith(("Err_", "flag_")) and f"Err_{n}" in names
                 and f"flag_{n}" not in names and n not in ("rv", "X", "Y", "Z")]
    if missing or unflagged:
        raise ValueError(f"catalogue rows must have CATALOG_DTYPE or a catalog_dtype(schema) layout; got fields "
                         f"{names[:5]}... ({'missing ' + str(missing) if missing else 'no flag_ for ' + str(unflagged)}).")

REJECT_DTYPE = np.dtype([("path", "S512"), ("reason", "S256")])
# Inputs read but not processed (CLASS not wanted, snrg too low): every input is a row, a reject
# or one of these, so NINPUTS = NROWS + NREJECT + NSKIPPED in the header (+ NMISSING if PARTIAL).
SKIPPED_DTYPE = np.dtype([("path", "S512"), ("obsid", "i8"), ("reason", "S64")])


@functools.lru_cache(maxsize=32)
def _missing_row(dtype: np.dtype) -> np.ndarray:
    row = np.zeros((), dtype=dtype)
    for name in dtype.names:
        if dtype[name].kind == "f":
            row[name] = np.nan
        elif name in ("gaiaid", "obsid"):
            row[name] = -1
        elif name.startswith("flag_"):
            row[name] = 1
    return row


def empty_catalog(n: int, dtype: np.dtype = CATALOG_DTYPE) -> np.ndarray:
    """n rows of a catalogue ``dtype`` (default the paper's) holding every column's missing value:
    NaN, -1 for the ids, flag 1."""
    rows = np.empty(n, dtype=dtype)
    rows[...] = _missing_row(np.dtype(dtype))  # one row broadcast: a copy per row, not a pass per column
    return rows


def rejects_table(rejects) -> np.ndarray:
    """Structured array (path, reason) from Reject objects or (path, reason) pairs."""
    out = np.zeros(len(rejects), dtype=REJECT_DTYPE)
    for i, r in enumerate(rejects):
        path, reason = (r.path, r.reason) if hasattr(r, "path") else r
        out[i] = (str(path).encode("utf-8", "replace")[:512], str(reason).encode("utf-8", "replace")[:256])
    return out


def write_catalog(path: str | Path, rows: np.ndarray, rejects=(), header: dict | None = None,
                  fmt: str | None = None, skipped: np.ndarray | None = None,
                  units: Mapping[str, str] | None = None) -> Path:
    """Write the catalogue atomically (jaxvac.io.atomic: temporary name, then rename); return its path.

    rows: a structured array of CATALOG_DTYPE or of :func:`catalog_dtype` of a schema.
    units: {label or column: unit} for columns the paper's table does not know (a schema's
    ``units``); see :func:`catalog_units`.
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
    _check_dtype(rows.dtype)
    col_units = catalog_units(rows.dtype, units)
    rej = rejects if isinstance(rejects, np.ndarray) else rejects_table(list(rejects))
    skip = np.zeros(0, SKIPPED_DTYPE) if skipped is None else np.asarray(skipped).astype(SKIPPED_DTYPE)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "fits":
        from jaxvac.io.fitstable import write_tables

        cards = {k[:8].upper(): v for k, v in (header or {}).items()}
        write_tables(path, [("CATALOG", rows, col_units, cards), ("REJECTS", rej.astype(REJECT_DTYPE), None, None),
                            ("SKIPPED", skip, None, None)])
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        value = lambda v: str(v[0] if isinstance(v, tuple) else v)  # noqa: E731  (drop the FITS comment)
        meta = {"units": repr(col_units), **{str(k): value(v) for k, v in (header or {}).items()}}
        table = pa.table({n: _arrow_col(rows[n]) for n in rows.dtype.names}).replace_schema_metadata(meta)
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


def _native(rows: np.ndarray) -> np.ndarray:
    """rows with every field in native byte order (FITS stores big-endian), text as bytes (FITS 'A')."""
    def native(t: np.dtype) -> np.dtype:
        return np.dtype(f"S{t.itemsize // 4}") if t.kind == "U" else t.newbyteorder("=")

    dt = np.dtype([(n, native(rows.dtype[n])) for n in rows.dtype.names])
    return rows if rows.dtype == dt else rows.astype(dt)


def _parquet_rows(path: Path, dtype: np.dtype | None = None) -> np.ndarray:
    """A Parquet table as a structured array: ``dtype`` if given, else its own columns (strings as
    bytes of their longest length; the paper's columns keep CATALOG_DTYPE's types)."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    cols = {name: t.column(name).to_numpy(zero_copy_only=False) for name in (dtype.names if dtype else t.column_names)}
    if dtype is None:
        fields = []
        for name, col in cols.items():
            if name in CATALOG_DTYPE.names:
                fields.append((name, CATALOG_DTYPE[name]))
            elif col.dtype.kind in "OUS":
                fields.append((name, f"S{max([1, *(len(str(v).encode()) for v in col)])}"))
            else:
                fields.append((name, col.dtype))
        dtype = np.dtype(fields)
    out = np.zeros(t.num_rows, dtype=dtype)
    for name, col in cols.items():
        out[name] = np.char.encode(col.astype(str), "utf-8") if dtype[name].kind == "S" else col
    return out


def read_catalog(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read (rows, rejects) from a catalogue written by write_catalog (FITS or .parquet). rows has
    the file's own columns, in its order and native byte order (CATALOG_DTYPE for the paper's
    schema); its units: :func:`read_units`."""
    path = Path(path)
    if path.suffix == ".parquet":
        rej = path.with_name(path.stem + ".rejects.parquet")
        return _parquet_rows(path), _parquet_rows(rej, REJECT_DTYPE) if rej.is_file() else np.zeros(0, REJECT_DTYPE)
    import fitsio

    with fitsio.FITS(str(path)) as f:
        rows = f["CATALOG"].read()
        rej = f["REJECTS"].read() if f["REJECTS"].get_nrows() else np.zeros(0, REJECT_DTYPE)
    return _native(rows), rej.astype(REJECT_DTYPE)


def read_units(path: str | Path) -> dict[str, str]:
    """{column: unit} of a catalogue file ("" where none): FITS TUNITn, or TCOMMn = 'unit: <unit>'
    for a unit outside the FITS standard ("dex"); Parquet: the schema metadata ``units``."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        raw = (schema.metadata or {}).get(b"units")
        units = ast.literal_eval(raw.decode()) if raw else {}
        return {n: str(units.get(n, "")) for n in schema.names}
    import fitsio

    h = fitsio.read_header(str(path), "CATALOG")
    out = {}
    for i in range(1, int(h["TFIELDS"]) + 1):
        comm = str(h.get(f"TCOMM{i}", "")).strip()
        unit = str(h.get(f"TUNIT{i}", "")).strip() or (comm[5:].strip() if comm.startswith("unit:") else "")
        out[str(h[f"TTYPE{i}"]).strip()] = unit
    return out


def read_skipped(path: str | Path) -> np.ndarray:
    """The SKIPPED table (path, obsid, reason) of a catalogue; empty for catalogues without one."""
    path = Path(path)
    if path.suffix == ".parquet":
        side = path.with_name(path.stem + ".skipped.parquet")
        return _parquet_rows(side, SKIPPED_DTYPE) if side.is_file() else np.zeros(0, SKIPPED_DTYPE)
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
