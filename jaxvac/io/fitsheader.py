"""The one FITS header parser of jaxvac, and the byte helpers of the LAMOST reader.

FITS's structural constants (BLOCK, CARD) live here; every module that reads or writes FITS
bytes imports them. As a reader of spectra it is ~10x faster than fitsio, and it understands
exactly what LAMOST writes and nothing more: a primary float32 image, or an empty
primary followed by a one-row binary table of float32 array columns. Anything else that is valid
FITS (scaled data, other column types, ...) raises :class:`Unsupported` so that the caller can use
fitsio; anything damaged raises :class:`FitsError` whose message is the reject reason.

How it is fast (MEASURED.md "Reading FITS"): fitsio parses all ~125 header cards into Python
objects (~3.4 ms); here the file is read in one call, gunzipped in one call, header
cards are scanned as raw bytes and only the wanted keys are converted, and the data are taken
with ``numpy.frombuffer`` on the big-endian bytes (no copy, bit-identical to fitsio). A whole
.fits.gz is inflated by libdeflate (zlib-ng when libdeflate declines; see gunzip).

FITS rules used (FITS Standard 4.0, sections 3-4 and 7.3): 2880-byte blocks, 80-byte cards,
``KEYWORD = value / comment``, strings in single quotes with '' for a quote and trailing blanks
not significant, the header ends at the ``END`` card and the data start at the next block.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from operator import itemgetter
from typing import Callable, NamedTuple

import numpy as np

try:  # zlib-ng (a dependency) inflates these files ~2x faster than zlib, with the same output
    from zlib_ng import zlib_ng as _zlib
except ImportError:  # pragma: no cover -- same results through the standard library
    _zlib = zlib
_ZLIB_ERRORS = (zlib.error, _zlib.error)
try:  # libdeflate (PyPI deflate, a dependency): whole .fits.gz ~1.6x faster than zlib-ng, same bytes
    import deflate as _deflate
except ImportError:  # pragma: no cover -- zlib-ng then does it all
    _deflate = None

#: What inflates a whole .fits.gz: "libdeflate" (zlib-ng when it declines), "zlib-ng" or "zlib".
DECOMPRESSOR = "libdeflate" if _deflate else "zlib-ng" if _zlib is not zlib else "zlib"
_MAX_RATIO = 1032  # DEFLATE cannot compress better than 1032:1 (RFC 1951 maximal-length matches)

BLOCK = 2880  # bytes per FITS block
CARD = 80  # bytes per header card
_END = b"END" + b" " * 77
_GZIP_MAGIC = b"\x1f\x8b"
_TFORM = re.compile(r"^\s*(\d*)([LXBIJKAEDCMPQ])", re.IGNORECASE)  # as lenient as cfitsio
_TFORM_BYTES = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16,
                "P": 8, "Q": 16}


class FitsError(Exception):
    """The file is damaged or is not a FITS file; str(error) is the human-readable reason."""


class Unsupported(Exception):
    """Valid FITS that this reader does not handle (the caller falls back to fitsio)."""


def read_bytes(path) -> bytes:
    """The whole file, read with one os.read of its size (half the cost of open().read(), which
    builds a buffered file object per call); a short read is completed."""
    fd = os.open(path, os.O_RDONLY | _O_BINARY)
    try:
        size = os.fstat(fd).st_size
        raw = os.read(fd, size + 1)  # + 1: a file that grew is read to its end below
        if len(raw) != size:
            parts = [raw]
            while parts[-1]:
                parts.append(os.read(fd, 1 << 20))
            raw = b"".join(parts)
    finally:
        os.close(fd)
    return raw


_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows


def load(path) -> bytes | bytearray:
    """The whole file, gunzipped when it starts with the gzip magic number."""
    raw = read_bytes(path)
    if not raw:
        raise FitsError("empty file (0 bytes)")
    if raw[:2] == _GZIP_MAGIC:
        return gunzip(raw)
    return raw


def gunzip(raw: bytes, max_out: int = 0) -> bytes | bytearray:
    """Decompress every gzip member of raw (gzip header and CRC32 checked); trailing non-gzip
    bytes are ignored.

    max_out > 0 stops after at least that many decompressed bytes (for header-only reads).
    A whole single-member stream goes through libdeflate (a bytearray); anything else, and
    anything libdeflate declines, through zlib-ng (bytes), whose messages are the reject reasons.
    """
    if not max_out and _deflate is not None:
        out = _inflate_whole(raw)
        if out is not None:
            return out
    parts = []
    total = 0
    while True:
        d = _zlib.decompressobj(31)
        try:
            part = d.decompress(raw, max_out) if max_out else d.decompress(raw)
        except _ZLIB_ERRORS as e:
            raise FitsError(f"broken gzip stream: {e} (after {total} decompressed bytes)") from None
        parts.append(part)
        total += len(part)
        if max_out and total >= max_out:
            break
        if not d.eof:
            raise FitsError(f"truncated gzip stream: it ends after {len(raw)} compressed bytes "
                            f"({total} decompressed) without its end-of-stream marker")
        raw = d.unused_data
        if raw[:2] != _GZIP_MAGIC:
            break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _inflate_whole(raw: bytes) -> bytearray | None:
    """raw inflated in one call by libdeflate, or None to let zlib-ng do it (and word the error).

    libdeflate needs the output size up front: the gzip trailer's ISIZE (the size mod 2**32),
    bounded by the best ratio DEFLATE can reach so that a lying trailer cannot allocate much.
    libdeflate checks the member's CRC32 and ISIZE; the output must also match the *file's* last
    8 bytes, which rules out a file of several members (libdeflate inflates the first only),
    except the same member written twice (read as one copy; zlib-ng would find a second FITS).
    """
    n = len(raw)
    isize = int.from_bytes(raw[-4:], "little")
    if n < 18 or not 0 < isize <= _MAX_RATIO * n:
        return None
    try:
        out = _deflate.gzip_decompress(raw, isize)
    except Exception:  # noqa: BLE001 -- DeflateError and anything else: zlib-ng decides
        return None
    if len(out) != isize or _deflate.crc32(out) != int.from_bytes(raw[-8:-4], "little"):
        return None
    return out


class KeySet(NamedTuple):
    """Header keywords to look up, from :func:`keyset`."""

    codes: np.ndarray  # sorted uint64 views of the 8-byte blank-padded names
    names: list  # the keyword of each code
    kinds: list  # float, int, str or None (any type) for each code: the expected value type
    layouts: dict  # card names of a header (bytes) -> its _Plan (the hits, and how to convert them)


def keyset(kinds: dict) -> KeySet:
    """A KeySet from {keyword: float | int | str | None}.

    A keyword's kind is only a fast path: a value that does not parse as that kind is converted
    by the general rules (so a -9999 written as an int in a float keyword still reads)."""
    names = sorted(set(kinds), key=lambda k: f"{k:<8}".encode())
    codes = np.frombuffer(b"".join(f"{k:<8}".encode() for k in names), "<u8")
    order = np.argsort(codes, kind="stable")
    return KeySet(codes[order], [names[i] for i in order], [kinds[names[i]] for i in order], {})


_INT = re.compile(rb"\s*[+-]?\d+\s*")
_DOUBLE = re.compile(rb"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][+-]?\d+)?\s*")
_I8_MIN, _I8_MAX = -(2 ** 63), 2 ** 63 - 1
_LE_U8, _BE_F4 = np.dtype("<u8"), np.dtype(">f4")


class _BadNumber(ValueError):
    """An unquoted value that looks like a real number (it has '.', 'E' or 'e') but is not one,
    or overflows a double: cfitsio refuses the whole header (fitsio's read_header fails)."""


def _value(raw: bytes):
    """The Python value of the bytes after ``KEY     = `` in a card: str, bool, int, float or None.

    Mirrors fitsio's conversion (fitsio_pywrap.c read_header): quoted strings lose their quotes
    and trailing blanks ('' stands for one quote); an empty value is None; a value starting with
    T or F is a boolean; one with '.', 'E' or 'e' is a double (Fortran D exponents allowed) and
    raises _BadNumber when it is not a finite one; an int64 integer is an int; anything else
    (nan, inf, 1_0, an integer beyond int64, ...) is returned as the stripped text.
    """
    if raw[:1] == b"'":  # fixed-format string, the common case: no doubled quote inside
        j = raw.find(b"'", 1)
        if j > 0 and raw[j + 1:j + 2] != b"'":
            return raw[1:j].decode("ascii", "replace").rstrip()
    s = raw.lstrip()
    if s[:1] == b"'":
        out, i = [], 1
        j = s.find(b"'", i)
        while j >= 0 and s[j + 1:j + 2] == b"'":
            out.append(s[i:j + 1])
            i = j + 2
            j = s.find(b"'", i)
        out.append(s[i:j] if j >= 0 else s[i:])  # an unterminated string runs to the card's end
        return b"".join(out).decode("ascii", "replace").rstrip()
    s = s.split(b"/", 1)[0].strip()
    if not s:
        return None
    if s[:1] == b"T":
        return True
    if s[:1] == b"F":
        return False
    if b"." in s or b"E" in s or b"e" in s:
        v = float(s.replace(b"D", b"E").replace(b"d", b"e")) if _DOUBLE.fullmatch(s) else None
        if v is None or v - v != 0:
            raise _BadNumber(s.decode("ascii", "replace"))
        return v
    if _INT.fullmatch(s):
        v = int(s)
        if _I8_MIN <= v <= _I8_MAX:
            return v
    return s.decode("ascii", "replace")


def _bad_number(key: str, e: _BadNumber) -> FitsError:
    return FitsError(f"bad header: {key} = {e} is not a valid FITS number (fitsio cannot read "
                     f"this header)")


def _end_card(buf: bytes, start: int) -> int:
    """Offset of the END card of the header starting at byte `start`."""
    end = buf.find(_END, start)
    while end >= 0 and (end - start) % CARD:
        end = buf.find(_END, end + 1)
    if end < 0:
        raise FitsError(f"truncated: the header starting at byte {start} has no END card "
                        f"(the file has {len(buf)} bytes)")
    return end


def header(buf: bytes, start: int, wanted: KeySet | None) -> tuple[dict, int]:
    """Parse the header that starts at byte `start`.

    wanted: the keywords to convert (None: all of them). When a wanted keyword appears twice with
    different values the header is refused (fitsio would keep the last card, cfitsio's look-ups
    the first); with wanted=None the first card counts.
    Returns ({keyword: value}, offset of the first data byte). Raises FitsError for a missing END
    card, a malformed number in a converted card (see _value) or a conflicting duplicate.
    """
    end = _end_card(buf, start)
    cards = {}
    if wanted is None:
        for i in range(start, end, CARD):
            key = buf[i:i + 8].decode("ascii", "replace").rstrip()
            if buf[i + 8:i + 10] == b"= " and key not in cards:
                try:
                    cards[key] = _value(buf[i + 10:i + CARD])
                except _BadNumber as e:
                    raise _bad_number(key, e) from None
        return cards, start + -(-(end + CARD - start) // BLOCK) * BLOCK
    plan = _plan_of(buf, start, end, wanted)
    data_start = start + -(-(end + CARD - start) // BLOCK) * BLOCK
    if plan.keys:
        cards = _convert_all(buf, start, plan)
        if cards is not None:
            return cards, data_start
    return _convert_each(buf, start, plan.hits), data_start


def _plan_of(buf, start: int, end: int, wanted: KeySet) -> _Plan:
    """The plan of the header from byte start to its END card at byte end.

    The card names as uint64, looked up in the sorted wanted codes: no Python loop over cards.
    Headers written by one pipeline version have the same cards in the same order: the hits of
    each such layout, and the plan to convert them, are found once per process.
    """
    codes = np.ndarray(((end - start) // CARD,), _LE_U8, buf, start, (CARD,))
    layout = codes.tobytes()
    plan = wanted.layouts.get(layout)
    if plan is None:
        idx = np.searchsorted(wanted.codes, codes)
        np.minimum(idx, wanted.codes.size - 1, out=idx)
        found = np.flatnonzero(wanted.codes[idx] == codes)
        plan = _plan([(card, wanted.names[w], wanted.kinds[w])
                      for card, w in zip((found * CARD).tolist(), idx[found].tolist())])
        if len(wanted.layouts) >= 64:
            wanted.layouts.clear()
        wanted.layouts[layout] = plan
    return plan


class _Plan(NamedTuple):
    """How to convert the wanted cards of one header layout in a few C-level calls (_convert_all).

    keys is empty when the layout has no plan (a repeated keyword, a keyword of any type, fewer
    than two hits): _convert_each then converts card by card.
    """

    hits: list  # [(card offset from the header's start, keyword, kind)], card order
    keys: tuple  # the keyword of each hit
    fields: struct.Struct  # per hit: bytes 8-9, the value (10-29 of a number, 10-79 of a
    #                        string) and bytes 30-31 of a number (b"" for a string)
    want: tuple  # bytes 8-9 then 30-31 of every hit in the common format: b"= ", b" /"
    floats: Callable  # unpacked fields -> the values of the float hits
    ints: Callable  # ... of the int hits
    strs: Callable  # ... of the str hits
    order: Callable  # floats + ints + strs -> card order


def _getter(items: list) -> Callable:
    """itemgetter that always returns a tuple (also for zero or one item)."""
    if len(items) > 1:
        return itemgetter(*items)
    if items:
        one = itemgetter(items[0])
        return lambda x: (one(x),)
    return lambda x: ()


def _plan(hits: list) -> _Plan:
    keys = tuple(key for _, key, _ in hits)
    kinds = [kind for _, _, kind in hits]
    if len(hits) < 2 or len(set(keys)) < len(keys) or not set(kinds) <= {float, int, str}:
        keys = ()
    fmt, pos = [], 0
    for card, _, kind in hits:
        fmt.append(f"{card + 8 - pos}x2s" + ("70s0s" if kind is str else "20s2s"))
        pos = card + (CARD if kind is str else 32)
    grouped = [i for kind in (float, int, str) for i, k in enumerate(kinds) if k is kind]
    return _Plan(
        hits, keys, struct.Struct("<" + "".join(fmt)),
        (b"= ",) * len(hits) + tuple(b"" if k is str else b" /" for k in kinds),
        *(_getter([3 * i + 1 for i, k in enumerate(kinds) if k is kind])
          for kind in (float, int, str)),
        _getter([grouped.index(i) for i in range(len(hits))]))


_POINT = re.compile(rb"[.Ee]").search  # a number with one of these is a double for cfitsio
# 70-character fields each starting with a quoted string that is closed by character 68 and not
# by a doubled quote; the group is the text inside the quotes. findall on n joined fields finds n
# matches only if every field matches: n non-overlapping 70-character matches tile the text.
_QUOTED = re.compile(r"(?='([^']{0,67})'(?!'))[\s\S]{70}")


def _convert_all(buf, start: int, plan: _Plan) -> dict | None:
    """The wanted cards of the header at byte `start` converted by a few C-level calls, or None
    when a card is off the common fixed format (every card has a value; numbers in bytes 10-29
    followed by " /", without '_', finite, integers within int64; strings quoted, closed by
    byte 78, without a doubled quote): then _convert_each decides. A dict returned is the one
    _convert_each returns (tests/test_reader.py checks both on altered real headers)."""
    fields = plan.fields.unpack_from(buf, start)
    if fields[0::3] + fields[2::3] != plan.want:
        return None
    floats, ints = plan.floats(fields), plan.ints(fields)
    text = b"".join(floats)
    if b"_" in text or b"_" in b"".join(ints):
        return None
    try:
        doubles, integers = list(map(float, floats)), list(map(int, ints))
    except ValueError:
        return None
    total = sum(doubles)  # inf or NaN when a value is (or, harmlessly, when the sum overflows)
    if total - total != 0 or (ints and not _I8_MIN <= min(integers) <= max(integers) <= _I8_MAX):
        return None
    # A number float() reads has at most one '.': as many '.' as fields put one in each. A field
    # without '.', 'E' or 'e' (an integer in a float keyword: Z = -9999) reads as _value reads it.
    if text.count(b".") != len(floats):
        doubles = [d if _POINT(f) else _value(f) for d, f in zip(doubles, floats)]
    strs = plan.strs(fields)
    quoted = _QUOTED.findall(b"".join(strs).decode("ascii", "replace"))
    if len(quoted) != len(strs):
        return None
    return dict(zip(plan.keys, plan.order(doubles + integers + list(map(str.rstrip, quoted)))))


def _convert_each(buf, start: int, hits: list) -> dict:
    """The wanted cards of the header at byte `start`, converted one by one (see header)."""
    cards = {}
    for card, key, kind in hits:
        card += start
        if buf[card + 8:card + 10] != b"= ":
            continue
        try:  # fast paths for the expected type; anything unusual goes to _value
            if kind is float:
                # a fixed-format value (bytes 10-29) followed by " /": what split would give
                if buf[card + 30:card + 32] == b" /":
                    s = buf[card + 10:card + 30]
                else:
                    s = buf[card + 10:card + CARD].split(b"/", 1)[0]
                v = float(s)
                if v - v == 0 and b"_" not in s and (b"." in s or b"E" in s or b"e" in s):
                    if key in cards:
                        check_repeat(key, cards[key], v)
                    cards[key] = v
                    continue
            elif kind is int:
                if buf[card + 30:card + 32] == b" /":
                    s = buf[card + 10:card + 30]
                else:
                    s = buf[card + 10:card + CARD].split(b"/", 1)[0]
                if b"_" not in s:
                    v = int(s)
                    if _I8_MIN <= v <= _I8_MAX:
                        if key in cards:
                            check_repeat(key, cards[key], v)
                        cards[key] = v
                        continue
            elif kind is str and buf[card + 10:card + 11] == b"'":
                j = buf.find(b"'", card + 11, card + CARD)
                if j > 0 and buf[j + 1:j + 2] != b"'":
                    v = buf[card + 11:j].decode("ascii", "replace").rstrip()
                    if key in cards:
                        check_repeat(key, cards[key], v)
                    cards[key] = v
                    continue
        except ValueError:
            pass
        try:
            v = _value(buf[card + 10:card + CARD])
        except _BadNumber as e:
            raise _bad_number(key, e) from None
        if key in cards:
            check_repeat(key, cards[key], v)
        cards[key] = v
    return cards


def check_repeat(key: str, first, second) -> None:
    """Raise FitsError when a keyword's second card disagrees with its first."""
    if first != second or first.__class__ is not second.__class__:
        raise FitsError(f"bad header: {key} appears twice with different values, {first!r} and "
                        f"{second!r}")


def data_bytes(h: dict) -> int:
    """Bytes of the data unit described by header h (padding excluded): FITS Standard eq. (1)-(2)."""
    naxis = h.get("NAXIS", 0)
    if naxis.__class__ is not int or naxis < 0 or naxis > 999:
        raise FitsError(f"bad header: NAXIS must be a non-negative integer, got {naxis!r}")
    if naxis == 0:
        return 0
    n = 1
    for k in range(1, naxis + 1):
        nk = h.get(f"NAXIS{k}")
        if nk.__class__ is not int or nk < 0:
            raise FitsError(f"bad header: NAXIS{k} must be a non-negative integer, got {nk!r}")
        n *= nk
    bitpix = h.get("BITPIX")
    if bitpix not in (8, 16, 32, 64, -32, -64):
        raise FitsError(f"bad header: BITPIX must be one of 8, 16, 32, 64, -32, -64, got {bitpix!r}")
    pcount = h.get("PCOUNT", 0)
    gcount = h.get("GCOUNT", 1)
    if pcount.__class__ is not int or gcount.__class__ is not int or pcount < 0 or gcount < 0:
        raise FitsError(f"bad header: PCOUNT and GCOUNT must be non-negative integers, got "
                        f"{pcount!r} and {gcount!r}")
    return abs(bitpix) // 8 * gcount * (pcount + n)


def padded(n: int) -> int:
    """n rounded up to whole FITS blocks."""
    return -(-n // BLOCK) * BLOCK


def extensions(buf: bytes, pos: int) -> list[str]:
    """Names (EXTNAME, or the XTENSION type) of the HDUs from byte pos to the end of buf.

    Raises FitsError when the bytes there are not a complete extension.
    """
    names = []
    while pos < len(buf):
        if buf[pos:pos + 8] != b"XTENSION":
            if not buf[pos:].strip(b"\0 "):
                break  # zero or blank padding after the last HDU
            raise trailing_bytes(buf, pos)
        h, start = header(buf, pos, _EXTENSION_KEYS)
        names.append(str(h.get("EXTNAME", h.get("XTENSION", "?"))))
        pos = start + padded(data_bytes(h))
        if pos > len(buf):
            raise FitsError(f"truncated: extension {len(names)} ({names[-1]}) needs "
                            f"{pos} bytes, the file has {len(buf)}")
    return names


def trailing_bytes(buf: bytes, pos: int) -> FitsError:
    """The reject for bytes from pos on that are neither padding nor an extension."""
    return FitsError(f"trailing bytes: {len(buf) - pos} bytes after the last HDU (at byte {pos}) "
                     f"are not a FITS extension: they start with {bytes(buf[pos:pos + 20])!r}")


def table_columns(h: dict) -> dict[str, tuple[str, int, int]]:
    """{TTYPE: (type code, repeat, byte offset in the row)} of a binary table header."""
    tfields = h.get("TFIELDS")
    if tfields.__class__ is not int or tfields < 0:
        raise FitsError(f"bad header: TFIELDS must be a non-negative integer, got {tfields!r}")
    cols = {}
    offset = 0
    for k in range(1, tfields + 1):
        tform = h.get(f"TFORM{k}")
        m = _TFORM.match(tform) if isinstance(tform, str) else None
        if m is None:
            raise FitsError(f"bad header: TFORM{k} is not a binary-table format: {tform!r}")
        repeat = int(m.group(1) or 1)
        code = m.group(2).upper()
        if h.get(f"TSCAL{k}", 1) != 1 or h.get(f"TZERO{k}", 0) != 0:
            raise Unsupported(f"column {k} is scaled (TSCAL/TZERO)")
        name = str(h.get(f"TTYPE{k}", f"COL{k}")).strip().upper()
        cols[name] = (code, repeat, offset)
        offset += (repeat + 7) // 8 if code == "X" else repeat * _TFORM_BYTES[code]
    if offset != h.get("NAXIS1"):
        raise FitsError(f"wrong shape: the table's columns take {offset} bytes per row but NAXIS1 is "
                        f"{h.get('NAXIS1')!r}")
    return cols


_EXTENSION_KEYS = keyset({"XTENSION": str, "EXTNAME": str, "NAXIS": int, "BITPIX": int,
                          "PCOUNT": int, "GCOUNT": int, **{f"NAXIS{k}": int for k in range(1, 10)}})


MAX_TABLE_KEYS = 32  # TTYPEn/TFORMn/TSCALn/TZEROn looked up for n <= this (else all cards)
TABLE_KEYS = keyset({"XTENSION": str, "EXTNAME": str, "BITPIX": int, "NAXIS": int, "NAXIS1": int,
                     "NAXIS2": int, "PCOUNT": int, "GCOUNT": int, "TFIELDS": int,
                     **{f"{k}{n}": t for n in range(1, MAX_TABLE_KEYS + 1)
                        for k, t in (("TTYPE", str), ("TFORM", str), ("TSCAL", float),
                                     ("TZERO", float))}})


def _check_bintable(h: dict) -> None:
    """The mandatory keywords of a binary table (FITS Standard 4.0, 7.3.1), as cfitsio checks them."""
    data_bytes(h)  # NAXIS, NAXISn, BITPIX, PCOUNT, GCOUNT are integers of the right sign
    for key, want in (("BITPIX", 8), ("NAXIS", 2), ("GCOUNT", 1)):
        if h.get(key) != want:
            raise FitsError(f"bad header: {key} of a binary table must be {want}, got "
                            f"{h.get(key)!r}")


_TABLES: dict = {}  # table-header bytes -> (header, columns): LAMOST's repeat across files


def table_header(buf: bytes, start: int) -> tuple[dict, int, dict]:
    """The binary-table header at `start`: (header, offset of its data, table_columns(header)).

    Identical headers (every COADD table of a given length) are parsed once per process.
    """
    end = _end_card(buf, start)
    data_start = start + -(-(end + CARD - start) // BLOCK) * BLOCK
    key = bytes(buf[start:end])  # buf may be a bytearray (libdeflate), which is not hashable
    hit = _TABLES.get(key)
    if hit is None:
        h, _ = header(buf, start, TABLE_KEYS)
        tfields = h.get("TFIELDS", 0)
        if tfields.__class__ is int and tfields > MAX_TABLE_KEYS:
            h, _ = header(buf, start, None)
        if h.get("XTENSION") != "BINTABLE":
            return h, data_start, {}
        _check_bintable(h)
        hit = (h, table_columns(h))
        if len(_TABLES) >= 256:
            _TABLES.clear()
        _TABLES[key] = hit
    return hit[0], data_start, hit[1]


def f4(buf: bytes, offset: int, n: int) -> np.ndarray:
    """n big-endian float32 values starting at byte offset (a read-only view of buf)."""
    return np.frombuffer(buf, _BE_F4, count=n, offset=offset)
