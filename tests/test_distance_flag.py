"""flag_dist_phot: missing, too far, too uncertain, or resting on an out-of-range M_Ks (docs/catalogue.md)."""

import dataclasses

import numpy as np

from jaxvac.io.crossmatch import CrossMatch
from jaxvac.io.records import META_DTYPE
from jaxvac.labels import LABEL_NAMES
from jaxvac.run.astrometry import AstrometryConfig
from jaxvac.run.rows import assemble_rows, distance_flag
from jaxvac.run.uncertainties import ErrorModel, default_ranges

CFG = AstrometryConfig()


def test_limits_come_from_dr8_toml():
    import tomllib

    from jaxvac.config import builtin_path

    astro = tomllib.loads(builtin_path("dr8").read_text())["astrometry"]
    assert (CFG.dist_max_kpc, CFG.dist_max_frac_err) == (astro["dist_max_kpc"], astro["dist_max_frac_err"]) == (100.0, 0.5)


def test_distance_flag_known_answers():
    d = np.array([1.0, 99.0, 100.0, 100.5, 210.0, 4.0, 4.0, 4.0, np.nan, np.inf, 3.0, 3.0])
    e = np.array([0.1, 10.0, 10.0, 10.0, 20.0, 2.0, 2.04, 1.96, np.nan, 1.0, np.nan, 0.3])
    a = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], np.uint8)
    want = [0, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1]
    #       ok, <100, =100 (closed), >100, far, e/d = 0.5 (closed), 0.51, 0.49, NaN d, inf d, NaN error only, a_ks flag
    got = distance_flag(d, e, a, CFG)
    assert got.dtype == np.uint8 and got.tolist() == want
    tight = dataclasses.replace(CFG, dist_max_kpc=3.5, dist_max_frac_err=0.05)
    assert distance_flag(d, e, a, tight).tolist() == [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1]


def _assembled(astrometry=CFG):
    """Six spectra through assemble_rows with a constructed cross-match (Ks, e_Ks, E(B-V))."""
    n = 6
    meta = np.zeros(n, META_DTYPE)
    meta["obsid"] = np.arange(100, 100 + n)
    meta["ra"], meta["dec"] = np.linspace(10, 200, n), np.linspace(-20, 60, n)
    meta["ra_obs"], meta["dec_obs"] = meta["ra"], meta["dec"]
    meta["snrg"] = 50.0
    ranges = default_ranges()
    y = np.tile(ranges.mean(axis=1), (n, 1))  # every label in the middle of its range
    k = LABEL_NAMES.index("a_ks")
    #                  plausible  125 kpc  e_Ks 1.5  a_ks -5.5  no xm row  e_Ks NaN
    y[:, k] = np.array([1.0, -6.5, 1.0, -5.5, 1.0, 1.0])
    ks = np.array([12.0, 14.0, 12.0, 8.0, 12.0, 12.0])
    e_ks = np.array([0.02, 0.02, 1.5, 0.02, 0.02, np.nan])
    keep = np.array([0, 1, 2, 3, 5])  # obsid 104 has no cross-match row
    xm = CrossMatch(meta["obsid"][keep], np.arange(5, dtype=np.int64), ks[keep], e_ks[keep],
                    np.full(5, 0.05), np.full(5, 0.01))
    ranges_wide = ranges.copy()
    ranges_wide[k] = (-5.0, 10.0)  # so -6.5 (row 1) and -5.5 (row 3) are out of range
    return assemble_rows(meta, y, np.full(n, np.nan), ranges=ranges_wide, vmp_range=(-3.8, -1.0),
                         errors=ErrorModel.default(), crossmatch=xm, astrometry=astrometry)


def test_assemble_rows_flags_implausible_distances_and_not_plausible_ones():
    rows = _assembled()
    d, e = rows["dist_phot"].astype(np.float64), rows["Err_dist_phot"].astype(np.float64)
    np.testing.assert_allclose(d[0], 10 ** ((12.0 - 1.0 - 0.306 * 0.05) / 5 + 1) / 1000, rtol=1e-5)  # 1.58 kpc
    assert d[1] > 100 and e[2] / d[2] > 0.5 and d[3] < 10 and np.isnan(d[4]) and np.isfinite(d[5]) and np.isnan(e[5])
    assert rows["flag_a_ks"].tolist() == [0, 1, 0, 1, 0, 0]
    assert rows["flag_dist_phot"].tolist() == [0, 1, 1, 1, 1, 0]
    assert rows["flag_dist_phot"].dtype == np.uint8
    # the limits are read from the AstrometryConfig given (configs/dr8.toml [astrometry])
    near = _assembled(dataclasses.replace(CFG, dist_max_kpc=1.0))
    assert near["flag_dist_phot"].tolist() == [1, 1, 1, 1, 1, 1]
