"""Training: a short run on a small simulated survey, reproducibility, curation and evaluation."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from jaxvac.train import checkpoint, dataset
from jaxvac.config import load_config
from jaxvac.io.tables import read_table
from jaxvac.train.dataset import CurationConfig, apply_cuts, catalog_paths, lgmwas_outliers
from jaxvac.train.evaluate import markdown_table, residual_stats, snr_bin_names
from jaxvac.labels import LABEL_NAMES, VMP
from jaxvac.train.fit import TrainConfig, fit
from jaxvac.train.job import train_from_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TINY = """
base = "{base}"
[model]
hidden = [32, 16, 8]
vmp_hidden = [16, 8]
[train]
batch_size = 32
learning_rate = 0.003
max_epochs = 80
patience = 80
val_fraction = 0.25
eval_batch = 256
workers = 0
cache_dir = "{cache}"
[curation]
apply_cuts = false
binary_removal = true
clip_sigma = 1.5
"""


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    from jaxvac.simulate import simulate_survey

    out = tmp_path_factory.mktemp("survey")
    simulate_survey(out / "s", 400, seed=3, workers=1, progress=False, halo_fraction=0.4)  # more VMP stars
    return out / "s"


@pytest.fixture(scope="module")
def runs(survey, tmp_path_factory):
    """Two runs of the same config and seed (the second from the cache) into two run dirs."""
    tmp = tmp_path_factory.mktemp("runs")
    cfg_path = tmp / "tiny.toml"
    cfg_path.write_text(TINY.format(base=CONFIGS / "dr8.toml", cache=tmp / "cache"))
    cfg = load_config(cfg_path)
    epochs = []
    first = train_from_config(cfg, data_dir=str(survey), out_dir=str(tmp / "a"), progress=False,
                              on_epoch=lambda info: epochs.append(info.epoch))
    real_reader = dataset._read_and_normalize

    def must_not_read(*a, **k):
        raise AssertionError("the second run re-read FITS files instead of using the cache")

    dataset._read_and_normalize = must_not_read
    try:
        second = train_from_config(cfg, data_dir=str(survey), out_dir=str(tmp / "b"), progress=False)
    finally:
        dataset._read_and_normalize = real_reader
    return first, second, epochs


def test_short_run_learns_every_label(runs):
    first, _, epochs = runs
    best = first.metrics["best_val_loss"]
    assert set(best) == set(LABEL_NAMES) | {VMP.name}
    # standardised labels have unit variance on the training stars: each net must do much better
    bad = {k: round(v, 3) for k, v in best.items() if not v < 0.5 and k != VMP.name}
    assert not bad, f"validation loss not well below the label variance (1): {bad}"
    # the VMP net sees only the few metal-poor PASTEL stars (a handful of validation stars)
    assert best[VMP.name] < 1.0
    assert epochs[0] == 1 and len(epochs) == 3 * 80
    assert all(n > 0 for n in first.metrics["n_train"].values())


def test_same_seed_gives_bit_identical_weights(runs):
    a, b = (checkpoint.load(Path(r.checkpoint).parent) for r in runs[:2])
    leaves_a, leaves_b = jax.tree.leaves(a.params), jax.tree.leaves(b.params)
    assert len(leaves_a) == len(leaves_b) > 10
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    np.testing.assert_array_equal(a.x_mean, b.x_mean)


def test_run_writes_report_table_and_plot(runs):
    first = runs[0]
    run = Path(first.report).parent
    text = Path(first.report).read_text()
    assert "| Teff_PASTEL | K |" in text and "| feh_VMP | dex |" in text
    assert (run / "residuals.png").stat().st_size > 10_000
    assert any("binaries" in n for n in first.notes) and any("clipping" in n for n in first.notes)
    meta = checkpoint.read_metadata(Path(first.checkpoint).parent)
    assert meta["labels"] == list(LABEL_NAMES)
    assert meta["model"]["hidden"] == [32, 16, 8]
    assert len(meta["standardization"]["x_mean"]) == 1974
    from jaxvac.preprocess import LAYOUT

    assert meta["layout"] == checkpoint.layout_metadata(LAYOUT)  # every normalisation number the nets saw
    assert meta["layout"]["max_abs_rv"] == 4000.0 and meta["layout"]["windows"] == [[229, 1953], [3587, 3837]]


def test_fit_reaches_a_known_function_and_masks_members():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 10)).astype(np.float32)
    y = np.stack([x[:, 0] + 0.5 * x[:, 1], 3.0 * x[:, 2] - 100.0, np.maximum(x[:, 3], 0)], 1)
    y[:300, 0] = np.nan  # member 0 learns from rows 300.. only; member 2 from rows ..300
    y[300:, 2] = np.nan
    cfg = TrainConfig(max_epochs=60, patience=60, batch_size=64, learning_rate=0.01)
    res = fit(x, y, hidden=(16, 8), cfg=cfg)
    assert np.all(res.best_val < 0.05), res.best_val
    np.testing.assert_allclose(res.y_mean[1], -100.0, atol=0.5)
    assert res.n_train[0] + res.n_val[0] == 300
    with pytest.raises(ValueError, match="no validation stars"):
        fit(x, y, hidden=(4,), cfg=cfg, val_mask=np.isnan(y[:, 0]))


def test_cuts_and_lgmwas_outliers():
    cat = {"snrg": np.array([90.0, 50.0, 120.0, np.nan]), "Err_CFE_APOGEE": np.array([0.01, 0.01, 0.1, 0.01]),
           "gb": np.array([-40.0, 10.0, 35.0, -20.0])}
    labels = ["feh_APOGEE", "CFE_APOGEE"]
    cuts = ({"set": "APOGEE", "column": "snrg", "min": 80.0},
            {"set": "APOGEE", "column": "Err_CFE_APOGEE", "max": 0.05, "labels": ["CFE_APOGEE"]},
            {"set": "APOGEE", "column": "gb", "abs": True, "min": 30.0},
            {"set": "APOGEE", "column": "ebv", "max": 0.02},
            {"set": "LGMWAS", "column": "snrg", "min": 1e9})
    keep, notes = apply_cuts(cat, "APOGEE", labels, cuts)
    np.testing.assert_array_equal(keep["feh_APOGEE"], [True, False, True, False])
    np.testing.assert_array_equal(keep["CFE_APOGEE"], [True, False, False, False])
    assert any("'ebv' skipped" in n for n in notes)
    with pytest.raises(dataset.DatasetError, match="not a label of training set APOGEE"):
        apply_cuts(cat, "APOGEE", labels, ({"set": "APOGEE", "column": "snrg", "min": 0, "labels": ["a_gg"]},))

    names = ["a_gg", "a_ks"]
    spec = np.zeros((40, 2))
    phot = np.tile(np.linspace(-0.1, 0.1, 40)[:, None], (1, 2))
    phot[0, 0] = -1.0  # 1 mag brighter in G: a binary
    phot[1, 1] = 1.0  # a 1.5-sigma outlier in Ks only
    phot[2] = [7.0, 2.0]  # an outlier in Ks, but M_G > 6.5: kept
    cfg = CurationConfig(binary_removal=True, binary_mag=0.75, clip_sigma=1.5, clip_keep_mg_above=6.5)
    drop_star, drop_band, _ = lgmwas_outliers(phot, spec, names, cfg)
    assert drop_star.tolist() == [True] + [False] * 39
    r = phot - spec
    ok = ~drop_star
    expect = ok & (np.abs(r[:, 1] - r[ok, 1].mean()) > 1.5 * r[ok, 1].std(ddof=1)) & ~(phot[:, 0] > 6.5)
    np.testing.assert_array_equal(drop_band[:, 1], expect)
    assert drop_band[1, 1] and not drop_band[2, 1]


def test_residual_stats_against_numpy():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=(200, 2))
    pred = truth + rng.normal(0.1, 0.3, size=(200, 2))
    truth[:50, 1] = np.nan
    snr = rng.uniform(5, 100, 200)
    rows = residual_stats(truth, pred, snr, ["p", "q"], (20.0, 50.0))
    by = {(r["label"], r["bin"]): r for r in rows}
    sel = (snr >= 20) & (snr < 50) & np.isfinite(truth[:, 1])
    r = pred[sel, 1] - truth[sel, 1]
    assert by[("q", "20-50")]["n"] == sel.sum()
    np.testing.assert_allclose(by[("q", "20-50")]["bias"], r.mean())
    np.testing.assert_allclose(by[("q", "20-50")]["std"], r.std(ddof=1))
    assert by[("p", "all")]["n"] == 200
    table = markdown_table(rows, {"p": "K"}, ["all"] + snr_bin_names((20.0, 50.0)))
    assert table.splitlines()[0].count("|") == 8 and "| p | K |" in table


def test_catalog_csv_and_obsid_paths(tmp_path):
    (tmp_path / "spectra" / "x").mkdir(parents=True)
    (tmp_path / "spectra" / "x" / "123.fits.gz").write_bytes(b"")
    (tmp_path / "cat.csv").write_text("obsid,Teff_PASTEL\n123,5000\n456,\n")
    cat = read_table(tmp_path / "cat.csv")
    assert cat["obsid"].dtype == np.int64 and np.isnan(cat["Teff_PASTEL"][1])
    paths = catalog_paths(cat, tmp_path)
    assert paths[0] == str(tmp_path.resolve() / "spectra" / "x" / "123.fits.gz") and paths[1] == ""
    with pytest.raises(dataset.DatasetError, match="neither a 'path' nor an 'obsid'"):
        catalog_paths({"Teff_PASTEL": cat["Teff_PASTEL"]}, tmp_path)


def test_cli_trains_from_the_cache_and_reports(survey, runs, tmp_path):
    from click.testing import CliRunner

    from jaxvac.cli import main

    cache = Path(runs[0].checkpoint).parents[2] / "cache"  # the runs fixture's shared cache
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.format(base=CONFIGS / "dr8.toml", cache=cache).replace("max_epochs = 80\npatience = 80",
                                                                               "max_epochs = 2\npatience = 2"))
    res = CliRunner().invoke(main, ["train", "--config", str(cfg), "--data", str(survey), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert "| Teff_PASTEL | K |" in res.output and "checkpoint: " in res.output
    assert (tmp_path / "c" / "checkpoint" / "0" / "params").is_dir()
    bad = CliRunner().invoke(main, ["train", "--config", str(cfg), "--data", str(tmp_path), "--out", str(tmp_path / "d")])
    assert bad.exit_code != 0 and "not found; check [train] catalogs and data_dir" in bad.output


# ----------------------------------------------------------------------------------------------
# Issue 12: the checkpoint's own error model, training ranges and "unlike the training spectra"
# basis; a wild pixel; run_catalog using them. One tiny device step compiled for all of them.


def test_checkpoint_carries_its_error_model_ranges_and_ood_basis(runs, survey):
    from jaxvac.labels import LABELS

    meta = checkpoint.read_metadata(Path(runs[0].checkpoint).parent)
    em = meta["error_model"]
    assert em["kind"] == "checkpoint" and em["source"] == "test catalogue catalogs/test.fits"
    assert set(em["rows"]) <= set(LABEL_NAMES) | {VMP.name} and "Teff_PASTEL" in em["rows"]
    for name, row in em["rows"].items():
        assert row["a"] >= 0 and row["c"] >= 0 and row["sigma_m"] >= 0 and row["n"] >= 2, name
    cal = runs[0].metrics["error_calibration"]
    assert {r["bin"] for r in cal} == {"10-20", "20-50", "50-100", ">100"}
    assert "### Error calibration" in Path(runs[0].report).read_text()
    # how well the held-out stars pin each row down: a star's re-noised copies count as one star
    worst = []
    for name, row in em["rows"].items():
        if "err_rel" not in row:
            continue
        assert len(row["err_snrg"]) == len(row["err_rel"]) == len(row["err_n"]) >= 3, name
        assert all(r > 0 for r in row["err_rel"]) and row["err_snrg"] == sorted(row["err_snrg"]), name
        copies = em["renoised_copies"].get(name, 0)
        assert abs(sum(row["err_n"]) - (row["n"] - copies * 2 / 3)) < 0.1 * len(row["err_n"]), name
        worst.append((max(row["err_rel"]), name))
    assert worst  # the labels with >= 3 snrg bins of [errors] min_pairs_per_bin stars (the tiny survey: a few)
    text = Path(runs[0].report).read_text()
    assert "| Err known to (1 sigma) |" in text and "Err known to: the relative standard error" in text
    loose = [w for w in runs[0].warnings if w.startswith("Err_ of ")]
    if max(worst)[0] > 0.10:  # [errors] heldout_warn_rel: the loosest label is named first
        assert len(loose) == 1 and f"{max(worst)[1]} +-" in loose[0].split(": ", 1)[1].split(",")[0]
    else:
        assert not loose
    # flag ranges: the [0.5, 99.5] percentiles of the curated training labels, inside their min-max
    ranges = meta["training_ranges"]
    assert ranges["percentile"] == 0.5
    for set_name, path in (("PASTEL", "train_pastel.fits"), ("APOGEE", "train_apogee.fits")):
        cat = read_table(survey / "catalogs" / path)
        for lab in (l for l in LABELS if l.training_set == set_name):
            v = np.asarray(cat[lab.name], float)
            v = v[np.isfinite(v)]
            lo, hi = ranges["labels"][lab.name]
            assert v.min() <= lo < hi <= v.max(), lab.name
            assert 0.95 < np.mean((v >= lo) & (v <= hi)) < 1.0, lab.name  # ~1% of the training labels outside
    ood = meta["ood"]
    assert ood["components"] == 16 and ood["threshold"] > 0 and 0 <= ood["test_flagged_fraction"] <= 0.05
    # the sparseness guard of each set (dr8.toml's guard_labels): its points are the set's curated training stars
    guard = meta["guard"]
    assert sorted(guard) == ["APOGEE", "LGMWAS"]
    for set_name, g in guard.items():
        own = [n for n in g["labels"] if n in (lab.name for lab in LABELS if lab.training_set == set_name)]
        trained = min(runs[0].metrics["n_train"][n] for n in own)  # every own guard label trained on each point
        assert g["n_points"] == g["n_members"] <= trained and g["n_members"] >= 0.8 * trained, set_name
        assert g["radius"] > 0 and g["neighbours"] == 5 and 0 <= g.get("test_flagged_fraction", 0) <= 0.2, set_name
    assert "## Where each set's training stars are sparse (flag bit 2)" in text
    pred = checkpoint.load(Path(runs[0].checkpoint).parent)
    basis = np.asarray(pred.params["ood"]["basis"])
    np.testing.assert_allclose(basis @ basis.T, np.eye(16), atol=1e-5)  # orthonormal principal axes


def test_a_new_step_keeps_the_guard(runs, tmp_path):
    """update_metadata (calibrate-errors --into) saves the guard's points again, bit for bit."""
    import shutil

    ck = tmp_path / "checkpoint"
    shutil.copytree(Path(runs[0].checkpoint).parent, ck)
    before = checkpoint.load(ck).params["guard"]
    checkpoint.update_metadata(ck, {"curation_notes": ["a new step"]})
    after = checkpoint.load(ck)
    assert after.metadata["curation_notes"] == ["a new step"] and sorted(after.params["guard"]) == sorted(before)
    for name, g in before.items():
        for key, a in g.items():
            np.testing.assert_array_equal(np.asarray(after.params["guard"][name][key]), np.asarray(a), err_msg=f"{name} {key}")


@pytest.fixture(scope="module")
def trained(runs, survey):
    """The first run's predictor, its error model, 32 test spectra with snrg > 20, and a device step."""
    from jaxvac.io.lamost import read_spectrum
    from jaxvac.preprocess import LAYOUT
    from jaxvac.run.device import Device
    from jaxvac.run.uncertainties import run_error_model

    pred = checkpoint.load(Path(runs[0].checkpoint).parent)
    errors, kind = run_error_model(load_config("dr8"), pred.metadata)
    cat = read_table(survey / "catalogs" / "test.fits")
    rows = np.flatnonzero(np.asarray(cat["snrg"]) > 20)[:32]
    specs = [read_spectrum(survey / str(cat["path"][i])) for i in rows]
    batch = tuple(np.stack([getattr(s, k) for s in specs]) for k in ("flux", "ivar", "good"))
    meta = {k: np.array([s.meta[k] for s in specs], np.float32) for k in ("rv", "snrg")}
    return pred, errors, kind, batch, meta, Device(pred, "none", len(rows), LAYOUT)


def test_a_wild_pixel_moves_no_label_by_more_than_its_err(trained):
    from jaxvac.preprocess import LAYOUT, STATUS_INPUT_MASKED
    from jaxvac.run.device import Device

    pred, errors, _, (flux, ivar, good), meta, device = trained
    # the wild pixel sits where the training spectra vary least (the worst place for a 0), in window 1
    j = LAYOUT.windows[0][0] + int(np.argmin(pred.x_std[: LAYOUT.window_sizes[0]]))
    run = lambda d, f: d.fetch(d.dispatch(f, ivar, good, meta["rv"], meta["snrg"]))  # noqa: E731
    y0, *_ = run(device, flux)
    err = errors.sigma(meta["snrg"], None, y0)  # (B, 23): the checkpoint's own Err of each clean estimate
    for value in (1e30, 0.0):
        wild = flux.copy()
        wild[:, j] = value
        y, _, _, status, _ = run(device, wild)
        said = (status & STATUS_INPUT_MASKED) != 0
        assert np.all(said | ~good[:, j]) and said.sum() >= len(flux) // 2, value  # masked, and said so
        moved = np.abs(y - y0) / err
        assert np.all(moved < 1.0), f"pixel {j} = {value:g}: max |change| / Err = {np.nanmax(moved):.2f}"
    # without the input-range mask the same 1e30 pixel drives the networks far off (the test can fail)
    open_layout = LAYOUT._replace(norm_flux_min=-3e38, norm_flux_max=3e38, max_abs_standardized=3e38)
    wild = flux.copy()
    wild[:, j] = 1e30
    y_open, *_ = run(Device(pred, "none", len(flux), open_layout), wild)
    assert not np.all(np.abs(y_open - y0) / err < 1.0)


def test_ood_score_flags_real_spectra_not_simulated_ones(trained, lamost_dir):
    from jaxvac.io.inputs import resolve_inputs
    from jaxvac.io.lamost import read_spectrum

    pred, _, _, (flux, ivar, good), meta, device = trained
    threshold = pred.metadata["ood"]["threshold"]
    sim = device.fetch(device.dispatch(flux, ivar, good, meta["rv"], meta["snrg"]))[-1]["ood"]
    assert np.mean(sim > threshold) <= 0.1  # simulated test spectra: like the training ones
    real = [s for s in (read_spectrum(p) for p in resolve_inputs(lamost_dir)) if hasattr(s, "flux")]
    real = [s for s in real if s.meta["class"] == "STAR" and s.meta["snrg"] > 10][: len(flux)]
    n = len(real)
    pad = lambda a: np.concatenate([a, np.repeat(a[:1], len(flux) - n, 0)])  # noqa: E731  same batch shape
    arrays = [pad(np.stack([getattr(s, k) for s in real])) for k in ("flux", "ivar", "good")]
    rv, snrg = (pad(np.array([s.meta[k] for s in real], np.float32)) for k in ("rv", "snrg"))
    score = device.fetch(device.dispatch(*arrays, rv, snrg))[-1]["ood"]
    # real LAMOST spectra are unlike the simulated training set. This tiny model's threshold is near the largest
    # of its ~300 training scores; bench/eval_accuracy.py-sized training flags 16 of these 17 (docs/errors.md)
    assert np.median(score[:n]) > 3 * np.median(sim), (np.median(score[:n]), np.median(sim))
    assert np.mean(score[:n] > threshold) >= 0.4, np.round(score[:n] / threshold, 2)


def test_run_catalog_uses_the_checkpoints_error_model_and_ranges(runs, survey, trained, tmp_path):
    import fitsio

    from jaxvac.run.catalog import read_catalog
    from jaxvac.run.loop import run_catalog
    from jaxvac.run.uncertainties import range_flags

    pred, errors, kind, *_ = trained
    cat = read_table(survey / "catalogs" / "test.fits")
    paths = [str(survey / str(p)) for p in cat["path"][:40]]
    out = tmp_path / "cat.fits"
    run_catalog(Path(runs[0].checkpoint).parent, paths, out, config="dr8", batch_size=32, workers=0,
                parallel="none", progress=False)
    rows, _ = read_catalog(out)
    assert fitsio.read_header(out, "CATALOG")["ERRMODEL"] == kind and kind.startswith("checkpoint:")
    snrg = rows["snrg"].astype(np.float64)
    want = errors.sigma(snrg, ["Teff_PASTEL"], rows["Teff_PASTEL"].astype(np.float64)[:, None])[:, 0]
    np.testing.assert_allclose(rows["Err_Teff_PASTEL"], want, rtol=1e-6)  # with the row's value factors, if any
    rng = pred.metadata["training_ranges"]["labels"]
    np.testing.assert_array_equal(rows["flag_logg_PASTEL"] & 1, range_flags(rows["logg_PASTEL"], tuple(rng["logg_PASTEL"])))
    assert np.all(np.isfinite(rows["ood_score"])) and set(np.unique(rows["qflag"])) <= {0, 1, 2, 3}
    # flag bit 2: the checkpoint's sparseness guard on the catalogue's own estimates, for every label of the set
    import jax.numpy as jnp

    from jaxvac.kernels.neighbours import sparse_rows

    y = np.stack([rows[n].astype(np.float32) for n in pred.schema.names], axis=1)
    sparse = sparse_rows(jnp.asarray(y), pred.params["guard"])
    assert sorted(sparse) == ["APOGEE", "LGMWAS"]
    for set_name, want in sparse.items():
        for k in pred.schema.of_set(set_name):
            name = pred.schema.names[k]
            np.testing.assert_array_equal((rows[f"flag_{name}"] & 2) != 0, np.asarray(want), err_msg=name)


def test_renoise_adds_the_noise_of_the_drawn_snr():
    from jaxvac.train.fit import renoise

    b, d = 4000, 50
    x = np.ones((b, d), np.float32)
    x[:, 0] = 0.0  # a bad pixel stays 0
    own = np.where(np.arange(b) % 2 == 0, 200.0, 5.0).astype(np.float32)  # the odd ones are noisier than any target
    std = np.linspace(0.02, 0.1, d).astype(np.float32)
    key = jax.random.key(1)
    out = np.asarray(jax.jit(renoise, static_argnums=4)(key, x, own, std, (20.0, 20.0)))
    assert np.all(out[:, 0] == 0) and np.array_equal(out[1::2], x[1::2])
    want = np.sqrt(1 / 20.0**2 - 1 / 200.0**2) / std[1:]  # per pixel, in standardised units
    got = (out[::2, 1:] - 1).std(axis=0, ddof=1)
    np.testing.assert_allclose(got, want, rtol=0.06)  # 2000 draws: 1.6% standard error
    again = np.asarray(jax.jit(renoise, static_argnums=4)(jax.random.key(2), x, own, std, (20.0, 20.0)))
    assert not np.array_equal(again, out)  # another epoch's key: fresh noise


def test_without_a_test_catalogue_the_error_model_comes_from_the_validation_stars(survey, runs, tmp_path):
    cache = Path(runs[0].checkpoint).parents[2] / "cache"  # the runs fixture's shared cache: no FITS read
    cfg_path = tmp_path / "noval.toml"
    cfg_path.write_text(TINY.format(base=CONFIGS / "dr8.toml", cache=cache).replace(
        "max_epochs = 80\npatience = 80", 'max_epochs = 3\npatience = 3\ntest_catalog = ""'))
    res = train_from_config(load_config(cfg_path), data_dir=str(survey), out_dir=str(tmp_path / "r"), progress=False)
    em = checkpoint.read_metadata(Path(res.checkpoint).parent)["error_model"]
    assert em["source"] == "validation stars" and "test" not in res.metrics
    n_val = res.metrics["n_val"]
    for name in ("Teff_PASTEL", "feh_APOGEE", VMP.name):  # one row per label, from its validation stars
        copies = em["renoised_copies"].get(name, 0)  # re-noised copies of validation stars join the fit
        assert copies % 3 == 0, name  # [errors] heldout_renoise_copies of each star above snrg 20
        assert name in em["rows"] and em["rows"][name]["n"] <= n_val[name] + copies, name
