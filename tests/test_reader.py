"""The LAMOST reader on the 25 real files of ../shared/lamost: MANIFEST.tsv, an independent
astropy reading, the fitsio engine bit for bit, and the two copies of obsid 101001."""

import csv

import numpy as np
import pytest
from astropy.io import fits

from jaxvac.constants import C_KMS, LOG_LAMBDA0, LOG_STEP, NPIX_GLOBAL
from jaxvac.io.lamost import find_spectra, read_meta, read_spectrum
from jaxvac.io.records import META_DTYPE, Reject, Spectrum


def assert_same_meta(a, b, skip=()):
    """Field by field, NaN equal to NaN, except the fields in skip."""
    for f in META_DTYPE.names:
        if f not in skip:
            x, y = a[f][()], b[f][()]
            assert x == y or (x != x and y != y), f"{f}: {x!r} != {y!r}"


@pytest.fixture(scope="module")
def manifest(lamost_dir):
    with open(lamost_dir / "MANIFEST.tsv") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(scope="module")
def spectra(lamost_dir, manifest):
    """{file name: (fast Spectrum, fitsio Spectrum)} for every file of the manifest."""
    return {name: (read_spectrum(lamost_dir / name), read_spectrum(lamost_dir / name,
                                                                   engine="fitsio"))
            for name in manifest}


def test_every_file_is_listed_and_read(lamost_dir, manifest, spectra):
    found = {p.split("/")[-1] for p in find_spectra(lamost_dir)}
    assert found == set(manifest)
    for name, pair in spectra.items():
        for s in pair:
            assert isinstance(s, Spectrum), f"{name}: {s}"
            assert s.flux.dtype == np.float32 and s.ivar.dtype == np.float32
            assert s.good.dtype == bool and s.flux.shape == (NPIX_GLOBAL,)
            assert s.meta.shape == () and s.meta.dtype == META_DTYPE
            assert s.meta["path"] == str(lamost_dir / name)


def test_metadata_matches_manifest(spectra, manifest):
    for name, row in manifest.items():
        m = spectra[name][0].meta
        assert m["release"] == ("" if row["data_v"] == "(none)" else row["data_v"]), name
        assert m["verspipe"] == row["verspipe"], name
        assert m["layout"] == row["layout"].split(":")[0], name
        assert m["npix"] == int(row["npix"]), name
        assert m["offset"] == round((float(row["coeff0"]) - LOG_LAMBDA0) / LOG_STEP), name
        assert m["obsid"] == (-1 if row["obsid"] == "(none)" else int(row["obsid"])), name
        assert (m["class"], m["subclass"]) == (row["class"], row["subclass"]), name
        assert m["snrg"] == np.float32(row["snrg"]), name
        if row["z"] == "-9999":
            assert np.isnan(m["z"]) and np.isnan(m["rv"]) and "Z, Z_ERR" in str(m["note"]), name
        else:
            assert m["z"] == float(row["z"]), name
            assert m["rv"] == pytest.approx(float(row["z"]) * C_KMS, rel=1e-12), name
        assert 0.0 <= m["bad_fraction"] <= 1.0


def test_fast_engine_is_bit_identical_to_fitsio(spectra):
    for name, (fast, ref) in spectra.items():
        for field in ("flux", "ivar", "good"):
            a, b = getattr(fast, field), getattr(ref, field)
            assert a.tobytes() == b.tobytes(), f"{name}: {field} differs"
        assert fast.meta.tobytes() == ref.meta.tobytes(), f"{name}: metadata differ"


def test_grid_placement_matches_an_independent_astropy_reading(lamost_dir, spectra):
    """Each good pixel holds the file's value at global pixel offset + k; the rest is 0/False."""
    for name, (s, _) in spectra.items():
        with fits.open(lamost_dir / name) as hdul:
            h = hdul[0].header
            if hdul[0].data is not None:
                flux, ivar, wave, andmask = (hdul[0].data[k].astype(np.float64) for k in range(4))
            else:
                row = hdul["COADD"].data[0]
                flux, ivar, wave, andmask = (np.asarray(row[c], np.float64)
                                             for c in ("FLUX", "IVAR", "WAVELENGTH", "ANDMASK"))
        n = flux.size
        j0 = int(round((h["COEFF0"] - 3.5682) / 1e-4))
        good = (ivar > 0) & np.isfinite(flux) & np.isfinite(ivar) & (andmask == 0)
        expect_good = np.zeros(NPIX_GLOBAL, bool)
        expect_good[j0:j0 + n] = good
        np.testing.assert_array_equal(s.good, expect_good, err_msg=name)
        expect_flux = np.zeros(NPIX_GLOBAL)
        expect_flux[j0:j0 + n][good] = flux[good]
        np.testing.assert_array_equal(s.flux.astype(np.float64), expect_flux, err_msg=name)
        expect_ivar = np.zeros(NPIX_GLOBAL)
        expect_ivar[j0:j0 + n][good] = ivar[good]
        np.testing.assert_array_equal(s.ivar.astype(np.float64), expect_ivar, err_msg=name)
        assert s.meta["bad_fraction"] == pytest.approx(1 - good.sum() / NPIX_GLOBAL, abs=1e-7)
        if not h["VERSPIPE"].startswith("v2.6"):  # DR1's row 2 is not the wavelength
            grid = 10.0 ** (3.5682 + 1e-4 * np.arange(NPIX_GLOBAL))[j0:j0 + n]
            assert np.abs(wave - grid).max() < 0.05, name


def test_dr7_image_and_dr9_table_copies_are_identical(spectra):
    image = spectra["spec-55859-F5902_sp01-001_dr7.fits.gz"][0]
    table = spectra["spec-55859-F5902_sp01-001.fits.gz"][0]
    assert (image.meta["layout"], table.meta["layout"]) == ("image", "table")
    for field in ("flux", "ivar", "good"):
        assert getattr(image, field).tobytes() == getattr(table, field).tobytes(), field
    assert_same_meta(image.meta, table.meta, skip=("path", "release", "layout"))


def test_dr1_quirks(spectra):
    s = spectra["spec-55862-B6212_sp06-003.fits"][0]
    m = s.meta
    assert m["obsid"] == -1 and m["release"] == "" and m["verspipe"] == "v2.6.4"
    assert (m["snru"], m["snrg"]) == (np.float32(14.02), np.float32(71.41))  # SN_U, SN_G
    assert np.isnan(m["ra_obs"]) and m["designation"] == "J063715.90+271356.5"
    assert m["note"] == ""


def test_partial_coverage_is_masked(spectra):
    s = spectra["spec-55915-F5591503_sp05-112.fits.gz"][0]  # COEFF0 3.584: pixels 158..3908
    assert s.meta["offset"] == 158 and not s.good[:158].any() and s.good[158:].mean() > 0.9
    assert not s.flux[:158].any() and not s.ivar[:158].any()
    s = spectra["spec-55984-B5598401_sp05-229.fits"][0]  # 3748 pixels from global pixel 160
    assert s.meta["offset"] == 160 and not s.good[:160].any() and not s.good[3908]


def test_read_meta_matches_read_spectrum(lamost_dir, spectra):
    for name, (s, _) in spectra.items():
        m = read_meta(lamost_dir / name)
        assert not isinstance(m, Reject), m
        assert np.isnan(m["bad_fraction"])
        assert_same_meta(m, s.meta, skip=("bad_fraction",))


def test_unknown_engine_is_a_programming_error(lamost_dir):
    with pytest.raises(ValueError, match="engine must be one of"):
        read_spectrum(lamost_dir / "3703110.fits", engine="cfitsio")


def test_every_real_gz_file_inflates_through_libdeflate_to_zlibs_bytes(lamost_dir, manifest):
    """The fast gunzip (libdeflate, whole buffer, size from the gzip trailer) gives exactly the
    standard library's bytes on every real .fits.gz, and is the path actually taken."""
    import gzip

    from jaxvac.io import fitsheader

    assert len([name for name in manifest if name.endswith(".gz")]) == 15
    for name in manifest:  # the plain ones gzipped as LAMOST's archive does (level 6)
        raw = (lamost_dir / name).read_bytes()
        raw = raw if name.endswith(".gz") else gzip.compress(raw, 6)
        assert fitsheader._inflate_whole(raw) == gzip.decompress(raw), name
        assert fitsheader.gunzip(raw) == gzip.decompress(raw), name
    assert fitsheader.DECOMPRESSOR == "libdeflate"


# Value fields (bytes 10-79 of a card) written into one wanted card at a time: LAMOST's fixed
# format, what other writers do, and what cfitsio refuses. Each is padded with blanks to 70 bytes.
_ALTERED_VALUES = [
    b"               -9999 / Z of an unknown object, written as an integer",
    b"             -9999.0 / a float sentinel",
    b"                 1_0 / underscores are not FITS",
    b"                 nan /", b"                 inf /", b"               1e999 /",
    b"              1.5D+3 /", b"                  .5 /", b"                 +12 /",
    b"   12 /", b"12.5", b"-7", b"'text'", b"'text'    / with a comment",
    b"'it''s'            / a doubled quote", b"'unterminated", b"'" + b"x" * 68 + b"'",
    b"T", b"F /", b"", b"          / no value", b"\xff\xfe", b"  12.5  3 /",
    b" 9223372036854775807 /", b" 9223372036854775808 /", b"-9223372036854775809 /",
    b"  '  -9999  '       /", b"  ' LAMOST DR8'    /", b"1.0E5               /",
]


def _converted(buf, convert):
    """What a conversion of the primary header gives: {key: (type, value)} or the reject."""
    from jaxvac.io import fitsheader as ff

    try:
        return {k: (type(v), v) for k, v in convert(buf).items()}
    except ff.FitsError as e:
        return ("FitsError", str(e))


def test_header_conversion_in_one_pass_equals_card_by_card(lamost_dir, manifest):
    """fitsheader converts a header's wanted cards with a few C-level calls when every card is
    in the common fixed format, else card by card; the two agree (value and type, or the same
    reject) on every real header and on real headers with one card altered in many ways, and the
    one-pass conversion is the one taken on every real file."""
    from jaxvac.io import fitsheader as ff
    from jaxvac.io.lamost import _WANTED

    def planned(buf):
        end = ff._end_card(buf, 0)
        return ff._plan_of(buf, 0, end, _WANTED)

    def card_by_card(buf):
        return ff._convert_each(buf, 0, planned(buf).hits)

    def one_pass(buf):
        return ff.header(buf, 0, _WANTED)[0]

    fast_altered = 0
    for name in manifest:
        buf = ff.load(lamost_dir / name)
        plan = planned(buf)
        assert plan.keys and ff._convert_all(buf, 0, plan) is not None, name
        assert _converted(buf, one_pass) == _converted(buf, card_by_card), name
        if name not in ("spec-55859-F5902_sp03-232.fits.gz", "3703110.fits",
                        "spec-55862-B6212_sp06-003.fits"):  # image, table, DR1
            continue
        for card, key, _ in plan.hits:
            for value in _ALTERED_VALUES + [b"  " + bytes(buf[card + 10:card + 78])]:
                altered = bytearray(buf)
                altered[card + 10:card + 80] = value.ljust(70)[:70]
                want = _converted(altered, card_by_card)
                assert _converted(altered, one_pass) == want, (name, key, value)
                fast_altered += ff._convert_all(altered, 0, plan) is not None
            altered = bytearray(buf)
            altered[card + 8:card + 10] = b"  "  # no value indicator: the card is commentary
            assert _converted(altered, one_pass) == _converted(altered, card_by_card), (name, key)
    assert fast_altered > 100  # the alterations LAMOST's format allows stay on the fast path


def test_a_wavelength_row_that_passed_once_is_not_checked_again_only_if_byte_identical(
        lamost_dir, tmp_path):
    """The reader remembers the wavelength rows that passed (LAMOST writes the same row for the
    same COEFF0, COEFF1 and length); a row one ulp off is checked again and a bad one rejected."""
    import gzip

    from jaxvac.io import lamost

    name = "spec-55859-F5907_sp03-120.fits.gz"  # image, 3909 pixels
    raw = bytearray(gzip.decompress((lamost_dir / name).read_bytes()))
    first = read_spectrum(lamost_dir / name)
    assert not isinstance(first, Reject)
    lamost._WAVES_PASSED.clear()
    assert read_spectrum(lamost_dir / name).meta.tobytes() == first.meta.tobytes()
    assert len(lamost._WAVES_PASSED) == 1
    wave_at = 2880 * 4 + 2 * 3909 * 4 + 4 * 100  # data start (4 header blocks), row 2, pixel 100
    wave = np.frombuffer(raw, ">f4", 1, wave_at)[0]
    assert abs(wave - 10 ** (3.5682 + 1e-4 * 100)) < 0.05
    for shift, reject in ((0.04, False), (0.06, True)):
        bad = bytearray(raw)
        bad[wave_at:wave_at + 4] = np.array([wave + shift], ">f4").tobytes()
        path = tmp_path / f"shift{shift}.fits"
        path.write_bytes(bad)
        for engine in ("fast", "fitsio"):
            r = read_spectrum(path, engine=engine)
            assert isinstance(r, Reject) == reject, (shift, engine, r)
            if reject:
                assert r.reason.startswith("wavelength array disagrees with COEFF0/COEFF1: by 0.06")
    assert len(lamost._WAVES_PASSED) == 1  # the row that passed at +0.04 replaced the original
