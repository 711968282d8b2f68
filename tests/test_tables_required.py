"""jaxvac.io.tables.require_columns: the one case-insensitive required-columns check of a table."""

import pytest

from jaxvac.io.crossmatch import CrossMatch
from jaxvac.io.tables import TableError, require_columns


def test_mapping_is_case_insensitive_and_keeps_the_files_spelling():
    names = ["ObsID", "RA", "dec", "Snrg", "ra"]
    lower = require_columns(names, ("obsid", "RA", "DEC"), what="index", path="x.csv", fix="add them.")
    # every column by its lower-case name; of "RA" and "ra" the first one wins
    assert lower == {"obsid": "ObsID", "ra": "RA", "dec": "dec", "snrg": "Snrg"}
    assert require_columns([]) == {}
    # an entry may be a tuple of alternatives: any one of them will do
    assert require_columns(["Kmag"], [("ks", "kmag")])["kmag"] == "Kmag"


def test_message_names_the_file_the_missing_columns_the_columns_and_the_fix():
    with pytest.raises(TableError) as e:
        require_columns(["obsid", "Path"], ("obsid", "ra", "dec", "path"), what="index", path="idx.fits",
                        fix="build one with `jaxvac index`.")
    assert str(e.value) == ("index 'idx.fits' lacks column(s) ['ra', 'dec'] (columns: ['obsid', 'Path']); "
                            "build one with `jaxvac index`.")
    with pytest.raises(TableError, match=r"lacks column\(s\) \['ks or kmag'\] \(columns: \['k_mag'\]\)"):
        require_columns(["k_mag"], [("ks", "kmag")])


def test_crossmatch_reports_every_missing_required_column(tmp_path):
    (tmp_path / "xm.csv").write_text("OBSID,EBV\n1,0.1\n")
    with pytest.raises(TableError) as e:
        CrossMatch.read(tmp_path / "xm.csv")
    msg = str(e.value)
    assert "xm.csv' lacks column(s) ['ks or kmag or k or ks_mag'] (columns: ['OBSID', 'EBV']); rename" in msg
    assert "\n" not in msg
    (tmp_path / "ok.csv").write_text("OBSID,KMAG\n2,11.5\n1,10.0\n")
    xm = CrossMatch.read(tmp_path / "ok.csv")  # aliases, any case
    assert xm.obsid.tolist() == [1, 2] and xm.ks.tolist() == [10.0, 11.5] and xm.gaiaid.tolist() == [-1, -1]
