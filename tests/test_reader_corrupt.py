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
    path.write_bytes(path.read_bytes() + b"not fits at all" * 10)
    rejected(path, "are not a FITS extension")


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
