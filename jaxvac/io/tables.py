"""The one table reader of jaxvac: a FITS, CSV or Parquet table in, a dict of NumPy columns out.

Training and test catalogues, repeat catalogues, cross-match tables and path lists are all read
by :func:`read_table`; a caller that chooses among optional columns reads the names with
:func:`column_names` and checks the ones it needs with :func:`require_columns` (case ignored, one
message shape). The format is chosen by the file name (case ignored):

- ``*.fits``, ``*.fit``, ``*.fts`` (each also ``.gz``): the first table HDU, read with fitsio
  (only the requested columns are read from disk, straight into NumPy; it is also the library
  of the reader's fallback and of the catalogue reader);
- ``*.csv``, ``*.csv.gz``: a header row, then one row per line (standard library ``csv``);
- ``*.parquet``: read with pyarrow.

The same table gives the same columns in every format:

- integers: int64 (so obsids and Gaia source ids > 2**31 keep every digit); floats: float64 or
  float32 as stored (CSV: float64); text: object arrays of ``str`` (no fixed width, so an
  11-million-row path list costs no more than its strings); FITS vector columns: 2-D arrays.
- missing values (empty CSV cells, Parquet nulls, FITS TNULLn, NaN): NaN in float columns, ""
  in text columns. An integer column with missing values becomes float64 with NaN when every
  value is exact as a float (|v| <= 2**53), else a masked int64 array (``np.ma.MaskedArray``):
  Gaia source ids (~4e18) would lose their last digits as floats.
- CSV cells and header names lose surrounding blanks; blank lines are skipped; a column whose
  every cell is an integer is int64, else float64 if every cell is a number or empty, else text;
  a byte-order mark is ignored. FITS text loses its trailing blanks (FITS Standard 4.0, 7.3.3).
"""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import numpy as np

from jaxvac.errors import JaxvacError

__all__ = ["TableError", "read_table", "column_names", "require_columns", "table_format", "FITS_SUFFIXES",
           "CSV_SUFFIXES", "PARQUET_SUFFIXES"]

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
_EXACT_INT = 2**53  # largest integer magnitude float64 holds exactly


class TableError(ValueError, JaxvacError):
    """A table that cannot be read as asked; the message names the file and says what to do."""


def table_format(path: str | os.PathLike) -> str | None:
    """"fits", "csv" or "parquet" from the file name (case ignored); None for any other name."""
    low = os.fspath(path).lower()
    for fmt, suffixes in (("fits", FITS_SUFFIXES), ("csv", CSV_SUFFIXES), ("parquet", PARQUET_SUFFIXES)):
        if low.endswith(suffixes):
            return fmt
    return None


def read_table(path: str | os.PathLike, columns=None, *,
               hint: str = "check the path") -> dict[str, np.ndarray]:
    """The columns of a FITS (first table HDU), CSV (.csv, .csv.gz) or Parquet table, in row order.

    path: the table; its suffix gives the format (module docstring).
    columns: a name or names to read, matched without regard to case (None: every column). The
        dict's keys are the names as the file spells them, in the file's order.
    hint: what the "not found" message tells the user to do (e.g. the config key that names it).
    Returns {name: (N,) array} (FITS vector columns (N, k)); types and missing values as in the
    module docstring. Raises TableError naming the file: not found, unknown suffix, unreadable,
    or a requested column absent (the message lists the columns there are).
    """
    return _call(path, hint, {"fits": _read_fits, "csv": _read_csv, "parquet": _read_parquet}, columns)


def column_names(path: str | os.PathLike, *, hint: str = "check the path") -> list[str]:
    """The column names of a table, as the file spells them, without reading its rows.

    For callers that choose among several possible names before :func:`read_table`.
    """
    return _call(path, hint, {"fits": _fits_names, "csv": _csv_names, "parquet": _parquet_names})


def require_columns(names, required=(), *, what: str = "table", path="", fix: str = "") -> dict[str, str]:
    """The columns of a table by lower-case name, after checking that it has the required ones.

    names: the table's column names as the file spells them (:func:`column_names`).
    required: names, matched without regard to case; an entry may be a tuple of alternatives
        (aliases), any one of which will do.
    what, path, fix: the error message's subject ("index"), the file and what to do.
    Returns {name.lower(): name as the file spells it}; of names that differ only in case, the
    first. Raises TableError, one line: ``{what} {path!r} lacks column(s) [...] (columns: [...]);
    {fix}`` (callers with their own error class convert it, keeping the message).
    """
    names = list(names)
    lower = {n.lower(): n for n in reversed(names)}
    alternatives = [(c,) if isinstance(c, str) else tuple(c) for c in required]
    missing = [" or ".join(alt) for alt in alternatives if not any(a.lower() in lower for a in alt)]
    if missing:
        raise TableError(f"{what} {str(path)!r} lacks column(s) {missing} (columns: {names}); {fix}")
    return lower


def _call(path, hint: str, readers: dict, *args):
    """readers[format](path, *args), with the checks and error messages every read shares."""
    path = Path(path)
    fmt = table_format(path)
    if fmt is None:
        raise TableError(f"table {str(path)!r}: unknown format; name it *.fits[.gz] / *.fit[.gz] / *.fts "
                         f"(first table HDU), *.csv[.gz] or *.parquet.")
    if not path.is_file():
        where = "" if path.is_absolute() else f" (working directory {os.getcwd()!r})"
        raise TableError(f"table {str(path)!r} not found; {hint}{where}.")
    try:
        return readers[fmt](path, *args)
    except TableError:
        raise
    except Exception as e:  # noqa: BLE001 - fitsio, pyarrow, gzip and csv each raise their own kinds
        why = " ".join(str(e).split())  # one line (cfitsio's messages span several)
        raise TableError(f"table {str(path)!r} could not be read as {fmt.upper()}: {type(e).__name__}: {why}; "
                         f"check that the file is complete and matches its suffix.") from e


def _pick(path: Path, names: list[str], columns) -> list[str]:
    """The file's names of the requested columns (all when columns is None), in the file's order."""
    if columns is None:
        return list(names)
    if isinstance(columns, str):
        columns = [columns]
    by_lower = require_columns(names)
    missing = [c for c in columns if c.lower() not in by_lower]
    if missing:
        raise TableError(f"table {str(path)!r} has no {', '.join(map(repr, missing))} column (columns: "
                         f"{list(names)}); choose one of those.")
    wanted = {by_lower[c.lower()] for c in columns}
    return [n for n in names if n in wanted]


def _with_missing(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """An integer (or bool) column with missing values, as the module docstring says."""
    if not missing.any():
        return values
    present = values[~missing]
    if values.dtype.kind == "b" or not present.size or -_EXACT_INT <= present.min() <= present.max() <= _EXACT_INT:
        out = values.astype(np.float64)
        out[missing] = np.nan
        return out
    return np.ma.MaskedArray(values.astype(np.int64), mask=missing)


def _native(a: np.ndarray) -> np.ndarray:
    """Integers as int64 (unsigned kept when they would not fit), byte order native."""
    if a.dtype.kind == "i" or (a.dtype.kind == "u" and a.dtype.itemsize < 8):
        return a.astype(np.int64)
    if a.dtype.kind in "fu":
        return a.astype(a.dtype.newbyteorder("="), copy=False)
    return a


def _text(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _fits_table(path: Path, f):
    """The first table HDU of an open fitsio.FITS."""
    hdu = next((h for h in f if h.get_exttype() in ("BINARY_TBL", "ASCII_TBL")), None)
    if hdu is None:
        raise TableError(f"table {str(path)!r} is a FITS file without a table HDU (only images); "
                         f"give a FITS binary or ASCII table.")
    return hdu


def _fits_names(path: Path) -> list[str]:
    import fitsio

    with fitsio.FITS(str(path)) as f:
        return list(_fits_table(path, f).get_colnames())


def _read_fits(path: Path, columns) -> dict[str, np.ndarray]:
    import fitsio

    with fitsio.FITS(str(path)) as f:
        hdu = _fits_table(path, f)
        names = hdu.get_colnames()
        pick = _pick(path, names, columns)
        header = hdu.read_header()
        nulls = {names[k - 1]: header.get(f"TNULL{k}") for k in range(1, len(names) + 1)}
        rows = hdu.read(columns=pick)
    out = {}
    for name in pick:
        a = rows[name]
        if a.dtype.kind in "US" and a.ndim == 1:  # cfitsio has dropped the trailing blanks
            values = a.tolist()
            out[name] = _text(values if a.dtype.kind == "U" else [v.decode("utf-8", "replace") for v in values])
            continue
        a = _native(a)
        null = nulls.get(name)
        if a.dtype.kind in "iu" and isinstance(null, int):
            a = _with_missing(a, a == null)
        out[name] = a
    return out


def _csv_header(path: Path, reader) -> list[str]:
    """The names in the first non-blank row of a csv.reader."""
    header = next((row for row in reader if "".join(row).strip()), None)
    if header is None:
        raise TableError(f"table {str(path)!r} is empty; a CSV table needs a header row naming its columns.")
    return [h.strip() for h in header]


def _csv_open(path: Path):
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    return opener(path, "rt", newline="", encoding="utf-8-sig")


def _csv_names(path: Path) -> list[str]:
    with _csv_open(path) as f:
        return _csv_header(path, csv.reader(f))


def _read_csv(path: Path, columns) -> dict[str, np.ndarray]:
    with _csv_open(path) as f:
        reader = csv.reader(f)
        names = _csv_header(path, reader)
        pick = _pick(path, names, columns)
        index = [names.index(n) for n in pick]
        width = max(index, default=-1) + 1
        cells: list[list[str]] = [[] for _ in pick]
        pad = [""] * width
        for row in reader:
            if not "".join(row).strip():
                continue  # a blank line (or one of empty cells only)
            if len(row) < width:
                row = row + pad[len(row):]
            for col, k in zip(cells, index):
                col.append(row[k])
    return {name: _csv_column(col) for name, col in zip(pick, cells)}


def _csv_column(cells: list[str]) -> np.ndarray:
    """int64 if every cell is an integer, float64 if every cell is a number or empty, else text.

    Cells lose their surrounding blanks."""
    cells = [c.strip() for c in cells]
    missing = np.array([not c for c in cells], dtype=bool)
    present = [c for c in cells if c]
    try:
        ints = np.array([int(c) for c in present], dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    else:
        if not missing.any():
            return ints
        full = np.zeros(len(cells), np.int64)
        full[~missing] = ints
        return _with_missing(full, missing)
    try:
        return np.array([float(c) if c else np.nan for c in cells], dtype=np.float64)
    except ValueError:
        return _text(cells)


def _parquet_names(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def _read_parquet(path: Path, columns) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pick = _pick(path, _parquet_names(path), columns)
    table = pq.read_table(path, columns=pick)
    out = {}
    for name in pick:
        col = table.column(name)
        t = col.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            out[name] = _text(col.fill_null("").to_pylist())
        elif pa.types.is_integer(t) or pa.types.is_boolean(t):
            missing = col.is_null().to_numpy(zero_copy_only=False)
            values = pc.fill_null(col, False if pa.types.is_boolean(t) else 0).to_numpy()
            out[name] = _with_missing(_native(values), missing)
        else:
            out[name] = col.to_numpy()
    return out
