"""Read one LAMOST LRS spectrum (any release, image or table layout, .fits or .fits.gz) onto the
global 3909-pixel grid.

Public API::

    read_spectrum(path, *, engine="fast") -> Spectrum | Reject
    read_meta(path) -> np.ndarray (0-d META_DTYPE) | Reject     # header only, no pixel data
    find_spectra(paths) -> list[str]                            # files under files/directories
    describe(paths, *, engine="fast") -> dict                   # what `jaxvac info` prints

A file that cannot be used never raises: it comes back as ``Reject(path, reason)``. Known damage
(truncation, broken gzip, wrong shapes, an inconsistent wavelength solution, ...) gets a specific
reason; any other exception becomes a Reject whose reason starts with ``unexpected <ExcType>:``
so that a bug in this module still shows in the tests.

Layouts (SPEC.md "Inputs"; the release number does not decide, the file does):

* image: the primary HDU is a float32 image (5, N): flux, ivar, wavelength, andmask, ormask.
* table: the primary HDU has no data; HDU 1 (``COADD``) is a one-row binary table with array
  columns FLUX, IVAR, WAVELENGTH, ANDMASK, ORMASK (and NORMALIZATION, not read).
* DR1 (VERSPIPE v2.6.x and older): image layout, but row 2 is the continuum-subtracted flux, not
  the wavelength; the wavelength comes from COEFF0/COEFF1 alone. No OBSID, no DATA_V; the S/N keys
  are SN_U..SN_Z instead of SNRU..SNRZ.

Good pixels: ``ivar > 0`` and flux, ivar finite and ``andmask == 0``, inside the file's coverage.
ORMASK is ignored: a bit set in *any* single exposure (e.g. a cosmic ray rejected in one of three)
does not make the coadded pixel bad; ANDMASK marks pixels bad in *every* exposure, which is what
the LAMOST pipeline itself uses to set ivar = 0. Flux and ivar are 0 where a pixel is not good.

Header keys (docs/reading.md "Header keys"): a file without a usable OBSID (DR1: LMJD, PLANID,
SPID, FIBERID), RA, DEC, Z, SNRG (DR1: SN_G), CLASS, COEFF0 or COEFF1 is rejected with a reason
naming the key and its value. Other keys that are absent or unusable, and -9999 sentinels of any
type in any key, become missing values: NaN for floats, -1 for integers, "" for strings.
``meta["note"]`` lists what was tolerated (sentinel keys, unusable optional keys, a missing DESIG,
extra HDUs, no good pixels); it is "" for a clean file.

Engines: "fast" (jaxvac.io.fitsheader) and "fitsio" (the reference) share the checks of what
cfitsio does not check and all of the metadata code, and give the same verdict (a row, or a
reject of the same kind) on a generated corpus of damaged real files (tests/test_reader_corrupt.py).
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxvac.constants import C_KMS, LOG_LAMBDA0, LOG_STEP, NPIX_GLOBAL, SENTINEL
from jaxvac.io import fitsheader as ff
from jaxvac.io.records import META_DTYPE, Reject, Spectrum

ENGINES = ("fast", "fitsio")
SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz")
WAVE_TOLERANCE = 0.05  # Angstrom: most a file's wavelength array may differ from COEFF0/COEFF1
GRID_TOLERANCE = 0.01  # global pixels: most COEFF0 may sit off a global-grid pixel
STEP_TOLERANCE = 1e-9  # log10(Angstrom): most COEFF1 may differ from LOG_STEP

# Header keywords the metadata needs (primary HDU), with the type they normally have.
_META_KINDS = {
    "OBSID": int, "DESIG": str, "RA": float, "DEC": float, "RA_OBS": float, "DEC_OBS": float,
    **{f"{p}{b}": float for p in ("SNR", "SN_") for b in "UGRIZ"},
    "Z": float, "Z_ERR": float, "CLASS": str, "SUBCLASS": str, "LMJD": int, "PLANID": str,
    "SPID": int, "FIBERID": int, "DATA_V": str, "VERSPIPE": str, "COEFF0": float, "COEFF1": float,
}
META_KEYS = tuple(_META_KINDS)
_KEY_ORDER = {k: i for i, k in enumerate(META_KEYS)}
_WANTED = ff.keyset({**_META_KINDS, "BITPIX": int, "NAXIS": int, "NAXIS1": int, "NAXIS2": int,
                     "NAXIS3": int, "BSCALE": float, "BZERO": float})
_REQUIRED_COLUMNS = ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK")
_NOTE_CHARS = META_DTYPE["note"].itemsize // 4  # numpy cuts longer text silently
_PATH_CHARS = META_DTYPE["path"].itemsize // 4


class _Raw(NamedTuple):
    """What a file holds, before it is placed on the grid: arrays of the file's N pixels."""

    header: dict  # primary-header keyword -> Python value (at least the META_KEYS present)
    layout: str  # "image" or "table"
    rows: np.ndarray  # float32 (4, N), any byte order: flux, ivar, wavelength, andmask
    notes: list  # what was tolerated


def read_spectrum(path, *, engine: str = "fast") -> Spectrum | Reject:
    """Read one LAMOST LRS file onto the global grid.

    path: a .fits or .fits.gz file. engine: "fast" (the minimal reader of jaxvac.io.fitsheader,
    falling back to fitsio for valid FITS it does not handle) or "fitsio" (fitsio only; the
    reference the fast reader is tested against, bit for bit).
    Returns a Spectrum (flux, ivar float32 (3909,), good bool (3909,), 0-d META_DTYPE meta) or a
    Reject(path, reason). Never raises for a bad file.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}.")
    path = os.fspath(path)
    try:
        if engine == "fast":
            try:
                raw = _read_fast(path)
            except ff.Unsupported:
                raw = _read_fitsio(path)
        else:
            raw = _read_fitsio(path)
        return _assemble(path, raw)
    except ff.FitsError as e:
        return Reject(path, str(e))
    except OSError as e:  # missing file, permissions, and every cfitsio error raised by fitsio
        return Reject(path, f"cannot read the file: {type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001 -- a reader must not kill a run; the type names the bug
        return Reject(path, f"unexpected {type(e).__name__}: {e}")


def read_meta(path) -> np.ndarray | Reject:
    """The metadata of one file from its headers only (no pixel data decompressed).

    Returns a 0-d META_DTYPE array with npix and offset filled (-1 when COEFF0 is unusable) and
    bad_fraction NaN (it needs the pixels), or a Reject; a COEFF0/COEFF1 problem that
    read_spectrum would reject is put in note instead. About 2x cheaper than read_spectrum on
    .fits.gz (only the first 8 blocks are inflated), 1.6x on .fits.
    """
    path = os.fspath(path)
    try:
        raw = ff.read_bytes(path)
        if not raw:
            raise ff.FitsError("empty file (0 bytes)")
        # LAMOST headers take 4-5 blocks, a COADD table header 2 more; read more only if needed.
        for n_bytes in (8 * ff.BLOCK, 0):
            buf = raw if raw[:2] != b"\x1f\x8b" else ff.gunzip(raw, n_bytes)
            try:
                h, layout, npix = _structure(buf[:n_bytes] if n_bytes else buf, data=False)
                break
            except ff.FitsError:
                if not n_bytes:
                    raise
        values, key_notes = _header_values(h)
        offset = -1
        notes = _sentinel_notes(h) + key_notes
        try:
            offset = _grid_offset(h, npix)
        except ff.FitsError as e:
            notes.append(str(e))
        return _meta(path, values, layout, npix, offset, np.nan, notes)
    except ff.FitsError as e:
        return Reject(path, str(e))
    except OSError as e:
        return Reject(path, f"cannot read the file: {type(e).__name__}: {e}")
    except Exception as e:  # noqa: BLE001
        return Reject(path, f"unexpected {type(e).__name__}: {e}")


def find_spectra(paths) -> list[str]:
    """The spectrum files named by paths: files as given, directories searched recursively for
    names ending in .fits, .fits.gz, .fit or .fit.gz. Sorted within each directory; a path that
    does not exist is returned as is (read_spectrum then rejects it with the reason)."""
    out = []
    for p in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        p = Path(p)
        if p.is_dir():
            out.extend(str(q) for q in sorted(p.rglob("*"))
                       if q.is_file() and q.name.lower().endswith(SUFFIXES))
        else:
            out.append(str(p))
    return out


# What `jaxvac info` shows per spectrum, in order.
INFO_FIELDS = ("layout", "release", "npix", "offset", "obsid", "class", "subclass", "snrg", "rv",
               "bad_fraction")


def describe(paths, *, engine: str = "fast") -> dict:
    """Read every spectrum under paths (see find_spectra) and summarise them.

    Returns a JSON-ready dict: {"spectra": [{"path", *INFO_FIELDS, "note"}], "rejects":
    [{"path", "reason"}], "summary": {"files", "spectra", "rejects", "by_layout", "by_release",
    "by_class", "by_reason"}}; by_reason counts the reasons' kinds (the text before the first
    colon, e.g. "truncated"). NaN becomes None. Keeps metadata only (no pixels).
    """
    spectra, rejects = [], []
    for path in find_spectra(paths):
        r = read_spectrum(path, engine=engine)
        if isinstance(r, Reject):
            rejects.append({"path": r.path, "reason": r.reason})
            continue
        row = {"path": path}
        for f in INFO_FIELDS + ("note",):
            v = r.meta[f].item()
            row[f] = None if isinstance(v, float) and v != v else v
        spectra.append(row)

    def count(key, rows):
        out = {}
        for row in rows:
            out[row[key]] = out.get(row[key], 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], str(kv[0]))))

    summary = {"files": len(spectra) + len(rejects), "spectra": len(spectra),
               "rejects": len(rejects), "by_layout": count("layout", spectra),
               "by_release": count("release", spectra), "by_class": count("class", spectra),
               "by_reason": count("kind", [{"kind": r["reason"].split(":")[0]} for r in rejects])}
    return {"spectra": spectra, "rejects": rejects, "summary": summary}


# --- the two engines ------------------------------------------------------------------------


def _check_start(buf) -> None:
    """Raise the reject for bytes that do not start like a FITS file."""
    if buf[:9] != b"SIMPLE  =":
        if b"SIMPLE  =".startswith(buf):
            raise ff.FitsError(f"truncated: the file has only {len(buf)} bytes")
        raise ff.FitsError(f"not a FITS file: it starts with {bytes(buf[:20])!r}, not "
                           f"b'SIMPLE  ='")


_BITPIX = (8, 16, 32, 64, -32, -64)
_NAXES = tuple(f"NAXIS{k}" for k in range(1, 1000))


def _check_bitpix(bitpix) -> None:
    if bitpix.__class__ is not int or bitpix not in _BITPIX:
        raise ff.FitsError(f"bad header: BITPIX must be one of 8, 16, 32, 64, -32, -64, got "
                           f"{bitpix!r}")


def _not_an_extension(buf, pos: int) -> ff.FitsError:
    return ff.FitsError(f"unknown layout: the primary HDU has no data and the {len(buf) - pos} "
                        f"bytes after it (from byte {pos}) are not an extension: they start with "
                        f"{bytes(buf[pos:pos + 20])!r} (expected a COADD binary table)")


def _structure(buf: bytes, data: bool = True):
    """Walk the HDUs of a LAMOST file in buf.

    data=False: returns (header, layout, npix) from the headers alone.
    data=True: returns a _Raw with big-endian float32 views of the arrays.
    Declared sizes are checked against len(buf) before anything is handed to fitsio (Unsupported).
    """
    _check_start(buf)
    h, pos = ff.header(buf, 0, _WANTED)
    _check_bitpix(h.get("BITPIX"))
    naxis = h.get("NAXIS")
    notes = []
    if naxis.__class__ is not int or not 0 <= naxis <= 999:
        raise ff.FitsError(f"bad header: NAXIS must be an integer 0..999, got {naxis!r}")
    if naxis != 0:
        dims = tuple(map(h.get, _NAXES[:naxis]))
        for k, d in enumerate(dims, 1):
            if d.__class__ is not int or d < 0:
                raise ff.FitsError(f"bad header: NAXIS{k} must be a non-negative integer, got "
                                   f"{d!r}")
        if len(dims) != 2 or dims[1] != 5:
            raise ff.FitsError(f"wrong shape: the primary image has NAXIS = {naxis!r} and axes "
                               f"{dims} (FITS order); a LAMOST image is (N pixels, 5 rows: "
                               f"flux, ivar, wavelength, andmask, ormask)")
        npix = dims[0]
        if not data:
            return h, "image", npix
        size = abs(h["BITPIX"]) // 8 * 5 * npix
        if pos + size > len(buf):
            raise ff.FitsError(f"truncated: the {npix}x5 image needs {pos + size} bytes, the "
                               f"file has {len(buf)}")
        if h["BITPIX"] != -32 or h.get("BSCALE", 1) != 1 or h.get("BZERO", 0) != 0:
            raise ff.Unsupported("the image is not unscaled float32")
        rows = ff.f4(buf, pos, 4 * npix).reshape(4, npix)
        layout = "image"
        pos += ff.padded(size)
    else:
        if pos > len(buf):
            raise ff.FitsError(f"truncated: the primary header needs {pos} bytes, the file has "
                               f"{len(buf)}")
        if pos == len(buf) or not buf[pos:].strip(b"\0 "):
            raise ff.FitsError("unknown layout: the primary HDU has no data and no extension "
                               "follows (expected an image (N, 5) or a COADD binary table; a "
                               "table file cut after its primary header looks like this)")
        if buf[pos:pos + 8] != b"XTENSION":
            raise _not_an_extension(buf, pos)
        th, tpos, cols = ff.table_header(buf, pos)  # the caller must not modify th, cols
        if th.get("XTENSION") != "BINTABLE":
            raise ff.FitsError(f"unknown layout: the primary HDU has no data and extension 1 is "
                               f"{th.get('XTENSION')!r} (expected a BINTABLE named COADD)")
        missing = [c for c in _REQUIRED_COLUMNS if c not in cols]
        if missing:
            raise ff.FitsError(f"unknown layout: the table {th.get('EXTNAME', '')!r} lacks "
                               f"column(s) {', '.join(missing)} (has {', '.join(cols)})")
        repeats = {c: cols[c][1] for c in _REQUIRED_COLUMNS}
        npix = repeats["FLUX"]
        if len(set(repeats.values())) != 1:
            raise ff.FitsError(f"wrong shape: the table's array columns differ in length: "
                               f"{repeats}")
        nrows = th.get("NAXIS2")
        if nrows != 1:
            raise ff.FitsError(f"wrong shape: the COADD table has {nrows!r} rows, expected 1")
        if not data:
            return h, "table", npix
        size = ff.data_bytes(th)
        if tpos + size > len(buf):
            raise ff.FitsError(f"truncated: the COADD table needs {tpos + size} bytes, the file "
                               f"has {len(buf)}")
        if any(cols[c][0] != "E" for c in _REQUIRED_COLUMNS):
            raise ff.Unsupported("a table column is not float32")
        first = cols["FLUX"][2]
        if [cols[c][2] for c in _REQUIRED_COLUMNS] == [first + 4 * npix * k for k in range(4)]:
            rows = ff.f4(buf, tpos + first, 4 * npix).reshape(4, npix)  # adjacent, as LAMOST writes
        else:
            rows = np.stack([ff.f4(buf, tpos + cols[c][2], npix) for c in _REQUIRED_COLUMNS])
        layout = "table"
        pos = tpos + ff.padded(size)
    if pos > len(buf):
        notes.append(_PADDING_NOTE)
    else:
        extra = ff.extensions(buf, pos)
        if extra:
            notes.append(_extra_note(extra))
    return _Raw(h, layout, rows, notes)


_PADDING_NOTE = "the file ends inside the padding of its last block"


def _extra_note(names) -> str:
    return f"ignored {len(names)} extra HDU(s) after the spectrum: {', '.join(names)}"


def _read_fast(path: str) -> _Raw:
    return _structure(ff.load(path))


def _read_fitsio(path: str) -> _Raw:
    """The reference engine: fitsio (cfitsio) parses the headers and reads the arrays.

    What cfitsio does not check, or checks only after it has allocated, gets the same byte-level
    checks as the fast engine, so that both engines give the same verdict: the gzip layer (the
    CRC32 and the end-of-stream marker), the first bytes, every declared data size against the
    file's (uncompressed) size before anything is read (cfitsio allocates first: NAXIS1 =
    999999999 with BITPIX = -64 asked for 37 GiB), repeated keywords, and the bytes after the last
    HDU that cfitsio could read. cfitsio's own errors become reject reasons by their status code
    (_cfitsio_error).
    """
    raw = ff.read_bytes(path)
    if not raw:
        raise ff.FitsError("empty file (0 bytes)")
    buf = ff.gunzip(raw) if raw[:2] == b"\x1f\x8b" else raw
    _check_start(buf)
    import fitsio

    try:
        fits_file = _scanning_fits()(path)
    except (OSError, UnicodeDecodeError, fitsio.FITSFormatError) as e:  # the primary HDU (or, in
        raise _cfitsio_error(e, "the primary HDU") from None  # a fitsio without the scan hook, any)
    if len(fits_file) == 0:
        fits_file.close()
        raise _cfitsio_error(fits_file.scan_error, "the primary HDU")
    return _read_with(fits_file, buf)


@functools.cache
def _scanning_fits():
    """fitsio.FITS whose HDU scan (in the constructor) stops at the first HDU cfitsio cannot read
    and keeps that error in ``scan_error``: fitsio itself stops silently on an OSError and lets
    FITSFormatError and UnicodeDecodeError escape from the constructor."""
    import fitsio

    class ScanningFITS(fitsio.FITS):
        scan_error = None

        def _append_hdu_info(self, ext):
            try:
                return super()._append_hdu_info(ext)
            except Exception as e:  # noqa: BLE001 -- kept, and reported where it matters
                self.scan_error = e
                raise OSError(str(e)) from None

    return ScanningFITS


_CFITSIO_STATUS = re.compile(r"FITSIO status = (\d+)")


def _cfitsio_error(e, what: str) -> ff.FitsError:
    """A reject for an error of fitsio/cfitsio, its kind from cfitsio's status codes (fitsio.h):
    107 END_OF_FILE and 108 READ_ERROR -> truncated, 241 BAD_ROW_WIDTH -> wrong shape, other
    2xx-4xx (header and value errors) -> bad header, anything else -> cannot read the file. The
    message holds cfitsio's error stack (often a stale 107 on top): a header error anywhere in it
    wins, then 241, then 107/108."""
    text = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
    statuses = {int(m) for m in _CFITSIO_STATUS.findall(text)}  # the message lists a stack
    if any(200 <= k < 500 and k != 241 for k in statuses) or isinstance(e, UnicodeDecodeError):
        kind = "bad header"
    elif 241 in statuses:
        kind = "wrong shape"
    elif statuses & {107, 108}:
        kind = "truncated"
    else:
        kind = "cannot read the file"
    if len(text) > 300:
        text = text[:297] + "..."
    return ff.FitsError(f"{kind}: fitsio cannot read {what}: {type(e).__name__}: {text}")


def _header_of(hdu, what: str, keys) -> dict:
    """{keyword: value} of the keys in hdu's header, through fitsio (its card list, in which a
    repeated keyword is still visible: FITSHDR keeps the last card silently); a keyword repeated
    with another value is refused as in the fast engine."""
    try:
        records = hdu.read_header_list()
    except (OSError, UnicodeDecodeError) as e:
        raise _cfitsio_error(e, what) from None
    h = {}
    for r in records:
        name = r.get("name")
        if name in keys:
            if name in h:
                ff.check_repeat(name, h[name], r.get("value"))
            else:
                h[name] = r.get("value")
    return h


_WANTED_NAMES = frozenset(_WANTED.names)
_SIZE_KEYS = ("BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT")
_TABLE_NAMES = frozenset(ff.TABLE_KEYS.names)


def _read_with(fits_file, buf) -> _Raw:
    size = len(buf)
    with fits_file as f:
        n_hdu = len(f)
        h0 = _header_of(f[0], "the primary header", _WANTED_NAMES)
        h = {k: h0[k] for k in META_KEYS if k in h0}
        start = f[0].get_offsets()["data_start"]
        if f[0].has_data():
            dims = tuple(f[0].get_dims())  # numpy order (rows, N)
            if len(dims) != 2 or dims[0] != 5:
                raise ff.FitsError(f"wrong shape: the primary image has NAXIS = {len(dims)} and "
                                   f"axes {dims[::-1]} (FITS order); a LAMOST image is (N pixels, "
                                   f"5 rows: flux, ivar, wavelength, andmask, ormask)")
            needs = start + abs(h0["BITPIX"]) // 8 * 5 * dims[1]
            if needs > size:
                raise ff.FitsError(f"truncated: the {dims[1]}x5 image needs {needs} bytes, the "
                                   f"file has {size}")
            rows = _fitsio_read(f[0]).astype(np.float32, copy=False)[:4]
            layout, first_extra = "image", 1
        else:
            if n_hdu < 2:
                _after_last_hdu(f, buf, f[0], spectrum_hdu=0)
                raise ff.FitsError("unknown layout: the primary HDU has no data and no extension "
                                   "follows (expected an image (N, 5) or a COADD binary table)")
            t = f[1]
            if t.get_exttype() != "BINARY_TBL":
                raise ff.FitsError(f"unknown layout: the primary HDU has no data and extension 1 "
                                   f"is {t.get_exttype()!r} (expected a BINTABLE named COADD)")
            th = _header_of(t, "extension 1", _TABLE_NAMES)
            names = [c.upper() for c in t.get_colnames()]
            missing = [c for c in _REQUIRED_COLUMNS if c not in names]
            if missing:
                raise ff.FitsError(f"unknown layout: the table {t.get_extname()!r} lacks "
                                   f"column(s) {', '.join(missing)} (has {', '.join(names)})")
            if t.get_nrows() != 1:
                raise ff.FitsError(f"wrong shape: the COADD table has {t.get_nrows()} rows, "
                                   f"expected 1")
            sizes = {k: th[k] for k in _SIZE_KEYS if k in th}
            needs = t.get_offsets()["data_start"] + ff.data_bytes(sizes)
            if needs > size:
                raise ff.FitsError(f"truncated: the COADD table needs {needs} bytes, the file "
                                   f"has {size}")
            row = _fitsio_read(t)
            cols = {c.upper(): c for c in row.dtype.names}
            arrays = [np.atleast_1d(row[cols[c]][0]).astype(np.float32, copy=False)
                      for c in _REQUIRED_COLUMNS]
            lengths = {c: a.size for c, a in zip(_REQUIRED_COLUMNS, arrays)}
            if len(set(lengths.values())) != 1:
                raise ff.FitsError(f"wrong shape: the table's array columns differ in length: "
                                   f"{lengths}")
            rows = np.stack(arrays)
            layout, first_extra = "table", 2
        extra = [f[i].get_extname() or f[i].get_exttype() for i in range(first_extra, n_hdu)]
        notes = _after_last_hdu(f, buf, f[first_extra - 1], first_extra - 1)
    if extra:
        notes.append(_extra_note(extra))
    return _Raw(h, layout, rows, notes)


def _fitsio_read(hdu):
    try:
        return hdu.read()
    except OSError as e:
        raise _cfitsio_error(e, f"the data of HDU {hdu.get_extnum()}") from None


def _after_last_hdu(f, buf, spectrum, spectrum_hdu: int) -> list:
    """Checks of the bytes after the spectrum's HDU that cfitsio does not make, as in the fast
    engine: extra HDUs must be complete, and what follows the last HDU that cfitsio could read
    must be padding (or an extension, for which cfitsio's error is reported). Returns notes."""
    size = len(buf)
    n_hdu = len(f)
    for i in range(spectrum_hdu + 1, n_hdu):
        end = f[i].get_offsets()["data_end"]
        if end > size:
            name = f[i].get_extname() or f[i].get_exttype()
            raise ff.FitsError(f"truncated: extension {i - spectrum_hdu} ({name}) needs {end} "
                               f"bytes, the file has {size}")
    end = f[n_hdu - 1].get_offsets()["data_end"]  # padded to whole blocks
    if end > size:
        return [_PADDING_NOTE] if n_hdu - 1 == spectrum_hdu else []
    if not buf[end:].strip(b"\0 "):
        return []
    if buf[end:end + 8] != b"XTENSION":
        if n_hdu == 1 and not spectrum.has_data():
            raise _not_an_extension(buf, end)
        raise ff.trailing_bytes(buf, end)
    raise _cfitsio_error(f.scan_error, f"extension {n_hdu}")


# --- shared: grid placement and metadata -----------------------------------------------------


def _is_number(v) -> bool:
    return v.__class__ in (int, float) and math.isfinite(v)


def _grid_offset(h: dict, npix: int) -> int:
    """Global-grid pixel of the file's first pixel: round((COEFF0 - 3.5682) / 1e-4), checked."""
    c0, c1 = h.get("COEFF0"), h.get("COEFF1")
    if not _is_number(c0) or not _is_number(c1):
        raise ff.FitsError(f"unusable COEFF0/COEFF1: they must be numbers (log10 A of pixel 0, "
                           f"log10 A per pixel), got COEFF0 = {c0!r}, COEFF1 = {c1!r}")
    if abs(c1 - LOG_STEP) > STEP_TOLERANCE:
        raise ff.FitsError(f"unusable COEFF0/COEFF1: COEFF1 is {c1!r}, not the global grid's {LOG_STEP} log10(A) per "
                           f"pixel; jaxvac does not resample")
    x = (c0 - LOG_LAMBDA0) / LOG_STEP
    offset = int(round(x))
    if abs(x - offset) > GRID_TOLERANCE:
        raise ff.FitsError(f"unusable COEFF0/COEFF1: COEFF0 = {c0!r} lies {x - offset:+.3f} pixels "
                           f"off the global grid "
                           f"(at most {GRID_TOLERANCE} allowed); jaxvac does not resample")
    if offset < 0 or offset + npix > NPIX_GLOBAL:
        raise ff.FitsError(f"off the global grid: COEFF0 = {c0!r} puts the file's {npix} pixels "
                           f"at global pixels {offset}..{offset + npix - 1}, outside "
                           f"0..{NPIX_GLOBAL - 1}")
    return offset


@functools.lru_cache(maxsize=256)
def _expected_wavelength(c0: float, c1: float, n: int) -> np.ndarray:
    """10**(c0 + c1 * k) Angstrom, k = 0..n-1, float64 (read-only, cached: few distinct COEFF0)."""
    a = 10.0 ** (c0 + c1 * np.arange(n))
    a.flags.writeable = False
    return a


_WAVES_PASSED: dict = {}  # (COEFF0, COEFF1, N) -> native bytes of a wavelength row that passed


def _check_wavelength(wave: np.ndarray, c0: float, c1: float) -> None:
    """Raise the reject when a pixel of the native float32 wavelength row is more than
    WAVE_TOLERANCE from 10**(c0 + c1 * k) A (or is NaN).

    LAMOST writes the same row for the same COEFF0, COEFF1 and length: a row byte-identical to
    one that passed passes (a memcmp instead of the float64 comparison)."""
    key = (c0, c1, wave.size)
    row = wave.tobytes()
    if _WAVES_PASSED.get(key) == row:
        return
    expected = _expected_wavelength(c0, c1, wave.size)
    diff = np.abs(wave - expected)
    if not diff.max() <= WAVE_TOLERANCE:  # NaN fails too
        k = int(np.argmax(np.where(np.isnan(diff), np.inf, diff)))
        raise ff.FitsError(f"wavelength array disagrees with COEFF0/COEFF1: by "
                           f"{diff[k]:.4g} A at pixel {k} ({wave[k]!r} vs {expected[k]:.3f} "
                           f"A; at most {WAVE_TOLERANCE} A allowed)")
    if len(_WAVES_PASSED) >= 256:
        _WAVES_PASSED.clear()
    _WAVES_PASSED[key] = row


def _is_dr1(h: dict) -> bool:
    """True for DR1-era files (VERSPIPE < v2.7) whose image row 2 is not the wavelength; without
    VERSPIPE, files with SN_G but no SNRG (DR1's S/N keys)."""
    version = _pipeline_version(str(h.get("VERSPIPE", "")))
    if version is not None:
        return version < (2, 7)
    return "SN_G" in h and "SNRG" not in h


@functools.lru_cache(maxsize=64)
def _pipeline_version(verspipe: str) -> tuple[int, int] | None:
    m = re.match(r"\s*v?(\d+)\.(\d+)", verspipe)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _assemble(path: str, raw: _Raw) -> Spectrum:
    """Check the wavelength solution, place the arrays on the global grid, build the metadata."""
    h = raw.header
    npix = raw.rows.shape[1]
    if npix == 0:
        raise ff.FitsError("wrong shape: the spectrum has 0 pixels")
    values, key_notes = _header_values(h)
    offset = _grid_offset(h, npix)
    rows = raw.rows.astype(np.float32)  # native byte order: numpy's fast loops
    flux, ivar, wave, andmask = rows
    if not _is_dr1(h):
        _check_wavelength(wave, h["COEFF0"], h["COEFF1"])
    good = np.zeros(NPIX_GLOBAL, bool)
    good_file = good[offset:offset + npix]
    np.greater(ivar, 0, out=good_file)  # also False for NaN
    good_file &= ivar < np.inf
    good_file &= andmask == 0
    good_file &= np.isfinite(flux)
    out = np.zeros((2, NPIX_GLOBAL), np.float32)
    np.copyto(out[:, offset:offset + npix], rows[:2], where=good_file)
    n_good = int(np.count_nonzero(good_file))
    notes = _sentinel_notes(h) + key_notes + raw.notes
    if n_good == 0:
        notes.append("no good pixels")
    meta = _meta(path, values, raw.layout, npix, offset, 1.0 - n_good / NPIX_GLOBAL, notes)
    return Spectrum(out[0], out[1], good, meta)


_SENTINEL_TEXT = ("-9999", "-9999.0", "-9999.")


def _is_sentinel(v) -> bool:
    """-9999 of any type (int, float, or as text); True == -9999 is False, so bools never are."""
    return v == SENTINEL or (v.__class__ is str and v.strip() in _SENTINEL_TEXT)


def _sentinel_notes(h: dict) -> list:
    keys = [k for k, v in h.items()  # usually none; _is_sentinel inlined (a hot path)
            if (v.strip() in _SENTINEL_TEXT if v.__class__ is str else v == SENTINEL)]
    if not keys:
        return []
    keys = sorted((k for k in keys if k in _KEY_ORDER), key=_KEY_ORDER.__getitem__)
    return [f"-9999 (missing) in {', '.join(keys)}"] if keys else []


_I2, _I4, _I8 = (int(np.iinfo(t).max) for t in (np.int16, np.int32, np.int64))
_BIG = sys.float_info.max
_ABSENT = object()  # a key the header does not have (None is a key without a value)

# How each header key of the metadata is read: (key, kind, lo, hi); the order of META_DTYPE.
_ID = [("OBSID", int, 0, _I8), ("DESIG", str, 0, 0), ("RA", float, 0.0, 360.0),
       ("DEC", float, -90.0, 90.0), ("RA_OBS", float, 0.0, 360.0), ("DEC_OBS", float, -90.0, 90.0)]
_SNR = [(f"SNR{b}", float, -_BIG, _BIG) for b in "UGRIZ"]
_DR1_SNR = [(f"SN_{b}", float, -_BIG, _BIG) for b in "UGRIZ"]
_REST = [("Z", float, -_BIG, _BIG), ("Z_ERR", float, -_BIG, _BIG), ("CLASS", str, 0, 0),
         ("SUBCLASS", str, 0, 0), ("LMJD", int, 0, _I4), ("PLANID", str, 0, 0),
         ("SPID", int, 0, _I2), ("FIBERID", int, 0, _I2), ("DATA_V", str, 0, 0),
         ("VERSPIPE", str, 0, 0)]
_FIELDS, _DR1_FIELDS = _ID + _SNR + _REST, _ID + _DR1_SNR + _REST

# Keys without which no usable catalogue row can be made (docs/reading.md "Header keys"): a
# missing or unusable value rejects the file; -9999 is the missing value (tolerated, noted).
_REQUIRED = {
    "OBSID": "the spectrum's id and cross-match key; only DR1 files (VERSPIPE < v2.7) lack it",
    "RA": "the position, deg", "DEC": "the position, deg",
    "Z": "the radial velocity Z * c that moves the spectrum to its rest frame",
    "SNRG": "the g-band S/N that sets the errors", "SN_G": "the g-band S/N that sets the errors",
    "CLASS": "it decides whether the spectrum is processed",
}
_DR1_ID = "a DR1 file has no OBSID: LMJD, PLANID, SPID and FIBERID identify it"
_REQUIRED_DR1 = {**{k: v for k, v in _REQUIRED.items() if k != "OBSID"},
                 "LMJD": _DR1_ID, "PLANID": _DR1_ID, "SPID": _DR1_ID, "FIBERID": _DR1_ID}
_NOTED_IF_ABSENT = ("DESIG",)  # optional, but the catalogue's uqflag falls back on it
_MISSING = {float: math.nan, int: -1, str: ""}
_DIGITS = re.compile(r"\s*[+-]?[0-9]+\s*")  # an integer written as text


def _header_values(h: dict) -> tuple[list, list]:
    """The metadata values of the header keys (META_DTYPE's obsid .. verspipe without the
    derived rv, rv_err), and notes on optional keys read as missing.

    Raises FitsError naming every required key that is absent, has no value or has an unusable
    one (e.g. "bad header: OBSID 'abc' is not an integer (...)"). -9999 of any type is the
    missing value and never a problem (_sentinel_notes lists it).
    """
    dr1_snr = "SNRG" not in h and "SN_G" in h
    required = _REQUIRED_DR1 if "OBSID" not in h and _is_dr1(h) else _REQUIRED
    values, notes, bad, unusable = [], [], [], []
    for key, kind, lo, hi in _DR1_FIELDS if dr1_snr else _FIELDS:
        v = h.get(key, _ABSENT)
        c = v.__class__
        if kind is float:  # fast paths: the usual type, in range, not -9999
            if (c is float or c is int) and lo <= v <= hi and v != SENTINEL:
                values.append(float(v))
                continue
        elif kind is str:
            if c is str:
                t = v.strip()
                if t and t not in _SENTINEL_TEXT:
                    values.append(t)
                    continue
        elif c is int and lo <= v <= hi:
            values.append(v)
            continue
        value, problem = _convert(v, kind, lo, hi)
        values.append(value)
        if problem is None:
            continue
        if key in required:
            bad.append(f"{key} {problem} ({required[key]})")
        elif v is not _ABSENT:
            unusable.append(f"{key} {problem}")
        elif key in _NOTED_IF_ABSENT:
            notes.append(f"{key} is missing")
    if bad:
        raise ff.FitsError(f"bad header: {'; '.join(bad)}")
    if unusable:
        notes.append(f"read as missing: {', '.join(unusable)}")
    return values, notes


def _convert(v, kind, lo, hi):
    """(value, problem) of a header value off _header_values' fast paths; problem is None when
    the value is usable or -9999 (the missing value), else what is wrong with it."""
    missing = _MISSING[kind]
    if v is _ABSENT:
        return missing, "is missing"
    if v is None:
        return missing, "has no value"
    if _is_sentinel(v):
        return missing, None
    c = v.__class__
    if kind is str:
        if c is not str:
            return missing, f"{v!r} is not text"
        t = v.strip()
        return t, (None if t else "is blank")
    if kind is float:
        x = v if c is float or c is int else None
        if c is str:  # numeric text reads as the number (fitsio and the fast engine agree)
            try:
                x = float(v)
            except ValueError:
                pass
        if x is None or not -_BIG <= x <= _BIG:
            return missing, f"{v!r} is not a number"
        if not lo <= x <= hi:
            return missing, f"{v!r} is outside {lo:g}..{hi:g}"
        return float(x), None
    x = v if c is int else None
    if c is float and v.is_integer():
        x = int(v)
    elif c is str and _DIGITS.fullmatch(v):
        x = int(v)
    if x is None:
        return missing, f"{v!r} is not an integer"
    if not lo <= x <= hi:
        return missing, f"{v!r} is outside {lo}..{hi}"
    return x, None


def _meta(path, values, layout, npix, offset, bad_fraction, notes) -> np.ndarray:
    """The 0-d META_DTYPE record of one file (field order of META_DTYPE) from _header_values."""
    (obsid, desig, ra, dec, ra_obs, dec_obs, snru, snrg, snrr, snri, snrz, z, z_err,
     cls, subclass, lmjd, planid, spid, fiberid, data_v, verspipe) = values
    if desig.startswith("LAMOST "):
        desig = desig[len("LAMOST "):]
    if len(path) > _PATH_CHARS:
        notes = notes + [f"meta path cut to its first {_PATH_CHARS} of {len(path)} characters"]
    note = "; ".join(notes)
    if len(note) > _NOTE_CHARS:
        note = note[:_NOTE_CHARS - 3] + "..."
    return np.array((
        path, obsid, desig, ra, dec, ra_obs, dec_obs, snru, snrg, snrr, snri, snrz,
        z, z_err, z * C_KMS, z_err * C_KMS, cls, subclass, lmjd, planid, spid, fiberid,
        data_v, verspipe, layout, npix, offset, bad_fraction, note,
    ), META_DTYPE)
