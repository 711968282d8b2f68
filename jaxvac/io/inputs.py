"""Turn what a user names as input into the ordered list of spectrum files to read.

``resolve_inputs(spec)`` accepts one input or a sequence of them; each is one of

- a directory: every ``*.fits``, ``*.fits.gz`` (also ``*.fit[.gz]``) file below it (any depth, names matched without
  regard to case), sorted by path;
- a glob pattern (``*``, ``?``, ``[``; ``**`` matches any depth): the matches, sorted; a matched
  directory is expanded as above, matched files that are not FITS-named are ignored;
- a CSV table (``*.csv``): the column ``path`` (or ``column``), in row order;
- a FITS table (``*.fits[.gz]``, ``*.fit[.gz]`` whose first extension is a table with that column), in row order;
- any other FITS-named file: a spectrum, taken as is;
- any other file: a text list, one path per line; blank lines and lines starting with ``#`` are
  skipped.

Relative paths inside a CSV, FITS or text list are taken relative to the list's own directory, so
a list travels with its data. Entries of lists and tables are not checked on disk here (that would
cost one ``stat`` per file of an 11-million-file survey): a missing one becomes a reject when read.
Inputs named directly must exist. Every path is returned absolute and normalised (symbolic links
are kept, not resolved), so the same input gives the same strings from any working directory and
resumption can match paths of an earlier run. Duplicates are kept: the caller asked for them.
"""

from __future__ import annotations

import csv
import glob
import gzip
import os

from jaxvac.io.lamost import SUFFIXES

__all__ = ["InputError", "resolve_inputs", "is_spectrum_name"]

SPECTRUM_SUFFIXES = SUFFIXES  # the reader's: .fits, .fits.gz, .fit, .fit.gz, in any case
_GLOB_CHARS = set("*?[")
_CARD = 80  # bytes per FITS header card
_BLOCK = 2880  # bytes per FITS block


class InputError(ValueError):
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
        low = item.lower()
        if low.endswith(".csv"):
            paths = _read_csv(item, column)
        elif is_spectrum_name(item):
            if not _is_path_table(item, column):
                return [_abs(item)]
            paths = _read_fits_table(item, column)
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
            f"Input {path!r} is neither a FITS (*.fits[.gz], *.fit[.gz]) nor a CSV (*.csv) file, and it is not a "
            f"UTF-8 text list of paths ({e.reason} at byte {e.start}); rename it or give one of those."
        ) from None
    return [line for line in lines if line and not line.startswith("#")]


def _read_csv(path: str, column: str) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise InputError(f"CSV table {path!r} is empty; it needs a header row with a {column!r} column.")
        names = [h.strip().lower() for h in header]
        if column.lower() not in names:
            raise InputError(f"CSV table {path!r} has no {column!r} column (columns: {header}); name the path column with column=.")
        k = names.index(column.lower())
        out = []
        for row_number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            value = row[k].strip() if k < len(row) else ""
            if not value:
                raise InputError(f"CSV table {path!r}, line {row_number}: the {column!r} cell is empty; every row needs a path.")
            out.append(value)
    return out


def _read_fits_table(path: str, column: str) -> list[str]:
    import fitsio

    with fitsio.FITS(path) as f:
        names = f[1].get_colnames()
        name = next(n for n in names if n.lower() == column.lower())
        values = f[1].read(columns=[name])[name]
    out = []
    for row_number, v in enumerate(values, start=1):
        s = (v.decode("utf-8") if isinstance(v, bytes) else str(v)).strip()
        if not s:
            raise InputError(f"FITS table {path!r}, row {row_number}: the {column!r} value is empty; every row needs a path.")
        out.append(s)
    return out


def _is_path_table(path: str, column: str) -> bool:
    """Whether a FITS file's first extension is a table with ``column`` (a list, not a spectrum).

    Reads only the headers, without fitsio: an image-layout spectrum is recognised from its first
    cards, so sniffing costs far less than reading the file.
    """
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            primary = _read_header(f, stop_at_shape=True)
            if primary is None:
                return False
            if _data_bytes(primary):
                return False  # the primary HDU holds an image: a spectrum
            ext = _read_header(f)
    except (OSError, EOFError, ValueError):
        return False  # unreadable: leave it to the reader, which turns it into a reject
    if ext is None or ext.get("XTENSION") not in ("BINTABLE", "TABLE"):
        return False
    columns = {str(v).lower() for k, v in ext.items() if k.startswith("TTYPE")}
    return column.lower() in columns


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _read_header(f, stop_at_shape: bool = False) -> dict | None:
    """The keyword -> value cards of the next header in a FITS stream, positioned after its data.

    stop_at_shape: return as soon as the NAXISn cards show a non-empty data array (the stream is
    then left inside the header).
    """
    cards: dict[str, object] = {}
    while True:
        block = f.read(_BLOCK)
        if len(block) < _BLOCK:
            return None
        for i in range(0, _BLOCK, _CARD):
            card = block[i : i + _CARD].decode("ascii", errors="replace")
            key = card[:8].strip()
            if key == "END":
                size = _data_bytes(cards)
                f.read(-(-size // _BLOCK) * _BLOCK)  # skip the data (padded to whole blocks)
                return cards
            if card[8:10] == "= ":
                cards[key] = _card_value(card[10:])
                if stop_at_shape and key.startswith("NAXIS") and _data_bytes(cards) > 0:
                    naxis = cards.get("NAXIS")
                    if isinstance(naxis, int) and all(f"NAXIS{k}" in cards for k in range(1, naxis + 1)):
                        return cards
        if len(cards) > 10000:
            return None  # not a FITS header


def _card_value(text: str):
    text = text.strip()
    if text.startswith("'"):
        end = text.find("'", 1)
        return text[1:end].rstrip() if end > 0 else text[1:]
    text = text.split("/", 1)[0].strip()
    try:
        return int(text)
    except ValueError:
        return text


def _data_bytes(h: dict) -> int:
    naxis = h.get("NAXIS", 0)
    if not isinstance(naxis, int) or naxis == 0:
        return 0
    n = 1
    for k in range(1, naxis + 1):
        v = h.get(f"NAXIS{k}", 0)
        n *= v if isinstance(v, int) else 0
    bitpix = h.get("BITPIX", 8)
    pcount = h.get("PCOUNT", 0) if isinstance(h.get("PCOUNT", 0), int) else 0
    gcount = h.get("GCOUNT", 1) if isinstance(h.get("GCOUNT", 1), int) else 1
    return abs(bitpix if isinstance(bitpix, int) else 8) // 8 * gcount * (pcount + n)
