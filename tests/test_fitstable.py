"""The FITS table writer against cfitsio (fitsio) and astropy: same data bytes, same values."""

import fitsio
import numpy as np
import pytest
from astropy.io import fits

from jaxvac.io.fitstable import write_tables

DTYPE = np.dtype([("f4", "f4"), ("f8", "f8"), ("i1", "i1"), ("i2", "i2"), ("i4", "i4"), ("i8", "i8"),
                  ("u1", "u1"), ("b", "?"), ("s", "S7")])


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    r = np.zeros(n, DTYPE)
    r["f4"] = rng.standard_normal(n).astype(np.float32) * 1e3
    r["f4"][::7] = np.nan
    r["f4"][1::11] = -np.inf
    r["f8"] = rng.standard_normal(n) * 1e-300
    r["i1"] = np.arange(n) % 256 - 128  # every signed byte, -128 .. 127
    r["i2"] = rng.integers(-(2**15), 2**15, n)
    r["i4"] = rng.integers(-(2**31), 2**31, n)
    r["i8"] = rng.integers(-(2**63), 2**63 - 1, n)
    r["u1"] = rng.integers(0, 256, n)
    r["b"] = rng.random(n) < 0.5
    r["s"] = [b"", b"a", b"1234567", b"J0 x"] * (n // 4) + [b"z"] * (n % 4)
    return r


def _data_bytes(path, ext):
    with fitsio.FITS(str(path)) as f:
        off = f[ext].get_offsets()
    with open(path, "rb") as fh:
        return fh.read()[off["data_start"]:off["data_end"]]


@pytest.mark.parametrize("n", [0, 1, 9000])  # 9000 rows: more than one conversion block
def test_data_bytes_equal_cfitsio_and_values_round_trip(tmp_path, n):
    rows = _rows(n)
    mine, ref = tmp_path / "mine.fits", tmp_path / "ref.fits"
    units = {"f4": "km/s", "i8": "", "s": "deg"}
    write_tables(mine, [("T", rows, units, None)])
    with fitsio.FITS(str(ref), "rw", clobber=True) as f:
        f.write(rows, extname="T", units=[units.get(k, "") for k in DTYPE.names])
    assert _data_bytes(mine, "T") == _data_bytes(ref, "T")
    back = fitsio.read(str(mine), ext="T") if n else np.zeros(0, DTYPE)
    for name in DTYPE.names:  # fitsio returns text columns as str
        got = back[name].astype(rows[name].dtype) if back[name].dtype.kind == "U" else back[name]
        np.testing.assert_array_equal(got, rows[name], err_msg=name)
    with fits.open(mine) as hdul:
        hdul.verify("exception")  # astropy finds the file standard-conforming
        t = hdul["T"]
        assert t.header["NAXIS2"] == n and t.header["TUNIT1"] == "km/s" and "TUNIT6" not in t.header
        for name in DTYPE.names:  # astropy applies TZERO = -128 to the signed bytes on its own
            got = np.asarray(t.data[name]) if n else rows[name][:0]
            np.testing.assert_array_equal(got.astype(rows[name].dtype) if got.dtype.kind == "U" else got, rows[name], err_msg=name)


@pytest.mark.filterwarnings("error")  # no astropy VerifyWarning (truncated card comments)
def test_several_tables_cards_and_atomic(tmp_path):
    a, b = _rows(5), np.array([(b"x/a.fits", b"truncated")], dtype=[("path", "S512"), ("reason", "S256")])
    long = "/very/long/" + "directory/" * 12 + "checkpoint"
    p = tmp_path / "cat.fits"
    write_tables(p, [("CATALOG", a, None, {"MODEL": long, "JAXVAC": ("0.1.0", "version"),
                                             "SHA": ("ab" * 30, "a comment too long to fit beside it")}), ("REJECTS", b, None, None)])
    with fits.open(p) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "CATALOG", "REJECTS"]
        assert hdul["CATALOG"].header["SHA"] == "ab" * 30  # its comment did not fit and was left out
        assert hdul["CATALOG"].header["MODEL"] == long  # continued over CONTINUE cards
        assert hdul["CATALOG"].header.comments["JAXVAC"] == "version"
        assert hdul["REJECTS"].data["path"].tolist() == ["x/a.fits"]
    assert [q.name for q in tmp_path.iterdir()] == ["cat.fits"]


def test_unsupported_column_leaves_nothing(tmp_path):
    bad = np.zeros(3, [("c", "c16")])
    with pytest.raises(TypeError, match="not supported"):
        write_tables(tmp_path / "x.fits", [("T", bad, None, None)])
    assert list(tmp_path.iterdir()) == []


def test_padded_dtype_is_written_packed(tmp_path):
    """An aligned dtype (padding between fields) is stored packed, as FITS rows are."""
    dt = np.dtype([("a", "i1"), ("b", "f8"), ("c", "i2")], align=True)
    assert dt.itemsize == 24
    rows = np.zeros(3, dt)
    rows["a"], rows["b"], rows["c"] = [-1, 0, 1], [0.5, np.nan, -2.0], [7, -8, 9]
    write_tables(tmp_path / "p.fits", [("T", rows, None, None)])
    back = fitsio.read(str(tmp_path / "p.fits"), ext="T")
    assert fitsio.read_header(str(tmp_path / "p.fits"), "T")["NAXIS1"] == 11
    for name in dt.names:
        np.testing.assert_array_equal(back[name], rows[name])


@pytest.mark.filterwarnings("error")
def test_units_outside_the_fits_standard_go_to_tcomm(tmp_path):
    """TUNIT only for units astropy's FITS parser reads; 'dex' is kept as TCOMMn, and astropy
    reads the table without a UnitsWarning; uint8 'B' has no TZERO and reads back as uint8."""
    from astropy.table import Table

    from jaxvac.io.fitstable import fits_unit

    assert fits_unit("km/s") and fits_unit("kpc") and fits_unit("mag") and fits_unit("K") and fits_unit("deg")
    assert not fits_unit("dex") and not fits_unit("[dex]") and not fits_unit("furlong")
    rows = np.zeros(3, [("v", "f4"), ("feh", "f4"), ("flag", "u1")])
    rows["flag"] = [0, 1, 255]
    write_tables(tmp_path / "u.fits", [("T", rows, {"v": "km/s", "feh": "dex", "flag": ""}, None)])
    h = fits.getheader(tmp_path / "u.fits", "T")
    assert h["TUNIT1"] == "km/s" and "TUNIT2" not in h and h["TCOMM2"] == "unit: dex"
    assert h["TFORM3"] == "B" and "TZERO3" not in h and "TUNIT3" not in h and "TCOMM3" not in h
    t = Table.read(tmp_path / "u.fits", hdu="T")
    assert str(t["v"].unit) == "km / s" and t["feh"].unit is None
    assert t["flag"].dtype == np.uint8 and t["flag"].tolist() == [0, 1, 255]
