"""calibrate-errors: the fit against scipy's curve_fit, pairing and binning against brute-force
references, recovery of known a, b, c from simulated repeats, and the command end to end."""

import math
import tomllib

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table
from click.testing import CliRunner
from scipy.optimize import curve_fit

from jaxvac.train.calibrate import B_MAX, bin_scatter, calibrate, fit_power_law, pair_repeats
from jaxvac.train.calibrate_job import read_repeats
from jaxvac.cli import main
from jaxvac.config import load_config
from jaxvac.run.uncertainties import ErrorModel, ErrorsConfig


def _model(snr, a, b, c):
    return a + c / snr**b


def _reference_fit(snr, y, e):
    p, cov = curve_fit(_model, snr, y, p0=(0.05, 1.0, 5.0), sigma=e, absolute_sigma=True,
                       bounds=([0, 0, 0], [np.inf, B_MAX, np.inf]), method="trf", xtol=1e-15, ftol=1e-15, gtol=1e-15)
    return p, cov


@pytest.mark.parametrize("seed, truth", [(0, (0.049, 1.048, 10.442)), (1, (0.21, 1.229, 42.827)), (2, (0.0, 0.8, 2.0))])
def test_fit_matches_curve_fit(seed, truth):
    rng = np.random.default_rng(seed)
    snr = np.geomspace(11, 300, 14)
    y0 = _model(snr, *truth)
    e = 0.03 * y0
    y = y0 + e * rng.normal(size=snr.size)
    got = fit_power_law(snr, y, e)
    p, cov = _reference_fit(snr, y, e)
    np.testing.assert_allclose([got.a, got.b, got.c], p, rtol=2e-6, atol=1e-9)
    if p[0] > 1e-6:  # an active bound makes curve_fit's covariance ill-defined
        np.testing.assert_allclose(got.cov, cov, rtol=1e-3, atol=1e-12)
    assert got.chi2 == pytest.approx(np.sum(((y - _model(snr, *p)) / e) ** 2), rel=1e-6)
    assert got.dof == snr.size - 3


def test_fit_keeps_a_at_its_bound_and_recovers_exact_data():
    snr = np.geomspace(10, 400, 12)
    exact = fit_power_law(snr, _model(snr, 0.03, 1.1, 6.0), np.full(12, 1e-3))
    np.testing.assert_allclose([exact.a, exact.b, exact.c], [0.03, 1.1, 6.0], rtol=1e-7)
    y = -0.02 + 3.0 / snr**0.9  # the unbounded best fit has a < 0
    e = np.full(12, 0.002)
    got = fit_power_law(snr, y, e)
    p, _ = _reference_fit(snr, y, e)
    assert got.a == 0.0 and p[0] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose([got.b, got.c], p[1:], rtol=1e-5)
    with pytest.raises(ValueError, match="M >= 3"):
        fit_power_law(snr[:2], y[:2], e[:2])


def _greedy_pairs(ids, snr, tol):
    """Brute force: per star, walk the SNR-sorted spectra and pair neighbours greedily."""
    out = set()
    for s in set(ids.tolist()):
        rows = sorted(np.flatnonzero(ids == s), key=lambda r: (snr[r], r))
        k = 0
        while k + 1 < len(rows):
            r1, r2 = rows[k], rows[k + 1]
            if abs(snr[r1] - snr[r2]) < tol * (snr[r1] + snr[r2]) / 2:
                out.add((r1, r2))
                k += 2
            else:
                k += 1
    return out


def test_pairing_hand_cases_and_brute_force():
    ids = np.array([7, 7, 7, 7, 8, 9, 9, 5, 5])
    snr = np.array([10.0, 10.5, 10.9, 30.0, 10.2, 20.0, 22.2, 50.0, 54.0])
    i, j = pair_repeats(ids, snr, 0.10)
    # 10 & 10.5 pair, 10.9 is left; 20 vs 22.2 differ by 10.4% of the mean; 50 vs 54: 7.7%.
    assert set(zip(i.tolist(), j.tolist())) == {(0, 1), (7, 8)}
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 300, 2000)
    snr = np.exp(rng.uniform(np.log(10), np.log(15), 2000))
    i, j = pair_repeats(ids, snr, 0.10)
    assert set(zip(i.tolist(), j.tolist())) == _greedy_pairs(ids, snr, 0.10)
    assert np.unique(np.concatenate([i, j])).size == 2 * i.size


def test_bin_scatter_against_numpy():
    rng = np.random.default_rng(4)
    snr = rng.uniform(10, 40, 3000)
    r = rng.normal(size=3000) * 3 / snr
    edges = [10, 15, 20, 30, 39.9]
    for method in ("std", "mad"):
        bs = bin_scatter(snr, r, edges, min_pairs=50, method=method)
        assert bs.n.sum() == np.sum(snr < 39.9)
        for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            x = r[(snr >= lo) & (snr < hi)]
            want = np.std(x, ddof=1) if method == "std" else 1.482602218505602 * np.median(np.abs(x - np.median(x)))
            assert bs.scatter[k] == pytest.approx(want, rel=1e-12)
            assert bs.snr[k] == pytest.approx(np.median(snr[(snr >= lo) & (snr < hi)]))
    assert bin_scatter(snr, r, edges, min_pairs=2000).n.size == 0


TRUTH = {  # label -> (a, b, c, scale)
    "Teff_PASTEL": (0.21, 1.229, 42.827, 100.0),
    "feh_APOGEE": (0.0097, 0.993, 2.332, 1.0),
    "a_ks": (0.02, 0.7, 1.5, 1.0),
}


@pytest.fixture(scope="module")
def repeats():
    """200,000 stars, two spectra each with SNR within 9%, noise sigma = scale (a + c / SNR**b)."""
    rng = np.random.default_rng(5)
    n = 200_000
    snr1 = np.exp(rng.uniform(np.log(9), np.log(420), n))
    snr2 = snr1 * np.exp(rng.uniform(-0.09, 0.09, n))
    ids = np.concatenate([np.arange(n), np.arange(n)]) + 1000
    snr = np.concatenate([snr1, snr2])
    values = {}
    for name, (a, b, c, s) in TRUTH.items():
        star = rng.normal(size=n) * 5
        values[name] = np.concatenate([star, star]) + s * (a + c / snr**b) * rng.normal(size=2 * n)
    return ids, snr, values


def test_recovers_known_coefficients_within_10_percent(repeats):
    ids, snr, values = repeats
    cal = calibrate(ids, snr, values, ErrorsConfig(), scales={"Teff_PASTEL": 100.0})
    assert cal.counts["pairs"] == 200_000
    for lc in cal.labels:
        a, b, c, scale = TRUTH[lc.name]
        assert lc.status == "ok" and lc.scale == scale
        np.testing.assert_allclose(lc.abc, (a, b, c), rtol=0.10, err_msg=lc.name)
        assert lc.fit.chi2 < 3 * lc.fit.dof + 10  # the model describes the bins


def test_bad_rows_are_counted_not_fatal():
    rng = np.random.default_rng(6)
    ids = np.repeat(np.arange(400), 2)
    snr = np.repeat(np.exp(rng.uniform(np.log(10), np.log(300), 400)), 2)
    x = rng.normal(size=800) * (0.05 + 3 / snr)
    ids_m = np.ma.masked_array(ids.copy(), mask=np.zeros(800, bool))
    ids_m[:4] = -1
    ids_m.mask[4:6] = True
    snr[6:9] = [np.nan, 0.0, -9999.0]
    few = np.full(800, np.nan)
    few[20:30] = 1.0
    cal = calibrate(ids_m, snr, {"feh_PASTEL": x, "logg_PASTEL": few}, ErrorsConfig(min_pairs_per_bin=5))
    assert cal.counts["dropped: no star id"] == 6
    assert cal.counts["dropped: snrg not finite or <= 0"] == 3
    assert cal.counts["pairs"] == 400 - 5  # stars 0-4 lost a spectrum
    assert cal.label("feh_PASTEL").status == "ok"
    bad = cal.label("logg_PASTEL")
    assert bad.fit is None and all(math.isnan(v) for v in bad.abc)
    assert "3 are needed" in bad.status


@pytest.fixture(scope="module")
def small_catalogue(tmp_path_factory):
    rng = np.random.default_rng(7)
    n = 3000
    snr1 = np.exp(rng.uniform(np.log(10), np.log(400), n))
    snr = np.concatenate([snr1, snr1 * 1.03])
    ref = ErrorModel.default()
    sig = ref.random(snr, ["Teff_PASTEL", "a_gg"])
    star = np.repeat(rng.normal(size=(1, 2)), 2 * n, axis=0)
    vals = star + sig * rng.normal(size=sig.shape)
    d = tmp_path_factory.mktemp("cat")
    tab = Table({"GAIAID": np.concatenate([np.arange(n), np.arange(n)]), "snrg": snr.astype("f4"),
                 "Teff_PASTEL": vals[:, 0], "a_gg": MaskedColumn(vals[:, 1], mask=np.arange(2 * n) == 0)})
    tab.write(d / "cat.fits")
    tab.write(d / "cat.csv")
    return d


def test_read_repeats_fits_and_csv_agree(small_catalogue):
    f = read_repeats(small_catalogue / "cat.fits")
    c = read_repeats(small_catalogue / "cat.csv")
    assert f.star_column == "GAIAID" and list(f.values) == ["Teff_PASTEL", "a_gg"]
    assert np.isnan(f.values["a_gg"][0]) and np.isnan(c.values["a_gg"][0])
    np.testing.assert_allclose(f.values["Teff_PASTEL"], c.values["Teff_PASTEL"], rtol=1e-12)
    noid = small_catalogue / "noid.csv"
    Table({"x": [1], "snrg": [20.0], "a_gg": [1.0]}).write(noid, overwrite=True)
    with pytest.raises(ValueError, match="none of the star id columns .* --star-column"):
        read_repeats(noid)
    with pytest.raises(ValueError, match="no label column 'logg_APOGEE'"):
        read_repeats(small_catalogue / "cat.csv", labels=["logg_APOGEE"])


def test_command_end_to_end(small_catalogue, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["calibrate-errors", str(small_catalogue / "cat.fits"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Teff_PASTEL" in res.output and "pairs: 3000" in res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bins.csv", "calibrate_errors.png", "coefficients.csv", "coefficients.fits", "coefficients.md", "errors.toml"]
    assert (out / "calibrate_errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    coef = Table.read(out / "coefficients.fits", hdu="COEFFS")
    assert list(coef["label"]) == ["Teff_PASTEL", "a_gg"] and list(coef["status"]) == ["ok", "ok"]
    np.testing.assert_allclose(coef["a_ref"], [0.21, 0.049])
    bins = Table.read(out / "bins.csv")
    assert set(bins["label"]) == {"Teff_PASTEL", "a_gg"} and np.all(bins["n_pairs"] >= 20)
    # errors.toml merges into a config inheriting dr8.toml and gives back the fitted numbers.
    snippet = tomllib.loads((out / "errors.toml").read_text())["errors"]["coefficients"]
    cfg = tmp_path / "fitted.toml"
    cfg.write_text(f'base = "{load_config("dr8.toml")["_source"][-1]}"\n' + (out / "errors.toml").read_text())
    m = ErrorModel.from_config(load_config(cfg))
    t = coef[coef["label"] == "Teff_PASTEL"][0]
    assert m.row("Teff_PASTEL").a == pytest.approx(t["a"], rel=1e-5) and snippet["Teff_PASTEL"]["sigma_m"] == 75


def test_command_reports_bad_input_without_a_traceback(small_catalogue, tmp_path):
    res = CliRunner().invoke(main, ["calibrate-errors", str(small_catalogue / "cat.fits"), "--out", str(tmp_path),
                                    "--star-column", "obsid"])
    assert res.exit_code == 2 and "has no star id column 'obsid'" in res.output
    res = CliRunner().invoke(main, ["calibrate-errors", str(tmp_path / "missing.fits"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "not found" in res.output
    assert not list(tmp_path.glob(".*tmp*"))


def test_into_a_checkpoint_whose_label_has_no_row_names_the_fix(tmp_path):
    # labels are data: a label without an error-model row in the checkpoint or the config has no
    # known sigma_m (repeats do not measure it); it must not silently take feh_VMP's 0.176
    from astropy.table import Table

    from jaxvac.config import ConfigError
    from jaxvac.labels import Label, LabelSchema
    from jaxvac.train import checkpoint
    from jaxvac.train.calibrate_job import run_calibration

    schema = LabelSchema(labels=(Label("Teff_GALAH", "K", "GALAH", 3000.0, 8000.0, ""),), vmp=None)
    ck = checkpoint.save_random(tmp_path / "ck", (8,), (4,), schema=schema)  # random weights: no error model
    rng = np.random.default_rng(0)
    n = 2000
    snr = np.repeat(rng.uniform(11, 300, n // 2), 2) * (1 + rng.uniform(-0.02, 0.02, n))
    Table({"star_id": np.repeat(np.arange(n // 2), 2), "snrg": snr,
           "Teff_GALAH": 5000 + rng.normal(size=n) * 100 * (0.3 + 30 / snr ** 1.1)}).write(tmp_path / "rep.fits")
    with pytest.raises(ConfigError, match=r"no error-model row for Teff_GALAH .* add \[errors.coefficients\] Teff_GALAH"):
        run_calibration(tmp_path / "rep.fits", tmp_path / "out", config="dr8", into=ck)
