"""jaxvac.io.match: sky matching against a brute-force reference (RA wrap, poles), obsid matching,
and finding spectra through the official LAMOST LRS catalogue's file names."""

from __future__ import annotations

import numpy as np
import pytest

from jaxvac.config import ConfigError
from jaxvac.io.match import MatchConfig, MatchError, match_obsid, match_sky, separation_arcsec
from jaxvac.io.spectra_index import lrs_catalogue_index, lrs_file_stem

from conftest import LAMOST_DIR


def haversine_arcsec(ra1, dec1, ra2, dec2):
    """Independent reference: the haversine formula in float64 (degrees in, arcsec out)."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, np.float64)) for v in (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))) * 3600.0


def clustered_sky(rng, n, centres, spread_arcsec):
    """n points scattered (Gaussian, in the tangent plane) around the given centres (deg)."""
    k = rng.integers(0, len(centres), n)
    ra0, dec0 = np.array(centres, float).T
    # offsets on the sphere: rotate a small tangent-plane offset to the centre
    x, y = rng.normal(0.0, spread_arcsec / 3600.0, (2, n))
    d = np.radians(dec0[k])
    a = np.radians(ra0[k])
    v = np.stack([np.cos(d) * np.cos(a), np.cos(d) * np.sin(a), np.sin(d)], 1)
    east = np.stack([-np.sin(a), np.cos(a), np.zeros(n)], 1)
    north = np.cross(v, east)
    w = v + np.radians(x)[:, None] * east + np.radians(y)[:, None] * north
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    ra = np.degrees(np.arctan2(w[:, 1], w[:, 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(w[:, 2], -1, 1)))
    return ra, dec


CENTRES = [(0.0, 10.0), (359.9999, -30.0), (0.0, 89.9999), (200.0, 90.0), (45.0, -89.9998), (0.0003, 0.0),
           (123.4, 45.6)]


@pytest.fixture(scope="module")
def sky():
    rng = np.random.default_rng(7)
    ira, idec = clustered_sky(rng, 3000, CENTRES, 6.0)
    cra, cdec = clustered_sky(rng, 400, CENTRES, 6.0)
    # a few rows and spectra far from everything, and NaN positions that must never match
    ira = np.concatenate([ira, rng.uniform(0, 360, 50), [np.nan]])
    idec = np.concatenate([idec, rng.uniform(-60, 60, 50), [10.0]])
    cra = np.concatenate([cra, rng.uniform(0, 360, 20), [np.nan, 0.0]])
    cdec = np.concatenate([cdec, rng.uniform(-60, 60, 20), [10.0, np.nan]])
    snrg = rng.uniform(5, 300, len(ira)).round(2)
    return cra, cdec, ira, idec, snrg


def brute_force(cra, cdec, ira, idec, radius, repeats, snrg):
    """Every pair by the haversine distance, then the documented rules with plain loops."""
    sep = haversine_arcsec(cra[:, None], cdec[:, None], ira[None, :], idec[None, :])
    rows, cols = np.nonzero(np.nan_to_num(sep, nan=np.inf) <= radius)
    pairs = {}
    for j in np.unique(cols):  # each spectrum to its nearest row (ties: the lower row)
        cand = rows[cols == j]
        best = min(cand, key=lambda r: (sep[r, j], r))
        pairs.setdefault(best, []).append(j)
    out = []
    for r in sorted(pairs):
        js = sorted(pairs[r])
        if repeats == "best":
            js = [min(js, key=lambda j: (-snrg[j], sep[r, j], j))]
        out += [(r, j) for j in js]
    return out, sep


@pytest.mark.parametrize("repeats", ["all", "best"])
@pytest.mark.parametrize("radius", [3.0, 10.0])
def test_sky_match_equals_brute_force_across_the_wrap_and_the_poles(sky, repeats, radius):
    cra, cdec, ira, idec, snrg = sky
    m = match_sky(cra, cdec, ira, idec, radius_arcsec=radius, repeats=repeats, snrg=snrg)
    ref, sep = brute_force(cra, cdec, ira, idec, radius, repeats, snrg)
    assert len(ref) > 100  # the clusters give many pairs, at every special place
    assert list(zip(m.row.tolist(), m.index.tolist())) == ref
    np.testing.assert_allclose(m.sep_arcsec, sep[m.row, m.index], rtol=1e-9, atol=1e-9)
    # pairs across RA = 0/360 and within 1 arcmin of a pole were found
    wrap = (np.abs(cra[m.row] - ira[m.index]) > 180.0)
    polar = np.abs(cdec[m.row]) > 89.98
    assert wrap.any() and polar.any()
    assert sorted(set(range(len(cra))) - set(m.row.tolist())) == m.unmatched.tolist()
    assert len(cra) - 1 in m.unmatched and len(cra) - 2 in m.unmatched  # NaN positions


def test_a_spectrum_near_two_rows_goes_to_the_nearer_and_is_counted():
    m = match_sky([10.0, 10.0 + 2.0 / 3600], [0.0, 0.0], [10.0 + 0.5 / 3600], [0.0], radius_arcsec=3.0)
    assert m.row.tolist() == [0] and m.index.tolist() == [0] and m.n_shared == 1
    assert m.unmatched.tolist() == [1]
    assert "1 of 2 rows matched 1 spectra" in m.summary() and "1 unmatched, e.g. row 1" in m.summary()
    assert "went to the nearest" in m.summary()


def test_usable_excludes_index_rows_and_separation_is_exact_at_large_angles():
    m = match_sky([5.0], [5.0], [5.0, 5.0], [5.0, 5.0 + 1 / 3600], radius_arcsec=3.0, usable=[False, True])
    assert m.index.tolist() == [1]
    np.testing.assert_allclose(separation_arcsec([0.0, 0.0, 10.0], [0.0, 90.0, -90.0], [180.0, 0.0, 190.0],
                                                 [0.0, -90.0, -90.0]), [648000.0, 648000.0, 0.0], atol=1e-6)


def test_obsid_match_all_best_missing_and_duplicates():
    index_obsid = np.array([5, 3, 3, 9, -1])
    snrg = np.array([10.0, 20.0, 30.0, 5.0, 99.0])
    rows = np.ma.MaskedArray([3, 7, 5, 0, 3], mask=[False, False, False, True, False])
    m = match_obsid(rows, index_obsid)
    assert list(zip(m.row.tolist(), m.index.tolist())) == [(0, 1), (0, 2), (2, 0), (4, 1), (4, 2)]
    assert m.unmatched.tolist() == [1, 3]
    b = match_obsid(rows, index_obsid, repeats="best", snrg=snrg)
    assert list(zip(b.row.tolist(), b.index.tolist())) == [(0, 2), (2, 0), (4, 2)]
    f = match_obsid(np.array([9.0, np.nan]), index_obsid, usable=[True, True, True, False, True])
    assert f.row.tolist() == [] and f.unmatched.tolist() == [0, 1]
    with pytest.raises(MatchError, match="needs the snrg"):
        match_obsid(rows, index_obsid, repeats="best")


def test_match_config_defaults_and_checks():
    c = MatchConfig()
    assert (c.radius_arcsec, c.repeats, c.classes, c.require_rv) == (3.0, "best", ("STAR",), True)
    with pytest.raises(ConfigError, match="repeats must be one of"):
        MatchConfig(repeats="first")
    with pytest.raises(ConfigError, match="radius_arcsec must be > 0"):
        MatchConfig(radius_arcsec=0.0)


def test_lrs_file_names_find_the_real_files(tmp_path):
    """The official LRS catalogue's (lmjd, planid, spid, fiberid) name the real files; files named
    <obsid>.fits are found by obsid; a row without a file is counted."""
    assert lrs_file_stem(55859, "F5902", 3, 232) == "spec-55859-F5902_sp03-232"
    cat = tmp_path / "lrs.csv"
    cat.write_text("obsid,lmjd,planid,spid,fiberid,ra,dec,snrg,class,z\n"
                   "103232,55859,F5902,3,232,330.909453,-0.17471,94.11,STAR,3.4e-05\n"
                   "1247301001,60591,LN042429N340750BM01,1,1,66.43298,32.625089,102.45,STAR,-9999\n"
                   "3703110,55877,B7708,3,110,138.080956,27.893459,19.35,STAR,-5.6e-05\n"
                   "101001,55859,F5902,1,1,332.202274,-2.056767,12.22,STAR,-0.0001387\n"
                   "999,55859,F5902,16,250,1.0,2.0,3.0,STAR,0.0\n")
    idx = lrs_catalogue_index(cat, LAMOST_DIR)
    names = [p.rsplit("/", 1)[-1] if p else "" for p in idx["path"]]
    assert names == ["spec-55859-F5902_sp03-232.fits.gz", "spec-60591-LN042429N340750BM01_sp01-001.fits.gz",
                     "3703110.fits", "spec-55859-F5902_sp01-001.fits.gz", ""]
    assert idx.n_missing == 1 and idx.missing_examples == ("spec-55859-F5902_sp16-250",)
    assert np.isnan(idx["rv"][1]) and idx["rv"][0] == pytest.approx(3.4e-05 * 299792.458)
    m = match_obsid([3703110, 103232, 42], idx["obsid"])
    assert m.index.tolist() == [2, 0] and m.unmatched.tolist() == [2]
