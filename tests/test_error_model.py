"""Issue 12: the checkpoint's own error model, training-range flags, the input-range mask and the
"unlike the training spectra" score: the maths against known answers and independent NumPy
references. The trained-model checks (wild pixels, run_catalog) are in tests/test_train.py."""

from __future__ import annotations

import numpy as np
import pytest

from jaxvac.config import ConfigError, load_config
from jaxvac.labels import LABEL_NAMES, LABELS, PAPER, VMP
from jaxvac.run.rows import QFLAG_INPUT_MASKED, QFLAG_OOD, quality_flags
from jaxvac.run.uncertainties import ErrorModel, ErrorsConfig, default_ranges, run_error_model, run_ranges
from jaxvac.train.calibrate import fit_total_error, heldout_error_rows
from jaxvac.train.evaluate import calibration_markdown, error_calibration


def _total(snr, a, b, c, sm):
    return np.hypot(a + c / snr**b, sm)


def test_fit_total_error_recovers_an_exact_curve():
    snr = np.geomspace(12, 350, 10)
    for a, b, c, sm in ((0.03, 1.1, 2.5, 0.05), (0.0, 1.3, 4.0, 0.0), (0.1, 0.8, 1.0, 0.0)):
        y = _total(snr, a, b, c, sm)
        fit = fit_total_error(snr, y, 0.01 * y)
        np.testing.assert_allclose(fit(snr), y, rtol=2e-3)
        np.testing.assert_allclose(fit(np.array([1000.0])), _total(1000.0, a, b, c, sm), rtol=0.05)
        assert fit.dof == 6 and fit.chi2 < 0.1
    three = fit_total_error(snr[:3], _total(snr[:3], 0.03, 1.1, 2.5, 0.0), np.full(3, 1e-3))
    assert three.sigma_m == 0.0 and three.dof == 0  # three points fix a, b, c only


@pytest.fixture(scope="module")
def heldout():
    """Residuals of 4,000 stars drawn with a known sigma(snr) for two labels, 30 stars for a third."""
    rng = np.random.default_rng(12)
    snr = np.exp(rng.uniform(np.log(10), np.log(500), 4000))
    truth = {"Teff_PASTEL": (20.0, 1.2, 3000.0, 60.0), "feh_APOGEE": (0.02, 1.0, 1.5, 0.03)}
    res = {n: _total(snr, *p) * rng.normal(size=snr.size) for n, p in truth.items()}
    few = np.full(snr.size, np.nan)
    few[:30] = rng.normal(0, 0.2, 30)
    res["a_gg"] = few
    res["logg_PASTEL"] = np.full(snr.size, np.nan)
    return snr, res, truth


def test_heldout_rows_describe_the_scatter_that_made_them(heldout):
    snr, res, truth = heldout
    rows = heldout_error_rows(snr, res, ErrorsConfig())
    assert set(rows) == {"Teff_PASTEL", "feh_APOGEE", "a_gg"}  # logg_PASTEL: no residual, no row
    for name, p in truth.items():
        assert rows[name]["status"].startswith("fit (8 bins") and rows[name]["n"] == 4000
        r = rows[name]
        grid = np.geomspace(12, 450, 20)
        np.testing.assert_allclose(_total(grid, r["a"], r["b"], r["c"], r["sigma_m"]), _total(grid, *p), rtol=0.12,
                                   err_msg=name)
    assert rows["a_gg"]["status"].startswith("constant") and rows["a_gg"]["b"] == 0 and rows["a_gg"]["c"] == 0
    assert rows["a_gg"]["a"] == pytest.approx(np.std(res["a_gg"][:30], ddof=1))


def test_error_calibration_against_numpy(heldout):
    snr, res, truth = heldout
    names = list(truth)
    resid = np.stack([res[n] for n in names], 1)
    err = np.stack([_total(snr, *truth[n]) for n in names], 1)
    rows = error_calibration(resid, err, snr, names, [10, 20, 50, 100])
    assert [r["bin"] for r in rows[:4]] == ["10-20", "20-50", "50-100", ">100"]
    for r in rows:
        k = names.index(r["label"])
        lo, hi = {"10-20": (10, 20), "20-50": (20, 50), "50-100": (50, 100), ">100": (100, np.inf)}[r["bin"]]
        z = (resid[:, k] / err[:, k])[(snr >= lo) & (snr < hi)]
        assert r["n"] == z.size and r["z_std"] == pytest.approx(np.std(z, ddof=1), rel=1e-12)
        assert 0.85 < r["z_std"] < 1.15  # the true sigma is calibrated
        assert r["tail3"] == pytest.approx(np.mean(np.abs(z) > 3), abs=0)
        # the bootstrap 16-84 % band brackets the estimate; its half-width is about the Gaussian
        # standard error of a standard deviation, z_std / sqrt(2 (n - 1))
        assert r["z_std_lo"] < r["z_std"] < r["z_std_hi"]
        se = r["z_std"] / np.sqrt(2 * (z.size - 1))
        assert 0.5 * se < (r["z_std_hi"] - r["z_std_lo"]) / 2 < 2.0 * se
    assert "| Teff_PASTEL | " in calibration_markdown(rows)


def test_error_calibration_small_cell_band():
    """A bin of 5 stars: the band is wide (chance alone moves std(z) by ~0.3), a bin of 1 is NaN."""
    z = np.array([0.5, -1.0, 2.0, -0.3, 0.8, 1.0])
    snr = np.array([15.0, 15, 15, 15, 15, 60])
    rows = error_calibration(z[:, None], np.ones((6, 1)), snr, ["x"], [10, 20, 50, 100])
    r = {row["bin"]: row for row in rows}
    assert r["10-20"]["z_std"] == pytest.approx(np.std(z[:5], ddof=1))
    assert r["10-20"]["z_std_hi"] - r["10-20"]["z_std_lo"] > 0.4
    assert r["10-20"]["tail3"] == 0.0
    assert r["50-100"]["n"] == 1 and np.isnan(r["50-100"]["z_std"]) and np.isnan(r["50-100"]["z_std_lo"])
    assert "| x | 1.14 [" in calibration_markdown(rows)  # std of the five, ddof 1


def _meta_rows():
    return {"Teff_PASTEL": {"a": 50.0, "b": 1.0, "c": 2000.0, "sigma_m": 40.0, "scale": 1.0, "n": 10, "status": "fit"},
            "feh_VMP": {"a": 0.1, "b": 1.0, "c": 1.0, "sigma_m": 0.1, "scale": 1.0}}


def test_from_rows_takes_missing_rows_from_the_fallback_and_digests_change_with_numbers():
    cfg_model = ErrorModel.default()
    m = ErrorModel.from_rows(_meta_rows(), 0.2, "test", fallback=cfg_model)
    assert m.names == tuple(LABEL_NAMES) + (VMP.name,)
    assert m.sigma(np.array([40.0]), ["Teff_PASTEL"])[0, 0] == pytest.approx(np.hypot(50 + 2000 / 40, 40))
    assert m.row("a_gg") == cfg_model.row("a_gg")
    again = ErrorModel.from_rows(m.to_rows(), 0.2)
    assert again.digest() == m.digest() and len(m.digest()) == 16
    other = _meta_rows()
    other["Teff_PASTEL"]["a"] = 51.0
    assert ErrorModel.from_rows(other, 0.2, fallback=cfg_model).digest() != m.digest()
    with pytest.raises(ConfigError, match=r"lacks rows for \['logg_PASTEL'"):
        ErrorModel.from_rows(_meta_rows(), 0.2, "ckpt")
    with pytest.raises(ConfigError, match=r"In ckpt: error model Teff_PASTEL.a must be a finite number >= 0"):
        ErrorModel.from_rows({"Teff_PASTEL": {"a": -1, "b": 1, "c": 1, "sigma_m": 1}}, 0.2, "ckpt", fallback=cfg_model)


def _config(tmp_path, source):
    p = tmp_path / f"{source}.toml"
    p.write_text(f'base = "{load_config("dr8.toml")["_source"][-1]}"\n[errors]\nsource = "{source}"\n')
    return load_config(p)


def test_run_error_model_and_ranges_follow_errors_source(tmp_path):
    meta = {"error_model": {"kind": "checkpoint", "rows": _meta_rows(), "feh_vmp_sigma": 0.2},
            "training_ranges": {"labels": {"Teff_PASTEL": [4000.0, 7000.0]}, VMP.name: [-3.0, -1.2]}}
    ck = _config(tmp_path, "checkpoint")
    model, kind = run_error_model(ck, meta)
    assert kind == f"checkpoint:{model.digest()}" and model.row("Teff_PASTEL").a == 50.0
    cfg_model, cfg_kind = run_error_model(_config(tmp_path, "config"), meta)
    assert cfg_kind.startswith("config:") and cfg_model.row("Teff_PASTEL").a == 0.21  # Table 2
    assert run_error_model(ck, {})[1] == cfg_kind  # a checkpoint without a model: the config's
    meta_rep = {"error_model": {**meta["error_model"], "kind": "repeats"}}
    assert run_error_model(ck, meta_rep)[1].startswith("repeats:")
    rng, vmp, kind = run_ranges(ck, meta)
    assert kind == "checkpoint" and tuple(rng[0]) == (4000.0, 7000.0) and vmp == (-3.0, -1.2)
    np.testing.assert_array_equal(rng[1:], default_ranges()[1:])  # labels without a record: Table 1
    rng, vmp, kind = run_ranges(_config(tmp_path, "config"), meta)
    assert kind == "config" and tuple(rng[0]) == (LABELS[0].lo, LABELS[0].hi) and vmp == (VMP.lo, VMP.hi)
    bad = tmp_path / "bad.toml"
    bad.write_text(f'base = "{load_config("dr8.toml")["_source"][-1]}"\n[errors]\nsource = "table2"\n')
    with pytest.raises(ConfigError, match=r"source must be one of \['checkpoint', 'config'\], got 'table2'"):
        run_error_model(load_config(bad), meta)


def test_quality_flags_bits():
    ood = np.array([0.5, 3.0, np.nan, 2.0])
    q = quality_flags(4, ood, 2.0, np.array([False, True, False, False]))
    np.testing.assert_array_equal(q, [0, QFLAG_OOD | QFLAG_INPUT_MASKED, QFLAG_OOD, 0])
    assert q.dtype == np.uint8
    np.testing.assert_array_equal(quality_flags(2), [0, 0])  # no score, no mask: nothing set


def test_input_mask_and_pca_score_against_numpy():
    import jax

    from jaxvac.kernels.ood import pca_residual_score
    from jaxvac.kernels.standardize import input_mask

    rng = np.random.default_rng(4)
    b, p, k = 6, 50, 4
    mean = rng.uniform(0.6, 1.0, p).astype(np.float32)
    std = rng.uniform(0.02, 0.1, p).astype(np.float32)
    norm = (mean + std * rng.normal(size=(b, p))).astype(np.float32)
    norm[0, 3], norm[1, 4], norm[2, 5], norm[3, 6] = 1e30, -0.7, mean[5] - 11 * std[5], mean[6] + 9 * std[6]
    good = rng.random((b, p)) > 0.1
    good[:4, 3:7] = True
    got = np.asarray(jax.jit(lambda n, g, m, s: input_mask(n, g, m, s, flux_min=-0.5, flux_max=3.0, max_abs=10.0))(
        norm, good, mean, std))
    n64 = norm.astype(np.float64)
    want = good & (n64 >= -0.5) & (n64 <= 3.0) & (np.abs(n64 - mean) <= 10.0 * std.astype(np.float64))
    np.testing.assert_array_equal(got, want)
    assert not got[0, 3] and not got[1, 4] and not got[2, 5] and got[3, 6]
    no_stats = np.asarray(input_mask(norm, good, None, None, flux_min=-0.5, flux_max=3.0, max_abs=10.0))
    assert no_stats[2, 5] and not no_stats[0, 3]  # without statistics only the physical range

    x = np.where(got, (norm - mean) / std, 0).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(p, k)))
    basis = q.T.astype(np.float32)
    snrg = np.array([20.0, 50.0, 100.0, np.nan, -9999.0, 300.0], np.float32)
    score = np.asarray(jax.jit(pca_residual_score)(x, got, basis, std, snrg, np.float32(0.1)))
    x64, v64 = x.astype(np.float64), basis.astype(np.float64)
    r = x64 - (x64 @ v64.T) @ v64
    var = 0.1**2 + 1.0 / (snrg.astype(np.float64)[:, None] * std.astype(np.float64)) ** 2
    want = (np.where(got, r**2 / var, 0).sum(1) / got.sum(1))
    np.testing.assert_allclose(score[[0, 1, 2, 5]], want[[0, 1, 2, 5]], rtol=1e-5)
    assert np.isnan(score[3]) and np.isnan(score[4])  # no usable snrg: no score
    inside = (basis.T @ rng.normal(size=(k, 1))).T.astype(np.float32)  # a spectrum in the span scores 0
    assert float(pca_residual_score(inside, np.ones((1, p), bool), basis, std, np.float32([50]), 0.1)[0]) < 1e-8


def test_a_rising_curve_is_fitted_and_held_flat_beyond_the_data():
    rng = np.random.default_rng(8)
    snr = np.exp(rng.uniform(np.log(10), np.log(300), 6000))
    sigma = 0.1 * (snr / 10) ** 0.4  # residuals that grow with snrg (the bright stars are the hard ones)
    rows = heldout_error_rows(snr, {"a_gg": sigma * rng.normal(size=snr.size)}, ErrorsConfig())
    r = rows["a_gg"]
    assert r["b"] < 0 and r["snr_max"] < 300
    model = ErrorModel.from_rows(rows, 0.2, fallback=ErrorModel.default())
    grid = np.array([15.0, 50.0, 150.0])
    np.testing.assert_allclose(model.sigma(grid, ["a_gg"])[:, 0], 0.1 * (grid / 10) ** 0.4, rtol=0.1)
    at_max = model.sigma(np.array([r["snr_max"]]), ["a_gg"])[0, 0]
    assert model.sigma(np.array([5000.0]), ["a_gg"])[0, 0] == pytest.approx(at_max)  # not extrapolated
    back = ErrorModel.from_rows({"a_gg": {**model.to_rows()["a_gg"]}}, 0.2, fallback=ErrorModel.default())
    assert back.row("a_gg") == model.row("a_gg")
    assert "snr_max" not in ErrorModel.default().to_rows()["Teff_PASTEL"]  # Table 2 rows are not clipped


def test_calibrate_errors_into_a_checkpoint(tmp_path):
    from astropy.table import Table
    from click.testing import CliRunner

    from jaxvac.cli import main
    from jaxvac.model import N_INPUT, N_VMP_INPUT, init_stack
    from jaxvac.train import checkpoint
    from jaxvac.train.calibrate_job import run_calibration

    m = len(LABEL_NAMES)
    params = {"ensemble": init_stack(0, N_INPUT, (4,), m), "vmp": init_stack(1, N_VMP_INPUT, (3,), 1)}
    st = {"x_mean": np.ones(N_INPUT, np.float32), "x_std": np.full(N_INPUT, 0.1, np.float32),
          "y_mean": np.zeros(m, np.float32), "y_std": np.ones(m, np.float32), "vmp_mean": np.float32(-2), "vmp_std": np.float32(1)}
    heldout = {"kind": "checkpoint", "rows": _meta_rows(), "feh_vmp_sigma": 0.2}
    meta = {**PAPER.to_metadata(), "model": {"hidden": [4], "vmp_hidden": [3]}, "standardization": st,
            "error_model": heldout}
    ck = tmp_path / "checkpoint"
    checkpoint.save(ck, params, meta)
    # repeats with the noise of Table 2's a_gg row and Teff sigma_r = 100 (0.5 + 30 / snr)
    rng = np.random.default_rng(3)
    n = 6000
    snr = np.exp(rng.uniform(np.log(10), np.log(400), n))
    snr = np.concatenate([snr, snr * 1.02])
    sig_t = 100 * (0.5 + 30 / snr)
    sig_g = ErrorModel.default().random(snr, ["a_gg"])[:, 0]
    Table({"star_id": np.tile(np.arange(n), 2), "snrg": snr, "Teff_PASTEL": 5000 + sig_t * rng.normal(size=2 * n),
           "a_gg": 4 + sig_g * rng.normal(size=2 * n)}).write(tmp_path / "rep.fits")
    cal, paths = run_calibration(tmp_path / "rep.fits", tmp_path / "out", "dr8", into=ck)
    assert paths[-1].endswith("/1")  # a new step; the networks are unchanged
    rec = checkpoint.read_metadata(ck)["error_model"]
    assert rec["kind"] == "repeats" and rec["replaces"]["kind"] == "checkpoint" and set(rec["fitted"]) == {"Teff_PASTEL", "a_gg"}
    t = rec["rows"]["Teff_PASTEL"]
    assert t["scale"] == 100 and t["sigma_m"] == 40.0  # sigma_m kept from the checkpoint's held-out model
    np.testing.assert_allclose(100 * (t["a"] + t["c"] / np.array([20.0, 200.0]) ** t["b"]), 100 * (0.5 + 30 / np.array([20.0, 200.0])),
                               rtol=0.1)
    assert rec["rows"]["a_gg"]["sigma_m"] == ErrorModel.default().row("a_gg").sigma_m  # no held-out row: the config's
    model, kind = run_error_model(load_config("dr8"), checkpoint.read_metadata(ck))
    assert kind == f"repeats:{rec['digest']}" and model.row("Teff_PASTEL").scale == 100
    pred = checkpoint.load(ck)
    np.testing.assert_array_equal(np.asarray(pred.params["ensemble"]["w"][0]), np.asarray(params["ensemble"]["w"][0]))
    res = CliRunner().invoke(main, ["calibrate-errors", str(tmp_path / "rep.fits"), "--out", str(tmp_path / "o2"),
                                    "--into", str(ck)])
    assert res.exit_code == 0, res.output
    assert checkpoint.read_metadata(ck)["error_model"]["replaces"]["kind"] == "repeats"


def test_renoised_copies_fill_a_sparse_low_snr_bin():
    """Labels with few held-out stars at snrg 10-20 get 3 copies of each of their stars above 20
    (below top: 1e4 by default, 50 here second), re-noised to 10-20 with the pixel noise
    sqrt(1/t**2 - 1/s**2) / x_std; a label with enough stars there gets none."""
    from jaxvac.run.uncertainties import ErrorsConfig
    from jaxvac.train.job import _renoised_copies

    rng = np.random.default_rng(0)
    n, d = 400, 2000
    snr = np.concatenate([np.full(250, 15.0), np.full(100, 40.0), np.full(50, 80.0)])
    truth = rng.normal(size=(n, 2))
    truth[:245, 1] = np.nan  # label 1: 5 stars at 10-20, 100 at 20-50; label 0: 250 at 10-20
    x = np.zeros((n, d), np.float32) + 1.0
    x_std = np.full(d, 0.5, np.float32)
    seen = {}

    def predict(xx):
        seen["x"] = xx
        return np.stack([xx.mean(1), xx.std(1)], 1)

    t, p, s, src = _renoised_copies(x, truth, snr, predict, ErrorsConfig(), x_std, seed=1)
    assert np.array_equal(src, np.repeat(np.arange(250, 400), 3))  # every star above 20, 3 copies each
    assert np.all((s >= 10) & (s < 20))
    assert np.all(np.isnan(t[:, 0])) and np.array_equal(t[:, 1], truth[src, 1])
    want = np.sqrt(1 / s**2 - 1 / snr[src] ** 2) / 0.5  # the added noise's std per pixel, standardised units
    np.testing.assert_allclose(p[:, 1], want, rtol=0.08)
    to50 = ErrorsConfig(heldout_renoise=(10.0, 20.0, 50.0))
    assert np.array_equal(_renoised_copies(x, truth, snr, predict, to50, x_std, seed=1)[3], np.repeat(np.arange(250, 350), 3))
    few = ErrorsConfig(heldout_renoise_min=5)  # 5 stars at 10-20 are enough now: no copies
    assert _renoised_copies(x, truth, snr, predict, few, x_std, seed=1) is None


def test_catalogue_residuals_match_obsid_and_pool():
    """Catalogue rows are matched to the truth by obsid; each label is scored on its own pool."""
    from jaxvac.labels import PAPER
    from jaxvac.train.evaluate import catalogue_residuals

    dt = [("obsid", "i8"), ("snrg", "f4"), ("Teff_PASTEL", "f4"), ("Err_Teff_PASTEL", "f4"),
          ("feh_APOGEE", "f4"), ("Err_feh_APOGEE", "f4")]
    rows = np.array([(3, 30, 5000, 100, -0.5, 0.05), (1, 15, 6000, 200, 0.1, 0.1),
                     (2, 60, 4500, 80, -1.0, 0.04), (99, 40, 5500, 90, 0.0, 0.05)], dt)
    test = {"obsid": np.array([1, 2, 3]), "in_pastel": np.array([True, False, True]),
            "in_apogee": np.array([True, True, False]), "Teff_PASTEL": np.array([5900.0, 4600, 5100]),
            "feh_APOGEE": np.array([0.0, -0.9, -0.4])}
    resid, err, snr, names = catalogue_residuals(rows, test, PAPER)
    k, j = names.index("Teff_PASTEL"), names.index("feh_APOGEE")
    np.testing.assert_allclose(resid[:, k], [-100, 100, np.nan, np.nan])  # obsid 2 not in the PASTEL pool, 99 unknown
    np.testing.assert_allclose(resid[:, j], [np.nan, 0.1, -0.1, np.nan], atol=1e-6)
    np.testing.assert_allclose(err[:, k], [100, 200, 80, 90])
    np.testing.assert_allclose(snr, [30, 15, 60, 40])
    assert np.isnan(resid[:, names.index("logg_PASTEL")]).all()  # a label the catalogue lacks


def test_value_factors_multiply_the_error_of_the_estimates_bin():
    from jaxvac.run.uncertainties import label_errors

    row = {"a": 0.1, "b": 1.0, "c": 2.0, "sigma_m": 0.0, "value_edges": [-1.0, 0.0], "value_factors": [2.0, 1.0, 0.5]}
    m = ErrorModel.from_rows({"feh_APOGEE": row}, 0.1, names=["feh_APOGEE"], vmp=None)
    snr = np.array([20.0, 20.0, 20.0, 20.0, 40.0])
    est = np.array([[-1.5], [-1.0], [0.3], [np.nan], [-0.5]])  # an edge belongs to the bin above it
    base = 0.1 + 2.0 / snr
    np.testing.assert_allclose(m.sigma(snr, ["feh_APOGEE"], est)[:, 0], base * [2.0, 1.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(m.sigma(snr, ["feh_APOGEE"])[:, 0], base)  # no estimates: no factors
    np.testing.assert_allclose(label_errors(est, snr, m, ["feh_APOGEE"])[:, 0], base * [2.0, 1.0, 0.5, np.nan, 1.0])
    back = m.to_rows()["feh_APOGEE"]
    assert back["value_edges"] == [-1.0, 0.0] and back["value_factors"] == [2.0, 1.0, 0.5]
    plain = ErrorModel.from_rows({"feh_APOGEE": {"a": 0.1, "b": 1.0, "c": 2.0, "sigma_m": 0.0}}, 0.1,
                                 names=["feh_APOGEE"], vmp=None)
    assert plain.digest() != m.digest()  # the factors are part of the model's identity (ERRMODEL, resume)
    plain_row = {"a": 0.1, "b": 1.0, "c": 2.0, "sigma_m": 0.0}
    for bad in ({"value_edges": [0.0, -1.0], "value_factors": [1, 1, 1]},  # edges not increasing
                {"value_edges": [0.0], "value_factors": [1.0]},  # one factor too few
                {"value_edges": [0.0], "value_factors": [1.0, 0.0]},  # a factor of 0
                {"value_factors": [1.0, 2.0]}):  # factors without edges
        with pytest.raises(ConfigError, match="value_edges / value_factors"):
            ErrorModel.from_rows({"feh_APOGEE": plain_row | bad}, 0.1, names=["feh_APOGEE"], vmp=None)


def test_value_factors_of_two_snrg_ranges_pick_the_range_of_snrg():
    row = {"a": 0.1, "b": 0.0, "c": 0.0, "sigma_m": 0.0, "value_edges": [0.0], "value_snr_edges": [20.0],
           "value_factors": [[1.5, 1.0], [0.5, 2.0]]}
    m = ErrorModel.from_rows({"a_gg": row}, 0.1, names=["a_gg"], vmp=None)
    snr = np.array([15.0, 15.0, 20.0, 80.0, np.nan])  # snrg 20 belongs to the range above it
    est = np.array([[-1.0], [1.0], [-1.0], [1.0], [1.0]])
    np.testing.assert_allclose(m.sigma(snr, ["a_gg"], est)[:4, 0], 0.1 * np.array([1.5, 1.0, 0.5, 2.0]))
    with pytest.raises(ValueError, match="pass snrg"):
        m.row("a_gg").factor(est[:, 0])
    back = m.to_rows()["a_gg"]
    assert back["value_factors"] == [[1.5, 1.0], [0.5, 2.0]] and back["value_snr_edges"] == [20.0]
    assert ErrorModel.from_rows({"a_gg": back}, 0.1, names=["a_gg"], vmp=None).digest() == m.digest()
    one = {k: v for k, v in row.items() if k != "value_snr_edges"} | {"value_factors": [0.5, 2.0]}
    assert ErrorModel.from_rows({"a_gg": one}, 0.1, names=["a_gg"], vmp=None).digest() != m.digest()
    for bad in ({"value_factors": [[1.5, 1.0]]},  # one list for two ranges
                {"value_factors": [[1.5, 1.0], [0.5]]},  # a list one factor short
                {"value_snr_edges": [0.0]},  # a range edge at snrg 0
                {"value_factors": [1.5, 1.0]}):  # flat factors with ranges
        with pytest.raises(ConfigError, match="value_edges / value_factors"):
            ErrorModel.from_rows({"a_gg": row | bad}, 0.1, names=["a_gg"], vmp=None)
    with pytest.raises(ConfigError, match="value_snr_edges comes only with"):
        ErrorModel.from_rows({"a_gg": {"a": 0.1, "b": 0.0, "c": 0.0, "sigma_m": 0.0, "value_snr_edges": [20.0]}}, 0.1,
                             names=["a_gg"], vmp=None)


def test_heldout_value_factors_below_the_copies_range_are_fitted_apart():
    """Known answer: above snrg 20 the error is 0.5 / 1 / 2 x the curve over thirds of the
    estimate, below it 1 / 1 / 1 (at low snrg the estimate no longer tells the kinds of star apart,
    as a giant's spectrum passes for a dwarf's). The fit gives each range its own factors and
    std(z) = 1 +- 8 % in all six cells; one list of factors for both ranges (the range split below
    every star: renoise hi = 10) leaves the lowest third below 20 with its Err 1.4x too small."""
    rng = np.random.default_rng(5)
    n = 9000
    snr = np.exp(rng.uniform(np.log(10), np.log(300), n))
    v = rng.uniform(0.0, 3.0, n)
    third = np.minimum(v.astype(int), 2)
    g = np.where(snr < 20, 1.0, np.array([0.5, 1.0, 2.0])[third])
    r = rng.normal(size=n) * (0.05 + 1.5 / snr) * g

    def cells(settings):
        rows = heldout_error_rows(snr, {"a_gg": r}, settings, values={"a_gg": v})
        z = r / ErrorModel.from_rows(rows, 0.1, names=["a_gg"], vmp=None).sigma(snr, ["a_gg"], v[:, None])[:, 0]
        return rows["a_gg"], np.array([[z[(third == k) & ((snr >= 20) == up)].std() for k in range(3)]
                                       for up in (False, True)])

    row, z_std = cells(ErrorsConfig(heldout_value_bins=3))
    f = np.asarray(row["value_factors"])
    assert row["value_snr_edges"] == [20.0] and "below and above snrg 20" in row["status"]
    np.testing.assert_allclose(f[0] / f[0].mean(), 1.0, atol=0.08)
    np.testing.assert_allclose(f[1] / f[1, 1], [0.5, 1.0, 2.0], rtol=0.08)
    np.testing.assert_allclose(z_std, 1.0, atol=0.08)
    row1, z_one = cells(ErrorsConfig(heldout_value_bins=3, heldout_renoise=(5.0, 10.0, 1e4)))
    assert "value_snr_edges" not in row1 and np.asarray(row1["value_factors"]).ndim == 1
    assert z_one[0, 0] > 1.4


def test_snr_factors_are_kept_only_beyond_chance():
    """Residuals that follow the curve exactly (Gaussian, 400 stars in 8 snrg bins): the SNR
    factors differ from 1 by chance alone, so at p = 0.05 they are dropped in about 95 % of draws
    (chi2 of ln f / err_rel against its 95th percentile), and always kept at p = 0; an error that
    falls then rises keeps them (test_heldout_fit_follows_an_error_that_falls_then_rises_with_snrg)."""
    rng = np.random.default_rng(8)
    kept, n = 0, 400
    for _ in range(60):
        snr = np.exp(rng.uniform(np.log(20), np.log(300), n))
        r = rng.normal(size=n) * (0.05 + 1.5 / snr)
        row = heldout_error_rows(snr, {"a_gg": r}, ErrorsConfig(heldout_value_bins=0))["a_gg"]
        kept += "snr_factors" in row
        assert ("snr_factors" in row) != ("no SNR factors (within chance of 1" in row["status"])
    assert kept <= 9  # 3 expected; 9 or more has probability < 0.3 %
    always = heldout_error_rows(snr, {"a_gg": r}, ErrorsConfig(heldout_value_bins=0, heldout_snr_factors_p=0.0))
    assert len(always["a_gg"]["snr_factors"]) == 8
    with pytest.raises(ConfigError, match="heldout_snr_factors_p"):
        ErrorsConfig(heldout_snr_factors_p=1.0)


def test_heldout_snrg_bins_keep_the_copies_range_as_one_bin():
    from jaxvac.train.calibrate import _snr_edges

    settings = ErrorsConfig(heldout_bins=8, min_pairs_per_bin=20)
    snr = np.concatenate([np.linspace(10, 19.9, 300), np.geomspace(20, 400, 700)])
    e = _snr_edges(snr, settings)
    assert e.size == 9 and e[0] == 10 and e[1] == 20.0  # below 20 one bin, then 7 of 100 stars
    np.testing.assert_array_equal(np.histogram(snr[snr >= 20], e[1:])[0], [100] * 7)
    few = np.concatenate([np.linspace(10, 19.9, 10), np.geomspace(20, 400, 700)])
    e_few = _snr_edges(few, settings)  # 10 stars below 20 make no bin of their own: equal counts
    c = np.histogram(few, e_few)[0]
    assert c.sum() == 710 and c.max() - c.min() <= 1 and 20.0 not in e_few


def test_heldout_fit_recovers_a_known_value_dependence():
    """Residuals drawn with sigma = (0.05 + 1.5 / snr) * g(v), g = 0.5 / 1 / 2 over thirds of v:
    the fit's factors follow g below and above snrg 20 alike, and its Err is calibrated in each
    third (std of z ~ 1)."""
    from jaxvac.run.uncertainties import ErrorsConfig

    rng = np.random.default_rng(4)
    n = 6000
    snr = np.exp(rng.uniform(np.log(10), np.log(300), n))
    v = rng.uniform(0.0, 3.0, n)
    g = np.array([0.5, 1.0, 2.0])[np.minimum(v.astype(int), 2)]
    r = rng.normal(size=n) * (0.05 + 1.5 / snr) * g
    rows = heldout_error_rows(snr, {"feh_APOGEE": r}, ErrorsConfig(heldout_value_bins=3), values={"feh_APOGEE": v})
    row = rows["feh_APOGEE"]
    np.testing.assert_allclose(row["value_edges"], [1.0, 2.0], atol=0.05)
    f = np.asarray(row["value_factors"])
    assert row["value_snr_edges"] == [20.0] and f.shape == (2, 3)  # each snrg range its own factors
    np.testing.assert_allclose(f / f[:, 1:2], [[0.5, 1.0, 2.0]] * 2, rtol=0.08)
    m = ErrorModel.from_rows(rows, 0.1, names=["feh_APOGEE"], vmp=None)
    z = r / m.sigma(snr, ["feh_APOGEE"], v[:, None])[:, 0]
    for k in range(3):
        assert 0.93 < z[np.minimum(v.astype(int), 2) == k].std() < 1.07
    plain = heldout_error_rows(snr, {"feh_APOGEE": r}, ErrorsConfig(heldout_value_bins=0), values={"feh_APOGEE": v})
    assert "value_factors" not in plain["feh_APOGEE"]  # 0: the paper's form alone


def test_snr_factors_interpolate_in_log_snrg_and_travel_with_the_row():
    row = {"a": 0.2, "b": 0.0, "c": 0.0, "sigma_m": 0.0, "snr_knots": [10.0, 100.0], "snr_factors": [2.0, 1.0]}
    m = ErrorModel.from_rows({"a_gg": row}, 0.1, names=["a_gg"], vmp=None)
    snr = np.array([5.0, 10.0, np.sqrt(1000.0), 100.0, 400.0, np.nan, -9999.0])
    # log-linear between the knots (sqrt(10) * 10 is halfway: 1.5), the end factors beyond them
    np.testing.assert_allclose(m.sigma(snr, ["a_gg"])[:5, 0], 0.2 * np.array([2.0, 2.0, 1.5, 1.0, 1.0]))
    assert np.isnan(m.sigma(snr, ["a_gg"])[5:, 0]).all()  # no snrg, no error (the factor does not hide it)
    back = m.to_rows()["a_gg"]
    assert back["snr_knots"] == [10.0, 100.0] and back["snr_factors"] == [2.0, 1.0]
    assert ErrorModel.from_rows({"a_gg": back}, 0.1, names=["a_gg"], vmp=None).digest() == m.digest()
    plain = {k: v for k, v in row.items() if not k.startswith("snr_")}
    assert ErrorModel.from_rows({"a_gg": plain}, 0.1, names=["a_gg"], vmp=None).digest() != m.digest()
    for bad in ({"snr_knots": [100.0, 10.0], "snr_factors": [1, 1]},  # knots not increasing
                {"snr_knots": [0.0, 10.0], "snr_factors": [1, 1]},  # a knot at snrg 0
                {"snr_knots": [10.0, 20.0], "snr_factors": [1.0]},  # one factor too few
                {"snr_knots": [10.0, 20.0], "snr_factors": [1.0, -1.0]},  # a negative factor
                {"snr_factors": [1.0, 2.0]}):  # factors without knots
        with pytest.raises(ConfigError, match="snr_knots / snr_factors"):
            ErrorModel.from_rows({"a_gg": plain | bad}, 0.1, names=["a_gg"], vmp=None)


def test_heldout_fit_follows_an_error_that_falls_then_rises_with_snrg():
    """Residuals drawn with sigma = 0.1 + 3 / snr + 0.002 * snr (falls to snrg ~ 40, then rises,
    as the simulator's magnitudes do when giants join the bright stars): the paper's form, even with
    b < 0, misses the lowest bin by 21 %; with the SNR factors every bin's std of z is 1 +- 5 %."""
    rng = np.random.default_rng(7)
    n = 8000
    snr = np.exp(rng.uniform(np.log(10), np.log(500), n))
    r = rng.normal(size=n) * (0.1 + 3.0 / snr + 0.002 * snr)
    edges = [10, 20, 50, 100, 200, 500]

    def z_std(settings):
        rows = heldout_error_rows(snr, {"a_gg": r}, settings)
        z = r / ErrorModel.from_rows(rows, 0.1, names=["a_gg"], vmp=None).sigma(snr, ["a_gg"])[:, 0]
        return rows["a_gg"], np.array([z[(snr >= lo) & (snr < hi)].std() for lo, hi in zip(edges, edges[1:])])

    row, with_f = z_std(ErrorsConfig(heldout_value_bins=0))
    assert len(row["snr_knots"]) == 8 and "SNR factors at 8 snrg" in row["status"]
    np.testing.assert_allclose(with_f, 1.0, atol=0.05)
    row0, without = z_std(ErrorsConfig(heldout_value_bins=0, heldout_snr_factors=False))
    assert "snr_factors" not in row0 and np.abs(without - 1.0).max() > 0.2


def _mixture(rng, n, giants=0.06, wide=5.0):
    """n residuals: unit-variance dwarfs and a fraction of giants ``wide`` x as scattered."""
    return rng.normal(size=n) * np.where(rng.random(n) < giants, wide, 1.0)


def test_err_uncertainty_matches_the_spread_of_a_std_over_repeated_samples():
    """err_rel of a bin against the Monte-Carlo spread of the std of 200 stars (the independent
    reference): Gaussian 1 / sqrt(2 n) = 0.05; 6 % of stars with 5x the scatter (kurtosis 19)
    about 3x that, which the Gaussian formula of bin_scatter would miss."""
    from jaxvac.train.calibrate import _err_uncertainty

    rng = np.random.default_rng(11)
    settings = ErrorsConfig(heldout_bins=8, min_pairs_per_bin=20)
    n = 1600  # 8 bins of 200
    snr = np.exp(rng.uniform(np.log(10), np.log(500), n))
    for giants, want_gauss in ((0.0, True), (0.06, False)):
        rels = []
        for _ in range(150):
            z = _mixture(rng, n, giants)
            out = _err_uncertainty(snr, z, np.ones(n), settings)
            assert len(out["err_rel"]) == 8 and sum(out["err_n"]) == n
            rels += out["err_rel"]
        mc = np.std([_mixture(rng, 200, giants).std(ddof=1) for _ in range(4000)]) / np.sqrt(
            (1 - giants) + giants * 25.0)
        assert 0.75 * mc < np.median(rels) < 1.1 * mc, (giants, np.median(rels), mc)
        if want_gauss:
            assert abs(mc - 0.05) < 0.005
        else:
            assert mc > 2.5 * 0.05


def test_err_uncertainty_counts_copies_as_one_star_and_stays_out_of_the_model():
    """Three weighted copies of every star give the same err_n and err_rel as the stars alone; the
    err_ lists travel in a row but are not part of Err nor of the model's digest."""
    from jaxvac.train.calibrate import _err_uncertainty
    from jaxvac.train.job import _loose_errors

    rng = np.random.default_rng(3)
    settings = ErrorsConfig()
    snr = np.exp(rng.uniform(np.log(10), np.log(300), 900))
    z = _mixture(rng, 900)
    one = _err_uncertainty(snr, z, np.ones(900), settings)
    three = _err_uncertainty(np.repeat(snr, 3), np.repeat(z, 3), np.full(2700, 1 / 3), settings)
    np.testing.assert_allclose(three["err_n"], one["err_n"], rtol=0.02)
    np.testing.assert_allclose(three["err_rel"], one["err_rel"], rtol=0.05)
    r = z * (0.1 + 2.0 / snr)
    rows = heldout_error_rows(snr, {"a_gg": r}, settings, weights=np.ones(900))
    assert {"err_snrg", "err_rel", "err_n"} <= set(rows["a_gg"]) and len(rows["a_gg"]["err_rel"]) == 8
    bare = {k: v for k, v in rows["a_gg"].items() if not k.startswith("err_")}
    m1 = ErrorModel.from_rows(rows, 0.1, names=["a_gg"], vmp=None)
    m2 = ErrorModel.from_rows({"a_gg": bare}, 0.1, names=["a_gg"], vmp=None)
    assert m1.digest() == m2.digest() and "err_rel" not in m1.to_rows()["a_gg"]
    with pytest.raises(ValueError, match="one weight per star"):
        heldout_error_rows(snr, {"a_gg": r}, settings, weights=np.ones(5))
    # the warning names the loosest label first, with its bin and star count, and the fix
    tight = {"err_snrg": [20.0, 80.0], "err_rel": [0.04, 0.05], "err_n": [400, 400]}
    loose = {"err_snrg": [20.0, 150.0], "err_rel": [0.06, 0.21], "err_n": [300, 38]}
    msg = _loose_errors({"Teff_PASTEL": tight, "feh_VMP": loose}, 0.10, "test catalogue catalogs/test.fits")
    assert msg.startswith("Err_ of 1 label(s)") and "feh_VMP +-21% at snrg 150 (38 stars)" in msg
    assert "Teff_PASTEL" not in msg and "larger [train] test_catalog" in msg
    assert _loose_errors({"feh_VMP": loose}, 0.0, "validation stars") is None
    assert "val_fraction" in _loose_errors({"feh_VMP": loose}, 0.1, "validation stars")
    with pytest.raises(ConfigError, match="heldout_warn_rel"):
        ErrorsConfig(heldout_warn_rel=-0.1)


def test_value_factors_on_another_labels_estimate():
    """The magnitudes' error follows the luminosity class, not the magnitude: residuals 4x as
    scattered for the 20 % of stars that are giants (logg estimate ~2), whose a_gg estimates are
    spread like the dwarfs'. Factors over bins of logg_PASTEL's estimate give the giants and the
    dwarfs std(z) = 1 +- 0.1; over a_gg's own estimate the giants' Err is 2x too small."""
    from jaxvac.train.job import _value_labels

    rng = np.random.default_rng(5)
    n = 6000
    snr = np.exp(rng.uniform(np.log(20), np.log(300), n))
    giant = rng.random(n) < 0.2
    logg = np.where(giant, 2.0, 4.5) + 0.2 * rng.normal(size=n)
    mag = rng.uniform(0.0, 8.0, n)  # the label's own estimate: blind to the class
    r = rng.normal(size=n) * (0.2 + 3.0 / snr) * np.where(giant, 4.0, 1.0)
    settings = ErrorsConfig(heldout_snr_factors=False)
    names = ["a_gg", "logg_PASTEL"]

    def z_by_class(rows):
        m = ErrorModel.from_rows(rows, 0.1, names=names, vmp=None)
        z = r / m.sigma(snr, names, np.stack([mag, logg], 1))[:, 0]
        return z[giant].std(), z[~giant].std(), m

    on_logg = heldout_error_rows(snr, {"a_gg": r}, settings, values={"a_gg": logg}, value_labels={"a_gg": "logg_PASTEL"})
    row = on_logg["a_gg"]
    assert row["value_label"] == "logg_PASTEL" and "bins of the estimate of logg_PASTEL" in row["status"]
    g, d, m = z_by_class(on_logg | {"logg_PASTEL": {"a": 0.1, "b": 0.0, "c": 0.0, "sigma_m": 0.0}})
    assert abs(g - 1) < 0.1 and abs(d - 1) < 0.1
    own = heldout_error_rows(snr, {"a_gg": r}, settings, values={"a_gg": mag})
    assert "value_label" not in own["a_gg"]
    g_own, _, m_own = z_by_class(own | {"logg_PASTEL": {"a": 0.1, "b": 0.0, "c": 0.0, "sigma_m": 0.0}})
    assert g_own > 1.5
    # the label travels with the row and names the model; Err needs that label's estimate
    assert m.to_rows()["a_gg"]["value_label"] == "logg_PASTEL" and m.digest() != m_own.digest()
    with pytest.raises(ValueError, match="logg_PASTEL's estimate"):
        m.sigma(snr[:3], ["a_gg"], mag[:3, None])
    with pytest.raises(ConfigError, match="not a label of the model"):
        ErrorModel.from_rows(on_logg, 0.1, names=["a_gg"], vmp=None)
    with pytest.raises(ConfigError, match="value_label must be a label name that comes with value_edges"):
        ErrorModel.from_rows({"a_gg": {"a": 0.1, "b": 0, "c": 0, "sigma_m": 0, "value_label": "logg_PASTEL"}}, 0.1,
                             names=names, vmp=None, fallback=m)
    # [errors] heldout_value_label: dr8.toml bins the 14 magnitudes on logg_PASTEL, the APOGEE labels
    # but feh_APOGEE itself on feh_APOGEE
    assert ErrorsConfig().heldout_value_label == {"LGMWAS": "logg_PASTEL", "APOGEE": "feh_APOGEE"}
    value_of, notes = _value_labels(PAPER, ErrorsConfig())
    assert {n for n, by in value_of.items() if by == "logg_PASTEL"} == {n for n in LABEL_NAMES if n.startswith("a_")}
    assert {n for n, by in value_of.items() if by == "feh_APOGEE"} == {
        "logg_APOGEE", "MH_APOGEE", "AFE_APOGEE", "CFE_APOGEE", "NFE_APOGEE"}
    assert notes == []
    assert _value_labels(PAPER, ErrorsConfig(heldout_value_label={"LGMWAS": ""})) == ({}, [])
    none, notes = _value_labels(PAPER, ErrorsConfig(heldout_value_label={"LGMWAS": "logg_GALAH"}))
    assert none == {} and "logg_GALAH is not a label of this model" in notes[0]
    with pytest.raises(ConfigError, match="heldout_value_label"):
        ErrorsConfig(heldout_value_label={"LGMWAS": 3})


def test_second_value_factors_follow_a_second_labels_estimate():
    """[errors] heldout_value2_label: the magnitudes err with the luminosity class and with
    metallicity at once. Known answer: giants (logg estimate ~2, 20 % of stars) 3x as scattered
    as dwarfs, and the 15 % of stars that are metal-poor ([Fe/H] estimate ~-2) 2.5x as scattered
    again, both classes independent (each class fills whole bins: the first factors' bins hold
    20 % of the stars, the second's are cut at the 5 / 15 / 40 % quantiles). With factors over
    logg's estimate and second factors over [Fe/H]'s, std(z) of each of the four kinds of star
    is 1 +- 0.1; with the first alone the metal-poor stars' Err is 2x too small. The second
    factors travel with the row (value2_label, edges, factors; the digest changes) and Err needs
    the second label's estimate."""
    from jaxvac.train.calibrate import _quantile_edges
    from jaxvac.train.job import _value_labels

    rng = np.random.default_rng(17)
    n = 12000
    snr = np.exp(rng.uniform(np.log(20), np.log(300), n))
    giant, poor = rng.random(n) < 0.2, rng.random(n) < 0.15
    logg = np.where(giant, 2.0, 4.5) + 0.2 * rng.normal(size=n)
    feh = np.where(poor, -2.0, -0.2) + 0.2 * rng.normal(size=n)
    r = rng.normal(size=n) * (0.2 + 3.0 / snr) * np.where(giant, 3.0, 1.0) * np.where(poor, 2.5, 1.0)
    settings = ErrorsConfig(heldout_snr_factors=False)
    names = ["a_gg", "logg_PASTEL", "feh_PASTEL"]
    const = {"a": 0.1, "b": 0.0, "c": 0.0, "sigma_m": 0.0}

    def z_of(rows):
        m = ErrorModel.from_rows(rows | {"logg_PASTEL": const, "feh_PASTEL": const}, 0.1, names=names, vmp=None)
        z = r / m.sigma(snr, names, np.stack([np.zeros(n), logg, feh], 1))[:, 0]
        return [z[giant & poor].std(), z[giant & ~poor].std(), z[~giant & poor].std(), z[~giant & ~poor].std()], m

    both = heldout_error_rows(snr, {"a_gg": r}, settings, values={"a_gg": logg}, value_labels={"a_gg": "logg_PASTEL"},
                              values2={"a_gg": feh}, value2_labels={"a_gg": "feh_PASTEL"})["a_gg"]
    assert both["value2_label"] == "feh_PASTEL" and len(both["value2_factors"]) == 4
    assert "second factors over 4 bins of the estimate of feh_PASTEL" in both["status"]
    stds, m = z_of({"a_gg": both})
    assert all(abs(s - 1) < 0.1 for s in stds), stds
    first = heldout_error_rows(snr, {"a_gg": r}, settings, values={"a_gg": logg}, value_labels={"a_gg": "logg_PASTEL"})
    assert "value2_factors" not in first["a_gg"]
    stds1, m1 = z_of(first)
    assert min(stds1[0], stds1[2]) > 1.7 and max(stds1[1], stds1[3]) < 0.9  # metal-poor Err too small, the rest's too large
    assert m.to_rows()["a_gg"]["value2_label"] == "feh_PASTEL" and m.digest() != m1.digest()
    with pytest.raises(ValueError, match="feh_PASTEL's estimate"):
        m.sigma(snr[:3], ["a_gg", "logg_PASTEL"], np.zeros((3, 2)))
    with pytest.raises(ConfigError, match="value2_label must be a label name"):
        ErrorModel.from_rows({"a_gg": {**const, "value2_edges": [0.0], "value2_factors": [1.0, 2.0]}}, 0.1,
                             names=["a_gg"], vmp=None)
    # edges at the quantiles; a bin with fewer than `least` values merges with the next one up
    v = np.arange(100.0)
    assert np.allclose(_quantile_edges(v, [0.05, 0.15, 0.4], 5), np.quantile(v, [0.05, 0.15, 0.4]))
    assert np.allclose(_quantile_edges(v, [0.05, 0.15, 0.4], 10), np.quantile(v, [0.15, 0.4]))
    assert _quantile_edges(v[:15], [0.05, 0.15, 0.4], 10).size == 0
    # dr8.toml: the magnitudes' second factors are over feh_PASTEL
    assert ErrorsConfig().heldout_value2_label == {"LGMWAS": "feh_PASTEL"}
    value2_of, notes = _value_labels(PAPER, ErrorsConfig(), "heldout_value2_label")
    assert set(value2_of) == {n for n in LABEL_NAMES if n.startswith("a_")} and set(value2_of.values()) == {"feh_PASTEL"}
    assert notes == []
    with pytest.raises(ConfigError, match="heldout_value2_quantiles"):
        ErrorsConfig(heldout_value2_quantiles=(0.4, 0.15))


def test_the_vmp_networks_validation_stars_join_its_error_fit():
    """[errors] heldout_vmp_validation: feh_VMP's fit takes the VMP network's validation stars as
    well as the test catalogue's candidates. Known answer: 150 candidates scattered 0.1 dex and
    200 validation stars 0.3 dex give Err = the rms of both, sqrt((150 * 0.01 + 200 * 0.09) / 350)
    = 0.236 dex; without them 0.1; when the held-out stars are the validation stars themselves
    they are not counted twice."""
    import dataclasses

    from jaxvac.config import section
    from jaxvac.run.uncertainties import vmp_error
    from jaxvac.train.fit import TrainConfig
    from jaxvac.train.job import _error_model

    rng = np.random.default_rng(12)
    cfg = load_config("dr8")
    ecfg, tcfg = section(cfg, "errors", ErrorsConfig), section(cfg, "train", TrainConfig)
    k = len(LABEL_NAMES) + 1  # the labels, then feh_VMP

    def sample(n, n_vmp, sigma):
        snr = np.exp(rng.uniform(np.log(20), np.log(300), n))
        truth, pred = np.full((n, k), np.nan), np.full((n, k), np.nan)
        truth[:n_vmp, -1] = rng.uniform(-3.0, -1.5, n_vmp)
        pred[:n_vmp, -1] = truth[:n_vmp, -1] + sigma * rng.normal(size=n_vmp)
        return truth, pred, snr

    heldout, validation = sample(600, 150, 0.1), sample(300, 200, 0.3)
    ecfg = dataclasses.replace(ecfg, heldout_value_bins=0)  # the curve alone: Err the same for every estimate

    def err_and_row(settings, held, val):
        rec, _ = _error_model(held, "test catalogue", val, settings, cfg, tcfg, PAPER, np.ones(k - 1))
        model = ErrorModel.from_rows(rec["rows"], rec["feh_vmp_sigma"], fallback=ErrorModel.default())
        at = np.geomspace(20, 300, 500)  # rms over the snrg range of the stars
        return float(np.sqrt(np.mean(vmp_error(np.full(500, -2.2), at, model) ** 2))), rec["rows"][VMP.name]

    err, row = err_and_row(ecfg, heldout, validation)
    assert row["n"] == 350 and "with the VMP network's 200 validation stars" in row["status"]
    assert 0.20 < err < 0.27
    err_off, row_off = err_and_row(dataclasses.replace(ecfg, heldout_vmp_validation=False), heldout, validation)
    assert row_off["n"] == 150 and 0.085 < err_off < 0.115
    _, row_same = err_and_row(ecfg, validation, validation)  # no test catalogue: the validation stars are the held-out
    assert row_same["n"] == 200 and "validation stars" not in row_same["status"]
