"""jaxvac.io.spectra_index and `jaxvac index`: one row per readable file with its header values,
rejects counted and listed, FITS and Parquet alike, worker processes or not, and the real files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner

from jaxvac.cli import main
from jaxvac.io.inputs import resolve_inputs
from jaxvac.io.lamost import read_spectrum
from jaxvac.io.records import Reject
from jaxvac.io.spectra_index import (INDEX_COLUMNS, SpectraIndexError, build_index, read_index,
                                     read_index_rejects)
from jaxvac.io.tables import read_table

from conftest import LAMOST_DIR


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from jaxvac.simulate import simulate_survey

    out = tmp_path_factory.mktemp("index") / "survey"
    simulate_survey(out, 160, seed=4, workers=1, progress=False, corrupt_fraction=0.08, sentinel_fraction=0.05,
                    nonstar_fraction=0.1)
    return out


@pytest.fixture(scope="module")
def built(survey, tmp_path_factory):
    d = tmp_path_factory.mktemp("built")
    fits = build_index(survey / "spectra", d / "index.fits", workers=0)
    parquet = build_index(survey / "spectra", d / "index.parquet", workers=2)
    return fits, parquet


def test_one_row_per_readable_file_with_the_header_values(survey, built):
    summary = built[0]
    idx = read_index(summary.out)
    paths = resolve_inputs(survey / "spectra")
    assert summary.files == len(paths) == 160
    assert summary.rows + len(summary.rejects) == 160 and summary.rows == len(idx)
    by_path = {p: i for i, p in enumerate(idx["path"])}
    assert list(idx["path"]) == [p for p in paths if p in by_path]  # input order
    n_checked = 0
    for p in paths:
        s = read_spectrum(p)
        if isinstance(s, Reject):
            continue
        i = by_path[p]  # every file the reader can read is in the index
        m = s.meta
        assert idx["obsid"][i] == m["obsid"] and idx["class"][i] == m["class"] and idx["planid"][i] == m["planid"]
        assert (idx["lmjd"][i], idx["spid"][i], idx["fiberid"][i]) == (m["lmjd"], m["spid"], m["fiberid"])
        assert idx["ra"][i] == m["ra"] and idx["dec"][i] == m["dec"]
        assert idx["snrg"][i] == np.float64(m["snrg"])
        np.testing.assert_array_equal(idx["rv"][i], m["rv"])  # NaN for -9999 redshifts
        n_checked += 1
    assert n_checked >= 140
    truth = read_table(survey / "truth.fits", ["path", "sentinel", "class"])
    sentinel = {str(survey / p) for p, s in zip(truth["path"], truth["sentinel"]) if s}
    assert sentinel and all(np.isnan(idx["rv"][by_path[p]]) for p in sentinel if p in by_path)


def test_rejects_are_counted_listed_and_kept_in_the_file(survey, built):
    summary = built[0]
    truth = read_table(survey / "truth.fits", ["path", "corrupt", "corrupt_kind"])
    corrupt = {str(survey / p) for p, c in zip(truth["path"], truth["corrupt"]) if c}
    rejected = {p for p, _ in summary.rejects}
    assert rejected and rejected <= corrupt  # only damaged files; a damaged data part still has a header
    for p, reason in summary.rejects:
        r = read_spectrum(p)
        assert isinstance(r, Reject) and reason  # the reader rejects them too
    assert read_index_rejects(summary.out) == summary.rejects
    assert read_index_rejects(built[1].out) == built[1].rejects
    text = "\n".join(summary.lines())
    assert f"{len(rejected)} rejected" in text and "rejected" in text.splitlines()[1]


def test_fits_and_parquet_with_and_without_workers_are_the_same(built):
    a, b = read_index(built[0].out), read_index(built[1].out)
    assert built[1].workers == 2 and built[0].workers == 0
    for name in INDEX_COLUMNS:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    cols = read_table(built[0].out)  # the FITS table has every column, units on ra, dec, rv
    assert list(cols) == list(INDEX_COLUMNS)


def test_the_real_files(tmp_path):
    s = build_index(LAMOST_DIR, tmp_path / "real.parquet", workers=0)
    idx = read_index(s.out)
    with open(LAMOST_DIR / "MANIFEST.tsv") as f:
        manifest = {r["file"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert len(idx) == len(manifest) == 25 and not s.rejects
    for p, obsid, cls, snrg in zip(idx["path"], idx["obsid"], idx["class"], idx["snrg"]):
        row = manifest[p.rsplit("/", 1)[-1]]
        assert obsid == (-1 if row["obsid"] == "(none)" else int(row["obsid"]))
        assert cls == row["class"] and np.float32(snrg) == np.float32(row["snrg"])
    i = list(idx["path"]).index(str(LAMOST_DIR / "spec-55859-F5902_sp03-232.fits.gz"))
    assert (idx["lmjd"][i], idx["planid"][i], idx["spid"][i], idx["fiberid"][i]) == (55859, "F5902", 3, 232)


def test_errors_name_what_to_do(tmp_path):
    with pytest.raises(SpectraIndexError, match=r"unknown format '\.csv'; name it \*\.fits or \*\.parquet"):
        build_index(LAMOST_DIR, tmp_path / "i.csv")
    (tmp_path / "t.csv").write_text("obsid,path\n1,a.fits\n")
    with pytest.raises(SpectraIndexError, match=r"lacks column\(s\) \['ra', 'dec', 'snrg'\] \(columns: \['obsid', 'path'\]\)"):
        read_index(tmp_path / "t.csv")
    r = CliRunner().invoke(main, ["index", str(tmp_path / "nothing"), "--out", str(tmp_path / "i.fits")])
    assert r.exit_code == 2 and "does not exist" in r.output and len(r.output.strip().splitlines()) == 1


def test_cli(tmp_path):
    r = CliRunner().invoke(main, ["index", str(LAMOST_DIR), "--out", str(tmp_path / "i.fits"), "--workers", "0"])
    assert r.exit_code == 0, r.output
    assert "indexed 25 files" in r.output and "25 spectra, 0 rejected" in r.output
    assert len(read_index(tmp_path / "i.fits")) == 25
