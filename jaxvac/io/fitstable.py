"""A fast FITS writer for binary tables of fixed-size columns (the catalogue, the rejects).

cfitsio (through fitsio) and astropy convert a table element by element and wrote the 334-byte
catalogue rows at ~25-35 MB/s here (two minutes or more for the 11.2 M rows of DR8). A FITS
binary table is the rows themselves, big-endian, after an 80-character-card header (FITS
Standard 4.0, Sect. 7.3), so this module converts each column with numpy into a big-endian copy
of the row layout, in cache-sized blocks, and writes them: ~110 MB/s with the final fsync, 4x
cfitsio (which does not fsync), and the data bytes are identical to cfitsio's
(tests/test_fitstable.py compares them).

Column types: float32 'E', float64 'D', int16 'I', int32 'J', int64 'K', uint8 'B', int8 'B'
with TZERO = -128 (the standard's offset for signed bytes: stored byte = value + 128), bool 'L'
('T'/'F'), bytes 'nA' (NUL-padded). The catalogue's flags are uint8: 'B' without TZERO, which
astropy and fitsio read as uint8 (a TZERO'd signed byte comes back from some readers as float).
Header cards are formatted by astropy.io.fits.Header (long strings continue on CONTINUE cards).

Units: a unit the FITS standard defines (as astropy's FITS unit parser reads it: "K", "km/s",
"kpc", "mag", "deg") becomes TUNITn; one it does not ("dex") would make every astropy.table read
warn (UnitsWarning) and is written as TCOMMn = 'unit: dex' instead, so the unit stays in the
header for a human and every reader parses the file cleanly.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from jaxvac.io.atomic import atomic_write
from jaxvac.io.fitsheader import BLOCK
_ROWS_PER_WRITE = 8192  # rows converted at a time: the copy stays in cache (3x faster than 256 Ki rows)

_TFORM = {"f4": "E", "f8": "D", "i2": "I", "i4": "J", "i8": "K", "u1": "B", "i1": "B", "b1": "L"}


def _tform(dt: np.dtype) -> str:
    if dt.kind == "S":
        return f"{dt.itemsize}A"
    key = f"{dt.kind}{dt.itemsize}"
    if dt.subdtype is not None or key not in _TFORM:
        raise TypeError(f"column type {dt} is not supported by the FITS table writer; use float32/64, "
                        f"int8/16/32/64, uint8, bool or fixed-size bytes.")
    return _TFORM[key]


@functools.lru_cache(maxsize=256)
def fits_unit(unit: str) -> bool:
    """True if ``unit`` is a FITS-standard unit string (astropy's FITS unit parser accepts it)."""
    import astropy.units as u

    try:
        u.Unit(unit, format="fits")
    except ValueError:
        return False
    return True


def _storage_dtype(dtype: np.dtype) -> np.dtype:
    """The on-disk row layout: every field big-endian, int8/bool as one unsigned byte, packed."""
    fields = []
    for name in dtype.names:
        dt = dtype[name]
        if dt.kind == "S" or dt.itemsize == 1:
            fields.append((name, dt if dt.kind == "S" else np.uint8))
        else:
            fields.append((name, dt.newbyteorder(">")))
    return np.dtype(fields)


def _to_storage(rows: np.ndarray, storage: np.dtype) -> np.ndarray:
    out = np.empty(len(rows), storage)
    for name in rows.dtype.names:
        col = rows[name]
        if col.dtype.kind == "i" and col.dtype.itemsize == 1:
            out[name] = col.view(np.uint8) ^ np.uint8(0x80)  # value + 128 (mod 256): TZERO = -128
        elif col.dtype.kind == "b":
            out[name] = np.where(col, ord("T"), ord("F")).astype(np.uint8)
        else:
            out[name] = col
    return out


def table_header(rows: np.ndarray, extname: str, units: dict[str, str] | None = None,
                 extra: dict | None = None) -> bytes:
    """The binary-table extension header of ``rows`` (structured array), padded to 2880 bytes.

    units: {column: unit}: TUNITn, or TCOMMn = 'unit: <unit>' for a unit outside the FITS
    standard (:func:`fits_unit`); extra: {KEYWORD: value or (value, comment)} appended."""
    from astropy.io import fits

    units = units or {}
    cards = [("XTENSION", "BINTABLE", "binary table extension"), ("BITPIX", 8, "8-bit bytes"),
             ("NAXIS", 2, "2-dimensional binary table"), ("NAXIS1", _storage_dtype(rows.dtype).itemsize, "width of table in bytes"),
             ("NAXIS2", len(rows), "number of rows in table"), ("PCOUNT", 0, "size of special data area"),
             ("GCOUNT", 1, "one data group (required keyword)"),
             ("TFIELDS", len(rows.dtype.names), "number of fields in each row")]
    for i, name in enumerate(rows.dtype.names, 1):
        dt = rows.dtype[name]
        cards += [(f"TTYPE{i}", name, f"label for field {i}"), (f"TFORM{i}", _tform(dt), f"data format of field {i}")]
        if units.get(name) and fits_unit(units[name]):
            cards.append((f"TUNIT{i}", units[name], "physical unit of field"))
        elif units.get(name):
            cards.append((f"TCOMM{i}", f"unit: {units[name]}", "not a FITS unit, so no TUNIT"))
        if dt.kind == "i" and dt.itemsize == 1:
            cards += [(f"TZERO{i}", -128, "offset for signed bytes"), (f"TSCAL{i}", 1, "data are not scaled")]
    cards.append(("EXTNAME", extname, "name of this binary table extension"))
    cards += [_fitting(key, *v) if isinstance(v, tuple) else (key, v) for key, v in (extra or {}).items()]
    h = fits.Header(cards)  # built at once: item by item is quadratic in the number of cards
    return h.tostring(padding=True).encode("ascii")


def _fitting(key: str, value, comment: str) -> tuple:
    """The card (key, value, comment), without the comment when it would not fit in 80 characters
    (astropy would truncate it with a warning)."""
    shown = f"'{value}'" if isinstance(value, str) else str(value)
    if (isinstance(value, str) and len(value) > 68) or 10 + max(20, len(shown)) + 3 + len(comment) > 80:
        return key, value
    return key, value, comment


def primary_header() -> bytes:
    """An empty primary HDU announcing extensions."""
    from astropy.io import fits

    h = fits.Header([("SIMPLE", True, "file does conform to FITS standard"), ("BITPIX", 8, "bits per data value"),
                     ("NAXIS", 0, "no data in the primary HDU"), ("EXTEND", True, "FITS dataset may contain extensions")])
    return h.tostring(padding=True).encode("ascii")


def write_tables(path: str | Path, tables: list[tuple[str, np.ndarray, dict | None, dict | None]]) -> None:
    """Write a FITS file of binary-table extensions, atomically (jaxvac.io.atomic, with fsync).

    tables: [(extname, rows, units, cards), ...]; rows a structured array of fixed-size fields,
    units {column: unit}, cards {KEYWORD: value or (value, comment)} added to that header.
    """

    def write(f) -> None:
        f.write(primary_header())
        for extname, rows, units, cards in tables:
            rows = np.asarray(rows)
            f.write(table_header(rows, extname, units, cards))
            storage = _storage_dtype(rows.dtype)
            for a in range(0, len(rows), _ROWS_PER_WRITE):
                f.write(_to_storage(rows[a:a + _ROWS_PER_WRITE], storage).data)
            f.write(b"\0" * (-(len(rows) * storage.itemsize) % BLOCK))

    atomic_write(Path(path), write, fsync=True)
