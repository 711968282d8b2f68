"""`jaxvac trainset`: the simulator's reference catalogues in published layouts (APOGEE allStar,
PASTEL, Gaia) give back the stars, spectra and labels of its ready-made training catalogues;
--map on generic tables; obsid keys through the official LRS file names; errors."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from click.testing import CliRunner

from jaxvac.cli import main
from jaxvac.io.spectra_index import build_index, read_index
from jaxvac.io.tables import read_table
from jaxvac.labels import LABELS
from jaxvac.train.reference import group_median
from jaxvac.train.trainset import TrainsetError, build_trainset, parse_maps

from lrs_table import write_lrs_catalogue  # tests/lrs_table.py

BANDS = [l.name for l in LABELS if l.training_set == "LGMWAS"]
APOGEE_LABELS = [l.name for l in LABELS if l.training_set == "APOGEE"]


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from jaxvac.simulate import simulate_survey

    out = tmp_path_factory.mktemp("trainset") / "survey"
    # train_scale 0.02 leaves APOGEE-pool stars unpicked: the allStar-like table gets bad-flag extras
    simulate_survey(out, 900, seed=5, workers=1, progress=False, train_scale=0.02, corrupt_fraction=0.02)
    build_index(out / "spectra", out / "index.fits", workers=0)
    return out


def _by_obsid(table):
    order = np.argsort(table["obsid"], kind="stable")
    return {k: np.asarray(v)[order] for k, v in table.items()}


def _same_stars(survey, ours, ready):
    """Same obsids, and the same files (ours absolute, the ready-made relative to the survey)."""
    assert len(ours["obsid"]) == len(ready["obsid"]) > 10
    np.testing.assert_array_equal(ours["obsid"], ready["obsid"])
    assert [os.path.relpath(p, survey) for p in ours["path"]] == list(ready["path"])
    np.testing.assert_array_equal(ours["snrg"], ready["snrg"])


def test_apogee_allstar_gives_the_ready_made_apogee_catalogue(survey, tmp_path):
    s = build_trainset(survey / "catalogs/ref_apogee_allstar.fits", tmp_path / "apogee.fits",
                       index=survey / "index.fits", fmt="apogee")
    ours = _by_obsid(read_table(tmp_path / "apogee.fits"))
    ready = _by_obsid(read_table(survey / "catalogs/train_apogee.fits"))
    _same_stars(survey, ours, ready)
    for name in [*APOGEE_LABELS, *(f"Err_{n}" for n in APOGEE_LABELS), "snr_apogee", "Teff_APOGEE", "Err_Teff_APOGEE"]:
        # allStar stores float32: equal to float32 precision, NaN where the ready-made one has NaN
        np.testing.assert_allclose(ours[name], ready[name], rtol=1e-6, atol=0, equal_nan=True, err_msg=name)
    # the rows dropped are exactly those with a bad bit, counted by reason
    ref = read_table(survey / "catalogs/ref_apogee_allstar.fits", ["ASPCAPFLAG", "STARFLAG", "EXTRATARG"])
    bad = ((ref["ASPCAPFLAG"] >> 23) & 1).astype(bool) | ((ref["EXTRATARG"] >> 4) & 1).astype(bool)
    for b in (0, 3, 18, 22):
        bad |= ((ref["STARFLAG"] >> b) & 1).astype(bool)
    assert sum(s.dropped.values()) == bad.sum() > 0 and s.stars == len(bad) - bad.sum()
    assert any("STAR_BAD" in k for k in s.dropped) and any("DUPLICATE" in k for k in s.dropped)
    assert s.match.unmatched.size > 0  # stars LAMOST never observed: reported, not an error
    assert "unmatched, e.g. 2M" in "\n".join(s.lines())


def test_gaia_layout_gives_the_ready_made_lgmwas_catalogue(survey, tmp_path):
    s = build_trainset(survey / "catalogs/ref_gaia.fits", tmp_path / "lgmwas.fits", index=survey / "index.fits",
                       fmt="gaia")
    ours = _by_obsid(read_table(tmp_path / "lgmwas.fits"))
    ready = _by_obsid(read_table(survey / "catalogs/train_lgmwas.fits"))
    _same_stars(survey, ours, ready)
    for band in BANDS:
        # M = m - 5 log10(d / 10 pc) - R E(B-V) from float32 apparent magnitudes: 1e-6 mag
        np.testing.assert_allclose(ours[band], ready[band], rtol=0, atol=5e-6, equal_nan=True, err_msg=band)
        # the ready-made errors use 2.17 for 5 / ln 10 = 2.1715 in the parallax term
        np.testing.assert_allclose(ours[f"Err_{band}"], ready[f"Err_{band}"], rtol=1.5e-3, equal_nan=True)
    np.testing.assert_allclose(ours["dist"], ready["dist"], rtol=1e-12)
    np.testing.assert_array_equal(ours["gb"], ready["gb"])
    np.testing.assert_array_equal(ours["ebv"], ready["ebv"])
    # Err_dist = f dist (f: the fractional parallax error) where the ready-made one is f d_true
    truth = read_table(survey / "truth.fits", ["obsid", "dist"])
    d_true = dict(zip(truth["obsid"].tolist(), truth["dist"].tolist()))
    expect = ready["Err_dist"] * ready["dist"] / np.array([d_true[o] for o in ready["obsid"].tolist()])
    np.testing.assert_allclose(ours["Err_dist"], expect, rtol=1e-9)
    assert any("min_parallax_over_error" in k for k in s.dropped)


def test_pastel_determinations_give_the_ready_made_pastel_catalogue(survey, tmp_path):
    s = build_trainset(survey / "catalogs/ref_pastel.fits", tmp_path / "pastel.parquet", index=survey / "index.fits",
                       fmt="pastel")
    ours = _by_obsid(read_table(tmp_path / "pastel.parquet"))
    ready = _by_obsid(read_table(survey / "catalogs/train_pastel.fits"))
    _same_stars(survey, ours, ready)
    for name in ("Teff_PASTEL", "logg_PASTEL", "feh_PASTEL", "Err_Teff_PASTEL", "Err_logg_PASTEL", "Err_feh_PASTEL"):
        np.testing.assert_array_equal(ours[name], ready[name], err_msg=name)  # the median of v - d, v, v + d is v
    assert s.rows_in > s.stars and any("median" in n for n in s.notes)


def test_sexagesimal_positions_and_relative_paths(survey, tmp_path):
    ref = read_table(survey / "catalogs/ref_pastel.fits")
    first = {}
    for i, k in enumerate(ref["ID"]):
        first.setdefault(k, i)
    rows = sorted(first.values())[:12]

    def sexa(x, hours):
        v = abs(x) / (15.0 if hours else 1.0)
        d, m = int(v), int((v % 1) * 60)
        return f"{'-' if x < 0 else ''}{d:02d} {m:02d} {((v * 60) % 1) * 60:07.4f}"

    with open(tmp_path / "p.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID", "RAJ2000", "DEJ2000", "Teff", "logg", "[Fe/H]"])
        for i in rows:
            w.writerow([ref["ID"][i], sexa(ref["RAJ2000"][i], True), sexa(ref["DEJ2000"][i], False),
                        ref["Teff"][i], ref["logg"][i], ref["[Fe/H]"][i]])
    s = build_trainset(tmp_path / "p.csv", tmp_path / "p.fits", index=survey / "index.fits", fmt="pastel",
                       relative_to=survey)
    out = read_table(tmp_path / "p.fits")
    build_trainset(survey / "catalogs/ref_pastel.fits", tmp_path / "full.fits", index=survey / "index.fits", fmt="pastel")
    full = read_table(tmp_path / "full.fits", ["ref_id", "obsid"])
    ids = {ref["ID"][i] for i in rows}
    want = {(k, o) for k, o in zip(full["ref_id"], full["obsid"].tolist()) if k in ids}
    assert want and {(k, o) for k, o in zip(out["ref_id"], out["obsid"].tolist())} == want
    assert s.match.n_rows == len(rows)
    assert all(not os.path.isabs(p) and (survey / p).is_file() for p in out["path"])
    assert "no column for Err_Teff_PASTEL" in "\n".join(s.lines())


def test_generic_map_by_obsid_through_the_official_lrs_file_names(survey, tmp_path):
    # The official LRS catalogue: obsid, lmjd, planid, spid, fiberid (here from the headers); its
    # rows find spec-<lmjd>-<planid>_sp<spid>-<fiberid>.fits[.gz] (or <obsid>.fits[.gz]) under --data.
    idx = read_index(survey / "index.fits")
    write_lrs_catalogue(idx, tmp_path / "lrs.csv")
    ready = read_table(survey / "catalogs/train_pastel.fits")
    with open(tmp_path / "mine.csv", "w", newline="") as f:  # a user's own table keyed by obsid
        w = csv.writer(f)
        w.writerow(["LAMOST_OBSID", "T", "eT", "G", "M"])
        for row in zip(ready["obsid"], ready["Teff_PASTEL"], ready["Err_Teff_PASTEL"], ready["logg_PASTEL"],
                       ready["feh_PASTEL"]):
            w.writerow([repr(float(v)) if isinstance(v, float) else v for v in row])
    maps = parse_maps(["LAMOST_OBSID=obsid", "T=Teff_PASTEL", "eT=Err_Teff_PASTEL", "G=logg_PASTEL", "M=feh_PASTEL"])
    s = build_trainset(tmp_path / "mine.csv", tmp_path / "mine.fits", index=tmp_path / "lrs.csv", data_dir=survey,
                       maps=maps)
    assert s.by == "obsid" and s.match.unmatched.size == 0
    ours = read_table(tmp_path / "mine.fits")
    np.testing.assert_array_equal(ours["obsid"], ready["obsid"])
    assert [os.path.relpath(p, survey) for p in ours["path"]] == list(ready["path"])
    for name in ("Teff_PASTEL", "Err_Teff_PASTEL", "logg_PASTEL", "feh_PASTEL"):
        np.testing.assert_array_equal(ours[name], ready[name])
    assert "Err_logg_PASTEL" not in ours  # only what was mapped


def test_generic_map_by_sky_copies_values_as_they_are(survey, tmp_path):
    s = build_trainset(survey / "catalogs/ref_gaia.fits", tmp_path / "g.fits", index=survey / "index.fits",
                       maps={"ra": "RA", "dec": "DEC", "a_gg": "phot_g_mean_mag", "id": "source_id"})
    out = read_table(tmp_path / "g.fits")
    ref = read_table(survey / "catalogs/ref_gaia.fits", ["phot_g_mean_mag", "source_id"])
    np.testing.assert_array_equal(out["a_gg"], ref["phot_g_mean_mag"][out["ref_row"]].astype(np.float64))
    assert list(out["ref_id"]) == [str(v) for v in ref["source_id"][out["ref_row"]]]
    assert s.by == "sky" and np.all(out["sep_arcsec"] <= 3.0)


def test_group_median_equals_numpy():
    rng = np.random.default_rng(1)
    group = rng.integers(0, 40, 300)
    values = rng.normal(size=300)
    values[rng.random(300) < 0.3] = np.nan
    got = group_median(group, values, 42)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.array([np.nanmedian(values[group == g]) if (group == g).any() else np.nan for g in range(42)])
    np.testing.assert_array_equal(got, want)


def test_errors_name_the_column_the_file_and_what_was_tried(survey, tmp_path):
    with pytest.raises(TrainsetError, match=r"has no column for ra \(looked for RA as the APOGEE DR17 allStar layout "
                                            r"names it\); it has 10 columns: ID, RAJ2000, DEJ2000, Teff"):
        build_trainset(survey / "catalogs/ref_pastel.fits", tmp_path / "x.fits", index=survey / "index.fits",
                       fmt="apogee")
    far = tmp_path / "far.csv"
    far.write_text("ra,dec,teff\n10.0,-70.0,5000\n20.0,-75.0,5100\n30.0,-80.0,5200\n")
    with pytest.raises(TrainsetError, match=r"none of the 3 rows of .*far.csv' found a spectrum: tried RA/Dec within "
                                            r"3 arcsec of \d+ usable index rows \(class STAR, a redshift in the header\)"
                                            r".*median .* arcsec"):
        build_trainset(far, tmp_path / "x.fits", index=survey / "index.fits",
                       maps=parse_maps(["teff=Teff_PASTEL", "ra=ra", "dec=dec"]))
    with pytest.raises(TrainsetError, match="write it as SRC=DEST"):
        parse_maps(["Teff_PASTEL"])
    with pytest.raises(TrainsetError, match="needs a spectra index"):
        build_trainset(survey / "catalogs/ref_gaia.fits", tmp_path / "x.fits", fmt="gaia")
    r = CliRunner().invoke(main, ["trainset", str(survey / "catalogs/ref_pastel.fits"), "--format", "apogee",
                                  "--index", str(survey / "index.fits"), "--out", str(tmp_path / "x.fits")])
    assert r.exit_code == 2 and r.output.startswith("jaxvac trainset: reference catalogue")
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "x.fits").exists()


def test_cli(survey, tmp_path):
    r = CliRunner().invoke(main, ["trainset", str(survey / "catalogs/ref_apogee_allstar.fits"), "--format", "apogee",
                                  "--index", str(survey / "index.fits"), "--out", str(tmp_path / "a.fits"),
                                  "--relative-to", str(survey)])
    assert r.exit_code == 0, r.output
    assert "APOGEE DR17 allStar format" in r.output and "matched by sky:" in r.output and "wrote" in r.output
    ready = read_table(survey / "catalogs/train_apogee.fits", ["path"])
    assert sorted(read_table(tmp_path / "a.fits", ["path"])["path"]) == sorted(ready["path"])


def test_recipe_numbers_have_one_home():
    """[trainset], [photometry.r_band] and [match] are dr8.toml's, and the simulator's R_band is
    [photometry.r_band] (the numbers its catalogues have always used, so their bytes stay)."""
    import tomllib

    from jaxvac.config import builtin_path
    from jaxvac.io.match import MatchConfig
    from jaxvac.simulate.catalogs import ext_ratio
    from jaxvac.train.reference import PhotometryConfig, TrainsetConfig

    with open(builtin_path("dr8"), "rb") as f:
        dr8 = tomllib.load(f)
    t = TrainsetConfig()
    assert {k: list(v) if isinstance(v, tuple) else v for k, v in vars(t).items()} == dr8["trainset"]
    assert PhotometryConfig().r_band == dr8["photometry"]["r_band"]
    assert MatchConfig().radius_arcsec == dr8["match"]["radius_arcsec"] == 3.0
    np.testing.assert_array_equal(ext_ratio(), [dr8["photometry"]["r_band"][b] for b in BANDS])
    np.testing.assert_array_equal(ext_ratio(), [2.74, 3.37, 1.95, 0.72, 0.46, 0.306, 0.18, 0.16, 4.1, 3.1, 2.3, 3.3,
                                                2.3, 1.7])


def test_sentinels_are_missing_and_paths_need_no_index(tmp_path):
    (tmp_path / "t.csv").write_text("path,teff,logg\na/1.fits,5000,-9999\nb/2.fits,-9999.0,4.5\n")
    s = build_trainset(tmp_path / "t.csv", tmp_path / "t.fits", data_dir=tmp_path,
                       maps=parse_maps(["path=path", "teff=Teff_PASTEL", "logg=logg_PASTEL"]))
    out = read_table(tmp_path / "t.fits")
    assert s.by == "path" and s.match is None
    assert list(out["path"]) == [str(tmp_path / "a/1.fits"), str(tmp_path / "b/2.fits")]
    np.testing.assert_array_equal(out["Teff_PASTEL"], [5000.0, np.nan])
    np.testing.assert_array_equal(out["logg_PASTEL"], [np.nan, 4.5])
    assert out["obsid"].tolist() == [-1, -1] and np.isnan(out["snrg"]).all()
