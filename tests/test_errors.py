"""Error model and range flags against SPEC.md's Table 2 (copied here as the known answer)."""

import numpy as np
import pytest

from jaxvac.config import ConfigError, load_config
from jaxvac.run.uncertainties import ErrorModel, default_ranges, label_errors, range_flags, vmp_error
from jaxvac.labels import LABEL_NAMES, LABELS

# SPEC.md "Uncertainties", row by row: (a, b, c, sigma_m); Teff residuals were fitted / 100.
TABLE2 = {
    "Teff_PASTEL": (0.210, 1.229, 42.827, 75),
    "logg_PASTEL": (0.047, 1.121, 7.818, 0.089),
    "feh_PASTEL": (0.028, 1.156, 5.817, 0.049),
    "feh_APOGEE": (0.0097, 0.993, 2.332, 0.033),
    "MH_APOGEE": (0.011, 1.029, 2.677, 0.032),
    "AFE_APOGEE": (0.0075, 1.084, 1.557, 0.018),
    "CFE_APOGEE": (0.010, 1.029, 1.913, 0.043),
    "NFE_APOGEE": (0.022, 1.095, 2.634, 0.070),
    "logg_APOGEE": (0.028, 1.141, 6.829, 0.067),
    "a_gg": (0.049, 1.048, 10.442, 0.092),
    "a_bp": (0.051, 1.055, 9.980, 0.075),
    "a_rp": (0.057, 1.097, 12.347, 0.090),
    "a_j": (0.052, 1.019, 10.435, 0.081),
    "a_h": (0.052, 1.090, 12.451, 0.082),
    "a_ks": (0.053, 1.014, 9.026, 0.088),
    "a_bap": (0.053, 1.062, 11.734, 0.096),
    "a_vap": (0.055, 1.102, 12.518, 0.087),
    "a_rap": (0.053, 1.063, 10.905, 0.095),
    "a_gsd": (0.056, 1.076, 11.733, 0.157),
    "a_rsd": (0.050, 1.052, 10.298, 0.103),
    "a_isd": (0.054, 1.068, 11.538, 0.098),
    "a_w1": (0.052, 1.037, 10.468, 0.097),
    "a_w2": (0.050, 1.021, 10.236, 0.100),
}


@pytest.fixture(scope="module")
def model():
    return ErrorModel.default()


def test_teff_error_at_snr_50_is_the_paper_formula(model):
    got = model.sigma(np.array([50.0]), ["Teff_PASTEL"])[0, 0]
    assert got == pytest.approx(np.sqrt((100 * (0.21 + 42.827 / 50**1.229)) ** 2 + 75**2), rel=1e-12)
    assert got == pytest.approx(93.58, abs=0.01)


def test_every_label_matches_table_2(model):
    snr = np.array([10.0, 23.7, 50.0, 181.0])
    got = model.sigma(snr)
    assert got.shape == (4, 23) and got.dtype == np.float64
    for k, name in enumerate(LABEL_NAMES):
        a, b, c, sm = TABLE2[name]
        scale = 100.0 if name == "Teff_PASTEL" else 1.0
        want = np.sqrt((scale * (a + c / snr**b)) ** 2 + sm**2)
        np.testing.assert_allclose(got[:, k], want, rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(model.random(snr)[:, 0], 100 * (0.21 + 42.827 / snr**1.229), rtol=1e-12)


def test_unusable_snr_and_nan_estimates_give_nan(model):
    snr = np.array([np.nan, 0.0, -9999.0, np.inf, 30.0], dtype=np.float32)
    sig = model.sigma(snr)
    assert np.all(np.isnan(sig[:4])) and np.all(np.isfinite(sig[4]))
    est = np.zeros((5, 23))
    est[4, 3] = np.nan
    err = label_errors(est, snr)
    assert np.isnan(err[4, 3]) and np.isfinite(err[4, 2]) and np.all(np.isnan(err[:4]))
    with pytest.raises(ValueError, match=r"estimates \(N, 23\) and snrg \(N,\), got \(5, 22\)"):
        label_errors(est[:, :22], snr)


def test_vmp_error_is_the_method_error_where_estimated():
    got = vmp_error(np.array([np.nan, -2.5, -1.7]), np.array([20.0, 20.0, 300.0]))
    np.testing.assert_array_equal(got, [np.nan, 0.176, 0.176])


def test_calibrated_vmp_row_and_base_override(tmp_path):
    cfg_path = tmp_path / "cal.toml"
    cfg_path.write_text(
        f'base = "{load_config("dr8.toml")["_source"][-1]}"\n'
        "[errors.coefficients]\n"
        "Teff_PASTEL = { a = 0.5 }\n"
        "feh_VMP = { a = 0.01, b = 1.0, c = 2.0, sigma_m = 0.176 }\n"
    )
    m = ErrorModel.from_config(load_config(cfg_path))
    t = m.row("Teff_PASTEL")
    assert (t.a, t.b, t.c, t.sigma_m, t.scale) == (0.5, 1.229, 42.827, 75.0, 100.0)
    np.testing.assert_allclose(vmp_error([-2.0, np.nan], [40.0, 40.0], m), [np.hypot(0.01 + 2 / 40, 0.176), np.nan])
    with pytest.raises(ValueError, match="snrg"):
        vmp_error([-2.0], model=m)


@pytest.mark.parametrize(
    "table, message",
    [
        ("feh_VMP = { a = 0.2, b = 1.0, c = 4.0 }\n", r"feh_VMP lacks \['sigma_m'\]; each row needs"),
        ("Teff_PASTEL = { a = 0.2, b = 1.0, c = 4.0, sigma_m = 1, d = 3 }\n", r"Teff_PASTEL has unknown key\(s\) \['d'\];"),
        ("Teff_PASTEL = { a = -0.2, b = 1.0, c = 4.0, sigma_m = 1 }\n", r"Teff_PASTEL.a must be a finite number >= 0"),
        ("Tef_PASTEL = { a = 0.2, b = 1.0, c = 4.0, sigma_m = 1 }\n", r"unknown label\(s\) \['Tef_PASTEL'\]"),
    ],
)
def test_bad_coefficient_rows_are_refused_by_name(tmp_path, table, message):
    p = tmp_path / "bad.toml"
    p.write_text('base = "' + load_config("dr8.toml")["_source"][-1] + '"\n[errors.coefficients]\n' + table)
    with pytest.raises(ConfigError, match=message):
        ErrorModel.from_config(load_config(p))


def test_missing_labels_are_listed(tmp_path):
    p = tmp_path / "short.toml"
    p.write_text("[errors.coefficients]\nTeff_PASTEL = { a = 0.2, b = 1.0, c = 4.0, sigma_m = 1 }\n")
    with pytest.raises(ConfigError, match=r"lacks \['logg_PASTEL', 'feh_PASTEL'"):
        ErrorModel.from_config(load_config(p))


def test_range_flags_at_and_around_the_edges():
    lo, hi = 3500.0, 10000.0
    vals = np.array([lo, hi, np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf), np.nextafter(lo, np.inf),
                     np.nextafter(hi, -np.inf), 6000.0, np.nan, np.inf, -np.inf])
    want = [0, 0, 1, 1, 0, 0, 0, 1, 1, 1]
    got = range_flags(vals, (lo, hi))
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(range_flags(vals, (lo, hi), nan_flag=0), [0, 0, 1, 1, 0, 0, 0, 0, 1, 1])


def test_range_flags_per_column_and_from_a_mapping():
    ranges = default_ranges()
    assert ranges.shape == (23, 2)
    assert [tuple(r) for r in ranges] == [(l.lo, l.hi) for l in LABELS]
    vals = np.tile(ranges.mean(axis=1), (4, 1))
    vals[1] = ranges[:, 0]  # lower edges: inside
    vals[2] = ranges[:, 1] + 1e-9  # just above: outside
    vals[3, ::2] = np.nan
    want = np.zeros((4, 23), np.int8)
    want[2] = 1
    want[3, ::2] = 1
    np.testing.assert_array_equal(range_flags(vals), want)
    as_map = {n: tuple(r) for n, r in zip(LABEL_NAMES, ranges)}
    np.testing.assert_array_equal(range_flags(vals, as_map), want)
    vals = np.array([[0.0, 0.0], [5.0, -1.0], [-0.01, -3.81]])
    two = range_flags(vals, {"logg_APOGEE": (0, 5), "feh_VMP": (-3.8, -1.0)}, ["logg_APOGEE", "feh_VMP"])
    np.testing.assert_array_equal(two, [[0, 1], [0, 0], [1, 1]])


def test_range_flags_refuses_mismatched_shapes_and_inverted_ranges():
    with pytest.raises(ValueError, match=r"got values \(3, 4\) and ranges \(23, 2\)"):
        range_flags(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="lo <= hi"):
        range_flags(np.zeros(3), (1.0, 0.0))
    with pytest.raises(KeyError, match="no range for"):
        range_flags(np.zeros((2, 23)), {"Teff_PASTEL": (0, 1)})
