import base64
import io
import re

import numpy as np
import pytest

from jaxvac.display.plots import outside, robust_limits
from jaxvac.display.report import (ReportError, _counts, catalogue_provenance, flag_counts, flag_fractions,
                                   label_summary, report_catalogue, write_report)
from jaxvac.io.fitstable import write_tables
from jaxvac.run.catalog import PARAMETERS, REJECT_DTYPE, UNITS, empty_catalog, write_catalog

PNG = b"\x89PNG\r\n\x1a\n"


def _cat(n=200, seed=1):
    rng = np.random.default_rng(seed)
    r = empty_catalog(n)
    r["uqflag"] = 1
    r["Teff_PASTEL"] = rng.uniform(4000, 7000, n)
    r["logg_PASTEL"] = rng.uniform(1, 5, n)
    r["feh_PASTEL"] = rng.normal(-0.3, 0.4, n)
    r["Err_Teff_PASTEL"] = 100.0
    for k in ("a_gg", "a_bp", "a_rp", "X", "Y", "Z", "feh_APOGEE", "AFE_APOGEE"):
        r[k] = rng.normal(0, 1, n)
    r["flag_Teff_PASTEL"] = 0
    r["flag_Teff_PASTEL"][:50] = 1
    for k in ("logg_PASTEL", "feh_PASTEL", "a_gg", "a_bp", "a_rp", "feh_APOGEE", "AFE_APOGEE"):
        r[f"flag_{k}"] = 0
    r["dist_phot"] = rng.uniform(0.1, 5, n)
    r["flag_dist_phot"] = 0
    r["feh_VMP"][:40] = rng.uniform(-3.5, -2, 40)  # 40 VMP estimates, 3 of them flagged
    r["flag_feh_VMP"][:40] = 0
    r["flag_feh_VMP"][[3, 17, 31]] = 1
    return r


def test_flag_fractions_and_summary_known_values():
    r = _cat()
    frac = flag_fractions(r)
    assert frac["Teff_PASTEL"] == 50 / 200
    assert frac["a_isd"] == 1.0  # missing everywhere -> flagged
    summ = {s[0]: s for s in label_summary(r)}
    assert summ["Teff_PASTEL"][1] == 200
    assert summ["Teff_PASTEL"][2] == np.median(r["Teff_PASTEL"].astype(np.float64))
    assert summ["Teff_PASTEL"][5] == 100.0
    assert summ["a_isd"][1] == 0


def test_flag_counts_separate_flagged_estimates_from_missing_ones():
    r = _cat()
    c = flag_counts(r)
    assert (c["feh_VMP"].rows, c["feh_VMP"].estimates, c["feh_VMP"].flagged, c["feh_VMP"].missing) == (200, 40, 3, 160)
    assert flag_fractions(r)["feh_VMP"] == 163 / 200  # the old number, which mixed the two
    assert c["feh_VMP"].flagged_text() == "3 of 40 estimates (7.5%)"
    assert c["feh_VMP"].missing_text() == "160 of 200 rows (80.0%)"
    assert (c["a_isd"].estimates, c["a_isd"].flagged, c["a_isd"].flagged_text()) == (0, 0, "0 of 0 estimates")


def test_write_report_writes_every_plot_and_the_table(tmp_path):
    paths = write_report(_cat(), tmp_path, n_rejects=3)
    names = sorted(p.name for p in paths)
    assert names == sorted(["kiel.png", "feh_alpha.png", "cmd.png", "xy.png", "xz.png",
                            "label_histograms.png", "flag_fractions.png", "summary.md", "index.html"])
    for p in paths:
        assert p.stat().st_size > 1000 or p.suffix == ".md"
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "summary.md").read_text()
    assert "- rows: 200" in md and "- rejected inputs: 3" in md
    assert "| Teff_PASTEL [K] | 200 |" in md and "| 50 of 200 estimates (25.0%) |" in md
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no temporary left behind


def _skipped(n):
    s = np.zeros(n, dtype=[("path", "S512"), ("obsid", "i8"), ("reason", "S64")])
    s["reason"] = [b"snrg <= 10"] * (n - 2) + [b"class GALAXY"] * 2
    return s


CARDS = {"JAXVAC": ("0.1.0", "version"), "MODEL": "/runs/dr8/" + "long/" * 14 + "checkpoint",
         "MODELSHA": "0123456789abcdef", "CONFIG": "dr8.toml,demo.toml", "INPUTS": "fedcba9876543210", "NINPUTS": 215,
         "ERRMODEL": "checkpoint:4d5e6f7a8b9c0d1e"}
REJ = np.array([(b"x/a.fits", b"truncated file")], REJECT_DTYPE)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One catalogue with the run's counts and a SKIPPED table, reported through `jaxvac report`."""
    from click.testing import CliRunner

    from jaxvac.cli import main

    tmp = tmp_path_factory.mktemp("report")
    rows = _cat(seed=5)
    cat = tmp / "cat.fits"
    write_tables(cat, [("CATALOG", rows, UNITS, dict(CARDS, NROWS=200, NREJECT=1)), ("REJECTS", REJ, None, None),
                       ("SKIPPED", _skipped(14), None, None)])
    res = CliRunner().invoke(main, ["report", str(cat)])
    assert res.exit_code == 0, res.output
    out = tmp / "cat_report"
    assert res.output.split() == [str(out / n) for n in ("kiel.png", "feh_alpha.png", "cmd.png", "xy.png", "xz.png",
                                                           "label_histograms.png", "flag_fractions.png", "summary.md",
                                                           "index.html")]
    return {"rows": rows, "cat": cat, "md": (out / "summary.md").read_text(), "page": (out / "index.html").read_text()}


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(b, validate=True) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_html_is_self_contained_and_every_image_decodes(made):
    from PIL import Image
    import matplotlib.image

    page = made["page"]
    assert "flag_dist_phot = 1 where the distance is missing" in page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    images = _images(page)
    assert len(images) == 7  # every plot, embedded
    for png in images:
        assert png[:8] == PNG
        with Image.open(io.BytesIO(png)) as im:
            im.verify()
        a = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert a.ndim == 3 and a.shape[0] > 100 and a.shape[1] > 100 and a.std() > 0  # drawn, not blank
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "DATA", page)  # base64 may hold '//'
    low = text.lower()
    for bad in ("http:", "https:", "//", "@import", "url(", "<script", "<link", "<iframe"):
        assert bad not in low, bad
    refs = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', text)
    assert refs and all(ref == "DATA" or ref.startswith("#") for ref in refs), refs


def test_summary_fractions_match_the_catalogue(made):
    r, md, page = made["rows"], made["md"], made["page"]
    for p in PARAMETERS:  # counts worked out here with numpy, compared with the table's text
        ok = np.isfinite(r[p])
        k, n = int(np.sum(ok & (r[f"flag_{p}"] == 1))), int(ok.sum())
        flagged = f"{k:,} of {n:,} estimates ({100 * k / n:.1f}%)" if n else f"{k:,} of 0 estimates"
        missing = f"{len(r) - n:,} of {len(r):,} rows ({100 * (len(r) - n) / len(r):.1f}%)"
        row = next(line for line in md.splitlines() if line.startswith(f"| {p} [{UNITS[p]}] |"))
        assert row.endswith(f"| {flagged} | {missing} |"), (p, row)
        assert f"<td>{flagged}</td><td>{missing}</td>" in page
    assert "3 of 40 estimates (7.5%)" in md and "160 of 200 rows (80.0%)" in md


def test_report_shows_provenance_and_adds_up_the_counts(made):
    md, page = made["md"], made["page"]
    for text in (CARDS["MODEL"], "0123456789abcdef", "dr8.toml,demo.toml", "fedcba9876543210", "215",
                 "checkpoint:4d5e6f7a8b9c0d1e"):
        assert text in page and text in md
    assert "error model of the Err_ columns (docs/errors.md)" in md  # which Err_ model wrote the rows
    assert "- skipped inputs: 14" in md and "- check: rows + rejected + skipped = 215 = inputs" in md
    assert "snrg &lt;= 10</td><td>12</td>" in page and "truncated file</td><td>1</td>" in page
    prov = catalogue_provenance(made["cat"])
    assert prov["skip_reasons"] == {"snrg <= 10": 12, "class GALAXY": 2}
    assert int(prov["cards"]["NROWS"]) == 200 and prov["cards"]["MODEL"] == CARDS["MODEL"]


def test_counts_of_older_and_partial_catalogues(tmp_path):
    """No NROWS/NSKIPPED cards nor SKIPPED table (catalogues from before): 'not recorded'; a
    partial merge adds NMISSING to the sum; counts that do not add up say by how much."""
    r = _cat()
    write_tables(tmp_path / "old.fits", [("CATALOG", r, UNITS, CARDS), ("REJECTS", REJ, None, None)])
    prov = catalogue_provenance(tmp_path / "old.fits")
    assert prov["skip_reasons"] is None and prov["cards"]["MODEL"] == CARDS["MODEL"] and "NSKIPPED" not in prov["cards"]
    assert _counts(200, 1, prov) == [("inputs", "215"), ("rows", "200"), ("rejected inputs", "1"),
                                     ("skipped inputs", "not recorded in this catalogue")]
    cards = dict(CARDS, NROWS=200, NREJECT=1, PARTIAL=True, NMISSING=10, NSKIPPED=4)
    write_tables(tmp_path / "p.fits", [("CATALOG", r, UNITS, cards), ("REJECTS", REJ, None, None)])
    got = dict(_counts(0, 0, catalogue_provenance(tmp_path / "p.fits")))
    assert got["PARTIAL merge"] == "10 inputs missing" and got["rows"] == "200"
    assert got["check"] == "rows + rejected + skipped + missing = 215 = inputs"
    cards["NMISSING"] = 9
    write_tables(tmp_path / "q.fits", [("CATALOG", r, UNITS, cards), ("REJECTS", REJ, None, None)])
    assert dict(_counts(0, 0, catalogue_provenance(tmp_path / "q.fits")))["check"].endswith(", inputs 215: +1 unaccounted")
    write_catalog(tmp_path / "c.parquet", r, [], header=dict(CARDS, NSKIPPED=3))
    prov = catalogue_provenance(tmp_path / "c.parquet")
    assert prov["cards"]["MODEL"] == CARDS["MODEL"] and "units" not in prov["cards"]
    assert dict(_counts(200, 0, prov))["skipped inputs"] == "3"


def test_robust_limits_ignore_outliers():
    v = np.concatenate([np.linspace(0.0, 1.0, 1000), [-500.0, 800.0, np.nan, np.inf]])
    lo, hi = robust_limits(v, (0.5, 99.5), pad=0.0)
    assert lo == pytest.approx(np.percentile(v[np.isfinite(v)], 0.5)) and -0.01 < lo < 0.01
    assert 0.99 < hi < 1.01
    assert robust_limits(v, (0.5, 99.5), pad=0.0, include=(-8.1,))[0] == -8.1  # the Sun must show
    assert robust_limits(np.array([np.nan])) == (0.0, 1.0)
    assert robust_limits(np.array([2.0, 2.0])) == (1.5, 2.5)
    assert outside(np.array([0.0, 2.0, 0.5]), np.array([0.0, 0.0, 9.0]), (0, 1), (-1, 1)) == 2


def test_report_refuses_a_file_that_is_not_a_catalogue(tmp_path):
    from click.testing import CliRunner

    from jaxvac.cli import main

    bad = tmp_path / "bad.fits"
    bad.write_bytes(b"not a fits file at all" * 10)
    with pytest.raises(ReportError, match=r"bad\.fits: cannot be read as a jaxvac catalogue .*written by `jaxvac run`"):
        report_catalogue(bad, tmp_path / "out")
    res = CliRunner().invoke(main, ["report", str(bad), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
    assert res.output.startswith("jaxvac report: ") and "cannot be read as a jaxvac catalogue" in res.output


def test_report_of_a_catalogue_with_other_labels(tmp_path):
    """A GALAH-like model without magnitudes: its labels and units in the table, the Kiel diagram
    from its own Teff/logg/[Fe/H], and no diagram that needs columns it lacks."""
    from jaxvac.labels import Label, LabelSchema
    from jaxvac.run.catalog import catalog_dtype

    schema = LabelSchema(labels=(Label("Teff_GALAH", "K", "GALAH", 3000.0, 8000.0, ""),
                                 Label("logg_GALAH", "dex", "GALAH", 0.0, 5.5, ""),
                                 Label("feh_GALAH", "dex", "GALAH", -4.0, 1.0, ""),
                                 Label("MgFe_GALAH", "dex", "GALAH", -1.0, 1.0, "")), vmp=None)
    rng = np.random.default_rng(4)
    r = empty_catalog(120, catalog_dtype(schema))
    r["uqflag"] = 1
    r["Teff_GALAH"] = rng.uniform(4000, 7000, 120)
    r["logg_GALAH"] = rng.uniform(1, 5, 120)
    r["feh_GALAH"] = rng.normal(-0.3, 0.4, 120)
    r["MgFe_GALAH"][:30] = 0.1
    for k in ("Teff_GALAH", "logg_GALAH", "feh_GALAH"):
        r[f"flag_{k}"] = 0
    r["flag_MgFe_GALAH"][:30] = 0
    r["flag_MgFe_GALAH"][:4] = 1
    counts = flag_counts(r)
    assert list(counts) == ["Teff_GALAH", "logg_GALAH", "feh_GALAH", "MgFe_GALAH"]
    assert (counts["MgFe_GALAH"].estimates, counts["MgFe_GALAH"].flagged, counts["MgFe_GALAH"].missing) == (30, 4, 90)
    cat = write_catalog(tmp_path / "galah.fits", r, units=schema.units)
    paths = report_catalogue(cat, tmp_path / "rep")
    names = sorted(p.name for p in paths)
    assert names == ["flag_fractions.png", "index.html", "kiel.png", "label_histograms.png", "summary.md"]
    md = (tmp_path / "rep" / "summary.md").read_text()
    assert "| Teff_GALAH [K] | 120 |" in md and "| MgFe_GALAH [dex] | 30 |" in md and "dist_phot" not in md
    assert "dist_phot" not in (tmp_path / "rep" / "index.html").read_text()  # no distance: its flag not explained
    assert "4 of 30 estimates (13.3%)" in md
