"""Damaged and unusual files made in tmp_path: each becomes a Reject with the right reason, or a
Spectrum whose note says what was tolerated. Never an exception, never an 'unexpected' reason.

The files are written with astropy (independent of the reader under test), in both layouts."""

import gzip
import io

import numpy as np
import pytest
from astropy.io import fits

from jaxvac.constants import NPIX_GLOBAL
from jaxvac.io.lamost import read_meta, read_spectrum
from jaxvac.io.records import Reject, Spectrum

N = 3900  # pixels in the synthetic files (global pixels 0..3899)
HEADER = {"OBSID": 123456789, "DESIG": "LAMOST J000000.00+000000.0", "RA": 10.5, "DEC": -2.25,
          "RA_OBS": 10.5, "DEC_OBS": -2.25, "SNRU": 1.5, "SNRG": 20.25, "SNRR": 30.0,
          "SNRI": 40.0, "SNRZ": 50.0, "Z": 1e-4, "Z_ERR": 2e-5, "CLASS": "STAR",
          "SUBCLASS": "G2", "LMJD": 55859, "PLANID": "F5902", "SPID": 1, "FIBERID": 13,
          "DATA_V": "LAMOST DR8", "VERSPIPE": "v2.9.8", "COEFF0": 3.5682, "COEFF1": 1e-4}


def rows(n=N, coeff0=3.5682):
    """float32 (5, n): flux, ivar, wavelength, andmask, ormask, with 10 bad pixels."""
    k = np.arange(n)
    r = np.zeros((5, n), np.float32)
    r[0] = 1.0 + 0.1 * np.sin(k / 50.0)
    r[1] = 100.0
    r[2] = 10.0 ** (coeff0 + 1e-4 * k)
    r[1, 100:105] = 0.0  # ivar = 0
    r[3, 200:205] = 4.0  # andmask set
    r[4, 300:305] = 1.0  # ormask only: still good
    return r


def write(path, data=None, *, layout="image", header=None, extra=(), gz=False):
    """A LAMOST-like file; data (5, n) float32 rows; extra: HDUs appended after the spectrum."""
    data = rows() if data is None else data
    h = fits.Header(list({**HEADER, **(header or {})}.items()))
    if layout == "image":
        hdus = [fits.PrimaryHDU(data, h)]
    else:
        names = ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK", "ORMASK")
        cols = [fits.Column(name=c, format=f"{len(d)}E", array=d[None, :])
                for c, d in zip(names, data)]
        hdus = [fits.PrimaryHDU(header=h), fits.BinTableHDU.from_columns(cols, name="COADD")]
    buf = io.BytesIO()
    fits.HDUList(hdus + list(extra)).writeto(buf)
    raw = buf.getvalue()
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def read_both(path):
    """read_spectrum with both engines; neither may raise or hit an unexpected failure."""
    out = []
    for engine in ("fast", "fitsio"):
        r = read_spectrum(path, engine=engine)
        assert isinstance(r, (Spectrum, Reject))
        if isinstance(r, Reject):
            assert r.path == str(path) and not r.reason.startswith("unexpected"), r.reason
        out.append(r)
    return out


def rejected(path, match):
    r = read_spectrum(path)
    assert isinstance(r, Reject), f"{path.name} was read: {r.meta}"
    assert match in r.reason, r.reason
    read_both(path)
    return r.reason


@pytest.mark.parametrize("layout", ["image", "table"])
@pytest.mark.parametrize("gz", [False, True])
def test_clean_synthetic_file(tmp_path, layout, gz):
    path = write(tmp_path / f"s.fits{'.gz' if gz else ''}", layout=layout, gz=gz)
    fast, ref = read_both(path)
    assert isinstance(fast, Spectrum) and fast.meta["layout"] == layout and fast.meta["note"] == ""
    r = rows()
    good = np.ones(N, bool)
    good[100:105] = good[200:205] = False
    np.testing.assert_array_equal(fast.good, np.r_[good, np.zeros(NPIX_GLOBAL - N, bool)])
    np.testing.assert_array_equal(fast.flux[:N], np.where(good, r[0], 0))
    assert fast.meta["bad_fraction"] == np.float32(1 - good.sum() / NPIX_GLOBAL)
    assert (fast.meta["obsid"], fast.meta["snrg"], fast.meta["designation"]) == (
        123456789, np.float32(20.25), "J000000.00+000000.0")
    assert fast.flux.tobytes() == ref.flux.tobytes() and fast.meta.tobytes() == ref.meta.tobytes()


@pytest.mark.parametrize("layout", ["image", "table"])
def test_truncated_at_many_offsets(tmp_path, layout):
    whole = write(tmp_path / "whole.fits", layout=layout).read_bytes()
    data_end = len(whole) - 2880 + 1  # the last block is needed at least in part
    for cut in (1, 79, 80, 2879, 2880, 5000, 12000, 40000, data_end - 100):
        path = tmp_path / f"cut{cut}.fits"
        path.write_bytes(whole[:cut])
        if layout == "table" and cut == 2880:  # a whole primary HDU and nothing after it
            rejected(path, "no extension follows")
            continue
        reason = rejected(path, "truncated")
        assert str(len(whole[:cut])) in reason
    zipped = gzip.compress(whole)
    for cut in (11, 100, len(zipped) // 2, len(zipped) - 100, len(zipped) - 1):
        path = tmp_path / f"cut{cut}.fits.gz"
        path.write_bytes(zipped[:cut])
        rejected(path, "truncated gzip stream")


def test_a_gzip_member_that_ends_early_or_is_garbage(tmp_path):
    whole = gzip.compress(write(tmp_path / "w.fits").read_bytes())
    rng = np.random.default_rng(0)
    (tmp_path / "garbage.fits.gz").write_bytes(whole[:10] + rng.bytes(5000))
    rejected(tmp_path / "garbage.fits.gz", "broken gzip stream")
    flipped = bytearray(whole)
    flipped[-6] ^= 0xFF  # the CRC32 of the member
    (tmp_path / "crc.fits.gz").write_bytes(bytes(flipped))
    rejected(tmp_path / "crc.fits.gz", "incorrect data check")


def test_empty_and_random_files(tmp_path):
    (tmp_path / "empty.fits").write_bytes(b"")
    rejected(tmp_path / "empty.fits", "empty file (0 bytes)")
    (tmp_path / "random.fits").write_bytes(np.random.default_rng(1).bytes(10000))
    rejected(tmp_path / "random.fits", "not a FITS file")
    assert isinstance(read_meta(tmp_path / "empty.fits"), Reject)
    r = read_spectrum(tmp_path / "missing.fits")
    assert isinstance(r, Reject) and "No such file" in r.reason


@pytest.mark.parametrize("layout", ["image", "table"])
def test_an_extra_hdu_is_ignored_and_noted(tmp_path, layout):
    extra = fits.ImageHDU(np.zeros((3, 4), np.float32), name="SURPRISE")
    path = write(tmp_path / "x.fits.gz", layout=layout, extra=[extra], gz=True)
    fast, ref = read_both(path)
    clean, _ = read_both(write(tmp_path / "clean.fits", layout=layout))
    for s in (fast, ref):
        assert s.meta["note"] == "ignored 1 extra HDU(s) after the spectrum: SURPRISE"
        assert s.flux.tobytes() == clean.flux.tobytes()


def test_trailing_garbage_after_the_last_hdu(tmp_path):
    path = write(tmp_path / "t.fits")
    clean = path.read_bytes()
    path.write_bytes(clean + b"not fits at all" * 10)
    rejected(path, "are not a FITS extension")
    path.write_bytes(clean + b"not fits at all" * 300)  # a whole block: fitsio raised FITSFormatError
    fast, ref = read_both(path)
    assert fast.reason == ref.reason == (f"trailing bytes: 4500 bytes after the last HDU (at byte "
                                         f"{len(clean)}) are not a FITS extension: they start "
                                         f"with b'not fits at allnot f'")


def test_all_nan_flux_is_a_spectrum_with_no_good_pixel(tmp_path):
    r = rows()
    r[0] = np.nan
    fast, ref = read_both(write(tmp_path / "nan.fits", r))
    for s in (fast, ref):
        assert not s.good.any() and s.meta["bad_fraction"] == 1.0
        assert not s.flux.any() and not s.ivar.any() and s.meta["note"] == "no good pixels"


def test_non_finite_values_are_bad_pixels(tmp_path):
    r = rows()
    r[0, 10], r[1, 11], r[1, 12], r[1, 13] = np.inf, np.inf, np.nan, -5.0
    r[3, 14] = np.nan  # an andmask that is not 0
    s, _ = read_both(write(tmp_path / "inf.fits", r))
    assert not s.good[10:15].any() and s.good[15]
    assert np.isfinite(s.flux).all() and np.isfinite(s.ivar).all()


def test_sentinels_become_missing_values(tmp_path):
    header = {"Z": -9999, "Z_ERR": -9999.0, "SNRG": -9999.0, "LMJD": -9999, "CLASS": "-9999",
              "OBSID": -9999}
    fast, ref = read_both(write(tmp_path / "sent.fits", header=header))
    for s in (fast, ref):
        m = s.meta
        assert np.isnan(m["z"]) and np.isnan(m["z_err"]) and np.isnan(m["rv"])
        assert np.isnan(m["rv_err"]) and np.isnan(m["snrg"]) and m["snrr"] == 30.0
        assert (m["lmjd"], m["obsid"], m["class"]) == (-1, -1, "")
        assert m["note"] == "-9999 (missing) in OBSID, SNRG, Z, Z_ERR, CLASS, LMJD"


@pytest.mark.parametrize("layout", ["image", "table"])
def test_wavelength_inconsistent_with_coefficients(tmp_path, layout):
    r = rows()
    r[2, 2000:] += 0.2
    reason = rejected(write(tmp_path / "w.fits", r, layout=layout),
                      "wavelength array disagrees with COEFF0/COEFF1: by 0.2")
    assert "at most 0.05 A allowed" in reason and int(reason.split("at pixel ")[1].split()[0]) >= 2000
    r = rows()
    r[2, 7] = np.nan
    rejected(write(tmp_path / "wnan.fits", r, layout=layout), "by nan A at pixel 7")
    r = rows()
    r[2, 3000:] += 0.04  # within the tolerance
    assert isinstance(read_spectrum(write(tmp_path / "ok.fits", r, layout=layout)), Spectrum)


def test_dr1_row_two_is_not_a_wavelength(tmp_path):
    r = rows()
    r[2] = np.random.default_rng(2).normal(size=N)  # continuum-subtracted flux
    header = {"VERSPIPE": "v2.6.4", "SN_G": 7.5, "OBSID": None, "DATA_V": None, "SNRG": None}
    h = {k: v for k, v in {**HEADER, **header}.items() if v is not None}
    path = tmp_path / "dr1.fits"
    fits.PrimaryHDU(r, fits.Header(list(h.items()))).writeto(path)
    s, _ = read_both(path)
    assert (s.meta["obsid"], s.meta["snrg"], s.meta["release"]) == (-1, np.float32(7.5), "")
    assert s.good[:N].sum() == N - 10


def test_wrong_shapes(tmp_path):
    rejected(write(tmp_path / "four.fits", rows()[:4]), "wrong shape: the primary image has")
    path = tmp_path / "cube.fits"
    fits.PrimaryHDU(np.zeros((2, 5, 10), np.float32), fits.Header(list(HEADER.items()))) \
        .writeto(path)
    rejected(path, "wrong shape: the primary image has NAXIS = 3")
    cols = [fits.Column(name=c, format=f"{n}E", array=np.ones((1, n), np.float32))
            for c, n in (("FLUX", 10), ("IVAR", 10), ("WAVELENGTH", 9), ("ANDMASK", 10))]
    path = tmp_path / "cols.fits"
    fits.HDUList([fits.PrimaryHDU(header=fits.Header(list(HEADER.items()))),
                  fits.BinTableHDU.from_columns(cols, name="COADD")]).writeto(path)
    rejected(path, "wrong shape: the table's array columns differ in length")
    rejected(write(tmp_path / "empty.fits", np.zeros((5, 0), np.float32)), "wrong shape")


def test_unknown_layouts(tmp_path):
    h = fits.Header(list(HEADER.items()))
    fits.PrimaryHDU(header=h).writeto(tmp_path / "nodata.fits")
    rejected(tmp_path / "nodata.fits", "unknown layout: the primary HDU has no data and no "
                                       "extension follows")
    fits.HDUList([fits.PrimaryHDU(header=h), fits.ImageHDU(rows())]).writeto(tmp_path / "i.fits")
    rejected(tmp_path / "i.fits", "unknown layout: the primary HDU has no data and extension 1 "
                                  "is 'IMAGE'")
    cols = [fits.Column(name="FLUX", format="10E", array=np.ones((1, 10), np.float32))]
    fits.HDUList([fits.PrimaryHDU(header=h), fits.BinTableHDU.from_columns(cols, name="COADD")]) \
        .writeto(tmp_path / "t.fits")
    rejected(tmp_path / "t.fits", "lacks column(s) IVAR, WAVELENGTH, ANDMASK")


def test_coefficients_off_the_global_grid(tmp_path):
    rejected(write(tmp_path / "c1.fits", header={"COEFF1": 2e-4}), "unusable COEFF0/COEFF1: COEFF1 is 0.0002")
    r = rows(coeff0=3.56825)
    rejected(write(tmp_path / "half.fits", r, header={"COEFF0": 3.56825}),
             "lies +0.500 pixels off the global grid")
    r = rows(coeff0=3.5681)
    rejected(write(tmp_path / "neg.fits", r, header={"COEFF0": 3.5681}),
             "off the global grid: COEFF0 = 3.5681 puts the file's 3900 pixels at global "
             "pixels -1..3898")
    r = rows(n=3909, coeff0=3.5683)
    rejected(write(tmp_path / "long.fits", r, header={"COEFF0": 3.5683}), "1..3909, outside")
    rejected(write(tmp_path / "noc.fits", header={"COEFF0": "abc"}), "unusable COEFF0/COEFF1: they must be numbers")


def test_valid_fits_the_fast_reader_does_not_handle_goes_to_fitsio(tmp_path):
    """float64 image and an int32 ANDMASK column: read through fitsio, same result."""
    clean, _ = read_both(write(tmp_path / "clean.fits"))
    s, _ = read_both(write(tmp_path / "f8.fits", rows().astype(np.float64)))
    assert s.flux.tobytes() == clean.flux.tobytes() and s.good.tobytes() == clean.good.tobytes()
    r = rows()
    cols = [fits.Column(name=c, format=f"{N}{f}", array=d[None, :].astype(t))
            for c, f, t, d in zip(("FLUX", "IVAR", "WAVELENGTH", "ANDMASK"), "EEEJ",
                                  (np.float32, np.float32, np.float32, np.int32), r)]
    path = tmp_path / "j.fits"
    fits.HDUList([fits.PrimaryHDU(header=fits.Header(list(HEADER.items()))),
                  fits.BinTableHDU.from_columns(cols, name="COADD")]).writeto(path)
    s, _ = read_both(path)
    assert s.flux.tobytes() == clean.flux.tobytes() and s.good.tobytes() == clean.good.tobytes()


def test_header_strings_and_numbers_parse_like_fitsio(tmp_path):
    header = {"DESIG": "LAMOST J1'2", "SUBCLASS": "  lead blanks", "SNRG": 5, "RA": 1.5e-3}
    fast, ref = read_both(write(tmp_path / "s.fits", header=header))
    assert fast.meta.tobytes() == ref.meta.tobytes()
    assert (fast.meta["designation"], fast.meta["subclass"]) == ("J1'2", "lead blanks")
    assert (fast.meta["snrg"], fast.meta["ra"]) == (5.0, 1.5e-3)


@pytest.mark.parametrize("gz", [False, True])
def test_random_damage_never_escapes_as_an_exception(tmp_path, gz):
    """Seeded byte changes and cuts (header cards, data, gzip stream): every result is a Spectrum
    or a Reject with a known reason kind; none is 'unexpected' (an unhandled bug)."""
    rng = np.random.default_rng(7)
    clean = write(tmp_path / "clean.fits", layout="image").read_bytes()
    whole = gzip.compress(clean, mtime=0) if gz else clean
    path = tmp_path / ("d.fits.gz" if gz else "d.fits")
    for it in range(150):
        b = bytearray(whole)
        if it % 3 == 0:
            b = b[:rng.integers(0, len(b))]
        elif it % 3 == 1 and not gz:  # a card's value field replaced by plausible junk
            i = int(rng.integers(0, 36)) * 80 + 10
            b[i:i + 20] = rng.choice(list(b" 0123456789.-+E'TF/x"), 20).astype(np.uint8).tobytes()
        else:
            for _ in range(int(rng.integers(1, 4))):
                b[rng.integers(0, min(len(b), 6000))] = rng.integers(0, 256)
        path.write_bytes(bytes(b))
        for r in (read_spectrum(path), read_meta(path)):
            if isinstance(r, Reject):
                assert not r.reason.startswith("unexpected"), (it, r.reason)


def test_a_path_longer_than_the_meta_field_is_noted(tmp_path):
    deep = tmp_path / ("d" * 200) / ("e" * 200) / ("f" * 100)
    deep.mkdir(parents=True)
    path = write(deep / "s.fits")
    s = read_spectrum(path)
    assert s.meta["path"] == str(path)[:512] and len(str(path)) > 512
    assert s.meta["note"] == f"meta path cut to its first 512 of {len(str(path))} characters"



# --- header keys: required ones reject, optional ones are noted (docs/reading.md "Header keys") --

KEY_REJECTS = [  # (header changes, reason the reject must contain)
    ({"OBSID": "abc"}, "bad header: OBSID 'abc' is not an integer (the spectrum's id"),
    ({"OBSID": 1.5}, "bad header: OBSID 1.5 is not an integer"),
    ({"OBSID": -5}, "bad header: OBSID -5 is outside 0..9223372036854775807"),
    ({"OBSID": "+-5"}, "bad header: OBSID '+-5' is not an integer"),  # was an 'unexpected' crash
    ({"OBSID": None}, "bad header: OBSID has no value"),
    ({"RA": 400.0}, "bad header: RA 400.0 is outside 0..360 (the position, deg)"),
    ({"DEC": "north"}, "bad header: DEC 'north' is not a number"),
    ({"Z": True}, "bad header: Z True is not a number (the radial velocity"),
    ({"SNRG": "nan"}, "bad header: SNRG 'nan' is not a number (the g-band S/N"),
    ({"CLASS": 5}, "bad header: CLASS 5 is not text"),
    ({"CLASS": "  "}, "bad header: CLASS is blank"),
    ({"OBSID": "x", "Z": "y"}, "bad header: OBSID 'x' is not an integer (the spectrum's id and "
                               "cross-match key; only DR1 files (VERSPIPE < v2.7) lack it); Z 'y'"),
]


@pytest.mark.parametrize("layout", ["image", "table"])
@pytest.mark.parametrize("changes, reason", KEY_REJECTS)
def test_a_required_key_that_is_unusable_is_a_reject_naming_it(tmp_path, layout, changes, reason):
    path = write(tmp_path / "k.fits", layout=layout, header=changes)
    fast, ref = read_both(path)
    assert isinstance(fast, Reject) and reason in fast.reason, fast
    assert ref.reason == fast.reason  # the same rule in both engines
    meta = read_meta(path)
    assert isinstance(meta, Reject) and meta.reason == fast.reason


def test_numbers_written_as_text_are_read_as_numbers(tmp_path):
    """As before this version: a digit string is an integer, numeric text a number."""
    path = write(tmp_path / "t.fits", header={"OBSID": " 00123 ", "Z": "1.5e-4", "SNRG": "20"})
    for s in read_both(path):
        assert (s.meta["obsid"], s.meta["z"], s.meta["snrg"]) == (123, 1.5e-4, 20.0)
        assert s.meta["note"] == ""


def _without(*keys):
    return fits.Header([(k, v) for k, v in HEADER.items() if k not in keys])


@pytest.mark.parametrize("key", ["OBSID", "RA", "DEC", "Z", "SNRG", "CLASS"])
def test_a_missing_required_key_is_a_reject(tmp_path, key):
    path = tmp_path / "m.fits"
    fits.PrimaryHDU(rows(), _without(key)).writeto(path)
    for r in read_both(path):
        assert isinstance(r, Reject) and r.reason.startswith(f"bad header: {key} is missing ("), r


def test_dr1_files_are_identified_by_lmjd_planid_spid_fiberid(tmp_path):
    """DR1 (VERSPIPE < v2.7) has no OBSID: a row with obsid -1, unless a key that identifies it
    instead is missing; a DR8 file without OBSID is a reject."""
    h = _without("OBSID", "SNRG")
    h["VERSPIPE"], h["SN_G"] = "v2.6.4", 7.5
    fits.PrimaryHDU(rows(), h).writeto(tmp_path / "dr1.fits")
    for s in read_both(tmp_path / "dr1.fits"):
        assert isinstance(s, Spectrum) and s.meta["obsid"] == -1 and s.meta["note"] == ""
        assert (s.meta["lmjd"], s.meta["planid"], s.meta["fiberid"]) == (55859, "F5902", 13)
    del h["FIBERID"]
    fits.PrimaryHDU(rows(), h).writeto(tmp_path / "nofiber.fits")
    for r in read_both(tmp_path / "nofiber.fits"):
        assert r.reason == ("bad header: FIBERID is missing (a DR1 file has no OBSID: LMJD, "
                            "PLANID, SPID and FIBERID identify it)")
    h["FIBERID"], h["VERSPIPE"] = 13, "v2.9.8"
    fits.PrimaryHDU(rows(), h).writeto(tmp_path / "dr8.fits")
    for r in read_both(tmp_path / "dr8.fits"):
        assert r.reason.startswith("bad header: OBSID is missing")


def test_unusable_optional_keys_are_read_as_missing_and_noted(tmp_path):
    header = {"SPID": "x", "RA_OBS": 361.0, "SUBCLASS": 7, "Z_ERR": "?", "DATA_V": None}
    path = write(tmp_path / "o.fits", header=header)
    fast, ref = read_both(path)
    assert fast.meta.tobytes() == ref.meta.tobytes()
    m = fast.meta
    assert (m["spid"], m["subclass"], m["release"]) == (-1, "", "")
    assert np.isnan(m["ra_obs"]) and np.isnan(m["z_err"]) and np.isnan(m["rv_err"])
    assert m["obsid"] == 123456789 and m["z"] == 1e-4
    assert m["note"] == ("read as missing: RA_OBS 361.0 is outside 0..360, Z_ERR '?' is not a "
                         "number, SUBCLASS 7 is not text, SPID 'x' is not an integer, DATA_V has "
                         "no value")
    fits.PrimaryHDU(rows(), _without("DESIG", "SUBCLASS")).writeto(tmp_path / "d.fits")
    for s in read_both(tmp_path / "d.fits"):  # only DESIG is noted when absent
        assert s.meta["designation"] == "" and s.meta["note"] == "DESIG is missing"


def test_numbers_cfitsio_cannot_read_and_repeated_keys(tmp_path):
    clean = write(tmp_path / "c.fits").read_bytes()
    path = tmp_path / "n.fits"
    path.write_bytes(_edit(clean, 0, "SPID", "1.5.2"))  # even an optional key: fitsio fails
    for r in read_both(path):
        assert r.reason.startswith("bad header: "), r
    assert read_spectrum(path).reason == ("bad header: SPID = 1.5.2 is not a valid FITS number "
                                          "(fitsio cannot read this header)")
    path.write_bytes(_edit(clean, 0, "SPID", "nan"))  # cfitsio and fitsio: the text 'nan'
    for s in read_both(path):
        assert s.meta["spid"] == -1 and s.meta["note"] == "read as missing: SPID 'nan' is not an integer"
    b = bytearray(clean)
    i = clean.find(b"SUBCLASS= ")
    b[i:i + 80] = f"{'OBSID':<8}= {777:>20}".ljust(80).encode()
    path.write_bytes(bytes(b))
    for r in read_both(path):
        assert r.reason == "bad header: OBSID appears twice with different values, 123456789 and 777"


def test_size_lies_are_rejected_before_anything_is_allocated(tmp_path):
    """NAXIS1 = 999999999 with BITPIX = -64 declares 40 GB: both engines compare it with the file
    (fitsio used to allocate first: MemoryError)."""
    clean = write(tmp_path / "c.fits").read_bytes()
    lie = _edit(_edit(clean, 0, "NAXIS1", "999999999"), 0, "BITPIX", "-64")
    for gz in (False, True):
        path = tmp_path / f"lie.fits{'.gz' if gz else ''}"
        path.write_bytes(gzip.compress(lie) if gz else lie)
        for r in read_both(path):
            assert r.reason == (f"truncated: the 999999999x5 image needs {2880 + 8 * 5 * 999999999} "
                                f"bytes, the file has {len(clean)}"), r.reason  # one header block

# --- a generated corpus from real files: both engines give the same verdict ------------------

CORPUS_BASES = {  # name: what it stands for
    "spec-55859-F5902_sp03-232.fits.gz": "DR8 image, gzipped",
    "spec-55877-B7708_sp06-154.fits": "DR5 image, plain",
    "3703110.fits": "DR10 COADD table, plain",
    "spec-55859-F5902_sp01-001.fits.gz": "DR9 COADD table, gzipped",
    "spec-55862-B6212_sp06-003.fits": "DR1 image (no OBSID), plain",
}
BAD_VALUES = ("'abc'", "1.5", "T", "''", "", "nan", "-5", "12345678901234567890", "1e400",
              "1.5.2", "'-9999'", "-9999")
EDITED_KEYS = ("OBSID", "DESIG", "RA", "DEC", "RA_OBS", "SNRG", "Z", "Z_ERR", "CLASS",
               "SUBCLASS", "LMJD", "PLANID", "SPID", "FIBERID", "DATA_V", "VERSPIPE", "COEFF0",
               "COEFF1", "SN_G")
# every key with every value on the first base; on the others (to keep the test fast) these
SOME_VALUES = ("'abc'", "1.5", "", "1e400", "-9999")
SOME_KEYS = ("OBSID", "RA", "SNRG", "SN_G", "Z", "CLASS", "LMJD", "PLANID", "FIBERID", "DESIG")
STRUCTURE = {"NAXIS": ("0", "1", "3", "'x'"), "NAXIS1": ("999999999", "-5", "'abc'", "0", "+1", "-100"),
             "NAXIS2": ("4", "6", "999999999"), "BITPIX": ("-64", "16", "8", "7", "'x'", "")}
TABLE_EDITS = {"NAXIS1": ("999999999", "-4"), "NAXIS2": ("0", "2", "999999999"),
               "TFORM1": ("'{n}D'", "'abc'", "'{n}Z'", "''", "'{n}J'", "'{m}E'", "'{n}e'"),
               "TFIELDS": ("3", "'x'", "99"), "XTENSION": ("'IMAGE'",), "TTYPE2": ("'IVARX'",),
               "PCOUNT": ("2880",), "GCOUNT": ("2",)}


def _cards(buf, start):
    """(offset, 8-byte name) of each card of the header at start, up to and with END."""
    i = start
    while True:
        yield i, bytes(buf[i:i + 8])
        if buf[i:i + 8] == b"END     ":
            return
        i += 80


def _edit(buf, start, key, value):
    """buf with card key of the header at start set to value (None: blanked, as if deleted);
    returns None when the header has no such card."""
    b = bytearray(buf)
    for i, name in _cards(buf, start):
        if name == f"{key:<8}".encode():
            b[i:i + 80] = b" " * 80 if value is None else f"{key:<8}= {value:>20}".ljust(80).encode()
            return bytes(b)
    return None


def _repeat(buf, key, value):
    """buf with its FILENAME card replaced by a second card of key."""
    b = bytearray(buf)
    for i, name in _cards(buf, 0):
        if name == b"FILENAME":
            b[i:i + 80] = f"{key:<8}= {value:>20}".ljust(80).encode()
            return bytes(b)
    return None


def _header_end(buf, start):
    for i, name in _cards(buf, start):
        if name == b"END     ":
            return i + 80


def corpus(lamost_dir):
    """[(case name, file suffix, file bytes)]: header edits (wrong types and values, missing and
    repeated keys, -9999), absurd structure keys and size lies (NAXISn, BITPIX, TFORMn, PCOUNT),
    truncations of plain and gzipped files, trailing bytes and extra HDUs, from real files."""
    cases = []
    for name in CORPUS_BASES:
        raw = (lamost_dir / name).read_bytes()
        gz = name.endswith(".gz")
        plain = gzip.decompress(raw) if gz else raw
        suffix = ".fits.gz" if gz else ".fits"

        def add(tag, data, _name=name, _gz=gz, _suffix=suffix):
            if data is not None:
                data = gzip.compress(data, 1, mtime=0) if _gz else data
                cases.append((f"{_name}: {tag}", _suffix, data))

        first = name == next(iter(CORPUS_BASES))
        for key in EDITED_KEYS if first else SOME_KEYS:
            add(f"{key} deleted", _edit(plain, 0, key, None))
            for v in BAD_VALUES if first else SOME_VALUES:
                add(f"{key} = {v}", _edit(plain, 0, key, v))
        add("OBSID repeated with another value", _repeat(plain, "OBSID", "777"))
        add("Z repeated with another value", _repeat(plain, "Z", "0.5"))
        if b"OBSID   =" not in plain:  # DR1
            add("OBSID added as text", _repeat(plain, "OBSID", "'abc'"))
        h0 = _header_end(plain, 0)
        data_start = -(-h0 // 2880) * 2880
        image = b"NAXIS   =                    2" in plain[:h0]
        npix = int(plain[plain.find(b"NAXIS1  =") + 10:][:20]) if image else 0
        for key, values in STRUCTURE.items():
            add(f"{key} deleted", _edit(plain, 0, key, None))
            for v in values:
                v = str(npix + int(v)) if v in ("+1", "-100") and npix else v  # size lies
                add(f"{key} = {v}", _edit(plain, 0, key, v))
        add("NAXIS1 = 999999999, BITPIX = -64",
            _edit(_edit(plain, 0, "BITPIX", "-64"), 0, "NAXIS1", "999999999") if npix else None)
        if not npix:  # the table layout: edits of the COADD header
            n = int(plain[plain.find(b"TFORM1  = '", data_start) + 11:].split(b"E")[0])
            for key, values in TABLE_EDITS.items():
                for v in values:
                    add(f"COADD {key} = {v}", _edit(plain, data_start, key, v.format(n=n, m=n - 1)))
            add("COADD TFORM2 deleted", _edit(plain, data_start, "TFORM2", None))
        add("SIMPLE misspelt", b"SIMPLX" + plain[6:])
        end = len(plain)
        for cut in sorted({0, 1, 9, 80, 2880, h0 - 1, h0, data_start, data_start + 5000, end // 2,
                           end - 2880, end - 100, end - 1}):
            add(f"cut at byte {cut} of {end}", plain[:cut])
        add("700 bytes of text appended", plain + b"garbage!" * 88)
        add("3200 bytes of text appended", plain + b"garbage!" * 400)
        add("a block of zeros appended", plain + bytes(2880))
        extra = io.BytesIO()
        fits.ImageHDU(np.zeros((3, 4), np.float32), name="EXTRA").writeto(extra)
        extra = extra.getvalue()[2880:]  # astropy writes a primary HDU first
        add("an image extension appended", plain + extra)
        add("a cut image extension appended", plain + extra[:-2880])
        if gz:  # the compressed stream itself cut
            zipped = gzip.compress(plain, 6, mtime=0)
            for cut in (10, 100, len(zipped) // 4, len(zipped) // 2, len(zipped) - 8, len(zipped) - 1):
                cases.append((f"{name}: gzip stream cut at {cut} of {len(zipped)}", suffix,
                              zipped[:cut]))
            flipped = bytearray(zipped)
            flipped[len(zipped) // 2] ^= 0x55
            cases.append((f"{name}: a byte of the gzip stream changed", suffix, bytes(flipped)))
    return cases


def verdict(r):
    """'row' for a Spectrum, else the reject's kind (its reason up to the first colon)."""
    return "row" if isinstance(r, Spectrum) else r.reason.split(":")[0]


def test_both_engines_agree_on_a_generated_corpus(lamost_dir, tmp_path):
    """Every case: the same verdict (row, or the same reject kind) from both engines, no exception,
    no 'unexpected' reason; a row is the same row (arrays and metadata) from both engines."""
    cases = corpus(lamost_dir)
    assert len(cases) > 600
    kinds, disagree = {}, []
    for k, (name, suffix, data) in enumerate(cases):
        path = tmp_path / f"case{k}{suffix}"
        path.write_bytes(data)
        fast, ref = read_spectrum(path), read_spectrum(path, engine="fitsio")
        v = verdict(fast)
        kinds[v] = kinds.get(v, 0) + 1
        if v != verdict(ref) or v == "unexpected" or verdict(ref).startswith("unexpected"):
            disagree.append(f"{name}: {getattr(fast, 'reason', 'row')} || "
                            f"{getattr(ref, 'reason', 'row')}")
        elif v == "row":
            for f in ("flux", "ivar", "good"):
                assert getattr(fast, f).tobytes() == getattr(ref, f).tobytes(), (name, f)
            assert fast.meta.tobytes() == ref.meta.tobytes(), (name, fast.meta, ref.meta)
        path.unlink()
    assert not disagree, f"{len(disagree)} of {len(cases)} disagree:\n" + "\n".join(disagree)
    # the corpus reaches every kind of verdict it is meant to
    for kind in ("row", "bad header", "truncated", "truncated gzip stream", "broken gzip stream",
                 "wrong shape", "unknown layout", "trailing bytes", "not a FITS file",
                 "empty file (0 bytes)", "unusable COEFF0/COEFF1", "off the global grid",
                 "wavelength array disagrees with COEFF0/COEFF1"):
        assert kinds.get(kind), (kind, kinds)


def test_gunzip_falls_back_to_zlib_ng_where_libdeflate_cannot_be_trusted(tmp_path):
    """libdeflate takes only one whole member whose trailer matches; everything else goes through
    zlib-ng, with its outputs and messages: several members, trailing bytes, a lying trailer."""
    from jaxvac.io import fitsheader

    a = write(tmp_path / "a.fits").read_bytes()
    b = write(tmp_path / "b.fits", header={"OBSID": 42}).read_bytes()
    za, zb = gzip.compress(a, mtime=0), gzip.compress(b, mtime=0)
    assert fitsheader._inflate_whole(za) == a
    assert fitsheader._inflate_whole(za + zb) is None  # same size, other CRC: libdeflate read a only
    assert fitsheader.gunzip(za + zb) == a + b
    assert fitsheader._inflate_whole(za + bytes(100)) is None
    assert fitsheader.gunzip(za + bytes(100)) == a
    lie = za[:-4] + (2 ** 32 - 1).to_bytes(4, "little")  # ISIZE far beyond what 1032:1 allows
    assert fitsheader._inflate_whole(lie) is None
    with pytest.raises(fitsheader.FitsError, match="incorrect length check"):
        fitsheader.gunzip(lie)
    assert fitsheader._inflate_whole(za[:-1]) is None
    with pytest.raises(fitsheader.FitsError, match="truncated gzip stream"):
        fitsheader.gunzip(za[:-1])
