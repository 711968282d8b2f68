"""resolve_inputs: every input form gives the expected absolute paths, in order; bad input is named."""

import os

import fitsio
import numpy as np
import pytest

from jaxvac.io.inputs import InputError, resolve_inputs


@pytest.fixture
def tree(tmp_path):
    """A small directory of spectra (empty files: resolving does not read them) and non-spectra."""
    names = ["top.fits", "a/x.fits", "a/b/Y.FITS.GZ", "a/b/z.fit", "a/b/old.fits.gz", "a/notes.txt", "a/c/readme.md"]
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / n).write_bytes(b"")
    return tmp_path


def _abs(root, *names):
    return [os.path.join(str(root), n) for n in names]


def test_directory_is_walked_recursively_and_sorted(tree):
    got = resolve_inputs(tree)
    assert got == _abs(tree, "a/b/Y.FITS.GZ", "a/b/old.fits.gz", "a/b/z.fit", "a/x.fits", "top.fits")
    assert resolve_inputs(str(tree / "a" / "b")) == _abs(tree, "a/b/Y.FITS.GZ", "a/b/old.fits.gz", "a/b/z.fit")


def test_relative_inputs_become_absolute(tree, monkeypatch):
    monkeypatch.setenv("HOME", str(tree))
    assert resolve_inputs("~/a/x.fits") == _abs(tree, "a/x.fits")
    monkeypatch.chdir(tree / "a")
    assert resolve_inputs("b/../x.fits") == _abs(tree, "a/x.fits")
    assert resolve_inputs(["x.fits", "b"]) == _abs(tree, "a/x.fits", "a/b/Y.FITS.GZ", "a/b/old.fits.gz", "a/b/z.fit")


def test_glob_matches_sorted_expands_directories_and_ignores_other_files(tree):
    assert resolve_inputs(str(tree / "a" / "**" / "*.fits*")) == _abs(tree, "a/b/old.fits.gz", "a/x.fits")
    # '*' matches the directory b (expanded), x.fits, and notes.txt / c (ignored: no spectrum).
    assert resolve_inputs(str(tree / "a" / "*")) == _abs(tree, "a/b/Y.FITS.GZ", "a/b/old.fits.gz", "a/b/z.fit", "a/x.fits")
    with pytest.raises(InputError, match=r"nothing\*\.fits' matched nothing"):
        resolve_inputs(str(tree / "nothing*.fits"))
    with pytest.raises(InputError, match=r"notes\*.*matched 1 file\(s\), none named \*.fits"):
        resolve_inputs(str(tree / "a" / "notes*"))


def test_text_list_relative_to_its_directory_with_comments(tree):
    (tree / "lists").mkdir()
    lst = tree / "lists" / "run.txt"
    lst.write_text(f"# spectra for run 1\n\n../a/x.fits\n  {tree / 'top.fits'}  \nmissing/later.fits.gz\n"
                   "./..//a/./x.fits\n")
    # Entries are not checked on disk (a missing one is rejected when read); duplicates are kept.
    assert resolve_inputs(lst) == _abs(tree, "a/x.fits", "top.fits", "lists/missing/later.fits.gz", "a/x.fits")


def test_sequence_concatenates_items_in_the_order_given(tree):
    got = resolve_inputs([tree / "top.fits", tree / "a" / "b", str(tree / "a" / "x.fits")])
    assert got == _abs(tree, "top.fits", "a/b/Y.FITS.GZ", "a/b/old.fits.gz", "a/b/z.fit", "a/x.fits")


def test_csv_table_path_column(tree):
    csv = tree / "cat.csv"
    csv.write_text("obsid,Path,snr\n1,a/x.fits,3.0\n\n2, top.fits ,4.5\n")
    assert resolve_inputs(csv) == _abs(tree, "a/x.fits", "top.fits")
    csv2 = tree / "cat2.csv"
    csv2.write_text("file,snr\n/abs/one.fits,1\nrel/two.fits.gz,2\n")
    assert resolve_inputs(csv2, column="FILE") == ["/abs/one.fits", os.path.join(str(tree), "rel/two.fits.gz")]
    with pytest.raises(InputError, match=r"cat2.csv' has no 'path' column \(columns: \['file', 'snr'\]\)"):
        resolve_inputs(csv2)
    bad = tree / "bad.csv"
    bad.write_text("path,snr\na.fits,1\n\n,2\n")
    with pytest.raises(InputError, match=r"bad.csv', line 4: the 'path' cell is empty"):
        resolve_inputs(bad)


def test_csv_gz_and_parquet_path_tables(tree):
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    (tree / "cat.csv.gz").write_bytes(gzip.compress(b"obsid,path\n7,a/x.fits\n8,/abs/y.fits.gz\n"))
    assert resolve_inputs(tree / "cat.csv.gz") == _abs(tree, "a/x.fits") + ["/abs/y.fits.gz"]
    pq.write_table(pa.table({"PATH": ["top.fits", "a/b/z.fit"], "obsid": [1, 2]}), tree / "cat.parquet")
    assert resolve_inputs(tree / "cat.parquet") == _abs(tree, "top.fits", "a/b/z.fit")
    pq.write_table(pa.table({"path": ["top.fits", None]}), tree / "gap.parquet")
    with pytest.raises(InputError, match=r"gap.parquet', row 2: the 'path' cell is empty"):
        resolve_inputs(tree / "gap.parquet")


def test_fits_table_path_column(tree):
    t = tree / "cat.fits"
    rows = np.zeros(3, dtype=[("obsid", "i8"), ("path", "S40")])
    rows["path"] = [b"a/x.fits", b"top.fits", b"/data/dr8/s.fits.gz"]
    fitsio.write(str(t), rows, clobber=True)
    assert resolve_inputs(t) == _abs(tree, "a/x.fits", "top.fits") + ["/data/dr8/s.fits.gz"]
    t2 = tree / "cat2.fits.gz"
    rows2 = np.zeros(2, dtype=[("FILENAME", "S20")])
    rows2["FILENAME"] = [b"a/x.fits", b"top.fits"]
    fitsio.write(str(t2), rows2, clobber=True)
    assert resolve_inputs(t2, column="filename") == _abs(tree, "a/x.fits", "top.fits")
    # Without that column the file is not a list of paths: it is taken as a spectrum.
    assert resolve_inputs(t2) == _abs(tree, "cat2.fits.gz")


def test_real_directory_and_real_spectra(lamost_dir):
    manifest = (lamost_dir / "MANIFEST.tsv").read_text().splitlines()[1:]
    names = sorted(line.split("\t")[0] for line in manifest)
    assert resolve_inputs(lamost_dir) == [str(lamost_dir / n) for n in names]
    # Named directly, real spectra of both layouts (the table layout has a binary table HDU 1)
    # stay spectra: they have no path column.
    layouts = {line.split("\t")[0]: line.split("\t")[3] for line in manifest}
    picks = [next(n for n in names if layouts[n] == "image"), next(n for n in names if layouts[n].startswith("table"))]
    picks += [next(n for n in names if n.endswith(".fits") and layouts[n].startswith("table"))]
    assert resolve_inputs([lamost_dir / n for n in picks]) == [str(lamost_dir / n) for n in picks]


def test_missing_and_empty_inputs_are_named(tree):
    with pytest.raises(InputError, match=r"Input '.*nope.fits' does not exist \(working directory"):
        resolve_inputs(tree / "nope.fits")
    with pytest.raises(InputError, match=r"Directory '.*a/c' holds no \*.fits"):
        resolve_inputs(tree / "a" / "c")
    with pytest.raises(InputError, match="No input given"):
        resolve_inputs([])
    empty = tree / "empty.txt"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(InputError, match=r"Input list '.*empty.txt' names no file"):
        resolve_inputs(empty)
    junk = tree / "spectrum.dat"
    junk.write_bytes(bytes(range(256)))
    with pytest.raises(InputError, match=r"spectrum.dat' is neither a FITS .* nor a CSV"):
        resolve_inputs(junk)
    with pytest.raises(InputError, match="Inputs must be paths .* got int: 3"):
        resolve_inputs([tree / "top.fits", 3])
