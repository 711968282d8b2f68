"""jaxvac.io.tables.read_table: the same table written as FITS (astropy), CSV, CSV.gz (by hand)
and Parquet (pyarrow) reads back as the same columns; and the one-line errors."""

import gzip

import numpy as np
import pytest

from jaxvac.io.tables import TableError, column_names, read_table

BIG = 2**62 + 1  # a Gaia-like source id: not exact as float64
# The known answer every format must give back.
OBSID = np.array([2**31 + 1, 2**40 + 7, 5, 2**62 + 3], np.int64)
NAME = ["a/x.fits", "b y", "", "zz/spec-1.fits.gz"]
SNRG = np.array([12.5, np.nan, 300.0, 7.25])
TEFF = np.array([5000.0, np.nan, 4000.0, 6500.0])  # an integer column with a gap: float with NaN
GAIA = np.ma.MaskedArray(np.array([BIG, BIG + 2, -1, 7], np.int64), mask=[False, False, True, False])
CSV_TEXT = ("\ufeffobsid, name ,snrg,teff,gaiaid\n"
            f"{OBSID[0]},a/x.fits,12.5,5000,{BIG}\n"
            f"{OBSID[1]}, b y ,,,{BIG + 2}\n"
            "\n"
            f"{OBSID[2]},,300,4000,\n"
            f"{OBSID[3]},zz/spec-1.fits.gz,7.25,6500,7\n")


def _check(cols):
    assert list(cols) == ["obsid", "name", "snrg", "teff", "gaiaid"]
    assert cols["obsid"].dtype == np.int64 and cols["obsid"].tolist() == OBSID.tolist()
    assert cols["name"].dtype == object and cols["name"].tolist() == NAME
    assert cols["snrg"].dtype.kind == "f"
    np.testing.assert_array_equal(cols["snrg"], SNRG)
    assert cols["teff"].dtype == np.float64
    np.testing.assert_array_equal(cols["teff"], TEFF)
    g = cols["gaiaid"]
    assert isinstance(g, np.ma.MaskedArray) and g.dtype == np.int64
    assert g.mask.tolist() == GAIA.mask.tolist() and g.compressed().tolist() == [BIG, BIG + 2, 7]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    from astropy.table import MaskedColumn, Table
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path_factory.mktemp("tables")
    (d / "t.csv").write_text(CSV_TEXT, encoding="utf-8")
    (d / "t.csv.gz").write_bytes(gzip.compress(CSV_TEXT.encode("utf-8")))
    t = Table({"obsid": OBSID, "name": NAME, "snrg": SNRG,
               "teff": MaskedColumn(np.nan_to_num(TEFF).astype(np.int32), mask=np.isnan(TEFF)),
               "gaiaid": MaskedColumn(GAIA.data, mask=GAIA.mask)})
    t.write(d / "t.fits")
    t.write(d / "t.fits.gz")
    pq.write_table(pa.table({"obsid": pa.array(OBSID), "name": pa.array(NAME), "snrg": pa.array(SNRG),
                             "teff": pa.array([5000, None, 4000, 6500], pa.int32()),
                             "gaiaid": pa.array([BIG, BIG + 2, None, 7], pa.int64())}), d / "t.parquet")
    return d


@pytest.mark.parametrize("name", ["t.fits", "t.fits.gz", "t.csv", "t.csv.gz", "t.parquet"])
def test_every_format_gives_the_same_columns(tables, name):
    _check(read_table(tables / name))
    assert column_names(tables / name) == ["obsid", "name", "snrg", "teff", "gaiaid"]


@pytest.mark.parametrize("name", ["t.fits", "t.csv", "t.parquet"])
def test_requested_columns_any_case_in_the_files_order(tables, name):
    cols = read_table(tables / name, ["SNRG", "ObsId"])
    assert list(cols) == ["obsid", "snrg"] and cols["obsid"].tolist() == OBSID.tolist()
    assert list(read_table(tables / name, "name")) == ["name"]


def test_csv_types(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("i,f,s,e,big\n1,1,a,,99999999999999999999\n-2,2.5,3,,1\n")
    c = read_table(p)
    assert c["i"].dtype == np.int64 and c["i"].tolist() == [1, -2]
    assert c["f"].dtype == np.float64 and c["f"].tolist() == [1.0, 2.5]
    assert c["s"].tolist() == ["a", "3"]
    assert c["e"].dtype == np.float64 and np.isnan(c["e"]).all()  # no value at all: NaN
    assert c["big"].dtype == np.float64  # beyond int64: read as numbers
    (tmp_path / "h.csv").write_text("a,b\n")
    h = read_table(tmp_path / "h.csv")
    assert list(h) == ["a", "b"] and len(h["a"]) == 0


def test_errors_name_the_file_and_the_fix(tmp_path, tables):
    with pytest.raises(TableError, match=r"table 'nope.csv' not found; check the path \(working directory"):
        read_table("nope.csv")
    with pytest.raises(TableError, match=r"nope.fits' not found; check \[train\] catalogs\.$"):
        read_table(tmp_path / "nope.fits", hint="check [train] catalogs")
    (tmp_path / "t.xlsx").write_bytes(b"PK")
    with pytest.raises(TableError, match=r"t.xlsx': unknown format; name it \*.fits\[.gz\].*\*.csv\[.gz\] or \*.parquet"):
        read_table(tmp_path / "t.xlsx")
    for name in ("t.fits", "t.csv.gz", "t.parquet"):
        with pytest.raises(TableError, match=rf"{name}' has no 'path', 'Ks' column \(columns: \['obsid', 'name', "
                                             rf"'snrg', 'teff', 'gaiaid'\]\); choose one of those"):
            read_table(tables / name, ["obsid", "path", "Ks"])
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(TableError, match="empty.csv' is empty; a CSV table needs a header row"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "bad.fits").write_bytes(b"SIMPLE  =  garbage" * 10)
    with pytest.raises(TableError, match=r"bad.fits' could not be read as FITS: .*check that the file is complete") as e:
        read_table(tmp_path / "bad.fits")
    assert "\n" not in str(e.value)  # one line
    from astropy.io import fits

    fits.PrimaryHDU(np.zeros((2, 3), np.float32)).writeto(tmp_path / "image.fits")
    with pytest.raises(TableError, match="image.fits' is a FITS file without a table HDU"):
        read_table(tmp_path / "image.fits")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(TableError, match="bad.parquet' could not be read as PARQUET"):
        read_table(tmp_path / "bad.parquet")
    assert issubclass(TableError, ValueError)  # the commands turn ValueErrors into one-line messages
