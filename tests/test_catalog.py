import fitsio
import numpy as np
import pytest

from jaxvac.run.catalog import CATALOG_DTYPE, COLUMNS, PARAMETERS, empty_catalog, read_catalog, write_catalog
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
