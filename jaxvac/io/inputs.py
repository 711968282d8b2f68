"""Turn what a user names as input into the ordered list of spectrum files to read.

``resolve_inputs(spec)`` accepts one input or a sequence of them; each is one of

- a directory: every ``*.fits``, ``*.fits.gz`` (also ``*.fit[.gz]``) file below it (any depth, names matched without
  regard to case), sorted by path;
- a glob pattern (``*``, ``?``, ``[``; ``**`` matches any depth): the matches, sorted; a matched
  directory is expanded as above, matched files that are not FITS-named are ignored;
- a CSV or Parquet table (``*.csv``, ``*.csv.gz``, ``*.parquet``): the column ``path`` (or
  ``column``), in row order;
- a FITS table (``*.fits[.gz]``, ``*.fit[.gz]`` whose first extension is a table with that column), in row order;
- any other FITS-named file: a spectrum, taken as is;
- any other file: a text list, one path per line; blank lines and lines starting with ``#`` are
  skipped.

Tables are read by :func:`jaxvac.io.tables.read_table`, FITS headers sniffed with
:mod:`jaxvac.io.fitsheader`. Relative paths inside a table or text list are taken relative to the
list's own directory, so a list travels with its data. Entries of lists and tables are not
checked on disk here (that would cost one ``stat`` per file of an 11-million-file survey): a
missing one becomes a reject when read. Inputs named directly must exist. Every path is returned
absolute and normalised (symbolic links are kept, not resolved), so the same input gives the same
strings from any working directory and resumption can match paths of an earlier run. Duplicates
are kept: the caller asked for them.
"""

from __future__ import annotations

import csv
import glob
import gzip
import os
import zlib

from jaxvac.errors import JaxvacError
from jaxvac.io import fitsheader
from jaxvac.io.lamost import SUFFIXES
from jaxvac.io.tables import CSV_SUFFIXES, PARQUET_SUFFIXES, TableError, read_table, table_format

__all__ = ["InputError", "resolve_inputs", "is_spectrum_name"]

SPECTRUM_SUFFIXES = SUFFIXES  # the reader's: .fits, .fits.gz, .fit, .fit.gz, in any case
_GLOB_CHARS = set("*?[")


class InputError(ValueError, JaxvacError):
    """An input that cannot be resolved; the message names it and says what to do."""


def is_spectrum_name(path: str | os.PathLike) -> bool:
    """True when a file name ends in .fits, .fits.gz, .fit or .fit.gz, in any case."""
    return os.fspath(path).lower().endswith(SPECTRUM_SUFFIXES)


def resolve_inputs(spec, *, column: str = "path") -> list[str]:
    """The absolute paths of the spectra named by ``spec``, in a deterministic order.

    spec: a path (str or os.PathLike) or a sequence of them; each is a directory, a glob, a CSV or
    FITS table with a path column, a spectrum, or a text list (see the module docstring).
    column: the path column of CSV and FITS tables (matched without regard to case).

    Items are resolved in the order given and their paths concatenated. Raises InputError naming
    the input when it does not exist, matches nothing, or yields no path.
    """
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not items:
        raise InputError("No input given: name a directory, a glob, a text list of paths, or a CSV/FITS table with a path column.")
    out: list[str] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise InputError(f"Inputs must be paths (str or os.PathLike), got {type(item).__name__}: {item!r}.")
        out.extend(_resolve_one(os.fspath(item), column))
    return out


def _abs(path: str, base: str | None = None) -> str:
    """``path`` absolute and normalised, relative ones taken from ``base`` (default: the cwd).

    Plain string work on POSIX (os.path.join/normpath are pure Python in 3.11 and dominated the
    resolution of a million-line list).
    """
    if path.startswith("~"):
        path = os.path.expanduser(path)
    if os.sep != "/":
        return os.path.normpath(os.path.join(base or os.getcwd(), path))
    if path[:1] != "/":
        path = f"{(base or os.getcwd()).rstrip('/')}/{path}"
    if "/." in path or "//" in path or path.endswith("/"):
        path = os.path.normpath(path)
    return path


def _resolve_one(item: str, column: str) -> list[str]:
    item = os.path.expanduser(item)
    if os.path.isdir(item):
        found = _walk(item)
        if not found:
            raise InputError(f"Directory {item!r} holds no *.fits, *.fits.gz, *.fit or *.fit.gz file at any depth; point to the directory of the spectra.")
        return found
    if os.path.isfile(item):
        if item.lower().endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
            paths = _read_path_column(item, column)
        elif is_spectrum_name(item):
            if not _is_path_table(item, column):
                return [_abs(item)]
            paths = _read_path_column(item, column)
        else:
            paths = _read_text_list(item)
        if not paths:
            raise InputError(f"Input list {item!r} names no file; it should hold one path per row or line.")
        base = os.path.dirname(_abs(item))
        return [_abs(p, base) for p in paths]
    if _GLOB_CHARS & set(item):
        return _expand_glob(item)
    raise InputError(
        f"Input {item!r} does not exist (working directory {os.getcwd()!r}); give an existing "
        "directory, FITS file, text list or CSV/FITS table, or a glob pattern."
    )


def _walk(top: str) -> list[str]:
    found = []
    for root, _dirs, files in os.walk(top):
        found.extend(_abs(os.path.join(root, f)) for f in files if is_spectrum_name(f))
    return sorted(found)


def _expand_glob(pattern: str) -> list[str]:
    matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
    out, ignored = [], 0
    for m in matches:
        if os.path.isdir(m):
            out.extend(_walk(m))
        elif is_spectrum_name(m):
            out.append(_abs(m))
        else:
            ignored += 1
    if not out:
        why = f"matched {ignored} file(s), none named *.fits, *.fits.gz, *.fit or *.fit.gz" if ignored else "matched nothing"
        raise InputError(f"Glob {pattern!r} {why} (working directory {os.getcwd()!r}); check the pattern (quote it so the shell does not expand it).")
    return out


def _read_text_list(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except UnicodeDecodeError as e:
        raise InputError(
            f"Input {path!r} is neither a FITS (*.fits[.gz], *.fit[.gz]) nor a CSV (*.csv[.gz]) or Parquet file, "
            f"and it is not a UTF-8 text list of paths ({e.reason} at byte {e.start}); rename it or give one of those."
        ) from None
    return [line for line in lines if line and not line.startswith("#")]


def _read_path_column(path: str, column: str) -> list[str]:
    """The ``column`` of a CSV, Parquet or FITS table (io.tables), stripped; an empty cell is an error."""
    try:
        values = next(iter(read_table(path, [column]).values()))
    except TableError as e:
        raise InputError(f"{e} The path column is named by column= (default 'path').") from None
    out = []
    for row, v in enumerate(values.tolist()):
        s = "" if v != v else str(v).strip()  # NaN: a column with no path at all
        if not s:
            where = f"line {_csv_line(path, row)}" if table_format(path) == "csv" else f"row {row + 1}"
            raise InputError(f"Table {path!r}, {where}: the {column!r} cell is empty; every row needs a path.")
        out.append(s)
    return out


def _csv_line(path: str, row: int) -> int:
    """The line number of data row ``row`` (0-based, blank lines skipped) of a CSV file."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        seen = -2  # the header row comes first
        for cells in reader:
            if "".join(cells).strip():  # blank rows are skipped, as read_table does
                seen += 1
                if seen == row:
                    return reader.line_num
    return -1


def _is_path_table(path: str, column: str) -> bool:
    """Whether a FITS file's first extension is a table with ``column`` (a list, not a spectrum).

    Parses only the first headers (io.fitsheader) from the first blocks of the file (more only
    when a header is longer), so sniffing a spectrum costs far less than reading it.
    """
    opener = gzip.open if _is_gzip(path) else open
    n = 8 * fitsheader.BLOCK
    try:
        while True:
            with opener(path, "rb") as f:
                buf = f.read(n)
            try:
                primary, start = fitsheader.header(buf, 0, None)
                if fitsheader.data_bytes(primary):
                    return False  # the primary HDU holds an image: a spectrum
                ext, _ = fitsheader.header(buf, start, None)
                break
            except fitsheader.FitsError:
                if len(buf) < n:
                    return False  # the whole file, and no complete header: leave it to the reader
                n *= 4
    except (OSError, EOFError, zlib.error):
        return False  # unreadable: leave it to the reader, which turns it into a reject
    if ext.get("XTENSION") not in ("BINTABLE", "TABLE"):
        return False
    columns = {str(v).lower() for k, v in ext.items() if k.startswith("TTYPE")}
    return column.lower() in columns


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"
