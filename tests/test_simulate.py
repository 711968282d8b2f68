"""The synthetic survey: files read back intact, catalogues consistent, same seed -> same bytes.

One small survey (300 spectra, every feature switched on) is written once per module; its
files are compared with an in-memory re-rendering (bytes), with fitsio (every header card and
array) and with the jaxvac reader (metadata and the global-grid arrays).
"""

import hashlib
from pathlib import Path

import fitsio
import numpy as np
import pytest
from click.testing import CliRunner

from jaxvac.constants import C_KMS, NPIX_GLOBAL
from jaxvac.io.lamost import read_spectrum
from jaxvac.io.records import Reject
from jaxvac.labels import LABEL_NAMES, LABELS
from jaxvac.simulate import SurveyOptions, fitswrite, render, simulate_survey, survey

OPTIONS = dict(corrupt_fraction=0.06, sentinel_fraction=0.05, nonstar_fraction=0.08, repeat_fraction=0.15,
               table_fraction=0.5, gzip_fraction=0.5, test_fraction=0.25, train_scale=0.1)
N, SEED = 300, 11


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim") / "survey"
    info = simulate_survey(out, N, SEED, progress=False, **OPTIONS)
    return info


@pytest.fixture(scope="module")
def truth(sim):
    return fitsio.read(sim.out_dir / "truth.fits")


@pytest.fixture(scope="module")
def expected(sim):
    """Every file as planned and rendered again in memory: path -> (bytes, header values, rows)."""
    rng = np.random.default_rng(np.random.SeedSequence(SEED))
    _, recs, plans = survey.plan_survey(rng, N, SurveyOptions(**OPTIONS))
    out = {}
    for task in survey.chunk_tasks(sim.out_dir, SEED, recs, plans):
        for rel, data, values, rows in render.chunk_contents(task):
            out[rel] = (data, values, rows)
    return out


def _s(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def test_counts_and_layout_mix(sim, truth):
    assert len(truth) == N == sim.counts["n_spectra"]
    assert np.unique(truth["obsid"]).size == N and truth["obsid"].dtype.kind == "i"
    assert truth["obsid"].max() < 1.25e9
    assert set(_s(c).strip() for c in truth["class"]) == {"STAR", "GALAXY", "QSO", "Unknown"}
    assert set(_s(c).strip() for c in truth["layout"]) == {"image", "table"}
    assert truth["gz"].any() and not truth["gz"].all()
    assert truth["is_repeat"].sum() == sim.counts["n_repeats"] > 10
    assert len(set(_s(p).split("/")[1] for p in truth["path"])) >= 3  # plan folders
    assert set(np.unique(truth["npix"])) > {NPIX_GLOBAL}  # varying pixel counts
    assert (truth["offset"] > 0).any()  # and COEFF0 offsets
    for rel in truth["path"]:
        assert (sim.out_dir / _s(rel)).is_file()


def test_files_are_the_rendered_bytes(sim, expected):
    for rel, (data, _, _) in expected.items():
        assert (sim.out_dir / rel).read_bytes() == data, rel
    gz = [rel for rel in expected if rel.endswith(".gz")]
    assert gz
    for rel in gz:
        head = (sim.out_dir / rel).read_bytes()[:10]
        if head[:2] == b"\x1f\x8b":  # not a garbage-corrupted file
            assert head[4:8] == b"\0\0\0\0"  # mtime 0: same seed, same bytes


def _expected_header_value(fmt, v):
    if isinstance(v, str) and fmt != "S":
        return v
    if fmt in ("S",):
        return v
    if fmt == "L":
        return bool(v)
    if fmt == "I" or isinstance(v, int):
        return int(v)
    return float(fmt % v)


def test_every_header_card_and_array_reads_back_with_fitsio(sim, truth, expected):
    fmts = {layout: {k: f for k, f, _ in cards if k} for layout, cards in fitswrite.CARDS.items()}
    checked = 0
    for row in truth:
        if row["corrupt"]:
            continue
        rel = _s(row["path"])
        _, values, rows = expected[rel]
        layout = _s(row["layout"]).strip()
        with fitsio.FITS(str(sim.out_dir / rel)) as f:
            h = f[0].read_header()
            for key in fitswrite.HEADER_KEYS[layout]:
                want = _expected_header_value(fmts[layout][key], values[key])
                got = h[key]
                if isinstance(want, str):
                    assert str(got).strip() == want.strip(), (rel, key, got, want)
                else:
                    assert got == want and type(got) is type(want), (rel, key, got, want)
            if layout == "image":
                data = f[0].read()
            else:
                t = f[1].read()
                data = np.stack([t[c][0] for c in fitswrite.COLUMNS])
        np.testing.assert_array_equal(data, rows)
        checked += 1
    assert checked > 200


def test_every_spectrum_reads_back_with_the_jaxvac_reader(sim, truth, expected):
    for row in truth:
        rel = _s(row["path"])
        spec = read_spectrum(sim.out_dir / rel)
        if row["corrupt"]:
            assert isinstance(spec, Reject) and spec.reason, (rel, _s(row["corrupt_kind"]))
            continue
        assert not isinstance(spec, Reject), (rel, getattr(spec, "reason", ""))
        _, values, rows = expected[rel]
        m = spec.meta
        assert m["obsid"] == row["obsid"] == values["OBSID"]
        assert m["designation"] == values["DESIG"].replace("LAMOST ", "") or m["designation"] == values["DESIG"]
        assert m["ra"] == pytest.approx(row["ra"], abs=1e-6) and m["dec"] == pytest.approx(row["dec"], abs=1e-6)
        for k, band in enumerate("ugriz"):
            assert m[f"snr{band}"] == pytest.approx(row[f"snr{band}"], abs=0.006)
        assert m["class"] == values["CLASS"] and m["subclass"] == values["SUBCLASS"]
        assert (m["lmjd"], m["planid"], m["spid"], m["fiberid"]) == (
            values["LMJD"], values["PLANID"], values["SPID"], values["FIBERID"])
        assert m["release"] == values["DATA_V"] and m["verspipe"] == values["VERSPIPE"]
        assert m["layout"] == _s(row["layout"]).strip()
        assert (m["npix"], m["offset"]) == (row["npix"], row["offset"])
        if isinstance(values["Z"], int):  # -9999 sentinel
            assert np.isnan(m["rv"]) and np.isnan(m["z"])
        else:
            assert m["rv"] == pytest.approx(values["Z"] * C_KMS, abs=0.01)
            if _s(row["class"]).strip() == "STAR":  # the header rv scatters around the truth
                assert abs(m["rv"] - row["rv"]) < 6 * values["Z_ERR"] * C_KMS + 0.01
        off, npix = row["offset"], row["npix"]
        flux, ivar, _, andmask = rows[0], rows[1], rows[2], rows[3]
        good = (ivar > 0) & (andmask == 0)
        sl = slice(off, off + npix)
        np.testing.assert_array_equal(spec.good[sl], good)
        np.testing.assert_array_equal(spec.flux[sl][good], flux[good])
        np.testing.assert_array_equal(spec.ivar[sl][good], ivar[good])
        assert not spec.good[:off].any() and not spec.good[off + npix:].any()


def test_bad_pixels_and_masks_like_real_files(truth, expected):
    rows = [expected[_s(r["path"])][2] for r in truth if not r["corrupt"]]
    n_bad = np.array([(r[1] == 0).sum() for r in rows])
    assert (n_bad > 0).mean() > 0.3 and (n_bad == 0).mean() > 0.2
    masks = np.unique(np.concatenate([np.unique(r[3:5]) for r in rows]))
    assert set(masks) == {0.0, 1.0, 4.0}
    neg = np.array([(r[0] < 0).any() for r in rows])
    assert neg.any()  # low-S/N spectra dip below zero, as real ones do


def test_repeats_are_the_same_star_at_another_snr(truth):
    stars = truth["star_id"][truth["is_repeat"]]
    for s in stars[:20]:
        rows = truth[truth["star_id"] == s]
        assert len(rows) >= 2
        assert np.unique(rows["gaia_source_id"]).size == 1 and np.unique(rows["obsid"]).size == len(rows)
        assert np.unique(rows["Teff_PASTEL"]).size == 1
        assert np.unique(rows["snrg"]).size == len(rows)


def test_poor_conditions_move_k_bright_repeats_into_the_low_bin():
    """Known answer: exactly k repeats, all at snrg >= hi, move to [lo, hi); nothing else changes."""
    rng = np.random.default_rng(0)
    snrg = np.exp(rng.uniform(np.log(3.0), np.log(300.0), 2000))
    rep = rng.random(2000) < 0.3
    out = survey._poor_conditions(np.random.default_rng(1), snrg, rep, 100, (10.0, 20.0))
    moved = out != snrg
    assert moved.sum() == 100 and (rep & (snrg >= 20.0))[moved].all()
    assert ((out[moved] >= 10.0) & (out[moved] < 20.0)).all()
    few = survey._poor_conditions(np.random.default_rng(1), snrg, rep & (snrg < 25.0), 100, (10.0, 20.0))
    assert (few != snrg).sum() == (rep & (snrg >= 20.0) & (snrg < 25.0)).sum()  # fewer candidates than k: all of them


def test_low_snr_fraction_fills_the_low_bin_and_changes_nothing_when_off():
    def plan(**kw):
        return survey.plan_survey(np.random.default_rng(np.random.SeedSequence(5)), 4000, SurveyOptions(**kw))

    _, base, _ = plan(repeat_fraction=0.2)
    _, off, _ = plan(repeat_fraction=0.2, low_snr=(5.0, 8.0))  # fraction 0: no extra draw, the same survey
    assert (base["snr"] == off["snr"]).all() and (base["obsid"] == off["obsid"]).all()
    _, on, _ = plan(repeat_fraction=0.2, low_snr_fraction=0.05)
    star = on["cls"] == "STAR"
    k = int(round(star.sum() * 0.05))
    natural = base["is_repeat"] & (base["snr"][:, 1] >= 10.0) & (base["snr"][:, 1] < 20.0)
    moved = star & (on["snr"] != base["snr"]).any(1)  # the plans agree up to the S/N: only the k stars' visits differ
    assert moved.sum() == k > 2 * natural.sum() / 3
    assert on["is_repeat"][moved].all() and (base["snr"][moved, 1] >= 20.0).all()
    assert ((on["snr"][moved, 1] >= 10.0) & (on["snr"][moved, 1] <= 20.0)).all()  # the header rounds to 0.01


def test_training_catalogues(sim, truth):
    by_obsid = {int(o): i for i, o in enumerate(truth["obsid"])}
    test_stars = set(truth["star_id"][truth["test"]].tolist())
    sets = {"pastel": "PASTEL", "apogee": "APOGEE", "lgmwas": "LGMWAS"}
    for name, label_set in sets.items():
        cat = fitsio.read(sim.out_dir / f"catalogs/train_{name}.fits")
        assert len(cat) == sim.catalog_sizes[f"catalogs/train_{name}.fits"] > 0
        labels = [l.name for l in LABELS if l.training_set == label_set]
        extra = {"pastel": [], "apogee": ["snr_apogee", "Teff_APOGEE", "Err_Teff_APOGEE"],
                 "lgmwas": ["dist", "Err_dist", "gb", "ebv"]}[name]
        assert list(cat.dtype.names) == ["obsid", "path", "snrg"] + [c for l in labels for c in (l, f"Err_{l}")] + extra
        rows = truth[[by_obsid[int(o)] for o in cat["obsid"]]]
        assert not set(rows["star_id"].tolist()) & test_stars  # split by star
        assert np.unique(rows["star_id"]).size == len(rows)
        assert all(_s(p) == _s(q) for p, q in zip(cat["path"], rows["path"]))
        assert not rows["corrupt"].any() and not rows["sentinel"].any()
        assert all(_s(c).strip() == "STAR" for c in rows["class"])
        pulls = np.concatenate([((cat[l] - rows[l]) / cat[f"Err_{l}"])[np.isfinite(cat[l])] for l in labels])
        assert np.mean(np.abs(pulls) < 3.0) > 0.97 and 0.6 < np.std(pulls) < 1.4  # noise at the Err given
        if name == "apogee":
            assert np.all((rows["Teff_PASTEL"] > 3800) & (rows["Teff_PASTEL"] < 6500))
        if name == "lgmwas":
            assert np.all(rows["dist"] < 2.0) and np.all(rows["snrg"] >= 30.0)
            np.testing.assert_array_equal(cat["gb"], rows["gb"])
            assert np.all(np.abs(cat["dist"] / rows["dist"] - 1) < 5 * cat["Err_dist"] / rows["dist"])
    test = fitsio.read(sim.out_dir / "catalogs/test.fits")
    assert set(LABEL_NAMES + ("feh_VMP",)) <= set(test.dtype.names)
    rows = truth[[by_obsid[int(o)] for o in test["obsid"]]]
    assert rows["test"].all()
    np.testing.assert_array_equal(test["feh_VMP"], rows["feh_PASTEL"])
    np.testing.assert_array_equal(test["a_ks"], rows["a_ks"])
    lg = test["in_lgmwas"].astype(bool)  # the LGMWAS-like pool: near, little reddening
    assert lg.any() and np.all(rows["dist"][lg] < 2.0) and np.all(rows["EBV"][lg] < 0.1)
    ap = test["in_apogee"].astype(bool)
    assert ap.any() and np.all((rows["Teff_PASTEL"][ap] > 3800) & (rows["Teff_PASTEL"][ap] < 6500))


def test_crossmatch_gives_distances_back(sim, truth):
    xm = fitsio.read(sim.out_dir / "crossmatch.fits")
    by_obsid = {int(o): i for i, o in enumerate(truth["obsid"])}
    rows = truth[[by_obsid[int(o)] for o in xm["obsid"]]]
    assert xm["gaia_source_id"].dtype.kind == "i"
    np.testing.assert_array_equal(xm["gaia_source_id"], rows["gaia_source_id"])
    dm = xm["Ks"] - rows["a_ks"] - 0.306 * rows["EBV"]
    d = 10 ** (dm / 5 - 2)  # kpc, the SPEC distance modulus
    pull = (dm - 5 * np.log10(100 * rows["dist"])) / xm["e_Ks"]
    assert np.mean(np.abs(pull) < 3) > 0.97
    assert np.median(np.abs(d / rows["dist"] - 1)) < 0.05


def test_same_seed_same_bytes_whatever_the_workers(sim, tmp_path):
    again = simulate_survey(tmp_path / "again", N, SEED, progress=False, workers=2, **OPTIONS)

    def digest(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(Path(root).rglob("*")) if p.is_file()}

    assert digest(sim.out_dir) == digest(again.out_dir)
    other = simulate_survey(tmp_path / "other", 40, SEED + 1, progress=False)
    first = simulate_survey(tmp_path / "first", 40, SEED, progress=False)
    assert (other.out_dir / "truth.fits").read_bytes() != (first.out_dir / "truth.fits").read_bytes()


def test_options_are_validated(tmp_path):
    with pytest.raises(ValueError, match="repeat_fraction must lie in"):
        SurveyOptions(repeat_fraction=1.5)
    with pytest.raises(ValueError, match="low_snr_fraction .* must not exceed repeat_fraction"):
        SurveyOptions(repeat_fraction=0.1, low_snr_fraction=0.2)
    for bad in ((20.0, 10.0), (10.0,), "10-20"):
        with pytest.raises(ValueError, match="low_snr must be"):
            SurveyOptions(low_snr=bad)
    with pytest.raises(ValueError, match="train_scale must be > 0"):
        SurveyOptions(train_scale=0.0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not empty"):
        simulate_survey(tmp_path / "full", 5)
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_cli(tmp_path):
    from jaxvac.cli import main

    r = CliRunner().invoke(main, ["simulate", "--n", "12", "--out", str(tmp_path / "s"), "--seed", "2",
                                  "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "wrote 12 spectra" in r.output and (tmp_path / "s" / "survey.json").is_file()
    r = CliRunner().invoke(main, ["simulate", "--n", "12", "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "is not empty" in r.output
    r = CliRunner().invoke(main, ["simulate", "--n", "12", "--out", str(tmp_path / "t"), "--gzip-fraction", "2"])
    assert r.exit_code == 2 and "must be a fraction" in r.output


def test_tiny_and_extreme_surveys(tmp_path):
    """Edge cases: one spectrum with 90 % non-stars asked (at least one star is kept), all
    repeats asked (one first visit is kept), every file corrupt (empty training catalogues)."""
    one = simulate_survey(tmp_path / "one", 1, 0, progress=False, nonstar_fraction=0.9)
    assert one.counts["n_stars"] == 1 and one.counts["n_spectra"] == 1
    rep = simulate_survey(tmp_path / "rep", 3, 0, progress=False, repeat_fraction=0.9)
    assert rep.counts["n_stars"] == 1 and rep.counts["n_repeats"] == 2
    bad = simulate_survey(tmp_path / "bad", 5, 0, progress=False, corrupt_fraction=1.0)
    assert bad.counts["n_corrupt"] == 5
    from astropy.table import Table

    for name in ("pastel", "apogee", "lgmwas"):
        assert bad.catalog_sizes[f"catalogs/train_{name}.fits"] == 0
        assert len(Table.read(bad.out_dir / f"catalogs/train_{name}.fits")) == 0  # written, empty
    for p in (bad.out_dir / "spectra").rglob("*.fits*"):
        assert isinstance(read_spectrum(p), Reject)


def test_header_structure_matches_real_files(sim, truth, lamost_dir):
    """Same cards in the same order as a real DR8 image file and a real DR9+ table file."""
    real = {"image": "spec-55859-F5902_sp03-232.fits.gz",
            "table": "spec-60591-LN042429N340750BM01_sp01-001.fits.gz"}
    for layout, name in real.items():
        rel = next(_s(r["path"]) for r in truth if _s(r["layout"]).strip() == layout and not r["corrupt"])
        with fitsio.FITS(str(sim.out_dir / rel)) as mine, fitsio.FITS(str(lamost_dir / name)) as ref:
            assert len(mine) == len(ref)
            for k in range(len(ref)):
                assert list(mine[k].read_header().keys()) == list(ref[k].read_header().keys()), (layout, k)


@pytest.mark.parametrize("ra, dec, desig", [
    (330.909453, -0.17471, "LAMOST J220338.26-001028.9"),  # RA, DEC, DESIG of real LAMOST headers
    (66.43298, 32.625089, "LAMOST J042543.91+323730.3"),
    (138.080956, 27.893459, "LAMOST J091219.42+275336.4"),
    (131.557561, 20.856897, "LAMOST J084613.81+205124.8"),
])
def test_designation_like_the_pipeline(ra, dec, desig):
    assert render.designation(ra, dec) == desig
