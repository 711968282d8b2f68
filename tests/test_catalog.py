import fitsio
import numpy as np
import pytest

from jaxvac.run.catalog import (CATALOG_DTYPE, COLUMNS, PARAMETERS, SKIPPED_DTYPE, empty_catalog, read_catalog,
                                read_header, read_skipped, write_catalog)
from jaxvac.io.records import Reject
from jaxvac.labels import LABEL_NAMES


def test_columns_cover_spec():
    names = CATALOG_DTYPE.names
    for must in ("gaiaid", "obsid", "ra_obs", "dec_obs", "gl", "gb", "snrg", "rv", "Err_rv",
                 "dist_phot", "Err_dist_phot", "X", "Y", "Z", "Err_X", "Err_Y", "Err_Z", "EBV", "uqflag",
                 "feh_VMP", "Err_feh_VMP"):
        assert must in names
    for lab in LABEL_NAMES:
        assert lab in names and f"Err_{lab}" in names and f"flag_{lab}" in names
    assert len(PARAMETERS) == 23 + 2  # the 23 labels, feh_VMP and dist_phot
    units = {n: u for n, _, u, _ in COLUMNS}
    assert units["Teff_PASTEL"] == "K" and units["a_gg"] == "mag" and units["X"] == "kpc" and units["rv"] == "km/s"


def _rows():
    r = empty_catalog(4)
    r["obsid"] = [10, 11, 12, 13]
    r["Teff_PASTEL"] = [5000.5, 6000.25, np.nan, 4000.0]
    r["designation"] = [b"J000000.00+000000.0"] * 4
    return r


def test_fits_round_trip_units_and_rejects(tmp_path):
    p = write_catalog(tmp_path / "cat.fits", _rows(), [Reject("x/a.fits", "truncated file")],
                      header={"model": "/abs/ckpt", "jaxvac": "0.1.0"})
    rows, rej = read_catalog(p)
    np.testing.assert_array_equal(rows["obsid"], [10, 11, 12, 13])
    np.testing.assert_array_equal(rows["Teff_PASTEL"], _rows()["Teff_PASTEL"])
    assert rej["path"].tolist() == [b"x/a.fits"] and rej["reason"].tolist() == [b"truncated file"]
    h = fitsio.read_header(p, "CATALOG")
    units = {h[f"TTYPE{i}"]: h.get(f"TUNIT{i}", "") for i in range(1, h["TFIELDS"] + 1)}
    assert units["Teff_PASTEL"] == "K" and units["dist_phot"] == "kpc" and units["gl"] == "deg"
    assert h["MODEL"] == "/abs/ckpt"
    assert [q.name for q in tmp_path.iterdir()] == ["cat.fits"]  # no temporary left behind
    assert len(read_skipped(p)) == 0 and read_skipped(p).dtype == SKIPPED_DTYPE  # no skipped given: an empty HDU


def _skipped():
    return np.array([(b"x/g.fits", 7, b"class GALAXY"), (b"x/l.fits", -1, b"snrg <= 10")], dtype=SKIPPED_DTYPE)


@pytest.mark.parametrize("name", ["cat.fits", "cat.parquet"])
def test_skipped_table_and_header_round_trip(tmp_path, name):
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow.parquet")
    p = write_catalog(tmp_path / name, _rows(), [Reject("x/a.fits", "truncated file")], skipped=_skipped(),
                      header={"NROWS": 4, "NREJECT": 1, "NSKIPPED": 2, "PARTIAL": True})
    np.testing.assert_array_equal(read_skipped(p), _skipped())
    h = read_header(p)
    assert (h["NROWS"], h["NREJECT"], h["NSKIPPED"]) == ("4", "1", "2") and h["PARTIAL"] in ("True", "T")
    if name.endswith(".fits"):
        with fitsio.FITS(str(p)) as f:
            assert [hdu.get_extname() for hdu in f[1:]] == ["CATALOG", "REJECTS", "SKIPPED"]
    else:
        assert sorted(q.name for q in tmp_path.iterdir()) == ["cat.parquet", "cat.rejects.parquet", "cat.skipped.parquet"]


def test_parquet_round_trip(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    p = write_catalog(tmp_path / "cat.parquet", _rows(), [Reject("b.fits", "zero bytes")])
    t = pq.read_table(p)
    np.testing.assert_array_equal(t.column("obsid").to_numpy(), [10, 11, 12, 13])
    assert "'Teff_PASTEL': 'K'" in t.schema.metadata[b"units"].decode()
    assert pq.read_table(tmp_path / "cat.rejects.parquet").column("reason").to_pylist() == ["zero bytes"]
    rows, rej = read_catalog(p)  # and back, as `jaxvac report` reads it
    for name in ("obsid", "Teff_PASTEL", "designation", "flag_a_gg"):
        np.testing.assert_array_equal(rows[name], _rows()[name])
    assert rej["reason"].tolist() == [b"zero bytes"]


def test_wrong_dtype_refused(tmp_path):
    with pytest.raises(ValueError, match="CATALOG_DTYPE"):
        write_catalog(tmp_path / "c.fits", np.zeros(2, dtype=[("a", "f4")]))


def _written(tmp_path):
    r = _rows()
    r["uqflag"] = [1, 0, 1, 1]
    r["flag_Teff_PASTEL"] = [0, 0, 1, 0]
    r["feh_PASTEL"] = [-0.5, 0.1, np.nan, -2.0]
    return r, write_catalog(tmp_path / "cat.fits", r, [Reject("x/a.fits", "truncated file")], header={"model": "/m"})


def test_astropy_reads_the_catalogue_without_warnings_and_with_integer_flags(tmp_path):
    import warnings

    import astropy.units as u
    from astropy.table import Table

    r, p = _written(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a UnitsWarning ('dex'), a VerifyWarning ... fails the test
        t = Table.read(p, hdu="CATALOG")
        Table.read(p, hdu="REJECTS")
    for name in ("uqflag", *(f"flag_{q}" for q in PARAMETERS)):
        assert t[name].dtype == np.uint8, name
    assert t["uqflag"].tolist() == [1, 0, 1, 1] and t["flag_Teff_PASTEL"].tolist() == [0, 0, 1, 0]
    assert t["flag_a_gg"].tolist() == [1, 1, 1, 1]  # missing -> flagged
    assert t["Teff_PASTEL"].unit == u.K and t["rv"].unit == u.km / u.s and t["dist_phot"].unit == u.kpc
    assert t["a_gg"].unit == u.mag and t["gl"].unit == u.deg
    assert t["feh_PASTEL"].unit is None and t["logg_PASTEL"].unit is None  # dex: no FITS unit (docs/catalogue.md)
    np.testing.assert_array_equal(np.asarray(t["feh_PASTEL"]), r["feh_PASTEL"])
    units = {n: un for n, _, un, _ in COLUMNS}
    dex = [i for i, n in enumerate(CATALOG_DTYPE.names, 1) if units[n] == "dex"]
    assert len(dex) == 18  # 8 dex labels and feh_VMP, each with its error: the 18 UnitsWarnings of before
    assert all(t.meta[f"TCOMM{i}"] == "unit: dex" for i in dex)


def test_fitsio_reads_integer_flags_and_no_tzero(tmp_path):
    r, p = _written(tmp_path)
    back = fitsio.read(str(p), ext="CATALOG")
    h = fitsio.read_header(str(p), "CATALOG")
    for i, name in enumerate(CATALOG_DTYPE.names, 1):
        if name == "uqflag" or name.startswith("flag_"):
            assert back[name].dtype == np.uint8 and h[f"TFORM{i}"] == "B" and f"TZERO{i}" not in h, name
            np.testing.assert_array_equal(back[name], r[name])
    rows, _ = read_catalog(p)
    assert rows.dtype == CATALOG_DTYPE and rows["uqflag"].tolist() == [1, 0, 1, 1]
